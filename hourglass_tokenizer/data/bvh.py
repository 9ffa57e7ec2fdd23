"""BVH motion capture to the 17-joint motion file the trainer reads.

A small numpy reader (no extra dependency): :func:`read_bvh` parses the hierarchy and the motion,
:func:`forward_kinematics` computes world joint positions for all frames at once,
:func:`to_h36m17` maps a skeleton onto the 17 Human3.6M joints by joint names, and
:func:`convert_bvh` writes the ``.npz`` that :func:`hourglass_tokenizer.data.load_cmu` reads.

Conventions (those of the BVH format as CMU, Bandai-Namco, LAFAN1 and most exporters write it):

* rotation channels are Euler angles in degrees, applied in the order listed: for
  ``Zrotation Yrotation Xrotation`` a child's offset ``v`` is turned into ``Rz @ Ry @ Rx @ v`` in the
  parent's frame, and each joint may list its own order;
* a joint's position channels, where present, give its translation from the parent (they replace the
  ``OFFSET``, which describes the rest pose); missing position axes keep the offset's value;
* ``End Site`` points become joints named ``<parent>_end`` (e.g. ``Head_end``, the top of the head);
* Y is up.
"""
from __future__ import annotations

import json
import math
import os
import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..cli_support import OneLineParser, UsageError, number_at_least, run_command
from ..files import OutputPathError, atomic_write, check_output_file
from .readers import DataFileNotFoundError, DataLayoutError, split_clips
from .skeleton import JOINT_NAMES, PARENTS

PathLike = Union[str, os.PathLike]

_AXES = {"x": 0, "y": 1, "z": 2}


class BVHError(DataLayoutError):
    """A file that is not valid BVH, with the file name and what was expected."""


@dataclass
class BVHMotion:
    """A parsed BVH file.

    Attributes:
        names: joint names in file order (End Sites as ``<parent>_end``).
        parents: parent index of each joint (-1 for the root); parents come before children.
        offsets: ``(J, 3)`` rest-pose offsets from the parent, file units.
        channels: per joint, its channel names (e.g. ``("Zrotation", "Yrotation", "Xrotation")``).
        frame_time: seconds per frame.
        motion: ``(F, C)`` channel values, all joints' channels in file order.
    """

    names: List[str]
    parents: List[int]
    offsets: np.ndarray
    channels: List[Tuple[str, ...]]
    frame_time: float
    motion: np.ndarray

    @property
    def fps(self) -> float:
        """Frames per second (``1 / frame_time``)."""
        return 1.0 / self.frame_time

    def channel_slices(self) -> List[slice]:
        """Where each joint's channels sit in a row of :attr:`motion`."""
        slices, start = [], 0
        for ch in self.channels:
            slices.append(slice(start, start + len(ch)))
            start += len(ch)
        return slices


