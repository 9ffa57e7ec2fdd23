"""MPI-INF-3DHP: files built in P-STMO's exact layout from the shared motion, read back joint by joint
in Human3.6M order; PCK, AUC and MPJPE over valid frames against hand-computed values."""
import os

import numpy as np
import pytest
from hourglass_tokenizer.data.mpi_inf_3dhp import (H36M_FROM_3DHP, PCK_JOINTS, TEST_FILE, TRAIN_FILE, ThreeDHPSequence,
                                                   load_3dhp_test, load_3dhp_train, make_3dhp_datasets)
from hourglass_tokenizer.training.evaluation import evaluate_3dhp, format_3dhp_scores
from hourglass_tokenizer.data.readers import DataFileNotFoundError, DataLayoutError
from hourglass_tokenizer.data.skeleton import JOINT_NAMES
from stand_ins import ZeroModel

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cmu_tiny_243f.npz")
#: MPI-INF-3DHP's 17 joints, in its order (the file's joint order).
THREEDHP_NAMES = ("head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                  "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                  "pelvis", "spine", "head")
#: Human3.6M joint name -> MPI-INF-3DHP joint name, as MotionAGFormer pairs them.
SAME_JOINT = {"Hip": "pelvis", "RHip": "right_hip", "RKnee": "right_knee", "RFoot": "right_ankle", "LHip": "left_hip",
              "LKnee": "left_knee", "LFoot": "left_ankle", "Spine": "spine", "Thorax": "neck", "Neck/Nose": "head",
              "Head": "head_top", "LShoulder": "left_shoulder", "LElbow": "left_elbow", "LWrist": "left_wrist",
              "RShoulder": "right_shoulder", "RElbow": "right_elbow", "RWrist": "right_wrist"}


def test_joint_order_table_matches_the_named_pairs():
    for h36m_index, name in enumerate(JOINT_NAMES):
        assert THREEDHP_NAMES[H36M_FROM_3DHP[h36m_index]] == SAME_JOINT[name]
    assert sorted(JOINT_NAMES[j] for j in PCK_JOINTS) == sorted(set(JOINT_NAMES) - {"Hip", "Spine", "Neck/Nose"})


@pytest.fixture(scope="module")
def motion():
    if not os.path.exists(SHARED):
        pytest.skip(f"the shared motion file {os.path.abspath(SHARED)} is absent (it sits beside the checkout)")
    with np.load(SHARED) as data:
        return data["positions_3d"].astype(np.float64), data["keypoints_2d"].astype(np.float64)


def to_3dhp(h36m):
    """(..., 17, C) Human3.6M order -> MPI-INF-3DHP order, by joint name."""
    out = np.empty_like(h36m)
    for i, name in enumerate(JOINT_NAMES):
        out[..., THREEDHP_NAMES.index(SAME_JOINT[name]), :] = h36m[..., i, :]
    return out


def clip(motion, i, size):
    """One clip as the 3DHP files hold it: pixels in a ``size`` image, millimetres in camera space."""
    positions, keypoints = motion
    pixels = keypoints[i] / 1000.0 * np.asarray(size)
    return {"data_2d": to_3dhp(pixels).astype(np.float32),
            "data_3d": (to_3dhp(positions[i]) * 1000 + [100.0, -200.0, 4500.0]).astype(np.float32)}


@pytest.fixture(scope="module")
def data_dir(motion, tmp_path_factory):
    folder = tmp_path_factory.mktemp("3dhp")
    train = {"S1 Seq1": [{"0": clip(motion, 0, (2048, 2048)), "8": clip(motion, 1, (2048, 2048))}, 25],
             "S2 Seq2": [{"4": clip(motion, 2, (2048, 2048))}, 50]}
    valid = np.ones(243)
    valid[100:120] = 0
    test = {"TS1": {**clip(motion, 0, (2048, 2048)), "valid": valid},
            "TS5": {**clip(motion, 1, (1920, 1080)), "valid": np.ones(243)}}
    np.savez_compressed(folder / TRAIN_FILE, data=train)
    np.savez_compressed(folder / TEST_FILE, data=test)
    return str(folder)


def test_train_file_read_joint_by_joint(data_dir, motion):
    positions, keypoints = motion
    sequences = load_3dhp_train(os.path.join(data_dir, TRAIN_FILE))
    assert [(s.name, s.camera) for s in sequences] == [("S1 Seq1", "0"), ("S1 Seq1", "8"), ("S2 Seq2", "4")]
    for seq, i in zip(sequences, (0, 1, 2)):
        assert seq.image_size == (2048, 2048) and seq.valid.all()
        pixels = keypoints[i] / 1000.0 * 2048
        for j, name in enumerate(JOINT_NAMES):
            expected_3d = positions[i][:, j] - positions[i][:, 0]  # metres, relative to the pelvis
            np.testing.assert_allclose(seq.positions_3d[:, j], expected_3d, atol=1e-5, err_msg=name)
            expected_2d = pixels[:, j] / 2048 * 2 - 1  # x / w * 2 - [1, h / w] with w = h
            np.testing.assert_allclose(seq.keypoints_2d[:, j], expected_2d, atol=1e-5, err_msg=name)


