"""Skeleton, readers, cameras and windowed datasets (hourglass_tokenizer.data)."""
import os
import re

import numpy as np
import pytest
import torch

from hourglass_tokenizer.data import (
    DataFileNotFoundError, DataLayoutError, split_clips,
    FLIP_PERMUTATION, H36M_32_TO_17, JOINT_NAMES, JOINTS_LEFT, JOINTS_RIGHT, PARENTS, PoseWindowDataset,
    align_2d_to_3d, camera_to_world, edge_padded_window, flip_pose, image_coordinates, load_cmu, load_h36m_2d,
    load_h36m_3d, look_at_camera, normalize_screen_coordinates, project_clips, project_to_2d,
    quaternion_to_matrix, random_virtual_cameras, world_to_camera)

SHARED_CMU = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cmu_mocap_h36m17_50fps.npz")


# ----- skeleton ------------------------------------------------------------------------------------

def test_skeleton_left_right_lists_match_joint_names():
    assert len(JOINT_NAMES) == len(PARENTS) == 17
    assert all(JOINT_NAMES[i].startswith("L") for i in JOINTS_LEFT)
    assert all(JOINT_NAMES[i].startswith("R") for i in JOINTS_RIGHT)
    for left, right in zip(JOINTS_LEFT, JOINTS_RIGHT):
        assert JOINT_NAMES[left][1:] == JOINT_NAMES[right][1:]
    perm = np.array(FLIP_PERMUTATION)
    assert (perm[perm] == np.arange(17)).all()  # an involution
    assert PARENTS[0] == -1 and all(0 <= p < i for i, p in enumerate(PARENTS) if i)


def test_flip_pose_negates_x_swaps_sides_and_is_an_involution():
    pose = np.random.default_rng(0).normal(size=(5, 17, 3)).astype(np.float32)
    flipped = flip_pose(pose)
    np.testing.assert_array_equal(flipped[:, 4, 0], -pose[:, 1, 0])  # LHip <- -RHip.x
    np.testing.assert_array_equal(flipped[:, 4, 1:], pose[:, 1, 1:])
    np.testing.assert_array_equal(flipped[:, 0, 0], -pose[:, 0, 0])  # centre joints stay, mirrored
    np.testing.assert_array_equal(flip_pose(flipped), pose)
    t = torch.from_numpy(pose[..., :2])
    assert torch.equal(flip_pose(flip_pose(t)), t) and not torch.equal(flip_pose(t), t)
    with pytest.raises(ValueError):
        flip_pose(np.zeros((3, 16, 2)))


# ----- readers -------------------------------------------------------------------------------------

