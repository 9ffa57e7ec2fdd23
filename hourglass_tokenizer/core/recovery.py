"""Recovering all ``T`` frames from the ``f`` kept ones before the head.

Each ``recover=`` value of :func:`~hourglass_tokenizer.wrap_with_hot` is one :class:`Recovery`
strategy (:func:`recovery_strategy`), which says which parameters it adds to the model, their
placeholders for a lazily wrapped model, and how it restores the frames; a new recovery is one
class here. The ways (see :data:`RECOVERY_MODES`):

- ``"tra"``: the paper's token recovering attention: ``T`` learnable queries ``x_token`` attend to
  the kept tokens, ``x_token + cross_attention(x_token, kept, kept)``. Needs training.
- ``"interpolate"``: training-free; each pruned frame is the linear interpolation in time of the
  kept frames on either side (copies of the first/last kept frame beyond them).
- ``"nearest"``: training-free; each pruned frame copies the kept frame nearest in time.
- ``"interpolate+residual"``: training-free; the interpolation plus half of each pruned frame's own
  detail at the first pruned block (what interpolation misses of it there), carried around the
  blocks that never saw it (:func:`residual_interpolation`).
- ``"tra+interpolate"``: TRA as a learned correction of the interpolation: the queries are
  ``x_token + interpolation`` and the output projection starts at zero, so before any training
  it is exactly ``"interpolate"``.
- ``False``: TPC only (seq2frame): no recovery proper; pruned frames are filled from their nearest
  kept frame so that a head reading every frame still runs, and the centre frame is the prediction.

Parameter names follow the official HoT code (``x_token``, ``cross_attention.linear_q/k/v``,
``cross_attention.proj``), so its checkpoints load into a model wrapped with ``recover="tra"``.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, FrozenSet, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import UninitializedParameter

__all__ = ["CrossAttention", "recover_frames", "nearest_kept_frames", "nearest_kept_ranks", "interpolate_frames",
           "corrected_interpolation", "correction_is_zero", "residual_interpolation", "RESIDUAL_WEIGHT",
           "RECOVERY_MODES", "LEARNED_MODES", "HOT_PARAMETERS", "resolve_recover", "recovery_strategy", "Recovery",
           "initial_x_token"]

#: Attributes the wrapper may add to the model; their parameters appear in its ``state_dict``.
HOT_PARAMETERS = ("pos_embed_token", "x_token", "cross_attention")

#: Accepted ``recover`` strings; ``True`` means ``"tra"`` and ``False`` TPC only (no recovery, seq2frame).
RECOVERY_MODES = ("tra", "interpolate", "nearest", "tra+interpolate", "interpolate+residual")
#: Modes with TRA parameters (``x_token``, ``cross_attention``).
LEARNED_MODES = ("tra", "tra+interpolate")


def resolve_recover(recover: object) -> Optional[str]:
    """The recovery mode of a ``recover=`` argument: one of :data:`RECOVERY_MODES`, or ``None`` for
    ``False`` (TPC only). ``True`` is the paper's ``"tra"``.

    Raises:
        ValueError: anything else, naming the accepted values.
    """
    if recover is True:
        return "tra"
    if recover is False:
        return None
    if isinstance(recover, str) and recover in RECOVERY_MODES:
        return recover
    raise ValueError(f"recover must be one of {RECOVERY_MODES}, True (= 'tra') or False (TPC only, seq2frame); "
                     f"got {recover!r}")


class CrossAttention(nn.Module):
    """Multi-head attention with separate query/key/value projections and an output projection."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, zero_output: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"cross-attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.linear_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        for linear in (self.linear_q, self.linear_k, self.linear_v, self.proj):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        if zero_output:
            # A residual correction that starts as exactly nothing (the others still learn once it moves).
            nn.init.zeros_(self.proj.weight)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        return x.reshape(n, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """``query (n, Lq, c)``, ``key``/``value`` ``(n, Lk, c)`` -> ``(n, Lq, c)``."""
        q = self._heads(self.linear_q(query))
        k = self._heads(self.linear_k(key))
        v = self._heads(self.linear_v(value))
        drop = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)
        return self.proj_drop(self.proj(out))


