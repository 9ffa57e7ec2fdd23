"""One list of models through one battery of checks (in the spirit of PEFT's test matrix).

Every model in ``MODELS`` is wrapped with the settings of its ``Case`` and must pass every check
below; a new architecture is covered by adding one line. Checks that compile or export a graph
take seconds rather than milliseconds and are marked ``slow``; they still run by default.
"""
from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
import torch
from torch import nn

from hourglass_tokenizer import count_flops, hot_parameters, is_hot, unwrap_hot, wrap_with_hot
from hourglass_tokenizer.models import build_model
from stand_ins import (HOT_ROOTS, FrameTokensVPT, JointMajorVPT, JointTimeVPT, MixSTELike, MotionBERTLike,
                       NoBlocksVPT, OneBlockVPT, PoseFormerLike, PoseFormerV2Like, SequentialVPT, SharedBlocksVPT,
                       TorchEncoderVPT, TupleBlocksVPT, assert_every_parameter_trains, assert_unwraps_exactly, hooks_of,
                       interpolate_by_hand, randomise_hot_parameters, record_inputs, reference_mixste,
                       reference_motionbert, reference_poseformer_tpc, reference_sequential, seeded, snapshot, walks)


def timm_block(dim: int, num_heads: int) -> nn.Module:
    try:
        import timm.models.vision_transformer as vit
    except Exception as error:  # timm imports torchvision, whose CUDA-only wheel fails on a CPU-only torch
        pytest.skip(f"timm cannot be imported here ({type(error).__name__}: {str(error)[:80]}); "
                    "install the [timm] extra with a matching torchvision to run this case")
    return vit.Block(dim, num_heads=num_heads)


def encoder_layer(dim: int, num_heads: int) -> nn.Module:
    return nn.TransformerEncoderLayer(dim, num_heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)


@dataclass
class Case:
    build: Callable[[], nn.Module]
    shape: tuple  # (T, J, C)
    prune_block: int
    tokens: int
    recover: object = "tra+interpolate"
    reference: Optional[Callable] = None
    needs_example: bool = False  # the model has no attribute or parameter that gives its input shape
    layouts: Optional[dict] = None  # what the probe must find
    extra: dict = field(default_factory=dict)

    def wrap_kwargs(self, **changes) -> dict:
        # The paper's DPC-kNN, as the hand-written references choose frames (the default is tested below).
        kwargs = dict(prune_block=self.prune_block, tokens=self.tokens, recover=self.recover, selector="dpc_knn",
                      **self.extra)
        if self.needs_example:
            kwargs["example_input"] = torch.zeros(1, *self.shape)
        kwargs.update(changes)
        return kwargs

    def make(self, batch: int = 3, seed: int = 0):
        return seeded(self.build, seed), walks(batch, *self.shape, seed=seed)


FRAME_TOKENS = {"blocks": "b t c", "head": "b t c"}
MODELS = {
    "stand-in MixSTE": Case(MixSTELike, (27, 17, 2), 2, 9, "tra", reference_mixste),
    "stand-in MotionBERT": Case(MotionBERTLike, (27, 17, 3), 1, 9, "tra", reference_motionbert),
    "stand-in PoseFormer TPC": Case(PoseFormerLike, (27, 17, 2), 2, 9, False, reference_poseformer_tpc),
    "Sequential VPT": Case(SequentialVPT, (27, 17, 2), 1, 9, "interpolate", reference_sequential,
                           needs_example=True, layouts=FRAME_TOKENS),
    "TransformerEncoderLayer": Case(TorchEncoderVPT, (27, 17, 2), 1, 9, needs_example=True),
    "norm-first TransformerEncoderLayer in nn.Sequential": Case(
        lambda: SequentialVPT(block=encoder_layer), (27, 17, 2), 1, 9, layouts=FRAME_TOKENS),
    "timm ViT blocks in nn.Sequential": Case(
        lambda: SequentialVPT(block=timm_block), (27, 17, 2), 1, 9, layouts=FRAME_TOKENS),
    "MultiheadAttention": Case(FrameTokensVPT, (27, 17, 2), 1, 9, "nearest"),
    "b (t j) c": Case(JointTimeVPT, (9, 5, 2), 1, 4, "tra"),
    "b j t c": Case(JointMajorVPT, (27, 17, 2), 2, 9),
    "zoo mixste": Case(lambda: build_model("mixste", "small"), (27, 17, 2), 2, 9),
    "zoo motionbert": Case(lambda: build_model("motionbert", "small"), (27, 17, 3), 1, 9, "tra"),
    "zoo poseformer TPC": Case(lambda: build_model("poseformer", "small"), (27, 17, 2), 1, 9, False),
    "zoo poseformer, all frames restored before the weighted mean": Case(
        lambda: build_model("poseformer", "small"), (27, 17, 2), 1, 9),
}
WITH_REFERENCE = [name for name, case in MODELS.items() if case.reference is not None]
WITH_LAYOUTS = [name for name, case in MODELS.items() if case.layouts is not None]

