"""Behaviour that the wrapper tests ran through without checking: each test here fails for a
specific wrong implementation (a mutant that once survived the whole suite)."""
from __future__ import annotations

import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.models import build_model
from hourglass_tokenizer.presets import paper_setting
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
