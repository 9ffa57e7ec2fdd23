"""Behaviour that the wrapper tests ran through without checking: each test here fails for a
specific wrong implementation (a mutant that once survived the whole suite)."""
from __future__ import annotations

import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.models import build_model
from hourglass_tokenizer.core.presets import paper_setting
from stand_ins import MixSTELike, PoseFormerLike

T, J = 27, 17


def first_frames(features, f):
    """A custom selector without ``exclude=``: the first ``f`` frames, never the centre for f <= 13."""
    return torch.arange(f).expand(features.shape[0], f)


def frames_around(start):
    def select(features, f):
        return torch.arange(start, start + f).expand(features.shape[0], f)
    return select


def test_tpc_only_forces_the_centre_into_a_custom_selection():
    torch.manual_seed(0)
    x = torch.randn(2, T, J, 2)
    model = wrap_with_hot(PoseFormerLike().eval(), prune_block=1, tokens=9, recover=False, selector=first_frames)
    with torch.no_grad():
        model(x)
    # The kept frame nearest the centre (8) gives way to the centre (13); the others stay.
    assert model.hot.last_indices.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 13]] * 2
    model.hot.selector = frames_around(10)  # already holds the centre: unchanged
    with torch.no_grad():
        model(x)
    assert model.hot.last_indices.tolist() == [list(range(10, 19))] * 2


@pytest.mark.parametrize("new_tokens", [5, 17])
def test_changing_tokens_resamples_the_learned_kept_frame_embedding(new_tokens):
    model = wrap_with_hot(MixSTELike().eval(), prune_block=2, tokens=9, recover="tra")
    weights = torch.linspace(-1, 1, 16)
    with torch.no_grad():  # a ramp along the kept frames: linear resampling keeps it a ramp
        model.pos_embed_token.copy_(torch.arange(9.0)[None, :, None] * weights)
    with pytest.warns(UserWarning, match="rebuild optimisers"):
        model.hot.tokens = new_tokens
    expected = torch.linspace(0, 8, new_tokens)[None, :, None] * weights
    torch.testing.assert_close(model.pos_embed_token.detach(), expected, atol=1e-6, rtol=1e-6)
    assert model.pos_embed_token.requires_grad


@pytest.mark.parametrize("family, recover, depth, expected", [
    ("mixste", True, 8, (3, 81)),     # the paper's own depth: unchanged
    ("mixste", True, 16, (6, 81)),    # 3 of 8 blocks -> 6 of 16
    ("mixste", True, 2, (1, 81)),     # at least one block before pruning
    ("mixste", False, 4, (3, 61)),    # 7 of 8 -> 3.5, rounded and capped at depth - 1
    ("motionbert", True, 10, (2, 81)),
])
def test_presets_scale_the_prune_block_with_depth(family, recover, depth, expected):
    assert paper_setting(family, recover, 243, depth) == expected


def test_preset_of_a_shallow_short_zoo_model():
    model = wrap_with_hot(build_model("mixste", "small"))  # depth 4 (paper 8), 27 frames (paper 243)
    assert (model.hot.prune_block, model.hot.tokens) == (2, 9)


# --- selection, recovery and layouts: behaviour the mutation run found unchecked -----------------
from hourglass_tokenizer.core.selection import (CoverageSelector, DpcKnnSelector, RandomSelector, dpc_knn,  # noqa: E402
                                            dpc_knn_coverage, dpc_knn_scores, uniform)
from hourglass_tokenizer.core.layouts import TokenLayout  # noqa: E402
from hourglass_tokenizer.core.recovery import CrossAttention, corrected_interpolation, interpolate_frames  # noqa: E402


def features(b=2, t=24, c=8, seed=0):
    return torch.randn(b, t, c, generator=torch.Generator().manual_seed(seed))


def test_dpc_knn_range_of_f_and_exclusion():
    x = features()
    best = dpc_knn_scores(x).argmax(dim=-1)
    assert dpc_knn(x, 1).tolist() == [[int(best[0])], [int(best[1])]]
    assert dpc_knn(x, 23, exclude=2).tolist() == [[i for i in range(24) if i != 2]] * 2
    with pytest.raises(ValueError, match="cannot pick 24 of 23 selectable frames"):
        dpc_knn(x, 24, exclude=2)
    with pytest.raises(ValueError, match=r"expects features of shape \(batch, frames, channels\), got \(24, 8\)"):
        dpc_knn_scores(x[0])
    with pytest.raises(ValueError, match=r"needs 1 <= k <= frames \(24\), got k=0"):
        dpc_knn_scores(x, k=0)
    assert dpc_knn_scores(x, k=1).shape == dpc_knn_scores(x, k=24).shape == (2, 24)


