"""Frame selectors for token pruning: uniform (the default), DPC-kNN (the paper's), DPC-kNN with coverage
and random, by name. (Selectors built for recovery by interpolation, exact keyframes and motion-spaced
frames, did not beat uniform spacing on the adoption benchmark, so they stay prototypes in
``benchmarks/frontier_selectors.py``; ``benchmarks/results/frontier_cmu.md`` has the numbers.)

Every selector maps per-frame features ``(b, t, c)`` and a count ``f`` to frame indices ``(b, f)``,
sorted in time, unique and in range. Selection never carries gradients.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Optional, Union

import torch

Selector = Callable[..., torch.Tensor]

__all__ = ["DEFAULT_SELECTOR", "dpc_knn", "dpc_knn_scores", "dpc_knn_coverage", "uniform", "DpcKnnSelector",
           "CoverageSelector", "RandomSelector", "resolve_selector", "SELECTORS", "choose_frames", "check_selection",
           "force_frame"]


def _candidates_mask(b: int, t: int, exclude: Optional[int], device: torch.device) -> torch.Tensor:
    keep = torch.ones(b, t, dtype=torch.bool, device=device)
    if exclude is not None:
        keep[:, exclude] = False
    return keep


def _top_scores(score: torch.Tensor, f: int) -> torch.Tensor:
    """The ``f`` frames a stable descending sort puts first (equal scores resolve to the earlier
    frame), ascending."""
    if not (torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()):
        return torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :f].sort(dim=-1).values
    # The same frames by ranking, for exporters that cannot translate a stable sort: frame i's rank
    # counts the frames with a higher score, or an equal score earlier in time; topk then runs on
    # unique keys, so its order among ties never matters. O(t^2) comparisons on tiny tensors.
    t = score.shape[-1]
    frame = torch.arange(t, device=score.device)
    earlier = frame[None, :] < frame[:, None]  # [i, j]: j comes before i
    ahead = (score[:, None, :] > score[:, :, None]) | ((score[:, None, :] == score[:, :, None]) & earlier)
    chosen = ahead.sum(dim=-1) < f
    return torch.topk(torch.where(chosen, frame, frame + t), f, dim=-1, largest=False).values


def dpc_knn(features: torch.Tensor, f: int, *, k: int = 2, exclude: Optional[int] = None) -> torch.Tensor:
    """Density-peaks clustering with k nearest neighbours; returns the ``f`` cluster centres.

    With ``dist = ||x_i - x_j|| / sqrt(c)``, the density is ``rho_i = exp(-mean_{k-NN} dist^2)``
    (the k nearest include the frame itself), ``delta_i`` is the distance to the nearest denser
    frame (the largest distance in the sample for the densest one), and the centres are the ``f``
    largest ``rho * delta``.

    Ties are broken deterministically instead of with random noise: of two frames with equal
    density the earlier one counts as denser, and of equal scores the earlier frame wins. With
    ``k=2`` mutual nearest neighbours always tie, so this matters in practice.

    Args:
        features: ``(b, t, c)`` per-frame features; computed in float32 whatever their dtype.
        f: number of centres, ``1 <= f <= t`` (``t - 1`` when ``exclude`` is given).
        k: neighbours in the density estimate, self included.
        exclude: a frame that may not be chosen (the caller adds it back, e.g. the centre frame).

    Returns:
        ``(b, f)`` int64 indices, ascending along the last dimension.
    """
    if features.dim() != 3:
        raise ValueError(f"dpc_knn expects features of shape (batch, frames, channels), got {tuple(features.shape)}")
    b, t, c = features.shape
    available = t - (1 if exclude is not None else 0)
    if not 1 <= f <= available:
        raise ValueError(f"dpc_knn cannot pick {f} of {available} selectable frames")
    score = dpc_knn_scores(features, k=k)
    keep = _candidates_mask(b, t, exclude, score.device)
    return _top_scores(score.masked_fill(~keep, -math.inf), f)


def dpc_knn_scores(features: torch.Tensor, *, k: int = 2) -> torch.Tensor:
    """DPC-kNN's centre score ``rho * delta`` of every frame, ``(b, t)`` float32 (see :func:`dpc_knn`)."""
    if features.dim() != 3:
        raise ValueError(f"dpc_knn expects features of shape (batch, frames, channels), got {tuple(features.shape)}")
    t, c = features.shape[1:]
    if not 1 <= k <= t:
        raise ValueError(f"dpc_knn needs 1 <= k <= frames ({t}), got k={k}")
    with torch.no_grad():
        x = features.detach().float()
        # The matrix-product path of cdist leaves self-distances around 1e-3, which swamps k=2 densities.
        if torch.compiler.is_exporting():
            # The same exact distances in ops ONNX has (cdist has no ONNX translation); (b, t, t, c) memory.
            dist = (x[:, :, None, :] - x[:, None, :, :]).pow(2).sum(dim=-1).sqrt() / math.sqrt(c)
        else:
            dist = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") / math.sqrt(c)
        nearest = torch.topk(dist, k=k, dim=-1, largest=False).values
        density = torch.exp(-(nearest**2).mean(dim=-1))
        frame = torch.arange(t, device=x.device)
        earlier = frame[None, :] < frame[:, None]  # [i, j]: j comes before i
        denser = (density[:, None, :] > density[:, :, None]) | (
            (density[:, None, :] == density[:, :, None]) & earlier
        )
        dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
        delta = torch.where(denser, dist, dist_max).min(dim=-1).values
        return density * delta


