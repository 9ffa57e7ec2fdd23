"""Recovery modes (``recover=``): training-free interpolation and nearest fill, TRA as a correction of
the interpolation, the official TPC-only layout, and the argument's validation."""
import copy

import pytest
import torch

from hourglass_tokenizer import is_hot, load_official_hot, wrap_with_hot
from hourglass_tokenizer.core.recovery import RECOVERY_MODES, interpolate_frames, resolve_recover
from stand_ins import MixSTELike, MotionBERTLike
from stand_ins_reach import _dpc_with_centre, nearest_fill, reference_two_stage
from test_wrapping import T, build, randomise_hot_parameters, reference_mixste, structured_input


# --- independent references, one frame at a time ---------------------------------------------
def interpolate_by_hand(kept_seqs, idx, frames):
    """Per sequence and frame: the two kept frames around it, weighted by distance in time."""
    b = idx.shape[0]
    per_sample = kept_seqs.shape[0] // b
    out = torch.empty(kept_seqs.shape[0], frames, kept_seqs.shape[-1])
    for n in range(kept_seqs.shape[0]):
        kept = idx[n // per_sample].tolist()
        for t in range(frames):
            if t <= kept[0]:
                out[n, t] = kept_seqs[n, 0]
            elif t >= kept[-1]:
                out[n, t] = kept_seqs[n, -1]
            else:
                right = next(p for p, frame in enumerate(kept) if frame >= t)
                left = right - 1 if kept[right] != t else right
                span = kept[right] - kept[left]
                w = 0.0 if span == 0 else (t - kept[left]) / span
                out[n, t] = (1 - w) * kept_seqs[n, left] + w * kept_seqs[n, right]
    return out


# --- the pure function ---------------------------------------------------------------------------
def test_interpolate_frames_matches_the_hand_written_interpolation():
    g = torch.Generator().manual_seed(0)
    idx = torch.tensor([[2, 5, 9, 10], [0, 1, 7, 11]])
    kept = torch.randn(2 * 3, 4, 5, generator=g)  # 3 joints per sample
    torch.testing.assert_close(interpolate_frames(kept, idx, 12), interpolate_by_hand(kept, idx, 12))
    exact = interpolate_frames(kept, idx, 12)
    for s in range(2):
        assert torch.equal(exact[3 * s:3 * s + 3, idx[s]], kept[3 * s:3 * s + 3])  # kept frames pass through
    with pytest.raises(ValueError, match="do not fit frame indices"):
        interpolate_frames(kept[:, :3], idx, 12)


# --- the wrapper -----------------------------------------------------------------------------------
def nearest_by_hand(kept_seqs, idx, frames):
    return nearest_fill(None, kept_seqs, idx, frames)


@pytest.mark.parametrize("mode, by_hand", [("interpolate", interpolate_by_hand), ("nearest", nearest_by_hand)])
def test_training_free_modes_match_hand_written_forward(mode, by_hand):
    model, x, _ = build("mixste")
    wrap_with_hot(model, prune_block=2, tokens=9, recover=mode)
    randomise_hot_parameters(model)  # pos_embed_token is still added to the kept frames
    with torch.no_grad():
        out = model(x)
        expected = reference_mixste(model, x, 2, 9, recover=lambda m, kept, idx, frames: by_hand(kept, idx, frames))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert set(k for k in model.state_dict() if k.split(".")[0] in ("x_token", "cross_attention")) == set()


@pytest.mark.parametrize("cls", [MixSTELike, MotionBERTLike])
@pytest.mark.parametrize("mode", ["interpolate", "tra+interpolate"])
def test_keeping_every_frame_with_interpolation_is_the_original_model(cls, mode):
    torch.manual_seed(0)
    model = cls().eval()
    x = structured_input(2, 3 if cls is MotionBERTLike else 2)
    with torch.no_grad():
        before = model(x)
        wrap_with_hot(model, prune_block=1, tokens=T, recover=mode)
        assert torch.equal(model(x), before)


def test_tra_plus_interpolate_starts_as_interpolate_and_then_learns():
    model, x, _ = build("mixste")
    interpolating = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, recover="interpolate")
    wrap_with_hot(model, prune_block=2, tokens=9)  # the default
    assert model.hot.recover == "tra+interpolate"
    with torch.no_grad():
        assert torch.equal(model(x), interpolating(x))
    # The correction's output projection starts at zero; one step moves it, and then every TRA
    # parameter gets a gradient.
    model.train()
    model(x).square().mean().backward()
    assert model.cross_attention.proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.cross_attention.proj.weight.normal_(std=0.1)
        model.x_token.normal_(std=0.1)
    model.zero_grad()
    model(x).square().mean().backward()
    for name in ("x_token", "cross_attention.linear_q.weight", "cross_attention.linear_k.weight",
                 "cross_attention.linear_v.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    with torch.no_grad():
        assert not torch.allclose(model.eval()(x), interpolating(x))


def test_tra_plus_interpolate_needs_zero_queries():
    model, _, _ = build("mixste")
    with pytest.raises(ValueError, match="must start at zeros"):
        wrap_with_hot(model, prune_block=2, tokens=9, recover="tra+interpolate", x_token_init="position")
    assert not is_hot(model)
    wrap_with_hot(model, prune_block=2, tokens=9, recover="tra", x_token_init="position")
    assert torch.equal(model.x_token, model.temporal_pos)


@pytest.mark.parametrize("bad", ["bogus", "TRA", None, 1, "interpolation"])
def test_bad_recover_values_are_rejected_and_leave_the_model_alone(bad):
    model, _, _ = build("mixste")
    with pytest.raises(ValueError, match=r"recover must be one of .*got"):
        wrap_with_hot(model, prune_block=2, tokens=9, recover=bad)
    assert not is_hot(model) and not hasattr(model, "pos_embed_token")


def test_recover_aliases():
    assert resolve_recover(True) == "tra" and resolve_recover(False) is None
    assert all(resolve_recover(mode) == mode for mode in RECOVERY_MODES)


# --- official TPC and official HoT checkpoints --------------------------------------------------
def test_official_tpc_checkpoint_loads_strictly_and_gives_the_same_centre_prediction():
    official, x, _ = build("mixste")
    state = copy.deepcopy(official.state_dict())  # official TPC-MixSTE keys are the plain model's
    model, _, _ = build("mixste", seed=5)
    wrap_with_hot(model, prune_block=2, tokens=9, recover=False)
    load_official_hot(model, {"model_pos": {"module." + k: v for k, v in state.items()}})
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = model(x)
        # The official TPC-MixSTE: centre frame forced in, no kept-frame embedding; its head reads
        # only the kept frames, whose tokens the nearest fill passes through unchanged.
        trace = {}
        expected = reference_two_stage(official, x, (2,), (9,), recover=nearest_fill, embeddings=(None,),
                                       select=lambda features, f: _dpc_with_centre(features, f, 13), trace=trace)
    idx = trace["indices"]
    assert torch.equal(model.hot.last_indices, idx) and (idx == model.hot.center).any(dim=1).all()
    for s in range(x.shape[0]):  # every kept frame's prediction is the official model's
        torch.testing.assert_close(out[s, idx[s]], expected[s, idx[s]], atol=1e-5, rtol=1e-5)


def test_official_checkpoints_need_the_matching_recovery():
    model, _, _ = build("mixste")
    hot_ckpt = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, recover="tra").state_dict()
    default = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9)
    with pytest.raises(ValueError, match="wrap with recover='tra'"):
        load_official_hot(default, hot_ckpt)
    tpc = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, recover=False)
    with pytest.raises(ValueError, match="seq2seq HoT checkpoint"):
        load_official_hot(tpc, hot_ckpt)
    with pytest.raises(ValueError, match="no HoT weights"):
        load_official_hot(default, model.state_dict())
    paper = wrap_with_hot(copy.deepcopy(model), prune_block=2, tokens=9, recover="tra")
    load_official_hot(paper, hot_ckpt)
