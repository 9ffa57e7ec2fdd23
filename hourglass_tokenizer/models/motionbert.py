"""MotionBERT's DSTformer (Zhu et al., ICCV 2023): dual-stream spatio-temporal transformer.

A seq2seq lifter: ``(b, T, J, 3)`` inputs (``x, y, confidence``) in,
``(b, T, J, 3)`` 3D poses out. All tokens stay in the ``(b f) j c`` layout;
each block receives the frame count ``F`` so its temporal attention can
regroup tokens by frame. At every depth two blocks run side by side on the
same input -- spatial-then-temporal (``blocks_st``) and temporal-then-spatial
(``blocks_ts``) -- and their outputs are blended token-wise with softmax
weights predicted by ``ts_attn``.

Parameter names follow ``lib/model/DSTformer.py`` of MotionBERT (also used by
the HoT repository) so released checkpoints load with ``strict=True`` once a
``DataParallel`` ``module.`` prefix, if any, is stripped.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Any, Optional, Type

import torch
from torch import nn

from ._layers import Attention, DropPath, Mlp, NormFactory, drop_path_rates, resolve_config

__all__ = ["DSTformer", "MotionBERT", "DSTAttention", "DSTBlock"]


class DSTAttention(Attention):
    """Self-attention over joints (``mode="spatial"``) or over frames (``mode="temporal"``).

    Tokens are always ``(B*F, J, C)``; temporal mode regroups them into
    per-joint trajectories of length ``seqlen`` for the attention only.

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mode: ``"spatial"`` or ``"temporal"``.
        qkv_bias, qk_scale, attn_drop, proj_drop: As in :class:`Attention`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        mode: str = "spatial",
        qkv_bias: bool = False,
        qk_scale: Optional[float] = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias, qk_scale, attn_drop, proj_drop)
        if mode not in ("spatial", "temporal"):
            raise ValueError(f"mode must be 'spatial' or 'temporal', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor, seqlen: int = 1) -> torch.Tensor:  # type: ignore[override]
        bf, n, c = x.shape
        q, k, v = self.split_heads(x)  # (B*F, H, J, d)
        if self.mode == "spatial":
            out = self.attend(q, k, v)
        else:
            h, d = self.num_heads, c // self.num_heads

            def by_joint(t: torch.Tensor) -> torch.Tensor:
                # (B*F, H, J, d) -> (B, H, J, F, d): attention then runs over F.
                return t.reshape(-1, seqlen, h, n, d).permute(0, 2, 3, 1, 4)

            out = self.attend(by_joint(q), by_joint(k), by_joint(v))
            # Back to (B*F, H, J, d) so both modes share the head merge below.
            out = out.permute(0, 3, 1, 2, 4).reshape(bf, h, n, d)
        out = out.transpose(1, 2).reshape(bf, n, c)
        return self.proj_drop(self.proj(out))


class DSTBlock(nn.Module):
    """One DSTformer stream block: spatial and temporal attention + MLP sub-layers.

    ``order="st"`` applies spatial attention/MLP then temporal attention/MLP,
    ``order="ts"`` the reverse. Each sub-layer is pre-norm and residual.

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        order: ``"st"`` or ``"ts"``.
        qkv_bias, qk_scale: Attention projection options.
        drop: Dropout after attention projections and in MLPs.
        attn_drop: Dropout on attention weights.
        drop_path: Stochastic-depth rate of every residual branch.
        act_layer: MLP activation class.
        norm_layer: Factory ``dim -> norm module``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        order: str = "st",
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Type[nn.Module] = nn.GELU,
        norm_layer: NormFactory = nn.LayerNorm,
    ) -> None:
        super().__init__()
        if order not in ("st", "ts"):
            raise ValueError(f"order must be 'st' or 'ts', got {order!r}")
        self.order = order
        attn_kw = dict(qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop, proj_drop=drop)
        hidden = int(dim * mlp_ratio)
        self.norm1_s = norm_layer(dim)
        self.norm1_t = norm_layer(dim)
        self.attn_s = DSTAttention(dim, num_heads, mode="spatial", **attn_kw)
        self.attn_t = DSTAttention(dim, num_heads, mode="temporal", **attn_kw)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2_s = norm_layer(dim)
        self.norm2_t = norm_layer(dim)
        self.mlp_s = Mlp(dim, hidden_features=hidden, out_features=dim, act_layer=act_layer, drop=drop)
        self.mlp_t = Mlp(dim, hidden_features=hidden, out_features=dim, act_layer=act_layer, drop=drop)

    def _spatial(self, x: torch.Tensor, seqlen: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn_s(self.norm1_s(x), seqlen))
        return x + self.drop_path(self.mlp_s(self.norm2_s(x)))

    def _temporal(self, x: torch.Tensor, seqlen: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn_t(self.norm1_t(x), seqlen))
        return x + self.drop_path(self.mlp_t(self.norm2_t(x)))

    def forward(self, x: torch.Tensor, seqlen: int = 1) -> torch.Tensor:
        """Map ``(B*seqlen, J, C)`` tokens to the same shape."""
        if self.order == "st":
            return self._temporal(self._spatial(x, seqlen), seqlen)
        return self._spatial(self._temporal(x, seqlen), seqlen)


class DSTformer(nn.Module):
    """Dual-stream spatio-temporal transformer (MotionBERT backbone + 3D head).

    Args:
        dim_in: Channels per input joint (3: ``x, y, confidence``).
        dim_out: Channels per output joint; 0 drops the head (representation only).
        dim_feat: Token width.
        dim_rep: Width of the ``tanh`` representation layer; 0 disables it
            (then ``dim_out`` is applied to ``dim_feat`` features).
        depth: Number of block pairs.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``dim_feat``.
        num_joints: Joints ``J`` per frame.
        maxlen: Longest clip supported (size of ``temp_embed``).
        qkv_bias, qk_scale: Attention projection options.
        drop_rate: Dropout after embeddings, projections and MLPs.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic-depth rate of the last block pair.
        norm_eps: LayerNorm eps of blocks and final norm (MotionBERT builds with 1e-6).
        att_fuse: Blend the two streams with learned weights (else average them).

    Shapes:
        ``forward``: ``(b, f, J, dim_in) -> (b, f, J, dim_out)`` with ``f <= maxlen``.
    """

    configs: dict[str, dict[str, Any]] = {
        # MotionBERT's released Human3.6M model (configs/pose3d/MB_ft_h36m.yaml).
        "h36m-243": dict(maxlen=243, dim_feat=512, dim_rep=512, depth=5, num_heads=8, mlp_ratio=2),
        # The lighter variant trained in the HoT repository (= MotionBERT-Lite).
        "hot-243": dict(maxlen=243, dim_feat=256, dim_rep=512, depth=5, num_heads=8, mlp_ratio=4),
        # Tiny variant for unit tests and smoke runs.
        "small": dict(maxlen=27, dim_feat=32, dim_rep=32, depth=3, num_heads=2, mlp_ratio=2),
    }
    config_aliases: dict[str, str] = {"paper": "hot-243", "lite-243": "hot-243"}

    def __init__(
        self,
        dim_in: int = 3,
        dim_out: int = 3,
        dim_feat: int = 256,
        dim_rep: int = 512,
        depth: int = 5,
        num_heads: int = 8,
        mlp_ratio: float = 4,
        num_joints: int = 17,
        maxlen: int = 243,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        att_fuse: bool = True,
    ) -> None:
        super().__init__()
        self.num_frames = maxlen
        self.num_joints = num_joints
        self.in_chans = dim_in
        self.dim_out = dim_out
        self.dim_feat = dim_feat
        self.att_fuse = att_fuse
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)

        self.joints_embed = nn.Linear(dim_in, dim_feat)
        self.pos_drop = nn.Dropout(p=drop_rate)
        dpr = drop_path_rates(drop_path_rate, depth)

        def make_block(rate: float, order: str) -> DSTBlock:
            return DSTBlock(
                dim_feat, num_heads, mlp_ratio=mlp_ratio, order=order, qkv_bias=qkv_bias,
                qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate, drop_path=rate,
                norm_layer=norm_layer,
            )

        self.blocks_st = nn.ModuleList([make_block(dpr[i], "st") for i in range(depth)])
        self.blocks_ts = nn.ModuleList([make_block(dpr[i], "ts") for i in range(depth)])
        self.norm = norm_layer(dim_feat)
        if dim_rep:
            self.pre_logits: nn.Module = nn.Sequential(
                OrderedDict([("fc", nn.Linear(dim_feat, dim_rep)), ("act", nn.Tanh())])
            )
        else:
            self.pre_logits = nn.Identity()
        head_in = dim_rep or dim_feat
        self.head: nn.Module = nn.Linear(head_in, dim_out) if dim_out > 0 else nn.Identity()
        self.temp_embed = nn.Parameter(torch.zeros(1, maxlen, 1, dim_feat))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim_feat))

        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)
        if att_fuse:
            self.ts_attn = nn.ModuleList([nn.Linear(dim_feat * 2, 2) for _ in range(depth)])
            # Zero weights and equal biases: both streams start weighted 0.5/0.5.
            for lin in self.ts_attn:
                nn.init.zeros_(lin.weight)
                nn.init.constant_(lin.bias, 0.5)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @classmethod
    def from_config(cls, name: str = "paper", **overrides: Any) -> "DSTformer":
        """Build a named configuration.

        ``"h36m-243"`` is MotionBERT's released model (dim 512, MLP ratio 2),
        ``"hot-243"`` (alias ``"paper"``, ``"lite-243"``) the HoT repository's
        dim-256 model, ``"small"`` a tiny test model.

        Args:
            name: Configuration name.
            **overrides: Constructor arguments replacing the configuration's values.
        """
        return cls(**resolve_config(cls, name, overrides))

    def forward(self, x: torch.Tensor, return_rep: bool = False) -> torch.Tensor:
        """Lift ``(b, f, J, dim_in)`` keypoints to ``(b, f, J, dim_out)`` poses.

        Args:
            x: Input keypoints; ``f`` may be at most ``maxlen``.
            return_rep: Return the ``(b, f, J, dim_rep)`` representation instead.
        """
        # Shapes come from the input so that every reshape (and the frame count
        # handed to the blocks) matches the tensor actually fed in.
        b, f, j, _ = x.shape
        if f > self.temp_embed.shape[1]:
            raise ValueError(f"clip of {f} frames exceeds maxlen={self.temp_embed.shape[1]}")
        x = x.reshape(b * f, j, -1)
        x = self.joints_embed(x) + self.pos_embed
        c = x.shape[-1]
        x = x.reshape(b, f, j, c) + self.temp_embed[:, :f]
        x = x.reshape(b * f, j, c)
        x = self.pos_drop(x)

        for idx, (blk_st, blk_ts) in enumerate(zip(self.blocks_st, self.blocks_ts)):
            x_st = blk_st(x, f)
            x_ts = blk_ts(x, f)
            if self.att_fuse:
                alpha = self.ts_attn[idx](torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
                x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
            else:
                x = (x_st + x_ts) * 0.5

        x = self.norm(x)
        x = x.reshape(b, f, j, -1)
        x = self.pre_logits(x)
        if return_rep:
            return x
        return self.head(x)


MotionBERT = DSTformer
"""Alias: MotionBERT's pose-lifting network is :class:`DSTformer`."""
