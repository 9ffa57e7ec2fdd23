"""3D pose errors: MPJPE (protocol 1), P-MPJPE (protocol 2), N-MPJPE and MPJVE, and the 3D PCK and
AUC of MPI-INF-3DHP.

Units: every function returns the mean error in the units of its inputs multiplied by ``scale``.
The shared data and the training code use metres, so pass ``scale=MM_PER_M`` (1000) to report
millimetres, as the literature does; the default ``scale=1`` keeps the input units (and keeps
:func:`mpjpe` usable as a training loss). MPJVE is per frame (mm/frame for metres and scale 1000),
as VideoPose3D reports it; multiply by the frame rate for mm/s.

Inputs are ``(..., J, 3)`` torch tensors or numpy arrays of the same shape; a pose is the last two
axes. Torch inputs give a 0-d tensor (differentiable for MPJPE, N-MPJPE and MPJVE); numpy inputs a float.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

MM_PER_M = 1000.0
#: The thresholds of MPI-INF-3DHP's PCK curve, whose mean is the AUC: 0 to 150 mm in steps of 5 (31 values).
PCK_THRESHOLDS_MM: tuple = tuple(float(t) for t in range(0, 151, 5))
ArrayLike = Union[torch.Tensor, np.ndarray]


def _as_tensors(pred: ArrayLike, target: ArrayLike):
    is_numpy = not isinstance(pred, torch.Tensor)
    p = torch.as_tensor(np.asarray(pred)) if is_numpy else pred
    t = torch.as_tensor(np.asarray(target)) if not isinstance(target, torch.Tensor) else target
    if p.shape != t.shape:
        raise ValueError(f"prediction {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    if p.ndim < 2:
        raise ValueError("expected poses of shape (..., J, C)")
    return p, t.to(p), is_numpy


def _out(value: torch.Tensor, is_numpy: bool):
    return float(value) if is_numpy else value


def mpjpe(pred: ArrayLike, target: ArrayLike, *, scale: float = 1.0):
    """Mean per-joint position error: mean Euclidean distance between matching joints (protocol 1).

    No alignment is done: root-relative inputs give the usual protocol-1 figure.
    """
    p, t, is_numpy = _as_tensors(pred, target)
    return _out(torch.linalg.vector_norm(p - t, dim=-1).mean() * scale, is_numpy)


def procrustes_align(pred: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Align each pose of ``pred`` to ``target`` by the similarity transform (rotation, uniform scale,
    translation) that minimises the squared error, reflections excluded (Umeyama's method).

    Computed in float64; returns the aligned prediction in the input's type and dtype.
    """
    p, t, is_numpy = _as_tensors(pred, target)
    P, G = p.detach().double(), t.detach().double()
    mu_p, mu_g = P.mean(dim=-2, keepdim=True), G.mean(dim=-2, keepdim=True)
    P0, G0 = P - mu_p, G - mu_g
    # Maximise tr(R^T P0^T G0) over rotations R (row-vector convention: aligned = s P0 R + mu_g).
    U, S, Vh = torch.linalg.svd(P0.transpose(-1, -2) @ G0)
    # Exclude reflections: flip the weakest axis where det(U Vh) < 0.
    sign = torch.sign(torch.linalg.det(U @ Vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    D = torch.ones_like(S)
    D[..., -1] = sign
    R = (U * D.unsqueeze(-2)) @ Vh
    norm_p = (P0 ** 2).sum(dim=(-2, -1))
    s = (S * D).sum(dim=-1) / norm_p.clamp_min(1e-12)
    aligned = s[..., None, None] * (P0 @ R) + mu_g
    return aligned.numpy().astype(np.asarray(pred).dtype) if is_numpy else aligned.to(p.dtype)


def p_mpjpe(pred: ArrayLike, target: ArrayLike, *, scale: float = 1.0):
    """Procrustes-aligned MPJPE (protocol 2): MPJPE after aligning each predicted pose to its target
    with the best rotation, uniform scale and translation. Not differentiable (alignment detached)."""
    p, t, is_numpy = _as_tensors(pred, target)
    aligned = procrustes_align(p, t)
    return _out(torch.linalg.vector_norm(aligned.double() - t.double(), dim=-1).mean().to(p.dtype) * scale,
                is_numpy)


def n_mpjpe(pred: ArrayLike, target: ArrayLike, *, scale: float = 1.0):
    """Scale-normalised MPJPE: MPJPE after scaling each predicted pose by the least-squares factor
    ``<target, pred> / <pred, pred>`` (no rotation or translation), as in Rhodin et al. 2018."""
    p, t, is_numpy = _as_tensors(pred, target)
    k = (t * p).sum(dim=(-2, -1), keepdim=True) / (p * p).sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return _out(torch.linalg.vector_norm(k * p - t, dim=-1).mean() * scale, is_numpy)


def mpjve(pred: ArrayLike, target: ArrayLike, *, scale: float = 1.0, time_dim: int = -3):
    """Mean per-joint velocity error: MPJPE of the frame-to-frame differences along ``time_dim``
    (per frame; ``(..., T, J, 3)`` inputs with ``T >= 2``)."""
    p, t, is_numpy = _as_tensors(pred, target)
    if p.ndim < 3 or p.shape[time_dim] < 2:
        raise ValueError("MPJVE needs at least two frames along time_dim")
    dv = torch.diff(p, dim=time_dim) - torch.diff(t, dim=time_dim)
    return _out(torch.linalg.vector_norm(dv, dim=-1).mean() * scale, is_numpy)


def pose_metrics(pred: ArrayLike, target: ArrayLike, *, scale: float = MM_PER_M,
                 velocity: bool = True) -> Dict[str, float]:
    """MPJPE, P-MPJPE, N-MPJPE and (with ``velocity``, for a sequence ``(N, J, 3)`` of consecutive
    frames) MPJVE as floats, in mm for metre inputs. Pass ``velocity=False`` for poses that are not
    consecutive frames of one sequence."""
    p, t, _ = _as_tensors(pred, target)
    p, t = p.detach().double(), t.detach().double()
    out = {"mpjpe": float(mpjpe(p, t, scale=scale)), "p_mpjpe": float(p_mpjpe(p, t, scale=scale)),
           "n_mpjpe": float(n_mpjpe(p, t, scale=scale))}
    if velocity and p.ndim >= 3 and p.shape[-3] >= 2:
        out["mpjve"] = float(mpjve(p, t, scale=scale))
    return out


def _joint_errors(pred: ArrayLike, target: ArrayLike, scale: float, joints: Optional[Sequence[int]]) -> torch.Tensor:
    p, t, _ = _as_tensors(pred, target)
    errors = torch.linalg.vector_norm(p.detach().double() - t.detach().double(), dim=-1) * scale
    return errors if joints is None else errors[..., list(joints)]


def pck(pred: ArrayLike, target: ArrayLike, *, threshold: float = 150.0, scale: float = MM_PER_M,
        joints: Optional[Sequence[int]] = None) -> float:
    """Percentage of correct keypoints: the share (in %) of joints whose error, times ``scale``, is below
    ``threshold`` (strictly, as MPI-INF-3DHP's evaluation counts). The default threshold is 150 mm for
    inputs in metres; ``joints`` restricts the joints counted (axis -2 indices).

    As in the MPI-INF-3DHP protocol, pass root-relative poses: no alignment is done here.
    """
    return float((_joint_errors(pred, target, scale, joints) < threshold).double().mean() * 100)


def auc(pred: ArrayLike, target: ArrayLike, *, thresholds: Sequence[float] = PCK_THRESHOLDS_MM,
        scale: float = MM_PER_M, joints: Optional[Sequence[int]] = None) -> float:
    """Area under the PCK curve, in %: the mean of :func:`pck` over ``thresholds`` (MPI-INF-3DHP's 0, 5,
    ..., 150 mm by default)."""
    errors = _joint_errors(pred, target, scale, joints)
    return float(np.mean([(errors < t).double().mean().item() for t in thresholds]) * 100)
