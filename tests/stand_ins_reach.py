"""Stand-ins for the model families of issue 8, each with a hand-written reference HoT forward.

Four tiny models, each shaped like an upstream family the wrapper cannot handle yet, and for each
a reference forward written with explicit gathers and loops, independently of the wrapper:

- :class:`STCFormerLike` / :func:`reference_stcformer`: no frame count anywhere (lazy wrapping);
- :class:`MHFormerLike` / :func:`reference_mhformer_tpc`: blocks on tuples of three token streams
  over two consecutive block lists, with the official TPC-MHFormer selection;
- :class:`MotionAGFormerLike` / :func:`reference_motionagformer`: a ``BatchNorm1d(T)`` over the
  frame axis inside every block (rank-indexed ``BatchNorm1d(f)`` after pruning);
- :func:`reference_two_stage` on :class:`stand_ins.MixSTELike`: pruning at two depths (H2OT).

Conventions shared by the references:

- ``select(features (b, t, c), f)`` picks frames (``dpc_knn`` by default, the wrapper's default);
  indices are ascending, and the reference gathers them with a Python loop over samples.
- ``recover(hot, kept (b*m, f, c), frames (b, f), T) -> (b*m, T, c)`` restores all frames before
  the head; ``frames`` are original frame numbers. :func:`tra` is the paper's TRA (via
  ``tests/test_wrapping.py``'s hand-written ``tra_reference``), :func:`nearest_fill` fills each
  frame from its nearest kept frame (the earlier one on a tie), which is the identity when every
  frame is kept.
- ``hot`` holds the HoT parameters (``pos_embed_token``, ``x_token``, ``cross_attention``); by
  default the model itself, as after ``wrap_with_hot``. ``trace`` (a dict), when given, receives
  the selected frames so tests can compare them with ``model.hot.last_indices``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from einops import rearrange
from torch import nn

from hourglass_tokenizer.core.selection import dpc_knn
from stand_ins import Attention, Block

T, J = 27, 17


# --- shared reference helpers -----------------------------------------------------------------
def take_frames(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x (b, t, ...)`` -> ``(b, f, ...)``: sample ``s`` keeps frames ``idx[s]`` (a loop, no gather)."""
    return torch.stack([x[s, idx[s]] for s in range(idx.shape[0])])


