"""Readers for VideoPose3D's Human3.6M files and the shared CMU motion-capture file.

VideoPose3D layouts (``np.savez_compressed`` of pickled dicts, read with
:func:`hourglass_tokenizer.files.load_npz`'s restricted unpickler: plain data and numpy arrays only,
so a crafted file cannot run code):

* ``data_3d_h36m.npz``: key ``positions_3d``, a dict ``subject -> action -> (N, 32, 3)`` float32 world
  positions in metres (Human3.6M's 32 mocap joints); 17 are kept (:data:`H36M_32_TO_17`).
* ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` (and the other 2D files): key ``positions_2d``, a dict
  ``subject -> action -> [camera 0..3] -> (N, 17, 2)`` float32 pixels; key ``metadata``, a dict with
  ``num_joints``, ``keypoints_symmetry`` ([left joints, right joints]) and, for detections,
  ``layout_name``. Detections may have a few more frames than the mocap; VideoPose3D trims them to
  the mocap length (:func:`align_2d_to_3d`).

Upstream references for these layouts: facebookresearch/VideoPose3D ``data/prepare_data_h36m.py`` (writes
``positions_3d`` and the ground-truth ``positions_2d``/``metadata``), ``common/h36m_dataset.py`` (cameras,
the 32 -> 17 joint reduction) and ``DATASETS.md`` (the CPN detections file).

The CMU motion layout (no pickles), written by ``python -m hourglass_tokenizer data bvh``, holds
``positions`` (N, 17, 3) world metres (Y up), ``clip_offsets`` (K+1,), ``fps`` and, optionally,
``clip_names`` (K,), ``split`` (K,) ``train``/``test``, ``joint_names``, ``parents`` and ``licence``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
import zipfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..files import FileReadError, load_npz
from .skeleton import H36M_32_TO_17, JOINT_NAMES, NUM_JOINTS, PARENTS

PathLike = Union[str, os.PathLike]

#: Default location of the shared CMU file, relative to the repository root.
CMU_ACKNOWLEDGEMENT = ("The data used in this project was obtained from mocap.cs.cmu.edu. "
                       "The database was created with funding from NSF EIA-0196217.")


class DataError(Exception):
    """A data file the user named is missing or not in the expected layout (a user error, not a bug)."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file does not exist; the message names the path tried and how to get or make the file."""


class DataLayoutError(DataError, ValueError):
    """A data file exists but its keys, shapes or skeleton are not what the reader expects."""


#: How to make a motion file in the layout :func:`load_cmu` reads (quoted in error messages).
MAKE_MOTION_HINT = ("make one from BVH motion capture (e.g. the CMU database at mocap.cs.cmu.edu) with "
                    "'python -m hourglass_tokenizer data bvh BVH_DIR -o motion.npz'")


def _require_file(path: PathLike, what: str, hint: str) -> None:
    if not os.path.isfile(path):
        raise DataFileNotFoundError(f"{what} not found: {os.fspath(path)!r}; {hint}")


def _open_npz(path: PathLike, expected_keys: Sequence[str], *, pickled: bool = False) -> dict:
    """All arrays of an ``.npz`` as a dict, after checking that ``expected_keys`` are all present.

    ``pickled``: entries may be pickled objects, read with :func:`~hourglass_tokenizer.files.load_npz`'s
    restricted unpickler (plain data and numpy arrays only); otherwise object arrays are refused.
    """
    where = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise DataLayoutError(f"{where}: not an .npz archive (expected numpy's zip of arrays with "
                              f"keys {list(expected_keys)})")
    try:
        if pickled:
            data = load_npz(path)
        else:
            with np.load(path, allow_pickle=False) as archive:
                data = {k: archive[k] for k in archive.files}
    except FileReadError as exc:  # unsafe, truncated or unreadable pickled entries; the message names the file
        raise DataLayoutError(" ".join(str(exc).split())) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # not an npz at all, or a truncated one
        raise DataLayoutError(f"{where}: not a readable .npz archive ({' '.join(str(exc).split())})") from None
    missing = [k for k in expected_keys if k not in data]
    if missing:
        raise DataLayoutError(f"{where}: expected keys {list(expected_keys)}, found {list(data)} (missing {missing})")
    return data


def _load_pickled_dicts(path: PathLike, keys: Sequence[str], hint: str) -> List[dict]:
    """Keys ``keys`` of a VideoPose3D archive, each a dict that ``savez`` stored as a 0-d object array."""
    _require_file(path, "VideoPose3D file", hint)
    arrays = _open_npz(path, keys, pickled=True)
    values = []
    for key in keys:
        value = arrays[key]
        if value.dtype == object and value.shape == ():
            value = value.item()
        if not isinstance(value, dict):
            raise DataLayoutError(f"{os.fspath(path)}: {key!r} should be a pickled dict (VideoPose3D's layout), "
                                  f"found an array of shape {value.shape}")
        values.append(value)
    return values