pytestmark = pytest.mark.usefixtures("one_thread")


def wrapped(name: str, batch: int = 3, **changes):
    """The case's model, wrapped with its settings (and ``changes``) and trained-looking HoT
    parameters, and an input; also the case."""
    case = MODELS[name]
    model, x = case.make(batch)
    wrap_with_hot(model, **case.wrap_kwargs(**changes))
    randomise_hot_parameters(model)
    return model, x, case


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_matches_the_hand_written_hot_forward(name):
    model, x, case = wrapped(name)
    with torch.no_grad():
        out = model(x)
        expected = case.reference(model, x, case.prune_block, case.tokens)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", WITH_LAYOUTS)
def test_the_probe_finds_the_blocks_and_layouts(name):
    model, _, case = wrapped(name)
    assert model.hot.block_lists == tuple(k for k in case.layouts if k != model.hot.recover_before)
    assert model.hot.layouts == case.layouts


@pytest.mark.parametrize("name", MODELS)
def test_keeping_every_frame_reproduces_the_original_exactly(name):
    """With ``tokens == T`` every recovery that passes kept frames through (TPC only's nearest fill
    included) gives the unwrapped model's output to the bit."""
    case = MODELS[name]
    model, x = case.make()
    with torch.no_grad():
        before = model(x)
        for recover in (("interpolate", "tra+interpolate", "nearest", "interpolate+residual", False)
                        if case.recover is not False else (False,)):
            try:
                wrap_with_hot(model, **case.wrap_kwargs(tokens=case.shape[0], recover=recover))
            except ValueError as error:  # the residual needs equal widths where pruning begins and ends
                assert recover == "interpolate+residual" and "same width and joints" in str(error)
                continue
            assert torch.equal(model(x), before), recover


@pytest.mark.parametrize("name", [n for n, c in MODELS.items() if c.recover is not False])
def test_the_residual_recovery_runs_or_is_refused_at_wrap_time(name):
    """Every seq2seq model either takes ``"interpolate+residual"`` (finite output, kept frames' tokens
    as with plain interpolation) or is refused when wrapped, never at the first forward."""
    case = MODELS[name]
    model, x = case.make()
    other = copy.deepcopy(model)
    try:
        wrap_with_hot(model, **case.wrap_kwargs(recover="interpolate+residual"))
    except ValueError as error:
        assert "same width and joints" in str(error) and not is_hot(model)
        return
    wrap_with_hot(other, **case.wrap_kwargs(recover="interpolate"))
    with torch.no_grad():
        out, plain = model(x), other(x)
    assert out.shape == plain.shape and torch.isfinite(out).all()
    assert not torch.equal(out, plain)  # the detail of the pruned frames reached the output


