"""Human3.6M through VideoPose3D's prepared files, with the standard protocol.

The files are the ones VideoPose3D's preparation writes into its ``data/`` folder
(github.com/facebookresearch/VideoPose3D, ``DATASETS.md``):

* ``data_3d_h36m.npz`` (``data/prepare_data_h36m.py``): world positions of the 32 mocap joints, metres;
* ``data_2d_h36m_cpn_ft_h36m_dbb.npz``: CPN detections (17 joints, pixels), four cameras per action;
* ``data_2d_h36m_gt.npz`` (``data/prepare_data_h36m.py``): the 17 joints projected through the cameras.

The protocol is the one of VideoPose3D's ``run.py`` that MixSTE, MotionBERT, PoseFormer and HoT follow:
subjects S1, S5, S6, S7, S8 train and S9, S11 test; 2D keypoints normalised to the screen with each
camera's resolution; 3D targets in the camera's coordinates, relative to the root (pelvis) joint;
errors averaged per action first and then over the actions (``Walking 1`` and ``Walking`` are one
action).

The camera table below holds the facts VideoPose3D's ``common/h36m_dataset.py`` lists (camera
resolutions, intrinsics, and per-subject orientation quaternions ``(w, x, y, z)``, camera-to-world,
and camera centres in millimetres); they come from the Human3.6M release.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .cameras import normalize_screen_coordinates, world_to_camera
from .readers import (DataLayoutError, H36M_HINT, _require_file, align_2d_to_3d, load_h36m_2d,
                      load_h36m_3d)
from .skeleton import NUM_JOINTS, ROOT_JOINT

PathLike = Union[str, os.PathLike]

TRAIN_SUBJECTS: Tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: Tuple[str, ...] = ("S9", "S11")
H36M_FPS = 50.0
FILE_3D = "data_3d_h36m.npz"
#: 2D keypoint files by ``--keypoints`` name.
FILES_2D: Dict[str, str] = {"cpn": "data_2d_h36m_cpn_ft_h36m_dbb.npz", "gt": "data_2d_h36m_gt.npz"}


@dataclass(frozen=True)
class H36MCameraIntrinsics:
    """One of Human3.6M's four cameras: id, image size (pixels), focal lengths and principal point (pixels)."""

    id: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


#: The four cameras, in VideoPose3D's order (the order of ``positions_2d[subject][action]``).
H36M_INTRINSICS: Tuple[H36MCameraIntrinsics, ...] = (
    H36MCameraIntrinsics("54138969", 1000, 1002, 1145.0494384765625, 1143.7811279296875,
                         512.54150390625, 515.4514770507812),
    H36MCameraIntrinsics("55011271", 1000, 1000, 1149.6756591796875, 1147.5916748046875,
                         508.8486328125, 508.0649108886719),
    H36MCameraIntrinsics("58860488", 1000, 1000, 1149.1407470703125, 1148.7989501953125,
                         519.8158569335938, 501.40264892578125),
    H36MCameraIntrinsics("60457274", 1000, 1002, 1145.5113525390625, 1144.77392578125,
                         514.9682006835938, 501.88201904296875),
)