def _actions(actions: object, path: PathLike, subject: str) -> List[Tuple[str, object]]:
    """The ``action -> data`` items of one subject in a VideoPose3D dict, checked to be a dict."""
    if not isinstance(actions, dict):
        raise DataLayoutError(f"{os.fspath(path)}: subject {subject!r} should map action names to data, found "
                              f"{type(actions).__name__}")
    return list(actions.items())


def _float_array(value: object, where: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataLayoutError(f"{where}: expected an array of numbers, found {type(value).__name__}") from None


#: How to get VideoPose3D's Human3.6M files (quoted in error messages).
H36M_HINT = ("Human3.6M cannot be redistributed: request it at vision.imar.ro/human3.6m, then prepare "
             "data_3d_h36m.npz and the 2D files with VideoPose3D's data/prepare_data_h36m.py and its "
             "DATASETS.md (github.com/facebookresearch/VideoPose3D)")


def load_h36m_3d(path: PathLike, subjects: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """Read ``data_3d_h36m.npz``: ``subject -> action -> (N, 17, 3)`` float32 world metres.

    32-joint arrays are reduced to the 17 joints of :mod:`hourglass_tokenizer.data.skeleton`;
    arrays that already have 17 joints are kept as they are. ``subjects`` restricts the subjects read.
    """
    data, = _load_pickled_dicts(path, ["positions_3d"], H36M_HINT)
    out: Dict[str, Dict[str, np.ndarray]] = {}
    for subject, actions in data.items():
        if subjects is not None and subject not in subjects:
            continue
        out[subject] = {}
        for action, positions in _actions(actions, path, subject):
            positions = _float_array(positions, f"{path}: {subject}/{action}")
            if positions.ndim != 3 or positions.shape[-1] != 3:
                raise DataLayoutError(f"{path}: {subject}/{action}: expected (N, J, 3) positions, got {positions.shape}")
            if positions.shape[1] == 32:
                positions = positions[:, list(H36M_32_TO_17)]
            elif positions.shape[1] != NUM_JOINTS:
                raise DataLayoutError(f"{path}: {subject}/{action}: expected 32 or 17 joints, got {positions.shape[1]}")
            out[subject][action] = np.ascontiguousarray(positions)
    return out


def load_h36m_2d(path: PathLike) -> Tuple[Dict[str, Dict[str, List[np.ndarray]]], dict]:
    """Read a VideoPose3D 2D file such as ``data_2d_h36m_cpn_ft_h36m_dbb.npz``.

    Returns ``(positions_2d, metadata)``: ``subject -> action -> list per camera of (N, J, 2)``
    float32 pixels, and the metadata dict (``num_joints``, ``keypoints_symmetry``, ...).
    """
    positions, metadata = _load_pickled_dicts(path, ["positions_2d", "metadata"], H36M_HINT)
    out: Dict[str, Dict[str, List[np.ndarray]]] = {}
    for subject, actions in positions.items():
        out[subject] = {}
        for action, per_camera in _actions(actions, path, subject):
            if not isinstance(per_camera, (list, tuple)):
                raise DataLayoutError(f"{path}: {subject}/{action} should be a list of per-camera arrays, found "
                                      f"{type(per_camera).__name__}")
            cams = []
            for kp in per_camera:
                kp = _float_array(kp, f"{path}: {subject}/{action}")
                if kp.ndim != 3 or kp.shape[-1] != 2:
                    raise DataLayoutError(f"{path}: {subject}/{action}: expected (N, J, 2) keypoints, got {kp.shape}")
                cams.append(kp)
            out[subject][action] = cams
    return out, dict(metadata)


def align_2d_to_3d(keypoints_2d: np.ndarray, positions_3d: np.ndarray) -> np.ndarray:
    """Trim 2D detections to the mocap length (they can be a few frames longer), as VideoPose3D does."""
    n = len(positions_3d)
    if len(keypoints_2d) < n:
        raise DataLayoutError(f"2D sequence ({len(keypoints_2d)} frames) shorter than the 3D one ({n})")
    return keypoints_2d[:n]


def split_clips(clip_names: Sequence[str], spec: str) -> np.ndarray:
    """A ``train``/``test`` label per clip from a split specification.

    ``spec`` is one of:

    * ``"train"`` or ``"test"``: every clip gets that label;
    * ``"every:N"``: every N-th clip counting back from the last is ``test`` (clips K-1, K-1-N, ...),
      so any file of at least two clips has both splits;
    * ``"glob:PATTERN"``: clips whose name matches the shell pattern (``fnmatch``) are ``test``.
    """
    names = [str(n) for n in clip_names]
    kind, _, arg = spec.partition(":")
    if spec in ("train", "test"):
        labels = [spec] * len(names)
    elif kind == "every" and arg.isdigit() and int(arg) >= 1:
        n = int(arg)
        labels = ["test" if (len(names) - 1 - i) % n == 0 else "train" for i in range(len(names))]
    elif kind == "glob" and arg:
        labels = ["test" if fnmatch.fnmatchcase(name, arg) else "train" for name in names]
    else:
        raise ValueError(f"split specification {spec!r} not understood: expected 'train', 'test', 'every:N' "
                         "(N >= 1) or 'glob:PATTERN'")
    return np.array(labels, dtype="<U5")


@dataclass
class CMUMocap:
    """Motion capture in the 17-joint Human3.6M layout (world metres, Y up), clip by clip.

    ``split`` is ``None`` when the file has no split; :meth:`with_split` assigns one.
    """

    positions: np.ndarray
    clip_offsets: np.ndarray
    clip_names: np.ndarray
    split: Optional[np.ndarray]
    fps: float
    path: str = ""

    def __len__(self) -> int:
        return len(self.clip_names)

    def clip(self, i: int) -> np.ndarray:
        """Positions ``(n_i, 17, 3)`` of clip ``i``."""
        return self.positions[self.clip_offsets[i]:self.clip_offsets[i + 1]]

    def clip_indices(self, split: Optional[str] = None) -> List[int]:
        """Indices of the clips in ``split`` (``"train"``, ``"test"`` or ``None`` for all)."""
        if split is not None and self.split is None:
            raise DataLayoutError(f"{self.path or 'motion file'}: has no 'split' key, so it has no {split!r} clips; "
                                  "choose one with --split-by (e.g. --split-by every:5)")
        return [i for i in range(len(self)) if split is None or self.split[i] == split]

    def clips(self, split: Optional[str] = None, max_clips: Optional[int] = None) -> List[np.ndarray]:
        """The clips of ``split`` in file order, at most ``max_clips`` of them."""
        idx = self.clip_indices(split)[:max_clips]
        return [self.clip(i) for i in idx]

    def with_split(self, spec: str) -> "CMUMocap":
        """A copy whose split comes from :func:`split_clips` (replacing the file's own, if any)."""
        return dataclasses.replace(self, split=split_clips(self.clip_names, spec))


#: Keys :func:`load_cmu` needs; ``clip_names``, ``split``, ``joint_names`` and ``parents`` are optional.
CMU_REQUIRED_KEYS = ("positions", "clip_offsets", "fps")


def load_cmu(path: PathLike) -> CMUMocap:
    """Read a motion file in the CMU layout (see the module docstring), as written by
    ``python -m hourglass_tokenizer data bvh``.

    Checks the layout: ``positions`` (N, 17, 3), ``clip_offsets`` partitioning them, and, when the file
    has them, ``joint_names`` and ``parents`` equal to the 17-joint skeleton's
    (:data:`~hourglass_tokenizer.data.skeleton.JOINT_NAMES`, :data:`~hourglass_tokenizer.data.skeleton.PARENTS`).
    Clips without names are called ``clip_0``, ``clip_1``, ...; a file without ``split`` gives ``split=None``.

    Raises:
        DataFileNotFoundError: no file at ``path`` (the message says how to make one).
        DataLayoutError: missing keys, wrong shapes or a different skeleton.
    """
    _require_file(path, "motion file", MAKE_MOTION_HINT)
    where = os.fspath(path)
    data = _open_npz(path, CMU_REQUIRED_KEYS)
    positions = data["positions"].astype(np.float32)
    offsets = data["clip_offsets"].astype(np.int64)
    if positions.ndim != 3 or positions.shape[1:] != (NUM_JOINTS, 3):
        raise DataLayoutError(f"{where}: positions should be (N, {NUM_JOINTS}, 3), got {positions.shape}")
    if (offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(positions)
            or np.any(np.diff(offsets) < 0)):
        raise DataLayoutError(f"{where}: clip_offsets should rise from 0 to len(positions)={len(positions)}, "
                              f"got {offsets.tolist()[:6]}{'...' if len(offsets) > 6 else ''}")
    k = len(offsets) - 1
    names = data["clip_names"] if "clip_names" in data else np.array([f"clip_{i}" for i in range(k)])
    split = data.get("split")
    for key, value in (("clip_names", names), ("split", split)):
        if value is not None and len(value) != k:
            raise DataLayoutError(f"{where}: {key} has {len(value)} entries for {k} clips")
    if split is not None and not set(np.asarray(split).astype(str).tolist()) <= {"train", "test"}:
        raise DataLayoutError(f"{where}: split should hold 'train'/'test', found {sorted(set(split.tolist()))}")
    if "joint_names" in data and [str(n) for n in data["joint_names"]] != list(JOINT_NAMES):
        raise DataLayoutError(f"{where}: joint_names {[str(n) for n in data['joint_names']]} differ from the "
                              f"17-joint Human3.6M order the models expect {list(JOINT_NAMES)}")
    if "parents" in data and data["parents"].astype(np.int64).tolist() != list(PARENTS):
        raise DataLayoutError(f"{where}: parents {data['parents'].tolist()} differ from the 17-joint skeleton's "
                              f"{list(PARENTS)}")
    return CMUMocap(positions, offsets, names, None if split is None else np.asarray(split).astype(str),
                    float(data["fps"]), where)
