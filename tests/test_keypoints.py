"""Detector keypoint files: each format written in its real layout, read, mapped to Human3.6M-17 and
checked joint by joint against a hand-written reference of the documented mapping."""
import os

import numpy as np
import pytest

from hourglass_tokenizer.data.keypoints import (BODY25_KEYPOINTS, COCO_KEYPOINTS, HALPE26_KEYPOINTS,
                                                OPENPOSE18_KEYPOINTS, KeypointFileError, detect_format,
                                                mapping_matrix, network_input, read_keypoints, to_h36m)
from hourglass_tokenizer.data.skeleton import JOINT_NAMES
from hourglass_tokenizer.files import UnsafeFileError

from keypoint_files import (T, check_joints, coco_track, h36m_reference, mmpose_instance,  # noqa: F401
                            write_json, write_openpose_folder)


# -- the mapping ------------------------------------------------------------------------------------

def test_mapping_rows_are_named_means():
    m = mapping_matrix("coco17")
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert m[JOINT_NAMES.index("Spine")].tolist().count(0.25) == 4
    assert m[JOINT_NAMES.index("Head"), COCO_KEYPOINTS.index("LEye")] == 0.5
    np.testing.assert_array_equal(mapping_matrix("h36m17"), np.eye(17))
    with pytest.raises(ValueError, match="unknown keypoint layout"):
        mapping_matrix("mpii")


def test_to_h36m_nan_source_makes_only_its_derived_joints_nan():
    coco, scores = coco_track(1)
    coco[0, COCO_KEYPOINTS.index("LEye")] = np.nan
    kp, sc = to_h36m(coco, scores, "coco17")
    assert np.isnan(kp[0, JOINT_NAMES.index("Head")]).all()
    assert np.isfinite(np.delete(kp[0], JOINT_NAMES.index("Head"), axis=0)).all()


def test_same_people_give_same_skeleton_in_every_layout():
    """BODY_25, COCO-18 and Halpe-26 share the named joints the mapping uses, so they agree with COCO-17."""
    coco, scores = coco_track(2)
    expected, _ = to_h36m(coco, scores, "coco17")
    for layout, names in (("body25", BODY25_KEYPOINTS), ("openpose18", OPENPOSE18_KEYPOINTS),
                          ("halpe26", HALPE26_KEYPOINTS)):
        kp = np.full((2, len(names), 2), 7.0)
        sc = np.full((2, len(names)), 0.5)
        for j, name in enumerate(names):
            if name in COCO_KEYPOINTS:
                kp[:, j], sc[:, j] = coco[:, COCO_KEYPOINTS.index(name)], scores[:, COCO_KEYPOINTS.index(name)]
        np.testing.assert_allclose(to_h36m(kp, sc, layout)[0], expected, atol=1e-4, err_msg=layout)


# -- every format ----------------------------------------------------------------------------------

def test_mmpose_demo_layout(tmp_path):
    coco, scores = coco_track()
    data = {"meta_info": {"dataset_name": "coco"},
            "instance_info": [{"frame_id": t + 1, "instances": [mmpose_instance(coco[t], scores[t])]}
                              for t in range(T)]}
    path = write_json(tmp_path / "results_video.json", data)
    assert detect_format(path) == "mmpose"
    track = read_keypoints(path)
    check_joints(track, coco, scores)
    assert track.frame_ids.tolist() == list(range(1, T + 1))
    assert track.format == "mmpose" and track.layout == "coco17" and not track.missing_frames.any()


def test_mmpose_inferencer_video_and_plain_list_of_frames(tmp_path):
    coco, scores = coco_track()
    frames = [[mmpose_instance(coco[t], scores[t], nested_box=False)] for t in range(T)]
    inferencer = write_json(tmp_path / "video.json", [{"frame_id": t, "instances": f} for t, f in enumerate(frames)])
    plain = write_json(tmp_path / "frames.json", frames)
    for path in (inferencer, plain):
        track = read_keypoints(path)
        check_joints(track, coco, scores)
        assert track.frame_ids.tolist() == list(range(T))


def test_mmpose_one_image_list_of_instances(tmp_path):
    coco, scores = coco_track(1)
    track = read_keypoints(write_json(tmp_path / "img.json", [mmpose_instance(coco[0], scores[0])]))
    assert len(track) == 1
    check_joints(track, coco, scores)


def test_alphapose_halpe26_as_motionbert_reads_it(tmp_path):
    coco, scores = coco_track()
    rng = np.random.default_rng(1)
    extra = 500 + 50 * rng.standard_normal((T, 9, 3))  # Head, Neck, Hip, feet: not used by the mapping
    halpe = np.concatenate([np.concatenate([coco, scores[..., None]], axis=-1), extra], axis=1)
    data = [{"image_id": f"{t}.jpg", "category_id": 1, "keypoints": halpe[t].reshape(-1).tolist(), "score": 2.5,
             "box": [1.0, 2.0, 300.0, 400.0], "idx": 1} for t in range(T)]
    path = write_json(tmp_path / "alphapose-results.json", data)
    assert detect_format(path) == "alphapose"
    track = read_keypoints(path)
    assert track.layout == "halpe26"
    check_joints(track, coco, scores)
    assert track.frame_ids.tolist() == list(range(T))


