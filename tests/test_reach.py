"""Issue 8: frame-indexed layers (MotionAGFormer), pruning at several depths (H2OT), lazy wrapping
(STCFormer) and blocks on tuples of token streams (MHFormer).

Every case is checked against the hand-written reference forwards of ``tests/stand_ins_reach.py``
(written without the wrapper), unwraps exactly, and trains: gradients reach every parameter.
"""
from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from hourglass_tokenizer import is_hot, load_official_hot, unwrap_hot, wrap_with_hot
from hourglass_tokenizer.models import build_model
from stand_ins import Block, MixSTELike
from stand_ins_reach import (J, T, MHFormerLike, MotionAGFormerLike, STCFormerLike, nearest_fill,
                             reference_mhformer_tpc, reference_motionagformer, reference_stcformer,
                             reference_two_stage)
from test_wrapping import randomise_hot_parameters, structured_input

HOT_ROOTS = ("pos_embed_token", "x_token", "cross_attention")


def build(cls, seed=0, **kwargs):
    torch.manual_seed(seed)
    return cls(**kwargs).eval()


def hooks_of(model: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) + len(m._state_dict_pre_hooks)
               for m in model.modules())


def snapshot(model: nn.Module):
    return {k: v.clone() for k, v in model.state_dict().items()}, dict(model.named_modules()), hooks_of(model)


def assert_unwraps_exactly(model: nn.Module, x: torch.Tensor, before, plain_out: torch.Tensor) -> None:
    state, modules, hooks = before
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


# --- A. frame-indexed layers (MotionAGFormer) --------------------------------------------------
def test_motionagformer_like_matches_reference_with_rank_indexed_norms():
    model = build(MotionAGFormerLike)
    x = structured_input(3, 3)
    with torch.no_grad():
        plain = model(x)
    before = snapshot(model)
    originals = [layer.mixer.batch_norm for layer in model.layers]
    wrap_with_hot(model, prune_block=2, tokens=9, recover="tra", input_shape=(T, J, 3))
    randomise_hot_parameters(model)
    norms = [layer.mixer.batch_norm for layer in model.layers]
    assert [n.num_features for n in norms] == [T, T, 9, 9]
    assert norms[:2] == originals[:2] and all(n is not o for n, o in zip(norms[2:], originals[2:]))
    # Initialised from the originals: the mean over frames of every per-frame tensor.
    for new, old in zip(norms[2:], originals[2:]):
        for name in ("weight", "bias", "running_mean", "running_var"):
            torch.testing.assert_close(getattr(new, name), getattr(old, name).mean().expand(9))
        assert not new.training and new.weight.dtype == old.weight.dtype
    keys = set(model.state_dict())
    assert {k for k in keys if k.split(".")[0] not in HOT_ROOTS} == set(before[0])  # same names, resized norms
    with torch.no_grad():  # trained-looking rank statistics, so a wrong rank would show
        for n in norms[2:]:
            n.running_mean.normal_(0, 0.5)
            n.weight.uniform_(0.5, 1.5)
        trace = {}
        expected = reference_motionagformer(model, x, 2, 9, trace=trace)
        out = model(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.hot.last_indices, trace["indices"])
    # Recognised by structure (one b t j c list with frame-indexed norms), so TRA has no q/k/v bias as upstream.
    assert model.hot.family == "motionagformer" and model.cross_attention.linear_k.bias is None
    assert_every_parameter_trains(model, x)
    model.eval()
    assert_unwraps_exactly(model, x, before, plain)
    assert [layer.mixer.batch_norm for layer in model.layers] == originals


def test_changing_tokens_or_prune_block_resizes_the_norms_and_unwrap_restores_them():
    model = build(MotionAGFormerLike)
    x = structured_input(2, 3)
    originals = [layer.mixer.batch_norm for layer in model.layers]
    wrap_with_hot(model, prune_block=2, tokens=9, recover="nearest", input_shape=(T, J, 3))
    swapped = model.layers[3].mixer.batch_norm
    with pytest.warns(UserWarning):
        model.hot.tokens = 5
    assert [layer.mixer.batch_norm.num_features for layer in model.layers] == [T, T, 5, 5]
    model.hot.prune_block = 1
    assert [layer.mixer.batch_norm.num_features for layer in model.layers] == [T, 5, 5, 5]
    assert model.layers[0].mixer.batch_norm is originals[0]
    with torch.no_grad():
        assert model(x).shape == (2, T, J, 3)
    with pytest.warns(UserWarning):
        model.hot.tokens = 9
    model.hot.prune_block = 2
    assert model.layers[3].mixer.batch_norm is swapped  # the same rank-indexed object comes back
    # A failed re-wrap leaves the wrap as it was, swapped layers included.
    with pytest.raises(ValueError, match="tokens must be an int in 1..frames"):
        wrap_with_hot(model, prune_block=2, tokens=99, recover="nearest")
    assert model.layers[3].mixer.batch_norm is swapped and model.hot.tokens == 9
    unwrap_hot(model)
    assert [layer.mixer.batch_norm for layer in model.layers] == originals


