"""Readers for VideoPose3D's Human3.6M files and the shared CMU motion-capture file.

VideoPose3D layouts (``np.savez_compressed`` of pickled dicts, so they need ``allow_pickle``):

* ``data_3d_h36m.npz``: key ``positions_3d``, a dict ``subject -> action -> (N, 32, 3)`` float32 world
  positions in metres (Human3.6M's 32 mocap joints); 17 are kept (:data:`H36M_32_TO_17`).
* ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` (and the other 2D files): key ``positions_2d``, a dict
  ``subject -> action -> [camera 0..3] -> (N, 17, 2)`` float32 pixels; key ``metadata``, a dict with
  ``num_joints``, ``keypoints_symmetry`` ([left joints, right joints]) and, for detections,
  ``layout_name``. Detections may have a few more frames than the mocap; VideoPose3D trims them to
  the mocap length (:func:`align_2d_to_3d`).

Only open files you trust: unpickling runs code.

The shared CMU file (``cmu_mocap_h36m17_50fps.npz``, no pickles) holds ``positions`` (N, 17, 3) world
metres (Y up), ``clip_offsets`` (K+1,), ``clip_names`` (K,), ``split`` (K,) ``train``/``test``, ``fps``,
``joint_names``, ``parents`` and ``licence``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .skeleton import H36M_32_TO_17, NUM_JOINTS

PathLike = Union[str, os.PathLike]

#: Default location of the shared CMU file, relative to the repository root.
DEFAULT_CMU_PATH = os.path.join("..", "shared", "data", "cmu_mocap_h36m17_50fps.npz")
CMU_ACKNOWLEDGEMENT = ("The data used in this project was obtained from mocap.cs.cmu.edu. "
                       "The database was created with funding from NSF EIA-0196217.")


def _load_pickled_dict(path: PathLike, key: str):
    with np.load(path, allow_pickle=True) as data:
        if key not in data.files:
            raise KeyError(f"{path}: no key {key!r} (keys: {data.files})")
        value = data[key]
    # savez stores a dict as a 0-d object array.
    return value.item() if value.dtype == object and value.shape == () else value


def load_h36m_3d(path: PathLike, subjects: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """Read ``data_3d_h36m.npz``: ``subject -> action -> (N, 17, 3)`` float32 world metres.

    32-joint arrays are reduced to the 17 joints of :mod:`hourglass_tokenizer.data.skeleton`;
    arrays that already have 17 joints are kept as they are. ``subjects`` restricts the subjects read.
    """
    data = _load_pickled_dict(path, "positions_3d")
    out: Dict[str, Dict[str, np.ndarray]] = {}
    for subject, actions in data.items():
        if subjects is not None and subject not in subjects:
            continue
        out[subject] = {}
        for action, positions in actions.items():
            positions = np.asarray(positions, dtype=np.float32)
            if positions.ndim != 3 or positions.shape[-1] != 3:
                raise ValueError(f"{subject}/{action}: expected (N, J, 3), got {positions.shape}")
            if positions.shape[1] == 32:
                positions = positions[:, list(H36M_32_TO_17)]
            elif positions.shape[1] != NUM_JOINTS:
                raise ValueError(f"{subject}/{action}: expected 32 or 17 joints, got {positions.shape[1]}")
            out[subject][action] = np.ascontiguousarray(positions)
    return out


def load_h36m_2d(path: PathLike) -> Tuple[Dict[str, Dict[str, List[np.ndarray]]], dict]:
    """Read a VideoPose3D 2D file such as ``data_2d_h36m_cpn_ft_h36m_dbb.npz``.

    Returns ``(positions_2d, metadata)``: ``subject -> action -> list per camera of (N, J, 2)``
    float32 pixels, and the metadata dict (``num_joints``, ``keypoints_symmetry``, ...).
    """
    positions = _load_pickled_dict(path, "positions_2d")
    metadata = _load_pickled_dict(path, "metadata")
    out: Dict[str, Dict[str, List[np.ndarray]]] = {}
    for subject, actions in positions.items():
        out[subject] = {}
        for action, per_camera in actions.items():
            cams = []
            for kp in per_camera:
                kp = np.asarray(kp, dtype=np.float32)
                if kp.ndim != 3 or kp.shape[-1] != 2:
                    raise ValueError(f"{subject}/{action}: expected (N, J, 2), got {kp.shape}")
                cams.append(kp)
            out[subject][action] = cams
    return out, dict(metadata)


def align_2d_to_3d(keypoints_2d: np.ndarray, positions_3d: np.ndarray) -> np.ndarray:
    """Trim 2D detections to the mocap length (they can be a few frames longer), as VideoPose3D does."""
    n = len(positions_3d)
    if len(keypoints_2d) < n:
        raise ValueError(f"2D sequence ({len(keypoints_2d)} frames) shorter than the 3D one ({n})")
    return keypoints_2d[:n]


@dataclass
class CMUMocap:
    """The shared CMU motion capture in the 17-joint Human3.6M layout (world metres, Y up)."""

    positions: np.ndarray
    clip_offsets: np.ndarray
    clip_names: np.ndarray
    split: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.clip_names)

    def clip(self, i: int) -> np.ndarray:
        """Positions ``(n_i, 17, 3)`` of clip ``i``."""
        return self.positions[self.clip_offsets[i]:self.clip_offsets[i + 1]]

    def clip_indices(self, split: Optional[str] = None) -> List[int]:
        """Indices of the clips in ``split`` (``"train"``, ``"test"`` or ``None`` for all)."""
        return [i for i in range(len(self)) if split is None or self.split[i] == split]

    def clips(self, split: Optional[str] = None, max_clips: Optional[int] = None) -> List[np.ndarray]:
        """The clips of ``split`` in file order, at most ``max_clips`` of them."""
        idx = self.clip_indices(split)[:max_clips]
        return [self.clip(i) for i in idx]


def load_cmu(path: PathLike = DEFAULT_CMU_PATH) -> CMUMocap:
    """Read the shared ``cmu_mocap_h36m17_50fps.npz`` (see the module docstring for its keys)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"CMU motion-capture file not found: {path} (it lives in ../shared/data "
                                "beside the checkout; pass its path explicitly)")
    with np.load(path) as data:
        positions = data["positions"].astype(np.float32)
        offsets = data["clip_offsets"].astype(np.int64)
        names = data["clip_names"]
        split = data["split"]
        fps = float(data["fps"])
    if positions.ndim != 3 or positions.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"{path}: positions should be (N, 17, 3), got {positions.shape}")
    if offsets[0] != 0 or offsets[-1] != len(positions) or len(offsets) != len(names) + 1:
        raise ValueError(f"{path}: clip_offsets do not partition positions")
    return CMUMocap(positions, offsets, names, split, fps)
