import copy
import io

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hourglass_tokenizer import HotState, is_hot, load_official_hot, unwrap_hot, wrap_with_hot
from hourglass_tokenizer.core.selection import dpc_knn
from stand_ins import Block, MixSTELike, MotionBERTLike, PoseFormerLike

T, J = 27, 17
NEW_KEYS = {"pos_embed_token", "x_token", "cross_attention.linear_q.weight", "cross_attention.linear_q.bias",
            "cross_attention.linear_k.weight", "cross_attention.linear_k.bias", "cross_attention.linear_v.weight",
            "cross_attention.linear_v.bias", "cross_attention.proj.weight", "cross_attention.proj.bias"}


def structured_input(batch, channels, seed=0):
    """Random walks with pauses: frames that repeat, so samples select different frames."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(batch, T, J, channels, generator=g) * 0.3
    for b in range(batch):
        start = 3 + 5 * b
        steps[b, start:start + 6] = 0
    return torch.cumsum(steps, dim=1)


def randomise_hot_parameters(model):
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[0] in ("pos_embed_token", "x_token", "cross_attention"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


# --- independent reference HoT forwards -------------------------------------------------------
def tra_reference(model, kept):
    """x_token + multi-head cross-attention(x_token, kept, kept), written out by hand."""
    ca = model.cross_attention
    n, f, c = kept.shape
    heads = ca.num_heads
    queries = model.x_token.expand(n, -1, -1)
    q = F.linear(queries, ca.linear_q.weight, ca.linear_q.bias).reshape(n, -1, heads, c // heads).transpose(1, 2)
    k = F.linear(kept, ca.linear_k.weight, ca.linear_k.bias).reshape(n, f, heads, c // heads).transpose(1, 2)
    v = F.linear(kept, ca.linear_v.weight, ca.linear_v.bias).reshape(n, f, heads, c // heads).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / (c // heads) ** 0.5, dim=-1)
    mixed = (weights @ v).transpose(1, 2).reshape(n, -1, c)
    return queries + F.linear(mixed, ca.proj.weight, ca.proj.bias)


def keep_frames(tokens_btjc, idx):
    return torch.stack([tokens_btjc[b, idx[b]] for b in range(len(idx))])


def reference_mixste(m, x, prune_block, tokens, recover=None):
    """``recover(model, kept (b*j, f, c), idx (b, f), frames)``: TRA by default."""
    b, frames, joints, _ = x.shape
    h = m.embed(x.reshape(b * frames, joints, -1)) + m.spatial_pos
    t = frames
    for i in range(len(m.spatial_blocks)):
        if i == prune_block:
            h4 = h.reshape(b, t, joints, -1)
            idx = dpc_knn(h4.mean(dim=2), tokens)
            h = (keep_frames(h4, idx) + m.pos_embed_token[:, :, None, :]).reshape(b * tokens, joints, -1)
            t = tokens
        h = m.spatial_norm(m.spatial_blocks[i](h))
        h = h.reshape(b, t, joints, -1).transpose(1, 2).reshape(b * joints, t, -1)
        if i == 0:
            h = h + m.temporal_pos
        h = m.temporal_norm(m.temporal_blocks[i](h))
        h = h.reshape(b, joints, t, -1).transpose(1, 2).reshape(b * t, joints, -1)
    h = h.reshape(b, t, joints, -1).transpose(1, 2).reshape(b * joints, t, -1)
    h = tra_reference(m, h) if recover is None else recover(m, h, idx, frames)
    return m.head(h.reshape(b, joints, frames, -1).transpose(1, 2))


def reference_motionbert(m, x, prune_block, tokens):
    b, frames, joints, _ = x.shape
    h = m.joints_embed(x.reshape(b * frames, joints, -1)) + m.pos_embed
    h = (h.reshape(b, frames, joints, -1) + m.temp_embed).reshape(b * frames, joints, -1)
    t = frames
    for i in range(len(m.blocks_st)):
        if i == prune_block:
            h4 = h.reshape(b, t, joints, -1)
            idx = dpc_knn(h4.mean(dim=2), tokens)
            h = (keep_frames(h4, idx) + m.pos_embed_token[:, :, None, :]).reshape(b * tokens, joints, -1)
            t = tokens
        x_st, x_ts = m.blocks_st[i](h, t), m.blocks_ts[i](h, t)
        alpha = m.ts_attn[i](torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
        h = x_st * alpha[..., :1] + x_ts * alpha[..., 1:]
    h = m.norm(h).reshape(b, t, joints, -1).transpose(1, 2).reshape(b * joints, t, -1)
    h = tra_reference(m, h).reshape(b, joints, frames, -1).transpose(1, 2)
    return m.head(m.pre_logits(h))


def reference_poseformer_tpc(m, x, prune_block, tokens):
    b, frames, joints, _ = x.shape
    center = (frames - 1) // 2
    h = m.embed(x.reshape(b, frames, -1)) + m.temporal_pos
    for i, blk in enumerate(m.blocks):
        if i == prune_block:
            idx = dpc_knn(h, tokens - 1, exclude=center)
            idx = torch.sort(torch.cat([idx, torch.full((b, 1), center)], dim=1), dim=1).values
            h = keep_frames(h, idx)  # official TPC models add no kept-frame embedding
        h = blk(h)
    h = m.norm(h)
    filled = torch.empty(b, frames, h.shape[-1])
    for s in range(b):
        kept = idx[s].tolist()
        for t in range(frames):
            nearest = min(range(len(kept)), key=lambda p: (abs(kept[p] - t), kept[p]))
            filled[s, t] = h[s, nearest]
    return m.head(m.weighted_mean(filled)).view(b, 1, joints, 3)


CASES = {
    "mixste": (MixSTELike, 2, dict(prune_block=2, tokens=9, recover="tra"), reference_mixste),
    "motionbert": (MotionBERTLike, 3, dict(prune_block=1, tokens=9, recover="tra"), reference_motionbert),
    "poseformer": (PoseFormerLike, 2, dict(prune_block=2, tokens=9, recover=False), reference_poseformer_tpc),
}


def build(name, seed=0):
    cls, channels, kwargs, _ = CASES[name]
    torch.manual_seed(seed)
    return cls().eval(), structured_input(3, channels, seed), kwargs


@pytest.mark.parametrize("name", CASES)
def test_matches_independent_hot_forward(name):
    model, x, kwargs = build(name)
    wrap_with_hot(model, **kwargs)
    randomise_hot_parameters(model)
    with torch.no_grad():
        out = model(x)
        expected = CASES[name][3](model, x, kwargs["prune_block"], kwargs["tokens"])
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_unwrap_restores_original_exactly(name):
    model, x, kwargs = build(name)
    with torch.no_grad():
        before = model(x)
        wrap_with_hot(model, **kwargs)
        assert is_hot(model) and not torch.equal(model(x), before)
        unwrap_hot(model)
        assert torch.equal(model(x), before)
    assert not is_hot(model)
    assert not any(k.split(".")[0] in ("pos_embed_token", "x_token", "cross_attention") for k in model.state_dict())
    assert not model._forward_pre_hooks and not model._forward_hooks


@pytest.mark.parametrize("name", CASES)
def test_keeping_every_frame_without_tra_reproduces_original(name):
    model, x, kwargs = build(name)
    with torch.no_grad():
        before = model(x)
        wrap_with_hot(model, prune_block=kwargs["prune_block"], tokens=T, recover=False)
        torch.testing.assert_close(model(x), before, atol=0, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_original_checkpoint_loads_with_only_new_keys_missing(name):
    model, x, kwargs = build(name)
    original = copy.deepcopy(model.state_dict())
    wrap_with_hot(model, **kwargs)
    result = model.load_state_dict(original, strict=False)
    expected_missing = NEW_KEYS if kwargs.get("recover", True) else set()
    assert set(result.missing_keys) == expected_missing
    assert result.unexpected_keys == []
    assert set(model.state_dict()) == set(original) | expected_missing


@pytest.mark.parametrize("name", CASES)
def test_gradients_reach_every_trainable_parameter(name):
    model, x, kwargs = build(name)
    wrap_with_hot(model, **kwargs).train()
    randomise_hot_parameters(model)
    model(x).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("name", CASES)
def test_each_sample_selects_its_own_frames(name):
    model, x, kwargs = build(name)
    wrap_with_hot(model, **kwargs)
    with torch.no_grad():
        batched = model(x)
        picks = model.hot.last_indices.clone()
        assert picks.shape == (3, kwargs["tokens"])
        assert len({tuple(r.tolist()) for r in picks}) > 1
        for b in range(3):
            torch.testing.assert_close(model(x[b:b + 1]), batched[b:b + 1], atol=1e-5, rtol=1e-5)
            assert torch.equal(model.hot.last_indices[0], picks[b])


def test_tpc_only_always_keeps_centre_frame():
    model, x, _ = build("mixste")
    wrap_with_hot(model, prune_block=1, tokens=5, recover=False)
    model(x)
    assert (model.hot.last_indices == model.hot.center).any(dim=1).all()
    assert model.hot.center == 13


@pytest.mark.parametrize("name", ["mixste", "motionbert"])
def test_bfloat16_autocast(name):
    model, x, kwargs = build(name)
    wrap_with_hot(model, **kwargs)
    with torch.no_grad():
        full = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == full.shape and torch.isfinite(low).all()
    assert (low.float() - full).abs().mean() < 0.1 * full.abs().mean() + 0.05


def test_torch_compile_runs_wrapped_model():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, backend="aot_eager")
        torch.testing.assert_close(compiled(x), eager, atol=1e-5, rtol=1e-5)


def test_fvcore_traces_and_counts_fewer_flops():
    from hourglass_tokenizer import count_flops

    model, x, kwargs = build("mixste")
    base = count_flops(model, x[:1])
    wrap_with_hot(model, **kwargs)
    assert 0 < count_flops(model, x[:1]) < base


def test_state_dict_round_trip_into_fresh_wrapped_model():
    model, x, kwargs = build("motionbert")
    wrap_with_hot(model, **kwargs)
    randomise_hot_parameters(model)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    fresh = wrap_with_hot(build("motionbert", seed=9)[0], **kwargs)
    fresh.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def test_deepcopy_and_whole_model_pickle_keep_working_hooks():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    randomise_hot_parameters(model)
    with torch.no_grad():
        expected = model(x)
        twin = copy.deepcopy(model)
        assert torch.equal(twin(x), expected)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
        assert torch.equal(loaded(x), expected)
        # The copy's hooks act on the copy: unwrapping it leaves the original wrapped.
        unwrap_hot(twin)
        assert torch.equal(model(x), expected)


def test_wrapping_twice_rewraps_and_keeps_fitting_parameters():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    randomise_hot_parameters(model)
    x_token = model.x_token.detach().clone()
    hooks = len(model._forward_pre_hooks)
    wrap_with_hot(model, prune_block=1, tokens=9)
    assert len(model._forward_pre_hooks) == hooks
    assert model.hot.prune_block == 1
    assert torch.equal(model.x_token, x_token)


def test_settings_change_in_place():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    with pytest.warns(UserWarning, match="rebuild optimisers"):
        model.hot.tokens = 5
    assert model.pos_embed_token.shape == (1, 5, 16)
    model(x)
    assert model.hot.last_indices.shape == (3, 5)
    model.hot.prune_block = 3
    model.hot.selector = "uniform"
    model(x)
    assert model.hot.last_indices[0].tolist() == [0, 6, 13, 20, 26]
    with pytest.raises(ValueError, match="prune_block must be an int in 1..3"):
        model.hot.prune_block = 4


def test_selectors_and_user_rng():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs, selector="random", seed=5)
    state = torch.get_rng_state()
    with torch.no_grad():
        model(x)
    assert torch.equal(state, torch.get_rng_state())
    calls = []

    def every_third(features, f):
        calls.append(tuple(features.shape))
        return torch.arange(f).mul(3).expand(features.shape[0], f)

    model.hot.selector = every_third
    model(x)
    assert calls == [(3, T, 16)]
    assert model.hot.last_indices[0].tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    model.hot.selector = lambda features, f: torch.zeros(features.shape[0], f, dtype=torch.long)
    with pytest.raises(ValueError, match="returned a frame twice in one sample"):
        model(x)


def test_load_official_checkpoint_layout():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    randomise_hot_parameters(model)
    official = {"model_pos": {"module." + k: v.clone() for k, v in model.state_dict().items()}}
    fresh = wrap_with_hot(build("mixste", seed=4)[0], **kwargs)
    load_official_hot(fresh, official)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    other = wrap_with_hot(build("mixste", seed=4)[0], prune_block=2, tokens=7)
    with pytest.raises(ValueError, match="wrap with tokens=9"):
        load_official_hot(other, official)


def test_paper_presets_recognised_by_structure():
    class RenamedMixSTE(MixSTELike):
        pass

    mix = RenamedMixSTE(frames=243, depth=8, dim=8)
    wrap_with_hot(mix)
    assert (mix.hot.prune_block, mix.hot.tokens, mix.hot.family) == (3, 81, "mixste")
    wrap_with_hot(mix, recover=False)
    assert (mix.hot.prune_block, mix.hot.tokens) == (7, 61)
    bert = MotionBERTLike(frames=243, depth=5, dim=8)
    wrap_with_hot(bert)
    assert (bert.hot.prune_block, bert.hot.tokens, bert.hot.family) == (1, 81, "motionbert")
    small = MixSTELike(frames=81, depth=8, dim=8)
    wrap_with_hot(small)
    assert (small.hot.prune_block, small.hot.tokens) == (3, 27)
    with pytest.raises(ValueError, match="give prune_block= and tokens= explicitly"):
        wrap_with_hot(PoseFormerLike())


# --- errors --------------------------------------------------------------------------------
def test_bad_numbers_name_the_argument():
    model, x, _ = build("mixste")
    with pytest.raises(ValueError, match=r"tokens must be an int in 1..frames \(27\), got 28"):
        wrap_with_hot(model, prune_block=1, tokens=28)
    with pytest.raises(ValueError, match="tokens must be >= 1, got 0"):
        wrap_with_hot(model, prune_block=1, tokens=0)
    with pytest.raises(ValueError, match=r"prune_block must be an int in 1..3 .* got 4"):
        wrap_with_hot(model, prune_block=4, tokens=9)
    with pytest.raises(ValueError, match=r"prune_block must be >= 1 \(block 0 always sees every frame\), got 0"):
        wrap_with_hot(model, prune_block=0, tokens=9)
    with pytest.raises(ValueError, match="give both prune_block and tokens"):
        wrap_with_hot(model, prune_block=1)
    with pytest.raises(TypeError, match="prune_block must be an integer, got the bool True"):
        wrap_with_hot(model, prune_block=True, tokens=9)
    with pytest.raises(TypeError, match="tokens must be an integer, got float 9.0"):
        wrap_with_hot(model, prune_block=1, tokens=9.0)
    assert not is_hot(model)
    wrap_with_hot(model, prune_block=np.int64(1), tokens=np.int64(9))  # integer-like numbers are integers
    assert (model.hot.prune_block, model.hot.tokens) == (1, 9) and type(model.hot.tokens) is int
    with pytest.raises(TypeError, match="tokens must be an integer"):
        model.hot.tokens = "9"


def test_bad_inputs_are_rejected():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    bad = x.clone()
    bad[0, 3, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(bad)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, frames, joints, channels\)"):
        model(x[0])
    with pytest.raises(ValueError, match="wrapped for 27 frames"):
        model(x[:, :20])


def test_model_without_block_list():
    class NoBlocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_frames = T
            self.a = Block(8, 2, 16)
            self.proj = nn.Linear(2, 8)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            b, f, j, _ = x.shape
            return self.head(self.a(self.proj(x).reshape(b, f * j, -1))).reshape(b, f, j, 3)

    with pytest.raises(ValueError, match="no block list found"):
        wrap_with_hot(NoBlocks(), prune_block=1, tokens=9)


def test_ambiguous_layout_when_frames_equal_joints():
    model = MixSTELike(frames=J, joints=J)
    # One message names every entry needed, the head's included: no round after round.
    with pytest.raises(ValueError, match=r"frames == joints == 17: .*\['head', 'spatial_blocks', 'temporal_blocks'\]"
                                         r".*pass layouts=\{'spatial_blocks': one of"):
        wrap_with_hot(model, prune_block=1, tokens=5)
    with pytest.raises(ValueError, match=r"\['head'\] fit several patterns"):
        wrap_with_hot(model, prune_block=1, tokens=5,
                      layouts={"spatial_blocks": "(b t) j c", "temporal_blocks": "(b j) t c"})
    assert not is_hot(model)


def test_explicit_layouts_resolve_frames_equal_joints():
    model = MixSTELike(frames=J, joints=J).eval()
    x = torch.randn(2, J, J, 2)
    with torch.no_grad():
        before = model(x)
    wrap_with_hot(model, prune_block=1, tokens=J, recover=False,
                  layouts={"spatial_blocks": "(b t) j c", "temporal_blocks": "(b j) t c", "head": "b t j c"})
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, atol=0, rtol=0)
        model.hot.tokens = 6
        assert model(x).shape == before.shape


def test_state_object_is_not_a_submodule():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    assert isinstance(model.hot, HotState)
    assert "hot" not in dict(model.named_children())
    assert "HotState(prune_block=2, tokens=9" in repr(model.hot)


def test_k_and_recover_settings():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    model.hot.k = 4
    model(x)
    assert model.hot.k == 4 and "k=4" in repr(model.hot.config.make_selector())
    with pytest.raises(AttributeError, match="recover=False"):
        model.hot.recover = False


def test_torch_export_keeps_the_selection_dynamic():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    exported = torch.export.export(model, (x,), strict=False).module()
    other = structured_input(3, 2, seed=8)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(exported(other), model(other), atol=1e-5, rtol=1e-5)


def test_hot_parameters_are_exactly_the_added_ones():
    from hourglass_tokenizer import hot_parameters

    model, x, kwargs = build("motionbert")
    before = {id(p) for p in model.parameters()}
    wrap_with_hot(model, **kwargs)
    added = {id(p) for p in model.parameters()} - before
    assert {id(p) for p in hot_parameters(model)} == added and len(added) == 10
    with pytest.raises(ValueError, match="not wrapped"):
        hot_parameters(unwrap_hot(model))


def test_x_token_initialisation_choices():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    assert torch.count_nonzero(model.x_token) == 0
    wrap_with_hot(unwrap_hot(model), **kwargs, x_token_init="position")
    assert torch.equal(model.x_token, model.temporal_pos)
    assert model.x_token.data_ptr() != model.temporal_pos.data_ptr()
    bert = MotionBERTLike()
    wrap_with_hot(bert, prune_block=1, tokens=9, recover="tra", x_token_init="position")
    assert torch.equal(bert.x_token, bert.temp_embed[:, :, 0])
    start = torch.randn(1, T, 16)
    wrap_with_hot(unwrap_hot(model), **kwargs, x_token_init=start)
    assert torch.equal(model.x_token, start)
    with pytest.raises(ValueError, match=r"shape \(1, 27, 16\)"):
        wrap_with_hot(unwrap_hot(model), **kwargs, x_token_init=torch.zeros(1, 5, 16))
    # A failed wrap leaves nothing behind: no hooks, no half of the new parameters.
    assert not is_hot(model) and not hasattr(model, "pos_embed_token") and not model._forward_pre_hooks
    from hourglass_tokenizer.core.recovery import initial_x_token as _initial_x_token

    with pytest.raises(ValueError, match=r"no temporal position embedding of shape \(1, 27, 16\)"):
        _initial_x_token(nn.Linear(2, 16), "position", T, 16)
    with pytest.raises(ValueError, match="must be 'zeros', 'position' or a tensor"):
        _initial_x_token(model, "random", T, 16)


def test_heads_that_do_not_divide_the_width_fail_cleanly():
    model, x, kwargs = build("mixste")
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        wrap_with_hot(model, **kwargs, num_heads=3)
    assert not is_hot(model) and not hasattr(model, "pos_embed_token")


def test_position_start_is_taken_from_the_weights_present_at_wrapping():
    """The documented order is: load the pretrained weights, then wrap."""
    model, x, kwargs = build("mixste")
    with torch.no_grad():
        model.temporal_pos.add_(1.0)  # as if pretrained weights had been loaded
    wrap_with_hot(model, **kwargs, x_token_init="position")
    assert torch.equal(model.x_token, model.temporal_pos)