def test_frame_sized_linear_in_a_pruned_block_is_an_error_and_ambiguous_sizes_ask():
    class FrameMixer(nn.Module):  # an MLP-Mixer-style token mixing Linear over the T frames
        def __init__(self, frames, dim):
            super().__init__()
            self.norm = nn.LayerNorm(dim)
            self.mix = nn.Linear(frames, frames)

        def forward(self, x):  # (b, t, c)
            return x + self.mix(self.norm(x).transpose(1, 2)).transpose(1, 2)

    class MixerVPT(nn.Module):
        def __init__(self, frames=T, dim=16):
            super().__init__()
            self.embed = nn.Linear(J * 2, dim)
            self.blocks = nn.ModuleList(FrameMixer(frames, dim) for _ in range(3))
            self.head = nn.Linear(dim, J * 3)

        def forward(self, x):
            b, t = x.shape[:2]
            h = self.embed(x.reshape(b, t, -1))
            for blk in self.blocks:
                h = blk(h)
            return self.head(h).reshape(b, t, J, 3)

    model = MixerVPT()
    with pytest.raises(ValueError, match=r"blocks.1.mix \(Linear over 27 features\) inside a pruned block mixes "
                                         r"a fixed number of frames"):
        wrap_with_hot(model, prune_block=1, tokens=9, input_shape=(T, J, 2))
    assert not is_hot(model)
    # T equal to the token width: a BatchNorm1d(T) could be per channel; the user must say.
    amb = MotionAGFormerLike(frames=16, dim=16).eval()
    with pytest.raises(ValueError, match=r"frames \(16\) equal the token width.*frame_layers="):
        wrap_with_hot(amb, prune_block=2, tokens=5, recover="nearest", input_shape=(16, J, 3))
    wrap_with_hot(amb, prune_block=2, tokens=5, recover="nearest", input_shape=(16, J, 3),
                  frame_layers=["mixer.batch_norm"])
    assert amb.layers[2].mixer.batch_norm.num_features == 5
    with pytest.raises(ValueError, match="frame_layers: no module .* matches \\['nope'\\]"):
        wrap_with_hot(amb, prune_block=2, tokens=5, recover="nearest", frame_layers=["nope"])


def test_zoo_motionagformer_is_recognised_and_the_official_checkpoint_layout_loads_strictly():
    from test_motionagformer import official_hot_shapes

    model = build_model("motionagformer", "tiny").eval()
    wrap_with_hot(model)  # the preset, scaled: 3 layers of the paper's 16, 27 frames of its 243
    assert model.hot.family == "motionagformer" and (model.hot.prune_block, model.hot.tokens) == (1, 9)
    assert model.hot.recover_before == "rep_logit"
    assert model.cross_attention.linear_q.bias is None and model.cross_attention.proj.bias is not None
    with torch.device("meta"):
        official = build_model("motionagformer", "hot-243")
    wrap_with_hot(official, recover="tra")
    assert (official.hot.prune_block, official.hot.tokens) == (7, 81)
    expected = official_hot_shapes()
    got = {k: tuple(v.shape) for k, v in official.state_dict().items()}
    assert got == expected
    checkpoint = {"model_pos": {f"module.{k}": torch.empty(s, device="meta") for k, s in expected.items()}}
    result = load_official_hot(official, checkpoint)
    assert not result.missing_keys and not result.unexpected_keys


