"""Prototypes of training-free HoT variants that the plugin's forward pass does not have, attached to
a wrapped MixSTE with extra hooks, so the accuracy benchmark can measure them before any of them
goes into the core:

* **selection on another signal**: the selector ignores the joint-pooled features the wrapper hands it
  and chooses on the 2D input (``pose2d``), the un-pooled tokens at the pruning block (``tokens``),
  or, as a diagnostic that no real model can use, the unpruned model's own 3D output (``oracle``);
* **token merging** (``merge="time"`` or ``"feature"``): each kept token at the first pruned block
  becomes the mean of its cluster, the frames nearest to it in time or in pooled-feature distance
  (every cluster has one frame per joint before merging, so the size-weighted mean is the plain mean);
* **residual recovery** (``residual=alpha``): before the head, each frame's recovered features get
  ``alpha * (x_p - interp(x_p))`` added, where ``x_p`` are the full-length features entering the
  first pruned block and ``interp(x_p)`` their interpolation from the kept frames: the per-frame
  detail the pruned blocks never saw is carried around them, and only the blocks' change is
  interpolated (``alpha=1``: exactly so; ``alpha=0``: plain interpolation).

* **cubic recovery** (``cubic=True``): the pruned frames come back by cubic Hermite interpolation
  of the kept ones (tangents from the neighbouring kept frames, one-sided at the ends) instead of
  linear interpolation; kept frames pass through.

Only the built-in MixSTE layout (``STEblocks``/``TTEblocks``, ``head``) is supported.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Optional

import torch
from einops import rearrange
from torch import nn

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.core.recovery import interpolate_frames, nearest_kept_frames
from hourglass_tokenizer.core.selection import resolve_selector

SIGNALS = ("features", "pose2d", "tokens", "oracle")


class _Recorder:
    """Forward pre-hook that keeps the latest first argument of a module."""

    def __init__(self) -> None:
        self.value: Optional[torch.Tensor] = None

    def __call__(self, module: nn.Module, args: tuple) -> None:
        self.value = args[0]


class SignalSelector:
    """A selector ``(features, f) -> (b, f)`` that chooses on ``signal()`` instead of ``features``,
    and remembers its (sorted) choice for the merging hook."""

    def __init__(self, base: Callable[..., torch.Tensor], signal: Optional[Callable[[], torch.Tensor]] = None) -> None:
        self.base, self.signal, self.last = base, signal, None

    def __call__(self, features: torch.Tensor, f: int) -> torch.Tensor:
        source = features if self.signal is None else self.signal()
        self.last = torch.sort(self.base(source, f), dim=-1).values.to(torch.long)
        return self.last


def wrap_variant(plain: nn.Module, *, prune_block: int, tokens: int, recover: str = "interpolate",
                 selector: Any = "uniform", signal: str = "features", merge: Optional[str] = None,
                 residual: Any = 0.0, cubic: bool = False, **wrap_options: Any) -> nn.Module:
    """``wrap_with_hot`` on a deep copy of ``plain`` (a built-in MixSTE), plus the prototype hooks above.

    ``selector`` is a name or a callable ``(signal (b, t, c), f) -> (b, f)``.
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
    model = copy.deepcopy(plain)
    base = resolve_selector(selector) if isinstance(selector, str) else selector
    first = model.STEblocks[prune_block]
    tokens_in = _Recorder()  # (b t) n c, full length: registered before HoT's hooks, so it sees every frame
    first.register_forward_pre_hook(tokens_in)
    model_in = _Recorder()
    model.register_forward_pre_hook(model_in)
    source: Optional[Callable[[], torch.Tensor]] = None
    if signal == "pose2d":
        source = lambda: model_in.value.flatten(2)  # noqa: E731
    elif signal == "tokens":
        source = lambda: rearrange(tokens_in.value, "(b t) n c -> b t (n c)", b=model_in.value.shape[0])  # noqa: E731
    elif signal == "oracle":
        reference = copy.deepcopy(plain).eval().requires_grad_(False)

        def source() -> torch.Tensor:
            with torch.no_grad():
                return reference(model_in.value).flatten(2)
    chooser = SignalSelector(base, source)
    wrap_with_hot(model, prune_block=prune_block, tokens=tokens, recover=recover, selector=chooser, **wrap_options)
    if merge is not None:
        first.register_forward_pre_hook(_MergeHook(model_in, tokens_in, chooser, merge))
    if cubic:
        model.head.register_forward_pre_hook(_CubicHook(model.hot))
    if isinstance(residual, torch.Tensor) or residual:
        model.head.register_forward_pre_hook(_ResidualHook(model_in, tokens_in, model.hot, residual, cubic))
    return model


