"""2D keypoints as pose detectors write them, read into the 17-joint Human3.6M skeleton.

:func:`read_keypoints` reads one person's 2D track from these files (``format="auto"`` tells them
apart by their content):

==============  ==================================================================================
format          layout
==============  ==================================================================================
``npz``         an ``.npz`` with one ``(T, 17, 2)`` or ``(T, 17, 3)`` array (x, y[, score]) in
                Human3.6M order, pixels; optional ``width``/``height`` scalars and ``frame_ids``.
``mmpose``      MMPose JSON (also RTMPose and ViTPose through MMPose), COCO-17 order, pixels:
                the demo scripts' ``{"meta_info", "instance_info": [{"frame_id", "instances"}]}``,
                the inferencer's video file ``[{"frame_id", "instances"}, ...]``, a plain list of
                frames ``[[instance, ...], ...]``, or one image's ``[instance, ...]``. An instance
                is ``{"keypoints": [[x, y], ...], "keypoint_scores": [...], "bbox", "bbox_score"}``.
``openpose``    an OpenPose ``--write_json`` folder: one ``*_keypoints.json`` per frame (ordered by
                the frame number in the name), ``{"people": [{"pose_keypoints_2d": [x, y, c, ...]}]}``
                with BODY_25 (75 values) or COCO-18 (54 values); undetected joints are ``0, 0, 0``.
``alphapose``   AlphaPose's ``alphapose-results.json`` (the COCO results format): a list of
                ``{"image_id", "keypoints": [x, y, c, ...], "score", "box": [x, y, w, h], "idx"}``,
                one entry per detected person, Halpe-26 (78 values, what MotionBERT's in-the-wild
                script reads), COCO-17 (51), Halpe-136 or COCO-WholeBody (their first 26 / 17 are
                the body). Frames with nobody have no entry: numeric image ids reveal them.
``videopose3d`` VideoPose3D's ``data_2d_custom_*.npz`` (``data/prepare_data_2d_custom.py``):
                ``positions_2d`` = ``{video: {"custom": [(T, 17, 2)]}}`` in COCO order (or
                Human3.6M order when ``metadata["layout_name"]`` says ``h36m``), no scores, and
                ``metadata["video_metadata"][video]`` = ``{"w", "h"}``. Pickled: read with the
                restricted unpickler of :func:`hourglass_tokenizer.files.load_npz`.
==============  ==================================================================================

**Joint mapping** (:data:`H36M_FROM_DETECTOR`, one convention for every detector layout, so a model
sees the same skeleton whichever detector made its input): each Human3.6M joint is the mean of
named detector joints; pelvis = mid-hips, thorax = mid-shoulders, spine = midpoint of pelvis and
thorax, neck/nose = nose, head = mid-eyes, limbs one to one (foot = ankle). The extra joints some
layouts have (Halpe's ``Head``/``Neck``/``Hip``, BODY_25's ``Neck``/``MidHip``) are not used.
A derived joint's score is the **minimum** of its sources' scores: it is only as reliable as its
least reliable source.

**People.** One person per frame: the one with the largest box (``person=None``; the box is the
detector's, else the extent of the detected joints) or the ``person``-th entry of each frame in
file order.

**Gaps.** A frame where nobody (or not the chosen person) was found, and a joint a detector marks as
undetected (``0, 0, 0``), is filled by linear interpolation over time between the nearest frames
where it was seen (held constant before the first and after the last); its score becomes 0 and
:attr:`Keypoints2D.missing_frames` / :attr:`Keypoints2D.filled` report it. A file where nobody is
ever found, or where a joint is never detected, is refused (:class:`KeypointFileError`).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..files import FileReadError, load_npz
from .cameras import normalize_screen_coordinates
from .readers import DataLayoutError
from .skeleton import JOINT_NAMES, NUM_JOINTS

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["COCO_KEYPOINTS", "HALPE26_KEYPOINTS", "BODY25_KEYPOINTS", "OPENPOSE18_KEYPOINTS", "LAYOUTS",
           "H36M_FROM_DETECTOR", "FORMATS", "KeypointFileError", "Keypoints2D", "mapping_matrix", "to_h36m",
           "fill_gaps", "read_keypoints", "detect_format", "network_input"]

COCO_KEYPOINTS: Tuple[str, ...] = (
    "Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist",
    "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle")
HALPE26_KEYPOINTS: Tuple[str, ...] = COCO_KEYPOINTS + (
    "Head", "Neck", "Hip", "LBigToe", "RBigToe", "LSmallToe", "RSmallToe", "LHeel", "RHeel")
BODY25_KEYPOINTS: Tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip", "RKnee",
    "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel",
    "RBigToe", "RSmallToe", "RHeel")
OPENPOSE18_KEYPOINTS: Tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip", "RKnee", "RAnkle",
    "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar")

#: Joint names of each layout, by layout name.
LAYOUTS: Dict[str, Tuple[str, ...]] = {"coco17": COCO_KEYPOINTS, "halpe26": HALPE26_KEYPOINTS,
                                       "body25": BODY25_KEYPOINTS, "openpose18": OPENPOSE18_KEYPOINTS,
                                       "h36m17": JOINT_NAMES}

#: Each Human3.6M joint (in :data:`~hourglass_tokenizer.data.skeleton.JOINT_NAMES` order) as the mean of
#: these detector joints. Spine, the midpoint of pelvis (mid-hips) and thorax (mid-shoulders), is the
#: mean of the four.
H36M_FROM_DETECTOR: Dict[str, Tuple[str, ...]] = {
    "Hip": ("LHip", "RHip"), "RHip": ("RHip",), "RKnee": ("RKnee",), "RFoot": ("RAnkle",),
    "LHip": ("LHip",), "LKnee": ("LKnee",), "LFoot": ("LAnkle",),
    "Spine": ("LHip", "RHip", "LShoulder", "RShoulder"), "Thorax": ("LShoulder", "RShoulder"),
    "Neck/Nose": ("Nose",), "Head": ("LEye", "REye"),
    "LShoulder": ("LShoulder",), "LElbow": ("LElbow",), "LWrist": ("LWrist",),
    "RShoulder": ("RShoulder",), "RElbow": ("RElbow",), "RWrist": ("RWrist",),
}

FORMATS: Tuple[str, ...] = ("npz", "mmpose", "openpose", "alphapose", "videopose3d")

#: Layout of a detector's flat or per-joint keypoint list, by its number of joints: whole-body layouts
#: start with their body layout (COCO-WholeBody with COCO-17, Halpe-136 with Halpe-26).
_LAYOUT_BY_COUNT: Dict[int, Tuple[str, int]] = {17: ("coco17", 17), 26: ("halpe26", 26), 133: ("coco17", 17),
                                                136: ("halpe26", 26)}


class KeypointFileError(DataLayoutError):
    """A keypoint file that is empty, of an unknown format, or whose joints do not fit the skeleton."""


@dataclass
class Keypoints2D:
    """One person's 2D track in Human3.6M joint order, gaps filled.

    Attributes:
        keypoints: ``(T, 17, 2)`` float32 pixels.
        scores: ``(T, 17)`` float32 detector scores (derived joints: the minimum of their sources;
            filled points: 0; ones when the file has no scores, see ``has_scores``).
        frame_ids: ``(T,)`` int64 frame numbers as the file gives them (consecutive when it has none).
        missing_frames: ``(T,)`` bool, frames where no person (or not the chosen one) was found.
        filled: ``(T, 17)`` bool, points filled by interpolation (all of a missing frame's points, and
            joints the detector marked as undetected).
        person_indices: ``(T,)`` int64, which entry of each frame was used (-1: none).
        width, height: the image size in pixels when the file records it, else ``None``.
        format: the file format (one of :data:`FORMATS`); layout: the detector's joint layout (a key of
            :data:`LAYOUTS`); has_scores: whether the file has confidence scores.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    frame_ids: np.ndarray
    missing_frames: np.ndarray
    filled: np.ndarray
    person_indices: np.ndarray
    width: Optional[float] = None
    height: Optional[float] = None
    format: str = ""
    layout: str = "h36m17"
    has_scores: bool = True
    source: str = field(default="", repr=False)

    def __len__(self) -> int:
        return len(self.keypoints)