# --- B. several depths (H2OT) -----------------------------------------------------------------
def test_two_stage_matches_reference_and_composes_indices():
    model = build(MixSTELike, depth=6)
    x = structured_input(3, 2)
    with torch.no_grad():
        plain = model(x)
    before = snapshot(model)
    wrap_with_hot(model, prune_block=(2, 4), tokens=(9, 3), recover="tra")
    assert model.pos_embed_token.shape == (1, 9, 16)
    randomise_hot_parameters(model)
    trace = {}
    with torch.no_grad():
        expected = reference_two_stage(model, x, (2, 4), (9, 3), trace=trace)
        out = model(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.hot.last_indices, trace["indices"])
    first, second = model.hot.stage_indices
    assert first.shape == (3, 9) and torch.equal(second, trace["indices"])
    assert all(set(s.tolist()) <= set(f.tolist()) for f, s in zip(first, second))
    assert len({tuple(r) for r in second.tolist()}) > 1
    assert_every_parameter_trains(model, x)
    model.eval()
    assert_unwraps_exactly(model, x, before, plain)


def test_two_stage_tpc_only_keeps_the_centre_at_every_stage_and_settings_validate():
    model = build(MixSTELike, depth=6)
    x = structured_input(3, 2)
    wrap_with_hot(model, prune_block=(1, 3), tokens=(9, 4), recover=False)
    with torch.no_grad():
        model(x)
    for stage in model.hot.stage_indices:
        assert ((stage == (T - 1) // 2).sum(dim=1) == 1).all()
    with pytest.raises(ValueError, match="strictly increasing"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(3, 3), tokens=(9, 4))
    with pytest.raises(ValueError, match="strictly decreasing"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(1, 3), tokens=(9, 9))
    with pytest.raises(ValueError, match="as many stages"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(1, 3), tokens=9)
    with pytest.raises(ValueError, match=r"prune_block must be an int in 1..5 .* got \(1, 6\)"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(1, 6), tokens=(9, 3))
    with pytest.raises(ValueError, match=r"tokens must be an int in 1..frames \(27\), got \(30, 3\)"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(1, 3), tokens=(30, 3))
    model.hot.tokens = (12, 6)
    model.hot.prune_block = (2, 4)
    assert (model.hot.prune_block, model.hot.tokens) == ((2, 4), (12, 6))
    with pytest.raises(ValueError, match="as many stages"):
        model.hot.tokens = 5
    with torch.no_grad():
        model(x)
    assert model.hot.last_indices.shape == (3, 6)
    wrap_with_hot(model, prune_block=2, tokens=9, recover=False)  # back to one stage
    assert model.hot.prune_block == 2 and model.hot.tokens == 9


# --- C. lazy wrapping (STCFormer) -------------------------------------------------------------
def test_stcformer_like_wraps_lazily_and_matches_reference_after_the_first_forward():
    model = build(STCFormerLike)
    x = structured_input(3, 2)
    with torch.no_grad():
        plain = model(x)
    before = snapshot(model)
    wrap_with_hot(model, prune_block=2, tokens=9, recover="tra")
    assert model.hot.pending and is_hot(model)
    with pytest.raises(RuntimeError, match="run one forward"):
        model.state_dict()
    with pytest.raises(AttributeError, match="run one forward first"):
        model.hot.frames
    placeholders = [model.pos_embed_token, model.x_token, model.cross_attention.linear_q.weight]
    assert all(isinstance(p, nn.parameter.UninitializedParameter) for p in placeholders)
    pickled = pickle.loads(pickle.dumps(model))  # a pending model pickles and sets up the same way
    with torch.no_grad():
        first = model(x)
    assert not model.hot.pending and model.hot.frames == T
    # Materialised in place: optimisers built from the placeholders hold the real parameters.
    assert placeholders == [model.pos_embed_token, model.x_token, model.cross_attention.linear_q.weight]
    assert [tuple(p.shape) for p in placeholders] == [(1, 9, 16), (1, T, 16), (16, 16)]
    with torch.no_grad():  # the first forward already pruned (it is the model-start logic of that call)
        torch.testing.assert_close(first, reference_stcformer(model, x, 2, 9), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pickled(x), reference_stcformer(pickled, x, 2, 9), atol=1e-5, rtol=1e-5)
    randomise_hot_parameters(model)
    trace = {}
    with torch.no_grad():
        expected = reference_stcformer(model, x, 2, 9, trace=trace)
        out = model(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.hot.last_indices, trace["indices"])
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert_every_parameter_trains(model, x)
    model.eval()
    assert_unwraps_exactly(model, x, before, plain)


def test_a_failed_first_forward_stays_pending_and_a_pending_model_unwraps():
    model = build(STCFormerLike)
    x = structured_input(2, 2)
    with torch.no_grad():
        plain = model(x)
    before = snapshot(model)
    wrap_with_hot(model, prune_block=2, tokens=40)  # 40 > 27 frames: known only at the first forward
    with pytest.raises(ValueError, match=r"tokens must be an int in 1..frames \(27\), got 40"):
        model(x)
    assert model.hot.pending and isinstance(model.pos_embed_token, nn.parameter.UninitializedParameter)
    with pytest.raises(ValueError, match="needs the pose sequence"):
        model(x[0])
    assert model.hot.pending
    assert_unwraps_exactly(model, x, before, plain)
    # What needs no frame count is checked at once.
    with pytest.raises(ValueError, match="recover_before='nope'"):
        wrap_with_hot(model, prune_block=2, tokens=9, recover_before="nope")
    assert not is_hot(model)


# --- D. tuple streams over two consecutive lists (MHFormer) -----------------------------------
def test_mhformer_like_tpc_matches_the_official_tpc_and_loads_its_checkpoint():
    model = build(MHFormerLike)
    x = structured_input(3, 2)
    with torch.no_grad():
        plain = model(x)
    before = snapshot(model)
    wrap_with_hot(model, prune_block=1, tokens=9, recover=False, input_shape=(T, J, 2))
    hot = model.hot
    assert hot.block_lists == ("Transformer_hypothesis.SHR_blocks", "Transformer_hypothesis.CHI_blocks")
    assert hot.depth == 3 and hot.layouts["Transformer_hypothesis.SHR_blocks"] == "b t c"
    assert hot.recover_before == "Transformer_hypothesis.CHI_blocks.0"  # the head is channels-first
    trace = {}
    with torch.no_grad():
        expected = reference_mhformer_tpc(model, x, 9, trace=trace)
        out = model(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(hot.last_indices, trace["indices"])
    # An official TPC-MHFormer checkpoint (no HoT keys) loads strictly.
    result = load_official_hot(model, {k: v.clone() for k, v in before[0].items()})
    assert not result.missing_keys and not result.unexpected_keys
    assert_every_parameter_trains(model, x)
    model.eval()
    assert_unwraps_exactly(model, x, before, plain)


def test_mhformer_like_wraps_lazily_and_tolerates_a_forward_returning_a_tuple():
    class Returning(MHFormerLike):  # upstream TPC code returns (x, index)
        def forward(self, x):
            return super().forward(x), None

    model = build(Returning)
    x = structured_input(2, 2)
    wrap_with_hot(model, prune_block=1, tokens=9, recover=False)
    assert model.hot.pending
    with torch.no_grad():
        out, _ = model(x)
        expected = reference_mhformer_tpc(model, x, 9)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_a_single_block_list_counts_only_as_a_continuation():
    class OneBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(J * 2, 16)
            self.temporal_pos = nn.Parameter(torch.zeros(1, T, 16))
            self.blocks = nn.ModuleList([Block(16, 2, 32)])
            self.head = nn.Linear(16, J * 3)

        def forward(self, x):
            b, t = x.shape[:2]
            h = self.embed(x.reshape(b, t, -1)) + self.temporal_pos
            for blk in self.blocks:
                h = blk(h)
            return self.head(h).reshape(b, t, J, 3)

    with pytest.raises(ValueError, match="no block list found"):
        wrap_with_hot(OneBlock(), prune_block=1, tokens=9)


# --- out of reach ------------------------------------------------------------------------------
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


def test_models_whose_tokens_are_not_frames_say_why():
    with pytest.raises(ValueError, match=r"no axis carries the 27 frames.*DCT coefficients"):
        wrap_with_hot(PoseFormerV2Like(), prune_block=1, tokens=9, recover=False)


def test_unwrap_after_a_dtype_change_gives_back_the_originals_in_that_dtype():
    model = build(MotionAGFormerLike)
    original = model.layers[3].mixer.batch_norm
    wrap_with_hot(model, prune_block=2, tokens=9, recover="nearest", input_shape=(T, J, 3))
    model.double()
    with torch.no_grad():
        assert model(structured_input(2, 3).double()).dtype == torch.float64
    unwrap_hot(model)
    assert model.layers[3].mixer.batch_norm is original and original.running_mean.dtype == torch.float64
    assert original.num_batches_tracked.dtype == torch.long
