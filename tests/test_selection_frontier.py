"""The benchmark's selectors built for recovery by interpolation (``benchmarks/frontier_selectors.py``),
each against a slow frame-by-frame reference: the interpolation cost matrix, exact keyframes (with
and without the regular-spacing prior) and motion-spaced frames; their numbers in
``benchmarks/results/frontier_cmu.md`` are only as good as these."""
import itertools
import os
import sys

import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.core.selection import resolve_selector

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from frontier_selectors import (KeyframeSelector, MotionSpacedSelector, interpolation_costs,  # noqa: E402
                                keyframes, motion_spaced)


def walk(batch, frames, channels=3, seed=0):
    """A random walk whose speed changes over the window (so where frames are kept matters)."""
    g = torch.Generator().manual_seed(seed)
    speed = torch.rand(batch, frames, 1, generator=g) * 3
    return torch.cumsum(torch.randn(batch, frames, channels, generator=g) * speed, dim=1)


def segment_error(x, i, j):
    """Squared error of interpolating the frames strictly between i and j from those two, one by one."""
    total = 0.0
    for k in range(i + 1, j):
        a = (k - i) / (j - i)
        total += float(((x[k] - ((1 - a) * x[i] + a * x[j])) ** 2).sum())
    return total


def selection_error(x, kept):
    return sum(segment_error(x, a, b) for a, b in zip(kept, kept[1:]))


def keyframes_by_enumeration(x, f, spacing=0.0):
    """Every selection keeping both ends, scored by keyframes' documented objective; the first best."""
    t = x.shape[0]
    even = torch.linspace(0, t - 1, f).round().long().tolist()
    scale = max(selection_error(x, even), 1e-12)  # as keyframes: no division by zero when f == t
    best, best_score = None, None
    for middle in itertools.combinations(range(1, t - 1), f - 2):
        kept = (0,) + middle + (t - 1,)
        gaps = [b - a for a, b in zip(kept, kept[1:])]
        score = selection_error(x, kept) / scale + spacing * sum((g * (f - 1) / (t - 1)) ** 2 for g in gaps) / (f - 1)
        if best_score is None or score < best_score - 1e-9:
            best, best_score = list(kept), score
    return best


def motion_spaced_by_hand(x, f, mix):
    t = x.shape[0]
    travelled = [0.0]
    for k in range(1, t):
        travelled.append(travelled[-1] + float((x[k] - x[k - 1]).norm()))
    u = [(1 - mix) * k / (t - 1) + mix * (travelled[k] / travelled[-1] if travelled[-1] > 0 else k / (t - 1))
         for k in range(t)]
    picks, previous = [], -1
    for s in range(f):
        target = 0.5 if f == 1 else s / (f - 1)
        candidates = range(previous + 1, t - f + s + 1)
        previous = min(candidates, key=lambda k: (abs(u[k] - target), k))
        picks.append(previous)
    return picks


@pytest.mark.parametrize("frames", [2, 3, 9, 20])
def test_interpolation_costs_match_the_frame_by_frame_sums(frames):
    x = walk(2, frames, seed=frames)
    cost = interpolation_costs(x)
    assert cost.shape == (2, frames, frames) and cost.dtype == torch.float64
    for b in range(2):
        xb = x[b].double()
        for i in range(frames):
            for j in range(frames):
                expected = segment_error(xb, i, j) if j > i else 0.0
                assert cost[b, i, j].item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_interpolation_costs_vanish_on_straight_lines():
    t = torch.arange(12, dtype=torch.float64)
    line = (t[:, None] * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 3)[None]
    assert interpolation_costs(line).abs().max().item() < 1e-9


@pytest.mark.parametrize("frames, f", [(9, 2), (9, 4), (11, 5), (12, 3), (10, 10)])
def test_keyframes_find_the_exact_optimum(frames, f):
    x = walk(3, frames, seed=frames * f)
    got = keyframes(x, f)
    for b in range(3):
        assert got[b].tolist() == keyframes_by_enumeration(x[b].double(), f)


