"""The 17-joint Human3.6M skeleton in VideoPose3D's joint order, and left/right flipping.

Joint order: 0 Hip (pelvis), 1 RHip, 2 RKnee, 3 RFoot, 4 LHip, 5 LKnee, 6 LFoot, 7 Spine, 8 Thorax,
9 Neck/Nose, 10 Head, 11 LShoulder, 12 LElbow, 13 LWrist, 14 RShoulder, 15 RElbow, 16 RWrist.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

JOINT_NAMES: tuple[str, ...] = (
    "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
    "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)
NUM_JOINTS = len(JOINT_NAMES)
ROOT_JOINT = 0
#: Parent of each joint (-1 for the root); the shoulders hang from the thorax as in VideoPose3D.
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
JOINTS_LEFT: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
JOINTS_RIGHT: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
#: Which of Human3.6M's 32 mocap joints the 17-joint skeleton keeps (VideoPose3D drops the other 15).
H36M_32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)


def _flip_permutation() -> tuple[int, ...]:
    perm = list(range(NUM_JOINTS))
    for left, right in zip(JOINTS_LEFT, JOINTS_RIGHT):
        perm[left], perm[right] = right, left
    return tuple(perm)


#: ``pose[..., FLIP_PERMUTATION, :]`` swaps every left joint with its right twin (an involution).
FLIP_PERMUTATION: tuple[int, ...] = _flip_permutation()

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def flip_pose(pose: ArrayT) -> ArrayT:
    """Mirror poses left-right: negate the x coordinate and swap left and right joints.

    ``pose`` is ``(..., 17, C)`` with x first in the last axis. For 2D keypoints this is only a
    mirror when x is centred on the image (VideoPose3D's normalised screen coordinates, see
    :func:`hourglass_tokenizer.data.cameras.normalize_screen_coordinates`); for 3D poses in camera
    coordinates it mirrors about the camera's y-z plane. Returns a new array or tensor; applying it
    twice gives the input back.
    """
    if pose.shape[-2] != NUM_JOINTS:
        raise ValueError(f"expected {NUM_JOINTS} joints in axis -2, got shape {tuple(pose.shape)}")
    flipped = pose[..., list(FLIP_PERMUTATION), :]
    if isinstance(flipped, torch.Tensor):
        flipped = flipped.clone()
    else:
        flipped = flipped.copy()
    flipped[..., 0] = -flipped[..., 0]
    return flipped