def test_alphapose_coco17_and_frames_with_nobody_interpolated(tmp_path):
    coco, scores = coco_track()
    flat = np.concatenate([coco, scores[..., None]], axis=-1).reshape(T, -1)
    data = [{"image_id": f"{t}.jpg", "keypoints": flat[t].tolist(), "score": 1.0, "box": [0, 0, 10, 10]}
            for t in range(T) if t not in (2, 3)]  # AlphaPose writes nothing for a frame with nobody
    track = read_keypoints(write_json(tmp_path / "ap.json", data))
    assert track.missing_frames.tolist() == [False, False, True, True, False, False]
    expected, _ = h36m_reference(coco, scores)
    for t, w in ((2, 1 / 3), (3, 2 / 3)):
        np.testing.assert_allclose(track.keypoints[t], (1 - w) * expected[1] + w * expected[4], atol=1e-3)
    assert (track.scores[[2, 3]] == 0).all() and track.filled[[2, 3]].all()
    assert track.person_indices.tolist() == [0, 0, -1, -1, 0, 0]


def test_openpose_body25_folder(tmp_path):
    coco, scores = coco_track()
    folder = write_openpose_folder(tmp_path / "openpose", coco, scores)
    assert detect_format(folder) == "openpose"
    track = read_keypoints(folder)
    assert track.layout == "body25"
    check_joints(track, coco, scores)


def test_openpose_coco18_and_an_undetected_joint_is_filled(tmp_path):
    coco, scores = coco_track()
    coco[3, COCO_KEYPOINTS.index("LWrist")] = 0.0  # OpenPose writes an undetected joint as 0, 0, 0
    scores[3, COCO_KEYPOINTS.index("LWrist")] = 0.0
    track = read_keypoints(write_openpose_folder(tmp_path / "op18", coco, scores, names=OPENPOSE18_KEYPOINTS))
    assert track.layout == "openpose18"
    j = JOINT_NAMES.index("LWrist")
    i = COCO_KEYPOINTS.index("LWrist")
    np.testing.assert_allclose(track.keypoints[3, j], (coco[2, i] + coco[4, i]) / 2, atol=1e-3)
    assert track.filled[3, j] and track.filled.sum() == 1 and not track.missing_frames.any()


def test_videopose3d_custom_npz(tmp_path):
    coco, _ = coco_track()
    path = str(tmp_path / "data_2d_custom_myvideos.npz")
    metadata = {"layout_name": "coco", "num_joints": 17,
                "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
                "video_metadata": {"walk.mp4": {"w": 1920, "h": 1080}}}
    np.savez_compressed(path, positions_2d={"walk.mp4": {"custom": [coco.astype(np.float32)]}}, metadata=metadata)
    assert detect_format(path) == "npz"
    track = read_keypoints(path)
    assert (track.format, track.width, track.height, track.has_scores) == ("videopose3d", 1920.0, 1080.0, False)
    check_joints(track, coco, np.ones((T, 17)), has_scores=False)
    np.testing.assert_array_equal(track.scores, 1.0)


def test_videopose3d_with_several_videos_needs_a_choice(tmp_path):
    coco, _ = coco_track()
    path = str(tmp_path / "data_2d_custom_two.npz")
    videos = {name: {"custom": [coco.astype(np.float32)]} for name in ("a", "b")}
    np.savez_compressed(path, positions_2d=videos, metadata={"layout_name": "coco", "video_metadata": {}})
    with pytest.raises(KeypointFileError, match="holds 2 videos .*--video"):
        read_keypoints(path)
    assert len(read_keypoints(path, video="b")) == T
    with pytest.raises(KeypointFileError, match="no video 'c'"):
        read_keypoints(path, video="c")


def test_videopose3d_file_that_pickles_code_is_refused(tmp_path):
    path = str(tmp_path / "evil.npz")
    np.savez(path, positions_2d=np.array([os.system], dtype=object), metadata=np.array(0))
    with pytest.raises(UnsafeFileError):
        read_keypoints(path)


def test_h36m_npz_with_and_without_scores(tmp_path):
    rng = np.random.default_rng(3)
    kp = rng.uniform(0, 1000, (T, 17, 3)).astype(np.float32)
    with_scores = str(tmp_path / "kp3.npz")
    np.savez(with_scores, keypoints_2d=kp, width=1000, height=800)
    track = read_keypoints(with_scores)
    np.testing.assert_allclose(track.keypoints, kp[..., :2])
    np.testing.assert_allclose(track.scores, kp[..., 2])
    assert (track.width, track.height, track.layout) == (1000.0, 800.0, "h36m17")
    plain = str(tmp_path / "kp2.npz")
    np.savez(plain, poses=kp[..., :2])  # any name, as long as it is the only (T, 17, C) array
    track = read_keypoints(plain)
    assert not track.has_scores and track.width is None
    np.testing.assert_allclose(track.keypoints, kp[..., :2])