@pytest.mark.parametrize("spacing", [0.3, 2.0])
def test_keyframes_with_a_spacing_prior_minimise_the_documented_objective(spacing):
    x = walk(3, 11, seed=5)
    got = keyframes(x, 4, spacing=spacing)
    for b in range(3):
        assert got[b].tolist() == keyframes_by_enumeration(x[b].double(), 4, spacing)


def test_a_strong_spacing_prior_gives_evenly_spaced_frames_and_none_gives_a_better_fit():
    x = walk(4, 25, seed=3)
    assert torch.equal(keyframes(x, 5, spacing=1e6), torch.tensor([[0, 6, 12, 18, 24]]).expand(4, 5))
    free = keyframes(x, 5)
    for b in range(4):
        assert selection_error(x[b].double(), free[b].tolist()) <= selection_error(x[b].double(), [0, 6, 12, 18, 24])


def test_keyframes_edge_counts():
    x = walk(2, 7, seed=1)
    assert torch.equal(keyframes(x, 2), torch.tensor([[0, 6], [0, 6]]))
    assert torch.equal(keyframes(x, 7), torch.arange(7).expand(2, 7))
    spread = torch.cdist(x.double(), x.double()).pow(2).sum(-1)
    assert torch.equal(keyframes(x, 1)[:, 0], spread.argmin(-1))
    with pytest.raises(ValueError, match="cannot pick 8 of 7"):
        keyframes(x, 8)


@pytest.mark.parametrize("frames, f, mix", [(27, 9, 0.5), (27, 5, 1.0), (12, 12, 0.7), (20, 1, 0.5), (9, 2, 0.3)])
def test_motion_spaced_matches_the_frame_by_frame_definition(frames, f, mix):
    x = walk(3, frames, seed=frames + f)
    got = motion_spaced(x, f, mix=mix)
    for b in range(3):
        assert got[b].tolist() == motion_spaced_by_hand(x[b].double(), f, mix)


def test_motion_spaced_puts_more_frames_where_the_motion_is():
    x = torch.zeros(1, 30, 2)
    x[0, 20:, 0] = torch.arange(10.0)  # still for 20 frames, then moving
    fast = motion_spaced(x, 6, mix=1.0)[0]
    assert (fast >= 19).sum() >= 4  # evenly spaced in time would keep 2 of 6 there
    assert torch.equal(motion_spaced(x, 6, mix=0.0)[0], torch.tensor([0, 6, 12, 17, 23, 29]))
    # Nothing moves: time alone.
    assert torch.equal(motion_spaced(torch.zeros(2, 11, 3), 3, mix=1.0), torch.tensor([[0, 5, 10]] * 2))
    with pytest.raises(ValueError, match="0 <= mix <= 1"):
        motion_spaced(x, 3, mix=1.5)


@pytest.mark.parametrize("selector", [KeyframeSelector(), KeyframeSelector(spacing=1.0), MotionSpacedSelector()])
def test_new_selectors_give_sorted_unique_frames_and_wrap(selector, one_thread):
    from hourglass_tokenizer.models import build_model

    x = walk(5, 27, channels=16, seed=7)
    idx = selector(x, 9)
    assert idx.shape == (5, 9) and idx.dtype == torch.int64
    assert (idx.diff(dim=1) > 0).all() and idx.min() >= 0 and idx.max() < 27
    assert resolve_selector(selector) is selector
    model = wrap_with_hot(build_model("mixste", "small").eval(), prune_block=1, tokens=9, recover="interpolate",
                          selector=selector)
    out = model(torch.randn(2, 27, 17, 2))
    assert out.shape == (2, 27, 17, 3)
    assert model.hot.last_indices.shape == (2, 9)


def test_selector_objects_keep_their_settings_and_pickle():
    import pickle

    for selector in (KeyframeSelector(spacing=0.5), MotionSpacedSelector(mix=0.25)):
        again = pickle.loads(pickle.dumps(selector))
        assert repr(again) == repr(selector)
    x = walk(2, 15, seed=2)
    assert torch.equal(KeyframeSelector(spacing=0.5)(x, 4), keyframes(x, 4, spacing=0.5))
    assert torch.equal(MotionSpacedSelector(mix=0.25)(x, 4), motion_spaced(x, 4, mix=0.25))
