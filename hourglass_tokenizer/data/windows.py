"""Fixed-length windows over pose sequences, for training and evaluating video pose transformers."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .skeleton import flip_pose

Sequence2D3D = Tuple[np.ndarray, np.ndarray]


def edge_padded_window(seq: np.ndarray, start: int, length: int) -> np.ndarray:
    """Frames ``start .. start + length - 1`` of ``seq`` (axis 0); indices outside ``[0, N)`` repeat
    the first or last frame (edge replication, as VideoPose3D and MixSTE pad clip edges)."""
    idx = np.clip(np.arange(start, start + length), 0, len(seq) - 1)
    return seq[idx]


def with_input_channels(sequences: Sequence[Sequence2D3D], channels: int) -> List[Sequence2D3D]:
    """``(2D, 3D)`` pairs whose 2D keypoints have ``channels`` values per joint: ``(x, y)`` as they are
    for 2, ``(x, y, 1)`` for 3 (a confidence of 1, for models that take ``x, y, confidence`` such as
    MotionBERT and MotionAGFormer, on keypoints without detector scores).

    Raises:
        ValueError: ``channels`` is neither 2 nor 3, or keypoints have other than 2 or ``channels`` values.
    """
    if channels not in (2, 3):
        raise ValueError(f"a model taking {channels} values per joint cannot be fed 2D keypoints: expected "
                         "2 (x, y) or 3 (x, y, confidence)")
    out: List[Sequence2D3D] = []
    for kp2d, pos3d in sequences:
        kp2d = np.asarray(kp2d)
        if kp2d.shape[-1] == 2 and channels == 3:
            kp2d = np.concatenate([kp2d, np.ones(kp2d.shape[:-1] + (1,), dtype=kp2d.dtype)], axis=-1)
        elif kp2d.shape[-1] != channels:
            raise ValueError(f"2D keypoints have {kp2d.shape[-1]} values per joint; the model takes {channels}")
        out.append((kp2d, pos3d))
    return out


def centred_start(centre: int, num_frames: int) -> int:
    """Start of the ``num_frames`` window whose centre frame ``(num_frames - 1) // 2`` is ``centre``."""
    return centre - (num_frames - 1) // 2


class PoseWindowDataset(Dataset):
    """``(2D window (T, J, C), 3D target (T, J, 3))`` pairs cut from pose sequences (``C`` = 2, or 3 with
    a confidence channel, see :func:`with_input_channels`).

    ``sequences`` is a list of ``(keypoints_2d (N, J, C), positions_3d (N, J, 3))``, typically
    normalised screen coordinates and root-relative camera-frame metres (see
    :func:`hourglass_tokenizer.data.cameras.project_clips`). A window is centred on every
    ``stride``-th frame of each sequence (frames 0, stride, 2 stride, ...), so its centre frame
    (index ``(T - 1) // 2``, the seq2frame target) is always a real frame; frames beyond a clip's
    edges are edge-replicated in both the input and the target.

    With ``flip=True`` each item is mirrored with probability 0.5 (2D x negated, 3D x negated, left and
    right joints swapped), drawn from torch's global RNG so a seeded run is reproducible.
    Items are float32 tensors.
    """

    def __init__(self, sequences: Sequence[Sequence2D3D], num_frames: int, *, stride: int = 1,
                 flip: bool = False):
        if num_frames < 1 or stride < 1:
            raise ValueError("num_frames and stride must be positive")
        self.sequences: List[Sequence2D3D] = []
        for kp2d, pos3d in sequences:
            if len(kp2d) != len(pos3d) or len(kp2d) == 0:
                raise ValueError(f"2D and 3D sequences must be non-empty and equally long "
                                 f"({len(kp2d)} vs {len(pos3d)})")
            self.sequences.append((np.asarray(kp2d, dtype=np.float32), np.asarray(pos3d, dtype=np.float32)))
        self.num_frames = num_frames
        self.stride = stride
        self.flip = flip
        # (sequence index, window start) of every window.
        self.index = np.array([(s, centred_start(c, num_frames))
                               for s, (kp2d, _) in enumerate(self.sequences)
                               for c in range(0, len(kp2d), stride)], dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        s, start = self.index[i]
        kp2d, pos3d = self.sequences[s]
        x = torch.from_numpy(edge_padded_window(kp2d, int(start), self.num_frames))
        y = torch.from_numpy(edge_padded_window(pos3d, int(start), self.num_frames))
        if self.flip and torch.rand(()) < 0.5:
            x, y = flip_pose(x), flip_pose(y)
        return x, y
