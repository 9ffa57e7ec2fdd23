"""Lazy wrapping (STCFormer): a model whose frame count cannot be inferred is set up by its first
forward, which fills HoT's placeholder parameters in place. Checked against the hand-written
reference of ``tests/stand_ins.py``."""
from __future__ import annotations

import io
import pickle

import pytest
import torch
from torch import nn

from hourglass_tokenizer import is_hot, wrap_with_hot
from stand_ins import (T, STCFormerLike, assert_every_parameter_trains, assert_unwraps_exactly,
                       corrected_interpolation_by_hand, interpolate_by_hand, randomise_hot_parameters,
                       reference_stcformer, seeded, snapshot, stcformer_args, walks)


def test_stcformer_like_wraps_lazily_and_matches_reference_after_the_first_forward():
    model = seeded(STCFormerLike)
    x = walks(3)
    before = snapshot(model, x)
    wrap_with_hot(model, prune_block=2, tokens=9, recover="tra", selector="dpc_knn")
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
    assert_unwraps_exactly(model, x, before)


def test_a_failed_first_forward_stays_pending_and_a_pending_model_unwraps():
    model = seeded(STCFormerLike)
    x = walks(2)
    before = snapshot(model, x)
    wrap_with_hot(model, prune_block=2, tokens=40, selector="dpc_knn")  # 40 > 27 frames: known only at the first forward
    with pytest.raises(ValueError, match=r"tokens must be an int in 1..frames \(27\), got 40"):
        model(x)
    assert model.hot.pending and isinstance(model.pos_embed_token, nn.parameter.UninitializedParameter)
    with pytest.raises(ValueError, match="needs the pose sequence"):
        model(x[0])
    assert model.hot.pending
    assert_unwraps_exactly(model, x, before)
    # What needs no frame count is checked at once.
    with pytest.raises(ValueError, match="recover_before='nope'"):
        wrap_with_hot(model, prune_block=2, tokens=9, recover_before="nope", selector="dpc_knn")
    assert not is_hot(model)


@pytest.mark.parametrize("layers, d_hid, frames, tokens", [(6, 32, 27, 9), (4, 16, 243, 81)])
def test_stcformer_wraps_lazily_in_one_line_and_matches_the_reference(layers, d_hid, frames, tokens):
    """STCFormer has no parameter of its own, so after the lazy wrap the model's first parameter is
    HoT's placeholder: the set-up must take dtype and device from the model's real weights."""
    model = seeded(STCFormerLike, args=stcformer_args(layers, d_hid, frames))
    x = walks(2, frames)
    wrap_with_hot(model, prune_block=2, tokens=tokens, selector="dpc_knn")
    assert model.hot.pending and next(model.parameters()) is model.pos_embed_token
    with torch.no_grad():
        first = model(x)  # the default recovery starts as the interpolation
        torch.testing.assert_close(first, reference_stcformer(model, x, 2, tokens, recover=interpolate_by_hand),
                                   atol=1e-5, rtol=1e-5)
    assert (model.hot.frames, model.hot.recover) == (frames, "tra+interpolate")
    randomise_hot_parameters(model)
    with torch.no_grad():
        expected = reference_stcformer(model, x, 2, tokens, recover=corrected_interpolation_by_hand(model))
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