def dpc_knn_coverage(features: torch.Tensor, f: int, *, k: int = 2) -> torch.Tensor:
    """DPC-kNN with coverage: the best-scoring frame of each of ``f`` equal strata of time, with the
    first and the last frame of the window always kept.

    Plain DPC-kNN may leave long stretches without a kept frame, which is what hurts when pruned
    frames are recovered by interpolation. Here stratum ``s`` holds the frames ``i`` with
    ``floor(i * f / t) == s``, so the gap between consecutive kept frames is below two strata,
    ``2 * ceil(t / f)`` frames, while each stratum still keeps its density peak. Ties go to the
    earlier frame. ``f == 1`` keeps the best frame overall.

    Returns:
        ``(b, f)`` int64 indices, ascending.
    """
    b, t = features.shape[:2]
    if not 1 <= f <= t:
        raise ValueError(f"dpc_knn_coverage cannot pick {f} of {t} frames")
    score = dpc_knn_scores(features, k=k)
    frame = torch.arange(t, device=score.device)
    stratum = frame * f // t
    if f > 1:
        # The window's ends lie in the first and last strata: make them win there.
        ends = (frame == 0) | (frame == t - 1)
        score = torch.where(ends, torch.full_like(score, math.inf), score)
    in_stratum = stratum[:, None] == torch.arange(f, device=score.device)[None, :]  # (t, f)
    # argmax returns the first maximal index, so ties go to the earlier frame.
    return torch.where(in_stratum[None], score[:, :, None], -math.inf).argmax(dim=1)


def uniform(features: torch.Tensor, f: int, *, exclude: Optional[int] = None) -> torch.Tensor:
    """Evenly spaced frames (the paper's uniform-sampling ablation); ignores the feature values."""
    b, t = features.shape[:2]
    candidates = torch.arange(t, device=features.device)
    if exclude is not None:
        candidates = candidates[candidates != exclude]
    if not 1 <= f <= candidates.numel():
        raise ValueError(f"uniform cannot pick {f} of {candidates.numel()} selectable frames")
    positions = torch.linspace(0, candidates.numel() - 1, f, device=features.device).round().long()
    return candidates[positions].unsqueeze(0).expand(b, f).clone()


class DpcKnnSelector:
    """:func:`dpc_knn` with a fixed ``k``, as a picklable callable."""

    def __init__(self, k: int = 2) -> None:
        self.k = k

    def __call__(self, features: torch.Tensor, f: int, *, exclude: Optional[int] = None) -> torch.Tensor:
        return dpc_knn(features, f, k=self.k, exclude=exclude)

    def __repr__(self) -> str:
        return f"DpcKnnSelector(k={self.k})"


class CoverageSelector:
    """:func:`dpc_knn_coverage` with a fixed ``k``, as a picklable callable."""

    def __init__(self, k: int = 2) -> None:
        self.k = k

    def __call__(self, features: torch.Tensor, f: int) -> torch.Tensor:
        return dpc_knn_coverage(features, f, k=self.k)

    def __repr__(self) -> str:
        return f"CoverageSelector(k={self.k})"


