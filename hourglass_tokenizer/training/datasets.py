"""The data sets the trainer's data arguments describe: motion capture through virtual cameras, or
Human3.6M with the standard protocol."""
from __future__ import annotations

import argparse
import math
import os
from typing import List, Optional

import numpy as np

from ..data import JOINT_NAMES, CMUMocap, PoseWindowDataset, load_cmu, project_clips
from ..data.windows import with_input_channels
from ..data.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS, load_h36m_sequences, sequences_by_action
from ..data.mpi_inf_3dhp import TEST_FILE, load_3dhp_test, make_3dhp_datasets
from ..data.readers import MAKE_MOTION_HINT, DataFileNotFoundError, DataLayoutError

__all__ = ["make_cmu_datasets", "make_h36m_datasets", "make_datasets", "make_test_set", "check_motion",
           "check_data_arguments"]


def check_motion(mocap: CMUMocap) -> CMUMocap:
    """``mocap`` after checking what training needs of it: a positive finite frame rate, clips with
    frames, and finite positions (a NaN would train a whole epoch and then break the evaluation).

    Raises:
        DataLayoutError: one line naming the file, and the clip, frame and joint of the first bad value.
    """
    where = mocap.path or "motion file"
    if not 0 < mocap.fps < math.inf:
        raise DataLayoutError(f"{where}: fps is {mocap.fps:g}; expected a positive number of frames per second")
    lengths = np.diff(mocap.clip_offsets)
    if len(lengths) == 0:
        raise DataLayoutError(f"{where}: holds no clips; {MAKE_MOTION_HINT}")
    if (lengths == 0).any():
        raise DataLayoutError(f"{where}: clip {str(mocap.clip_names[int(np.argmin(lengths))])!r} has no frames")
    finite = np.isfinite(mocap.positions).all(axis=-1)
    if not finite.all():
        index, joint = (int(i) for i in np.argwhere(~finite)[0])
        clip = int(np.searchsorted(mocap.clip_offsets, index, side="right")) - 1
        raise DataLayoutError(
            f"{where}: clip {str(mocap.clip_names[clip])!r} frame {index - int(mocap.clip_offsets[clip])} joint "
            f"{JOINT_NAMES[joint]} is {mocap.positions[index, joint].tolist()} (not finite); "
            f"{int((~finite).any(axis=-1).sum())} frame(s) in the file have such values")
    return mocap


def _read_motion(path: str) -> CMUMocap:
    return check_motion(load_cmu(path))


def _test_clips_of(path: str, max_clips: Optional[int], split_by: Optional[str] = None) -> List[np.ndarray]:
    """Clips of a ``--test-data`` file: its test split (``split_by`` replacing the file's own), or every
    clip when it has no split or no test clips."""
    mocap = _read_motion(path)
    if split_by:
        mocap = mocap.with_split(split_by)
    has_test = mocap.split is not None and len(mocap.clip_indices("test")) > 0
    return mocap.clips("test" if has_test else None, max_clips)


def make_cmu_datasets(path: str, num_frames: int, *, cameras: int = 4, noise_px: float = 0.0, seed: int = 0,
                      train_stride: int = 9, flip: bool = True, max_train_clips: Optional[int] = None,
                      max_test_clips: Optional[int] = None, split_by: Optional[str] = None,
                      test_data: Optional[str] = None, input_channels: int = 2):
    """Training windows and test sequences from a motion file (CMU layout) through seeded virtual cameras.

    ``split_by`` replaces the file's train/test split (see
    :func:`~hourglass_tokenizer.data.readers.split_clips`); it is required when the file has none.
    With ``test_data`` the test sequences come from that file instead (its test split, or all of it
    when it has none). Returns ``(train PoseWindowDataset, test PoseWindowDataset)``; the test set's
    ``sequences`` are what :func:`evaluate` scores. Training and test cameras use different seeds.
    ``input_channels`` 3 appends a confidence of 1 to every 2D keypoint
    (:func:`~hourglass_tokenizer.data.windows.with_input_channels`).

    Raises:
        DataError: a file is missing, has the wrong layout or non-finite values (:func:`check_motion`),
            or a split is empty.
    """
    mocap = _read_motion(path)
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
    train_seqs = with_input_channels(project_clips(train_clips, cameras, seed, noise_px=noise_px), input_channels)
    test_seqs = with_input_channels(project_clips(test_clips, cameras, seed + 1, noise_px=noise_px), input_channels)
    return (PoseWindowDataset(train_seqs, num_frames, stride=train_stride, flip=flip),
            PoseWindowDataset(test_seqs, num_frames, stride=num_frames))


