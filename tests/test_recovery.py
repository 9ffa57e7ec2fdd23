"""Recovery modes (``recover=``): training-free interpolation and nearest fill, TRA as a correction of
the interpolation, the official TPC-only layout and HoT checkpoints, and the argument's validation."""
import copy

import pytest
import torch
from torch import nn

from hourglass_tokenizer import is_hot, load_official_hot, wrap_with_hot
from hourglass_tokenizer.core.recovery import (RECOVERY_MODES, RESIDUAL_WEIGHT, CrossAttention,
                                               corrected_interpolation, correction_is_zero, interpolate_frames,
                                               recover_frames,
                                               residual_interpolation, resolve_recover)
from stand_ins import (MixSTELike, attention_by_hand, dpc_with_centre, interpolate_by_hand, nearest_fill,
                       randomise_hot_parameters, reference_mixste, seeded, walks)

TRA = dict(prune_block=2, tokens=9, recover="tra", selector="dpc_knn")  # the paper's HoT


def build(seed=0):
    return seeded(MixSTELike, seed), walks(3)


# --- the functions --------------------------------------------------------------------------------
def test_interpolate_frames_matches_the_hand_written_interpolation():
    g = torch.Generator().manual_seed(0)
    idx = torch.tensor([[2, 5, 9, 10], [0, 1, 7, 11]])
    kept = torch.randn(2 * 3, 4, 5, generator=g)  # 3 joints per sample
    torch.testing.assert_close(interpolate_frames(kept, idx, 12), interpolate_by_hand(kept, idx, 12))
    exact = interpolate_frames(kept, idx, 12)
    for s in range(2):
        assert torch.equal(exact[3 * s:3 * s + 3, idx[s]], kept[3 * s:3 * s + 3])  # kept frames pass through
    with pytest.raises(ValueError, match="do not fit frame indices"):
        interpolate_frames(kept[:, :3], idx, 12)


