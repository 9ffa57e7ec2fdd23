"""Human3.6M through VideoPose3D's files: the protocol, cameras, per-action evaluation and the train command.

The test files are written in exactly VideoPose3D's layout (``data/prepare_data_h36m.py``,
``common/h36m_dataset.py``): ``positions_3d`` = subject -> action -> (N, 32, 3) world metres (Z up),
``positions_2d`` = subject -> action -> [4 cameras] -> (N, 17, 2) pixels, and ``metadata``. The motion
is real (the shared CMU file) when it is there, synthetic otherwise.
"""
import os

import numpy as np
import pytest

from hourglass_tokenizer.data import H36M_32_TO_17, JOINTS_LEFT, JOINTS_RIGHT, load_cmu
from hourglass_tokenizer.data.h36m import (H36M_EXTRINSICS, H36M_INTRINSICS, TEST_SUBJECTS, TRAIN_SUBJECTS,
                                           camera_frame, canonical_action, load_h36m_sequences,
                                           sequences_by_action)
from hourglass_tokenizer.training import evaluate_by_action, main
from stand_ins import ZeroModel

SHARED_CMU = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cmu_mocap_h36m17_50fps.npz")
ACTIONS = {"S1": ["Walking 1", "TakingPhoto"], "S5": ["Eating"], "S6": ["Directions"], "S7": ["Walking"],
           "S8": ["Sitting 1"], "S9": ["Walking", "Photo 1"],
           "S11": ["Walking 1", "Eating 2"]}

pytestmark = pytest.mark.usefixtures("one_thread")


def _quat_rotate(q, v):
    """Rotate vectors ``v`` (..., 3) by the unit quaternion ``q`` (w, x, y, z) as q v q*, written out."""
    w, u = q[0], np.asarray(q[1:])
    uv = np.cross(u, v)
    return v + 2 * (w * uv + np.cross(u, uv))


def _world_to_camera_reference(points, subject, cam):
    q, centre_mm = H36M_EXTRINSICS[subject][cam]
    q_inverse = np.array([q[0], -q[1], -q[2], -q[3]])
    return _quat_rotate(q_inverse, points - np.array(centre_mm) / 1000.0)


def _project_reference(cam_points, cam):
    intr = H36M_INTRINSICS[cam]
    xy = cam_points[..., :2] / cam_points[..., 2:]
    return xy * [intr.fx, intr.fy] + [intr.cx, intr.cy]


def _motion_clips(n, length):
    if os.path.exists(SHARED_CMU):
        return [c[:length] for c in load_cmu(SHARED_CMU).clips("test", n)]
    rng = np.random.default_rng(0)
    rest = np.cumsum(rng.normal(scale=0.1, size=(17, 3)), axis=0) + [0, 1.0, 0]
    t = np.arange(length)[:, None, None] / 50.0
    return [(rest + 0.1 * np.sin(2 * np.pi * (i + 1) * t + rng.uniform(0, 6, (1, 17, 3)))).astype(np.float32)
            for i in range(n)]


def write_videopose3d_files(folder, length=60, cpn_extra_frames=3):
    """data_3d_h36m.npz, data_2d_h36m_gt.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz in VideoPose3D's layout.

    Y-up motion becomes Human3.6M's Z-up world (centred near the origin, where the cameras look); the 15
    joints VideoPose3D drops hold garbage, which must never reach the 17-joint output. Returns the 32-joint
    positions and the ground-truth 2D.
    """
    clips = iter(_motion_clips(sum(len(a) for a in ACTIONS.values()), length))
    positions_3d, gt_2d, cpn_2d = {}, {}, {}
    rng = np.random.default_rng(1)
    for subject, actions in ACTIONS.items():
        positions_3d[subject], gt_2d[subject], cpn_2d[subject] = {}, {}, {}
        for action in actions:
            yup = next(clips).astype(np.float64)
            yup = yup - [yup[:, 0, 0].mean(), 0, yup[:, 0, 2].mean()]
            zup = np.stack([yup[..., 0], -yup[..., 2], yup[..., 1]], -1)
            pos32 = rng.normal(scale=100.0, size=(len(zup), 32, 3))
            pos32[:, list(H36M_32_TO_17)] = zup
            positions_3d[subject][action] = pos32.astype(np.float32)
            views = [_project_reference(_world_to_camera_reference(zup, subject, c), c).astype(np.float32)
                     for c in range(4)]
            gt_2d[subject][action] = views
            cpn_2d[subject][action] = [np.concatenate([v + rng.normal(scale=2.0, size=v.shape),
                                                       np.zeros((cpn_extra_frames, 17, 2))]).astype(np.float32)
                                       for v in views]
    symmetry = [list(JOINTS_LEFT), list(JOINTS_RIGHT)]
    np.savez_compressed(os.path.join(folder, "data_3d_h36m.npz"), positions_3d=positions_3d)
    np.savez_compressed(os.path.join(folder, "data_2d_h36m_gt.npz"), positions_2d=gt_2d,
                        metadata={"num_joints": 17, "keypoints_symmetry": symmetry})
    np.savez_compressed(os.path.join(folder, "data_2d_h36m_cpn_ft_h36m_dbb.npz"), positions_2d=cpn_2d,
                        metadata={"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": symmetry})
    return positions_3d, gt_2d