# -- people ----------------------------------------------------------------------------------------

def test_largest_box_by_default_and_person_index(tmp_path):
    coco, scores = coco_track()
    small, small_scores = coco_track(seed=5, offset=(100.0, 100.0), spread=10.0)
    frames = [{"frame_id": t, "instances": [mmpose_instance(small[t], small_scores[t]),
                                             mmpose_instance(coco[t], scores[t])]} for t in range(T)]
    path = write_json(tmp_path / "two.json", frames)
    check_joints(read_keypoints(path), coco, scores)
    assert read_keypoints(path).person_indices.tolist() == [1] * T
    check_joints(read_keypoints(path, person=0), small, small_scores)
    with pytest.raises(KeypointFileError, match="no person with index 2 in any"):
        read_keypoints(path, person=2)


def test_openpose_largest_person_by_joint_extent(tmp_path):
    coco, scores = coco_track(spread=90.0)
    small, _ = coco_track(seed=9, spread=5.0)

    def add_small(t, people):
        flat = np.array(people[0]["pose_keypoints_2d"]).reshape(-1, 3)
        flat[:, :2] = small[t, 0] + (flat[:, :2] - flat[:, :2].mean(axis=0)) * 0.05
        return [{"pose_keypoints_2d": flat.reshape(-1).tolist()}] + people

    track = read_keypoints(write_openpose_folder(tmp_path / "op", coco, scores, people_per_frame=add_small))
    check_joints(track, coco, scores)


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("[]", "empty list"),
    ('{"something": 1}', "unknown keypoint JSON layout"),
    ("not json at all", "not valid JSON"),
    ('[{"image_id": "0.jpg", "keypoints": [1, 2, 3, 4, 5, 6]}]', "6 keypoint values; expected"),
    ('[{"frame_id": 0, "instances": [{"keypoints": [[1, 2], [3, 4]], "keypoint_scores": [1, 1]}]}]',
     "2 joints per instance"),
    ('[{"frame_id": 0, "instances": []}]', "nobody in any of its 1 frames"),
])
def test_bad_files_get_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(KeypointFileError, match=message):
        read_keypoints(str(path))


def test_unknown_format(tmp_path):
    path = tmp_path / "detections.txt"
    path.write_text("frame 0: 1 2 3")
    with pytest.raises(KeypointFileError, match="unknown keypoint format"):
        read_keypoints(str(path))
    with pytest.raises(KeypointFileError, match="no such file or folder"):
        read_keypoints(str(tmp_path / "absent.json"))


def test_joints_that_do_not_fit_npz(tmp_path):
    path = str(tmp_path / "k.npz")
    np.savez(path, keypoints_2d=np.zeros((4, 16, 2)))
    with pytest.raises(KeypointFileError, match=r"\(4, 16, 2\); expected \(T, 17, 2\)"):
        read_keypoints(path)


def test_a_joint_never_detected_is_refused(tmp_path):
    coco, scores = coco_track()
    coco[:, COCO_KEYPOINTS.index("RAnkle")] = 0.0
    scores[:, COCO_KEYPOINTS.index("RAnkle")] = 0.0
    with pytest.raises(KeypointFileError, match="joint RFoot never detected"):
        read_keypoints(write_openpose_folder(tmp_path / "op", coco, scores))


def test_empty_openpose_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeypointFileError, match="no .json files"):
        read_keypoints(str(tmp_path / "empty"))


# -- model input -----------------------------------------------------------------------------------

def test_network_input_normalises_like_videopose3d_and_adds_scores():
    coco, scores = coco_track(2)
    from hourglass_tokenizer.data.keypoints import Keypoints2D
    kp, sc = to_h36m(coco, scores, "coco17")
    track = Keypoints2D(kp, sc, np.arange(2), np.zeros(2, bool), np.zeros((2, 17), bool), np.zeros(2, np.int64))
    two = network_input(track, 1920, 1080)
    np.testing.assert_allclose(two[..., 0], kp[..., 0] / 1920 * 2 - 1, rtol=1e-6)
    np.testing.assert_allclose(two[..., 1], kp[..., 1] / 1920 * 2 - 1080 / 1920, rtol=1e-6)
    three = network_input(track, 1920, 1080, channels=3)
    np.testing.assert_array_equal(three[..., :2], two)
    np.testing.assert_allclose(three[..., 2], sc)
    with pytest.raises(ValueError, match="channels must be 2"):
        network_input(track, 1920, 1080, channels=4)
