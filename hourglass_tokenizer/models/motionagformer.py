"""MotionAGFormer (Mehraban, Adeli and Taati, WACV 2024): transformer and GCN streams per layer.

A seq2seq lifter: ``(b, T, J, 3)`` inputs (``x, y, confidence``) in, ``(b, T, J, 3)`` 3D poses
out. Every layer (one :class:`MotionAGFormerBlock` in the ``nn.Sequential`` ``layers``) runs two
streams on the same ``(b, t, j, c)`` tokens and blends them token-wise with softmax weights:

- an attention stream: spatial self-attention over joints, then temporal over frames;
- a graph stream: a GCN over the skeleton graph, then a GCN over frames whose edges link each
  frame to its most similar frames (top-``neighbour_num`` dot products, per joint).

There is no temporal position embedding. The only layer sized by the frame count is the
temporal GCN's ``BatchNorm1d(n_frames)``, applied to ``(b*j, t, c)``, so its statistics and
affine parameters are indexed by frame position: a per-frame-index layer inside every block.

This is our own implementation. Parameter and buffer names follow ``model/MotionAGFormer.py`` of
github.com/TaatiTeam/MotionAGFormer (Apache-2.0; the HoT repository's
``model/motionagformer/motionagformer.py`` has the same names), so its checkpoints load with
``strict=True``. Only the configurations of the paper are covered (no MS-TCN temporal mixer).

The official HoT-MotionAGFormer (``model/motionagformer/hot_motionagformer.py`` of
NationalGAILab/HoT) is the ``"hot-243"`` configuration with tokens pruned at layer
:data:`HOT_PRESET` ``["prune_block"]`` (7) to ``["tokens"]`` (81) frames; its layers from 7 on
are built with ``n_frames = 81``, so their temporal batch norms are indexed by rank among the
kept frames, and its recovery cross-attention has no bias on the q/k/v projections.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Sequence, Type

import torch
from torch import nn

from ._layers import DropPath, Mlp, resolve_config

__all__ = ["MotionAGFormer", "MotionAGFormerBlock", "AGFormerBlock", "SkeletonGCN", "JointFrameAttention",
           "H36M_NEIGHBOURS", "HOT_PRESET"]

#: Rows of the spatial adjacency of the 17-joint Human3.6M skeleton: joint ``i`` aggregates from
#: ``H36M_NEIGHBOURS[i]``. As upstream, the graph is not symmetric: the thorax (8) aggregates from
#: the spine (7) and neck (9) only, while the shoulders (11, 14) aggregate from the thorax.
H36M_NEIGHBOURS: tuple[tuple[int, ...], ...] = (
    (1, 7), (0, 2), (1, 3), (2,), (0, 5), (4, 6), (5,), (0, 8), (7, 9), (8, 10), (9,),
    (8, 12), (11, 13), (12,), (8, 15), (14, 16), (15,),
)

#: The official HoT-MotionAGFormer setting (HoT repository): 243 frames, 16 layers of width 128,
#: tokens pruned before layer 7 to 81 frames, TRA before ``rep_logit``, q/k/v without bias.
HOT_PRESET: dict[str, Any] = dict(config="hot-243", frames=243, depth=16, prune_block=7, tokens=81,
                                  cross_attention_qkv_bias=False)


class JointFrameAttention(nn.Module):
    """Multi-head self-attention on ``(B, T, J, C)`` tokens, over joints or over frames.

    Args:
        dim: Token width ``C``; must be divisible by ``num_heads``.
        num_heads: Heads.
        qkv_bias: Bias on the fused q/k/v projection.
        qk_scale: Logit scale; ``head_dim ** -0.5`` by default.
        attn_drop: Dropout on the attention weights.
        proj_drop: Dropout after the output projection.
        mode: ``"spatial"`` (each frame's joints attend to each other) or ``"temporal"`` (each
            joint's trajectory attends over frames).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, qk_scale: Optional[float] = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, mode: str = "spatial") -> None:
        super().__init__()
        if mode not in ("spatial", "temporal"):
            raise ValueError(f"mode must be 'spatial' or 'temporal', got {mode!r}")
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.mode = mode
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, j, c = x.shape
        h = self.num_heads
        # (3, B, H, T, J, d): heads split from the channels, head-major as in the checkpoints.
        q, k, v = self.qkv(x).view(b, t, j, 3, h, c // h).permute(3, 0, 4, 1, 2, 5).unbind(0)
        if self.mode == "temporal":
            q, k, v = (z.transpose(2, 3) for z in (q, k, v))  # (B, H, J, T, d)
        weights = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        out = weights @ v
        if self.mode == "temporal":
            out = out.transpose(2, 3)
        out = out.permute(0, 2, 3, 1, 4).reshape(b, t, j, c)  # (B, T, J, H*d)
        return self.proj_drop(self.proj(out))


class SkeletonGCN(nn.Module):
    """Graph convolution over joints (fixed skeleton graph) or over frames.

    ``relu(x + batch_norm(A_norm @ V(x) + U(x)))`` with the symmetric normalisation
    ``A_norm = D^-1/2 A D^-1/2`` (``D``: row sums of ``A``). Over frames, ``A`` links each frame
    to the ``neighbour_num`` frames with the largest dot product (itself included, ties all
    kept), computed per sample and joint; without similarity it links frame ``i`` to frames
    ``i .. i + temporal_connection_len``.

    ``batch_norm`` is ``BatchNorm1d(num_nodes)`` on ``(sequences, nodes, C)``: one statistic per
    joint (spatial) or per frame index (temporal, ``num_nodes = n_frames``).

    Args:
        dim_in: Input width.
        dim_out: Output width (no residual when it differs from ``dim_in``).
        num_nodes: Joints (spatial) or frames (temporal).
        neighbour_num: Frames linked by similarity (temporal mode).
        mode: ``"spatial"`` or ``"temporal"``.
        use_temporal_similarity: Temporal edges from similarity (else a fixed band).
        temporal_connection_len: Band width of the fixed temporal graph.
        neighbours: Spatial adjacency rows; :data:`H36M_NEIGHBOURS` by default.
    """

    def __init__(self, dim_in: int, dim_out: int, num_nodes: int, neighbour_num: int = 4, mode: str = "spatial",
                 use_temporal_similarity: bool = True, temporal_connection_len: int = 1,
                 neighbours: Optional[Sequence[Sequence[int]]] = None) -> None:
        super().__init__()
        if mode not in ("spatial", "temporal"):
            raise ValueError(f"mode must be 'spatial' or 'temporal', got {mode!r}")
        self.mode = mode
        self.dim_in, self.dim_out = dim_in, dim_out
        self.num_nodes = num_nodes
        self.neighbour_num = neighbour_num
        self.use_temporal_similarity = use_temporal_similarity
        self.U = nn.Linear(dim_in, dim_out)
        self.V = nn.Linear(dim_in, dim_out)
        self.batch_norm = nn.BatchNorm1d(num_nodes)
        self.relu = nn.ReLU()
        nn.init.normal_(self.U.weight, 0.0, (2.0 / dim_in) ** 0.5)
        nn.init.normal_(self.V.weight, 0.0, (2.0 / dim_in) ** 0.5)

        adj: Optional[torch.Tensor] = None
        if mode == "spatial":
            rows = H36M_NEIGHBOURS if neighbours is None else neighbours
            if len(rows) != num_nodes:
                raise ValueError(f"spatial GCN over {num_nodes} joints needs {num_nodes} adjacency rows, got {len(rows)}")
            adj = torch.zeros(num_nodes, num_nodes)
            for i, row in enumerate(rows):
                adj[i, list(row)] = 1.0
        elif not use_temporal_similarity:
            frame = torch.arange(num_nodes)
            offset = frame[None, :] - frame[:, None]
            adj = ((offset >= 0) & (offset <= temporal_connection_len)).float()
        # Not a checkpoint entry upstream, so not persistent; a buffer so that .to() moves it.
        self.register_buffer("adj", adj, persistent=False)

    @staticmethod
    def _normalise(adj: torch.Tensor) -> torch.Tensor:
        inv_sqrt = adj.sum(dim=-1).pow(-0.5)
        return inv_sqrt[..., :, None] * adj * inv_sqrt[..., None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, C) -> (B, T, J, dim_out)``."""
        b, t, j, c = x.shape
        if self.mode == "temporal":
            seqs = x.transpose(1, 2).reshape(b * j, t, c)
            if self.use_temporal_similarity:
                similarity = seqs @ seqs.transpose(1, 2)
                kth = similarity.topk(self.neighbour_num, dim=-1).values[..., -1:]
                adj = (similarity >= kth).to(seqs.dtype)
            else:
                adj = self.adj.to(seqs.dtype).expand(b * j, t, t)
        else:
            seqs = x.reshape(b * t, j, c)
            adj = self.adj.to(seqs.dtype).expand(b * t, j, j)
        mixed = self._normalise(adj) @ self.V(seqs) + self.U(seqs)
        out = self.batch_norm(mixed)
        out = self.relu(seqs + out if self.dim_in == self.dim_out else out)
        if self.mode == "temporal":
            return out.reshape(b, j, t, self.dim_out).transpose(1, 2)
        return out.reshape(b, t, j, self.dim_out)


class AGFormerBlock(nn.Module):
    """Pre-norm residual block on ``(B, T, J, C)``: ``mixer`` (attention or GCN), then an MLP,
    each branch scaled per channel by ``layer_scale_1`` / ``layer_scale_2`` when enabled.

    Args:
        dim: Token width.
        mixer: ``"attention"`` or ``"graph"``.
        mode: ``"spatial"`` or ``"temporal"``.
        n_frames: Frames of the temporal GCN's batch norm.
        num_joints: Joints of the spatial GCN.
        Others: as in :class:`MotionAGFormer`.
    """

    def __init__(self, dim: int, mixer: str, mode: str, mlp_ratio: float = 4.0, act_layer: Type[nn.Module] = nn.GELU,
                 attn_drop: float = 0.0, drop: float = 0.0, drop_path: float = 0.0, num_heads: int = 8,
                 qkv_bias: bool = False, qk_scale: Optional[float] = None, use_layer_scale: bool = True,
                 layer_scale_init_value: float = 1e-5, use_temporal_similarity: bool = True,
                 temporal_connection_len: int = 1, neighbour_num: int = 4, n_frames: int = 243,
                 num_joints: int = 17) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if mixer == "attention":
            self.mixer: nn.Module = JointFrameAttention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop, mode)
        elif mixer == "graph":
            self.mixer = SkeletonGCN(dim, dim, num_joints if mode == "spatial" else n_frames, neighbour_num, mode,
                                     use_temporal_similarity, temporal_connection_len)
        else:
            raise ValueError(f"mixer must be 'attention' or 'graph', got {mixer!r}")
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.use_layer_scale = use_layer_scale
        if use_layer_scale:
            self.layer_scale_1 = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
            self.layer_scale_2 = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.mixer(self.norm1(x))
        if self.use_layer_scale:
            mixed = self.layer_scale_1 * mixed
        x = x + self.drop_path(mixed)
        fed = self.mlp(self.norm2(x))
        if self.use_layer_scale:
            fed = self.layer_scale_2 * fed
        return x + self.drop_path(fed)


class MotionAGFormerBlock(nn.Module):
    """One MotionAGFormer layer: attention stream and graph stream, fused token-wise.

    ``x_attn = att_temporal(att_spatial(x))``, ``x_graph = graph_temporal(graph_spatial(x))``,
    then ``softmax(fusion([x_attn, x_graph]))`` weights the two (``fusion`` starts at weight 0,
    bias 0.5: an even blend). ``hierarchical`` splits the channels in two halves instead, feeds
    ``x_attn`` into the graph stream and concatenates; ``graph_only`` uses bare GCNs as the graph
    stream. Maps ``(B, T, J, C)`` to the same shape.
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, act_layer: Type[nn.Module] = nn.GELU,
                 attn_drop: float = 0.0, drop: float = 0.0, drop_path: float = 0.0, num_heads: int = 8,
                 use_layer_scale: bool = True, qkv_bias: bool = False, qk_scale: Optional[float] = None,
                 layer_scale_init_value: float = 1e-5, use_adaptive_fusion: bool = True, hierarchical: bool = False,
                 use_temporal_similarity: bool = True, temporal_connection_len: int = 1, graph_only: bool = False,
                 neighbour_num: int = 4, n_frames: int = 243, num_joints: int = 17) -> None:
        super().__init__()
        self.hierarchical = hierarchical
        self.use_adaptive_fusion = use_adaptive_fusion
        width = dim // 2 if hierarchical else dim
        common = dict(mlp_ratio=mlp_ratio, act_layer=act_layer, attn_drop=attn_drop, drop=drop, drop_path=drop_path,
                      num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, use_layer_scale=use_layer_scale,
                      layer_scale_init_value=layer_scale_init_value, use_temporal_similarity=use_temporal_similarity,
                      temporal_connection_len=temporal_connection_len, neighbour_num=neighbour_num,
                      n_frames=n_frames, num_joints=num_joints)
        self.att_spatial = AGFormerBlock(width, "attention", "spatial", **common)
        self.att_temporal = AGFormerBlock(width, "attention", "temporal", **common)
        if graph_only:
            self.graph_spatial: nn.Module = SkeletonGCN(width, width, num_joints, mode="spatial")
            self.graph_temporal: nn.Module = SkeletonGCN(width, width, n_frames, neighbour_num, "temporal",
                                                         use_temporal_similarity, temporal_connection_len)
        else:
            self.graph_spatial = AGFormerBlock(width, "graph", "spatial", **common)
            self.graph_temporal = AGFormerBlock(width, "graph", "temporal", **common)
        if use_adaptive_fusion:
            self.fusion = nn.Linear(2 * width, 2)
            nn.init.zeros_(self.fusion.weight)
            nn.init.constant_(self.fusion.bias, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hierarchical:
            half = x.shape[-1] // 2
            x_attn = self.att_temporal(self.att_spatial(x[..., :half]))
            x_graph = self.graph_temporal(self.graph_spatial(x[..., half:] + x_attn))
            return torch.cat([x_attn, x_graph], dim=-1)
        x_attn = self.att_temporal(self.att_spatial(x))
        x_graph = self.graph_temporal(self.graph_spatial(x))
        if not self.use_adaptive_fusion:
            return (x_attn + x_graph) * 0.5
        alpha = self.fusion(torch.cat([x_attn, x_graph], dim=-1)).softmax(dim=-1)
        return x_attn * alpha[..., :1] + x_graph * alpha[..., 1:]


class MotionAGFormer(nn.Module):
    """MotionAGFormer 2D-to-3D lifter (seq2seq).

    Args:
        n_layers: Number of :class:`MotionAGFormerBlock` layers.
        dim_in: Channels per input joint (3: ``x, y, confidence``).
        dim_feat: Token width.
        dim_rep: Width of the motion representation before the head.
        dim_out: Channels per output joint.
        mlp_ratio: MLP hidden width as a multiple of ``dim_feat``.
        act_layer: MLP activation class.
        attn_drop: Dropout on attention weights.
        drop: Dropout after projections and in MLPs.
        drop_path: Stochastic-depth rate, the same for every layer (as upstream).
        use_layer_scale: Per-channel scaling of every residual branch.
        layer_scale_init_value: Its initial value.
        use_adaptive_fusion: Learned blending of the two streams (else their mean).
        num_heads: Attention heads.
        qkv_bias: Bias on the q/k/v projections.
        qkv_scale: Attention logit scale (``head_dim ** -0.5`` when None).
        hierarchical: Split channels between the streams.
        num_joints: Joints ``J``.
        use_temporal_similarity: Temporal GCN edges from frame similarity.
        temporal_connection_len: Band of the fixed temporal graph (without similarity).
        use_tcn: Upstream's MS-TCN temporal mixer; not implemented here (no paper config uses it).
        graph_only: Bare GCNs as the graph stream.
        neighbour_num: Frames linked by the similarity graph.
        n_frames: Frames ``T`` (size of every temporal GCN's batch norm).

    Shapes:
        ``forward``: ``(b, n_frames, J, dim_in) -> (b, n_frames, J, dim_out)``; with
        ``return_rep=True`` the ``(b, T, J, dim_rep)`` representation. The frame count must be
        ``n_frames``: the temporal batch norms are sized by it.
    """

    configs: dict[str, dict[str, Any]] = {
        # configs/h36m/MotionAGFormer-{xsmall,small,base,large}.yaml of the upstream repository.
        "xsmall": dict(n_layers=12, dim_feat=64, n_frames=27, num_heads=8, neighbour_num=2),
        "small": dict(n_layers=26, dim_feat=64, n_frames=81, num_heads=8, neighbour_num=2),
        "base": dict(n_layers=16, dim_feat=128, n_frames=243, num_heads=8, neighbour_num=2),
        "large": dict(n_layers=26, dim_feat=128, n_frames=243, num_heads=8, neighbour_num=2),
        # The HoT repository's model/motionagformer/*.py: 16 layers of width 128 at 243 frames, with
        # that code's constructor defaults for the rest (4 heads, 4 similarity neighbours).
        "hot-243": dict(n_layers=16, dim_feat=128, n_frames=243, num_heads=4, neighbour_num=4),
        # Tiny variant for unit tests and smoke runs.
        "tiny": dict(n_layers=3, dim_feat=16, dim_rep=32, n_frames=27, num_heads=2, neighbour_num=2),
    }
    config_aliases: dict[str, str] = {"paper": "hot-243", "xs": "xsmall", "s": "small", "b": "base", "l": "large"}

    def __init__(self, n_layers: int = 16, dim_in: int = 3, dim_feat: int = 128, dim_rep: int = 512,
                 dim_out: int = 3, mlp_ratio: float = 4.0, act_layer: Type[nn.Module] = nn.GELU,
                 attn_drop: float = 0.0, drop: float = 0.0, drop_path: float = 0.0, use_layer_scale: bool = True,
                 layer_scale_init_value: float = 1e-5, use_adaptive_fusion: bool = True, num_heads: int = 4,
                 qkv_bias: bool = False, qkv_scale: Optional[float] = None, hierarchical: bool = False,
                 num_joints: int = 17, use_temporal_similarity: bool = True, temporal_connection_len: int = 1,
                 use_tcn: bool = False, graph_only: bool = False, neighbour_num: int = 4, n_frames: int = 243) -> None:
        super().__init__()
        if use_tcn:
            raise ValueError("use_tcn=True (upstream's MS-TCN temporal mixer) is not implemented; no paper "
                             "configuration of MotionAGFormer uses it")
        # Plain attributes (not in the state dict) describing the expected input.
        self.num_frames = n_frames
        self.num_joints = num_joints
        self.in_chans = dim_in
        self.dim_feat = dim_feat

        self.joints_embed = nn.Linear(dim_in, dim_feat)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim_feat))
        self.norm = nn.LayerNorm(dim_feat)
        self.layers = nn.Sequential(*[
            MotionAGFormerBlock(dim_feat, mlp_ratio, act_layer, attn_drop, drop, drop_path, num_heads,
                                use_layer_scale, qkv_bias, qkv_scale, layer_scale_init_value, use_adaptive_fusion,
                                hierarchical, use_temporal_similarity, temporal_connection_len, graph_only,
                                neighbour_num, n_frames, num_joints)
            for _ in range(n_layers)])
        self.rep_logit = nn.Sequential(OrderedDict([("fc", nn.Linear(dim_feat, dim_rep)), ("act", nn.Tanh())]))
        self.head = nn.Linear(dim_rep, dim_out)

    @classmethod
    def from_config(cls, name: str = "paper", **overrides: Any) -> "MotionAGFormer":
        """Build a named configuration: ``"xsmall"`` (27 frames), ``"small"`` (81), ``"base"``,
        ``"large"`` (243), ``"hot-243"`` (``"paper"``) or ``"tiny"`` (tests).

        Args:
            name: Configuration name or alias (``xs``, ``s``, ``b``, ``l``, ``paper``).
            **overrides: Constructor arguments replacing the configuration's values.
        """
        return cls(**resolve_config(cls, name, overrides))

    def forward(self, x: torch.Tensor, return_rep: bool = False) -> torch.Tensor:
        """Lift ``(b, T, J, dim_in)`` keypoints to ``(b, T, J, dim_out)`` poses."""
        x = self.joints_embed(x) + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        x = self.rep_logit(self.norm(x))
        return x if return_rep else self.head(x)