def test_h36m_readers_on_a_small_videopose3d_format_file(tmp_path):
    rng = np.random.default_rng(1)
    pos32 = {"S1": {"Walking": rng.normal(size=(12, 32, 3)).astype(np.float32),
                    "Eating 2": rng.normal(size=(8, 32, 3)).astype(np.float32)},
             "S9": {"Sitting": rng.normal(size=(5, 32, 3)).astype(np.float32)}}
    np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d=pos32)
    kp = {s: {a: [rng.normal(size=(len(v) + 2, 17, 2)).astype(np.float32) for _ in range(4)]
              for a, v in acts.items()} for s, acts in pos32.items()}
    metadata = {"layout_name": "h36m", "num_joints": 17,
                "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz", positions_2d=kp, metadata=metadata)

    pos = load_h36m_3d(tmp_path / "data_3d_h36m.npz")
    assert sorted(pos) == ["S1", "S9"] and sorted(pos["S1"]) == ["Eating 2", "Walking"]
    assert pos["S1"]["Walking"].shape == (12, 17, 3) and pos["S1"]["Walking"].dtype == np.float32
    np.testing.assert_array_equal(pos["S1"]["Walking"], pos32["S1"]["Walking"][:, list(H36M_32_TO_17)])
    # The 17 kept joints: hip, right leg, left leg (6, 7, 8), spine..head (12-15), arms (17-19, 25-27).
    assert H36M_32_TO_17 == (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
    assert list(load_h36m_3d(tmp_path / "data_3d_h36m.npz", subjects=["S9"])) == ["S9"]

    kp2d, meta = load_h36m_2d(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz")
    assert meta["num_joints"] == 17 and meta["keypoints_symmetry"] == [list(JOINTS_LEFT), list(JOINTS_RIGHT)]
    assert len(kp2d["S1"]["Walking"]) == 4 and kp2d["S1"]["Walking"][2].shape == (14, 17, 2)
    np.testing.assert_array_equal(kp2d["S9"]["Sitting"][3], kp["S9"]["Sitting"][3])
    trimmed = align_2d_to_3d(kp2d["S1"]["Walking"][0], pos["S1"]["Walking"])
    assert trimmed.shape == (12, 17, 2)
    with pytest.raises(ValueError):
        align_2d_to_3d(kp2d["S1"]["Walking"][0][:5], pos["S1"]["Walking"])


def test_cmu_reader_on_a_small_file_in_the_shared_layout(tmp_path):
    lengths = [5, 7, 3]
    positions = np.arange(sum(lengths) * 17 * 3, dtype=np.float32).reshape(-1, 17, 3)
    np.savez(tmp_path / "cmu.npz", positions=positions, clip_offsets=np.cumsum([0] + lengths),
             clip_names=np.array(["a/a_1.txt", "b/b_1.txt", "a/a_2.txt"]),
             split=np.array(["train", "test", "train"]), fps=np.float32(50.0))
    mocap = load_cmu(tmp_path / "cmu.npz")
    assert len(mocap) == 3 and mocap.fps == 50.0
    assert mocap.clip_indices("train") == [0, 2] and mocap.clip_indices("test") == [1]
    assert [len(c) for c in mocap.clips("train")] == [5, 3]
    np.testing.assert_array_equal(mocap.clip(1), positions[5:12])
    assert len(mocap.clips("train", max_clips=1)) == 1
    with pytest.raises(FileNotFoundError):
        load_cmu(tmp_path / "missing.npz")


def test_split_specifications():
    names = [f"subject/clip_{i}" for i in range(7)]
    assert list(split_clips(names, "every:3")) == ["test", "train", "train", "test", "train", "train", "test"]
    assert list(split_clips(names[:2], "every:5")) == ["train", "test"]  # the last clip is always a test clip
    assert list(split_clips(names, "glob:*_[25]")) == ["train", "train", "test", "train", "train", "test", "train"]
    assert set(split_clips(names, "train")) == {"train"}
    for bad in ("every:0", "every:x", "glob:", "half"):
        with pytest.raises(ValueError, match="not understood"):
            split_clips(names, bad)


def _motion_file(path, **overrides):
    lengths = [30, 40, 35]
    rng = np.random.default_rng(0)
    keys = dict(positions=rng.normal(size=(sum(lengths), 17, 3)).astype(np.float32) + [0, 1, 0],
                clip_offsets=np.cumsum([0] + lengths), clip_names=np.array(["a", "b", "c"]),
                split=np.array(["train", "train", "test"]), fps=np.float64(50), joint_names=np.array(JOINT_NAMES),
                parents=np.array(PARENTS))
    keys.update(overrides)
    np.savez(path, **{k: v for k, v in keys.items() if v is not None})
    return path


def test_cmu_reader_checks_the_skeleton_and_the_layout(tmp_path):
    assert len(load_cmu(_motion_file(tmp_path / "ok.npz"))) == 3
    swapped = list(JOINT_NAMES)
    swapped[1], swapped[4] = swapped[4], swapped[1]
    with pytest.raises(DataLayoutError, match=r"joint_names \['Hip', 'LHip', .* differ from the 17-joint"):
        load_cmu(_motion_file(tmp_path / "names.npz", joint_names=np.array(swapped)))
    with pytest.raises(DataLayoutError, match="parents .* differ from the 17-joint skeleton's"):
        load_cmu(_motion_file(tmp_path / "parents.npz", parents=np.array([-1] + [0] * 16)))
    with pytest.raises(DataLayoutError, match=r"expected keys \['positions', 'clip_offsets', 'fps'\], found "
                                              r"\['positions_3d'\]"):
        np.savez(tmp_path / "h36m.npz", positions_3d=np.zeros(3))
        load_cmu(tmp_path / "h36m.npz")
    with pytest.raises(DataLayoutError, match=r"positions should be \(N, 17, 3\), got \(105, 32, 3\)"):
        load_cmu(_motion_file(tmp_path / "j32.npz", positions=np.zeros((105, 32, 3))))
    with pytest.raises(DataFileNotFoundError, match="missing.npz.*data bvh") as exc:
        load_cmu(tmp_path / "missing.npz")
    assert "shared" not in str(exc.value)
    # A file without a split (or without names) still loads; asking for a split says how to make one.
    unsplit = load_cmu(_motion_file(tmp_path / "unsplit.npz", split=None, clip_names=None))
    assert unsplit.split is None and list(unsplit.clip_names) == ["clip_0", "clip_1", "clip_2"]
    with pytest.raises(DataLayoutError, match="no 'split' key.*--split-by"):
        unsplit.clips("train")
    assert unsplit.with_split("every:2").clip_indices("test") == [0, 2]


def test_split_by_and_test_data_choose_the_clips(tmp_path):
    from hourglass_tokenizer.training import make_cmu_datasets

    unsplit = _motion_file(tmp_path / "unsplit.npz", split=None)
    with pytest.raises(DataLayoutError, match="no 'split' key"):
        make_cmu_datasets(str(unsplit), 9, cameras=1)
    train, test = make_cmu_datasets(str(unsplit), 9, cameras=1, split_by="glob:b")
    assert [len(s[0]) for s in train.sequences] == [30, 35] and [len(s[0]) for s in test.sequences] == [40]
    # --test-data: that file's test split ...
    other = _motion_file(tmp_path / "other.npz", clip_offsets=np.cumsum([0, 50, 30, 25]))
    _, test = make_cmu_datasets(str(unsplit), 9, cameras=1, split_by="every:2", test_data=str(other))
    assert [len(s[0]) for s in test.sequences] == [25]
    # ... or all of it when it has no split.
    _, test = make_cmu_datasets(str(unsplit), 9, cameras=2, split_by="every:2", test_data=str(unsplit))
    assert [len(s[0]) for s in test.sequences] == [30, 30, 40, 40, 35, 35]
    with pytest.raises(DataLayoutError, match="no training clips"):
        make_cmu_datasets(str(unsplit), 9, cameras=1, split_by="test")


@pytest.mark.parametrize("change, message", [
    (dict(fps=np.float64(-5)), "fps is -5; expected a positive number of frames per second"),
    (dict(fps=np.float64(np.nan)), "fps is nan"),
    (dict(clip_offsets=np.array([0, 30, 30, 105])), "clip 'b' has no frames"),
])
def test_motion_files_with_bad_frame_rates_or_empty_clips_are_refused(tmp_path, change, message):
    from hourglass_tokenizer.training import make_cmu_datasets

    path = _motion_file(tmp_path / "bad.npz", **change)
    with pytest.raises(DataLayoutError, match=re.escape(message)):
        make_cmu_datasets(str(path), 9, cameras=1)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_position_is_refused_naming_clip_frame_and_joint(tmp_path, value):
    from hourglass_tokenizer.training import make_cmu_datasets
    from hourglass_tokenizer.training.datasets import check_motion

    positions = np.random.default_rng(0).normal(size=(105, 17, 3)).astype(np.float32)
    positions[30 + 12, JOINT_NAMES.index("RWrist"), 1] = value  # clip "b" (frames 30..69), its frame 12
    path = _motion_file(tmp_path / "bad.npz", positions=positions)
    expected = f"{path}: clip 'b' frame 12 joint RWrist is ["
    with pytest.raises(DataLayoutError, match=re.escape(expected)):
        make_cmu_datasets(str(path), 9, cameras=1)
    # A bad clip in the test split, or in a --test-data file, is refused all the same.
    with pytest.raises(DataLayoutError, match="clip 'b' frame 12"):
        make_cmu_datasets(str(_motion_file(tmp_path / "ok.npz")), 9, cameras=1, test_data=str(path))
    assert check_motion(load_cmu(_motion_file(tmp_path / "ok.npz"))).fps == 50.0


def test_models_taking_a_confidence_get_a_channel_of_ones(tmp_path):
    from hourglass_tokenizer.data.windows import with_input_channels
    from hourglass_tokenizer.training import make_cmu_datasets

    path = str(_motion_file(tmp_path / "m.npz"))
    plain_train, plain_test = make_cmu_datasets(path, 9, cameras=1)
    train, test = make_cmu_datasets(path, 9, cameras=1, input_channels=3)
    for plain, wide in zip(plain_test.sequences + plain_train.sequences, test.sequences + train.sequences):
        assert wide[0].shape == plain[0].shape[:-1] + (3,)
        np.testing.assert_array_equal(wide[0][..., :2], plain[0])
        assert (wide[0][..., 2] == 1).all()
        np.testing.assert_array_equal(wide[1], plain[1])
    torch.manual_seed(0)
    windows = [train[i][0] for i in range(len(train))]  # flip augmentation mirrors x and keeps the confidence
    assert all(w.shape == (9, 17, 3) and (w[..., 2] == 1).all() for w in windows)
    kp = np.zeros((4, 17, 2), np.float32)
    assert with_input_channels([(kp, kp)], 2)[0][0] is kp
    with pytest.raises(ValueError, match="2 .x, y. or 3 .x, y, confidence."):
        with_input_channels([(kp, kp)], 4)
    with pytest.raises(ValueError, match="have 3 values per joint; the model takes 2"):
        with_input_channels([(np.zeros((4, 17, 3)), kp)], 2)


def test_make_test_set_scores_the_test_split_or_all_clips(tmp_path):
    import argparse

    from hourglass_tokenizer.training.datasets import make_cmu_datasets, make_test_set

    path = str(_motion_file(tmp_path / "m.npz"))
    args = argparse.Namespace(dataset="mocap", data=path, data_dir=None, split_by=None, max_test_clips=None,
                              cameras=2, seed=3, noise_px=0.0)
    test = make_test_set(args, 9)
    _, reference = make_cmu_datasets(path, 9, cameras=2, seed=3)
    assert len(test.sequences) == 2
    for (a2, a3), (b2, b3) in zip(test.sequences, reference.sequences):  # the trainer's test cameras
        np.testing.assert_array_equal(a2, b2)
        np.testing.assert_array_equal(a3, b3)
    unsplit = str(_motion_file(tmp_path / "u.npz", split=None))
    assert [len(s[0]) for s in make_test_set(argparse.Namespace(**{**vars(args), "data": unsplit}), 9).sequences] == \
        [30, 30, 40, 40, 35, 35]
    assert make_test_set(args, 9, input_channels=3).sequences[0][0].shape[-1] == 3


def test_train_command_data_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    from hourglass_tokenizer.training import main

    out = ["--out", str(tmp_path / "run")]
    assert main(["--data", str(tmp_path / "motion.npz")] + out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hot-train: error: --data {tmp_path / 'motion.npz'}: no such file; ") and "\n" not in err
    assert "data bvh" in err and "shared" not in err
    assert main(out) == 2
    assert "needs --data FILE" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not an archive")
    assert main(["--data", str(tmp_path / "notes.txt")] + out) == 2
    assert "not an .npz archive" in capsys.readouterr().err
    assert main(["--data", str(_motion_file(tmp_path / "unsplit.npz", split=None))] + out) == 2
    assert "--split-by" in capsys.readouterr().err
    assert main(["--data", "x.npz", "--split-by", "half"] + out) == 2
    assert "split specification 'half' not understood" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists(SHARED_CMU), reason="shared CMU file ../shared/data/cmu_mocap_h36m17_50fps.npz "
                    "is absent (it lives beside the checkout, never in the repository)")
def test_shared_cmu_file_layout():
    mocap = load_cmu(SHARED_CMU)
    assert len(mocap.clip_indices("train")) == 83 and len(mocap.clip_indices("test")) == 24
    assert sum(len(c) for c in mocap.clips("train")) == 22036
    assert sum(len(c) for c in mocap.clips("test")) == 5867


# ----- cameras -------------------------------------------------------------------------------------

def test_projection_of_a_known_point_and_normalisation_round_trip():
    point = np.array([0.5, -0.25, 5.0])
    px = project_to_2d(point, 1145.0, 1145.0, 500.0, 500.0)
    np.testing.assert_allclose(px, [500 + 1145 * 0.1, 500 - 1145 * 0.05])  # (614.5, 442.75)
    norm = normalize_screen_coordinates(px, 1000, 1000)
    np.testing.assert_allclose(norm, [614.5 / 1000 * 2 - 1, 442.75 / 1000 * 2 - 1])
    np.testing.assert_allclose(image_coordinates(norm, 1000, 1000), px)
    # Non-square image: y is scaled like x (VideoPose3D: X / w * 2 - [1, h / w]).
    np.testing.assert_allclose(normalize_screen_coordinates(np.array([1000.0, 250.0]), 1000, 500), [1.0, 0.0])
    with pytest.raises(ValueError):
        project_to_2d(np.array([0.0, 0.0, -1.0]), 1, 1, 0, 0)


def test_world_to_camera_with_matrix_and_videopose3d_quaternion():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 17, 3))
    # 90 degrees about z: the camera's orientation quaternion maps camera axes to world axes.
    q = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])
    M = quaternion_to_matrix(q)
    np.testing.assert_allclose(M @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    t = np.array([1.0, 2.0, 3.0])
    cam = world_to_camera(X, q, t)
    np.testing.assert_allclose(cam, (X - t) @ M, atol=1e-12)  # R^-1 (X - t), row vectors
    np.testing.assert_allclose(world_to_camera(X, M.T, t), cam, atol=1e-12)
    np.testing.assert_allclose(camera_to_world(cam, q, t), X, atol=1e-12)
    assert world_to_camera(X.astype(np.float32), q, t).dtype == np.float32


def test_look_at_camera_centres_the_target_at_the_given_distance():
    target = np.array([1.0, 1.0, -2.0])
    for az, el in [(0, 0), (90, 10), (225, 30)]:
        cam = look_at_camera(target, az, el, 5.0)
        np.testing.assert_allclose(cam.to_camera(target), [0, 0, 5.0], atol=1e-9)
        np.testing.assert_allclose(cam.project(target), [500, 500], atol=1e-6)
        np.testing.assert_allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(cam.R) > 0
        above = cam.project(target + [0, 0.5, 0])
        assert above[1] < 500  # up in the world is up in the image (smaller row)
    # Azimuth 0: the camera is on +Z looking to -Z; world +X appears on the image's right.
    cam = look_at_camera(np.zeros(3), 0, 0, 5.0)
    np.testing.assert_allclose(cam.t, [0, 0, 5.0], atol=1e-12)
    assert cam.project(np.array([0.5, 0, 0]))[0] > 500


def _walking_clip(n=60, seed=0):
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.2, size=(17, 3)) + np.array([0, 1.0, 0])
    pose[0] = [0, 1.0, 0]
    t = np.arange(n)[:, None, None] / 50.0
    return (pose[None] + np.concatenate([np.sin(t * 2.0), 0 * t, t], axis=-1)).astype(np.float32)


