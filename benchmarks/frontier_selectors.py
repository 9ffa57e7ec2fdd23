"""Frame selectors built for recovery by interpolation, measured by ``frontier_cmu.py`` and kept out of
the plugin because none beat uniform spacing there (``results/frontier_cmu.md``): the exact
keyframes of a piecewise-linear fit (with an optional regular-spacing prior) and frames evenly spaced
along travelled distance. Each maps features ``(b, t, c)`` and a count ``f`` to ``(b, f)`` ascending
frame indices, as ``wrap_with_hot(selector=...)`` expects of a callable.
"""
from __future__ import annotations

import math

import torch

__all__ = ["interpolation_costs", "keyframes", "motion_spaced", "KeyframeSelector", "MotionSpacedSelector"]


def interpolation_costs(features: torch.Tensor) -> torch.Tensor:
    """The squared error of linear interpolation between every pair of frames, ``(b, t, t)`` float64.

    ``cost[:, i, j]`` (``i < j``) is ``sum_{i < k < j} ||x_k - ((j - k) x_i + (k - i) x_j) / (j - i)||^2``:
    what :func:`~hourglass_tokenizer.recovery.interpolate_frames` would get wrong on the frames
    between ``i`` and ``j`` if only those two were kept. Entries with ``i >= j`` are 0. Computed from
    prefix sums and Gram matrices in ``O(t^2 c)`` time and ``O(t^2)`` memory, never per frame.
    """
    if features.dim() != 3:
        raise ValueError(f"expected features of shape (batch, frames, channels), got {tuple(features.shape)}")
    x = features.detach().double()
    b, t, _ = x.shape
    frame = torch.arange(t, device=x.device, dtype=x.dtype)
    zero = x.new_zeros(b, 1, x.shape[-1])
    p0 = torch.cat([zero, x.cumsum(1)], 1)  # p0[:, k] = sum of x over frames < k
    p1 = torch.cat([zero, (frame[None, :, None] * x).cumsum(1)], 1)  # frame-weighted
    norms = (x * x).sum(-1)
    pq = torch.cat([norms.new_zeros(b, 1), norms.cumsum(1)], 1)
    gram = x @ x.transpose(1, 2)
    g0, g1 = x @ p0.transpose(1, 2), x @ p1.transpose(1, 2)  # (b, t, t + 1): <x_a, p[:, k]>
    i, j = frame.long()[:, None], frame.long()[None, :]
    inner = (i + 1).clamp(max=t).expand(t, t)  # the sums run over frames i+1 .. j-1
    last = j.expand(t, t)

    def between(prefix: torch.Tensor) -> torch.Tensor:  # (b, t+1, ...) -> sums over i<k<j, (b, t, t, ...)
        return prefix[:, last] - prefix[:, inner]

    def dot(g: torch.Tensor, row: torch.Tensor) -> torch.Tensor:  # <x_row, sum over i<k<j>
        return g[:, row.expand(t, t), last] - g[:, row.expand(t, t), inner]

    gap = (j - i).to(x.dtype).clamp(min=1)
    count = (gap - 1).clamp(min=0)
    xi_s0, xj_s0 = dot(g0, i), dot(g0, j)
    xi_s1, xj_s1 = dot(g1, i), dot(g1, j)
    ni, nj = norms[:, :, None], norms[:, None, :]
    # With d = x_j - x_i, y_k = x_k - x_i and a_k = (k - i) / (j - i), the error is
    # sum ||y_k||^2 - 2 sum a_k <y_k, d> + ||d||^2 sum a_k^2.
    sum_y2 = between(pq) - 2 * xi_s0 + count * ni
    s1_minus_i_s0_dot_d = (xj_s1 - xi_s1) - i.to(x.dtype) * (xj_s0 - xi_s0)
    sum_ay_d = s1_minus_i_s0_dot_d / gap - (count / 2) * (gram - ni)
    sum_a2 = count * (2 * gap - 1) / (6 * gap)
    d2 = nj - 2 * gram + ni
    cost = sum_y2 - 2 * sum_ay_d + sum_a2 * d2
    return torch.where(j > i, cost.clamp(min=0), torch.zeros((), dtype=x.dtype, device=x.device))


