"""Small stand-in video pose transformers with the structure of real ones, for the wrapper tests.

Each forward is written the way upstream VPTs write theirs: the frame count is read from the
input at the top and reused in every reshape, position embeddings have a fixed length, and the
blocks know nothing about HoT.
"""
import torch
from einops import rearrange
from torch import nn


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


class MixSTELike(nn.Module):
    """Alternating spatial ``(b t) j c`` and temporal ``(b j) t c`` blocks, seq2seq."""

    def __init__(self, frames=27, joints=17, in_chans=2, dim=16, depth=4, num_heads=2):
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

    def __init__(self, frames=27, joints=17, in_chans=3, dim=16, depth=3, num_heads=2):
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


class PoseFormerLike(nn.Module):
    """One temporal block list on ``b t c`` frame tokens; seq2frame (predicts the centre frame)."""

    def __init__(self, frames=27, joints=17, in_chans=2, dim=32, depth=4, num_heads=4):
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


class SequentialVPT(nn.Module):
    """The simplest VPT: one token per frame ``b t c``, blocks in an ``nn.Sequential``, seq2seq."""

    def __init__(self, frames=27, joints=17, in_chans=2, dim=16, depth=3, num_heads=2):
        super().__init__()
        self.embed = nn.Linear(joints * in_chans, dim)
        self.temporal_pos = nn.Parameter(torch.randn(1, frames, dim) * 0.1)
        self.blocks = nn.Sequential(*(Block(dim, num_heads, 2 * dim) for _ in range(depth)))
        self.head = nn.Linear(dim, joints * 3)

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.blocks(self.embed(x.reshape(b, f, -1)) + self.temporal_pos)
        return self.head(x).reshape(b, f, j, 3)


class TorchEncoderVPT(nn.Module):
    """``nn.TransformerEncoderLayer`` blocks on per-joint sequences ``(b j) t c``; no size attributes,
    so wrapping needs ``example_input=`` (or ``input_shape=``)."""

    def __init__(self, frames=27, joints=17, in_chans=2, dim=16, depth=3, num_heads=2):
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


class MHAVPT(nn.Module):
    """``nn.MultiheadAttention`` blocks on frame tokens ``b t c``."""

    def __init__(self, frames=27, joints=17, in_chans=2, dim=16, depth=3, num_heads=2):
        super().__init__()
        self.num_frames, self.num_joints, self.in_chans = frames, joints, in_chans
        self.embed = nn.Linear(joints * in_chans, dim)
        self.frame_pos = nn.Parameter(torch.randn(1, frames, dim) * 0.1)
        self.blocks = nn.ModuleList(MHABlock(dim, num_heads) for _ in range(depth))
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

    def __init__(self, frames=27, joints=17, in_chans=2, dim=16, depth=3, num_heads=2):
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


class TupleBlock(nn.Module):
    """A block that returns ``(tokens, attention weights)``, as some upstream code does."""

    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return x + self.fc(x), x.mean(dim=-1)


class TupleBlocksVPT(nn.Module):
    def __init__(self, frames=27, joints=17, in_chans=2, dim=16, depth=3):
        super().__init__()
        self.num_frames, self.num_joints, self.in_chans = frames, joints, in_chans
        self.embed = nn.Linear(joints * in_chans, dim)
        self.blocks = nn.ModuleList(TupleBlock(dim) for _ in range(depth))
        self.head = nn.Linear(dim, joints * 3)

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.embed(x.reshape(b, f, -1))
        for blk in self.blocks:
            x, _ = blk(x)
        return self.head(x).reshape(b, f, j, 3)


class SharedBlocksVPT(TupleBlocksVPT):
    """ALBERT-style weight sharing: the same block list runs twice per forward."""

    def __init__(self, frames=27, joints=17, in_chans=2, dim=16, depth=3, num_heads=2):
        super().__init__(frames, joints, in_chans, dim, depth)
        self.blocks = nn.ModuleList(Block(dim, num_heads, 2 * dim) for _ in range(depth))

    def forward(self, x):
        b, f, j, _ = x.shape
        x = self.embed(x.reshape(b, f, -1))
        for _ in range(2):
            for blk in self.blocks:
                x = blk(x)
        return self.head(x).reshape(b, f, j, 3)