def cluster_of_each_frame(full: torch.Tensor, idx: torch.Tensor, mode: str) -> torch.Tensor:
    """For every frame, the position (0..f-1) of the kept frame whose cluster it joins, ``(b, t)``.

    ``full`` ``(b, t, c)`` are per-frame features, ``idx`` ``(b, f)`` the kept frames (ascending).
    ``"time"``: the kept frame nearest in time (the earlier on a tie). ``"feature"``: the kept frame
    nearest in Euclidean distance of the features (the earlier on a tie); kept frames join their own.
    """
    b, t = full.shape[:2]
    if mode == "time":
        nearest = nearest_kept_frames(idx, t)  # frame numbers
        return (idx[:, None, :] == nearest[:, :, None]).float().argmax(-1)
    if mode == "feature":
        kept = full.gather(1, idx[..., None].expand(-1, -1, full.shape[-1]))
        dist = torch.cdist(full.double(), kept.double(), compute_mode="donot_use_mm_for_euclid_dist")
        assign = dist.argmin(-1)
        own = torch.full((b, t), -1, dtype=torch.long, device=full.device)
        own.scatter_(1, idx, torch.arange(idx.shape[1], device=full.device).expand_as(idx))
        return torch.where(own >= 0, own, assign)
    raise ValueError(f"merge must be 'time' or 'feature', got {mode!r}")


def merged_tokens(full: torch.Tensor, cluster: torch.Tensor, f: int) -> torch.Tensor:
    """Mean of each cluster's tokens: ``full`` ``(b, t, n, c)``, ``cluster`` ``(b, t)`` -> ``(b, f, n, c)``."""
    b, t, n, c = full.shape
    one_hot = torch.zeros(b, f, t, dtype=full.dtype, device=full.device)
    one_hot.scatter_(1, cluster[:, None, :], 1.0)
    return torch.einsum("bft,btnc->bfnc", one_hot / one_hot.sum(-1, keepdim=True), full)


class _MergeHook:
    """Pre-hook of the first pruned block, after HoT's: kept tokens -> their cluster's mean (plus whatever
    HoT added to them, e.g. ``pos_embed_token``)."""

    def __init__(self, model_in: _Recorder, tokens_in: _Recorder, chooser: SignalSelector, mode: str) -> None:
        self.model_in, self.tokens_in, self.chooser, self.mode = model_in, tokens_in, chooser, mode

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        b = self.model_in.value.shape[0]
        full = rearrange(self.tokens_in.value, "(b t) n c -> b t n c", b=b)
        idx = self.chooser.last
        f = idx.shape[1]
        cluster = cluster_of_each_frame(full.mean(2), idx, self.mode)
        own = full.gather(1, idx[:, :, None, None].expand(-1, -1, *full.shape[2:]))
        shift = merged_tokens(full, cluster, f) - own
        return (args[0] + rearrange(shift, "b f n c -> (b f) n c"),) + tuple(args[1:])


class _ResidualHook:
    """Pre-hook of the head, after HoT's recovery: adds ``alpha * (x_p - interp(x_p))`` (``alpha`` a number,
    or a ``(c, c)`` matrix applied on the right)."""

    def __init__(self, model_in: _Recorder, tokens_in: _Recorder, hot: Any, alpha: Any, cubic: bool = False) -> None:
        self.model_in, self.tokens_in, self.hot, self.alpha, self.cubic = model_in, tokens_in, hot, alpha, cubic

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x = args[0]  # (b, t, n, c), recovered
        b, t, n, c = x.shape
        idx = self.hot.last_indices
        seqs = rearrange(self.tokens_in.value, "(b t) n c -> (b n) t c", b=b)
        kept = seqs.gather(1, idx.repeat_interleave(n, 0)[..., None].expand(-1, -1, c))
        detail = seqs - _interpolation(self.cubic)(kept, idx.repeat_interleave(n, 0) if self.cubic else idx, t)
        if isinstance(self.alpha, torch.Tensor):
            # The detail of a kept frame is exactly zero: map only the pruned frames (what the MACs count sees).
            keep = torch.zeros(b, t, dtype=torch.bool, device=x.device).scatter(1, idx, torch.ones_like(idx, dtype=torch.bool))
            pruned = torch.sort(torch.where(keep, t, torch.arange(t, device=x.device)), dim=1).values[:, :t - idx.shape[1]]
            rows = rearrange(detail, "(b n) t c -> b n t c", b=b)
            at = pruned[:, None, :, None].expand(-1, n, -1, c)
            maps = self.alpha.to(detail) if self.alpha.dim() == 3 else self.alpha.to(detail)[None]
            mapped = rows.gather(2, at) @ maps[None]
            detail = rearrange(torch.zeros_like(rows).scatter(2, at, mapped), "b n t c -> (b n) t c")
        else:
            detail = self.alpha * detail
        return (x + rearrange(detail, "(b n) t c -> b t n c", b=b),) + tuple(args[1:])