# -- joint mapping ---------------------------------------------------------------------------------

def mapping_matrix(layout: str) -> np.ndarray:
    """``(17, J)`` weights: Human3.6M joint ``i`` is ``matrix[i] @ detector_joints`` (rows sum to 1)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {layout!r}; known: {sorted(LAYOUTS)}")
    names = LAYOUTS[layout]
    matrix = np.zeros((NUM_JOINTS, len(names)), np.float64)
    if layout == "h36m17":
        return np.eye(NUM_JOINTS)
    index = {name: j for j, name in enumerate(names)}
    for i, joint in enumerate(JOINT_NAMES):
        sources = H36M_FROM_DETECTOR[joint]
        for name in sources:
            matrix[i, index[name]] = 1.0 / len(sources)
    return matrix


def to_h36m(keypoints: np.ndarray, scores: np.ndarray, layout: str) -> Tuple[np.ndarray, np.ndarray]:
    """Map ``(..., J, 2)`` keypoints and ``(..., J)`` scores of ``layout`` to Human3.6M's 17 joints.

    A derived joint is the mean of its sources (:data:`H36M_FROM_DETECTOR`) and its score the minimum
    of theirs; NaN (undetected) in any source makes the derived joint NaN.
    """
    matrix = mapping_matrix(layout)
    keypoints = np.asarray(keypoints, np.float64)
    scores = np.asarray(scores, np.float64)
    if keypoints.shape[-2] != matrix.shape[1] or scores.shape[-1] != matrix.shape[1]:
        raise KeypointFileError(f"{layout} has {matrix.shape[1]} joints; got keypoints {keypoints.shape} and scores "
                                f"{scores.shape}")
    used = matrix > 0
    undetected = np.isnan(keypoints).any(axis=-1)
    mapped = np.einsum("ij,...jc->...ic", matrix, np.where(undetected[..., None], 0.0, keypoints))
    mapped[(undetected.astype(np.float64) @ used.T) > 0] = np.nan
    # min over each joint's sources; a NaN source propagates (np.min keeps NaN)
    mapped_scores = np.stack([scores[..., row].min(axis=-1) for row in used], axis=-1)
    return mapped.astype(np.float32), mapped_scores.astype(np.float32)


# -- gaps ------------------------------------------------------------------------------------------

def fill_gaps(keypoints: np.ndarray, scores: np.ndarray, *, where: str = "") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill NaN points ``(T, J, 2)`` by linear interpolation over time, joint by joint.

    Before the first and after the last frame where a joint is seen its nearest value is held.
    Returns ``(keypoints, scores, filled)``: filled points get score 0; ``filled`` ``(T, J)`` marks them.

    Raises:
        KeypointFileError: a joint is NaN in every frame.
    """
    keypoints = np.array(keypoints, np.float32)
    scores = np.array(scores, np.float32)
    filled = np.isnan(keypoints).any(axis=-1) | np.isnan(scores)
    never = [JOINT_NAMES[j] if keypoints.shape[1] == NUM_JOINTS else str(j)
             for j in range(keypoints.shape[1]) if filled[:, j].all()]
    if never:
        raise KeypointFileError(f"{where}joint{'s' if len(never) > 1 else ''} {', '.join(never)} never detected, in "
                                f"any of the {len(keypoints)} frames; the lifting model needs all {keypoints.shape[1]}")
    frames = np.arange(len(keypoints))
    for j in np.flatnonzero(filled.any(axis=0)):
        seen = ~filled[:, j]
        for c in range(keypoints.shape[2]):
            keypoints[:, j, c] = np.interp(frames, frames[seen], keypoints[seen, j, c])
    scores[filled] = 0.0
    return keypoints, scores, filled


