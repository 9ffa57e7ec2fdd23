"""The data sets the trainer's data arguments describe: motion capture through virtual cameras, or
Human3.6M with the standard protocol."""
from __future__ import annotations

import argparse
from typing import List, Optional

import numpy as np

from ..data import PoseWindowDataset, load_cmu, project_clips
from ..data.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS, load_h36m_sequences, sequences_by_action
from ..data.readers import MAKE_MOTION_HINT, DataFileNotFoundError, DataLayoutError

__all__ = ["make_cmu_datasets", "make_h36m_datasets", "make_datasets"]


def _test_clips_of(path: str, max_clips: Optional[int]) -> List[np.ndarray]:
    """Clips of a ``--test-data`` file: its test split, or every clip when it has no split or no test clips."""
    mocap = load_cmu(path)
    has_test = mocap.split is not None and len(mocap.clip_indices("test")) > 0
    return mocap.clips("test" if has_test else None, max_clips)


def make_cmu_datasets(path: str, num_frames: int, *, cameras: int = 4, noise_px: float = 0.0, seed: int = 0,
                      train_stride: int = 9, flip: bool = True, max_train_clips: Optional[int] = None,
                      max_test_clips: Optional[int] = None, split_by: Optional[str] = None,
                      test_data: Optional[str] = None):
    """Training windows and test sequences from a motion file (CMU layout) through seeded virtual cameras.

    ``split_by`` replaces the file's train/test split (see
    :func:`~hourglass_tokenizer.data.readers.split_clips`); it is required when the file has none.
    With ``test_data`` the test sequences come from that file instead (its test split, or all of it
    when it has none). Returns ``(train PoseWindowDataset, test PoseWindowDataset)``; the test set's
    ``sequences`` are what :func:`evaluate` scores. Training and test cameras use different seeds.

    Raises:
        DataError: a file is missing, has the wrong layout, or a split is empty.
    """
    mocap = load_cmu(path)
    if split_by:
        mocap = mocap.with_split(split_by)
    train_clips = mocap.clips("train", max_train_clips)
    test_clips = _test_clips_of(test_data, max_test_clips) if test_data else mocap.clips("test", max_test_clips)
    where = f"{path}" + (f" split by {split_by}" if split_by else "")
    if not train_clips:
        raise DataLayoutError(f"{where}: no training clips; choose a split with --split-by (e.g. every:5)")
    if not test_clips:
        raise DataLayoutError(f"{test_data or where}: no test clips; choose a split with --split-by (e.g. every:5) "
                              "or score on another file with --test-data")
    train_seqs = project_clips(train_clips, cameras, seed, noise_px=noise_px)
    test_seqs = project_clips(test_clips, cameras, seed + 1, noise_px=noise_px)
    return (PoseWindowDataset(train_seqs, num_frames, stride=train_stride, flip=flip),
            PoseWindowDataset(test_seqs, num_frames, stride=num_frames))


def make_h36m_datasets(data_dir: str, num_frames: int, *, keypoints: str = "cpn", train_stride: int = 9,
                       flip: bool = True, max_train_sequences: Optional[int] = None,
                       max_test_sequences: Optional[int] = None, test_data: Optional[str] = None,
                       cameras: int = 4, noise_px: float = 0.0, seed: int = 0):
    """Human3.6M with the standard protocol (:mod:`hourglass_tokenizer.data.h36m`).

    Trains on S1, S5, S6, S7, S8 and tests on S9, S11 (every recording and camera; ``max_*_sequences``
    keep the first few, for smoke tests). Returns ``(train PoseWindowDataset, test PoseWindowDataset,
    test sequences grouped by action)`` for :func:`~hourglass_tokenizer.data.h36m.evaluate_by_action`.
    With ``test_data`` (a motion file, cross-dataset) the test set comes from it through virtual cameras
    and the grouping is ``None``.
    """
    train_seqs = load_h36m_sequences(data_dir, TRAIN_SUBJECTS, keypoints=keypoints)[:max_train_sequences]
    train_set = PoseWindowDataset([s.pair for s in train_seqs], num_frames, stride=train_stride, flip=flip)
    if test_data:
        test_pairs = project_clips(_test_clips_of(test_data, max_test_sequences), cameras, seed + 1,
                                   noise_px=noise_px)
        return train_set, PoseWindowDataset(test_pairs, num_frames, stride=num_frames), None
    test_seqs = load_h36m_sequences(data_dir, TEST_SUBJECTS, keypoints=keypoints)[:max_test_sequences]
    return (train_set, PoseWindowDataset([s.pair for s in test_seqs], num_frames, stride=num_frames),
            sequences_by_action(test_seqs))


def make_datasets(args: argparse.Namespace, num_frames: int):
    """The datasets the ``train`` command's data arguments describe: ``(train set, test set, test
    sequences by action or None)``. Raises :class:`~hourglass_tokenizer.data.readers.DataError` for user errors."""
    if args.dataset == "h36m":
        if not args.data_dir:
            raise DataFileNotFoundError("--dataset h36m needs --data-dir DIR, the folder holding VideoPose3D's "
                                        "data_3d_h36m.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz (or _gt)")
        return make_h36m_datasets(
            args.data_dir, num_frames, keypoints=args.keypoints, train_stride=args.train_stride,
            flip=not args.no_flip_augment, max_train_sequences=args.max_train_clips,
            max_test_sequences=args.max_test_clips, test_data=args.test_data, cameras=args.cameras,
            noise_px=args.noise_px, seed=args.seed)
    if not args.data:
        raise DataFileNotFoundError(f"--dataset mocap needs --data FILE, a motion .npz; {MAKE_MOTION_HINT}")
    return (*make_cmu_datasets(
        args.data, num_frames, cameras=args.cameras, noise_px=args.noise_px, seed=args.seed,
        train_stride=args.train_stride, flip=not args.no_flip_augment, max_train_clips=args.max_train_clips,
        max_test_clips=args.max_test_clips, split_by=args.split_by, test_data=args.test_data), None)