def recover_frames(x_token: torch.Tensor, cross_attention: nn.Module, kept: torch.Tensor) -> torch.Tensor:
    """TRA: ``x_token (1, T, c)`` queries attend to ``kept (n, f, c)``; returns ``(n, T, c)``.

    The output is ``x_token + cross_attention(x_token, kept, kept)``, as in the paper.
    """
    queries = x_token.expand(kept.shape[0], -1, -1).to(kept.dtype)
    return queries + cross_attention(queries, kept, kept)


def _kept_neighbours(idx: torch.Tensor, frames: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every frame ``t``: positions in ``idx`` of the kept frames at or before / at or after it,
    and the weight of the later one, ``(t - before) / (after - before)``; all ``(b, frames)``.

    Frames before the first or after the last kept frame get that frame twice (weight 0), and a kept
    frame gets itself twice, so it passes through exactly.
    """
    f = idx.shape[1]
    t = torch.arange(frames, device=idx.device)
    # Counts of kept frames at or before / strictly before each frame, by comparisons rather than
    # searchsorted: O(T f) on tiny tensors, and every exporter knows them. The first count, less one,
    # is the kept frame at or before t; the second, the first kept frame at or after t (the same one
    # when t is kept; both clamp to the ends outside the kept range).
    kept, now = idx[:, None, :], t[None, :, None]
    before = ((kept <= now).sum(-1) - 1).clamp(min=0)
    after = (kept < now).sum(-1).clamp(max=f - 1)
    before_frame, after_frame = idx.gather(1, before), idx.gather(1, after)
    span = after_frame - before_frame
    weight = torch.where(span > 0, (t - before_frame) / span.clamp(min=1), torch.zeros((), device=idx.device))
    return before, after, weight


def interpolate_frames(kept: torch.Tensor, idx: torch.Tensor, frames: int,
                       neighbours: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """Linear interpolation in time of the kept tokens: ``kept (b * m, f, c)`` -> ``(b * m, frames, c)``.

    ``idx`` ``(b, f)`` (ascending) says which frames were kept; ``m`` sequences per sample (one per
    joint, or 1) share a sample's indices. Kept frames pass through exactly; frames before the first
    or after the last kept frame copy it. ``neighbours``: :func:`_kept_neighbours` of ``idx``, when the
    caller has them already.
    """
    b, f = idx.shape
    if kept.shape[0] % b or kept.shape[1] != f:
        raise ValueError(f"kept tokens of shape {tuple(kept.shape)} do not fit frame indices of shape {tuple(idx.shape)}")
    before, after, weight = neighbours if neighbours is not None else _kept_neighbours(idx, frames)
    if b == 1:  # every sequence shares the one sample's neighbours: select along time, broadcast the weight
        left, right = kept.index_select(1, before[0]), kept.index_select(1, after[0])
    else:
        before, after, weight = (_per_sequence(v, kept.shape[0]) for v in (before, after, weight))
        c = kept.shape[-1]
        left = kept.gather(1, before[..., None].expand(-1, -1, c))
        right = kept.gather(1, after[..., None].expand(-1, -1, c))
    weight = weight[..., None].to(kept.dtype)
    return left * (1 - weight) + right * weight


def correction_is_zero(attention: nn.Module) -> bool:
    """True when ``attention``'s output is exactly zero whatever its input and nothing needs its
    gradients: its output projection's weight and bias are all zero (as wrapped, before any
    training) and no gradient is being recorded for them. Then the attention need not run.

    The values are read once per change of the projection (its tensors' identity, storage and
    version counter, which every in-place update and ``load_state_dict`` bumps), so a GPU
    synchronises once, not per call. Never while compiling, exporting or tracing: a graph keeps the
    attention, so its counted FLOPs and exported outputs are those of the full computation.
    """
    proj = attention.proj
    tensors = [t for t in (proj.weight, proj.bias) if t is not None]
    if (torch.compiler.is_compiling() or torch.jit.is_tracing()
            or not all(isinstance(t, nn.Parameter) and not isinstance(t, UninitializedParameter) for t in tensors)
            or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))):
        return False
    stamp = tuple((id(t), t.data_ptr(), t._version) for t in tensors)
    known = attention.__dict__.get("_zero_checked")
    if known is None or known[0] != stamp:
        known = (stamp, not any(bool(t.any()) for t in tensors))
        attention.__dict__["_zero_checked"] = known
    return known[1]


def corrected_interpolation(x_token: torch.Tensor, cross_attention: nn.Module, kept: torch.Tensor,
                            idx: torch.Tensor, neighbours: Optional[Tuple[torch.Tensor, ...]] = None) -> torch.Tensor:
    """``"tra+interpolate"``: queries ``x_token + interpolation`` attend to ``kept (n, f, c)``; returns
    ``queries + cross_attention(queries, kept, kept)`` ``(n, T, c)``. With zero ``x_token`` and a zero
    output projection (the state at wrapping) this is exactly :func:`interpolate_frames`; while the
    projection is zero and no gradient is recorded the attention is skipped (:func:`correction_is_zero`)."""
    queries = x_token.to(kept.dtype) + interpolate_frames(kept, idx, x_token.shape[1], neighbours)
    if correction_is_zero(cross_attention):
        return queries
    return queries + cross_attention(queries, kept, kept)


#: ``"interpolate+residual"``'s weight of the detail; the best of 0.25, 0.5, 0.75 and 1 on the adoption
#: benchmark (``benchmarks/results/frontier_cmu.md``), where 0.25 was better only at (1, 3).
RESIDUAL_WEIGHT = 0.5


def residual_interpolation(kept: torch.Tensor, idx: torch.Tensor, frames: int, source: torch.Tensor,
                           weight: float = RESIDUAL_WEIGHT,
                           neighbours: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None
                           ) -> torch.Tensor:
    """``interpolate(kept) + weight * (source - interpolate(source at the kept frames))``, ``(n, frames, c)``.

    ``source (n, frames, c)``: every frame's features where the pruning began, as sequences like
    ``kept (n, f, c)``; ``idx (b, f)`` the kept frames. Kept frames pass through exactly; a pruned
    frame gets the interpolation plus ``weight`` times its own detail, what interpolation misses of
    it before the pruned blocks (interpolation is linear, so one interpolation computes both).
    """
    if source.shape[0] != kept.shape[0] or source.shape[1] != frames or source.shape[2] != kept.shape[2]:
        raise ValueError(f"residual recovery: the features where pruning began, as sequences {tuple(source.shape)}, "
                         f"do not fit the kept tokens {tuple(kept.shape)} with {frames} frames (the first pruned "
                         "block and the recovery point need the same width and the same joints)")
    source = source.to(kept.dtype)
    at = _per_sequence(idx, kept.shape[0])
    source_kept = source.gather(1, at[..., None].expand(-1, -1, source.shape[-1]))
    return interpolate_frames(kept - weight * source_kept, idx, frames, neighbours) + weight * source


def nearest_kept_ranks(idx: torch.Tensor, frames: int) -> torch.Tensor:
    """For every frame, the position in ``idx`` of the kept frame nearest in time (the earlier one on a
    tie): ``(b, frames)``. ``idx`` is ``(b, f)`` sorted ascending."""
    t = torch.arange(frames, device=idx.device).expand(idx.shape[0], frames)
    # searchsorted(idx, t) as a count of smaller kept frames: the ONNX exporter cannot translate searchsorted.
    right = (idx[:, None, :] < t[:, :, None]).sum(dim=-1).clamp(max=idx.shape[1] - 1)
    left = (right - 1).clamp(min=0)
    right_frame, left_frame = idx.gather(1, right), idx.gather(1, left)
    use_left = (t - left_frame).abs() <= (right_frame - t).abs()
    return torch.where(use_left, left, right)


def nearest_kept_frames(idx: torch.Tensor, frames: int) -> torch.Tensor:
    """For every frame, the kept frame nearest in time (the earlier one on a tie): ``(b, frames)``.

    ``idx`` is ``(b, f)`` sorted ascending. Used by TPC-only models to fill pruned frames before a
    head that reads every frame, so the kept frames pass through unchanged.
    """
    return idx.gather(1, nearest_kept_ranks(idx, frames))


def _per_sequence(values: torch.Tensor, sequences: int) -> torch.Tensor:
    """``(b, ...)`` per-sample values repeated for the ``sequences // b`` sequences of each sample."""
    return values if values.shape[0] == sequences else values.repeat_interleave(sequences // values.shape[0], dim=0)


def initial_x_token(model: nn.Module, init: Union[str, torch.Tensor], frames: int, width: int) -> torch.Tensor:
    """TRA's starting queries ``(1, frames, width)``: ``"zeros"`` (the paper's), ``"position"`` (a copy
    of the model's temporal position embedding as it is now) or a given tensor."""
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) != (1, frames, width):
            raise ValueError(f"x_token_init must have shape (1, {frames}, {width}), got {tuple(init.shape)}")
        return init.detach().clone()
    if init == "zeros":
        return torch.zeros(1, frames, width)
    if init == "position":
        for name, p in model.named_parameters():
            if name.split(".")[0] in HOT_PARAMETERS or not any(w in name.lower() for w in ("temp", "frame", "time")):
                continue
            if p.numel() == frames * width and p.shape[0] == 1 and p.shape[1] == frames and p.shape[-1] == width:
                return p.detach().reshape(1, frames, width).clone()
        raise ValueError(f"x_token_init='position': no temporal position embedding of shape (1, {frames}, {width}) "
                         "found (looked for parameters named *temp*, *frame*, *time*); pass a tensor instead")
    raise ValueError(f"x_token_init must be 'zeros', 'position' or a tensor, got {init!r}")


