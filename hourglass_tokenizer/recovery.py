"""Token recovering attention (TRA): learnable full-length queries attend to the kept frames.

Parameter names follow the official HoT code (``x_token``, ``cross_attention.linear_q/k/v``,
``cross_attention.proj``), so its checkpoints load into a wrapped model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossAttention", "recover_frames", "nearest_kept_frames"]


class CrossAttention(nn.Module):
    """Multi-head attention with separate query/key/value projections and an output projection."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
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


def nearest_kept_frames(idx: torch.Tensor, frames: int) -> torch.Tensor:
    """For every frame, the kept frame nearest in time (the earlier one on a tie): ``(b, frames)``.

    ``idx`` is ``(b, f)`` sorted ascending. Used by TPC-only models to fill pruned frames before a
    head that reads every frame, so the kept frames pass through unchanged.
    """
    t = torch.arange(frames, device=idx.device).expand(idx.shape[0], frames).contiguous()
    right = torch.searchsorted(idx, t).clamp(max=idx.shape[1] - 1)
    left = (right - 1).clamp(min=0)
    right_frame, left_frame = idx.gather(1, right), idx.gather(1, left)
    use_left = (t - left_frame).abs() <= (right_frame - t).abs()
    return torch.where(use_left, left_frame, right_frame)