class RandomSelector:
    """Random frames per sample (the paper's random-sampling ablation).

    Uses a private ``torch.Generator`` so the user's global random stream is never advanced.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, features: torch.Tensor, f: int, *, exclude: Optional[int] = None) -> torch.Tensor:
        b, t = features.shape[:2]
        score = torch.rand(b, t, generator=self.generator).to(features.device)
        keep = _candidates_mask(b, t, exclude, features.device)
        if not 1 <= f <= int(keep[0].sum()):
            raise ValueError(f"random cannot pick {f} of {int(keep[0].sum())} selectable frames")
        return _top_scores(score.masked_fill(~keep, -1.0), f)

    def __repr__(self) -> str:
        return f"RandomSelector(seed={self.seed})"


SELECTORS = ("dpc_knn", "dpc_knn_coverage", "uniform", "random")
#: The selector ``wrap_with_hot`` uses unless told otherwise (README: "Adopting HoT on your pretrained model").
DEFAULT_SELECTOR = "uniform"


def resolve_selector(selector: Union[str, Selector], *, k: int = 2, seed: int = 0) -> Selector:
    """Turn a selector name into a callable; callables pass through unchanged."""
    if callable(selector):
        return selector
    if selector == "dpc_knn":
        return DpcKnnSelector(k)
    if selector == "dpc_knn_coverage":
        return CoverageSelector(k)
    if selector == "uniform":
        return uniform
    if selector == "random":
        return RandomSelector(seed)
    raise ValueError(f"unknown selector {selector!r}: expected one of {SELECTORS} or a callable "
                     "(frame_features (b, t, c), f) -> indices (b, f)")


# --------------------------------------------------------------------------------------------------
# the selection rule the wrapper applies


def _accepts_exclude(selector: Callable) -> bool:
    try:
        return "exclude" in inspect.signature(selector).parameters
    except (TypeError, ValueError):
        return False


def force_frame(idx: torch.Tensor, frame: int) -> torch.Tensor:
    """Make ``frame`` one of the indices of every row of ``idx`` ``(b, f)``: where it is missing, it
    replaces the index nearest to it in time (the earlier one on a tie)."""
    missing = ~(idx == frame).any(dim=-1)
    nearest = (idx - frame).abs().argmin(dim=-1)
    replaced = idx.scatter(1, nearest[:, None], frame)
    return torch.where(missing[:, None], replaced, idx)


def check_selection(idx: object, b: int, f: int, t: int, selector: object) -> torch.Tensor:
    """Validate a selector's output: a tensor of ``f`` unique integer frame indices in ``0..t-1`` per
    sample, shape ``(b, f)``; the error says which rule was broken."""
    name = getattr(selector, "__name__", repr(selector))
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"selector {name} must return a tensor of frame indices of shape ({b}, {f}), "
                        f"got {type(idx).__name__}")
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise TypeError(f"selector {name} must return integer frame indices, got dtype {idx.dtype}")
    if tuple(idx.shape) != (b, f):
        raise ValueError(f"selector {name} must return indices of shape ({b}, {f}) (batch, tokens), "
                         f"got {tuple(idx.shape)}")
    if bool((idx < 0).any() | (idx >= t).any()):
        raise ValueError(f"selector {name} returned frame indices outside 0..{t - 1}: "
                         f"min {int(idx.min())}, max {int(idx.max())}")
    if bool((torch.sort(idx, dim=-1).values.diff(dim=-1) == 0).any()):
        raise ValueError(f"selector {name} returned a frame twice in one sample; the {f} indices of a sample "
                         "must be unique")
    return idx


def choose_frames(selector: Selector, features: torch.Tensor, f: int, *, keep: Optional[int] = None,
                  check: bool = False) -> torch.Tensor:
    """The frames the wrapper keeps: ``selector(features, f)``, sorted, as ``(b, f)`` int64.

    With ``keep`` that frame is always kept (TPC-only models predict the centre frame, as in the
    official code): selectors that take ``exclude`` choose ``f - 1`` other frames, others have their
    nearest pick replaced by it. ``check`` validates the selector's output first
    (:func:`check_selection`); the built-in selectors need no check.
    """
    b, t = features.shape[:2]
    if keep is not None and _accepts_exclude(selector):
        kept = torch.full((b, 1), keep, dtype=torch.long, device=features.device)
        idx = kept if f == 1 else torch.cat([selector(features, f - 1, exclude=keep).to(kept), kept], 1)
    else:
        idx = selector(features, f)
        if check:
            check_selection(idx, b, f, t, selector)
        idx = idx.to(device=features.device, dtype=torch.long)
        if keep is not None:
            idx = force_frame(idx, keep)
    return torch.sort(idx, dim=-1).values