def test_test_file_valid_flags_and_image_sizes(data_dir, motion):
    _, keypoints = motion
    ts1, ts5 = load_3dhp_test(os.path.join(data_dir, TEST_FILE))
    assert (ts1.name, ts1.image_size, ts5.name, ts5.image_size) == ("TS1", (2048, 2048), "TS5", (1920, 1080))
    assert np.flatnonzero(~ts1.valid).tolist() == list(range(100, 120)) and ts5.valid.all()
    pixels = keypoints[1] / 1000.0 * np.array([1920, 1080])
    np.testing.assert_allclose(ts5.keypoints_2d[..., 0], pixels[..., 0] / 1920 * 2 - 1, atol=1e-5)
    np.testing.assert_allclose(ts5.keypoints_2d[..., 1], pixels[..., 1] / 1920 * 2 - 1080 / 1920, atol=1e-5)


def test_datasets_for_the_trainer(data_dir):
    train, test, sequences = make_3dhp_datasets(data_dir, 27, train_stride=9)
    assert len(train.sequences) == 3 and len(train) == 3 * 27  # a window centred on every 9th of 243 frames
    x, y = train[0]
    assert x.shape == (27, 17, 2) and y.shape == (27, 17, 3)
    assert len(test.sequences) == 2 and [s.name for s in sequences] == ["TS1", "TS5"]


def test_file_errors(tmp_path, data_dir):
    with pytest.raises(DataFileNotFoundError, match="data_to_npz_3dhp"):
        load_3dhp_train(tmp_path / TRAIN_FILE)
    np.savez(tmp_path / "other.npz", positions=np.zeros((2, 17, 3)))
    with pytest.raises(DataLayoutError, match="one pickled dict under 'data'"):
        load_3dhp_test(tmp_path / "other.npz")
    np.savez(tmp_path / "ts9.npz", data={"TS9": {"data_2d": np.zeros((2, 17, 2)), "data_3d": np.zeros((2, 17, 3)),
                                                 "valid": np.ones(2)}})
    with pytest.raises(DataLayoutError, match="unknown test sequence 'TS9'"):
        load_3dhp_test(tmp_path / "ts9.npz")
    np.savez(tmp_path / "joints.npz", data={"TS1": {"data_2d": np.zeros((2, 16, 2)), "data_3d": np.zeros((2, 16, 3)),
                                                    "valid": np.ones(2)}})
    with pytest.raises(DataLayoutError, match=r"\(2, 16, 2\)"):
        load_3dhp_test(tmp_path / "joints.npz")
    np.savez(tmp_path / "code.npz", data=np.array([os.system], dtype=object))
    with pytest.raises(DataLayoutError, match="could run code"):
        load_3dhp_test(tmp_path / "code.npz")


def test_pck_auc_mpjpe_over_valid_frames_hand_computed():
    """Frame A: the 14 PCK joints 100 mm from the pelvis; frame B: 200 mm; spine and nose 500 mm in both;
    an invalid frame with every joint at the pelvis would raise every score if it were counted."""
    targets = np.zeros((3, 17, 3))
    for frame, distance in ((0, 0.100), (1, 0.200)):
        targets[frame, list(PCK_JOINTS), 0] = distance
        targets[frame, [JOINT_NAMES.index("Spine"), JOINT_NAMES.index("Neck/Nose")], 1] = 0.5
    sequence = ThreeDHPSequence("TS1", "", np.zeros((3, 17, 2), np.float32), targets.astype(np.float32),
                                np.array([True, True, False]), (2048, 2048))
    scores = evaluate_3dhp(ZeroModel(), [sequence])  # every joint at the origin: errors are the distances
    assert scores["frames"] == 2
    assert scores["pck"] == pytest.approx(50.0)  # frame A's 14 joints below 150 mm, frame B's none
    # 100 mm is below 105, 110, ..., 150: 10 of the 31 thresholds, for half the joints
    assert scores["auc"] == pytest.approx(100 * 10 / 31 / 2)
    # 17 joints each: A 14 x 100 + 2 x 500 + pelvis 0, B 14 x 200 + 2 x 500
    assert scores["mpjpe"] == pytest.approx((2400 + 3800) / 34, rel=1e-6)
    assert "PCK 50.0 %" in format_3dhp_scores(scores)


def test_train_command_on_3dhp_reports_pck_auc_mpjpe(data_dir, tmp_path, capsys):
    from hourglass_tokenizer.training.cli import main

    code = main(["--dataset", "3dhp", "--data-dir", data_dir, "--model", "mixste", "--config", "small", "--frames",
                 "9", "--model-arg", "embed_dim=16", "--model-arg", "depth=1", "--epochs", "1", "--steps-per-epoch",
                 "2", "--batch-size", "4", "--eval-frame-stride", "8", "--out", str(tmp_path / "run"), "--threads",
                 "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "MPI-INF-3DHP (466 valid frames): PCK" in out  # 223 + 243 valid frames of TS1 and TS5


def test_train_command_needs_the_3dhp_folder(capsys):
    from hourglass_tokenizer.training.cli import main

    code = main(["--dataset", "3dhp", "--model", "mixste", "--config", "small"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--dataset 3dhp needs --data-dir DIR" in err