def parse_bvh(text: str, source: str = "<string>") -> BVHMotion:
    """Parse BVH text (``HIERARCHY`` then ``MOTION``); ``source`` names the file in error messages."""
    head, sep, body = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise BVHError(f"{source}: not a BVH file (expected a HIERARCHY section followed by MOTION)")
    tokens = head.split()
    names: List[str] = []
    parents: List[int] = []
    offsets: List[List[float]] = []
    channels: List[Tuple[str, ...]] = []
    stack: List[int] = []
    pending: Optional[int] = None  # joint whose "{" comes next
    i = tokens.index("HIERARCHY") + 1
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT") or (tok == "End" and tokens[i + 1] == "Site"):
                if tok == "End":
                    name = f"{names[stack[-1]]}_end"
                    i += 1
                else:
                    name = tokens[i + 1]
                    i += 1
                names.append(name)
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append(())
                pending = len(names) - 1
                i += 1
            elif tok == "{":
                if pending is None:
                    raise BVHError(f"{source}: '{{' without a joint before it")
                stack.append(pending)
                pending = None
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                offsets[stack[-1]] = [float(v) for v in tokens[i + 1:i + 4]]
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                channels[stack[-1]] = tuple(tokens[i + 2:i + 2 + n])
                i += 2 + n
            else:
                raise BVHError(f"{source}: unexpected token {tok!r} in the hierarchy")
    except (IndexError, ValueError) as exc:
        raise BVHError(f"{source}: malformed hierarchy near token {i} ({exc})") from None
    if not names or stack:
        raise BVHError(f"{source}: hierarchy has no joints or unbalanced braces")
    for ch in channels:
        for c in ch:
            if c[1:] not in ("position", "rotation") or c[0].lower() not in _AXES:
                raise BVHError(f"{source}: unknown channel {c!r} (expected X/Y/Z position or rotation)")

    lines = body.strip().splitlines()
    try:
        n_frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
        values = np.array(" ".join(lines[2:]).split(), dtype=np.float64)
    except (IndexError, ValueError) as exc:
        raise BVHError(f"{source}: MOTION section should start with 'Frames: N' and 'Frame Time: T' ({exc})") from None
    n_channels = sum(len(c) for c in channels)
    if n_frames < 1 or not 0 < frame_time < math.inf or values.size != n_frames * n_channels:
        raise BVHError(f"{source}: expected {n_frames} frames x {n_channels} channels = {n_frames * n_channels} "
                       f"values at a positive frame time, found {values.size} values, frame time {frame_time}")
    motion = values.reshape(n_frames, n_channels)
    offsets_array = np.array(offsets, dtype=np.float64)
    if not np.isfinite(offsets_array).all():
        joint = int(np.argwhere(~np.isfinite(offsets_array))[0, 0])
        raise BVHError(f"{source}: joint {names[joint]!r} has a non-finite OFFSET {offsets_array[joint].tolist()}")
    if not np.isfinite(motion).all():
        frame, column = (int(i) for i in np.argwhere(~np.isfinite(motion))[0])
        owner = np.searchsorted(np.cumsum([len(c) for c in channels]), column, side="right")
        channel = channels[owner][column - sum(len(c) for c in channels[:owner])]
        raise BVHError(f"{source}: motion value {motion[frame, column]} (not finite) at frame {frame}, joint "
                       f"{names[owner]!r}, channel {channel}; {int((~np.isfinite(motion)).sum())} such values in all")
    return BVHMotion(names, parents, offsets_array, channels, frame_time, motion)


def read_bvh(path: PathLike) -> BVHMotion:
    """Read a ``.bvh`` file (see :func:`parse_bvh`)."""
    if not os.path.isfile(path):
        raise DataFileNotFoundError(f"BVH file not found: {os.fspath(path)!r}")
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return parse_bvh(f.read(), os.fspath(path))