def keyframes(features: torch.Tensor, f: int, *, spacing: float = 0.0) -> torch.Tensor:
    """The ``f`` frames from which linear interpolation rebuilds the features best (exact, by dynamic
    programming), keeping the first and the last frame.

    Minimises ``E(kept) / E(uniform) + spacing * sum_gaps (gap / even_gap)^2 / (f - 1)`` over all
    selections that keep both ends, where ``E`` is the total squared interpolation error
    (:func:`interpolation_costs`), ``uniform`` the evenly spaced selection and ``even_gap =
    (t - 1) / (f - 1)``. Both terms are 1 for evenly spaced frames; ``spacing`` is a prior for regular
    spacing (``0``: the pure reconstruction optimum; large: the evenly spaced frames). ``f == 1``
    keeps the frame nearest to all others. Ties go to the earlier frames.

    Returns:
        ``(b, f)`` int64 indices, ascending.
    """
    b, t = features.shape[:2]
    if not 1 <= f <= t:
        raise ValueError(f"keyframes cannot pick {f} of {t} frames")
    with torch.no_grad():
        x = features.detach().double()
        if f == 1:
            spread = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").pow(2).sum(-1)
            return spread.argmin(dim=-1, keepdim=True)
        cost = interpolation_costs(x)
        frame = torch.arange(t, device=x.device)
        even = torch.linspace(0, t - 1, f, device=x.device).round().long()
        scale = cost[:, even[:-1], even[1:]].sum(-1).clamp(min=1e-12)[:, None, None]
        gap = (frame[None, :] - frame[:, None]).to(x.dtype)
        step = cost / scale + spacing * (gap * (f - 1) / (t - 1)).pow(2) / (f - 1)
        step = torch.where(gap > 0, step, torch.full_like(step, math.inf))
        # best[:, j]: the least cost of keeping frame 0, then s more frames, the last of them j.
        best = torch.full((b, t), math.inf, dtype=x.dtype, device=x.device)
        best[:, 0] = 0
        came_from = []
        for _ in range(f - 1):
            total = best[:, :, None] + step  # (b, i, j)
            best, arg = total.min(dim=1)  # min returns the first minimum: the earlier predecessor
            came_from.append(arg)
        idx = [torch.full((b,), t - 1, dtype=torch.long, device=x.device)]
        for arg in reversed(came_from):
            idx.append(arg.gather(1, idx[-1][:, None])[:, 0])
        return torch.stack(idx[::-1], dim=1)


def motion_spaced(features: torch.Tensor, f: int, *, mix: float = 0.5) -> torch.Tensor:
    """Frames evenly spaced along a blend of time and travelled distance, keeping both ends.

    With ``m_k = ||x_k - x_{k-1}||`` the motion into frame ``k`` (``m_0 = 0``), each frame gets the
    position ``u_k = (1 - mix) k / (t - 1) + mix sum_{l <= k} m_l / sum_l m_l`` in ``[0, 1]`` (time
    alone when nothing moves), and the ``s``-th kept frame is the one whose ``u`` is nearest to
    ``s / (f - 1)`` among the frames after the previous pick that still leave room for the rest
    (earlier frame on a tie). ``mix=0`` is evenly spaced in time; ``mix=1`` evenly spaced in
    motion, so fast stretches get more frames. ``f == 1`` keeps the middle of the path.

    Returns:
        ``(b, f)`` int64 indices, ascending.
    """
    b, t = features.shape[:2]
    if not 1 <= f <= t:
        raise ValueError(f"motion_spaced cannot pick {f} of {t} frames")
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"motion_spaced needs 0 <= mix <= 1, got {mix}")
    with torch.no_grad():
        x = features.detach().double()
        frame = torch.arange(t, device=x.device)
        steps = (x[:, 1:] - x[:, :-1]).norm(dim=-1)
        travelled = torch.cat([steps.new_zeros(b, 1), steps.cumsum(1)], 1)
        time = frame.to(x.dtype) / max(t - 1, 1)
        total = travelled[:, -1:]
        along = torch.where(total > 0, travelled / total.clamp(min=1e-300), time.expand(b, t))
        u = (1 - mix) * time + mix * along
        targets = [0.5] if f == 1 else [s / (f - 1) for s in range(f)]
        picks, previous = [], torch.full((b, 1), -1, device=x.device)
        for s, target in enumerate(targets):
            allowed = (frame[None, :] > previous) & (frame[None, :] <= t - f + s)
            distance = torch.where(allowed, (u - target).abs(), torch.full_like(u, math.inf))
            previous = distance.argmin(dim=1, keepdim=True)  # first minimum: the earlier frame
            picks.append(previous)
        return torch.cat(picks, dim=1)


class KeyframeSelector:
    """:func:`keyframes` with a fixed ``spacing``, as a picklable callable."""

    def __init__(self, spacing: float = 0.0) -> None:
        self.spacing = spacing

    def __call__(self, features: torch.Tensor, f: int) -> torch.Tensor:
        return keyframes(features, f, spacing=self.spacing)

    def __repr__(self) -> str:
        return f"KeyframeSelector(spacing={self.spacing})"


class MotionSpacedSelector:
    """:func:`motion_spaced` with a fixed ``mix``, as a picklable callable."""

    def __init__(self, mix: float = 0.5) -> None:
        self.mix = mix

    def __call__(self, features: torch.Tensor, f: int) -> torch.Tensor:
        return motion_spaced(features, f, mix=self.mix)

    def __repr__(self) -> str:
        return f"MotionSpacedSelector(mix={self.mix})"
