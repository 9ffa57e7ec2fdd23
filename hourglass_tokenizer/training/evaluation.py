"""Scoring a model on whole test sequences: MPJPE, P-MPJPE and N-MPJPE in millimetres, overall
(:func:`evaluate`) or per Human3.6M action (:func:`evaluate_by_action`); PCK, AUC and MPJPE on
MPI-INF-3DHP's valid frames (:func:`evaluate_3dhp`)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from torch import nn

from ..data.mpi_inf_3dhp import PCK_JOINTS, ThreeDHPSequence
from ..data.skeleton import ROOT_JOINT
from ..data.windows import with_input_channels
from .inference import detect_seq2frame, model_input_channels, predict
from .metrics import MM_PER_M, auc, mpjpe, pck, pose_metrics

__all__ = ["evaluate", "evaluate_by_action", "format_action_table", "evaluate_3dhp", "format_3dhp_scores"]


def _sequences_of(data: Any) -> List[Tuple[np.ndarray, np.ndarray]]:
    if hasattr(data, "sequences"):
        return list(data.sequences)
    return [(np.asarray(a), np.asarray(b)) for a, b in data]


def evaluate(model: nn.Module, data: Any, *, flip: bool = False, batch_size: int = 64,
             frame_stride: int = 1, num_frames: Optional[int] = None) -> Dict[str, float]:
    """MPJPE, P-MPJPE and N-MPJPE in mm (targets in metres) over whole test sequences.

    ``data`` is a :class:`~hourglass_tokenizer.data.PoseWindowDataset` (its ``sequences`` are used,
    not its windows, so every frame counts once) or a list of ``(2D (N, J, 2), 3D (N, J, 3))``.
    Predictions come from :func:`hourglass_tokenizer.inference.predict`; with ``frame_stride > 1``
    only every ``frame_stride``-th frame of each sequence is predicted and scored.
    Errors are averaged over all scored frames. Also returns ``frames``, the number scored.
    """
    preds, targets = [], []
    sequences = _sequences_of(data)
    if not sequences:
        raise ValueError("evaluate: no test sequences")
    seq2frame = detect_seq2frame(model, num_frames, *np.asarray(sequences[0][0]).shape[1:])
    for kp2d, pos3d in sequences:
        frames = np.arange(0, len(kp2d), frame_stride)
        preds.append(predict(model, kp2d, flip=flip, batch_size=batch_size, num_frames=num_frames, frames=frames,
                             seq2frame=seq2frame))
        targets.append(np.asarray(pos3d)[frames])
    pred, target = np.concatenate(preds), np.concatenate(targets)
    # Frames of different sequences (and strided frames) are not consecutive: no velocity error.
    return {**pose_metrics(pred, target, scale=MM_PER_M, velocity=False), "frames": int(len(pred))}


def evaluate_by_action(model, groups: Dict[str, List[Tuple[np.ndarray, np.ndarray]]], **evaluate_kwargs
                       ) -> Dict[str, Dict[str, float]]:
    """Protocol 1 (MPJPE) and Protocol 2 (P-MPJPE) in mm, per action and averaged over actions.

    ``groups`` maps an action to its ``(2D, 3D)`` sequences (:func:`sequences_by_action`). Each action's
    errors are averaged over its frames (all cameras and recordings), then the actions are averaged
    with equal weight, as the Human3.6M protocol does. Returns ``{action: {"mpjpe", "p_mpjpe",
    "frames"}, ..., "average": {...}}``. ``evaluate_kwargs`` go to
    :func:`evaluate` (``flip``, ``batch_size``, ``frame_stride``, ``num_frames``).
    """
    if not groups:
        raise ValueError("evaluate_by_action: no test actions")
    table: Dict[str, Dict[str, float]] = {}
    for action, seqs in groups.items():
        scores = evaluate(model, seqs, **evaluate_kwargs)
        table[action] = {"mpjpe": scores["mpjpe"], "p_mpjpe": scores["p_mpjpe"], "frames": scores["frames"]}
    table["average"] = {key: float(np.mean([row[key] for row in table.values()])) for key in ("mpjpe", "p_mpjpe")}
    table["average"]["frames"] = int(sum(row["frames"] for a, row in table.items() if a != "average"))
    return table


def format_action_table(table: Dict[str, Dict[str, float]]) -> str:
    """The per-action table of :func:`evaluate_by_action` as aligned text (one row per action, then the average)."""
    width = max(len(a) for a in table)
    lines = [f"{'action':<{width}}  {'MPJPE (P1)':>10}  {'P-MPJPE (P2)':>12}  {'frames':>7}"]
    for action, row in table.items():
        lines.append(f"{action:<{width}}  {row['mpjpe']:>10.1f}  {row['p_mpjpe']:>12.1f}  {row['frames']:>7d}")
    return "\n".join(lines)


def evaluate_3dhp(model: Any, sequences: Sequence[ThreeDHPSequence], *, flip: bool = False, batch_size: int = 64,
                  num_frames: Optional[int] = None) -> Dict[str, float]:
    """PCK (150 mm), AUC (0-150 mm) and MPJPE (mm) over the valid frames of ``sequences``.

    Each sequence is predicted whole (:func:`hourglass_tokenizer.training.inference.predict`, so the valid
    frames see their real neighbours; a model taking ``x, y, confidence`` gets a confidence of 1);
    predictions and targets are made relative to their pelvis; PCK and AUC count the :data:`PCK_JOINTS`,
    MPJPE all 17. Returns ``{"pck", "auc", "mpjpe", "frames"}``.
    """
    if not sequences:
        raise ValueError("evaluate_3dhp: no test sequences")
    channels = model_input_channels(model)
    inputs = [kp for kp, _ in with_input_channels([s.pair for s in sequences], channels)]
    seq2frame = detect_seq2frame(model, num_frames, *inputs[0].shape[1:])
    preds, targets = [], []
    for seq, keypoints in zip(sequences, inputs):
        frames = np.flatnonzero(seq.valid)
        if not len(frames):
            continue
        pred = predict(model, keypoints, flip=flip, batch_size=batch_size, num_frames=num_frames,
                       frames=frames, seq2frame=seq2frame)
        preds.append(pred - pred[:, ROOT_JOINT:ROOT_JOINT + 1])
        targets.append(seq.positions_3d[frames])
    if not preds:
        raise ValueError("evaluate_3dhp: no valid frame in the test sequences")
    pred, target = np.concatenate(preds), np.concatenate(targets)
    return {"pck": pck(pred, target, joints=PCK_JOINTS), "auc": auc(pred, target, joints=PCK_JOINTS),
            "mpjpe": float(mpjpe(pred, target, scale=MM_PER_M)), "frames": int(len(pred))}


def format_3dhp_scores(scores: Dict[str, float]) -> str:
    """One line: ``MPI-INF-3DHP (N valid frames): PCK ... %, AUC ... %, MPJPE ... mm``."""
    return (f"MPI-INF-3DHP ({scores['frames']} valid frames): PCK {scores['pck']:.1f} %, AUC {scores['auc']:.1f} %, "
            f"MPJPE {scores['mpjpe']:.1f} mm")
