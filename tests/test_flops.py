"""count_flops against MAC counts worked out by hand for small stand-in transformers."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hourglass_tokenizer.bench.flops import count_flops, count_flops_by_operator, count_params


class Attention(nn.Module):
    """Multi-head self-attention written either with explicit matmuls or with SDPA."""

    def __init__(self, dim: int, heads: int, use_sdpa: bool) -> None:
        super().__init__()
        self.heads, self.use_sdpa = heads, use_sdpa
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.use_sdpa:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
            out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, use_sdpa: bool) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, use_sdpa)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


class TinyTransformer(nn.Module):
    """Embedding, ``depth`` pre-norm blocks, a linear head; tokens ``(b, n, c_in)``."""

    def __init__(self, c_in: int = 2, dim: int = 32, heads: int = 4, hidden: int = 64, depth: int = 2,
                 out: int = 3, use_sdpa: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(c_in, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden, use_sdpa) for _ in range(depth))
        self.head = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def analytic_macs(b: int, n: int, c_in: int = 2, dim: int = 32, hidden: int = 64, depth: int = 2,
                  out: int = 3, layer_norm_cost: int = 5) -> dict:
    """MACs of TinyTransformer by hand; LayerNorm at fvcore's 5 ops per element."""
    tokens = b * n
    per_block_linear = tokens * (dim * 3 * dim + dim * dim + dim * hidden + hidden * dim)
    # q @ k^T: (b h n d) x (b h d n) = b*n*n*dim; attn @ v the same.
    per_block_attention = 2 * b * n * n * dim
    per_block_norm = 2 * layer_norm_cost * tokens * dim
    return {
        "linear": tokens * (c_in * dim + dim * out) + depth * per_block_linear,
        "attention": depth * per_block_attention,
        "layer_norm": depth * per_block_norm,
    }


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_matches_analytic_count(use_sdpa: bool) -> None:
    torch.manual_seed(0)
    b, n = 3, 20
    model = TinyTransformer(use_sdpa=use_sdpa)
    expected = analytic_macs(b, n)
    total = count_flops(model, torch.randn(b, n, 2))
    assert total == pytest.approx(sum(expected.values()), rel=0.01)
    by_op = count_flops_by_operator(model, torch.randn(b, n, 2))
    attention_op = "scaled_dot_product_attention" if use_sdpa else "matmul"
    assert by_op[attention_op] == pytest.approx(expected["attention"], rel=0.01)
    assert by_op["linear"] == pytest.approx(expected["linear"], rel=0.01)


def test_sdpa_handle_counts_what_matmuls_count() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 15, 2)
    explicit = TinyTransformer(use_sdpa=False)
    fused = TinyTransformer(use_sdpa=True)
    fused.load_state_dict(explicit.state_dict())
    assert count_flops(fused, x) == count_flops(explicit, x) > 0
    with torch.no_grad():  # and the two really compute the same thing
        torch.testing.assert_close(fused.eval()(x), explicit.eval()(x), rtol=1e-4, atol=1e-5)


def test_sdpa_with_different_query_and_key_lengths() -> None:
    class Cross(nn.Module):
        def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, kv, kv)

    q, kv = torch.randn(2, 4, 30, 8), torch.randn(2, 4, 10, 8)
    # q @ k^T: 2*4*30*10*8, attn @ v: the same again.
    assert count_flops(Cross(), (q, kv)) == 2 * (2 * 4 * 30 * 10 * 8)


def test_cdist_is_counted_and_topk_free() -> None:
    class Knn(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
            return torch.topk(d, 2, dim=-1, largest=False).values.softmax(dim=-1)

    assert count_flops(Knn(), torch.randn(2, 50, 16)) == 2 * 50 * 50 * 16


def test_training_mode_restored_and_inputs_as_tuple() -> None:
    model = TinyTransformer().train()
    model.blocks[1].eval()  # a mixed state must survive too
    count_flops(model, (torch.randn(1, 5, 2),))
    assert model.training and model.blocks[0].training and not model.blocks[1].training
    model.eval()
    count_flops(model, torch.randn(1, 5, 2))
    assert not model.training


def test_no_unsupported_operator_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        count_flops(TinyTransformer(use_sdpa=True), torch.randn(1, 5, 2))
    assert not [r for r in caplog.records if "nsupported" in r.getMessage() or "never called" in r.getMessage()]


def test_count_params() -> None:
    model = TinyTransformer()
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    model.head.weight.requires_grad_(False)
    assert count_params(model, trainable_only=True) == count_params(model) - model.head.weight.numel()


def test_count_macs_is_the_public_name_of_what_is_counted():
    import hourglass_tokenizer

    linear = nn.Linear(8, 4, bias=False)
    assert hourglass_tokenizer.count_macs(linear, torch.zeros(3, 8)) == 3 * 8 * 4  # multiply-adds, not 2x
    assert "count_macs" in hourglass_tokenizer.__all__