def make_h36m_datasets(data_dir: str, num_frames: int, *, keypoints: str = "cpn", train_stride: int = 9,
                       flip: bool = True, max_train_sequences: Optional[int] = None,
                       max_test_sequences: Optional[int] = None, test_data: Optional[str] = None,
                       cameras: int = 4, noise_px: float = 0.0, seed: int = 0, input_channels: int = 2):
    """Human3.6M with the standard protocol (:mod:`hourglass_tokenizer.data.h36m`).

    Trains on S1, S5, S6, S7, S8 and tests on S9, S11 (every recording and camera; ``max_*_sequences``
    keep the first few, for smoke tests). Returns ``(train PoseWindowDataset, test PoseWindowDataset,
    test sequences grouped by action)`` for :func:`~hourglass_tokenizer.data.h36m.evaluate_by_action`.
    With ``test_data`` (a motion file, cross-dataset) the test set comes from it through virtual cameras
    and the grouping is ``None``. ``input_channels``: as in :func:`make_cmu_datasets`.
    """
    train_seqs = load_h36m_sequences(data_dir, TRAIN_SUBJECTS, keypoints=keypoints)[:max_train_sequences]
    train_set = PoseWindowDataset(with_input_channels([s.pair for s in train_seqs], input_channels), num_frames,
                                  stride=train_stride, flip=flip)
    if test_data:
        test_pairs = project_clips(_test_clips_of(test_data, max_test_sequences), cameras, seed + 1,
                                   noise_px=noise_px)
        return (train_set, PoseWindowDataset(with_input_channels(test_pairs, input_channels), num_frames,
                                             stride=num_frames), None)
    test_seqs = load_h36m_sequences(data_dir, TEST_SUBJECTS, keypoints=keypoints)[:max_test_sequences]
    by_action = {action: with_input_channels(pairs, input_channels)
                 for action, pairs in sequences_by_action(test_seqs).items()}
    return (train_set, PoseWindowDataset(with_input_channels([s.pair for s in test_seqs], input_channels),
                                         num_frames, stride=num_frames), by_action)


def check_data_arguments(args: argparse.Namespace) -> None:
    """Check, before any model or data is built, that the data arguments name files that exist.

    Raises:
        DataFileNotFoundError: ``--data`` (``--dataset mocap``) or ``--test-data`` names no file, or
            ``--dataset h36m`` has no ``--data-dir`` (its files are checked by their reader, whose
            message says how to prepare them); the message says how to make or get the files.
    """
    if args.dataset == "3dhp":
        if not args.data_dir:
            raise DataFileNotFoundError("--dataset 3dhp needs --data-dir DIR, the folder holding data_train_3dhp.npz "
                                        "and data_test_3dhp.npz (MPI-INF-3DHP as P-STMO and MotionAGFormer prepare it)")
    elif args.dataset == "h36m":
        if not args.data_dir:
            raise DataFileNotFoundError("--dataset h36m needs --data-dir DIR, the folder holding VideoPose3D's "
                                        "data_3d_h36m.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz (or _gt)")
    elif not args.data:
        raise DataFileNotFoundError(f"--dataset mocap needs --data FILE, a motion .npz; {MAKE_MOTION_HINT}")
    motion_files = [("--test-data", getattr(args, "test_data", None))]
    if args.dataset == "mocap":
        motion_files.insert(0, ("--data", args.data))
    for option, path in motion_files:
        if path and not os.path.isfile(path):
            raise DataFileNotFoundError(f"{option} {path}: no such file; {MAKE_MOTION_HINT}")


def make_test_set(args: argparse.Namespace, num_frames: int, input_channels: int = 2) -> PoseWindowDataset:
    """The test sequences the data arguments describe, for scoring a model (the ``tune`` command): the
    test split of ``--data`` (``--split-by`` replacing the file's own), or all of it when it has none,
    through seeded virtual cameras (seed + 1, as the trainer's test set); Human3.6M: S9 and S11."""
    check_data_arguments(args)
    if args.dataset == "3dhp":
        pairs = [s.pair for s in load_3dhp_test(os.path.join(args.data_dir, TEST_FILE))[:args.max_test_clips]]
    elif args.dataset == "h36m":
        sequences = load_h36m_sequences(args.data_dir, TEST_SUBJECTS, keypoints=args.keypoints)[:args.max_test_clips]
        pairs = [s.pair for s in sequences]
    else:
        clips = _test_clips_of(args.data, args.max_test_clips, getattr(args, "split_by", None))
        pairs = project_clips(clips, args.cameras, args.seed + 1, noise_px=args.noise_px)
    return PoseWindowDataset(with_input_channels(pairs, input_channels), num_frames, stride=num_frames)


def make_datasets(args: argparse.Namespace, num_frames: int, input_channels: int = 2):
    """The datasets the ``train`` command's data arguments describe: ``(train set, test set, test
    sequences by action or None)``, with ``input_channels`` values per 2D keypoint (3: a confidence
    of 1 appended). Raises :class:`~hourglass_tokenizer.data.readers.DataError` for user errors,
    among them a training set without windows."""
    train_set, test_set, by_action = _make_datasets(args, num_frames, input_channels)
    if len(train_set) == 0:
        raise DataLayoutError(f"{args.data or args.data_dir}: the training split holds no frames to train on")
    return train_set, test_set, by_action


def _make_datasets(args: argparse.Namespace, num_frames: int, input_channels: int):
    check_data_arguments(args)
    if args.dataset == "3dhp":  # the third item: the test sequences, scored on their valid frames
        return make_3dhp_datasets(args.data_dir, num_frames, train_stride=args.train_stride,
                                  flip=not args.no_flip_augment, max_train_clips=args.max_train_clips,
                                  max_test_clips=args.max_test_clips, input_channels=input_channels)
    if args.dataset == "h36m":
        return make_h36m_datasets(
            args.data_dir, num_frames, keypoints=args.keypoints, train_stride=args.train_stride,
            flip=not args.no_flip_augment, max_train_sequences=args.max_train_clips,
            max_test_sequences=args.max_test_clips, test_data=args.test_data, cameras=args.cameras,
            noise_px=args.noise_px, seed=args.seed, input_channels=input_channels)
    return (*make_cmu_datasets(
        args.data, num_frames, cameras=args.cameras, noise_px=args.noise_px, seed=args.seed,
        train_stride=args.train_stride, flip=not args.no_flip_augment, max_train_clips=args.max_train_clips,
        max_test_clips=args.max_test_clips, split_by=args.split_by, test_data=args.test_data,
        input_channels=input_channels), None)