def test_selectors_use_their_k():
    x = features(seed=3)
    assert not torch.equal(dpc_knn(x, 6, k=2), dpc_knn(x, 6, k=5))  # k matters on this input
    assert torch.equal(DpcKnnSelector(k=5)(x, 6), dpc_knn(x, 6, k=5))
    assert not torch.equal(dpc_knn_coverage(x, 6, k=2), dpc_knn_coverage(x, 6, k=5))
    assert torch.equal(CoverageSelector(k=5)(x, 6), dpc_knn_coverage(x, 6, k=5))


def test_coverage_takes_each_strata_peak_with_the_ends_kept():
    x = features(seed=4)
    score = dpc_knn_scores(x, k=5)
    score[:, 0] = score[:, -1] = float("inf")
    expected = [[int(score[s, [i for i in range(24) if i * 6 // 24 == q]].argmax()) + q * 4 for q in range(6)]
                for s in range(2)]
    assert dpc_knn_coverage(x, 6, k=5).tolist() == expected


def test_uniform_range_of_f():
    x = features()
    assert uniform(x, 1).tolist() == [[0], [0]]
    assert uniform(x, 24).tolist() == [list(range(24))] * 2
    assert uniform(x, 23, exclude=0).tolist() == [list(range(1, 24))] * 2
    with pytest.raises(ValueError, match="uniform cannot pick 24 of 23 selectable frames"):
        uniform(x, 24, exclude=0)


def test_random_selector_per_sample_range_and_exclusion():
    x = features(b=4, t=20)
    selector = RandomSelector(seed=5)
    assert selector.seed == 5 and repr(selector) == "RandomSelector(seed=5)"
    picks = selector(x, 3)
    assert len({tuple(row) for row in picks.tolist()}) > 1  # every sample draws its own frames
    assert selector(x, 1).shape == (4, 1) and selector(x, 20).tolist() == [list(range(20))] * 4
    assert not (selector(x, 19, exclude=3) == 3).any()
    with pytest.raises(ValueError, match="random cannot pick 20 of 19 selectable frames"):
        selector(x, 20, exclude=3)


def test_interpolation_copies_the_end_frames_exactly():
    kept = torch.randn(2, 3, 4) * 100
    idx = torch.tensor([[5, 9, 12], [0, 1, 20]])
    out = interpolate_frames(kept, idx, 24)
    for s in range(2):
        first, last = idx[s, 0], idx[s, -1]
        assert torch.equal(out[s, :first + 1], kept[s, :1].expand(int(first) + 1, -1))
        assert torch.equal(out[s, last:], kept[s, -1:].expand(24 - int(last), -1))
        assert torch.equal(out[s, idx[s]], kept[s])


def hand_attention(ca, query, key):
    n, lq, c = query.shape
    h = ca.num_heads
    q = torch.nn.functional.linear(query, ca.linear_q.weight, ca.linear_q.bias).reshape(n, lq, h, -1).transpose(1, 2)
    k = torch.nn.functional.linear(key, ca.linear_k.weight, ca.linear_k.bias).reshape(n, -1, h, c // h).transpose(1, 2)
    v = torch.nn.functional.linear(key, ca.linear_v.weight, ca.linear_v.bias).reshape(n, -1, h, c // h).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / (c // h) ** 0.5, dim=-1)
    return torch.nn.functional.linear((weights @ v).transpose(1, 2).reshape(n, lq, c), ca.proj.weight, ca.proj.bias)


def test_corrected_interpolation_adds_the_attention_to_its_queries():
    torch.manual_seed(0)
    ca = CrossAttention(8, 2)
    with torch.no_grad():
        for p in ca.parameters():
            p.normal_(0, 0.3)
    x_token = torch.randn(1, 10, 8)
    kept, idx = torch.randn(2, 4, 8), torch.tensor([[0, 3, 6, 9], [1, 2, 5, 8]])
    queries = x_token + interpolate_frames(kept, idx, 10)
    with torch.no_grad():
        torch.testing.assert_close(corrected_interpolation(x_token, ca, kept, idx),
                                   queries + hand_attention(ca, queries, kept), atol=1e-5, rtol=1e-5)


def test_cross_attention_options():
    torch.manual_seed(0)
    plain = CrossAttention(64, 4)
    assert plain.proj.weight.abs().sum() > 0  # only zero_output=True starts the projection at zero
    assert CrossAttention(64, 4, zero_output=True).proj.weight.abs().sum() == 0
    for linear in (plain.linear_q, plain.linear_k, plain.linear_v, plain.proj):
        assert 0.015 < float(linear.weight.detach().std()) < 0.025 and linear.bias is not None
    no_bias = CrossAttention(64, 4, qkv_bias=False)
    assert no_bias.linear_q.bias is None and no_bias.linear_k.bias is None and no_bias.linear_v.bias is None
    dropping = CrossAttention(8, 2, attn_drop=0.5)
    query, key = torch.randn(2, 6, 8), torch.randn(2, 4, 8)
    with torch.no_grad():
        dropping.eval()  # no attention dropout at evaluation
        torch.testing.assert_close(dropping(query, key, key), hand_attention(dropping, query, key), atol=1e-6, rtol=1e-5)
        dropping.train()
        assert not torch.allclose(dropping(query, key, key), dropping(query, key, key))


@pytest.mark.parametrize("pattern", ["b t j", "c b t", "b t x c", "b b t c", "t j c", "b j c"])
def test_layout_patterns_that_are_rejected(pattern):
    with pytest.raises(ValueError, match=f"layout '{pattern}': (the channel axis 'c' must be the last axis|expected "
                                         "axes b, t, optional j, and c)"):
        TokenLayout(pattern)


def test_layout_patterns_are_normalised():
    assert TokenLayout(" ( b  t )  j c ").pattern == "(b t) j c"
    assert TokenLayout("b (t j) c").pattern == "b (t j) c"
    merged = TokenLayout("b t (j c)")  # one token per frame: read as b t c
    assert merged.pattern == "b t c" and merged.axes == ("b", "t", "c") and merged == TokenLayout("b t c")


def test_layout_shape_errors_and_dtype_promotion():
    layout = TokenLayout("(b t) j c")
    with pytest.raises(ValueError, match=r"tokens of shape \(5, 3, 4\) do not fit layout '\(b t\) j c' "
                                         r"with b=2, t=3, j=3 \(expected \(6, 3, 4\)\)"):
        layout.gather(torch.zeros(5, 3, 4), torch.zeros(2, 1, dtype=torch.long), 2, 3, 3)
    full = torch.zeros(2 * 3, 3, 4)
    kept = torch.ones(2 * 2, 3, 4, dtype=torch.bfloat16)
    out = layout.scatter(full, kept, torch.tensor([[0, 2], [1, 2]]), 2, 3, 3)
    assert out.dtype == torch.float32
    assert out.reshape(2, 3, 3, 4)[:, :, 0, 0].tolist() == [[1, 0, 1], [0, 1, 1]]


class NamelessSelector:
    def __init__(self, result):
        self.result = result

    def __call__(self, features, f):
        return self.result

    def __repr__(self):
        return "NamelessSelector()"


@pytest.mark.parametrize("result, error, message", [
    ([[0, 1, 2]], TypeError, "selector {name} must return a tensor of frame indices of shape (2, 3), got list"),
    (torch.tensor([[0.0, 1.0, 2.0]] * 2), TypeError, "selector {name} must return integer frame indices, got dtype torch.float32"),
    (torch.tensor([[True, False, True]] * 2), TypeError, "must return integer frame indices, got dtype torch.bool"),
    (torch.tensor([[0, 1, 2]]), ValueError, "selector {name} must return indices of shape (2, 3) (batch, tokens), got (1, 3)"),
    (torch.tensor([[-1, 1, 2], [0, 1, 2]]), ValueError, "selector {name} returned frame indices outside 0..26: min -1, max 2"),
    (torch.tensor([[0, 1, 27], [0, 1, 2]]), ValueError, "returned frame indices outside 0..26: min 0, max 27"),
    (torch.tensor([[5, 1, 5], [0, 1, 2]]), ValueError,
     "selector {name} returned a frame twice in one sample; the 3 indices of a sample must be unique"),
])
@pytest.mark.parametrize("named", [True, False])
def test_a_custom_selectors_mistake_is_named(result, error, message, named):
    model = wrap_with_hot(MixSTELike().eval(), prune_block=1, tokens=3, recover="interpolate")
    if named:
        def my_selector(features, f):
            return result
        model.hot.selector, name = my_selector, "my_selector"
    else:
        model.hot.selector, name = NamelessSelector(result), "NamelessSelector()"
    with pytest.raises(error) as caught, torch.no_grad():
        model(torch.randn(2, T, J, 2))
    assert message.format(name=name) in str(caught.value)


def test_layout_edge_patterns_and_equality():
    for pattern in ("", "(b t c)"):
        with pytest.raises(ValueError, match="layout"):
            TokenLayout(pattern)
    assert TokenLayout("b t c") != "b t c"
    assert TokenLayout("(b t) j c") != TokenLayout("(b j) t c")
    assert TokenLayout("(b t) j c") == TokenLayout("(b  t) j   c")


def test_documented_defaults():
    from hourglass_tokenizer.core.selection import resolve_selector

    assert DpcKnnSelector().k == CoverageSelector().k == resolve_selector("dpc_knn").k == 2  # the paper's k
    assert resolve_selector("dpc_knn_coverage").k == 2
    assert RandomSelector().seed == resolve_selector("random").seed == 0
    assert resolve_selector("dpc_knn", k=4).k == 4 and resolve_selector("random", seed=3).seed == 3
    assert CrossAttention(16).num_heads == 8
    with pytest.raises(ValueError, match=r"unknown selector 'bogus': expected one of \('dpc_knn', .*\) or a "
                                         r"callable \(frame_features \(b, t, c\), f\) -> indices \(b, f\)"):
        resolve_selector("bogus")


def test_random_selector_with_one_sample():
    assert RandomSelector()(features(b=1, t=20), 20).tolist() == [list(range(20))]


@pytest.mark.parametrize("tokens", [1, 2])
def test_tpc_only_with_one_or_two_tokens_keeps_the_centre(tokens):
    model = wrap_with_hot(PoseFormerLike().eval(), prune_block=1, tokens=tokens, recover=False)
    with torch.no_grad():
        model(torch.randn(3, T, J, 2))
    idx = model.hot.last_indices
    assert idx.shape == (3, tokens) and (idx == 13).any(dim=1).all()


def test_recovery_keeps_the_dtype_of_the_kept_tokens():
    torch.manual_seed(0)
    ca = CrossAttention(8, 2)
    x_token = torch.randn(1, 10, 8)
    kept, idx = torch.randn(2, 4, 8).bfloat16(), torch.tensor([[0, 3, 6, 9], [1, 2, 5, 8]])
    from hourglass_tokenizer.core.recovery import recover_frames

    assert interpolate_frames(kept, idx, 10).dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert recover_frames(x_token, ca, kept).dtype == torch.bfloat16
        assert corrected_interpolation(x_token, ca, kept, idx).dtype == torch.bfloat16


def test_selection_and_recovery_stay_on_the_features_device():
    """Every tensor the selectors and the recovery make is created on the input's device. The
    "meta" device (shapes without data) checks that without a GPU: a tensor made on the CPU
    instead cannot be combined with meta tensors."""
    from hourglass_tokenizer.core.selection import choose_frames
    from hourglass_tokenizer.core.recovery import nearest_kept_frames

    x = torch.randn(2, 24, 8, device="meta")
    idx = torch.zeros(2, 6, dtype=torch.long, device="meta")
    results = [dpc_knn(x, 6), dpc_knn(x, 6, exclude=3), dpc_knn_coverage(x, 6), uniform(x, 6),
               dpc_knn(x, 1), choose_frames(DpcKnnSelector(), x, 6, keep=11),
               choose_frames(CoverageSelector(), x, 6, keep=11), choose_frames(uniform, x, 6),
               choose_frames(first_frames, x, 6, keep=11),
               interpolate_frames(torch.randn(2, 6, 8, device="meta"), idx, 24), nearest_kept_frames(idx, 24)]
    assert all(r.device.type == "meta" for r in results)
    assert [tuple(r.shape) for r in results[:9]] == [(2, 6)] * 4 + [(2, 1)] + [(2, 6)] * 4


def test_custom_selectors_may_return_any_integer_dtype():
    model = wrap_with_hot(MixSTELike().eval(), prune_block=1, tokens=3, recover="interpolate")
    model.hot.selector = lambda features, f: torch.tensor([[1, 8, 20]] * features.shape[0], dtype=torch.int32)
    with torch.no_grad():
        model(torch.randn(2, T, J, 2))
    assert model.hot.last_indices.dtype == torch.int64 and model.hot.last_indices.tolist() == [[1, 8, 20]] * 2


def test_random_selector_error_with_one_sample():
    with pytest.raises(ValueError, match="random cannot pick 21 of 20 selectable frames"):
        RandomSelector()(features(b=1, t=20), 21)