class Recovery:
    """How the pruned frames come back before the head: one subclass per ``recover=`` value.

    A strategy is stateless; the model carries its parameters (official HoT names). The wrapper, the
    lazy set-up and checkpoint loading ask it rather than testing the mode's name.
    """

    #: The ``recover=`` value (``False`` for TPC only).
    name: ClassVar[Union[str, bool]]
    #: The model stays seq2seq (every frame predicted); False: seq2frame (TPC only).
    seq2seq: ClassVar[bool] = True
    #: Adds TRA's ``x_token`` and ``cross_attention``.
    learned: ClassVar[bool] = False
    #: HoT parameters an official checkpoint of this kind holds; ``None``: the official code has no
    #: such model, so no official checkpoint fits it.
    official_parameters: ClassVar[Optional[FrozenSet[str]]] = None
    #: Kept frames come back unchanged, so with every frame kept :meth:`restore` is the identity.
    keeps_kept: ClassVar[bool] = True
    #: :meth:`restore` needs ``source``: every frame's tokens entering the first pruned block.
    needs_source: ClassVar[bool] = False

    def new_parameters(self, model: nn.Module, *, kept: int, kept_width: int, frames: int, width: int, heads: int,
                       qkv_bias: bool, x_token_init: Union[str, torch.Tensor], like: torch.Tensor
                       ) -> Dict[str, nn.Module]:
        """Fresh parameters for a model keeping ``kept`` frames of ``frames`` (``kept_width`` channels
        where they are chosen, ``width`` at the recovery point), on ``like``'s device and dtype."""
        new: Dict[str, nn.Module] = {}
        if self.seq2seq:
            new["pos_embed_token"] = nn.Parameter(like.new_zeros(1, kept, kept_width))
        if self.learned:
            new["x_token"] = nn.Parameter(initial_x_token(model, x_token_init, frames, width).to(like))
            new["cross_attention"] = CrossAttention(width, heads, qkv_bias=qkv_bias,
                                                    zero_output=self.zero_correction).to(like)
        return new

    def placeholders(self) -> Dict[str, nn.Module]:
        """The same attributes as ``UninitializedParameter`` s, for a model set up at its first forward."""
        new: Dict[str, nn.Module] = {}
        if self.seq2seq:
            new["pos_embed_token"] = UninitializedParameter()
        if self.learned:
            new["x_token"] = UninitializedParameter()
            attention = CrossAttention(1, 1)
            for linear in (attention.linear_q, attention.linear_k, attention.linear_v, attention.proj):
                linear.weight = UninitializedParameter()
                linear.bias = UninitializedParameter()
            new["cross_attention"] = attention
        return new

    def prepare(self, idx: torch.Tensor, frames: int) -> Any:
        """What :meth:`restore` needs from the kept frames ``idx (b, f)`` alone (neighbours, weights),
        computed once per selection: the forward reuses it while the selection does not change."""
        return None

    def restore(self, model: nn.Module, kept: torch.Tensor, idx: torch.Tensor, frames: int, prepared: Any = None,
                source: Optional[torch.Tensor] = None) -> torch.Tensor:
        """All ``frames`` tokens of every sequence from its kept ones: ``kept (n, f, c)`` at frames
        ``idx (b, f)`` (``n`` a multiple of ``b``) -> ``(n, frames, c)``; ``prepared``: :meth:`prepare`'s
        result for ``idx``; ``source``: with :attr:`needs_source`, every frame's tokens entering the
        first pruned block as ``(n, frames, c)`` sequences."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TokenRecoveringAttention(Recovery):
    """``"tra"``: the paper's TRA, ``x_token + cross_attention(x_token, kept, kept)``."""

    name = "tra"
    learned = True
    keeps_kept = False
    zero_correction = False
    official_parameters = frozenset(HOT_PARAMETERS)

    def restore(self, model, kept, idx, frames, prepared=None, source=None):
        return recover_frames(model.x_token, model.cross_attention, kept)


