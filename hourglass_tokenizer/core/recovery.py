"""Recovering all ``T`` frames from the ``f`` kept ones before the head.

Four ways, chosen with ``wrap_with_hot(recover=...)`` (see :data:`RECOVERY_MODES`):

- ``"tra"``: the paper's token recovering attention: ``T`` learnable queries ``x_token`` attend to
  the kept tokens, ``x_token + cross_attention(x_token, kept, kept)``. Needs training.
- ``"interpolate"``: training-free; each pruned frame is the linear interpolation in time of the
  kept frames on either side (copies of the first/last kept frame beyond them).
- ``"nearest"``: training-free; each pruned frame copies the kept frame nearest in time.
- ``"tra+interpolate"``: TRA as a learned correction of the interpolation: the queries are
  ``x_token + interpolation`` and the output projection starts at zero, so before any training
  it is exactly ``"interpolate"``.

Parameter names follow the official HoT code (``x_token``, ``cross_attention.linear_q/k/v``,
``cross_attention.proj``), so its checkpoints load into a model wrapped with ``recover="tra"``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossAttention", "recover_frames", "nearest_kept_frames", "interpolate_frames", "RECOVERY_MODES",
           "LEARNED_MODES", "resolve_recover"]

#: Accepted ``recover`` strings; ``True`` means ``"tra"`` and ``False`` TPC only (no recovery, seq2frame).
RECOVERY_MODES = ("tra", "interpolate", "nearest", "tra+interpolate")
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
    # Comparisons rather than searchsorted: O(T f) on tiny tensors, and every exporter knows them.
    at_or_before = (idx[:, None, :] <= t[None, :, None]).sum(-1) - 1  # -1: before the first kept frame
    before = at_or_before.clamp(min=0)
    exact = idx.gather(1, before) == t
    after = torch.where(exact | (at_or_before < 0), before, (at_or_before + 1).clamp(max=f - 1))
    before_frame, after_frame = idx.gather(1, before), idx.gather(1, after)
    span = after_frame - before_frame
    weight = torch.where(span > 0, (t - before_frame) / span.clamp(min=1), torch.zeros((), device=idx.device))
    return before, after, weight


def interpolate_frames(kept: torch.Tensor, idx: torch.Tensor, frames: int) -> torch.Tensor:
    """Linear interpolation in time of the kept tokens: ``kept (b * m, f, c)`` -> ``(b * m, frames, c)``.

    ``idx`` ``(b, f)`` (ascending) says which frames were kept; ``m`` sequences per sample (one per
    joint, or 1) share a sample's indices. Kept frames pass through exactly; frames before the first
    or after the last kept frame copy it.
    """
    b, f = idx.shape
    if kept.shape[0] % b or kept.shape[1] != f:
        raise ValueError(f"kept tokens of shape {tuple(kept.shape)} do not fit frame indices of shape {tuple(idx.shape)}")
    per_sample = kept.shape[0] // b
    before, after, weight = (v.repeat_interleave(per_sample, dim=0) for v in _kept_neighbours(idx, frames))
    c = kept.shape[-1]
    left = kept.gather(1, before[..., None].expand(-1, -1, c))
    right = kept.gather(1, after[..., None].expand(-1, -1, c))
    weight = weight[..., None].to(kept.dtype)
    return left * (1 - weight) + right * weight


def corrected_interpolation(x_token: torch.Tensor, cross_attention: nn.Module, kept: torch.Tensor,
                            idx: torch.Tensor) -> torch.Tensor:
    """``"tra+interpolate"``: queries ``x_token + interpolation`` attend to ``kept (n, f, c)``; returns
    ``queries + cross_attention(queries, kept, kept)`` ``(n, T, c)``. With zero ``x_token`` and a zero
    output projection (the state at wrapping) this is exactly :func:`interpolate_frames`."""
    queries = x_token.to(kept.dtype) + interpolate_frames(kept, idx, x_token.shape[1])
    return queries + cross_attention(queries, kept, kept)


def nearest_kept_frames(idx: torch.Tensor, frames: int) -> torch.Tensor:
    """For every frame, the kept frame nearest in time (the earlier one on a tie): ``(b, frames)``.

    ``idx`` is ``(b, f)`` sorted ascending. Used by TPC-only models to fill pruned frames before a
    head that reads every frame, so the kept frames pass through unchanged.
    """
    t = torch.arange(frames, device=idx.device).expand(idx.shape[0], frames)
    # searchsorted(idx, t) as a count of smaller kept frames: the ONNX exporter cannot translate searchsorted.
    right = (idx[:, None, :] < t[:, :, None]).sum(dim=-1).clamp(max=idx.shape[1] - 1)
    left = (right - 1).clamp(min=0)
    right_frame, left_frame = idx.gather(1, right), idx.gather(1, left)
    use_left = (t - left_frame).abs() <= (right_frame - t).abs()
    return torch.where(use_left, left_frame, right_frame)