def axis_rotations(axis: str, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(F, 3, 3)`` about ``axis`` (``"X"``, ``"Y"`` or ``"Z"``) by ``degrees`` (F,)."""
    a = np.radians(np.asarray(degrees, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    i = _AXES[axis.lower()]
    j, k = (i + 1) % 3, (i + 2) % 3
    out[..., i, i] = 1.0
    out[..., j, j] = c
    out[..., k, k] = c
    out[..., k, j] = s
    out[..., j, k] = -s
    return out


def forward_kinematics(bvh: BVHMotion) -> np.ndarray:
    """World positions ``(F, J, 3)`` of every joint (End Sites included), in the file's units."""
    frames = len(bvh.motion)
    n = len(bvh.names)
    positions = np.zeros((frames, n, 3))
    rotations = np.zeros((frames, n, 3, 3))
    for j, (parent, chans, sl) in enumerate(zip(bvh.parents, bvh.channels, bvh.channel_slices())):
        local_rot = np.broadcast_to(np.eye(3), (frames, 3, 3))
        translation = np.broadcast_to(bvh.offsets[j], (frames, 3)).copy()
        for c, column in zip(chans, bvh.motion[:, sl].T):
            if c.endswith("rotation"):
                local_rot = local_rot @ axis_rotations(c[0], column)
            else:
                translation[:, _AXES[c[0].lower()]] = column
        if parent < 0:
            rotations[:, j] = local_rot
            positions[:, j] = translation
        else:
            rotations[:, j] = rotations[:, parent] @ local_rot
            positions[:, j] = positions[:, parent] + np.einsum("fab,fb->fa", rotations[:, parent], translation)
    return positions


# --------------------------------------------------------------------------------------------------
# joint maps

#: A map entry: one joint name, or several whose mean position is the 17-joint skeleton's joint.
JointSpec = Union[str, Sequence[str]]

#: Built-in maps: for each of the 17 joints, alternatives tried in order (names compared ignoring case);
#: the first whose joints all exist is used. ``cmu`` covers CMU's 3ds Max-friendly release (``LeftHip``,
#: ``LeftKnee``, ``LeftShoulder`` = shoulder joint, ``Chest2``...) and cgspeed's MotionBuilder-friendly
#: naming (``LeftUpLeg``, ``LeftLeg``, ``LeftArm`` = shoulder joint, ``Spine1``...), which LAFAN1 and
#: Mixamo-style skeletons share; ``bandai`` the Bandai-Namco Research Motion naming (``UpperLeg_L``...).
BUILTIN_JOINT_MAPS: Dict[str, Dict[str, List[JointSpec]]] = {
    "cmu": {
        "Hip": [["LeftUpLeg", "RightUpLeg"], ["LeftHip", "RightHip"]],
        "RHip": ["RightUpLeg", "RightHip"],
        "RKnee": ["RightLeg", "RightKnee"],
        "RFoot": ["RightFoot", "RightAnkle"],
        "LHip": ["LeftUpLeg", "LeftHip"],
        "LKnee": ["LeftLeg", "LeftKnee"],
        "LFoot": ["LeftFoot", "LeftAnkle"],
        # CMU's trunk: 3ds Max names Chest, Neck, Head are MotionBuilder's Spine, Neck1, Head (MB's "Neck"
        # is Max's "lowerneck", at the base of the neck), so "Neck1" is tried before "Neck".
        "Spine": ["Chest", "Spine"],
        "Thorax": ["Neck1", "Neck"],
        "Neck/Nose": ["Head"],
        "Head": ["Head_end"],
        "LShoulder": ["LeftArm", "LeftShoulder"],
        "LElbow": ["LeftForeArm", "LeftElbow"],
        "LWrist": ["LeftHand", "LeftWrist"],
        "RShoulder": ["RightArm", "RightShoulder"],
        "RElbow": ["RightForeArm", "RightElbow"],
        "RWrist": ["RightHand", "RightWrist"],
    },
    "bandai": {
        "Hip": [["UpperLeg_L", "UpperLeg_R"]],
        "RHip": ["UpperLeg_R"],
        "RKnee": ["LowerLeg_R"],
        "RFoot": ["Foot_R"],
        "LHip": ["UpperLeg_L"],
        "LKnee": ["LowerLeg_L"],
        "LFoot": ["Foot_L"],
        "Spine": ["Spine"],
        "Thorax": ["Chest"],
        "Neck/Nose": ["Neck"],
        "Head": ["Head_end", "Head"],
        "LShoulder": ["UpperArm_L"],
        "LElbow": ["LowerArm_L"],
        "LWrist": ["Hand_L"],
        "RShoulder": ["UpperArm_R"],
        "RElbow": ["LowerArm_R"],
        "RWrist": ["Hand_R"],
    },
}


def load_joint_map(path: PathLike) -> Dict[str, List[JointSpec]]:
    """Read a ``--joint-map`` JSON file: ``{"Hip": ["LeftUpLeg", "RightUpLeg"], "RHip": "RightUpLeg", ...}``.

    Each of the 17 joint names (:data:`~hourglass_tokenizer.data.skeleton.JOINT_NAMES`) maps to a BVH
    joint name, or to a list of names whose mean position is used. End Sites are ``<parent>_end``.
    """
    if not os.path.isfile(path):
        raise DataFileNotFoundError(f"joint map not found: {os.fspath(path)!r}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as exc:
        raise DataLayoutError(f"{os.fspath(path)}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataLayoutError(f"{os.fspath(path)}: expected a JSON object mapping the 17 joint names to BVH joints")
    missing = [n for n in JOINT_NAMES if n not in raw]
    unknown = [n for n in raw if n not in JOINT_NAMES]
    if missing or unknown:
        raise DataLayoutError(f"{os.fspath(path)}: the joint map needs exactly the keys {list(JOINT_NAMES)}; "
                              f"missing {missing}, unknown {unknown}")
    # A user map has one choice per joint: wrap it as the single alternative.
    return {k: [v] for k, v in raw.items()}


def _resolve(spec: JointSpec, index: Mapping[str, int]) -> Optional[List[int]]:
    names = [spec] if isinstance(spec, str) else list(spec)
    found = [index.get(n.lower()) for n in names]
    return None if any(f is None for f in found) else found


def resolve_joint_map(names: Sequence[str], joint_map: Union[str, Mapping[str, Sequence[JointSpec]], None] = None,
                      source: str = "BVH") -> List[List[int]]:
    """For each of the 17 joints, the BVH joint indices whose mean gives it.

    ``joint_map`` is a built-in name (``"cmu"``, ``"bandai"``), a map as :func:`load_joint_map` returns,
    or ``None`` to use the first built-in map that covers the skeleton.
    """
    index = {n.lower(): i for i, n in enumerate(names)}
    if joint_map is None:
        failures = []
        for key in BUILTIN_JOINT_MAPS:
            try:
                return resolve_joint_map(names, key, source)
            except DataLayoutError as exc:
                failures.append(str(exc))
        raise DataLayoutError(f"{source}: no built-in joint map ({', '.join(BUILTIN_JOINT_MAPS)}) fits its joints "
                              f"{list(names)}; write one for --joint-map (a JSON object from each of "
                              f"{list(JOINT_NAMES)} to a BVH joint name or a list of names to average)")
    if isinstance(joint_map, str):
        if joint_map not in BUILTIN_JOINT_MAPS:
            raise ValueError(f"unknown built-in joint map {joint_map!r}; choose from {sorted(BUILTIN_JOINT_MAPS)}")
        joint_map = BUILTIN_JOINT_MAPS[joint_map]
    resolved, unresolved = [], []
    for joint in JOINT_NAMES:
        hit = next((r for r in (_resolve(s, index) for s in joint_map[joint]) if r is not None), None)
        if hit is None:
            unresolved.append(f"{joint} <- {joint_map[joint]}")
        resolved.append(hit)
    if unresolved:
        raise DataLayoutError(f"{source}: joint map does not fit: {'; '.join(unresolved)} (BVH joints: {list(names)})")
    return resolved


def to_h36m17(positions: np.ndarray, mapping: Sequence[Sequence[int]]) -> np.ndarray:
    """``(F, J, 3)`` BVH joint positions to ``(F, 17, 3)`` by :func:`resolve_joint_map`'s mapping."""
    return np.stack([positions[:, list(idx)].mean(axis=1) for idx in mapping], axis=1)


#: Metres per unit for the units BVH files come in; ``auto`` picks the one giving a plausible leg.
KNOWN_UNITS: Dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.056444}
_TYPICAL_LEG_M = 0.85  # hip to ankle of an adult, the yardstick for guessing units


def leg_length(positions_17: np.ndarray) -> float:
    """Mean hip-knee-ankle length of the two legs of one 17-joint pose, in its units."""
    p = np.asarray(positions_17, dtype=np.float64)
    return float(np.linalg.norm(p[1] - p[2]) + np.linalg.norm(p[2] - p[3])
                 + np.linalg.norm(p[4] - p[5]) + np.linalg.norm(p[5] - p[6])) / 2


def guess_scale(rest_positions_17: np.ndarray) -> float:
    """Metres per file unit, guessed from the rest pose's leg length (hip to ankle, 17-joint layout).

    Picks the :data:`KNOWN_UNITS` entry whose leg length is nearest (in ratio) to 0.85 m: CMU's
    ASF units (x 0.056444) give 0.80 m where inches would give 0.36 m, centimetres 0.14 m.
    """
    leg = leg_length(rest_positions_17)
    if not leg > 0:
        raise DataLayoutError("cannot guess the units: the skeleton's legs have zero length; pass --scale")
    return min(KNOWN_UNITS.values(), key=lambda s: abs(np.log(leg * s / _TYPICAL_LEG_M)))


def rest_pose(bvh: BVHMotion) -> np.ndarray:
    """World positions ``(J, 3)`` of the skeleton from its ``OFFSET`` s alone: no rotation, and position
    channels left out (in files that put position channels on every joint, such as Bandai-Namco's, a
    zero channel would otherwise replace the bone)."""
    rotations_only = [tuple(c for c in chans if c.endswith("rotation")) for chans in bvh.channels]
    zero = BVHMotion(bvh.names, bvh.parents, bvh.offsets, rotations_only, bvh.frame_time,
                     np.zeros((1, sum(len(c) for c in rotations_only))))
    return forward_kinematics(zero)[0]


def guess_units(bvh: BVHMotion, mapping: Sequence[Sequence[int]], positions: Optional[np.ndarray] = None) -> float:
    """Metres per file unit (:func:`guess_scale`) from the rest pose's legs, or from frame 0's when the
    offsets leave the legs at zero length (files whose position channels alone carry the bones).

    ``positions``: the file's forward kinematics (:func:`forward_kinematics`), when already computed.
    """
    rest = to_h36m17(rest_pose(bvh)[None], mapping)[0]
    if leg_length(rest) > 0:
        return guess_scale(rest)
    first = forward_kinematics(dataclasses.replace(bvh, motion=bvh.motion[:1])) if positions is None else positions
    return guess_scale(to_h36m17(first[:1], mapping)[0])


def check_scale(scale: Union[float, str]) -> Union[float, str]:
    """``scale`` if it is ``"auto"``, a :data:`KNOWN_UNITS` name or a positive finite number of metres per unit.

    Raises:
        ValueError: anything else (zero, negative, NaN or infinite numbers, unknown names).
    """
    if isinstance(scale, str):
        if scale == "auto" or scale in KNOWN_UNITS:
            return scale
        raise ValueError(f"scale must be a positive number of metres per unit, 'auto' or one of "
                         f"{sorted(KNOWN_UNITS)}, got {scale!r}")
    value = float(scale)
    if math.isnan(value):
        raise ValueError(f"scale must be a positive number of metres per unit, got {scale!r} (not a number)")
    if not 0 < value < math.inf:
        raise ValueError(f"scale must be a positive finite number of metres per unit, got {value:g}")
    return value


def resample(positions: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear interpolation in time of ``(F, ...)`` samples at ``fps_in`` to ``fps_out``, same duration."""
    if not (0 < fps_in < math.inf and 0 < fps_out < math.inf):
        raise ValueError(f"frame rates must be positive finite numbers, got {fps_in} -> {fps_out}")
    if abs(fps_in - fps_out) < 1e-9 * fps_in or len(positions) < 2:
        return positions.copy()
    t_in = np.arange(len(positions)) / fps_in
    t_out = np.arange(0.0, t_in[-1] + 1e-9, 1.0 / fps_out)
    flat = positions.reshape(len(positions), -1)
    out = np.empty((len(t_out), flat.shape[1]))
    for c in range(flat.shape[1]):
        out[:, c] = np.interp(t_out, t_in, flat[:, c])
    return out.reshape((len(t_out),) + positions.shape[1:])


def resampled_length(frames: int, fps_in: float, fps_out: float) -> int:
    """How many frames :func:`resample` gives for ``frames`` samples at ``fps_in`` resampled to ``fps_out``."""
    if frames < 2 or abs(fps_in - fps_out) < 1e-9 * fps_in:
        return frames
    return int(np.floor(((frames - 1) / fps_in + 1e-9) * fps_out)) + 1


#: A clip may grow at most this many times when resampled: more means a wrong frame time.
_MAX_UPSAMPLING = 100


def bvh_to_h36m17(path: PathLike, *, fps: float = 50.0, joint_map=None, scale: Union[float, str] = "auto"
                  ) -> Tuple[np.ndarray, float]:
    """One BVH file to ``(positions (N, 17, 3) float32 metres Y up at fps, metres per file unit)``.

    Raises:
        BVHError: the file is not valid BVH, holds non-finite values, or its frame time and ``fps``
            would collapse the clip to fewer than 2 frames (or blow it up more than 100 times).
        ValueError: ``scale`` or ``fps`` is not a positive finite number (or a unit name for ``scale``).
    """
    scale = check_scale(scale)
    if not 0 < fps < math.inf:
        raise ValueError(f"fps must be a positive finite number of frames per second, got {fps}")
    bvh = read_bvh(path)
    mapping = resolve_joint_map(bvh.names, joint_map, os.fspath(path))
    frames_in = len(bvh.motion)
    frames_out = resampled_length(frames_in, bvh.fps, fps)
    if frames_in >= 2 and not 2 <= frames_out <= _MAX_UPSAMPLING * frames_in:
        raise BVHError(f"{os.fspath(path)}: {frames_in} frames at a frame time of {bvh.frame_time:g} s "
                       f"({(frames_in - 1) * bvh.frame_time:g} s of motion) would become {frames_out} frame(s) at "
                       f"{fps:g} fps; check the file's 'Frame Time' and --fps")
    world = forward_kinematics(bvh)
    if scale == "auto":
        scale = guess_units(bvh, mapping, world)
    elif isinstance(scale, str):
        scale = KNOWN_UNITS[scale]
    positions = to_h36m17(world, mapping) * float(scale)
    return resample(positions, bvh.fps, fps).astype(np.float32), float(scale)


def find_bvh_files(inputs: Sequence[PathLike]) -> List[Tuple[str, str]]:
    """``(path, clip name)`` of every ``.bvh`` in ``inputs`` (files, or folders searched recursively, sorted).

    A clip's name is its path relative to the folder given, without ``.bvh`` (a file's: its base name).
    """
    found: List[Tuple[str, str]] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            for root, _, files in sorted(os.walk(item)):
                for f in sorted(files):
                    if f.lower().endswith(".bvh"):
                        path = os.path.join(root, f)
                        found.append((path, os.path.splitext(os.path.relpath(path, item))[0].replace(os.sep, "/")))
        elif os.path.isfile(item):
            found.append((item, os.path.splitext(os.path.basename(item))[0]))
        else:
            raise DataFileNotFoundError(f"BVH input not found: {item!r} (give .bvh files or folders holding them; "
                                        "CMU's motion capture in BVH is linked from mocap.cs.cmu.edu)")
    if not found:
        raise DataFileNotFoundError(f"no .bvh files in {[os.fspath(i) for i in inputs]}")
    return found


def npz_output_path(output: PathLike) -> str:
    """The file ``np.savez`` would write for ``output``: ``output`` itself when it ends in ``.npz``,
    else ``output + ".npz"``.

    Raises:
        OutputPathError: ``output`` is an existing directory.
    """
    out = os.fspath(output)
    if os.path.isdir(out):
        raise OutputPathError(f"{out!r} is a directory; give the output file's name (e.g. {os.path.join(out, 'motion.npz')!r})")
    return out if out.endswith(".npz") else out + ".npz"


def convert_bvh(inputs: Sequence[PathLike], output: PathLike, *, fps: float = 50.0, joint_map=None,
                scale: Union[float, str] = "auto", split: str = "every:5", licence: str = "",
                overwrite: bool = False, log=None) -> Dict[str, object]:
    """Convert BVH files to the motion ``.npz`` that :func:`~hourglass_tokenizer.data.load_cmu` reads.

    Writes ``positions`` (N, 17, 3) float32 metres (Y up) at ``fps``, ``clip_offsets``, ``clip_names``,
    ``split`` (from ``split``, see :func:`~hourglass_tokenizer.data.readers.split_clips`), ``fps``,
    ``joint_names``, ``parents``, ``scale`` (metres per BVH unit, per clip) and ``licence``.
    ``joint_map``: a built-in name, a map from :func:`load_joint_map`, or ``None`` (first fitting built-in).
    The file goes to :func:`npz_output_path` of ``output``, written atomically; an existing file is
    replaced only with ``overwrite``, and that is checked before any BVH file is read.
    Returns a summary (``path`` written, clips, frames, seconds of motion, scales).

    Raises:
        OutputPathError: the output exists (without ``overwrite``), is a directory or cannot be written.
    """
    out = check_output_file(npz_output_path(output), overwrite=overwrite)
    check_scale(scale)
    files = find_bvh_files(inputs)
    labels = split_clips([name for _, name in files], split)
    clips, scales = [], []
    for (path, name), label in zip(files, labels):
        positions, used_scale = bvh_to_h36m17(path, fps=fps, joint_map=joint_map, scale=scale)
        clips.append(positions)
        scales.append(used_scale)
        if log is not None:
            log(f"{name}: {len(positions)} frames at {fps:g} fps, {used_scale:g} m/unit, {label}")
    offsets = np.cumsum([0] + [len(c) for c in clips]).astype(np.int64)
    with atomic_write(out) as tmp:
        np.savez_compressed(tmp, positions=np.concatenate(clips).astype(np.float32), clip_offsets=offsets,
                            clip_names=np.array([name for _, name in files]), split=labels,
                            fps=np.float64(fps), joint_names=np.array(JOINT_NAMES), parents=np.array(PARENTS),
                            scale=np.array(scales), licence=np.array(licence))
    return {"path": out, "clips": len(clips), "frames": int(offsets[-1]), "seconds": float(offsets[-1] / fps),
            "test_clips": int((labels == "test").sum()), "scales": sorted(set(scales))}


def _scale_argument(text: str) -> Union[float, str]:
    """argparse type of ``--scale``: a unit name, ``auto``, or a positive finite number."""
    import argparse

    try:
        value: Union[float, str] = float(text)
    except ValueError:
        value = text
    try:
        return check_scale(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("scale must be", "expected")) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m hourglass_tokenizer data bvh``: convert BVH files to a motion ``.npz``.

    Returns the exit status: 0, or 2 after a one-line error (a command-line mistake, a bad file, an
    output that exists or cannot be written)."""
    prog = "python -m hourglass_tokenizer data bvh"
    return run_command(prog, lambda: _convert(argv, prog))


def _convert(argv: Optional[Sequence[str]], prog: str) -> int:
    import sys
    import time

    p = OneLineParser(prog=prog, description=(
        "Convert BVH motion capture to the 17-joint motion file that 'train --data' reads: world positions "
        "in metres, Y up, resampled to --fps, with clip names and a train/test split."))
    p.add_argument("inputs", nargs="+", help=".bvh files or folders (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="output .npz (.npz is added when missing)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument("--fps", type=number_at_least(0, inclusive=False), default=50.0,
                   help="output frame rate (default 50, as Human3.6M)")
    p.add_argument("--joint-map", default=None,
                   help="'cmu', 'bandai' or a JSON file mapping each of the 17 joints to BVH joint names "
                        "(default: the first built-in map that fits)")
    p.add_argument("--scale", type=_scale_argument, default="auto",
                   help="metres per BVH unit: a positive number, one of " + ", ".join(KNOWN_UNITS) +
                        ", or 'auto' (guessed from the leg length; default)")
    p.add_argument("--split", default="every:5",
                   help="test clips: 'every:N' (every N-th counting back from the last; default every:5), "
                        "'glob:PATTERN' (clip names matching), or 'train'/'test' for all")
    p.add_argument("--licence", default="", help="licence or acknowledgement text stored in the file")
    args = p.parse_args(argv)
    joint_map = args.joint_map
    started = time.time()
    try:
        split_clips([], args.split)  # reject a bad --split before reading any file
    except ValueError as exc:
        raise UsageError(f"--split: {exc}") from None
    if joint_map is not None and joint_map not in BUILTIN_JOINT_MAPS:
        joint_map = load_joint_map(joint_map)
    summary = convert_bvh(args.inputs, args.output, fps=args.fps, joint_map=joint_map, scale=args.scale,
                          split=args.split, licence=args.licence, overwrite=args.overwrite,
                          log=lambda line: print(line, file=sys.stderr))
    print(f"wrote {summary['path']}: {summary['clips']} clips ({summary['test_clips']} test), {summary['frames']} "
          f"frames = {summary['seconds']:.1f} s at {args.fps:g} fps, in {time.time() - started:.1f} s")
    return 0