def test_random_virtual_cameras_are_seeded_and_keep_the_subject_in_front():
    clip = _walking_clip()
    a = random_virtual_cameras(clip, 4, 7)
    b = random_virtual_cameras(clip, 4, 7)
    c = random_virtual_cameras(clip, 4, 8)
    assert all(np.array_equal(x.R, y.R) and np.array_equal(x.t, y.t) for x, y in zip(a, b))
    assert not np.array_equal(a[0].R, c[0].R)
    for cam in a:
        depth = cam.to_camera(clip)[..., 2]
        assert depth.min() > 3.5 and 1000 < cam.fx < 1300 and cam.width == cam.height == 1000


def test_project_clips_gives_normalised_2d_and_root_relative_camera_3d():
    clip = _walking_clip()
    seqs = project_clips([clip, clip[:30]], num_cameras=3, seed=5)
    assert len(seqs) == 6 and seqs[0][0].shape == (60, 17, 2) and seqs[3][1].shape == (30, 17, 3)
    kp2d, pos3d = seqs[0]
    assert np.abs(pos3d[:, 0]).max() == 0  # root-relative
    # A rigid transform: bone lengths are unchanged.
    bones_world = np.linalg.norm(clip[:, 1:] - clip[:, list(PARENTS[1:])], axis=-1)
    bones_cam = np.linalg.norm(pos3d[:, 1:] - pos3d[:, list(PARENTS[1:])], axis=-1)
    np.testing.assert_allclose(bones_cam, bones_world, atol=1e-5)
    cam = random_virtual_cameras(clip, 3, np.random.default_rng([5, 0]))[0]
    np.testing.assert_allclose(kp2d, cam.project_normalized(clip), atol=1e-6)
    assert np.abs(kp2d).max() < 1.5
    noisy = project_clips([clip], num_cameras=1, seed=5, noise_px=2.0)[0][0]
    diff_px = (noisy - project_clips([clip], num_cameras=1, seed=5)[0][0]) * 500
    assert 1.0 < diff_px.std() < 3.0
    again = project_clips([clip, clip[:30]], num_cameras=3, seed=5)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(seqs, again))