@pytest.mark.parametrize("name", MODELS)
def test_unwrap_restores_the_original_exactly(name):
    case = MODELS[name]
    model, x = case.make()
    before = snapshot(model, x)
    wrap_with_hot(model, **case.wrap_kwargs())
    randomise_hot_parameters(model)
    with torch.no_grad():
        assert is_hot(model) and not torch.allclose(model(x), before[-1])
    assert_unwraps_exactly(model, x, before)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_keeps_original_keys_and_adds_hot_ones(name):
    case = MODELS[name]
    model, _ = case.make()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    before = {id(p) for p in model.parameters()}
    wrap_with_hot(model, **case.wrap_kwargs(recover="tra"))
    state = model.state_dict()
    added = set(state) - set(original)
    assert set(original) <= set(state)
    assert all(torch.equal(state[k], v) for k, v in original.items())
    assert {k.split(".")[0] for k in added} == set(HOT_ROOTS)
    assert {k for k in added if k.startswith("cross_attention.")} == {
        f"cross_attention.{layer}.{p}" for layer in ("linear_q", "linear_k", "linear_v", "proj")
        for p in ("weight", "bias")}
    width = state["x_token"].shape[-1]
    assert state["pos_embed_token"].shape[:2] == (1, case.tokens) and state["x_token"].shape == (1, case.shape[0], width)
    new = {id(p) for p in model.parameters()} - before
    assert {id(p) for p in hot_parameters(model)} == new and len(new) == 10
    with pytest.raises(ValueError, match="not wrapped"):
        hot_parameters(unwrap_hot(model))


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    model, x, _ = wrapped(name)
    assert_every_parameter_trains(model.train(), x)


@pytest.mark.parametrize("name", MODELS)
def test_each_sample_keeps_its_own_frames(name):
    model, x, case = wrapped(name)
    with torch.no_grad():
        batched = model(x)
        picks = model.hot.last_indices.clone()
        assert picks.shape == (3, case.tokens)
        assert len({tuple(row.tolist()) for row in picks}) > 1
        for s in range(3):  # a sample's output does not depend on the rest of the batch
            torch.testing.assert_close(model(x[s:s + 1]), batched[s:s + 1], atol=1e-5, rtol=1e-5)
            assert torch.equal(model.hot.last_indices[0], picks[s])


