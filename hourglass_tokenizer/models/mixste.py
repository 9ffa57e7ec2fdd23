"""MixSTE (Zhang et al., CVPR 2022): alternating spatial / temporal transformer.

A seq2seq lifter: ``(b, T, J, 2)`` 2D keypoints in, ``(b, T, J, 3)`` 3D poses
out. Each of the ``depth`` stages applies one spatial block (joints of a frame
attend to each other, tokens ``(b f) n c``) and one temporal block (each
joint's trajectory attends over frames, tokens ``(b n) f c``).

Parameter names follow the HoT reference code (``model/mixste/mixste.py``) so
its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import torch
from einops import rearrange
from torch import nn

from ._layers import Block, drop_path_rates, resolve_config

__all__ = ["MixSTE"]


class MixSTE(nn.Module):
    """Mixed spatio-temporal encoder for 2D-to-3D pose lifting.

    Args:
        num_frames: Frames ``T`` of the input clip (size of ``Temporal_pos_embed``).
        num_joints: Joints ``J`` per frame.
        in_chans: Channels per input joint (2 for ``x, y``).
        out_chans: Channels per output joint.
        embed_dim: Token width.
        depth: Number of spatial/temporal block pairs.
        num_heads: Attention heads.
        mlp_hidden_dim: Hidden width of every block's MLP.
        qkv_bias: Bias on the q/k/v projections.
        qk_scale: Optional attention logit scale.
        drop_rate: Dropout after embeddings, projections and MLPs.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic-depth rate of the last block pair.

    Shapes:
        ``forward``: ``(b, f, J, in_chans) -> (b, f, J, out_chans)``.
    """

    configs: dict[str, dict[str, Any]] = {
        # The MixSTE paper's Human3.6M model, as trained in the HoT repository.
        "h36m-243": dict(num_frames=243, embed_dim=512, depth=8, num_heads=8, mlp_hidden_dim=1024),
        # Tiny variant for unit tests and smoke runs.
        "small": dict(num_frames=27, embed_dim=32, depth=4, num_heads=2, mlp_hidden_dim=64),
    }
    config_aliases: dict[str, str] = {"paper": "h36m-243"}

    def __init__(
        self,
        num_frames: int = 243,
        num_joints: int = 17,
        in_chans: int = 2,
        out_chans: int = 3,
        embed_dim: int = 512,
        depth: int = 8,
        num_heads: int = 8,
        mlp_hidden_dim: int = 1024,
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
        self.out_chans = out_chans
        self.embed_dim = embed_dim
        self.block_depth = depth

        norm_layer = partial(nn.LayerNorm, eps=1e-6)

        self.Spatial_patch_to_embedding = nn.Linear(in_chans, embed_dim)
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, embed_dim))
        self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.pos_drop = nn.Dropout(p=drop_rate)

        dpr = drop_path_rates(drop_path_rate, depth)

        def make_block(rate: float) -> Block:
            return Block(
                embed_dim, num_heads, mlp_hidden_dim, qkv_bias=qkv_bias, qk_scale=qk_scale,
                drop=drop_rate, attn_drop=attn_drop_rate, drop_path=rate, norm_layer=norm_layer,
            )

        self.STEblocks = nn.ModuleList([make_block(dpr[i]) for i in range(depth)])
        self.TTEblocks = nn.ModuleList([make_block(dpr[i]) for i in range(depth)])

        self.Spatial_norm = norm_layer(embed_dim)
        self.Temporal_norm = norm_layer(embed_dim)

        # The reference head uses the default LayerNorm eps (1e-5), unlike the
        # blocks; keeping it preserves checkpoint numerics.
        self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, out_chans))

    @classmethod
    def from_config(cls, name: str = "paper", **overrides: Any) -> "MixSTE":
        """Build a named configuration (``"h36m-243"``/``"paper"`` or ``"small"``).

        Args:
            name: Configuration name.
            **overrides: Constructor arguments replacing the configuration's values.
        """
        return cls(**resolve_config(cls, name, overrides))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lift ``(b, f, J, in_chans)`` keypoints to ``(b, f, J, out_chans)`` poses."""
        # The frame and joint counts come from the input, not the constructor,
        # so that every reshape stays consistent with the tensor actually fed in.
        b, f, n, c = x.shape

        x = rearrange(x, "b f n c -> (b f) n c")
        x = self.Spatial_patch_to_embedding(x)
        x = x + self.Spatial_pos_embed
        x = self.pos_drop(x)
        x = self.STEblocks[0](x)
        x = self.Spatial_norm(x)

        x = rearrange(x, "(b f) n c -> (b n) f c", f=f)
        x = x + self.Temporal_pos_embed
        x = self.pos_drop(x)
        x = self.TTEblocks[0](x)
        x = self.Temporal_norm(x)
        x = rearrange(x, "(b n) f c -> b f n c", n=n)

        for i in range(1, self.block_depth):
            x = rearrange(x, "b f n c -> (b f) n c")
            x = self.STEblocks[i](x)
            x = self.Spatial_norm(x)
            x = rearrange(x, "(b f) n c -> (b n) f c", f=f)

            x = self.TTEblocks[i](x)
            x = self.Temporal_norm(x)
            x = rearrange(x, "(b n) f c -> b f n c", n=n)

        x = self.head(x)
        return x.view(b, f, n, -1)
