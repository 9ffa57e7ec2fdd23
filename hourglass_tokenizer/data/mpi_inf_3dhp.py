"""MPI-INF-3DHP through the preprocessed files that MixSTE, P-STMO, STCFormer and MotionAGFormer use,
scored as those codebases do.

The files (written by P-STMO's ``data_to_npz_3dhp.py`` / ``data_to_npz_3dhp_test.py``, which
MotionAGFormer ships as ``data/preprocess/``) are ``np.savez_compressed`` archives with one pickled
entry, ``data``:

* ``data_train_3dhp.npz``: ``data["S1 Seq1"] = [cameras, fps]`` with ``cameras = {"0": {"data_2d": (N, 17, 2),
  "data_3d": (N, 17, 3)}, "1": ..., "8": ...}`` for subjects S1-S8, sequences Seq1/Seq2 and the eight
  cameras 0, 1, 2, 4, 5, 6, 7, 8 (``annot2`` and ``univ_annot3`` of the dataset). Images 2048 x 2048.
* ``data_test_3dhp.npz``: ``data["TS1"] = {"data_2d": (N, 17, 2), "data_3d": (N, 17, 3), "valid": (N,)}`` for
  TS1-TS6; ``valid`` (the dataset's ``valid_frame``) marks the frames that are scored. TS1-TS4 are
  2048 x 2048 (studio), TS5 and TS6 1920 x 1080 (outdoors).

2D is in pixels, 3D in millimetres in the camera's coordinates, in MPI-INF-3DHP's 17-joint order
(0 head top, 1 neck, 2-4 right arm, 5-7 left arm, 8-10 right leg, 11-13 left leg, 14 pelvis, 15 spine,
16 head). The readers return Human3.6M order (:data:`H36M_FROM_3DHP`, the correspondence
MotionAGFormer uses), 2D normalised as VideoPose3D does (``x / w * 2 - [1, h / w]``) with each
sequence's image size, and 3D in **metres**, relative to the pelvis, like the rest of the package.

Scores (:func:`hourglass_tokenizer.training.evaluate_3dhp`), as the codebases compute them: over valid frames only, root-relative
poses (the prediction's pelvis subtracted), MPJPE over the 17 joints, PCK (error below 150 mm) and AUC
(mean PCK over 0, 5, ..., 150 mm) over the 14 joints of MPI-INF-3DHP's evaluation
(:data:`PCK_JOINTS`: head top, neck, shoulders, elbows, wrists, hips, knees, ankles; not the pelvis,
spine and head), as its ``mpii_compute_3d_pck.m`` counts them.

The files are pickled; they are read with :func:`hourglass_tokenizer.files.load_npz`, which unpickles
plain data and numpy arrays only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..files import FileReadError, load_npz
from .cameras import normalize_screen_coordinates
from .readers import DataFileNotFoundError, DataLayoutError
from .skeleton import JOINT_NAMES, NUM_JOINTS, ROOT_JOINT
from .windows import PoseWindowDataset, with_input_channels

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["TRAIN_FILE", "TEST_FILE", "H36M_FROM_3DHP", "PCK_JOINTS", "TEST_IMAGE_SIZES", "TRAIN_IMAGE_SIZE",
           "ThreeDHPSequence", "load_3dhp_train", "load_3dhp_test", "make_3dhp_datasets"]

TRAIN_FILE = "data_train_3dhp.npz"
TEST_FILE = "data_test_3dhp.npz"
#: ``H36M_FROM_3DHP[i]`` is the MPI-INF-3DHP joint that Human3.6M joint ``i`` takes.
H36M_FROM_3DHP: Tuple[int, ...] = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
#: The joints (Human3.6M indices) of MPI-INF-3DHP's PCK and AUC: all but the pelvis, spine and neck/nose.
PCK_JOINTS: Tuple[int, ...] = tuple(j for j in range(NUM_JOINTS)
                                    if JOINT_NAMES[j] not in ("Hip", "Spine", "Neck/Nose"))
TRAIN_IMAGE_SIZE: Tuple[int, int] = (2048, 2048)
#: (width, height) of each test sequence's images.
TEST_IMAGE_SIZES: Dict[str, Tuple[int, int]] = {"TS1": (2048, 2048), "TS2": (2048, 2048), "TS3": (2048, 2048),
                                                "TS4": (2048, 2048), "TS5": (1920, 1080), "TS6": (1920, 1080)}
MM_PER_M = 1000.0
HINT = ("prepare the files from the MPI-INF-3DHP release (vcai.mpi-inf.mpg.de/3dhp-dataset) with P-STMO's or "
        "MotionAGFormer's data_to_npz_3dhp.py and data_to_npz_3dhp_test.py")


@dataclass
class ThreeDHPSequence:
    """One recording seen by one camera, in Human3.6M joint order.

    ``keypoints_2d`` ``(N, 17, 2)`` normalised screen coordinates; ``positions_3d`` ``(N, 17, 3)`` metres,
    camera frame, pelvis at 0; ``valid`` ``(N,)`` the scored frames (all frames for training sequences).
    """

    name: str
    camera: str
    keypoints_2d: np.ndarray
    positions_3d: np.ndarray
    valid: np.ndarray
    image_size: Tuple[int, int]

    @property
    def pair(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(keypoints_2d, positions_3d)``, the form :class:`~hourglass_tokenizer.data.PoseWindowDataset` takes."""
        return self.keypoints_2d, self.positions_3d


