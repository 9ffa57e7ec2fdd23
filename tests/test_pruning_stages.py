"""Pruning at several depths (H2OT): each stage keeps some of the frames the previous one kept, one
recovery at the end. Checked against the hand-written reference of ``tests/stand_ins.py``."""
from __future__ import annotations

import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from stand_ins import (T, MixSTELike, assert_every_parameter_trains, assert_unwraps_exactly, randomise_hot_parameters,
                       reference_mixste, seeded, snapshot, walks)


def test_two_stage_matches_reference_and_composes_indices():
    model = seeded(MixSTELike, depth=6)
    x = walks(3)
    before = snapshot(model, x)
    wrap_with_hot(model, prune_block=(2, 4), tokens=(9, 3), recover="tra", selector="dpc_knn")
    assert model.pos_embed_token.shape == (1, 9, 16)
    randomise_hot_parameters(model)
    trace = {}
    with torch.no_grad():
        expected = reference_mixste(model, x, (2, 4), (9, 3), trace=trace)
        out = model(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.hot.last_indices, trace["indices"])
    first, second = model.hot.stage_indices
    assert first.shape == (3, 9) and torch.equal(second, trace["indices"])
    assert all(set(s.tolist()) <= set(f.tolist()) for f, s in zip(first, second))
    assert len({tuple(r) for r in second.tolist()}) > 1
    assert_every_parameter_trains(model, x)
    model.eval()
    assert_unwraps_exactly(model, x, before)


def test_two_stage_tpc_only_keeps_the_centre_at_every_stage_and_settings_validate():
    model = seeded(MixSTELike, depth=6)
    x = walks(3)
    wrap_with_hot(model, prune_block=(1, 3), tokens=(9, 4), recover=False, selector="dpc_knn")
    with torch.no_grad():
        model(x)
    for stage in model.hot.stage_indices:
        assert ((stage == (T - 1) // 2).sum(dim=1) == 1).all()
    with pytest.raises(ValueError, match="strictly increasing"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(3, 3), tokens=(9, 4), selector="dpc_knn")
    with pytest.raises(ValueError, match="strictly decreasing"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(1, 3), tokens=(9, 9), selector="dpc_knn")
    with pytest.raises(ValueError, match="as many stages"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(1, 3), tokens=9, selector="dpc_knn")
    with pytest.raises(ValueError, match=r"prune_block must be an int in 1..5 .* got \(1, 6\)"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(1, 6), tokens=(9, 3), selector="dpc_knn")
    with pytest.raises(ValueError, match=r"tokens must be an int in 1..frames \(27\), got \(30, 3\)"):
        wrap_with_hot(MixSTELike(depth=6), prune_block=(1, 3), tokens=(30, 3), selector="dpc_knn")
    model.hot.tokens = (12, 6)
    model.hot.prune_block = (2, 4)
    assert (model.hot.prune_block, model.hot.tokens) == ((2, 4), (12, 6))
    with pytest.raises(ValueError, match="as many stages"):
        model.hot.tokens = 5
    with torch.no_grad():
        model(x)
    assert model.hot.last_indices.shape == (3, 6)
    wrap_with_hot(model, prune_block=2, tokens=9, recover=False, selector="dpc_knn")  # back to one stage
    assert model.hot.prune_block == 2 and model.hot.tokens == 9