def _interpolation(cubic: bool) -> Callable[..., torch.Tensor]:
    """``(kept (m, f, c), idx, frames) -> (m, frames, c)``: linear (``idx`` per sample) or cubic (``idx`` per row)."""
    return cubic_frames if cubic else interpolate_frames


def fit_detail_map(plain: nn.Module, windows: torch.Tensor, prune_block: int, tokens: int,
                   selector: Any = "uniform", ridge: float = 1e-3, signal: str = "features",
                   cubic: bool = False, per_joint: bool = False, target: str = "plain",
                   scalar: bool = False) -> Any:
    """Least-squares ``W`` ``(c, c)`` with ``y ~ detail_p @ W``, where ``detail_p`` is a frame's features
    at the input of block ``prune_block`` minus their interpolation from the frames ``selector`` keeps.

    ``target="plain"``: ``y`` is the same detail of the unpruned model's head input (what interpolation
    misses there). ``target="hot"``: ``y`` is the unpruned model's head input minus what the wrapped model
    (training-free interpolation) feeds its head: what HoT gets wrong, context loss included.
    ``per_joint``: one map per joint ``(J, c, c)``; ``scalar``: one number ``alpha`` (``y ~ alpha
    detail_p``). Ridge-regularised (``ridge`` times the mean diagonal). ``windows`` ``(n, T, J, 2)``:
    unlabelled calibration inputs."""
    model = copy.deepcopy(plain).eval()
    tokens_in, head_in = _Recorder(), _Recorder()
    model.STEblocks[prune_block].register_forward_pre_hook(tokens_in)
    model.head.register_forward_pre_hook(head_in)
    chooser = resolve_selector(selector) if isinstance(selector, str) else selector
    hot, hot_head = None, _Recorder()
    if target == "hot":
        hot = wrap_variant(plain, prune_block=prune_block, tokens=tokens, selector=chooser, signal=signal,
                           cubic=cubic).eval()
        hot.head.register_forward_pre_hook(hot_head)  # after HoT's recovery: what the head gets
    gram, cross = 0.0, 0.0

    def detail(full: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        b, t, n, c = full.shape
        seqs = rearrange(full, "b t n c -> (b n) t c")
        rows = idx.repeat_interleave(n, 0)
        kept = seqs.gather(1, rows[..., None].expand(-1, -1, c))
        return rearrange(seqs - _interpolation(cubic)(kept, rows if cubic else idx, t), "(b n) t c -> b t n c", b=b)

    with torch.no_grad():
        for batch in windows.split(64):
            model(batch)
            b = batch.shape[0]
            p = rearrange(tokens_in.value, "(b t) n c -> b t n c", b=b)
            if hot is not None:
                hot(batch)
                idx = hot.hot.last_indices
                y = head_in.value - hot_head.value
            else:
                idx = torch.sort(chooser(batch.flatten(2) if signal == "pose2d" else p.mean(2), tokens), dim=-1).values
                y = detail(head_in.value, idx)
            pair = [rearrange(v, "b t n c -> n (b t) c").double() for v in (detail(p, idx), y)]
            if not per_joint:
                pair = [v.flatten(0, 1)[None] for v in pair]
            gram = gram + pair[0].transpose(1, 2) @ pair[0]
            cross = cross + pair[0].transpose(1, 2) @ pair[1]
    if scalar:
        return float(cross.diagonal(dim1=1, dim2=2).sum() / gram.diagonal(dim1=1, dim2=2).sum())
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype)
    gram = gram + ridge * gram.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * eye
    maps = torch.linalg.solve(gram, cross).float()
    return maps if per_joint else maps[0]


