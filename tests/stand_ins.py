"""Stand-in video pose transformers, and HoT on each of them written out by hand, for the wrapper tests.

A stand-in is a tiny model shaped like an upstream family (module names, token layouts, where the
frame count comes from), written the way upstream VPTs write theirs: the frame count is read from
the input and reused in every reshape, position embeddings have a fixed length, and the blocks know
nothing about HoT. A ``reference_*`` function is HoT on one stand-in, written with explicit loops
and gathers and without the wrapper, so that a test can compare the wrapper with it.

Conventions of the references:

- ``select(features (b, t, c), f)`` picks frames in ascending order (``dpc_knn``, the wrapper's
  default); the reference gathers them with a Python loop over samples (:func:`take_frames`).
- ``recover(kept (b*m, f, c), frames (b, f), T) -> (b*m, T, c)`` restores all frames before the
  head, ``frames`` being original frame numbers; ``None`` is the paper's TRA with ``hot``'s
  parameters (:func:`tra`). :func:`interpolate_by_hand` and :func:`nearest_fill` are the others.
- ``hot`` holds the HoT parameters (``pos_embed_token``, ``x_token``, ``cross_attention``): by
  default the model itself, as after ``wrap_with_hot``. ``trace`` (a dict), when given, receives the
  selected frames (``trace["indices"]``) to compare with ``model.hot.last_indices``.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from hourglass_tokenizer import is_hot, unwrap_hot
from hourglass_tokenizer.core.selection import dpc_knn

T, J = 27, 17
#: The attributes ``wrap_with_hot`` adds to a model.
HOT_ROOTS = ("pos_embed_token", "x_token", "cross_attention")
Recover = Optional[Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]]


# --- inputs, HoT parameters, and checks shared by the tests ---------------------------------------
def walks(batch: int, frames: int = T, joints: int = J, channels: int = 2, seed: int = 0) -> torch.Tensor:
    """Random walks that pause for a while at a different time in every sample: the samples' frame
    features differ in structure, so per-sample selections differ."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(batch, frames, joints, channels, generator=g) * 0.3
    pause = max(2, frames // 4)
    for s in range(batch):
        start = (1 + s * (frames // 3) + 5 * seed) % (frames - pause)
        steps[s, start:start + pause] = 0
    return torch.cumsum(steps, dim=1)


def seeded(cls: Callable[..., nn.Module], seed: int = 0, **kwargs) -> nn.Module:
    """``cls(**kwargs)`` built after ``torch.manual_seed(seed)``, in eval mode."""
    torch.manual_seed(seed)
    return cls(**kwargs).eval()


def randomise_hot_parameters(model: nn.Module) -> None:
    """Trained-looking HoT parameters instead of their (mostly zero) start."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[0] in HOT_ROOTS:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def hooks_of(model: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) + len(m._state_dict_pre_hooks)
               for m in model.modules())


def snapshot(model: nn.Module, x: torch.Tensor):
    """What :func:`assert_unwraps_exactly` compares with: weights, submodules, hooks and the output on ``x``."""
    with torch.no_grad():
        plain_out = model(x)
    return {k: v.clone() for k, v in model.state_dict().items()}, dict(model.named_modules()), hooks_of(model), plain_out


def assert_unwraps_exactly(model: nn.Module, x: torch.Tensor, before) -> None:
    """``unwrap_hot`` gives back the model of ``before = snapshot(model, x)``."""
    state, modules, hooks, plain_out = before
    unwrap_hot(model)
    assert not is_hot(model) and not any(hasattr(model, n) for n in HOT_ROOTS)
    after = model.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], state[k]) for k in state)
    now = dict(model.named_modules())
    assert list(now) == list(modules) and all(now[n] is modules[n] for n in modules)  # the very same objects
    assert hooks_of(model) == hooks
    with torch.no_grad():
        assert torch.equal(model(x), plain_out)


def assert_every_parameter_trains(model: nn.Module, x: torch.Tensor) -> None:
    model.zero_grad()
    model(x).square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert dead == []


def record_inputs(modules: Sequence[nn.Module]):
    """Hooks recording the shape of the first input each module really receives (registered after
    wrapping, they run after HoT's and see its gathered tokens); returns ``(shapes, handles)``."""
    shapes = []
    handles = [m.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape))) for m in modules]
    return shapes, handles


# --- pieces of the references -------------------------------------------------------------------
def take_frames(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x (b, t, ...)`` -> ``(b, f, ...)``: sample ``s`` keeps frames ``idx[s]`` (a loop, no gather)."""
    return torch.stack([x[s, idx[s]] for s in range(idx.shape[0])])


def attention_by_hand(ca: nn.Module, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """``ca.proj`` of multi-head attention of ``query`` on ``key`` (keys and values), through ``ca``'s
    ``linear_q/k/v`` weights, one matrix product at a time."""
    n, lq, c = query.shape
    heads = ca.num_heads

    def split(z: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        return F.linear(z, linear.weight, linear.bias).reshape(n, -1, heads, c // heads).transpose(1, 2)

    q, k, v = split(query, ca.linear_q), split(key, ca.linear_k), split(key, ca.linear_v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / (c // heads) ** 0.5, dim=-1)
    return F.linear((weights @ v).transpose(1, 2).reshape(n, lq, c), ca.proj.weight, ca.proj.bias)


def tra(hot, kept: torch.Tensor, total: int) -> torch.Tensor:
    """The paper's TRA: ``x_token + cross_attention(x_token, kept, kept)``."""
    assert hot.x_token.shape[1] == total
    queries = hot.x_token.expand(kept.shape[0], -1, -1)
    return queries + attention_by_hand(hot.cross_attention, queries, kept)


def interpolate_by_hand(kept: torch.Tensor, frames: torch.Tensor, total: int) -> torch.Tensor:
    """Per sequence and frame: the two kept frames around it, weighted by distance in time (copies of
    the first/last kept frame beyond them). ``kept (b*m, f, c)``, ``frames (b, f)``."""
    per_sample = kept.shape[0] // frames.shape[0]
    out = kept.new_empty(kept.shape[0], total, kept.shape[-1])
    for n in range(kept.shape[0]):
        at = frames[n // per_sample].tolist()
        for t in range(total):
            if t <= at[0]:
                out[n, t] = kept[n, 0]
            elif t >= at[-1]:
                out[n, t] = kept[n, -1]
            else:
                right = next(p for p, frame in enumerate(at) if frame >= t)
                w = (t - at[right - 1]) / (at[right] - at[right - 1])
                out[n, t] = kept[n, right] if at[right] == t else (1 - w) * kept[n, right - 1] + w * kept[n, right]
    return out


def nearest_fill(kept: torch.Tensor, frames: torch.Tensor, total: int) -> torch.Tensor:
    """``kept (b*m, f, c)`` at original frames ``frames (b, f)`` -> ``(b*m, total, c)``: each frame copies
    the kept frame nearest in time, the earlier one on a tie (the identity when every frame is kept)."""
    b, f = frames.shape
    per_sample = kept.shape[0] // b
    out = kept.new_empty(kept.shape[0], total, kept.shape[-1])
    for row in range(kept.shape[0]):
        numbers = frames[row // per_sample].tolist()
        for t in range(total):
            out[row, t] = kept[row, min(range(f), key=lambda r: (abs(numbers[r] - t), numbers[r]))]
    return out


def corrected_interpolation_by_hand(hot) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
    """The default ``"tra+interpolate"`` as a ``recover``: queries ``x_token + interpolation`` attend
    to the kept tokens, ``queries + cross_attention(queries, kept, kept)``."""
    def recover(kept: torch.Tensor, frames: torch.Tensor, total: int) -> torch.Tensor:
        queries = hot.x_token + interpolate_by_hand(kept, frames, total)
        return queries + attention_by_hand(hot.cross_attention, queries, kept)
    return recover


def restore(hot, kept: torch.Tensor, frames: torch.Tensor, total: int, recover: Recover) -> torch.Tensor:
    return tra(hot, kept, total) if recover is None else recover(kept, frames, total)


def dpc_with_centre(features: torch.Tensor, f: int, centre: int) -> torch.Tensor:
    """TPC-only selection of the official code: ``f - 1`` density peaks other than the centre frame,
    plus the centre frame, ascending."""
    b = features.shape[0]
    picked = dpc_knn(features, f - 1, exclude=centre) if f > 1 else features.new_zeros(b, 0, dtype=torch.long)
    return torch.sort(torch.cat([picked, torch.full((b, 1), centre, dtype=torch.long)], dim=1), dim=1).values


def run_pruned(blocks: Sequence[nn.Module], h: torch.Tensor, prune_block: int, tokens: int, select: Callable, hot,
               trace: Optional[dict]):
    """Run ``blocks`` on ``(b, t, j, c)`` tokens; at the input of block ``prune_block`` keep the ``tokens``
    frames ``select`` picks on the joint-mean tokens, plus ``hot.pos_embed_token``. Returns the last
    block's output and the kept frames."""
    for i, blk in enumerate(blocks):
        if i == prune_block:
            idx = select(h.mean(dim=2), tokens)
            h = take_frames(h, idx) + hot.pos_embed_token[:, :, None, :]
        h = blk(h)
    if trace is not None:
        trace["indices"] = idx
    return h, idx


def to_sequences(h: torch.Tensor) -> torch.Tensor:
    """``(b, t, j, c)`` -> one sequence per joint, ``(b*j, t, c)``."""
    return h.transpose(1, 2).reshape(h.shape[0] * h.shape[2], h.shape[1], -1)


def from_sequences(h: torch.Tensor, joints: int) -> torch.Tensor:
    """``(b*j, t, c)`` -> ``(b, t, j, c)``."""
    return h.reshape(-1, joints, h.shape[1], h.shape[2]).transpose(1, 2)


# --- transformer blocks -----------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, length, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) / (dim // self.num_heads) ** 0.5).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, length, dim))


class Block(nn.Module):
    def __init__(self, dim, num_heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# --- MixSTE: alternating spatial and temporal blocks ---------------------------------------------------
class MixSTELike(nn.Module):
    """Alternating spatial ``(b t) j c`` and temporal ``(b j) t c`` blocks, seq2seq."""

    def __init__(self, frames=T, joints=J, in_chans=2, dim=16, depth=4, num_heads=2):
        super().__init__()
        self.embed = nn.Linear(in_chans, dim)
        self.spatial_pos = nn.Parameter(torch.randn(1, joints, dim) * 0.1)
        self.temporal_pos = nn.Parameter(torch.randn(1, frames, dim) * 0.1)
        self.spatial_blocks = nn.ModuleList(Block(dim, num_heads, 2 * dim) for _ in range(depth))
        self.temporal_blocks = nn.ModuleList(Block(dim, num_heads, 2 * dim) for _ in range(depth))
        self.spatial_norm = nn.LayerNorm(dim)
        self.temporal_norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))

    def forward(self, x):
        b, f, n, _ = x.shape
        x = self.embed(rearrange(x, "b f n c -> (b f) n c")) + self.spatial_pos
        for i in range(len(self.spatial_blocks)):
            x = self.spatial_norm(self.spatial_blocks[i](x))
            x = rearrange(x, "(b f) n c -> (b n) f c", f=f)
            if i == 0:
                x = x + self.temporal_pos
            x = self.temporal_norm(self.temporal_blocks[i](x))
            x = rearrange(x, "(b n) f c -> (b f) n c", n=n)
        x = self.head(x.view(b, f, n, -1))
        return x.view(b, f, n, -1)


def reference_mixste(m: MixSTELike, x: torch.Tensor, prune_blocks: Union[int, Sequence[int]],
                     tokens: Union[int, Sequence[int]], recover: Recover = None, select: Callable = dpc_knn,
                     embeddings=None, hot=None, trace: Optional[dict] = None) -> torch.Tensor:
    """HoT on :class:`MixSTELike`, pruning at one depth or at several (H2OT): ``tokens[s]`` frames
    from depth ``prune_blocks[s]`` on; one recovery before the head.

    Stage ``s`` selects on the joint-mean tokens at the input of the spatial block of depth
    ``prune_blocks[s]``, i.e. over the frames still present: a later stage sees only the frames the
    previous one kept, in time order, and returns ranks among them, which are composed into original
    frame numbers (``numbers.gather(1, ranks)``); those numbers drive the recovery to ``T``.
    ``embeddings[s]`` (``(1, tokens[s], c)`` or None) is added to the kept tokens at stage ``s``; by
    default ``hot.pos_embed_token`` at the first stage only.
    """
    if isinstance(prune_blocks, int):
        prune_blocks, tokens = (prune_blocks,), (tokens,)
    hot = m if hot is None else hot
    embeddings = (hot.pos_embed_token,) + (None,) * (len(tokens) - 1) if embeddings is None else embeddings
    b, frames, joints, _ = x.shape
    h = m.embed(x.reshape(b * frames, joints, -1)) + m.spatial_pos
    t = frames
    numbers = torch.arange(frames).expand(b, frames)
    stage_of = {depth: s for s, depth in enumerate(prune_blocks)}
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
    full = restore(hot, to_sequences(h.reshape(b, t, joints, -1)), numbers, frames, recover)
    if trace is not None:
        trace["indices"] = numbers
    return m.head(from_sequences(full, joints))


# --- MotionBERT: two block lists side by side -----------------------------------------------------------
class DualStreamBlock(nn.Module):
    """Spatial then temporal attention (or the reverse) on ``(b t) j c`` tokens; takes the frame count."""

    def __init__(self, dim, num_heads, hidden, spatial_first):
        super().__init__()
        self.spatial_first = spatial_first
        self.spatial = Block(dim, num_heads, hidden)
        self.temporal = Block(dim, num_heads, hidden)

    def _temporal(self, x, frames):
        joints = x.shape[1]
        x = rearrange(x, "(b f) j c -> (b j) f c", f=frames)
        return rearrange(self.temporal(x), "(b j) f c -> (b f) j c", j=joints)

    def forward(self, x, frames):
        if self.spatial_first:
            return self._temporal(self.spatial(x), frames)
        return self.spatial(self._temporal(x, frames))


class MotionBERTLike(nn.Module):
    """Two block lists side by side on the same input, fused token-wise by learned weights."""

    def __init__(self, frames=T, joints=J, in_chans=3, dim=16, depth=3, num_heads=2):
        super().__init__()
        self.joints_embed = nn.Linear(in_chans, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, joints, dim) * 0.1)
        self.temp_embed = nn.Parameter(torch.randn(1, frames, 1, dim) * 0.1)
        self.blocks_st = nn.ModuleList(DualStreamBlock(dim, num_heads, 2 * dim, True) for _ in range(depth))
        self.blocks_ts = nn.ModuleList(DualStreamBlock(dim, num_heads, 2 * dim, False) for _ in range(depth))
        self.ts_attn = nn.ModuleList(nn.Linear(2 * dim, 2) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.pre_logits = nn.Sequential(nn.Linear(dim, 2 * dim), nn.Tanh())
        self.head = nn.Linear(2 * dim, 3)

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.joints_embed(x.reshape(b * f, j, -1)) + self.pos_embed
        x = (x.reshape(b, f, j, -1) + self.temp_embed[:, :f]).reshape(b * f, j, -1)
        for blk_st, blk_ts, fuse in zip(self.blocks_st, self.blocks_ts, self.ts_attn):
            x_st, x_ts = blk_st(x, f), blk_ts(x, f)
            alpha = fuse(torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
            x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
        x = self.norm(x).reshape(b, f, j, -1)
        return self.head(self.pre_logits(x))


def reference_motionbert(m: MotionBERTLike, x: torch.Tensor, prune_block: int, tokens: int) -> torch.Tensor:
    """One selection for both block lists, at the input of depth ``prune_block``; TRA before the head."""
    b, frames, joints, _ = x.shape
    h = m.joints_embed(x.reshape(b * frames, joints, -1)) + m.pos_embed
    h = (h.reshape(b, frames, joints, -1) + m.temp_embed).reshape(b * frames, joints, -1)
    t = frames
    for i in range(len(m.blocks_st)):
        if i == prune_block:
            h4 = h.reshape(b, t, joints, -1)
            idx = dpc_knn(h4.mean(dim=2), tokens)
            h = (take_frames(h4, idx) + m.pos_embed_token[:, :, None, :]).reshape(b * tokens, joints, -1)
            t = tokens
        x_st, x_ts = m.blocks_st[i](h, t), m.blocks_ts[i](h, t)
        alpha = m.ts_attn[i](torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
        h = x_st * alpha[..., :1] + x_ts * alpha[..., 1:]
    h = tra(m, to_sequences(m.norm(h).reshape(b, t, joints, -1)), frames)
    return m.head(m.pre_logits(from_sequences(h, joints)))


# --- PoseFormer: frame tokens, seq2frame -------------------------------------------------------------------
class PoseFormerLike(nn.Module):
    """One temporal block list on ``b t c`` frame tokens; seq2frame (predicts the centre frame)."""

    def __init__(self, frames=T, joints=J, in_chans=2, dim=32, depth=4, num_heads=4):
        super().__init__()
        self.embed = nn.Linear(joints * in_chans, dim)
        self.temporal_pos = nn.Parameter(torch.randn(1, frames, dim) * 0.1)
        self.blocks = nn.ModuleList(Block(dim, num_heads, 2 * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.weighted_mean = nn.Conv1d(frames, 1, kernel_size=1)
        self.head = nn.Linear(dim, joints * 3)

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.embed(x.reshape(b, f, -1)) + self.temporal_pos
        for blk in self.blocks:
            x = blk(x)
        x = self.weighted_mean(self.norm(x))
        return self.head(x).view(b, 1, j, 3)


def reference_poseformer_tpc(m: PoseFormerLike, x: torch.Tensor, prune_block: int, tokens: int) -> torch.Tensor:
    """The official TPC: the centre frame always kept, no kept-frame embedding; the pruned frames are
    filled from their nearest kept frame before the weighted mean over frames."""
    b, frames, joints, _ = x.shape
    h = m.embed(x.reshape(b, frames, -1)) + m.temporal_pos
    for i, blk in enumerate(m.blocks):
        if i == prune_block:
            idx = dpc_with_centre(h, tokens, (frames - 1) // 2)
            h = take_frames(h, idx)
        h = blk(h)
    return m.head(m.weighted_mean(nearest_fill(m.norm(h), idx, frames))).view(b, 1, joints, 3)


# --- other ways of writing a VPT -----------------------------------------------------------------------------
class SequentialVPT(nn.Module):
    """The simplest VPT: one token per frame ``b t c``, blocks in an ``nn.Sequential`` called as one
    module (timm's ViT style), seq2seq. ``block(dim, num_heads)`` makes a block (:class:`Block`)."""

    def __init__(self, frames=T, joints=J, in_chans=2, dim=16, depth=3, num_heads=2, block=None):
        super().__init__()
        block = block or (lambda width, heads: Block(width, heads, 2 * width))
        self.embed = nn.Linear(joints * in_chans, dim)
        self.temporal_pos = nn.Parameter(torch.randn(1, frames, dim) * 0.1)
        self.blocks = nn.Sequential(*(block(dim, num_heads) for _ in range(depth)))
        self.head = nn.Linear(dim, joints * 3)

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.blocks(self.embed(x.reshape(b, f, -1)) + self.temporal_pos)
        return self.head(x).reshape(b, f, j, 3)


def reference_sequential(m: SequentialVPT, x: torch.Tensor, prune_block: int, tokens: int) -> torch.Tensor:
    """Prune after ``prune_block`` blocks, add ``pos_embed_token``, run the rest on the kept frames,
    interpolate the others back."""
    b, frames, joints, _ = x.shape
    h = m.embed(x.reshape(b, frames, -1)) + m.temporal_pos
    for i, blk in enumerate(m.blocks):
        if i == prune_block:
            idx = dpc_knn(h, tokens)
            h = take_frames(h, idx) + m.pos_embed_token
        h = blk(h)
    return m.head(interpolate_by_hand(h, idx, frames)).reshape(b, frames, joints, 3)


class TorchEncoderVPT(nn.Module):
    """``nn.TransformerEncoderLayer`` blocks on per-joint sequences ``(b j) t c``; no size attributes."""

    def __init__(self, frames=T, joints=J, in_chans=2, dim=16, depth=3, num_heads=2):
        super().__init__()
        self.embed = nn.Linear(in_chans, dim)
        self.position = nn.Parameter(torch.randn(1, frames, dim) * 0.1)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, num_heads, 2 * dim, dropout=0.0, batch_first=True) for _ in range(depth))
        self.out = nn.Linear(dim, 3)

    def forward(self, x):
        b, f, j, _ = x.shape
        x = rearrange(self.embed(x), "b f j c -> (b j) f c") + self.position
        for layer in self.layers:
            x = layer(x)
        return self.out(rearrange(x, "(b j) f c -> b f j c", j=j))


class MHABlock(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(x)


class FrameTokensVPT(nn.Module):
    """Frame tokens ``b t c`` through a ``blocks`` list of ``block(dim, num_heads)``, with size attributes."""

    def __init__(self, frames=T, joints=J, in_chans=2, dim=16, depth=3, num_heads=2, block=MHABlock):
        super().__init__()
        self.num_frames, self.num_joints, self.in_chans = frames, joints, in_chans
        self.embed = nn.Linear(joints * in_chans, dim)
        self.frame_pos = nn.Parameter(torch.randn(1, frames, dim) * 0.1)
        self.blocks = nn.ModuleList(block(dim, num_heads) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, joints * 3))

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.embed(x.reshape(b, f, -1)) + self.frame_pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(x).reshape(b, f, j, 3)


class JointTimeVPT(nn.Module):
    """Joint-time tokens ``b (t j) c``: every block attends over all frames and joints at once."""

    def __init__(self, frames=9, joints=5, in_chans=2, dim=16, depth=3, num_heads=2):
        super().__init__()
        self.num_frames, self.num_joints, self.in_chans = frames, joints, in_chans
        self.embed = nn.Linear(in_chans, dim)
        self.temporal_pos = nn.Parameter(torch.randn(1, frames, 1, dim) * 0.1)
        self.blocks = nn.ModuleList(Block(dim, num_heads, 2 * dim) for _ in range(depth))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        b, f, j, _ = x.shape
        x = rearrange(self.embed(x) + self.temporal_pos, "b f j c -> b (f j) c")
        for blk in self.blocks:
            x = blk(x)
        return self.head(rearrange(x, "b (f j) c -> b f j c", f=f))


class JointMajorBlock(nn.Module):
    """Takes ``(b, j, t, c)`` tokens and attends over time for each joint."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.block = Block(dim, num_heads, 2 * dim)

    def forward(self, x):
        b, j, t, c = x.shape
        return self.block(x.reshape(b * j, t, c)).reshape(b, j, t, c)


class JointMajorVPT(nn.Module):
    """Blocks take 4-D joint-major tokens ``b j t c``."""

    def __init__(self, frames=T, joints=J, in_chans=2, dim=16, depth=3, num_heads=2):
        super().__init__()
        self.num_frames, self.num_joints, self.in_chans = frames, joints, in_chans
        self.embed = nn.Linear(in_chans, dim)
        self.temporal_pos = nn.Parameter(torch.randn(1, 1, frames, dim) * 0.1)
        self.blocks = nn.ModuleList(JointMajorBlock(dim, num_heads) for _ in range(depth))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x.transpose(1, 2)) + self.temporal_pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(x).transpose(1, 2)


# --- models HoT cannot prune, and must say why -----------------------------------------------------------
class TupleBlock(nn.Module):
    """A block that returns ``(tokens, attention weights)``, as some upstream code does."""

    def __init__(self, dim, num_heads=None):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return x + self.fc(x), x.mean(dim=-1)


class TupleBlocksVPT(FrameTokensVPT):
    def __init__(self):
        super().__init__(block=TupleBlock)

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.embed(x.reshape(b, f, -1))
        for blk in self.blocks:
            x, _ = blk(x)
        return self.head(x).reshape(b, f, j, 3)


class SharedBlocksVPT(FrameTokensVPT):
    """ALBERT-style weight sharing: the same block list runs twice per forward."""

    def __init__(self):
        super().__init__(block=lambda dim, heads: Block(dim, heads, 2 * dim))

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.embed(x.reshape(b, f, -1))
        for _ in range(2):
            for blk in self.blocks:
                x = blk(x)
        return self.head(x).reshape(b, f, j, 3)


class NoBlocksVPT(nn.Module):
    """One block attribute, no list of blocks."""

    def __init__(self):
        super().__init__()
        self.num_frames = T
        self.a = Block(8, 2, 16)
        self.proj = nn.Linear(2, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        b, f, j, _ = x.shape
        return self.head(self.a(self.proj(x).reshape(b, f * j, -1))).reshape(b, f, j, 3)


class OneBlockVPT(FrameTokensVPT):
    """A list of a single block: nothing after a prune point."""

    def __init__(self):
        super().__init__(depth=1, block=lambda dim, heads: Block(dim, heads, 2 * dim))


class PoseFormerV2Like(nn.Module):
    """PoseFormerV2's token shape: a few centre frames' spatial tokens plus the first DCT
    coefficients of the whole sequence; the temporal blocks run over those, not over frames."""

    def __init__(self, frames=T, kept=3, coefficients=5, dim=16):
        super().__init__()
        self.num_frames, self.num_joints, self.in_chans = frames, J, 2
        self.kept = kept
        n = torch.arange(frames, dtype=torch.float32)
        self.register_buffer("dct", torch.cos(torch.pi / frames * (n[None] + 0.5) * torch.arange(coefficients)[:, None]))
        self.embed = nn.Linear(J * 2, dim)
        self.temporal_pos = nn.Parameter(torch.zeros(1, kept + coefficients, dim))
        self.blocks = nn.ModuleList(Block(dim, 2, 2 * dim) for _ in range(3))
        self.head = nn.Linear(dim, J * 3)

    def forward(self, x):
        b, t = x.shape[:2]
        start = (t - self.kept) // 2
        centre = x[:, start:start + self.kept].reshape(b, self.kept, -1)
        coefficients = torch.einsum("kt,btc->bkc", self.dct, x.reshape(b, t, -1))
        h = self.embed(torch.cat([centre, coefficients], dim=1)) + self.temporal_pos
        for blk in self.blocks:
            h = blk(h)
        return self.head(h.mean(dim=1)).reshape(b, 1, J, 3)


# --- STCFormer: no frame count but an unused attribute, no parameter on the model itself ------------------------
#: Human3.6M joint -> body part (torso, right leg, left leg, left arm, right arm), as STCFormer's.
BODY_PARTS = (0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 3, 3, 3, 4, 4, 4)


class STC_ATTENTION(nn.Module):
    """STCFormer's attention on ``(b, t, s, c)``: of every head's channels, one half attends over the
    joints of each frame and the other over the frames of each joint; a depthwise 3x3 convolution
    over the (frame, joint) grid of the values (``sep2_s``/``sep2_t``) adds local context to each
    half, and a body-part embedding (tiny weight, as upstream) joins the spatial half; then ``proj``
    and the residual."""

    def __init__(self, d_coor: int, head: int = 8) -> None:
        super().__init__()
        half = d_coor // 2
        self.head = head
        self.scale = half ** -0.5
        self.layer_norm = nn.LayerNorm(d_coor)
        self.qkv = nn.Linear(d_coor, 3 * d_coor)
        self.emb = nn.Embedding(len(set(BODY_PARTS)), half // head)
        self.register_buffer("part", torch.tensor(BODY_PARTS), persistent=False)
        self.sep2_s = nn.Conv2d(half, half, kernel_size=3, padding=1, groups=half)
        self.sep2_t = nn.Conv2d(half, half, kernel_size=3, padding=1, groups=half)
        self.proj = nn.Linear(d_coor, d_coor)

    def _half(self, q, k, v, conv: nn.Conv2d, over: str) -> torch.Tensor:
        """Attention over ``over`` (``"s"``: the joints of a frame, ``"t"``: the frames of a joint) per
        head, plus the convolved values; ``(b, t, s, c/2)`` each -> ``(b, head, t, s, c/2/head)``."""
        b, t, s, _ = q.shape
        seqs = "(b h t) s c" if over == "s" else "(b h s) t c"
        q, k, v_seqs = (rearrange(z, f"b t s (h c) -> {seqs}", h=self.head) for z in (q, k, v))
        local = rearrange(conv(rearrange(v, "b t s c -> b c t s")), f"b (h c) t s -> {seqs}", h=self.head)
        out = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1) @ v_seqs + local
        return rearrange(out, f"{seqs} -> b h t s c", b=b, t=t, s=s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(self.layer_norm(x)).reshape(*x.shape, 3).permute(4, 0, 1, 2, 3)  # (3, b, t, s, c)
        spatial, temporal = qkv.chunk(2, dim=4)
        x_s = self._half(*spatial, self.sep2_s, "s") + 1e-4 * self.emb(self.part)[None, None, None]
        x_t = self._half(*temporal, self.sep2_t, "t")
        return x + self.proj(rearrange(torch.cat([x_s, x_t], dim=-1), "b h t s c -> b t s (h c)"))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class STC_BLOCK(nn.Module):
    def __init__(self, d_coor: int) -> None:
        super().__init__()
        self.stc_att = STC_ATTENTION(d_coor)
        self.layer_norm = nn.LayerNorm(d_coor)
        self.mlp = Mlp(d_coor, 4 * d_coor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stc_att(x)
        return x + self.mlp(self.layer_norm(x))


class STCFormer(nn.Module):
    """The block stack; ``d_time`` (the frame count) is stored, as upstream, but never read."""

    def __init__(self, num_block: int, d_time: int, d_joint: int, d_coor: int) -> None:
        super().__init__()
        self.num_block, self.d_time, self.d_joint, self.d_coor = num_block, d_time, d_joint, d_coor
        self.stc_block = nn.ModuleList(STC_BLOCK(d_coor) for _ in range(num_block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_block):
            x = self.stc_block[i](x)
        return x


def stcformer_args(layers: int = 4, d_hid: int = 16, frames: int = T) -> SimpleNamespace:
    """The ``args`` of STCFormer's ``Model(args)``."""
    return SimpleNamespace(layers=layers, d_hid=d_hid, frames=frames, n_joints=J, out_joints=J)


class STCFormerLike(nn.Module):
    """Mimics STCFormer (zhenhuat/STCFormer ``model/stcformer.py``, ``Model(args)``): ``pose_emb``,
    ``gelu``, blocks ``stcformer.stc_block`` on ``b t s c``, ``regress_head``; seq2seq.

    No position embedding, no parameter sized by ``T`` and no parameter on the model itself (its
    first parameter after a lazy wrap is HoT's own placeholder); the frame count is only
    ``stcformer.d_time``, which the model never reads, so it accepts any clip length and the wrapper
    cannot infer ``T`` before a real input arrives: it wraps lazily.
    """

    def __init__(self, args: Optional[SimpleNamespace] = None) -> None:
        super().__init__()
        args = args or stcformer_args()
        self.pose_emb = nn.Linear(2, args.d_hid, bias=False)
        self.gelu = nn.GELU()
        self.stcformer = STCFormer(args.layers, args.frames, args.n_joints, args.d_hid)
        self.regress_head = nn.Linear(args.d_hid, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regress_head(self.stcformer(self.gelu(self.pose_emb(x))))


def reference_stcformer(m: STCFormerLike, x: torch.Tensor, prune_block: int, tokens: int, recover: Recover = None,
                        select: Callable = dpc_knn, hot=None, trace: Optional[dict] = None) -> torch.Tensor:
    """Keep ``tokens`` frames chosen on the joint-mean tokens at the input of block ``prune_block``
    (plus ``pos_embed_token``), restore all frames before ``regress_head``."""
    hot = m if hot is None else hot
    h, idx = run_pruned(m.stcformer.stc_block, m.gelu(m.pose_emb(x)), prune_block, tokens, select, hot, trace)
    return m.regress_head(from_sequences(restore(hot, to_sequences(h), idx, x.shape[1], recover), x.shape[2]))


# --- MHFormer: blocks on tuples of three token streams, over two consecutive lists ---------------------------
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


class StreamsMLP(nn.Module):
    """The second half of MHFormer's blocks: one MLP, with its residual, over the three streams
    concatenated; :meth:`mix` returns the streams again."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm2 = nn.LayerNorm(3 * dim)
        self.mlp = nn.Sequential(nn.Linear(3 * dim, hidden), nn.GELU(), nn.Linear(hidden, 3 * dim))

    def mix(self, x_1, x_2, x_3):
        x = torch.cat([x_1, x_2, x_3], dim=2)
        x = x + self.mlp(self.norm2(x))
        return tuple(x.chunk(3, dim=2))


class SHRBlock(StreamsMLP):
    """Self-attention per stream, then the MLP over the three; ``(x1, x2, x3)`` in and out, each ``(b, t, c)``."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__(dim, hidden)
        self.norm1_1, self.norm1_2, self.norm1_3 = (nn.LayerNorm(dim) for _ in range(3))
        self.attn_1, self.attn_2, self.attn_3 = (Attention(dim, num_heads) for _ in range(3))

    def forward(self, x_1, x_2, x_3):
        return self.mix(x_1 + self.attn_1(self.norm1_1(x_1)), x_2 + self.attn_2(self.norm1_2(x_2)),
                        x_3 + self.attn_3(self.norm1_3(x_3)))


class CHIBlock(StreamsMLP):
    """Cross-attention between the streams (each updated stream feeds the next), then the MLP over the three."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__(dim, hidden)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(9))
        self.attn_1, self.attn_2, self.attn_3 = (CrossAttention(dim, num_heads) for _ in range(3))

    def forward(self, x_1, x_2, x_3):
        n = self.norms
        x_1 = x_1 + self.attn_1(n[0](x_2), n[1](x_3), n[2](x_1))
        x_2 = x_2 + self.attn_2(n[3](x_1), n[4](x_3), n[5](x_2))
        x_3 = x_3 + self.attn_3(n[6](x_1), n[7](x_2), n[8](x_3))
        return self.mix(x_1, x_2, x_3)


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
                           select: Callable = dpc_with_centre, trace: Optional[dict] = None) -> torch.Tensor:
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
    filled = nearest_fill(h, idx, frames)
    out = rearrange(m.regression(filled.transpose(1, 2)), "b (j c) f -> b f j c", j=joints)
    if trace is not None:
        trace.update(indices=idx, official=official)
    return out


# --- MotionAGFormer: a BatchNorm1d(T) over the frame axis inside every block -------------------------------
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
    ``unwrap_hot``. No attribute gives the frame count: the wrapper guesses it from the batch norms'
    size, or takes ``input_shape=(T, J, 3)``.
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
                             recover: Recover = None, select: Callable = dpc_knn, hot=None,
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
    for i, layer in enumerate(m.layers):
        expected = frames if i < prune_block else tokens
        assert layer.mixer.batch_norm.num_features == expected, (
            f"layers.{i}.mixer.batch_norm has {layer.mixer.batch_norm.num_features} features, expected {expected}")
    h, idx = run_pruned(m.layers, m.joints_embed(x) + m.pos_embed, prune_block, tokens, select, hot, trace)
    full = from_sequences(restore(hot, to_sequences(m.norm(h)), idx, frames, recover), joints)
    return m.head(m.rep_logit(full))


def with_rank_indexed_norms(m: MotionAGFormerLike, prune_block: int, tokens: int,
                            init: Callable[[nn.BatchNorm1d, int], nn.BatchNorm1d]) -> MotionAGFormerLike:
    """In place: the layers from ``prune_block`` on get ``init(original, tokens)`` as their batch norm
    (what the wrapper is to do; used to exercise the reference without it). Returns ``m``."""
    for layer in list(m.layers)[prune_block:]:
        layer.mixer.batch_norm = init(layer.mixer.batch_norm, tokens)
    return m


# --- a model whose error is known: the root for every joint -------------------------------------
class ZeroModel(nn.Module):
    """Predicts the root for every joint: its error is the mean distance of the joints from the root."""

    num_frames = 9

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.zeros(*x.shape[:-1], 3) + 0 * self.unused
