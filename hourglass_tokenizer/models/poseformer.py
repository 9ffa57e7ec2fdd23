"""PoseFormer v1 (Zheng et al., ICCV 2021): spatial then temporal transformer.

A seq2frame lifter: a clip of ``(b, T, J, 2)`` 2D keypoints in, the 3D pose
of the centre frame ``(b, 1, J, 3)`` out. A small spatial transformer encodes
each frame's joints (tokens ``(b f) j c``), the per-frame tokens are flattened
to one ``J * c`` wide token per frame, a temporal transformer mixes the
frames, and a learned weighted mean over frames feeds the regression head.

Parameter names follow ``common/model_poseformer.py`` of the PoseFormer
repository so its checkpoints load with ``strict=True`` (after stripping a
``DataParallel`` ``module.`` prefix).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import torch
from einops import rearrange
from torch import nn

from ._layers import Block, drop_path_rates, resolve_config

__all__ = ["PoseFormer"]


class PoseFormer(nn.Module):
    """PoseFormer (v1) 2D-to-3D lifter predicting the centre frame.

    Args:
        num_frames: Frames ``T`` of the input clip (fixed: it sizes
            ``Temporal_pos_embed`` and the ``weighted_mean`` convolution).
        num_joints: Joints ``J`` per frame.
        in_chans: Channels per input joint.
        embed_dim_ratio: Spatial token width; the temporal width is ``J`` times it.
        depth: Blocks in each of the spatial and temporal transformers.
        num_heads: Attention heads (both transformers).
        mlp_ratio: MLP hidden width as a multiple of the token width.
        qkv_bias, qk_scale: Attention projection options.
        drop_rate: Dropout after embeddings, projections and MLPs.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic-depth rate of the last block.

    Shapes:
        ``forward``: ``(b, num_frames, J, in_chans) -> (b, 1, J, 3)``.
    """

    configs: dict[str, dict[str, Any]] = {
        # The PoseFormer paper's best Human3.6M model (run_poseformer.py, -f 81).
        "h36m-81": dict(num_frames=81, embed_dim_ratio=32, depth=4, num_heads=8, mlp_ratio=2.0),
        # Tiny variant for unit tests and smoke runs.
        "small": dict(num_frames=27, embed_dim_ratio=8, depth=2, num_heads=2, mlp_ratio=2.0),
    }
    config_aliases: dict[str, str] = {"paper": "h36m-81"}

    def __init__(
        self,
        num_frames: int = 81,
        num_joints: int = 17,
        in_chans: int = 2,
        embed_dim_ratio: int = 32,
        depth: int = 4,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.num_joints = num_joints
        self.in_chans = in_chans
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        embed_dim = embed_dim_ratio * num_joints
        self.embed_dim = embed_dim

        self.Spatial_patch_to_embedding = nn.Linear(in_chans, embed_dim_ratio)
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, embed_dim_ratio))
        self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.pos_drop = nn.Dropout(p=drop_rate)

        dpr = drop_path_rates(drop_path_rate, depth)

        def make_block(dim: int, rate: float) -> Block:
            return Block(
                dim, num_heads, int(dim * mlp_ratio), qkv_bias=qkv_bias, qk_scale=qk_scale,
                drop=drop_rate, attn_drop=attn_drop_rate, drop_path=rate, norm_layer=norm_layer,
            )

        self.Spatial_blocks = nn.ModuleList([make_block(embed_dim_ratio, dpr[i]) for i in range(depth)])
        self.blocks = nn.ModuleList([make_block(embed_dim, dpr[i]) for i in range(depth)])

        self.Spatial_norm = norm_layer(embed_dim_ratio)
        self.Temporal_norm = norm_layer(embed_dim)

        # Frames are the Conv1d's channels, so a 1x1 convolution is a learned
        # weighted mean over the clip (plus bias).
        self.weighted_mean = nn.Conv1d(in_channels=num_frames, out_channels=1, kernel_size=1)

        # Default-eps LayerNorm here, as in the reference head.
        self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_joints * 3))

    @classmethod
    def from_config(cls, name: str = "paper", **overrides: Any) -> "PoseFormer":
        """Build a named configuration (``"h36m-81"``/``"paper"`` or ``"small"``).

        Args:
            name: Configuration name.
            **overrides: Constructor arguments replacing the configuration's values.
        """
        return cls(**resolve_config(cls, name, overrides))

    def spatial_features(self, x: torch.Tensor) -> torch.Tensor:
        """Encode each frame's joints: ``(b, f, J, C_in) -> (b, f, J * embed_dim_ratio)``."""
        b, f, p, _ = x.shape
        x = rearrange(x, "b f p c -> (b f) p c")
        x = self.Spatial_patch_to_embedding(x)
        x = x + self.Spatial_pos_embed
        x = self.pos_drop(x)
        for blk in self.Spatial_blocks:
            x = blk(x)
        x = self.Spatial_norm(x)
        return rearrange(x, "(b f) p c -> b f (p c)", f=f)

    def temporal_features(self, x: torch.Tensor) -> torch.Tensor:
        """Mix frames and pool them: ``(b, f, embed_dim) -> (b, 1, embed_dim)``."""
        b = x.shape[0]
        x = x + self.Temporal_pos_embed
        x = self.pos_drop(x)
        for blk in self.blocks:
            x = blk(x)
        x = self.Temporal_norm(x)
        x = self.weighted_mean(x)
        return x.view(b, 1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the centre-frame pose ``(b, 1, J, 3)`` from a ``(b, f, J, C_in)`` clip."""
        b, _, p, _ = x.shape
        x = self.spatial_features(x)
        x = self.temporal_features(x)
        x = self.head(x)
        return x.view(b, 1, p, -1)
