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

from hourglass_tokenizer import is_hot, unwrap_hot, wrap_with_hot
from hourglass_tokenizer.core.selection import dpc_knn
from hourglass_tokenizer.models import build_model
from stand_ins import (JointMajorVPT, JointTimeVPT, MHAVPT, MixSTELike, MotionBERTLike, PoseFormerLike,
                       SequentialVPT, SharedBlocksVPT, TorchEncoderVPT, TupleBlocksVPT)
from test_wrapping import (keep_frames, randomise_hot_parameters, reference_mixste, reference_motionbert,
                           reference_poseformer_tpc)

HOT_ROOTS = ("pos_embed_token", "x_token", "cross_attention")


def walks(batch: int, frames: int, joints: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Random walks that pause for a while at a different time in every sample: the samples'
    frame features differ in structure, so per-sample selections differ."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(batch, frames, joints, channels, generator=g) * 0.3
    pause = max(2, frames // 4)
    for s in range(batch):
        start = (1 + s * (frames // 3) + 5 * seed) % (frames - pause)
        steps[s, start:start + pause] = 0
    return torch.cumsum(steps, dim=1)


def interpolate_by_hand(kept: torch.Tensor, idx: torch.Tensor, frames: int) -> torch.Tensor:
    """``kept (b, f, c)`` at frames ``idx (b, f)`` -> ``(b, frames, c)``, one frame at a time."""
    out = []
    for s in range(kept.shape[0]):
        at = idx[s].tolist()
        rows = []
        for t in range(frames):
            if t <= at[0]:
                rows.append(kept[s, 0])
            elif t >= at[-1]:
                rows.append(kept[s, -1])
            else:
                right = next(p for p, k in enumerate(at) if k >= t)
                w = (t - at[right - 1]) / (at[right] - at[right - 1])
                rows.append(kept[s, right] if at[right] == t else kept[s, right - 1] * (1 - w) + kept[s, right] * w)
        out.append(torch.stack(rows))
    return torch.stack(out)


def reference_sequential(m: SequentialVPT, x: torch.Tensor, prune_block: int, tokens: int) -> torch.Tensor:
    """HoT on the simplest VPT written out by hand: prune after ``prune_block`` blocks, add
    ``pos_embed_token``, run the rest on the kept frames, interpolate the others back."""
    b, frames, joints, _ = x.shape
    h = m.embed(x.reshape(b, frames, -1)) + m.temporal_pos
    for i, blk in enumerate(m.blocks):
        if i == prune_block:
            idx = dpc_knn(h, tokens)
            h = keep_frames(h, idx) + m.pos_embed_token
        h = blk(h)
    return m.head(interpolate_by_hand(h, idx, frames)).reshape(b, frames, joints, 3)


@dataclass
class Case:
    build: Callable[[], nn.Module]
    shape: tuple  # (T, J, C)
    prune_block: int
    tokens: int
    recover: object = "tra+interpolate"
    reference: Optional[Callable] = None
    needs_example: bool = False  # the model has no attribute or parameter that gives its input shape
    extra: dict = field(default_factory=dict)

    def wrap_kwargs(self, **changes) -> dict:
        kwargs = dict(prune_block=self.prune_block, tokens=self.tokens, recover=self.recover, **self.extra)
        if self.needs_example:
            kwargs["example_input"] = torch.zeros(1, *self.shape)
        kwargs.update(changes)
        return kwargs

    def make(self, batch: int = 3, seed: int = 0):
        torch.manual_seed(seed)
        return self.build().eval(), walks(batch, *self.shape, seed=seed)


MODELS = {
    "stand-in MixSTE": Case(MixSTELike, (27, 17, 2), 2, 9, "tra", reference_mixste),
    "stand-in MotionBERT": Case(MotionBERTLike, (27, 17, 3), 1, 9, "tra", reference_motionbert),
    "stand-in PoseFormer TPC": Case(PoseFormerLike, (27, 17, 2), 2, 9, False, reference_poseformer_tpc),
    "Sequential VPT": Case(SequentialVPT, (27, 17, 2), 1, 9, "interpolate", reference_sequential,
                           needs_example=True),
    "TransformerEncoderLayer": Case(TorchEncoderVPT, (27, 17, 2), 1, 9, needs_example=True),
    "MultiheadAttention": Case(MHAVPT, (27, 17, 2), 1, 9, "nearest"),
    "b (t j) c": Case(JointTimeVPT, (9, 5, 2), 1, 4, "tra"),
    "b j t c": Case(JointMajorVPT, (27, 17, 2), 2, 9),
    "zoo mixste": Case(lambda: build_model("mixste", "small"), (27, 17, 2), 2, 9),
    "zoo motionbert": Case(lambda: build_model("motionbert", "small"), (27, 17, 3), 1, 9, "tra"),
    "zoo poseformer TPC": Case(lambda: build_model("poseformer", "small"), (27, 17, 2), 1, 9, False),
}
WITH_REFERENCE = [name for name, case in MODELS.items() if case.reference is not None]

pytestmark = pytest.mark.usefixtures("one_thread")


def hooks_of(model: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_matches_the_hand_written_hot_forward(name):
    case = MODELS[name]
    model, x = case.make()
    wrap_with_hot(model, **case.wrap_kwargs())
    randomise_hot_parameters(model)
    with torch.no_grad():
        out = model(x)
        expected = case.reference(model, x, case.prune_block, case.tokens)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_keeping_every_frame_reproduces_the_original(name):
    case = MODELS[name]
    model, x = case.make()
    with torch.no_grad():
        before = model(x)
        recover = "interpolate" if case.recover is not False else False
        wrap_with_hot(model, **case.wrap_kwargs(tokens=case.shape[0], recover=recover))
        torch.testing.assert_close(model(x), before, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_unwrap_restores_the_original_exactly(name):
    case = MODELS[name]
    model, x = case.make()
    keys, hooks = list(model.state_dict()), hooks_of(model)
    with torch.no_grad():
        before = model(x)
        wrap_with_hot(model, **case.wrap_kwargs())
        randomise_hot_parameters(model)
        assert is_hot(model) and not torch.allclose(model(x), before)
        unwrap_hot(model)
        assert torch.equal(model(x), before)
    assert not is_hot(model) and list(model.state_dict()) == keys and hooks_of(model) == hooks


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_keeps_original_keys_and_adds_hot_ones(name):
    case = MODELS[name]
    model, _ = case.make()
    original = {k: v.clone() for k, v in model.state_dict().items()}
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


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    case = MODELS[name]
    model, x = case.make()
    wrap_with_hot(model, **case.wrap_kwargs()).train()
    randomise_hot_parameters(model)
    model(x).square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


@pytest.mark.parametrize("name", MODELS)
def test_each_sample_keeps_its_own_frames(name):
    case = MODELS[name]
    model, x = case.make(batch=3)
    wrap_with_hot(model, **case.wrap_kwargs())
    randomise_hot_parameters(model)
    with torch.no_grad():
        batched = model(x)
        picks = model.hot.last_indices.clone()
        assert picks.shape == (3, case.tokens)
        assert len({tuple(row.tolist()) for row in picks}) > 1
        for s in range(3):  # a sample's output does not depend on the rest of the batch
            torch.testing.assert_close(model(x[s:s + 1]), batched[s:s + 1], atol=1e-5, rtol=1e-5)
            assert torch.equal(model.hot.last_indices[0], picks[s])


@pytest.mark.parametrize("name", MODELS)
def test_deepcopy_and_pickle_keep_working_hooks(name):
    case = MODELS[name]
    model, x = case.make()
    wrap_with_hot(model, **case.wrap_kwargs())
    randomise_hot_parameters(model)
    with torch.no_grad():
        expected = model(x)
        twin = copy.deepcopy(model)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
        for other in (twin, loaded):
            assert is_hot(other) and torch.equal(other(x), expected)
        # The copies' hooks act on the copies: unwrapping one leaves the original wrapped.
        unwrap_hot(twin)
        assert is_hot(model) and torch.equal(model(x), expected) and not torch.equal(twin(x), expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_torch_compile_fullgraph(name):
    case = MODELS[name]
    model, x = case.make()
    wrap_with_hot(model, **case.wrap_kwargs())
    randomise_hot_parameters(model)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    fresh = walks(3, *case.shape, seed=1)
    with torch.no_grad():
        for inputs in (x, fresh):
            torch.testing.assert_close(compiled(inputs), model(inputs), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_torch_export_keeps_the_selection_in_the_graph(name):
    case = MODELS[name]
    model, x = case.make()
    wrap_with_hot(model, **case.wrap_kwargs())
    randomise_hot_parameters(model)
    exported = torch.export.export(model, (x,), strict=False).module()
    fresh = walks(3, *case.shape, seed=1)
    with torch.no_grad():
        model(x)
        example_frames = model.hot.last_indices.clone()
        torch.testing.assert_close(exported(fresh), model(fresh), atol=1e-5, rtol=1e-5)
        assert not torch.equal(model.hot.last_indices, example_frames)  # the fresh input keeps other frames


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_autocast(name):
    case = MODELS[name]
    model, x = case.make()
    wrap_with_hot(model, **case.wrap_kwargs())
    randomise_hot_parameters(model)
    with torch.no_grad():
        full = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == full.shape and torch.isfinite(low).all()
    assert (low.float() - full).abs().mean() < 0.1 * full.abs().mean() + 0.05


@pytest.mark.parametrize("name", MODELS)
def test_wrapping_again_rewraps_and_keeps_fitting_parameters(name):
    case = MODELS[name]
    model, x = case.make()
    wrap_with_hot(model, **case.wrap_kwargs())
    randomise_hot_parameters(model)
    hooks = hooks_of(model)
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        expected = model(x)
        wrap_with_hot(model, **case.wrap_kwargs())  # same settings: same model
        assert hooks_of(model) == hooks and torch.equal(model(x), expected)
        wrap_with_hot(model, **case.wrap_kwargs(tokens=case.tokens - 1))
        assert hooks_of(model) == hooks and model.hot.tokens == case.tokens - 1
        state = model.state_dict()
    for key, value in kept.items():  # everything but the resized kept-frame embedding survives
        if key != "pos_embed_token":
            assert torch.equal(state[key], value), key
    if case.recover is not False:
        assert state["pos_embed_token"].shape[1] == case.tokens - 1


# --- arguments the matrix does not vary, and the rejection paths the README promises -------------
def record_inputs(module: nn.Module, log: list) -> None:
    """Record the input shape a block really receives (hooks run in registration order, so one
    registered after wrapping sees HoT's gathered tokens)."""
    module.register_forward_pre_hook(lambda mod, args: log.append(tuple(args[0].shape)))


def test_blocks_argument_prunes_only_the_named_lists():
    x = walks(2, 27, 17, 2)
    torch.manual_seed(0)
    model = MixSTELike().eval()
    auto = wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=9, recover="interpolate")
    named = wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=9, recover="interpolate",
                          blocks=["spatial_blocks", "temporal_blocks"])
    with torch.no_grad():
        assert torch.equal(named(x), auto(x))
    only = wrap_with_hot(model, prune_block=1, tokens=9, recover="tra", blocks=["temporal_blocks"])
    assert only.hot.block_lists == ("temporal_blocks",)
    spatial, temporal = [], []
    record_inputs(only.spatial_blocks[2], spatial)
    record_inputs(only.temporal_blocks[2], temporal)
    with torch.no_grad():
        only(x)
    assert spatial == [(2 * 27, 17, 16)] and temporal == [(2 * 17, 9, 16)]
    with pytest.raises(ValueError, match=r"no module named \['nope'\]"):
        wrap_with_hot(MixSTELike(), prune_block=1, tokens=9, blocks=["nope"])


def test_recover_before_moves_the_recovery_point():
    torch.manual_seed(0)
    model = MixSTELike().eval()
    assert wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=9).hot.recover_before == "head"
    wrap_with_hot(model, prune_block=1, tokens=9, recover="interpolate", recover_before="head.1")
    assert model.hot.recover_before == "head.1"
    raw, recovered = [], []
    model.head[0].register_forward_hook(lambda mod, args, out: raw.append(out))
    model.head[1].register_forward_pre_hook(lambda mod, args: recovered.append(args[0]))
    x = walks(2, 27, 17, 2)
    with torch.no_grad():
        model(x)
    idx = model.hot.last_indices
    kept = torch.stack([raw[0][s, idx[s]] for s in range(2)])  # (b, f, j, c) after the norm head.0
    expected = interpolate_by_hand(kept.flatten(2), idx, 27).reshape(raw[0].shape)
    torch.testing.assert_close(recovered[0], expected, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="recover_before='embed'"):
        wrap_with_hot(MixSTELike(), prune_block=1, tokens=9, recover_before="embed")


def test_example_input_or_input_shape_when_the_shape_cannot_be_inferred():
    model = TorchEncoderVPT(frames=15).eval()
    # No frame count to read: the wrap is lazy and waits for the first forward (tests/test_reach.py).
    assert wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=5).hot.pending
    with pytest.raises(ValueError, match="example_input must be"):
        wrap_with_hot(model, prune_block=1, tokens=5, example_input=torch.zeros(15, 17, 2))
    x = walks(2, 15, 17, 2)
    by_shape = wrap_with_hot(copy.deepcopy(model), prune_block=1, tokens=5, input_shape=(15, 17, 2))
    wrap_with_hot(model, prune_block=1, tokens=5, example_input=x)
    assert model.hot.frames == 15 and model.hot.layouts["layers"] == "(b j) t c"
    with torch.no_grad():
        assert torch.equal(model(x), by_shape(x))
    assert model.hot.last_indices.shape == (2, 5)


@pytest.mark.parametrize("cls, message", [
    (TupleBlocksVPT, "blocks.0 does not return one tensor of its input's shape"),
    (SharedBlocksVPT, "6 calls for 3 blocks (HoT needs each block called once)"),
])
def test_unsupported_blocks_are_rejected_and_the_model_left_as_it_was(cls, message):
    torch.manual_seed(0)
    model = cls().eval()
    x = walks(2, 27, 17, 2)
    with torch.no_grad():
        before = model(x)
    keys, hooks = list(model.state_dict()), hooks_of(model)
    with pytest.raises(ValueError) as error:
        wrap_with_hot(model, prune_block=1, tokens=9)
    assert message in str(error.value)
    assert not is_hot(model) and list(model.state_dict()) == keys and hooks_of(model) == hooks
    assert not any(hasattr(model, n) for n in HOT_ROOTS)
    with torch.no_grad():
        assert torch.equal(model(x), before)