def test_residual_interpolation_adds_each_pruned_frames_own_detail():
    """Frame by frame: the interpolation of the kept tokens plus ``weight`` times what interpolation of
    the source's kept frames misses of the source's own frame; kept frames pass through."""
    g = torch.Generator().manual_seed(1)
    idx = torch.tensor([[1, 4, 8], [0, 5, 9]])
    kept = torch.randn(2 * 3, 3, 4, generator=g, dtype=torch.float64)
    source = torch.randn(2 * 3, 10, 4, generator=g, dtype=torch.float64)
    got = residual_interpolation(kept, idx, 10, source, weight=0.3)
    source_kept = torch.stack([source[n, idx[n // 3]] for n in range(6)])
    plain, source_plain = interpolate_by_hand(kept, idx, 10), interpolate_by_hand(source_kept, idx, 10)
    for n in range(6):
        for t in range(10):
            expected = plain[n, t] + 0.3 * (source[n, t] - source_plain[n, t])
            torch.testing.assert_close(got[n, t], expected)
        assert torch.allclose(got[n, idx[n // 3]], kept[n])
    assert torch.equal(residual_interpolation(kept, idx, 10, source, weight=0.0), interpolate_frames(kept, idx, 10))
    for wrong in (source[:, :, :3], source[:, :9], source[:3]):  # channels, frames, sequences
        with pytest.raises(ValueError, match=r"^residual recovery: .*same width and the same joints\)$"):
            residual_interpolation(kept, idx, 10, wrong)
    single = residual_interpolation(kept.float(), idx, 10, source, weight=0.3)  # the source follows the tokens
    assert single.dtype == torch.float32
    torch.testing.assert_close(single, got.float())


def test_interpolation_copies_the_end_frames_exactly():
    kept = torch.randn(2, 3, 4) * 100
    idx = torch.tensor([[5, 9, 12], [0, 1, 20]])
    out = interpolate_frames(kept, idx, 24)
    for s in range(2):
        first, last = idx[s, 0], idx[s, -1]
        assert torch.equal(out[s, :first + 1], kept[s, :1].expand(int(first) + 1, -1))
        assert torch.equal(out[s, last:], kept[s, -1:].expand(24 - int(last), -1))
        assert torch.equal(out[s, idx[s]], kept[s])


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
                                   queries + attention_by_hand(ca, queries, kept), atol=1e-5, rtol=1e-5)


def test_cross_attention_options():
    torch.manual_seed(0)
    assert CrossAttention(16).num_heads == 8
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
        torch.testing.assert_close(dropping(query, key, key), attention_by_hand(dropping, query, key),
                                   atol=1e-6, rtol=1e-5)
        dropping.train()
        assert not torch.allclose(dropping(query, key, key), dropping(query, key, key))


def test_recovery_keeps_the_dtype_of_the_kept_tokens():
    torch.manual_seed(0)
    ca = CrossAttention(8, 2)
    x_token = torch.randn(1, 10, 8)
    kept, idx = torch.randn(2, 4, 8).bfloat16(), torch.tensor([[0, 3, 6, 9], [1, 2, 5, 8]])
    assert interpolate_frames(kept, idx, 10).dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert recover_frames(x_token, ca, kept).dtype == torch.bfloat16
        assert corrected_interpolation(x_token, ca, kept, idx).dtype == torch.bfloat16


# --- the wrapper ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, by_hand", [("interpolate", interpolate_by_hand), ("nearest", nearest_fill)])
def test_training_free_modes_match_hand_written_forward(mode, by_hand):
    model, x = build()
    wrap_with_hot(model, prune_block=2, tokens=9, recover=mode, selector="dpc_knn")
    randomise_hot_parameters(model)  # pos_embed_token is still added to the kept frames
    with torch.no_grad():
        out = model(x)
        expected = reference_mixste(model, x, 2, 9, recover=by_hand)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert set(k for k in model.state_dict() if k.split(".")[0] in ("x_token", "cross_attention")) == set()


@pytest.mark.parametrize("batch", [1, 3])
def test_interpolate_plus_residual_adds_half_the_detail_entering_the_first_pruned_block(batch):
    """Against the same model with plain interpolation: the head's input differs by exactly
    ``RESIDUAL_WEIGHT x (x_p - interpolation of x_p)``, ``x_p`` the tokens entering the first pruned
    block, recorded by a hook of our own (as ``(b j) t c`` sequences)."""
    model, x = build()
    x = x[:batch]
    other = copy.deepcopy(model)
    wrap_with_hot(model, prune_block=2, tokens=9, recover="interpolate+residual", selector="dpc_knn")
    wrap_with_hot(other, prune_block=2, tokens=9, recover="interpolate", selector="dpc_knn")
    randomise_hot_parameters(model)
    randomise_hot_parameters(other)  # the same pos_embed_token
    entering, heads = [], []
    for m in (model, other):
        m.spatial_blocks[2].register_forward_pre_hook(lambda m, args: entering.append(args[0]), prepend=True)
        m.head.register_forward_pre_hook(lambda m, args: heads.append(args[0]))
    with torch.no_grad():
        out = model(x)
        idx = model.hot.last_indices
        plain = other(x)
    assert torch.equal(idx, other.hot.last_indices) and torch.equal(entering[0], entering[1])
    source = entering[0].reshape(batch, 27, 17, -1).transpose(1, 2).reshape(batch * 17, 27, -1)
    source_kept = torch.stack([source[n, idx[n // 17]] for n in range(batch * 17)])
    detail = source - interpolate_by_hand(source_kept, idx, 27)
    detail = detail.reshape(batch, 17, 27, -1).transpose(1, 2)
    torch.testing.assert_close(heads[0], heads[1] + RESIDUAL_WEIGHT * detail, atol=1e-5, rtol=1e-5)
    assert not torch.equal(out, plain)
    assert set(k for k in model.state_dict() if k.split(".")[0] in ("x_token", "cross_attention")) == set()


def test_the_residual_needs_the_same_width_where_pruning_begins_and_ends():
    model, _ = build()
    narrow = nn.Sequential(nn.Linear(16, 8), nn.Linear(8, 3))  # the recovery point sees 8 channels, the blocks 16
    model.head = narrow
    with pytest.raises(ValueError, match=r"recover='interpolate\+residual' adds the tokens entering block 1 .*16 "
                                         r"channels.*8 channels.*use recover='interpolate'"):
        wrap_with_hot(model, prune_block=1, tokens=9, recover="interpolate+residual", recover_before="head.1")
    assert not is_hot(model)


def test_a_zero_correction_is_skipped_only_while_it_is_zero_and_untrained():
    """Inference with the projection still zero skips the attention (same output as "interpolate");
    any change of the projection (in place, by loading, by training) or a recorded gradient runs it."""
    model, x = build()
    interpolating = wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=9, recover="interpolate")
    wrap_with_hot(model, prune_block=1, tokens=9)
    calls = []
    model.cross_attention.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        assert torch.equal(model(x), interpolating(x)) and calls == []
        assert torch.equal(model(x), interpolating(x)) and calls == []
    with torch.inference_mode():
        assert torch.equal(model(x), interpolating(x)) and calls == []
    model(x).sum().backward()  # gradients recorded: the attention runs, and its projection learns
    assert calls == [1] and model.cross_attention.proj.weight.grad.abs().sum() > 0
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    trained["cross_attention.proj.bias"] += 0.5
    with torch.no_grad():
        model.load_state_dict(trained)
        moved = model(x)
        assert len(calls) == 2 and not torch.equal(moved, interpolating(x))
        model.cross_attention.proj.bias.zero_()  # zero again, in place: skipped again
        assert torch.equal(model(x), interpolating(x)) and len(calls) == 2
        model.cross_attention.proj.weight.data = torch.ones_like(model.cross_attention.proj.weight)
        assert not torch.equal(model(x), interpolating(x)) and len(calls) == 3


def test_the_zero_check_reads_the_projection_once_per_change():
    attention = CrossAttention(8, 2, zero_output=True)
    nn.init.zeros_(attention.proj.bias)
    reads = []
    for t in (attention.proj.weight, attention.proj.bias):
        t.any = lambda t=t: reads.append(1) or torch.Tensor.any(t)  # an instance attribute shadows the method
    with torch.no_grad():
        assert correction_is_zero(attention) and len(reads) == 2
        assert correction_is_zero(attention) and len(reads) == 2  # unchanged: not read again
        attention.proj.bias.add_(1.0)
        assert not correction_is_zero(attention) and len(reads) == 4
        assert not correction_is_zero(attention) and len(reads) == 4


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_graphs_and_substituted_weights_keep_the_attention():
    """Tracing (fvcore's count, ONNX) records the full computation, and weights that are not the
    module's own parameters (``torch.func.functional_call``) are never assumed zero."""
    model, x = build()
    wrap_with_hot(model, prune_block=1, tokens=9)
    calls = []
    model.cross_attention.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        torch.jit.trace(model, x[:1], check_trace=False)
        assert calls
        calls.clear()
        swapped = {name: p.detach().clone() for name, p in model.named_parameters()}
        torch.func.functional_call(model, swapped, (x,))
        assert calls


def test_tra_plus_interpolate_starts_as_interpolate_and_then_learns():
    model, x = build()
    interpolating = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, recover="interpolate", selector="dpc_knn")
    wrap_with_hot(model, prune_block=2, tokens=9, selector="dpc_knn")  # the default
    assert model.hot.recover == "tra+interpolate"
    with torch.no_grad():
        assert torch.equal(model(x), interpolating(x))
    # The correction's output projection starts at zero; one step moves it, and then every TRA
    # parameter gets a gradient.
    model.train()
    model(x).square().mean().backward()
    assert model.cross_attention.proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.cross_attention.proj.weight.normal_(std=0.1)
        model.x_token.normal_(std=0.1)
    model.zero_grad()
    model(x).square().mean().backward()
    for name in ("x_token", "cross_attention.linear_q.weight", "cross_attention.linear_k.weight",
                 "cross_attention.linear_v.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    with torch.no_grad():
        assert not torch.allclose(model.eval()(x), interpolating(x))


def test_tra_plus_interpolate_needs_zero_queries():
    model, _ = build()
    with pytest.raises(ValueError, match="must start at zeros"):
        wrap_with_hot(model, prune_block=2, tokens=9, recover="tra+interpolate", x_token_init="position", selector="dpc_knn")
    assert not is_hot(model)
    wrap_with_hot(model, prune_block=2, tokens=9, recover="tra", x_token_init="position", selector="dpc_knn")
    assert torch.equal(model.x_token, model.temporal_pos)


@pytest.mark.parametrize("bad", ["bogus", "TRA", None, 1, "interpolation"])
def test_bad_recover_values_are_rejected_and_leave_the_model_alone(bad):
    model, _ = build()
    with pytest.raises(ValueError, match=r"recover must be one of .*got"):
        wrap_with_hot(model, prune_block=2, tokens=9, recover=bad, selector="dpc_knn")
    assert not is_hot(model) and not hasattr(model, "pos_embed_token")


def test_recover_aliases():
    assert resolve_recover(True) == "tra" and resolve_recover(False) is None
    assert all(resolve_recover(mode) == mode for mode in RECOVERY_MODES)


# --- official TPC and official HoT checkpoints --------------------------------------------------
def test_official_tpc_checkpoint_loads_strictly_and_gives_the_same_centre_prediction():
    official, x = build()
    state = copy.deepcopy(official.state_dict())  # official TPC-MixSTE keys are the plain model's
    model, _ = build(seed=5)
    wrap_with_hot(model, prune_block=2, tokens=9, recover=False, selector="dpc_knn")
    load_official_hot(model, {"model_pos": {"module." + k: v for k, v in state.items()}})
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = model(x)
        # The official TPC-MixSTE: centre frame forced in, no kept-frame embedding; its head reads
        # only the kept frames, whose tokens the nearest fill passes through unchanged.
        trace = {}
        expected = reference_mixste(official, x, 2, 9, recover=nearest_fill, embeddings=(None,),
                                    select=lambda features, f: dpc_with_centre(features, f, 13), trace=trace)
    idx = trace["indices"]
    assert torch.equal(model.hot.last_indices, idx) and (idx == model.hot.center).any(dim=1).all()
    for s in range(x.shape[0]):  # every kept frame's prediction is the official model's
        torch.testing.assert_close(out[s, idx[s]], expected[s, idx[s]], atol=1e-5, rtol=1e-5)


def test_official_checkpoints_need_the_matching_recovery():
    model, _ = build()
    hot_ckpt = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, recover="tra", selector="dpc_knn").state_dict()
    default = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, selector="dpc_knn")
    with pytest.raises(ValueError, match="wrap with recover='tra'"):
        load_official_hot(default, hot_ckpt)
    tpc = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, recover=False, selector="dpc_knn")
    with pytest.raises(ValueError, match="seq2seq HoT checkpoint"):
        load_official_hot(tpc, hot_ckpt)
    with pytest.raises(ValueError, match="no HoT weights"):
        load_official_hot(default, model.state_dict())
    paper = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, recover="tra", selector="dpc_knn")
    load_official_hot(paper, hot_ckpt)


def test_official_hot_checkpoint_layout_loads():
    model, x = build()
    wrap_with_hot(model, **TRA)
    randomise_hot_parameters(model)
    official = {"model_pos": {"module." + k: v.clone() for k, v in model.state_dict().items()}}
    fresh = wrap_with_hot(build(seed=4)[0], **TRA)
    load_official_hot(fresh, official)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    other = wrap_with_hot(build(seed=4)[0], prune_block=2, tokens=7, selector="dpc_knn")
    with pytest.raises(ValueError, match="wrap with tokens=9"):
        load_official_hot(other, official)


class _Embeddings(nn.Module):
    """Parameters that look like a temporal position embedding and some that only nearly do."""

    def __init__(self, frames: int, width: int, names):
        super().__init__()
        for name, shape in names:
            self.register_parameter(name, nn.Parameter(torch.randn(*shape)))


@pytest.mark.parametrize("names, chosen", [
    ([("Temporal_pos", (1, 9, 4))], "Temporal_pos"),
    ([("spatial_pos", (1, 9, 4)), ("FRAME_embed", (1, 9, 1, 4))], "FRAME_embed"),
    ([("time_weights", (9, 4)), ("time_bias", (1, 9, 2, 2)), ("time_embed", (1, 9, 4))], "time_embed"),
    ([("temp_wide", (2, 9, 4)), ("temp_long", (1, 10, 4)), ("temp_narrow", (1, 9, 3))], None),
])
def test_x_token_from_the_position_embedding_takes_the_first_parameter_that_fits(names, chosen):
    from hourglass_tokenizer.core.recovery import initial_x_token

    model = _Embeddings(9, 4, names)
    if chosen is None:
        with pytest.raises(ValueError, match=r"no temporal position embedding of shape \(1, 9, 4\) found"):
            initial_x_token(model, "position", 9, 4)
        return
    start = initial_x_token(model, "position", 9, 4)
    assert start.shape == (1, 9, 4) and torch.equal(start, getattr(model, chosen).detach().reshape(1, 9, 4))
    start += 1  # a copy: the model's embedding is not shared
    assert not torch.equal(start, getattr(model, chosen).detach().reshape(1, 9, 4))
