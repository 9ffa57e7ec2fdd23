"""Building blocks shared by the built-in video pose transformers.

The sub-module names here (``qkv``, ``proj``, ``fc1``, ``fc2``, ``norm1`` ...)
are part of the checkpoint format: they reproduce the naming used by the
public MixSTE / MotionBERT / PoseFormer code so that released weights load
with ``strict=True``. Renaming any attribute breaks that compatibility.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Type

import torch
from torch import nn

__all__ = [
    "DropPath",
    "Mlp",
    "Attention",
    "Block",
    "drop_path_rates",
    "resolve_config",
]

NormFactory = Callable[[int], nn.Module]


def resolve_config(cls: type, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs of ``cls``'s named configuration, with ``overrides`` applied.

    ``cls`` must define ``configs`` (name -> kwargs) and ``config_aliases``
    (alias -> name). Lookup is case-insensitive.

    Raises:
        ValueError: ``name`` is neither a configuration nor an alias.
    """
    key = name.lower()
    key = cls.config_aliases.get(key, key)
    if key not in cls.configs:
        valid = sorted(cls.configs) + sorted(cls.config_aliases)
        raise ValueError(f"unknown {cls.__name__} config {name!r}; valid configs: {', '.join(valid)}")
    return {**cls.configs[key], **overrides}


def drop_path_rates(drop_path_rate: float, depth: int) -> list[float]:
    """Linearly increasing stochastic-depth rates, one per block.

    Args:
        drop_path_rate: Rate of the last block; the first block gets 0.
        depth: Number of blocks.

    Returns:
        ``depth`` Python floats (the ``torch.linspace`` rule of the upstream code).
    """
    return [float(r) for r in torch.linspace(0, drop_path_rate, depth)]


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample.

    In training mode each sample's branch output is zeroed with probability
    ``drop_prob`` and the survivors are scaled by ``1 / (1 - drop_prob)`` so the
    expectation is unchanged. In eval mode this is the identity.

    Args:
        drop_prob: Probability of dropping the branch for a sample.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        # One Bernoulli draw per leading index ("sample"), broadcast over the rest.
        mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(mask_shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class Mlp(nn.Module):
    """Two-layer feed-forward network ``fc1 -> act -> drop -> fc2 -> drop``.

    Args:
        in_features: Input (and, by default, output) width.
        hidden_features: Hidden width; defaults to ``in_features``.
        out_features: Output width; defaults to ``in_features``.
        act_layer: Activation class.
        drop: Dropout probability after the activation and after ``fc2``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: Optional[int] = None,
        out_features: Optional[int] = None,
        act_layer: Type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class Attention(nn.Module):
    """Multi-head self-attention over the second-to-last axis of ``(B, N, C)``.

    The attention is written as explicit ``matmul -> softmax -> matmul`` rather
    than ``scaled_dot_product_attention``: it is bit-for-bit the computation of
    the reference implementations, and FLOP counters (fvcore) see the two
    matmuls, which they do not for the fused kernel.

    Args:
        dim: Token width ``C``; must be divisible by ``num_heads``.
        num_heads: Number of heads.
        qkv_bias: Whether the fused q/k/v projection has a bias.
        qk_scale: Logit scale; defaults to ``head_dim ** -0.5``.
        attn_drop: Dropout on the attention weights (training only).
        proj_drop: Dropout after the output projection (training only).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        qk_scale: Optional[float] = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``(B, N, C)`` tokens to q, k, v of shape ``(B, heads, N, C // heads)``."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Softmax attention over the second-to-last axis of q/k/v."""
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        return attn @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.split_heads(x)
        x = self.attend(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mlp_hidden_dim: Hidden width of the MLP.
        qkv_bias: Bias on the q/k/v projection.
        qk_scale: Optional attention logit scale.
        drop: Dropout after attention projection and in the MLP.
        attn_drop: Dropout on attention weights.
        drop_path: Stochastic-depth rate of both residual branches.
        act_layer: MLP activation class.
        norm_layer: Factory ``dim -> norm module``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden_dim: int,
        qkv_bias: bool = False,
        qk_scale: Optional[float] = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Type[nn.Module] = nn.GELU,
        norm_layer: NormFactory = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
            attn_drop=attn_drop, proj_drop=drop,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, hidden_features=mlp_hidden_dim, act_layer=act_layer, drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x