class InterpolationOnly(nn.Module):
    """Diagnostic: the unpruned model, then its own head input interpolated from the frames ``selector``
    keeps. What is left of HoT's error without its loss of context (the deep blocks see every frame)."""

    def __init__(self, plain: nn.Module, tokens: int, selector: Any = "uniform") -> None:
        super().__init__()
        self.model = copy.deepcopy(plain).eval()
        self.num_frames = plain.num_frames
        chooser = resolve_selector(selector) if isinstance(selector, str) else selector
        self.model.head.register_forward_pre_hook(
            lambda module, args: (_interpolated(args[0], chooser, tokens),) + tuple(args[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _interpolated(x: torch.Tensor, chooser: Any, tokens: int) -> torch.Tensor:
    b, t, n, c = x.shape
    idx = torch.sort(chooser(x.mean(2), tokens), dim=-1).values
    seqs = rearrange(x, "b t n c -> (b n) t c")
    kept = seqs.gather(1, idx.repeat_interleave(n, 0)[..., None].expand(-1, -1, c))
    return rearrange(interpolate_frames(kept, idx, t), "(b n) t c -> b t n c", b=b)


def cubic_frames(kept: torch.Tensor, idx: torch.Tensor, frames: int) -> torch.Tensor:
    """Cubic Hermite interpolation in time: ``kept`` ``(b, f, ...)`` at frames ``idx`` ``(b, f)`` (ascending)
    -> ``(b, frames, ...)``. Tangents are central differences of the kept frames (one-sided at the first
    and last); frames outside the kept range copy the nearest end, as linear interpolation does."""
    b, f = idx.shape
    if f == 1:
        return kept[:, :1].expand(b, frames, *kept.shape[2:]).clone()
    shape = (b, f) + (1,) * (kept.dim() - 2)
    times = idx.to(kept.dtype).view(shape)
    prev = torch.cat([kept[:, :1], kept[:, :-2], kept[:, -2:-1]], 1)
    nxt = torch.cat([kept[:, 1:2], kept[:, 2:], kept[:, -1:]], 1)
    t_prev = torch.cat([times[:, :1], times[:, :-2], times[:, -2:-1]], 1)
    t_next = torch.cat([times[:, 1:2], times[:, 2:], times[:, -1:]], 1)
    tangent = (nxt - prev) / (t_next - t_prev)
    t = torch.arange(frames, device=idx.device)
    right = (idx[:, None, :] <= t[None, :, None]).sum(-1).clamp(1, f - 1)  # segment [right-1, right]
    left = right - 1

    def pick(v: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        return v.gather(1, at.view(b, frames, *([1] * (v.dim() - 2))).expand(b, frames, *v.shape[2:]))

    t0, t1 = pick(times, left), pick(times, right)
    h = t1 - t0
    s = ((t.view(1, frames, *([1] * (kept.dim() - 2))).to(kept.dtype) - t0) / h).clamp(0, 1)
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return (h00 * pick(kept, left) + h10 * h * pick(tangent, left) + h01 * pick(kept, right)
            + h11 * h * pick(tangent, right))


class _CubicHook:
    """Pre-hook of the head, after HoT's linear recovery: the same kept frames, cubic in between."""

    def __init__(self, hot: Any) -> None:
        self.hot = hot

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x = args[0]  # (b, t, n, c); the kept frames pass through the linear recovery exactly
        idx = self.hot.last_indices
        kept = x.gather(1, idx[:, :, None, None].expand(-1, -1, *x.shape[2:]))
        return (cubic_frames(kept, idx, x.shape[1]),) + tuple(args[1:])


def describe(options: Dict[str, Any]) -> str:
    """A short label of a variant's options, for tables."""
    parts = [str(options.get("selector", "uniform"))]
    if options.get("signal", "features") != "features":
        parts.append(f"on {options['signal']}")
    if options.get("merge"):
        parts.append(f"merge {options['merge']}")
    if options.get("residual"):
        parts.append(f"residual {options['residual']:g}")
    if options.get("cubic"):
        parts.append("cubic")
    return ", ".join(parts)