# -- people ----------------------------------------------------------------------------------------

@dataclass
class _Person:
    keypoints: np.ndarray  # (J, 2), NaN where undetected
    scores: np.ndarray  # (J,)
    box_area: float


def _box_area(box: Any, keypoints: np.ndarray, box_is_xywh: bool) -> float:
    """The area of a detector box (``[x1, y1, x2, y2]``, ``[[x1, y1, x2, y2]]`` or ``[x, y, w, h]``), or
    of the detected joints' extent when there is no box."""
    if box is not None:
        flat = np.asarray(box, np.float64).reshape(-1)
        if flat.size >= 4 and np.all(np.isfinite(flat[:4])):
            w, h = (flat[2], flat[3]) if box_is_xywh else (flat[2] - flat[0], flat[3] - flat[1])
            return float(abs(w * h))
    seen = keypoints[~np.isnan(keypoints).any(axis=-1)]
    if len(seen) == 0:
        return 0.0
    extent = seen.max(axis=0) - seen.min(axis=0)
    return float(extent[0] * extent[1])


def _undetected_to_nan(xy: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Detectors write an undetected joint as ``0, 0`` with score 0: make it NaN."""
    xy = np.array(xy, np.float64)
    xy[(xy[:, 0] == 0) & (xy[:, 1] == 0) & (scores == 0)] = np.nan
    return xy


def _choose(people: Sequence[_Person], person: Optional[int]) -> Tuple[Optional[_Person], int]:
    if person is not None:
        return (people[person], person) if person < len(people) else (None, -1)
    if not people:
        return None, -1
    best = int(np.argmax([p.box_area for p in people]))
    return people[best], best


def _assemble(frames: Sequence[Tuple[int, List[_Person]]], layout: str, person: Optional[int], *,
              fmt: str, source: str, fill_frame_gaps: bool, has_scores: bool = True,
              width: Optional[float] = None, height: Optional[float] = None) -> Keypoints2D:
    """One person per frame, mapped to Human3.6M and gap-filled. ``frames`` are ``(frame id, people)``;
    with ``fill_frame_gaps`` frame ids absent between the first and last are frames with nobody."""
    if person is not None and person < 0:
        raise ValueError(f"person must be >= 0, got {person}")
    if not frames:
        raise KeypointFileError(f"{source}: no frames")
    by_id: Dict[int, List[_Person]] = {}
    for frame_id, people in frames:
        by_id.setdefault(int(frame_id), []).extend(people)
    ids = sorted(by_id)
    if fill_frame_gaps:
        ids = list(range(ids[0], ids[-1] + 1))
    num_joints = len(LAYOUTS[layout])
    xy = np.full((len(ids), num_joints, 2), np.nan)
    sc = np.full((len(ids), num_joints), np.nan)
    chosen = np.full(len(ids), -1, np.int64)
    for t, frame_id in enumerate(ids):
        found, index = _choose(by_id.get(frame_id, []), person)
        if found is not None:
            xy[t], sc[t], chosen[t] = found.keypoints, found.scores, index
    missing = chosen < 0
    if missing.all():
        who = "nobody" if person is None else f"no person with index {person}"
        raise KeypointFileError(f"{source}: {who} in any of its {len(ids)} frames")
    xy[np.isnan(sc)] = np.nan
    sc[np.isnan(xy).any(axis=-1)] = np.nan
    mapped, mapped_scores = to_h36m(xy, sc, layout)
    keypoints, scores, filled = fill_gaps(mapped, mapped_scores, where=f"{source}: ")
    return Keypoints2D(keypoints, scores, np.asarray(ids, np.int64), missing, filled, chosen, width, height,
                       fmt, layout, has_scores, source)


def _layout_of_count(count: int, where: str, what: str) -> Tuple[str, int]:
    if count not in _LAYOUT_BY_COUNT:
        raise KeypointFileError(f"{where}: {count} joints per {what}; expected 17 (COCO), 26 (Halpe), 133 "
                                f"(COCO-WholeBody) or 136 (Halpe-136)")
    return _LAYOUT_BY_COUNT[count]


# -- JSON formats ----------------------------------------------------------------------------------

def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fp:
            text = fp.read()
    except OSError as exc:
        raise KeypointFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not text.strip():
        raise KeypointFileError(f"{path}: empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeypointFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _mmpose_instance(inst: Any, where: str) -> Tuple[_Person, str]:
    if not isinstance(inst, dict) or "keypoints" not in inst:
        raise KeypointFileError(f"{where}: an instance without 'keypoints'")
    kp = np.asarray(inst["keypoints"], np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise KeypointFileError(f"{where}: 'keypoints' should be [[x, y], ...], got shape {kp.shape}")
    if "keypoint_scores" in inst:
        scores = np.asarray(inst["keypoint_scores"], np.float64).reshape(-1)
    elif kp.shape[1] == 3:
        scores = kp[:, 2]
    else:
        scores = np.ones(len(kp))
    if len(scores) != len(kp):
        raise KeypointFileError(f"{where}: {len(kp)} keypoints but {len(scores)} keypoint_scores")
    layout, n = _layout_of_count(len(kp), where, "instance")
    xy = _undetected_to_nan(kp[:n, :2], scores[:n])
    return _Person(xy, scores[:n], _box_area(inst.get("bbox"), xy, box_is_xywh=False)), layout


def _read_mmpose(data: Any, path: str, person: Optional[int]) -> Keypoints2D:
    if isinstance(data, dict):
        frames_raw = data["instance_info"]
    elif data and all(isinstance(item, dict) and "instances" in item for item in data):
        frames_raw = data
    elif data and all(isinstance(item, list) for item in data):
        frames_raw = [{"frame_id": i, "instances": item} for i, item in enumerate(data)]
    else:  # one image's list of instances
        frames_raw = [{"frame_id": 0, "instances": data}]
    frames, layouts = [], set()
    for i, frame in enumerate(frames_raw):
        where = f"{path} frame {frame.get('frame_id', i)}"
        people = []
        for inst in frame.get("instances") or []:
            found, layout = _mmpose_instance(inst, where)
            people.append(found)
            layouts.add(layout)
        frames.append((int(frame.get("frame_id", i)), people))
    if len(layouts) > 1:
        raise KeypointFileError(f"{path}: instances with different joint layouts {sorted(layouts)}")
    return _assemble(frames, layouts.pop() if layouts else "coco17", person, fmt="mmpose", source=path,
                     fill_frame_gaps=True)


def _number_in(name: Any) -> Optional[int]:
    """The frame number of an image id or file name: an int, or the last run of digits in the name."""
    if isinstance(name, (int, np.integer)):
        return int(name)
    digits = re.findall(r"\d+", os.path.splitext(os.path.basename(str(name)))[0])
    return int(digits[-1]) if digits else None


def _flat_person(values: Any, where: str, layouts: Dict[int, Tuple[str, int]]) -> Tuple[np.ndarray, np.ndarray, str]:
    flat = np.asarray(values, np.float64).reshape(-1)
    if flat.size % 3:
        raise KeypointFileError(f"{where}: {flat.size} keypoint values, not a multiple of 3 (x, y, score)")
    if flat.size // 3 not in layouts:
        known = ", ".join(f"{n * 3} ({layout})" for n, (layout, _) in sorted(layouts.items()))
        raise KeypointFileError(f"{where}: {flat.size} keypoint values; expected {known}")
    layout, n = layouts[flat.size // 3]
    kp = flat.reshape(-1, 3)[:n]
    return _undetected_to_nan(kp[:, :2], kp[:, 2]), kp[:, 2], layout


def _read_alphapose(data: List[dict], path: str, person: Optional[int]) -> Keypoints2D:
    numbers = [_number_in(item.get("image_id")) for item in data]
    numeric = all(n is not None for n in numbers)
    order: Dict[Any, int] = {}
    frames: Dict[int, List[_Person]] = {}
    layouts = set()
    for item, number in zip(data, numbers):
        key = number if numeric else order.setdefault(item.get("image_id"), len(order))
        xy, scores, layout = _flat_person(item["keypoints"], f"{path} image {item.get('image_id')}", _LAYOUT_BY_COUNT)
        layouts.add(layout)
        frames.setdefault(key, []).append(_Person(xy, scores, _box_area(item.get("box"), xy, box_is_xywh=True)))
    if len(layouts) > 1:
        raise KeypointFileError(f"{path}: people with different joint layouts {sorted(layouts)}")
    return _assemble(sorted(frames.items()), layouts.pop(), person, fmt="alphapose", source=path,
                     fill_frame_gaps=numeric)


_OPENPOSE_LAYOUTS = {25: ("body25", 25), 18: ("openpose18", 18)}


def _openpose_people(data: Any, where: str) -> Tuple[List[_Person], set]:
    if not isinstance(data, dict) or "people" not in data:
        raise KeypointFileError(f"{where}: not an OpenPose frame (no 'people')")
    people, layouts = [], set()
    for entry in data["people"]:
        xy, scores, layout = _flat_person(entry.get("pose_keypoints_2d", []), where, _OPENPOSE_LAYOUTS)
        layouts.add(layout)
        people.append(_Person(xy, scores, _box_area(None, xy, box_is_xywh=False)))
    return people, layouts


def _read_openpose(path: str, person: Optional[int]) -> Keypoints2D:
    if os.path.isdir(path):
        names = [n for n in os.listdir(path) if n.endswith(".json")]
        if not names:
            raise KeypointFileError(f"{path}: no .json files (expected OpenPose's one *_keypoints.json per frame)")
        numbers = [_number_in(n.replace("_keypoints", "")) for n in names]
        numeric = all(n is not None for n in numbers)
        files = sorted(zip(numbers, names)) if numeric else list(enumerate(sorted(names)))
    else:  # one frame's file
        files, numeric = [(0, path)], False
    frames, layouts = [], set()
    for number, name in files:
        full = os.path.join(path, name) if os.path.isdir(path) else name
        people, found = _openpose_people(_load_json(full), full)
        layouts |= found
        frames.append((number, people))
    if len(layouts) > 1:
        raise KeypointFileError(f"{path}: frames with different joint layouts {sorted(layouts)}")
    return _assemble(frames, layouts.pop() if layouts else "body25", person, fmt="openpose", source=path,
                     fill_frame_gaps=numeric)


# -- npz formats -----------------------------------------------------------------------------------

_ARRAY_KEYS = ("keypoints_2d", "keypoints", "kp2d", "positions_2d")


def _scalar(arrays: Dict[str, np.ndarray], key: str) -> Optional[float]:
    value = arrays.get(key)
    return float(np.asarray(value).reshape(-1)[0]) if value is not None and np.asarray(value).size == 1 else None


def _read_h36m_npz(arrays: Dict[str, np.ndarray], path: str) -> Keypoints2D:
    key = next((k for k in _ARRAY_KEYS if k in arrays), None)
    if key is None:
        candidates = [k for k, v in arrays.items() if v.dtype != object and v.ndim == 3]
        if len(candidates) != 1:
            raise KeypointFileError(f"{path}: expected one (T, 17, 2) or (T, 17, 3) keypoint array (e.g. under "
                                    f"'keypoints_2d'); found {', '.join(f'{k} {v.shape}' for k, v in arrays.items())}")
        key = candidates[0]
    kp = np.asarray(arrays[key], np.float64)
    if kp.ndim != 3 or kp.shape[1] != NUM_JOINTS or kp.shape[2] not in (2, 3):
        raise KeypointFileError(f"{path} [{key}]: keypoints of shape {kp.shape}; expected (T, 17, 2) or (T, 17, 3) "
                                "in Human3.6M joint order")
    if len(kp) == 0:
        raise KeypointFileError(f"{path} [{key}]: no frames")
    has_scores = kp.shape[2] == 3
    scores = kp[..., 2] if has_scores else np.ones(kp.shape[:2])
    frame_ids = np.asarray(arrays.get("frame_ids", np.arange(len(kp))), np.int64).reshape(-1)
    if len(frame_ids) != len(kp):
        raise KeypointFileError(f"{path}: {len(frame_ids)} frame_ids for {len(kp)} frames")
    xy = kp[..., :2].copy()
    missing = np.isnan(xy).all(axis=(1, 2))
    if missing.all():
        raise KeypointFileError(f"{path} [{key}]: every frame is NaN")
    keypoints, scores, filled = fill_gaps(xy, scores, where=f"{path}: ")
    return Keypoints2D(keypoints, scores, frame_ids, missing, filled, np.where(missing, -1, 0),
                       _scalar(arrays, "width"), _scalar(arrays, "height"), "npz", "h36m17", has_scores, path)


def _read_videopose3d(arrays: Dict[str, np.ndarray], path: str, video: Optional[str]) -> Keypoints2D:
    positions, metadata = arrays["positions_2d"], arrays["metadata"]
    positions = positions.item() if positions.dtype == object and positions.shape == () else positions
    metadata = metadata.item() if metadata.dtype == object and metadata.shape == () else metadata
    if not isinstance(positions, dict) or not isinstance(metadata, dict):
        raise KeypointFileError(f"{path}: positions_2d and metadata should be pickled dicts (VideoPose3D's layout)")
    if not positions:
        raise KeypointFileError(f"{path}: positions_2d holds no video")
    if video is None:
        if len(positions) > 1:
            raise KeypointFileError(f"{path} holds {len(positions)} videos ({', '.join(sorted(map(str, positions)))}); "
                                    "choose one with --video")
        video = next(iter(positions))
    if video not in positions:
        raise KeypointFileError(f"{path}: no video {video!r}; it holds {', '.join(sorted(map(str, positions)))}")
    entry = positions[video]
    tracks = entry.get("custom") if isinstance(entry, dict) else None
    if not tracks:
        raise KeypointFileError(f"{path}: positions_2d[{video!r}] should be {{'custom': [(T, 17, 2) array]}}")
    kp = np.asarray(tracks[0], np.float64)
    layout = "h36m17" if str(metadata.get("layout_name", "coco")).lower().startswith("h36m") else "coco17"
    if kp.ndim != 3 or kp.shape[1] != len(LAYOUTS[layout]) or kp.shape[2] < 2:
        raise KeypointFileError(f"{path}: {video} keypoints of shape {kp.shape}; expected (T, "
                                f"{len(LAYOUTS[layout])}, 2) in {layout} order")
    size = (metadata.get("video_metadata") or {}).get(video) or {}
    width, height = size.get("w"), size.get("h")
    frames = [(t, [_Person(kp[t, :, :2], np.ones(kp.shape[1]), 0.0)]) for t in range(len(kp))]
    return _assemble(frames, layout, None, fmt="videopose3d", source=path, fill_frame_gaps=False, has_scores=False,
                     width=None if width is None else float(width), height=None if height is None else float(height))


# -- entry point -----------------------------------------------------------------------------------

def detect_format(path: PathLike) -> str:
    """The format of ``path`` (one of :data:`FORMATS`) from its content.

    Raises:
        KeypointFileError: missing, empty, or none of the known formats.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return "openpose"
    if not os.path.exists(path):
        raise KeypointFileError(f"{path}: no such file or folder")
    if os.path.getsize(path) == 0:
        raise KeypointFileError(f"{path}: empty file")
    with open(path, "rb") as fp:
        head = fp.read(4)
    if head.startswith(b"PK"):
        return "npz"
    if path.lower().endswith(".json") or head.lstrip()[:1] in (b"{", b"["):
        return _json_format(_load_json(path), path)
    raise KeypointFileError(f"{path}: unknown keypoint format (expected an .npz, a JSON file or an OpenPose folder)")


def _json_format(data: Any, path: str) -> str:
    if isinstance(data, dict):
        if "instance_info" in data:
            return "mmpose"
        if "people" in data:
            return "openpose"
    elif isinstance(data, list):
        if not data:
            raise KeypointFileError(f"{path}: an empty list, no detections")
        first = data[0]
        if isinstance(first, list) or (isinstance(first, dict) and ("instances" in first or "keypoint_scores" in first)):
            return "mmpose"
        if isinstance(first, dict) and "keypoints" in first and "image_id" in first:
            return "alphapose"
        if isinstance(first, dict) and "keypoints" in first:
            return "mmpose"
    raise KeypointFileError(f"{path}: unknown keypoint JSON layout (expected MMPose's instance_info or list of "
                            "frames, AlphaPose's list of {image_id, keypoints}, or an OpenPose frame)")


def read_keypoints(path: PathLike, format: str = "auto", *, person: Optional[int] = None,
                   video: Optional[str] = None) -> Keypoints2D:
    """Read one person's 2D keypoints from a detector's output, in Human3.6M joint order, gaps filled.

    Args:
        path: a file, or an OpenPose output folder.
        format: one of :data:`FORMATS`, or ``"auto"`` (:func:`detect_format`).
        person: use the ``person``-th detection of each frame (file order); ``None``: the largest box.
        video: the video of a VideoPose3D file holding several.

    Raises:
        KeypointFileError: empty, unknown format, joints that do not fit, nobody in any frame.
        hourglass_tokenizer.files.FileReadError: an unreadable or unsafe ``.npz``.
    """
    path = os.fspath(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown keypoint format {format!r}; expected 'auto' or one of {', '.join(FORMATS)}")
    if fmt == "openpose":
        return _read_openpose(path, person)
    if fmt in ("npz", "videopose3d"):
        arrays = load_npz(path)
        if not arrays:
            raise KeypointFileError(f"{path}: an .npz with no arrays")
        is_vp3d = "positions_2d" in arrays and "metadata" in arrays
        if fmt == "videopose3d" or is_vp3d:
            if not is_vp3d:
                raise KeypointFileError(f"{path}: no positions_2d and metadata (VideoPose3D's data_2d_custom layout)")
            return _read_videopose3d(arrays, path, video)
        if person not in (None, 0):
            raise KeypointFileError(f"{path}: holds one person's keypoints; --person {person} does not apply")
        return _read_h36m_npz(arrays, path)
    data = _load_json(path)
    if fmt == "mmpose":
        if isinstance(data, dict) and "instance_info" not in data:
            raise KeypointFileError(f"{path}: no 'instance_info' (MMPose's demo layout)")
        return _read_mmpose(data, path, person)
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) and "keypoints" in d for d in data):
        raise KeypointFileError(f"{path}: expected AlphaPose's list of {{image_id, keypoints, score, box}}")
    return _read_alphapose(data, path, person)


def network_input(track: Keypoints2D, width: float, height: float, channels: int = 2) -> np.ndarray:
    """The model input ``(T, 17, channels)``: VideoPose3D's normalised screen coordinates
    (``x / w * 2 - [1, h / w]``), plus the scores as a third channel when ``channels == 3`` (ones when the
    file has no scores)."""
    if channels not in (2, 3):
        raise ValueError(f"channels must be 2 (x, y) or 3 (x, y, score), got {channels}")
    xy = normalize_screen_coordinates(track.keypoints, width, height).astype(np.float32)
    if channels == 2:
        return xy
    return np.concatenate([xy, track.scores[..., None].astype(np.float32)], axis=-1)
