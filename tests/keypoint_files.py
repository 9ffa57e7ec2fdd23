"""Detector output files written in their real layouts, and the H36M-17 skeleton expected from them,
for the keypoint reader and predict command tests."""
import json
import os

import numpy as np

from hourglass_tokenizer.data.keypoints import BODY25_KEYPOINTS, COCO_KEYPOINTS  # noqa: F401
from hourglass_tokenizer.data.skeleton import JOINT_NAMES  # noqa: F401

T = 6


def coco_track(t=T, seed=0, offset=(400.0, 300.0), spread=80.0):
    """(t, 17, 2) COCO keypoints in pixels and (t, 17) scores, distinct per joint and frame."""
    rng = np.random.default_rng(seed)
    kp = np.asarray(offset) + spread * rng.standard_normal((1, 17, 2)) + 3.0 * rng.standard_normal((t, 17, 2))
    scores = rng.uniform(0.3, 1.0, (t, 17))
    return kp, scores


def h36m_reference(coco, scores):
    """The documented mapping, joint by joint, written out by hand."""
    c = {name: coco[:, i] for i, name in enumerate(COCO_KEYPOINTS)}
    s = {name: scores[:, i] for i, name in enumerate(COCO_KEYPOINTS)}
    mid = lambda a, b: (c[a] + c[b]) / 2  # noqa: E731
    pelvis, thorax = mid("LHip", "RHip"), mid("LShoulder", "RShoulder")
    joints = [pelvis, c["RHip"], c["RKnee"], c["RAnkle"], c["LHip"], c["LKnee"], c["LAnkle"], (pelvis + thorax) / 2,
              thorax, c["Nose"], mid("LEye", "REye"), c["LShoulder"], c["LElbow"], c["LWrist"], c["RShoulder"],
              c["RElbow"], c["RWrist"]]
    lo = np.minimum
    sc = [lo(s["LHip"], s["RHip"]), s["RHip"], s["RKnee"], s["RAnkle"], s["LHip"], s["LKnee"], s["LAnkle"],
          lo(lo(s["LHip"], s["RHip"]), lo(s["LShoulder"], s["RShoulder"])), lo(s["LShoulder"], s["RShoulder"]),
          s["Nose"], lo(s["LEye"], s["REye"]), s["LShoulder"], s["LElbow"], s["LWrist"], s["RShoulder"],
          s["RElbow"], s["RWrist"]]
    return np.stack(joints, axis=1), np.stack(sc, axis=1)


def check_joints(track, coco, scores, *, has_scores=True):
    expected, expected_scores = h36m_reference(coco, scores)
    for j, name in enumerate(JOINT_NAMES):
        np.testing.assert_allclose(track.keypoints[:, j], expected[:, j], atol=1e-3, err_msg=name)
        if has_scores:
            np.testing.assert_allclose(track.scores[:, j], expected_scores[:, j], atol=1e-6, err_msg=name)


def box_of(kp, margin=10.0):
    return [float(kp[:, 0].min() - margin), float(kp[:, 1].min() - margin), float(kp[:, 0].max() + margin),
            float(kp[:, 1].max() + margin)]


def mmpose_instance(kp, sc, nested_box=True):
    box = box_of(kp)
    return {"keypoints": kp.tolist(), "keypoint_scores": sc.tolist(), "bbox": [box] if nested_box else box,
            "bbox_score": 0.95}


def write_json(path, data):
    with open(path, "w") as fp:
        json.dump(data, fp)
    return str(path)


def write_openpose_folder(folder, coco, scores, names=BODY25_KEYPOINTS, people_per_frame=None):
    os.makedirs(folder, exist_ok=True)
    for t in range(len(coco)):
        flat = np.zeros((len(names), 3))
        for j, name in enumerate(names):
            if name in COCO_KEYPOINTS:
                i = COCO_KEYPOINTS.index(name)
                flat[j] = [coco[t, i, 0], coco[t, i, 1], scores[t, i]]
            else:
                flat[j] = [123.0, 456.0, 0.4]
        people = [{"person_id": [-1], "pose_keypoints_2d": flat.reshape(-1).tolist(), "face_keypoints_2d": [],
                   "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}]
        if people_per_frame is not None:
            people = people_per_frame(t, people)
        # written out of order on purpose: the frame number in the name orders them
        write_json(os.path.join(folder, f"clip_{t:012d}_keypoints.json"), {"version": 1.3, "people": people})
    return str(folder)