def _load(path: PathLike) -> Dict[str, Any]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFileNotFoundError(f"MPI-INF-3DHP file not found: {path!r}; {HINT}")
    try:
        arrays = load_npz(path)
    except FileReadError as exc:
        raise DataLayoutError(str(exc)) from None
    data = arrays.get("data")
    if data is None or data.dtype != object or data.shape != () or not isinstance(data.item(), dict):
        raise DataLayoutError(f"{path}: expected one pickled dict under 'data' (P-STMO's 3DHP layout), found keys "
                              f"{sorted(arrays)}")
    if not data.item():
        raise DataLayoutError(f"{path}: 'data' holds no sequence")
    return data.item()


def _sequence(entry: Any, where: str, name: str, camera: str, size: Tuple[int, int],
              valid: Optional[np.ndarray]) -> ThreeDHPSequence:
    if not isinstance(entry, dict) or "data_2d" not in entry or "data_3d" not in entry:
        raise DataLayoutError(f"{where}: expected a dict with data_2d and data_3d")
    kp = np.asarray(entry["data_2d"], np.float64)
    pos = np.asarray(entry["data_3d"], np.float64)
    if kp.shape[1:] != (NUM_JOINTS, 2) or pos.shape[1:] != (NUM_JOINTS, 3) or len(kp) != len(pos) or not len(kp):
        raise DataLayoutError(f"{where}: data_2d {kp.shape} and data_3d {pos.shape}; expected (N, 17, 2) and "
                              "(N, 17, 3) with the same N >= 1")
    order = list(H36M_FROM_3DHP)
    kp, pos = kp[:, order], pos[:, order] / MM_PER_M
    pos -= pos[:, ROOT_JOINT:ROOT_JOINT + 1]
    flags = np.ones(len(kp), bool) if valid is None else np.asarray(valid).reshape(-1).astype(bool)
    if len(flags) != len(kp):
        raise DataLayoutError(f"{where}: {len(flags)} valid flags for {len(kp)} frames")
    return ThreeDHPSequence(name, camera, normalize_screen_coordinates(kp, *size).astype(np.float32),
                            pos.astype(np.float32), flags, size)


def load_3dhp_train(path: PathLike) -> List[ThreeDHPSequence]:
    """Every (recording, camera) of ``data_train_3dhp.npz``, sorted by name and camera.

    Raises:
        DataFileNotFoundError: no file at ``path``.
        DataLayoutError: not the layout the module docstring describes.
    """
    data = _load(path)
    sequences = []
    for name in sorted(data):
        entry = data[name]
        cameras = entry[0] if isinstance(entry, (list, tuple)) and entry else entry
        if not isinstance(cameras, dict):
            raise DataLayoutError(f"{os.fspath(path)} [{name}]: expected [{{camera: {{data_2d, data_3d}}}}, fps]")
        for camera in sorted(cameras, key=lambda c: (len(str(c)), str(c))):
            sequences.append(_sequence(cameras[camera], f"{os.fspath(path)} [{name} camera {camera}]", str(name),
                                       str(camera), TRAIN_IMAGE_SIZE, None))
    return sequences


def load_3dhp_test(path: PathLike) -> List[ThreeDHPSequence]:
    """The test sequences TS1-TS6 of ``data_test_3dhp.npz`` with their ``valid`` flags and image sizes.

    Raises:
        DataFileNotFoundError: no file at ``path``.
        DataLayoutError: not the layout the module docstring describes, or an unknown sequence name.
    """
    data = _load(path)
    sequences = []
    for name in sorted(data):
        if name not in TEST_IMAGE_SIZES:
            raise DataLayoutError(f"{os.fspath(path)}: unknown test sequence {name!r} (expected "
                                  f"{', '.join(TEST_IMAGE_SIZES)}): its image size is not known")
        entry = data[name]
        if not isinstance(entry, dict) or "valid" not in entry:
            raise DataLayoutError(f"{os.fspath(path)} [{name}]: expected a dict with data_2d, data_3d and valid")
        sequences.append(_sequence(entry, f"{os.fspath(path)} [{name}]", name, "", TEST_IMAGE_SIZES[name],
                                   entry["valid"]))
    return sequences


def make_3dhp_datasets(data_dir: PathLike, num_frames: int, *, train_stride: int = 9, flip: bool = True,
                       max_train_clips: Optional[int] = None, max_test_clips: Optional[int] = None,
                       input_channels: int = 2) -> Tuple[PoseWindowDataset, PoseWindowDataset, List[ThreeDHPSequence]]:
    """Training windows and test sequences from ``data_dir``'s ``data_train_3dhp.npz`` and ``data_test_3dhp.npz``.

    Returns ``(train PoseWindowDataset, test PoseWindowDataset, test sequences)``. The trainer's own
    evaluation scores the test set's every frame; :func:`~hourglass_tokenizer.training.evaluate_3dhp` on the test sequences scores the
    valid frames only, as the benchmark does. ``max_*_clips`` keep the first few sequences (smoke tests);
    ``input_channels`` 3 appends a confidence of 1 to each 2D keypoint
    (:func:`~hourglass_tokenizer.data.windows.with_input_channels`).
    """
    train = load_3dhp_train(os.path.join(data_dir, TRAIN_FILE))[:max_train_clips]
    test = load_3dhp_test(os.path.join(data_dir, TEST_FILE))[:max_test_clips]
    return (PoseWindowDataset(with_input_channels([s.pair for s in train], input_channels), num_frames,
                              stride=train_stride, flip=flip),
            PoseWindowDataset(with_input_channels([s.pair for s in test], input_channels), num_frames,
                              stride=num_frames), test)