#: subject -> per camera ``(orientation quaternion (w, x, y, z), camera centre in world millimetres)``.
H36M_EXTRINSICS: Dict[str, Tuple[Tuple[Tuple[float, float, float, float], Tuple[float, float, float]], ...]] = {
    "S1": (
        ((0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
         (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
        ((0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
         (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
        ((0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
         (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
        ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
         (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    ),
    "S5": (
        ((0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332),
         (2097.3916015625, 4880.94482421875, 1605.732421875)),
        ((0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915),
         (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
        ((0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576),
         (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
        ((0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092),
         (-1637.1737060546875, -3867.3173828125, 1547.033203125)),
    ),
    "S6": (
        ((0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938),
         (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
        ((0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428),
         (1969.803955078125, -5128.73876953125, 1632.77880859375)),
        ((0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334),
         (-1769.596435546875, 5185.361328125, 1476.993408203125)),
        ((0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802),
         (-1721.668701171875, -3884.13134765625, 1540.4879150390625)),
    ),
    "S7": (
        ((0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778),
         (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
        ((0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508),
         (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
        ((0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278),
         (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
        ((0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523),
         (-1734.7105712890625, -3832.42138671875, 1548.5830078125)),
    ),
    "S8": (
        ((0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773),
         (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
        ((0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615),
         (2219.965576171875, -5148.453125, 1613.0440673828125)),
        ((0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755),
         (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
        ((0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708),
         (-1476.913330078125, -3896.7412109375, 1547.97216796875)),
    ),
    "S9": (
        ((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
         (2044.45849609375, 4935.1171875, 1481.2275390625)),
        ((0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801),
         (1990.959716796875, -5123.810546875, 1568.8048095703125)),
        ((0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915),
         (-1670.9921875, 5211.98583984375, 1528.387939453125)),
        ((0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822),
         (-1696.04345703125, -3827.099853515625, 1591.4127197265625)),
    ),
    "S11": (
        ((0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467),
         (2098.440185546875, 4926.5546875, 1500.278564453125)),
        ((0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085),
         (2083.182373046875, -4912.1728515625, 1561.07861328125)),
        ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
         (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
        ((0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809),
         (-1590.738037109375, -3854.1689453125, 1578.017578125)),
    ),
}

#: Raw Human3.6M action names that VideoPose3D's preparation renames for some subjects.
_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}


def canonical_action(name: str) -> str:
    """The action a recording belongs to: ``"Walking 1"`` -> ``"Walking"``, ``"TakingPhoto"`` -> ``"Photo"``.

    Human3.6M records each action twice (``Walking``, ``Walking 1``); the protocol scores them together.
    """
    base = name.split(" ")[0]
    return _ACTION_ALIASES.get(base, base)


def camera_frame(positions_world: np.ndarray, subject: str, camera: int) -> np.ndarray:
    """World positions ``(..., 3)`` in metres to camera ``camera`` of ``subject``'s session (metres)."""
    if subject not in H36M_EXTRINSICS:
        raise DataLayoutError(f"no Human3.6M camera parameters for subject {subject!r}; known: "
                              f"{sorted(H36M_EXTRINSICS)}")
    orientation, centre_mm = H36M_EXTRINSICS[subject][camera]
    return world_to_camera(positions_world, np.array(orientation), np.array(centre_mm) / 1000.0)


@dataclass
class H36MSequence:
    """One recording seen by one camera: normalised 2D input and root-relative camera-frame 3D target."""

    subject: str
    action: str
    camera: int
    keypoints_2d: np.ndarray  # (N, 17, 2) normalised screen coordinates
    positions_3d: np.ndarray  # (N, 17, 3) metres, camera frame, root joint at 0

    @property
    def pair(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(keypoints_2d, positions_3d)``, the form :class:`~hourglass_tokenizer.data.PoseWindowDataset` takes."""
        return self.keypoints_2d, self.positions_3d


def h36m_paths(data_dir: PathLike, keypoints: str = "cpn") -> Tuple[str, str]:
    """Paths of the 3D file and the ``keypoints`` 2D file in ``data_dir``, checked to exist."""
    if keypoints not in FILES_2D:
        raise ValueError(f"keypoints must be one of {sorted(FILES_2D)}, got {keypoints!r}")
    path_3d = os.path.join(data_dir, FILE_3D)
    path_2d = os.path.join(data_dir, FILES_2D[keypoints])
    for path in (path_3d, path_2d):
        _require_file(path, "Human3.6M file", H36M_HINT)
    return path_3d, path_2d


def load_h36m_sequences(data_dir: PathLike, subjects: Sequence[str], *, keypoints: str = "cpn",
                        cameras: Optional[Sequence[int]] = None) -> List[H36MSequence]:
    """Every (recording, camera) of ``subjects`` as network-ready sequences, in the order of the 3D file.

    2D keypoints come from the ``keypoints`` file (``"cpn"`` or ``"gt"``), trimmed to the mocap length
    (CPN has a few extra frames on some recordings), and are normalised with the camera's resolution
    (:func:`~hourglass_tokenizer.data.cameras.normalize_screen_coordinates`). 3D targets are the 17
    joints in that camera's frame (extrinsics of :data:`H36M_EXTRINSICS`), minus the root joint.

    Raises:
        DataFileNotFoundError: a file is missing from ``data_dir``.
        DataLayoutError: the files do not hold what VideoPose3D writes (keys, joints, subjects, actions).
    """
    path_3d, path_2d = h36m_paths(data_dir, keypoints)
    positions = load_h36m_3d(path_3d, subjects=subjects)
    keypoints_2d, metadata = load_h36m_2d(path_2d)
    if int(metadata.get("num_joints", NUM_JOINTS)) != NUM_JOINTS:
        raise DataLayoutError(f"{path_2d}: metadata num_joints is {metadata['num_joints']}, expected {NUM_JOINTS}")
    cameras = list(range(len(H36M_INTRINSICS))) if cameras is None else list(cameras)
    sequences: List[H36MSequence] = []
    for subject in subjects:
        if subject not in positions:
            raise DataLayoutError(f"{path_3d}: no subject {subject!r} (found {sorted(positions)})")
        if subject not in keypoints_2d:
            raise DataLayoutError(f"{path_2d}: no subject {subject!r} (found {sorted(keypoints_2d)})")
        for action, world in positions[subject].items():
            per_camera = keypoints_2d[subject].get(action)
            if per_camera is None:
                raise DataLayoutError(f"{path_2d}: no action {subject}/{action!r} that {FILE_3D} has")
            for cam in cameras:
                if cam >= len(per_camera):
                    raise DataLayoutError(f"{path_2d}: {subject}/{action} has {len(per_camera)} cameras, "
                                          f"camera {cam} asked for")
                kp = align_2d_to_3d(per_camera[cam], world)
                if kp.shape[1] != NUM_JOINTS:
                    raise DataLayoutError(f"{path_2d}: {subject}/{action} camera {cam}: {kp.shape[1]} joints, "
                                          f"expected {NUM_JOINTS}")
                intr = H36M_INTRINSICS[cam]
                cam3d = camera_frame(world, subject, cam).astype(np.float32)
                cam3d -= cam3d[:, ROOT_JOINT:ROOT_JOINT + 1]
                sequences.append(H36MSequence(
                    subject, action, cam, normalize_screen_coordinates(kp, intr.width, intr.height).astype(np.float32),
                    cam3d))
    return sequences


def sequences_by_action(sequences: Sequence[H36MSequence]) -> Dict[str, List[Tuple[np.ndarray, np.ndarray]]]:
    """Group sequences by :func:`canonical_action` (sorted by action name), as ``(2D, 3D)`` pairs."""
    groups: Dict[str, List[Tuple[np.ndarray, np.ndarray]]] = {}
    for seq in sequences:
        groups.setdefault(canonical_action(seq.action), []).append(seq.pair)
    return dict(sorted(groups.items()))
