"""Wrap your own video pose transformer with HoT in one line, train a step, save, and undo it.

    python examples/quickstart.py
"""
import os
import tempfile

import torch
from einops import rearrange
from torch import nn

from hourglass_tokenizer import count_flops, unwrap_hot, wrap_with_hot


class TinyBlock(nn.Module):
    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class MyVPT(nn.Module):
    """A MixSTE-style model as a user would write it: nothing in it knows about HoT."""

    def __init__(self, frames=81, joints=17, dim=64, depth=6):
        super().__init__()
        self.embed = nn.Linear(2, dim)
        self.joint_pos = nn.Parameter(torch.zeros(1, joints, dim))
        self.frame_pos = nn.Parameter(torch.zeros(1, frames, dim))
        self.spatial = nn.ModuleList(TinyBlock(dim) for _ in range(depth))
        self.temporal = nn.ModuleList(TinyBlock(dim) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))

    def forward(self, x):  # (b, t, j, 2) -> (b, t, j, 3)
        b, t, j, _ = x.shape
        x = self.embed(rearrange(x, "b t j c -> (b t) j c")) + self.joint_pos
        for i, (spatial, temporal) in enumerate(zip(self.spatial, self.temporal)):
            x = rearrange(spatial(x), "(b t) j c -> (b j) t c", t=t)
            x = temporal(x + self.frame_pos if i == 0 else x)
            x = rearrange(x, "(b j) t c -> (b t) j c", j=j)
        return self.head(rearrange(x, "(b t) j c -> b t j c", t=t))


def main() -> None:
    torch.manual_seed(0)
    model = MyVPT()
    x = torch.randn(2, 81, 17, 2)
    macs_before = count_flops(model, x[:1])

    model = wrap_with_hot(model, prune_block=2, tokens=27)  # the one line
    print(model.hot)
    print(f"MACs per clip: {macs_before / 1e9:.3f} G -> {count_flops(model, x[:1]) / 1e9:.3f} G")

    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = (model(x) - torch.randn(2, 81, 17, 3)).norm(dim=-1).mean()
    loss.backward()
    optimiser.step()
    print(f"one training step: loss {loss.item():.3f}; kept frames of clip 0: {model.hot.last_indices[0].tolist()}")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "my_vpt_hot.pt")
        torch.save(model.state_dict(), path)  # original keys + pos_embed_token, x_token, cross_attention.*
        # A fresh copy of your model, wrapped the same way, takes the checkpoint back.
        restored = wrap_with_hot(MyVPT(), prune_block=2, tokens=27)
        restored.load_state_dict(torch.load(path))
        print(f"saved and reloaded {os.path.basename(path)}: {len(restored.state_dict())} tensors")
    unwrap_hot(model)
    print("unwrapped; output shape", tuple(model(x).shape))


if __name__ == "__main__":
    main()
