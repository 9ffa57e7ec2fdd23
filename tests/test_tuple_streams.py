"""Blocks on tuples of token streams over two consecutive block lists (MHFormer): every stream is
gathered and scattered, the lists count as one sequence of depths. Checked against the hand-written
reference of ``tests/stand_ins.py`` (the official TPC-MHFormer)."""
from __future__ import annotations

import pytest
import torch

from hourglass_tokenizer import is_hot, load_official_hot, wrap_with_hot
from stand_ins import (J, T, MHFormerLike, assert_every_parameter_trains, assert_unwraps_exactly,
                       reference_mhformer_tpc, seeded, snapshot, walks)


def test_mhformer_like_tpc_matches_the_official_tpc_and_loads_its_checkpoint():
    model = seeded(MHFormerLike)
    x = walks(3)
    before = snapshot(model, x)
    wrap_with_hot(model, prune_block=1, tokens=9, recover=False, input_shape=(T, J, 2), selector="dpc_knn")
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
    assert_unwraps_exactly(model, x, before)


def test_mhformer_like_wraps_at_once_and_tolerates_a_forward_returning_a_tuple():
    class Returning(MHFormerLike):  # upstream TPC code returns (x, index)
        def forward(self, x):
            return super().forward(x), None

    model = seeded(Returning)
    x = walks(2)
    wrap_with_hot(model, prune_block=1, tokens=9, recover=False, selector="dpc_knn")
    # No frame count is stored: T is read off its (1, T, c) embeddings, so the wrap is not lazy.
    assert not model.hot.pending and model.hot.frames == x.shape[1]
    with torch.no_grad():
        out, _ = model(x)
        expected = reference_mhformer_tpc(model, x, 9)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_a_seq2seq_recovery_says_to_wrap_with_recover_false():
    """Its head reads channels-first ``b c t`` tokens, so no module after the blocks takes per-frame
    tokens: the one-line wrap (default seq2seq recovery) says what to do instead."""
    model = seeded(MHFormerLike)
    with pytest.raises(ValueError, match="wrap with recover=False"):
        wrap_with_hot(model, prune_block=1, tokens=9, selector="dpc_knn")
    assert not is_hot(model)
