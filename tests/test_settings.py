"""``model.hot``'s settings (tokens, prune_block, selector, k, seed, recover, x_token_init) and the
paper presets that fill ``prune_block``/``tokens`` when they are left out."""
import pytest
import torch

from hourglass_tokenizer import HotState, is_hot, unwrap_hot, wrap_with_hot
from hourglass_tokenizer.core.presets import paper_setting
from hourglass_tokenizer.core.recovery import initial_x_token
from hourglass_tokenizer.models import build_model
from stand_ins import T, MixSTELike, MotionBERTLike, PoseFormerLike, seeded, walks

TRA = dict(prune_block=2, tokens=9, recover="tra", selector="dpc_knn")  # the paper's HoT


@pytest.fixture
def mixste():
    return seeded(MixSTELike), walks(3)


def test_settings_change_in_place(mixste):
    model, x = mixste
    wrap_with_hot(model, **TRA)
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


@pytest.mark.parametrize("new_tokens", [5, 17])
def test_changing_tokens_resamples_the_learned_kept_frame_embedding(new_tokens):
    model = wrap_with_hot(MixSTELike().eval(), **TRA)
    weights = torch.linspace(-1, 1, 16)
    with torch.no_grad():  # a ramp along the kept frames: linear resampling keeps it a ramp
        model.pos_embed_token.copy_(torch.arange(9.0)[None, :, None] * weights)
    with pytest.warns(UserWarning, match="rebuild optimisers"):
        model.hot.tokens = new_tokens
    expected = torch.linspace(0, 8, new_tokens)[None, :, None] * weights
    torch.testing.assert_close(model.pos_embed_token.detach(), expected, atol=1e-6, rtol=1e-6)
    assert model.pos_embed_token.requires_grad


def test_selectors_and_the_users_random_state(mixste):
    model, x = mixste
    wrap_with_hot(model, **{**TRA, "selector": "random"}, seed=5)
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


def test_seed_changes_restart_the_random_selection(mixste):
    model, x = mixste
    wrap_with_hot(model, **{**TRA, "selector": "random"}, seed=0)
    model(x)
    first = model.hot.last_indices
    model.hot.seed = 5
    model(x)
    other = model.hot.last_indices
    model.hot.seed = 0
    model(x)
    assert not torch.equal(first, other) and torch.equal(model.hot.last_indices, first)
    with pytest.raises(TypeError, match="seed must be an integer"):
        model.hot.seed = 1.5


def test_k_recover_and_the_state_object(mixste):
    model, x = mixste
    wrap_with_hot(model, **TRA)
    assert isinstance(model.hot, HotState) and "hot" not in dict(model.named_children())
    assert "HotState(prune_block=2, tokens=9" in repr(model.hot)
    model.hot.k = 4
    model(x)
    assert model.hot.k == 4 and "k=4" in repr(model.hot.config.make_selector())
    with pytest.raises(AttributeError, match="recover=False"):
        model.hot.recover = False


def test_x_token_initialisation_choices(mixste):
    model, _ = mixste
    wrap_with_hot(model, **TRA)
    assert torch.count_nonzero(model.x_token) == 0
    with torch.no_grad():  # the documented order: load the pretrained weights, then wrap
        model.temporal_pos.add_(1.0)
    wrap_with_hot(unwrap_hot(model), **TRA, x_token_init="position")
    assert torch.equal(model.x_token, model.temporal_pos)
    assert model.x_token.data_ptr() != model.temporal_pos.data_ptr()
    bert = MotionBERTLike()
    wrap_with_hot(bert, prune_block=1, tokens=9, recover="tra", x_token_init="position", selector="dpc_knn")
    assert torch.equal(bert.x_token, bert.temp_embed[:, :, 0])
    start = torch.randn(1, T, 16)
    wrap_with_hot(unwrap_hot(model), **TRA, x_token_init=start)
    assert torch.equal(model.x_token, start)
    with pytest.raises(ValueError, match=r"shape \(1, 27, 16\)"):
        wrap_with_hot(unwrap_hot(model), **TRA, x_token_init=torch.zeros(1, 5, 16))
    # A failed wrap leaves nothing behind: no hooks, no half of the new parameters.
    assert not is_hot(model) and not hasattr(model, "pos_embed_token") and not model._forward_pre_hooks
    with pytest.raises(ValueError, match=r"no temporal position embedding of shape \(1, 27, 16\)"):
        initial_x_token(torch.nn.Linear(2, 16), "position", T, 16)
    with pytest.raises(ValueError, match="must be 'zeros', 'position' or a tensor"):
        initial_x_token(model, "random", T, 16)


# --- paper presets ---------------------------------------------------------------------------------
def test_paper_presets_are_recognised_by_structure():
    class RenamedMixSTE(MixSTELike):
        pass

    mix = RenamedMixSTE(frames=243, depth=8, dim=8)
    wrap_with_hot(mix, selector="dpc_knn")
    assert (mix.hot.prune_block, mix.hot.tokens, mix.hot.family) == (3, 81, "mixste")
    wrap_with_hot(mix, recover=False, selector="dpc_knn")
    assert (mix.hot.prune_block, mix.hot.tokens) == (7, 61)
    bert = MotionBERTLike(frames=243, depth=5, dim=8)
    wrap_with_hot(bert, selector="dpc_knn")
    assert (bert.hot.prune_block, bert.hot.tokens, bert.hot.family) == (1, 81, "motionbert")
    small = MixSTELike(frames=81, depth=8, dim=8)
    wrap_with_hot(small, selector="dpc_knn")
    assert (small.hot.prune_block, small.hot.tokens) == (3, 27)
    with pytest.raises(ValueError, match="give prune_block= and tokens= explicitly"):
        wrap_with_hot(PoseFormerLike(), selector="dpc_knn")


@pytest.mark.parametrize("family, recover, depth, expected", [
    ("mixste", True, 8, (3, 81)),     # the paper's own depth: unchanged
    ("mixste", True, 16, (6, 81)),    # 3 of 8 blocks -> 6 of 16
    ("mixste", True, 2, (1, 81)),     # at least one block before pruning
    ("mixste", False, 4, (3, 61)),    # 7 of 8 -> 3.5, rounded and capped at depth - 1
    ("motionbert", True, 10, (2, 81)),
])
def test_presets_scale_the_prune_block_with_depth(family, recover, depth, expected):
    assert paper_setting(family, recover, 243, depth) == expected


@pytest.mark.parametrize("name, config, overrides, expected", [
    ("mixste", "small", {}, (2, 9)),  # depth 4 (paper 8), 27 frames (paper 243)
    ("mixste", "paper", dict(embed_dim=16, num_heads=2, mlp_hidden_dim=32), (3, 81)),
    ("motionbert", "paper", dict(dim_feat=16, dim_rep=16, num_heads=2), (1, 81)),
])
def test_zoo_models_get_the_paper_presets(name, config, overrides, expected):
    model = build_model(name, config, **overrides)  # paper depth and frame count, narrow for speed
    model.__class__ = type("UserRenamed" + type(model).__name__, (type(model),), {})
    wrap_with_hot(model, selector="dpc_knn")
    assert (model.hot.prune_block, model.hot.tokens) == expected