def test_protocol_subjects_and_actions():
    assert TRAIN_SUBJECTS == ("S1", "S5", "S6", "S7", "S8") and TEST_SUBJECTS == ("S9", "S11")
    assert [canonical_action(a) for a in ["Walking 1", "Walking", "TakingPhoto 1", "WalkingDog", "WalkDog 1",
                                          "Eating 2"]] == ["Walking", "Walking", "Photo", "WalkDog", "WalkDog",
                                                           "Eating"]
    assert [c.id for c in H36M_INTRINSICS] == ["54138969", "55011271", "58860488", "60457274"]
    for subject in TRAIN_SUBJECTS + TEST_SUBJECTS:
        for q, centre in H36M_EXTRINSICS[subject]:
            assert abs(np.linalg.norm(q) - 1) < 1e-6  # unit quaternions: no digit lost
            # Each camera looks at the capture area: the origin is in front of it, near its optical axis.
            ahead = _world_to_camera_reference(np.zeros(3), subject, H36M_EXTRINSICS[subject].index((q, centre)))
            assert ahead[2] > 4.0 and np.hypot(ahead[0], ahead[1]) < 1.0


def test_sequences_are_normalised_2d_and_root_relative_camera_3d(tmp_path):
    positions_3d, gt_2d = write_videopose3d_files(str(tmp_path))
    seqs = load_h36m_sequences(tmp_path, ["S9", "S11"], keypoints="gt")
    assert [(s.subject, s.action, s.camera) for s in seqs[:5]] == [("S9", "Walking", c) for c in range(4)] + [
        ("S9", "Photo 1", 0)]
    assert len(seqs) == 4 * 4
    for seq in (seqs[0], seqs[7], seqs[-1]):
        world17 = positions_3d[seq.subject][seq.action][:, list(H36M_32_TO_17)].astype(np.float64)
        cam = _world_to_camera_reference(world17, seq.subject, seq.camera)
        np.testing.assert_allclose(seq.positions_3d, cam - cam[:, :1], atol=2e-5)
        intr = H36M_INTRINSICS[seq.camera]
        expected_2d = gt_2d[seq.subject][seq.action][seq.camera] / intr.width * 2 - [1, intr.height / intr.width]
        np.testing.assert_allclose(seq.keypoints_2d, expected_2d, atol=1e-5)
    # The library's camera frame reproduces the ground-truth 2D through the intrinsics.
    world17 = positions_3d["S11"]["Eating 2"][:, list(H36M_32_TO_17)]
    np.testing.assert_allclose(_project_reference(camera_frame(world17, "S11", 2), 2), gt_2d["S11"]["Eating 2"][2],
                               atol=0.05)
    # CPN has extra frames at the end: trimmed to the mocap length.
    cpn = load_h36m_sequences(tmp_path, ["S1"])
    assert [len(s.keypoints_2d) for s in cpn] == [60] * 8
    assert sorted(sequences_by_action(seqs)) == ["Eating", "Photo", "Walking"]


def test_evaluate_by_action_averages_actions_with_equal_weight(tmp_path):
    write_videopose3d_files(str(tmp_path), length=30)
    groups = sequences_by_action(load_h36m_sequences(tmp_path, ["S9", "S11"], keypoints="gt"))
    table = evaluate_by_action(ZeroModel(), groups)
    for action, seqs in groups.items():
        target = np.concatenate([pos for _, pos in seqs])
        assert table[action]["frames"] == len(target)
        assert table[action]["mpjpe"] == pytest.approx(np.linalg.norm(target, axis=-1).mean() * 1000, rel=1e-5)
    # Walking has twice the frames of the other actions, but every action weighs the same.
    assert table["Walking"]["frames"] == 2 * table["Eating"]["frames"]
    assert table["average"]["mpjpe"] == pytest.approx(np.mean([table[a]["mpjpe"] for a in groups]))
    assert table["average"]["p_mpjpe"] == pytest.approx(np.mean([table[a]["p_mpjpe"] for a in groups]))


def test_train_command_on_h36m_prints_the_per_action_table(tmp_path, capsys):
    write_videopose3d_files(str(tmp_path), length=40)
    common = ["--dataset", "h36m", "--data-dir", str(tmp_path), "--frames", "9", "--model-arg", "depth=1",
              "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--no-progress",
              "--eval-frame-stride", "4", "--out", str(tmp_path / "run")]
    assert main(common) == 0
    out = capsys.readouterr().out
    assert "Protocol 1 (MPJPE)" in out and "Protocol 2 (P-MPJPE)" in out and "cpn 2D" in out
    for action in ("Eating", "Photo", "Walking", "average"):
        assert f"\n{action} " in out
    assert main(common + ["--keypoints", "gt", "--overwrite"]) == 0
    assert "gt 2D" in capsys.readouterr().out


def test_h36m_user_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    assert main(["--dataset", "h36m", "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hot-train: error: Human3.6M file not found:") and "\n" not in err
    assert str(tmp_path / "nowhere" / "data_3d_h36m.npz") in err and "prepare_data_h36m.py" in err
    assert "shared" not in err
    assert main(["--dataset", "h36m"]) == 2
    assert "--data-dir" in capsys.readouterr().err
    # A file with the wrong layout: which keys were expected, which were found.
    np.savez(tmp_path / "data_3d_h36m.npz", positions=np.zeros((3, 17, 3)))
    np.savez(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz", positions_2d=np.zeros(1))
    assert main(["--dataset", "h36m", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "expected keys ['positions_3d'], found ['positions']" in err and "Traceback" not in err
    assert main(["--dataset", "coco"]) == 2  # not a dataset this command knows: argparse's error, one line