# ----- windows -------------------------------------------------------------------------------------

def test_edge_padded_window_replicates_the_clip_edges():
    seq = np.arange(10)
    np.testing.assert_array_equal(edge_padded_window(seq, -3, 7), [0, 0, 0, 0, 1, 2, 3])
    np.testing.assert_array_equal(edge_padded_window(seq, 7, 6), [7, 8, 9, 9, 9, 9])
    np.testing.assert_array_equal(edge_padded_window(seq[:2], -2, 5), [0, 0, 0, 1, 1])


def _indexed_sequences(lengths):
    """2D and 3D sequences whose x coordinate is the frame index (and y the sequence index)."""
    out = []
    for s, n in enumerate(lengths):
        kp = np.zeros((n, 17, 2), np.float32)
        kp[..., 0] = np.arange(n)[:, None]
        kp[..., 1] = s
        pos = np.zeros((n, 17, 3), np.float32)
        pos[..., 0] = np.arange(n)[:, None]
        pos[..., 2] = np.arange(17)
        out.append((kp, pos))
    return out


def test_window_dataset_centres_windows_and_pads_by_edge_replication():
    ds = PoseWindowDataset(_indexed_sequences([10, 4]), num_frames=5, stride=3)
    assert len(ds) == 4 + 2  # centres 0, 3, 6, 9 and 0, 3
    x, y = ds[0]
    assert x.shape == (5, 17, 2) and y.shape == (5, 17, 3) and x.dtype == torch.float32
    assert x[:, 0, 0].tolist() == [0, 0, 0, 1, 2]  # centre (index 2) is frame 0
    assert y[:, 0, 0].tolist() == [0, 0, 0, 1, 2]
    assert ds[3][0][:, 0, 0].tolist() == [7, 8, 9, 9, 9]
    x, _ = ds[5]
    assert x[:, 0, 0].tolist() == [1, 2, 3, 3, 3] and float(x[0, 0, 1]) == 1
    # Even T: the centre is index (T - 1) // 2.
    ds = PoseWindowDataset(_indexed_sequences([10]), num_frames=4, stride=5)
    assert ds[1][0][:, 0, 0].tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError):
        PoseWindowDataset([(np.zeros((3, 17, 2)), np.zeros((4, 17, 3)))], 5)


def test_window_dataset_flip_augmentation_mirrors_input_and_target_together():
    seqs = _indexed_sequences([20])
    plain = PoseWindowDataset(seqs, num_frames=5, stride=1)
    aug = PoseWindowDataset(seqs, num_frames=5, stride=1, flip=True)
    torch.manual_seed(0)
    flips = 0
    for i in range(len(aug)):
        x, y = aug[i]
        x0, y0 = plain[i]
        if torch.equal(x, x0):
            assert torch.equal(y, y0)
        else:
            flips += 1
            assert torch.equal(x, flip_pose(x0)) and torch.equal(y, flip_pose(y0))
            assert y[0, 4, 2] == 1  # joint 4 (LHip) now holds RHip's (index 1) data
    assert 3 <= flips <= 17