@pytest.mark.parametrize("name", MODELS)
def test_by_default_every_sample_keeps_evenly_spaced_frames(name):
    """The default selector is ``"uniform"``: the same evenly spaced frames for every sample (TPC
    only: evenly spaced among the other frames, plus the centre), and the same output as choosing
    those frames by hand."""
    case = MODELS[name]
    model, x = case.make()
    kwargs = case.wrap_kwargs()
    del kwargs["selector"]
    wrap_with_hot(model, **kwargs)
    by_hand = copy.deepcopy(model)

    def evenly(features, f, exclude=None):
        frames = [t for t in range(features.shape[1]) if t != exclude]
        return evenly_spaced(frames, f).expand(features.shape[0], f)

    by_hand.hot.selector = evenly
    with torch.no_grad():
        assert torch.equal(model(x), by_hand(x))
    t, f = case.shape[0], case.tokens
    expected = (evenly_spaced(list(range(t)), f) if case.recover is not False else
                torch.cat([evenly_spaced([i for i in range(t) if i != (t - 1) // 2], f - 1),
                           torch.tensor([(t - 1) // 2])]).sort().values)
    assert torch.equal(model.hot.last_indices, expected.expand(x.shape[0], f))
    assert torch.equal(by_hand.hot.last_indices, model.hot.last_indices) and model.hot.selector == "uniform"


def evenly_spaced(frames, f: int) -> torch.Tensor:
    """``f`` of the frame numbers ``frames``, the first and the last included, evenly spaced (rounded)."""
    return torch.tensor([frames[round(i * (len(frames) - 1) / (f - 1)) if f > 1 else 0] for i in range(f)])


@pytest.mark.parametrize("name", MODELS)
def test_copies_pickles_and_state_dicts_give_the_same_model(name):
    model, x, case = wrapped(name)
    with torch.no_grad():
        expected = model(x)
        twin = copy.deepcopy(model)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        fresh = wrap_with_hot(case.make(seed=9)[0], **case.wrap_kwargs())
        fresh.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
        for other in (twin, loaded, fresh):
            assert is_hot(other) and torch.equal(other(x), expected)
        # The copies' hooks act on the copies: unwrapping one leaves the original wrapped.
        unwrap_hot(twin)
        assert is_hot(model) and torch.equal(model(x), expected) and not torch.equal(twin(x), expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_torch_compile_fullgraph(name):
    model, x, case = wrapped(name)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    fresh = walks(3, *case.shape, seed=1)
    with torch.no_grad():
        for inputs in (x, fresh):
            torch.testing.assert_close(compiled(inputs), model(inputs), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_torch_export_keeps_the_selection_in_the_graph(name):
    model, x, case = wrapped(name)
    exported = torch.export.export(model, (x,), strict=False).module()
    fresh = walks(3, *case.shape, seed=1)
    with torch.no_grad():
        model(x)
        example_frames = model.hot.last_indices.clone()
        torch.testing.assert_close(exported(fresh), model(fresh), atol=1e-5, rtol=1e-5)
        assert not torch.equal(model.hot.last_indices, example_frames)  # the fresh input keeps other frames


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_autocast(name):
    model, x, _ = wrapped(name)
    with torch.no_grad():
        full = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == full.shape and torch.isfinite(low).all()
    assert (low.float() - full).abs().mean() < 0.1 * full.abs().mean() + 0.05


@pytest.mark.parametrize("name", MODELS)
def test_wrapping_again_rewraps_and_keeps_fitting_parameters(name):
    model, x, case = wrapped(name)
    hooks, own_hooks = hooks_of(model), len(model._forward_pre_hooks) + len(model._forward_hooks)
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        expected = model(x)
        wrap_with_hot(model, **case.wrap_kwargs())  # same settings: same model
        assert hooks_of(model) == hooks and torch.equal(model(x), expected)
        wrap_with_hot(model, **case.wrap_kwargs(tokens=case.tokens - 1))
        assert hooks_of(model) == hooks and model.hot.tokens == case.tokens - 1
        state = model.state_dict()
        other_depth = case.prune_block % (model.hot.depth - 1) + 1
        wrap_with_hot(model, **case.wrap_kwargs(prune_block=other_depth, tokens=case.tokens - 1))
        assert model.hot.prune_block == other_depth
        assert len(model._forward_pre_hooks) + len(model._forward_hooks) == own_hooks
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    for key, value in kept.items():  # everything but the resized kept-frame embedding survives
        if key != "pos_embed_token":
            assert torch.equal(state[key], value), key
    if case.recover is not False:
        assert state["pos_embed_token"].shape[1] == case.tokens - 1


# --- arguments the matrix does not vary, and the rejection paths the README promises -------------
def test_fvcore_traces_the_wrapped_model_and_counts_fewer_flops():
    model, x = MODELS["stand-in MixSTE"].make()
    base = count_flops(model, x[:1])
    wrap_with_hot(model, **MODELS["stand-in MixSTE"].wrap_kwargs())
    assert 0 < count_flops(model, x[:1]) < base


def test_blocks_argument_prunes_only_the_named_lists():
    x = walks(2)
    model = seeded(MixSTELike)
    auto = wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=9, recover="interpolate")
    named = wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=9, recover="interpolate",
                          blocks=["spatial_blocks", "temporal_blocks"])
    with torch.no_grad():
        assert torch.equal(named(x), auto(x))
    only = wrap_with_hot(model, prune_block=1, tokens=9, recover="tra", blocks=["temporal_blocks"])
    assert only.hot.block_lists == ("temporal_blocks",)
    shapes, _ = record_inputs([only.spatial_blocks[2], only.temporal_blocks[2]])
    with torch.no_grad():
        only(x)
    assert shapes == [(2 * 27, 17, 16), (2 * 17, 9, 16)]
    with pytest.raises(ValueError, match=r"no module named \['nope'\]"):
        wrap_with_hot(MixSTELike(), prune_block=1, tokens=9, blocks=["nope"])


def test_recover_before_moves_the_recovery_point():
    model = seeded(MixSTELike)
    assert wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=9).hot.recover_before == "head"
    wrap_with_hot(model, prune_block=1, tokens=9, recover="interpolate", recover_before="head.1")
    assert model.hot.recover_before == "head.1"
    raw, recovered = [], []
    model.head[0].register_forward_hook(lambda mod, args, out: raw.append(out))
    model.head[1].register_forward_pre_hook(lambda mod, args: recovered.append(args[0]))
    with torch.no_grad():
        model(walks(2))
    idx = model.hot.last_indices
    kept = torch.stack([raw[0][s, idx[s]] for s in range(2)])  # (b, f, j, c) after the norm head.0
    expected = interpolate_by_hand(kept.flatten(2), idx, 27).reshape(raw[0].shape)
    torch.testing.assert_close(recovered[0], expected, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="recover_before='embed'"):
        wrap_with_hot(MixSTELike(), prune_block=1, tokens=9, recover_before="embed")


def test_a_shape_read_off_the_parameters_or_given_by_example_input_or_input_shape():
    model = TorchEncoderVPT(frames=15).eval()
    # No frame-count attribute: T comes from its (1, T, c) position parameter (models with no such
    # evidence wrap lazily: tests/test_lazy.py).
    guessed = wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=5)
    assert not guessed.hot.pending and (guessed.hot.frames, guessed.hot.structure.joints) == (15, 17)
    with pytest.raises(ValueError, match="example_input must be"):
        wrap_with_hot(model, prune_block=1, tokens=5, example_input=torch.zeros(15, 17, 2))
    x = walks(2, 15)
    by_shape = wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=5, input_shape=(15, 17, 2))
    wrap_with_hot(model, prune_block=1, tokens=5, example_input=x)
    assert model.hot.frames == 15 and model.hot.layouts["layers"] == "(b j) t c"
    with torch.no_grad():
        assert torch.equal(model(x), by_shape(x)) and torch.equal(guessed(x), by_shape(x))
    assert model.hot.last_indices.shape == (2, 5)


def test_frames_equal_to_joints_need_explicit_layouts():
    model = MixSTELike(frames=17, joints=17).eval()
    # One message names every entry needed, the head's included: no round after round.
    with pytest.raises(ValueError, match=r"frames == joints == 17: .*\['head', 'spatial_blocks', 'temporal_blocks'\]"
                                         r".*pass layouts=\{'spatial_blocks': one of"):
        wrap_with_hot(model, prune_block=1, tokens=5)
    layouts = {"spatial_blocks": "(b t) j c", "temporal_blocks": "(b j) t c"}
    with pytest.raises(ValueError, match=r"\['head'\] fit several patterns"):
        wrap_with_hot(model, prune_block=1, tokens=5, layouts=layouts)
    assert not is_hot(model)
    x = torch.randn(2, 17, 17, 2)
    with torch.no_grad():
        before = model(x)
        wrap_with_hot(model, prune_block=1, tokens=17, recover=False, layouts={**layouts, "head": "b t j c"})
        assert torch.equal(model(x), before)
        model.hot.tokens = 6
        assert model(x).shape == before.shape


@pytest.mark.parametrize("cls, wrap, message", [
    (TupleBlocksVPT, {}, r"blocks\.0 does not return one tensor of its input's shape"),
    (SharedBlocksVPT, {}, r"6 calls for 3 blocks \(HoT needs each block called once\)"),
    (NoBlocksVPT, {}, "no block list found"),
    (OneBlockVPT, {}, "no block list found"),  # a single block only counts as the continuation of another list
    (PoseFormerV2Like, dict(recover=False), r"no axis carries the 27 frames.*DCT coefficients"),
])
def test_unsupported_models_are_rejected_and_left_as_they_were(cls, wrap, message):
    model = seeded(cls)
    x = walks(2)
    with torch.no_grad():
        plain = model(x)
    keys, hooks = list(model.state_dict()), hooks_of(model)
    with pytest.raises(ValueError, match=message):
        wrap_with_hot(model, prune_block=1, tokens=9, **wrap)
    assert not is_hot(model) and not any(hasattr(model, n) for n in HOT_ROOTS)
    assert list(model.state_dict()) == keys and hooks_of(model) == hooks
    with torch.no_grad():
        assert torch.equal(model(x), plain)