class CorrectedInterpolation(TokenRecoveringAttention):
    """``"tra+interpolate"``: interpolation plus TRA as a correction that starts at exactly zero.

    While the correction's output projection is still exactly zero (a model wrapped for training-free
    use) and no gradient is recorded, the attention is skipped (:func:`correction_is_zero`): the
    result is the same, at the cost of ``"interpolate"``."""

    name = "tra+interpolate"
    zero_correction = True
    official_parameters = None

    def prepare(self, idx, frames):
        return _kept_neighbours(idx, frames)

    def restore(self, model, kept, idx, frames, prepared=None, source=None):
        return corrected_interpolation(model.x_token, model.cross_attention, kept, idx, prepared)


class Interpolation(Recovery):
    """``"interpolate"``: linear interpolation in time of the kept tokens (training-free)."""

    name = "interpolate"

    def prepare(self, idx, frames):
        return _kept_neighbours(idx, frames)

    def restore(self, model, kept, idx, frames, prepared=None, source=None):
        return interpolate_frames(kept, idx, frames, prepared)


class ResidualInterpolation(Interpolation):
    """``"interpolate+residual"``: :func:`residual_interpolation` with :data:`RESIDUAL_WEIGHT`
    (training-free). It needs the first pruned block's input and the recovery point's to have the
    same width and joints (checked at wrap time), as in a residual-stream transformer."""

    name = "interpolate+residual"
    needs_source = True

    def restore(self, model, kept, idx, frames, prepared=None, source=None):
        if source is None:
            raise RuntimeError("recover='interpolate+residual' ran without the features where pruning began")
        return residual_interpolation(kept, idx, frames, source, RESIDUAL_WEIGHT, prepared)