def nearest_fill(hot, kept: torch.Tensor, frames: torch.Tensor, total: int) -> torch.Tensor:
    """``kept (b*m, f, c)`` at original frames ``frames (b, f)`` -> ``(b*m, total, c)``: each frame copies
    the kept frame nearest in time, the earlier one on a tie. ``hot`` is unused (recover signature)."""
    b, f = frames.shape
    per_sample = kept.shape[0] // b
    out = kept.new_empty(kept.shape[0], total, kept.shape[-1])
    for row in range(kept.shape[0]):
        numbers = frames[row // per_sample].tolist()
        for t in range(total):
            rank = min(range(f), key=lambda r: (abs(numbers[r] - t), numbers[r]))
            out[row, t] = kept[row, rank]
    return out


def tra(hot, kept: torch.Tensor, frames: torch.Tensor, total: int) -> torch.Tensor:
    """The paper's TRA, ``x_token + cross_attention(x_token, kept, kept)``, by hand (test_wrapping)."""
    from test_wrapping import tra_reference

    assert hot.x_token.shape[1] == total
    return tra_reference(hot, kept)


def _dpc_with_centre(features: torch.Tensor, f: int, centre: int) -> torch.Tensor:
    """TPC-only selection of the official code: ``f - 1`` density peaks other than the centre frame,
    plus the centre frame, ascending."""
    b = features.shape[0]
    picked = dpc_knn(features, f - 1, exclude=centre) if f > 1 else features.new_zeros(b, 0, dtype=torch.long)
    return torch.sort(torch.cat([picked, torch.full((b, 1), centre, dtype=torch.long)], dim=1), dim=1).values


# --- a. no position embedding, no frame attribute (STCFormer) ---------------------------------
class STCBlock(nn.Module):
    """STCFormer-style block on ``(b, t, j, c)``: half the channels attend over frames (per joint),
    the other half over joints (per frame), then an MLP."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.temporal = Attention(dim // 2, num_heads)
        self.spatial = Attention(dim // 2, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, j, c = x.shape
        h = self.norm1(x)
        ht, hs = h[..., : c // 2], h[..., c // 2:]
        ht = self.temporal(ht.transpose(1, 2).reshape(b * j, t, c // 2)).reshape(b, j, t, c // 2).transpose(1, 2)
        hs = self.spatial(hs.reshape(b * t, j, c // 2)).reshape(b, t, j, c // 2)
        x = x + torch.cat([ht, hs], dim=-1)
        return x + self.mlp(self.norm2(x))


class STCFormerLike(nn.Module):
    """Mimics STCFormer (``Model(args)``, blocks ``stcformer.stc_block`` on ``b t j c``).

    No temporal position embedding, no frame-count attribute, no parameter sized by ``T``: the
    model accepts any clip length, so the wrapper cannot infer ``T`` before a real input arrives.
    The wrapper must wrap lazily: run the probe on the first forward, then create
    ``pos_embed_token`` / ``x_token`` (sized by ``f`` / ``T``). Seq2seq; the head is ``head``.
    """

    def __init__(self, joints: int = J, in_chans: int = 2, dim: int = 16, depth: int = 4, num_heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(in_chans, dim)
        self.joint_embed = nn.Parameter(torch.randn(1, 1, joints, dim) * 0.1)  # per joint, not per frame
        self.stc_blocks = nn.ModuleList(STCBlock(dim, num_heads, 2 * dim) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.joint_embed
        for blk in self.stc_blocks:
            h = blk(h)
        return self.head(h)


def reference_stcformer(m: STCFormerLike, x: torch.Tensor, prune_block: int, tokens: int,
                        recover: Callable = tra, select: Callable = dpc_knn, hot=None, trace: Optional[dict] = None
                        ) -> torch.Tensor:
    """Seq2seq HoT: keep ``tokens`` frames chosen on the joint-mean tokens at the input of block
    ``prune_block`` (plus ``pos_embed_token``), restore all frames before ``head``."""
    hot = m if hot is None else hot
    b, frames, joints, _ = x.shape
    h = m.embed(x) + m.joint_embed
    for i, blk in enumerate(m.stc_blocks):
        if i == prune_block:
            idx = select(h.mean(dim=2), tokens)
            h = take_frames(h, idx) + hot.pos_embed_token[:, :, None, :]
        h = blk(h)
    kept = h.transpose(1, 2).reshape(b * joints, tokens, -1)
    full = recover(hot, kept, idx, frames).reshape(b, joints, frames, -1).transpose(1, 2)
    if trace is not None:
        trace["indices"] = idx
    return m.head(full)


# --- b. three-stream blocks over two consecutive lists (MHFormer) ------------------------------
class MHGStage(nn.Module):
    """One multi-hypothesis generator: blocks over ``b (j xy) t`` tokens, frames as channels."""

    def __init__(self, frames: int, joints: int, depth: int = 2) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, 2 * joints, frames) * 0.1)
        self.blocks = nn.ModuleList(Block(frames, 3, 2 * frames) for _ in range(depth))
        self.norm = nn.LayerNorm(frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.linear_q, self.linear_k, self.linear_v = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)

    def forward(self, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor) -> torch.Tensor:
        n, length, dim = q_in.shape
        h = self.num_heads

        def heads(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(n, -1, h, dim // h).transpose(1, 2)

        q, k, v = heads(self.linear_q(q_in)), heads(self.linear_k(k_in)), heads(self.linear_v(v_in))
        weights = (q @ k.transpose(-2, -1) / (dim // h) ** 0.5).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, length, dim))


class SHRBlock(nn.Module):
    """Self-attention per stream, then one MLP over the three streams concatenated; ``(x1, x2, x3)``
    in and out, each ``(b, t, c)``."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1_1, self.norm1_2, self.norm1_3 = (nn.LayerNorm(dim) for _ in range(3))
        self.attn_1, self.attn_2, self.attn_3 = (Attention(dim, num_heads) for _ in range(3))
        self.norm2 = nn.LayerNorm(3 * dim)
        self.mlp = nn.Sequential(nn.Linear(3 * dim, hidden), nn.GELU(), nn.Linear(hidden, 3 * dim))

    def forward(self, x_1, x_2, x_3):
        x_1 = x_1 + self.attn_1(self.norm1_1(x_1))
        x_2 = x_2 + self.attn_2(self.norm1_2(x_2))
        x_3 = x_3 + self.attn_3(self.norm1_3(x_3))
        x = torch.cat([x_1, x_2, x_3], dim=2)
        x = x + self.mlp(self.norm2(x))
        return tuple(x.chunk(3, dim=2))


class CHIBlock(nn.Module):
    """Cross-attention between the streams, then one MLP over the three concatenated."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(9))
        self.attn_1, self.attn_2, self.attn_3 = (CrossAttention(dim, num_heads) for _ in range(3))
        self.norm2 = nn.LayerNorm(3 * dim)
        self.mlp = nn.Sequential(nn.Linear(3 * dim, hidden), nn.GELU(), nn.Linear(hidden, 3 * dim))

    def forward(self, x_1, x_2, x_3):
        n = self.norms
        x_1 = x_1 + self.attn_1(n[0](x_2), n[1](x_3), n[2](x_1))
        x_2 = x_2 + self.attn_2(n[3](x_1), n[4](x_3), n[5](x_2))
        x_3 = x_3 + self.attn_3(n[6](x_1), n[7](x_2), n[8](x_3))
        x = torch.cat([x_1, x_2, x_3], dim=2)
        x = x + self.mlp(self.norm2(x))
        return tuple(x.chunk(3, dim=2))


class HypothesisStage(nn.Module):
    def __init__(self, frames: int, dim: int, num_heads: int) -> None:
        super().__init__()
        self.pos_embed_1, self.pos_embed_2, self.pos_embed_3 = (
            nn.Parameter(torch.randn(1, frames, dim) * 0.1) for _ in range(3))
        self.SHR_blocks = nn.ModuleList(SHRBlock(dim, num_heads, 4 * dim) for _ in range(2))
        self.CHI_blocks = nn.ModuleList(CHIBlock(dim, num_heads, 4 * dim) for _ in range(1))
        self.norm = nn.LayerNorm(3 * dim)

    def forward(self, x_1, x_2, x_3):
        x_1, x_2, x_3 = x_1 + self.pos_embed_1, x_2 + self.pos_embed_2, x_3 + self.pos_embed_3
        for blk in self.SHR_blocks:
            x_1, x_2, x_3 = blk(x_1, x_2, x_3)
        for blk in self.CHI_blocks:
            x_1, x_2, x_3 = blk(x_1, x_2, x_3)
        return self.norm(torch.cat([x_1, x_2, x_3], dim=2))


class MHFormerLike(nn.Module):
    """Mimics MHFormer / the official TPC-MHFormer (``model/mhformer/tpc_mhformer.py``).

    Three MHG encoders (``Transformer_encoder_1..3``, blocks over ``b (j xy) t`` tokens: frames are
    channels, so they cannot be pruned), 1x1-conv embeddings to three ``b t c`` streams, then
    ``Transformer_hypothesis``: ``SHR_blocks`` (2 blocks) and then ``CHI_blocks`` (1 block), every
    block taking and returning the tuple ``(x_1, x_2, x_3)``, and a channels-first regression head
    (``BatchNorm1d`` + ``Conv1d`` on ``(b, 3c, t)``). Returns ``(b, T, J, 3)``.

    The wrapper must: treat a block whose input and output are tuples of same-layout tensors as a
    block (gather/scatter every stream); count ``SHR_blocks`` then ``CHI_blocks`` as one sequence of
    depths 0, 1, 2; select on ``concat(x_1, x_2, x_3)`` over channels (frame tokens, no joints to
    pool). The head input is channels-first ``b c t``, which no known layout matches: the wrapper
    needs that layout or ``recover_before="Transformer_hypothesis.norm"`` (per-token, so filling
    before or after it is the same). Official setting: 351 frames, ``token_num`` 117, prune after
    SHR[0] (``layer_index`` 1), TPC only (``recover=False``) keeping the centre frame.
    """

    def __init__(self, frames: int = T, joints: int = J, dim: int = 12, num_heads: int = 2) -> None:
        super().__init__()
        self.norm_1, self.norm_2, self.norm_3 = (nn.LayerNorm(frames) for _ in range(3))
        self.Transformer_encoder_1, self.Transformer_encoder_2, self.Transformer_encoder_3 = (
            MHGStage(frames, joints) for _ in range(3))
        self.embedding_1, self.embedding_2, self.embedding_3 = (
            nn.Conv1d(2 * joints, dim, kernel_size=1) for _ in range(3))
        self.Transformer_hypothesis = HypothesisStage(frames, dim, num_heads)
        self.regression = nn.Sequential(nn.BatchNorm1d(3 * dim), nn.Conv1d(3 * dim, 3 * joints, kernel_size=1))
        with torch.no_grad():  # non-trivial running statistics, so eval-mode batch norm matters
            self.regression[0].running_mean.normal_(0, 0.5)
            self.regression[0].running_var.uniform_(0.5, 2.0)

    def hypotheses(self, x: torch.Tensor):
        """The three ``(b, t, c)`` streams entering ``Transformer_hypothesis`` (shared with the reference)."""
        x = rearrange(x, "b f j c -> b (j c) f")
        x_1 = x + self.Transformer_encoder_1(self.norm_1(x))
        x_2 = x_1 + self.Transformer_encoder_2(self.norm_2(x_1))
        x_3 = x_2 + self.Transformer_encoder_3(self.norm_3(x_2))
        return (self.embedding_1(x_1).transpose(1, 2), self.embedding_2(x_2).transpose(1, 2),
                self.embedding_3(x_3).transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joints = x.shape[2]
        h = self.Transformer_hypothesis(*self.hypotheses(x))
        out = self.regression(h.transpose(1, 2))
        return rearrange(out, "b (j c) f -> b f j c", j=joints)


def reference_mhformer_tpc(m: MHFormerLike, x: torch.Tensor, tokens: int, prune_block: int = 1,
                           select: Callable = _dpc_with_centre, trace: Optional[dict] = None) -> torch.Tensor:
    """The official TPC-MHFormer, then every pruned frame filled from its nearest kept frame.

    Depths run over ``SHR_blocks`` then ``CHI_blocks``; before depth ``prune_block`` the frames are
    chosen on ``concat(x_1, x_2, x_3)`` ``(b, T, 3c)``: ``tokens - 1`` density peaks other than the
    centre frame ``(T-1)//2``, plus the centre. No kept-frame embedding (TPC only). The official
    output is ``(b, tokens, J, 3)`` (kept frames only; ``trace["official"]``); the wrapper's
    convention returns all ``T`` frames, each pruned one copying its nearest kept frame's features
    before the head, so the centre frame's prediction is the official one.
    """
    b, frames, joints, _ = x.shape
    centre = (frames - 1) // 2
    stage = m.Transformer_hypothesis
    streams = [s + p for s, p in zip(m.hypotheses(x), (stage.pos_embed_1, stage.pos_embed_2, stage.pos_embed_3))]
    blocks = list(stage.SHR_blocks) + list(stage.CHI_blocks)
    for depth, blk in enumerate(blocks):
        if depth == prune_block:
            idx = select(torch.cat(streams, dim=2), tokens, centre)
            streams = [take_frames(s, idx) for s in streams]
        streams = list(blk(*streams))
    h = stage.norm(torch.cat(streams, dim=2))  # (b, tokens, 3c)
    official = rearrange(m.regression(h.transpose(1, 2)), "b (j c) f -> b f j c", j=joints)
    filled = nearest_fill(None, h, idx, frames)
    out = rearrange(m.regression(filled.transpose(1, 2)), "b (j c) f -> b f j c", j=joints)
    if trace is not None:
        trace.update(indices=idx, official=official)
    return out


# --- c. a BatchNorm1d(T) over the frame axis inside every block (MotionAGFormer) ---------------
class FrameNormMixer(nn.Module):
    """``relu(x + batch_norm(U(x)))`` on ``(b*j, t, c)`` with ``batch_norm = BatchNorm1d(t)``: one
    statistic and one affine pair per frame index, as MotionAGFormer's temporal GCN."""

    def __init__(self, dim: int, frames: int) -> None:
        super().__init__()
        self.U = nn.Linear(dim, dim)
        self.batch_norm = nn.BatchNorm1d(frames)
        with torch.no_grad():  # trained-looking per-frame statistics, so the frame index matters
            self.batch_norm.running_mean.normal_(0, 0.5)
            self.batch_norm.running_var.uniform_(0.5, 2.0)
            self.batch_norm.weight.uniform_(0.5, 1.5)
            self.batch_norm.bias.normal_(0, 0.1)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        return torch.relu(seqs + self.batch_norm(self.U(seqs)))


class FrameNormBlock(nn.Module):
    """On ``(b, t, j, c)``: temporal attention per joint, the frame-indexed mixer, an MLP."""

    def __init__(self, dim: int, num_heads: int, hidden: int, frames: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.mixer = FrameNormMixer(dim, frames)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, j, c = x.shape
        seqs = self.norm1(x).transpose(1, 2).reshape(b * j, t, c)
        seqs = self.mixer(self.attn(seqs))
        x = x + seqs.reshape(b, j, t, c).transpose(1, 2)
        return x + self.mlp(self.norm2(x))


class MotionAGFormerLike(nn.Module):
    """Mimics MotionAGFormer (``hourglass_tokenizer.models.MotionAGFormer``; upstream
    TaatiTeam/MotionAGFormer): ``layers`` (an ``nn.Sequential``) of blocks on ``b t j c``, each with a
    ``BatchNorm1d(T)`` over the frame axis at ``layers.{i}.mixer.batch_norm``; no temporal position
    embedding and, as upstream, no frame-count attribute (only the batch norms' size gives ``T``).
    ``norm`` then ``rep_logit`` then ``head``: HoT-MotionAGFormer recovers before ``rep_logit``.

    The wrapper must swap every frame-sized module in the pruned blocks (depth >= prune_block) for
    a rank-indexed ``BatchNorm1d(f)`` at the same path (so official HoT-MotionAGFormer checkpoints,
    whose layers from 7 on are built with ``n_frames = 81``, load), and put the originals back on
    ``unwrap_hot``. The frames cannot be inferred from attributes: lazy wrapping or
    ``input_shape=(T, J, 3)``.
    """

    def __init__(self, frames: int = T, joints: int = J, in_chans: int = 3, dim: int = 16, depth: int = 4,
                 num_heads: int = 2) -> None:
        super().__init__()
        self.joints_embed = nn.Linear(in_chans, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, joints, dim) * 0.1)
        self.layers = nn.Sequential(*(FrameNormBlock(dim, num_heads, 2 * dim, frames) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.rep_logit = nn.Sequential(nn.Linear(dim, 2 * dim), nn.Tanh())
        self.head = nn.Linear(2 * dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.joints_embed(x) + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.head(self.rep_logit(self.norm(x)))


def reference_motionagformer(m: MotionAGFormerLike, x: torch.Tensor, prune_block: int, tokens: int,
                             recover: Callable = tra, select: Callable = dpc_knn, hot=None,
                             trace: Optional[dict] = None) -> torch.Tensor:
    """HoT-MotionAGFormer as the official code: select on the joint-mean tokens at the input of
    layer ``prune_block``, add ``pos_embed_token``, run the remaining layers on the kept frames,
    recover after ``norm`` and before ``rep_logit``.

    The layers from ``prune_block`` on must carry ``BatchNorm1d(tokens)``: kept frame of rank ``r``
    (``r``-th kept frame in time) uses statistic ``r``. The reference calls each layer as it is
    (after ``wrap_with_hot`` its batch norms are the swapped ones) and checks the sizes.
    """
    hot = m if hot is None else hot
    b, frames, joints, _ = x.shape
    h = m.joints_embed(x) + m.pos_embed
    for i, layer in enumerate(m.layers):
        expected = frames if i < prune_block else tokens
        assert layer.mixer.batch_norm.num_features == expected, (
            f"layers.{i}.mixer.batch_norm has {layer.mixer.batch_norm.num_features} features, expected {expected}")
        if i == prune_block:
            idx = select(h.mean(dim=2), tokens)
            h = take_frames(h, idx) + hot.pos_embed_token[:, :, None, :]
        h = layer(h)
    kept = m.norm(h).transpose(1, 2).reshape(b * joints, tokens, -1)
    full = recover(hot, kept, idx, frames).reshape(b, joints, frames, -1).transpose(1, 2)
    if trace is not None:
        trace["indices"] = idx
    return m.head(m.rep_logit(full))


def with_rank_indexed_norms(m: MotionAGFormerLike, prune_block: int, tokens: int,
                            init: Callable[[nn.BatchNorm1d, int], nn.BatchNorm1d]) -> MotionAGFormerLike:
    """In place: the layers from ``prune_block`` on get ``init(original, tokens)`` as their batch norm
    (what the wrapper is to do; used to exercise the reference without it). Returns ``m``."""
    for layer in list(m.layers)[prune_block:]:
        layer.mixer.batch_norm = init(layer.mixer.batch_norm, tokens)
    return m


# --- d. pruning at two depths (H2OT) ---------------------------------------------------------
def reference_two_stage(m, x: torch.Tensor, prune_blocks: Sequence[int], tokens: Sequence[int],
                        recover: Callable = tra, select: Callable = dpc_knn, embeddings=None, hot=None,
                        trace: Optional[dict] = None) -> torch.Tensor:
    """Progressive pruning on :class:`stand_ins.MixSTELike`: keep ``tokens[0]`` frames from depth
    ``prune_blocks[0]`` on, ``tokens[1]`` of those from depth ``prune_blocks[1]`` on; one recovery
    before the head.

    Stage ``s`` selects on the joint-mean tokens at the input of the first block of depth
    ``prune_blocks[s]`` (the spatial block), i.e. over the frames still present: the second
    selection sees only the ``tokens[0]`` kept frames, in time order, and returns ranks among them.
    Ranks are composed into original frame numbers, ``frames = frames.gather(1, ranks)``, and those
    numbers (``trace["indices"]``, ``(b, tokens[-1])``, ascending) drive the recovery to ``T``.
    ``embeddings[s]`` (``(1, tokens[s], c)`` or None) is added to the kept tokens at stage ``s``;
    by default ``(hot.pos_embed_token, None)``: one kept-frame embedding, at the first stage.
    """
    hot = m if hot is None else hot
    embeddings = (hot.pos_embed_token, None) if embeddings is None else embeddings
    b, frames_in, joints, _ = x.shape
    h = m.embed(x.reshape(b * frames_in, joints, -1)) + m.spatial_pos
    t = frames_in
    numbers = torch.arange(frames_in).expand(b, frames_in)
    stage_of = {n: s for s, n in enumerate(prune_blocks)}
    for i in range(len(m.spatial_blocks)):
        if i in stage_of:
            s = stage_of[i]
            h4 = h.reshape(b, t, joints, -1)
            ranks = select(h4.mean(dim=2), tokens[s])
            numbers = numbers.gather(1, ranks)
            h4 = take_frames(h4, ranks)
            if embeddings[s] is not None:
                h4 = h4 + embeddings[s][:, :, None, :]
            t = tokens[s]
            h = h4.reshape(b * t, joints, -1)
        h = m.spatial_norm(m.spatial_blocks[i](h))
        h = h.reshape(b, t, joints, -1).transpose(1, 2).reshape(b * joints, t, -1)
        if i == 0:
            h = h + m.temporal_pos
        h = m.temporal_norm(m.temporal_blocks[i](h))
        h = h.reshape(b, joints, t, -1).transpose(1, 2).reshape(b * t, joints, -1)
    kept = h.reshape(b, t, joints, -1).transpose(1, 2).reshape(b * joints, t, -1)
    full = recover(hot, kept, numbers, frames_in)
    if trace is not None:
        trace["indices"] = numbers
    return m.head(full.reshape(b, joints, frames_in, -1).transpose(1, 2))
