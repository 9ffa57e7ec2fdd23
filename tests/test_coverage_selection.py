"""DPC-kNN with coverage: density peaks per time stratum, window ends always kept, bounded gaps."""
import math

import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.core.selection import dpc_knn, dpc_knn_coverage, dpc_knn_scores, resolve_selector
from stand_ins import MixSTELike, seeded, walks


def coverage_by_hand(features, f, k=2):
    """Frame by frame: split the window into f strata, keep each stratum's best DPC score."""
    scores = dpc_knn_scores(features, k=k)
    b, t = scores.shape
    out = []
    for s in range(b):
        picks = []
        for stratum in range(f):
            frames = [i for i in range(t) if i * f // t == stratum]
            if f > 1 and 0 in frames:
                picks.append(0)
            elif f > 1 and t - 1 in frames:
                picks.append(t - 1)
            else:
                best = max(frames, key=lambda i: (scores[s, i].item(), -i))
                picks.append(best)
        out.append(picks)
    return torch.tensor(out)


def paused_walk(batch, frames, seed):
    """A random walk that stands still for most of the window: DPC-kNN's peaks crowd into the moves."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(batch, frames, 8, generator=g)
    steps[:, : frames * 2 // 3] *= 0.01
    return torch.cumsum(steps, dim=1)


@pytest.mark.parametrize("frames, f, k", [(27, 9, 2), (27, 5, 2), (81, 27, 2), (10, 10, 2), (12, 2, 2), (12, 1, 2),
                                         (24, 6, 5)])
def test_matches_the_frame_by_frame_definition(frames, f, k):
    x = paused_walk(3, frames, seed=frames + f)
    assert torch.equal(dpc_knn_coverage(x, f, k=k), coverage_by_hand(x, f, k=k))


@pytest.mark.parametrize("frames, f", [(27, 9), (81, 27), (243, 81), (30, 4)])
def test_keeps_the_ends_and_bounds_every_gap(frames, f):
    x = paused_walk(4, frames, seed=1)
    idx = dpc_knn_coverage(x, f)
    assert idx.shape == (4, f)
    assert (idx[:, 0] == 0).all() and (idx[:, -1] == frames - 1).all()
    assert (idx.diff(dim=1) > 0).all()
    assert idx.diff(dim=1).max() < 2 * math.ceil(frames / f)
    # Plain DPC-kNN on the same input leaves a longer gap somewhere: that is what coverage is for.
    assert dpc_knn(x, f).diff(dim=1).max() > idx.diff(dim=1).max()


def test_rejects_impossible_counts_and_is_a_named_selector():
    x = paused_walk(1, 9, seed=0)
    with pytest.raises(ValueError, match="cannot pick 10 of 9"):
        dpc_knn_coverage(x, 10)
    assert repr(resolve_selector("dpc_knn_coverage", k=3)) == "CoverageSelector(k=3)"
    model = wrap_with_hot(seeded(MixSTELike), prune_block=2, tokens=9, selector="dpc_knn_coverage")
    model(walks(3))
    assert (model.hot.last_indices[:, 0] == 0).all() and (model.hot.last_indices[:, -1] == 26).all()
