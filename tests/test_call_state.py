"""What a wrapped model remembers between and during calls: the kept frames per thread, one
``model.hot`` handle from a lazy wrap to its set-up, and frame selection that does not depend on the
model's floating-point precision."""
from __future__ import annotations

import threading

import pytest
import torch

from hourglass_tokenizer import dpc_knn, wrap_with_hot
from hourglass_tokenizer.models import build_model
from stand_ins import MixSTELike

pytestmark = pytest.mark.usefixtures("one_thread")

T, J = 27, 17


def paused_walks(batch: int, seed: int) -> torch.Tensor:
    """Random walks that pause at a sample- and seed-dependent time: each input keeps other frames."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(batch, T, J, 2, generator=g) * 0.3
    for b in range(batch):
        start = (3 + 5 * b + 7 * seed) % (T - 6)
        steps[b, start:start + 6] = 0
    return torch.cumsum(steps, dim=1)


def test_last_indices_are_those_of_the_calling_threads_own_call():
    torch.manual_seed(0)
    model = wrap_with_hot(MixSTELike().eval(), prune_block=2, tokens=9, selector="dpc_knn")
    inputs = [paused_walks(2, seed) for seed in range(4)]
    with torch.no_grad():
        expected = []
        for x in inputs:
            model(x)
            expected.append(model.hot.last_indices.clone())
    assert len({tuple(e.flatten().tolist()) for e in expected}) == len(inputs)  # the inputs keep different frames
    wrong, errors = [], []
    start = threading.Barrier(len(inputs))

    def run(k: int) -> None:
        try:
            start.wait()
            with torch.no_grad():
                for _ in range(25):
                    model(inputs[k])
                    if not torch.equal(model.hot.last_indices, expected[k]):
                        wrong.append(k)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and wrong == []
    reader = []
    thread = threading.Thread(target=lambda: reader.append(model.hot.last_indices))
    thread.start()
    thread.join()
    assert reader == [None]  # a thread that made no call has no frames of its own


def test_a_handle_taken_before_a_lazy_set_up_stays_the_models_state():
    from stand_ins import STCFormerLike

    torch.manual_seed(0)
    model = wrap_with_hot(STCFormerLike().eval(), prune_block=1, tokens=9, selector="dpc_knn")
    handle = model.hot
    assert handle.pending
    with pytest.raises(AttributeError, match="run one forward first"):
        handle.frames
    handle.tokens = 5  # before the set-up: taken into account by it
    with torch.no_grad():
        model(paused_walks(2, 0))
    assert handle is model.hot and not handle.pending
    assert handle.frames == T and handle.tokens == 5 and handle.last_indices.shape == (2, 5)
    handle.tokens = 7  # after it: the next call keeps 7
    with torch.no_grad():
        model(paused_walks(2, 0))
    assert model.hot.last_indices.shape == (2, 7) and model.pos_embed_token.shape[1] == 7


def test_a_setting_a_pending_model_cannot_take_is_refused_before_the_set_up():
    from stand_ins import STCFormerLike

    model = wrap_with_hot(STCFormerLike().eval(), prune_block=1, tokens=9, selector="dpc_knn")
    with pytest.raises(ValueError, match="tokens must be >= 1"):
        model.hot.tokens = 0
    with pytest.raises(ValueError, match="unknown selector"):
        model.hot.selector = "kmeans"
    assert model.hot.tokens == 9 and model.hot.selector == "dpc_knn"


def test_selection_on_bfloat16_tokens_is_the_selection_on_their_float32_values():
    """The forward pools and scores in float32: a bf16 model chooses exactly what DPC-kNN chooses on
    its own block input cast to float32 first (pooling in bf16 would round the joint means)."""
    torch.manual_seed(0)
    model = build_model("mixste", "small").eval().to(torch.bfloat16)
    captured = []
    model.STEblocks[1].register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    wrap_with_hot(model, prune_block=1, tokens=9, selector="dpc_knn")
    agree_pooled_in_bf16 = 0
    for seed in range(8):
        captured.clear()
        x = paused_walks(3, seed).to(torch.bfloat16)
        with torch.no_grad():
            model(x)
        tokens = captured[0]  # (b t) j c, before HoT gathers
        b, c = x.shape[0], tokens.shape[-1]
        expected = dpc_knn(tokens.float().reshape(b, T, J, c).mean(dim=2), 9)
        assert torch.equal(model.hot.last_indices, expected)
        agree_pooled_in_bf16 += torch.equal(dpc_knn(tokens.reshape(b, T, J, c).mean(dim=2).float(), 9), expected)
    assert agree_pooled_in_bf16 < 8  # the test can tell the two apart


def test_an_input_independent_selection_is_reused_with_the_same_results():
    """``selector="uniform"`` keeps the same frames for every input of one batch shape: the frames, the
    gather indices and the interpolation's neighbours are computed once and reused, in every mode."""
    torch.manual_seed(0)
    model = wrap_with_hot(MixSTELike().eval(), prune_block=2, tokens=9, selector="uniform", recover="interpolate")
    fresh = wrap_with_hot(MixSTELike().eval(), prune_block=2, tokens=9, selector=lambda x, f: _uniform(x, f),
                          recover="interpolate")
    fresh.load_state_dict(model.state_dict())
    for mode in (torch.inference_mode, torch.no_grad, torch.enable_grad):
        for batch in (1, 3, 1):
            x = paused_walks(batch, batch)
            with mode():
                out, expected = model(x), fresh(x)
            assert torch.equal(out, expected)
            assert torch.equal(model.hot.last_indices, fresh.hot.last_indices)
            if mode is torch.enable_grad:
                out.square().mean().backward()  # indices made under inference mode are never reused here
    x = paused_walks(2, 0)
    with torch.no_grad():
        first, again = _ops(model, x), _ops(model, paused_walks(2, 1))
    assert again < first  # the second call of a batch shape does not select or index again


def _ops(model, x) -> int:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    with Count():
        model(x)
    return Count.calls


def _uniform(features, f):
    from hourglass_tokenizer.core.selection import uniform

    return uniform(features, f)