class NearestFrame(Recovery):
    """``"nearest"``: each pruned frame copies its nearest kept frame (training-free)."""

    name = "nearest"

    def prepare(self, idx, frames):
        return nearest_kept_ranks(idx, frames)

    def restore(self, model, kept, idx, frames, prepared=None, source=None):
        ranks = _per_sequence(prepared if prepared is not None else nearest_kept_ranks(idx, frames), kept.shape[0])
        return kept.gather(1, ranks[..., None].expand(-1, -1, kept.shape[-1]))


class TpcOnly(NearestFrame):
    """``False``: TPC only (seq2frame), as the official TPC models: no ``pos_embed_token``; the pruned
    frames are filled from their nearest kept frame so that the centre frame's output is the kept
    token's own prediction."""

    name = False
    seq2seq = False
    official_parameters = frozenset()


_STRATEGIES = {s.name: s() for s in (TokenRecoveringAttention, CorrectedInterpolation, Interpolation,
                                      ResidualInterpolation, NearestFrame)}


def recovery_strategy(recover: object) -> Recovery:
    """The :class:`Recovery` of a ``recover=`` argument (``True`` is ``"tra"``, ``False`` TPC only).

    Raises:
        ValueError: anything else, naming the accepted values.
    """
    mode = resolve_recover(recover)
    return TpcOnly() if mode is None else _STRATEGIES[mode]
