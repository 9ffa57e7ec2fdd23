"""Frame selection: DPC-kNN against a slow float64 reference, the other selectors' ranges and
arguments, what a custom selector must return, and TPC-only's centre frame."""
import math

import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.core.recovery import interpolate_frames, nearest_kept_frames
from hourglass_tokenizer.core.selection import (CoverageSelector, DpcKnnSelector, RandomSelector, choose_frames,
                                                dpc_knn, dpc_knn_coverage, dpc_knn_scores, resolve_selector, uniform)
from stand_ins import J, T, MixSTELike, PoseFormerLike, seeded, walks


def slow_dpc_knn(features, f, k=2, exclude=None):
    """Float64 loop version of DPC-kNN with the documented tie rule (earlier frame is denser/wins)."""
    x = features.double()
    out = []
    for sample in x:
        t, c = sample.shape
        dist = [[math.sqrt(sum((sample[i, d] - sample[j, d]).item() ** 2 for d in range(c))) / math.sqrt(c)
                 for j in range(t)] for i in range(t)]
        density = [math.exp(-sum(v ** 2 for v in sorted(row)[:k]) / k) for row in dist]
        dist_max = max(max(row) for row in dist)
        score = []
        for i in range(t):
            denser = [dist[i][j] for j in range(t)
                      if density[j] > density[i] or (density[j] == density[i] and j < i)]
            score.append(density[i] * (min(denser) if denser else dist_max))
        frames = [i for i in range(t) if i != exclude]
        frames.sort(key=lambda i: (-score[i], i))
        out.append(sorted(frames[:f]))
    return torch.tensor(out)


def test_matches_slow_reference_on_random_features():
    features = torch.randn(3, 20, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(dpc_knn(features, 7), slow_dpc_knn(features, 7))
    assert torch.equal(dpc_knn(features, 6, k=3), slow_dpc_knn(features, 6, k=3))


def test_matches_slow_reference_on_tied_densities():
    # Frames in mutual-nearest pairs: with k=2 both frames of a pair get exactly the same density.
    base = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(2)) * 5
    features = base.repeat_interleave(2, dim=1) + torch.tensor([0.0, 0.1]).repeat(8)[None, :, None]
    assert torch.equal(dpc_knn(features, 8), slow_dpc_knn(features, 8))
    # Exact duplicates everywhere: still deterministic and unique.
    dup = base.repeat_interleave(3, dim=1)
    assert torch.equal(dpc_knn(dup, 5), slow_dpc_knn(dup, 5))
    assert torch.equal(dpc_knn(dup, 5), dpc_knn(dup, 5))


def test_exclude_is_never_chosen_and_matches_reference():
    features = torch.randn(2, 15, 3, generator=torch.Generator().manual_seed(3))
    idx = dpc_knn(features, 14, exclude=7)
    assert not (idx == 7).any()
    assert torch.equal(idx, slow_dpc_knn(features, 14, exclude=7))


def test_one_centre_per_well_separated_cluster():
    g = torch.Generator().manual_seed(4)
    centres = torch.randn(5, 8, generator=g) * 50
    sizes = [6, 3, 9, 4, 5]
    features = torch.cat([centres[i] + 0.1 * torch.randn(n, 8, generator=g) for i, n in enumerate(sizes)])
    labels = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    perm = torch.randperm(len(labels), generator=g)
    idx = dpc_knn(features[perm][None], 5)[0]
    assert sorted(labels[perm][idx].tolist()) == [0, 1, 2, 3, 4]


def test_per_sample_selection_sorted_unique_in_range():
    g = torch.Generator().manual_seed(5)
    walk = torch.cumsum(torch.randn(4, 40, 6, generator=g), dim=1)
    walk[1, 10:30] = walk[1, 10]  # a pause: many identical frames
    idx = dpc_knn(walk, 9)
    assert idx.shape == (4, 9) and idx.dtype == torch.long
    assert (idx.diff(dim=-1) > 0).all()
    assert idx.min() >= 0 and idx.max() < 40
    for b in range(4):
        assert torch.equal(idx[b], dpc_knn(walk[b:b + 1], 9)[0])
    assert len({tuple(row.tolist()) for row in idx}) > 1


def test_global_rng_untouched():
    features = torch.randn(2, 30, 4)
    state = torch.get_rng_state()
    dpc_knn(features, 10)
    RandomSelector(seed=3)(features, 10)
    assert torch.equal(state, torch.get_rng_state())


def features(b=2, t=24, c=8, seed=0):
    return torch.randn(b, t, c, generator=torch.Generator().manual_seed(seed))


def test_dpc_knn_range_of_f_and_exclusion():
    x = features()
    best = dpc_knn_scores(x).argmax(dim=-1)
    assert dpc_knn(x, 1).tolist() == [[int(best[0])], [int(best[1])]]
    assert dpc_knn(x, 23, exclude=2).tolist() == [[i for i in range(24) if i != 2]] * 2
    with pytest.raises(ValueError, match="cannot pick 25 of 24"):
        dpc_knn(x, 25)
    with pytest.raises(ValueError, match="cannot pick 24 of 23 selectable frames"):
        dpc_knn(x, 24, exclude=2)
    for on_one_sample in (lambda: dpc_knn(x[0], 3), lambda: dpc_knn_scores(x[0])):
        with pytest.raises(ValueError, match=r"expects features of shape \(batch, frames, channels\), got \(24, 8\)"):
            on_one_sample()
    with pytest.raises(ValueError, match=r"needs 1 <= k <= frames \(24\), got k=0"):
        dpc_knn_scores(x, k=0)
    assert dpc_knn_scores(x, k=1).shape == dpc_knn_scores(x, k=24).shape == (2, 24)


def test_selectors_use_their_k():
    x = features(seed=3)
    assert not torch.equal(dpc_knn(x, 6, k=2), dpc_knn(x, 6, k=5))  # k matters on this input
    assert torch.equal(DpcKnnSelector(k=5)(x, 6), dpc_knn(x, 6, k=5))
    assert not torch.equal(dpc_knn_coverage(x, 6, k=2), dpc_knn_coverage(x, 6, k=5))
    assert torch.equal(CoverageSelector(k=5)(x, 6), dpc_knn_coverage(x, 6, k=5))


def test_uniform_is_evenly_spaced_over_its_range():
    assert uniform(torch.zeros(2, 9, 1), 5).tolist() == [[0, 2, 4, 6, 8]] * 2
    assert not (uniform(torch.zeros(1, 9, 1), 4, exclude=4) == 4).any()
    x = features()
    assert uniform(x, 1).tolist() == [[0], [0]]
    assert uniform(x, 24).tolist() == [list(range(24))] * 2
    assert uniform(x, 23, exclude=0).tolist() == [list(range(1, 24))] * 2
    with pytest.raises(ValueError, match="uniform cannot pick 24 of 23 selectable frames"):
        uniform(x, 24, exclude=0)


def test_random_selector_reproducible_and_varies_between_calls():
    x = torch.zeros(2, 30, 4)
    a, b = RandomSelector(seed=7), RandomSelector(seed=7)
    first = a(x, 10)
    assert torch.equal(first, b(x, 10))
    assert not torch.equal(first, a(x, 10))
    assert (first.diff(dim=-1) > 0).all()


def test_random_selector_per_sample_range_and_exclusion():
    x = features(b=4, t=20)
    selector = RandomSelector(seed=5)
    assert selector.seed == 5 and repr(selector) == "RandomSelector(seed=5)"
    picks = selector(x, 3)
    assert len({tuple(row) for row in picks.tolist()}) > 1  # every sample draws its own frames
    assert selector(x, 1).shape == (4, 1) and selector(x, 20).tolist() == [list(range(20))] * 4
    assert not (selector(x, 19, exclude=3) == 3).any()
    with pytest.raises(ValueError, match="random cannot pick 20 of 19 selectable frames"):
        selector(x, 20, exclude=3)
    one = features(b=1, t=20)
    assert RandomSelector()(one, 20).tolist() == [list(range(20))]
    with pytest.raises(ValueError, match="random cannot pick 21 of 20 selectable frames"):
        RandomSelector()(one, 21)


def test_documented_defaults():
    assert DpcKnnSelector().k == CoverageSelector().k == resolve_selector("dpc_knn").k == 2  # the paper's k
    assert resolve_selector("dpc_knn_coverage").k == 2
    assert RandomSelector().seed == resolve_selector("random").seed == 0
    assert resolve_selector("dpc_knn", k=4).k == 4 and resolve_selector("random", seed=3).seed == 3
    with pytest.raises(ValueError, match=r"unknown selector 'bogus': expected one of \('dpc_knn', .*\) or a "
                                         r"callable \(frame_features \(b, t, c\), f\) -> indices \(b, f\)"):
        resolve_selector("bogus")


def first_frames(features, f):
    """A custom selector without ``exclude=``: the first ``f`` frames, never the centre for f <= 13."""
    return torch.arange(f).expand(features.shape[0], f)


def test_selection_and_recovery_stay_on_the_features_device():
    """Every tensor the selectors and the recovery make is created on the input's device. The
    "meta" device (shapes without data) checks that without a GPU: a tensor made on the CPU
    instead cannot be combined with meta tensors."""
    x = torch.randn(2, 24, 8, device="meta")
    idx = torch.zeros(2, 6, dtype=torch.long, device="meta")
    results = [dpc_knn(x, 6), dpc_knn(x, 6, exclude=3), dpc_knn_coverage(x, 6), uniform(x, 6),
               dpc_knn(x, 1), choose_frames(DpcKnnSelector(), x, 6, keep=11),
               choose_frames(CoverageSelector(), x, 6, keep=11), choose_frames(uniform, x, 6),
               choose_frames(first_frames, x, 6, keep=11),
               interpolate_frames(torch.randn(2, 6, 8, device="meta"), idx, 24), nearest_kept_frames(idx, 24)]
    assert all(r.device.type == "meta" for r in results)
    assert [tuple(r.shape) for r in results[:9]] == [(2, 6)] * 4 + [(2, 1)] + [(2, 6)] * 4


# --- custom selectors, and TPC only's centre frame, through the wrapper -------------------------------
class NamelessSelector:
    def __init__(self, result):
        self.result = result

    def __call__(self, features, f):
        return self.result

    def __repr__(self):
        return "NamelessSelector()"


@pytest.mark.parametrize("result, error, message", [
    ([[0, 1, 2]], TypeError, "selector {name} must return a tensor of frame indices of shape (2, 3), got list"),
    (None, TypeError, "selector {name} must return a tensor of frame indices of shape (2, 3), got NoneType"),
    (torch.tensor([[0.0, 1.0, 2.0]] * 2), TypeError, "selector {name} must return integer frame indices, got dtype torch.float32"),
    (torch.tensor([[True, False, True]] * 2), TypeError, "must return integer frame indices, got dtype torch.bool"),
    (torch.tensor([[0, 1, 2]]), ValueError, "selector {name} must return indices of shape (2, 3) (batch, tokens), got (1, 3)"),
    (torch.tensor([[-1, 1, 2], [0, 1, 2]]), ValueError, "selector {name} returned frame indices outside 0..26: min -1, max 2"),
    (torch.tensor([[0, 1, 27], [0, 1, 2]]), ValueError, "returned frame indices outside 0..26: min 0, max 27"),
    (torch.tensor([[5, 1, 5], [0, 1, 2]]), ValueError,
     "selector {name} returned a frame twice in one sample; the 3 indices of a sample must be unique"),
])
@pytest.mark.parametrize("named", [True, False])
def test_a_custom_selectors_mistake_is_named(result, error, message, named):
    model = wrap_with_hot(MixSTELike().eval(), prune_block=1, tokens=3, recover="interpolate")
    if named:
        def my_selector(features, f):
            return result
        model.hot.selector, name = my_selector, "my_selector"
    else:
        model.hot.selector, name = NamelessSelector(result), "NamelessSelector()"
    with pytest.raises(error) as caught, torch.no_grad():
        model(torch.randn(2, T, J, 2))
    assert message.format(name=name) in str(caught.value)


def test_custom_selectors_may_return_any_integer_dtype():
    model = wrap_with_hot(MixSTELike().eval(), prune_block=1, tokens=3, recover="interpolate")
    model.hot.selector = lambda features, f: torch.tensor([[1, 8, 20]] * features.shape[0], dtype=torch.int32)
    with torch.no_grad():
        model(torch.randn(2, T, J, 2))
    assert model.hot.last_indices.dtype == torch.int64 and model.hot.last_indices.tolist() == [[1, 8, 20]] * 2


@pytest.mark.parametrize("cls, tokens", [(PoseFormerLike, 1), (PoseFormerLike, 2), (MixSTELike, 5)])
def test_tpc_only_always_keeps_the_centre_frame(cls, tokens):
    model = wrap_with_hot(seeded(cls), prune_block=1, tokens=tokens, recover=False)
    assert model.hot.center == 13
    with torch.no_grad():
        model(walks(3))
    idx = model.hot.last_indices
    assert idx.shape == (3, tokens) and (idx == 13).any(dim=1).all()


def test_tpc_only_forces_the_centre_into_a_custom_selection():
    x = walks(2)
    model = wrap_with_hot(seeded(PoseFormerLike), prune_block=1, tokens=9, recover=False, selector=first_frames)
    with torch.no_grad():
        model(x)
    # The kept frame nearest the centre (8) gives way to the centre (13); the others stay.
    assert model.hot.last_indices.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 13]] * 2
    model.hot.selector = lambda features, f: torch.arange(10, 10 + f).expand(features.shape[0], f)
    with torch.no_grad():  # already holds the centre: unchanged
        model(x)
    assert model.hot.last_indices.tolist() == [list(range(10, 19))] * 2


@pytest.mark.parametrize("ties", [False, True])
def test_the_exporters_ranking_keeps_the_frames_the_stable_sort_keeps(monkeypatch, ties):
    """Exporting swaps the stable sort for an O(t^2) ranking: on scores with and without ties (and
    -inf for excluded frames) both keep the same frames, the earlier frame winning a tie."""
    from hourglass_tokenizer.core import selection

    g = torch.Generator().manual_seed(3)
    score = torch.randint(0, 4, (5, 12), generator=g).float() if ties else torch.randn(5, 12, generator=g)
    score[:, 2] = -math.inf
    by_sort = [selection._top_scores(score, f) for f in range(1, 12)]
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    by_ranking = [selection._top_scores(score, f) for f in range(1, 12)]
    for f, (a, b) in enumerate(zip(by_sort, by_ranking), start=1):
        expected = torch.stack([torch.tensor(sorted(sorted(range(12), key=lambda i: (-row[i].item(), i))[:f]))
                                for row in score])
        assert torch.equal(a, expected) and torch.equal(b, expected), f


def test_the_exporters_distances_give_dpc_knn_the_same_scores(monkeypatch):
    """Exporting computes DPC-kNN's exact distances with plain ops instead of ``cdist``."""
    from hourglass_tokenizer.core import selection

    features = torch.randn(3, 20, 8, generator=torch.Generator().manual_seed(4))
    plain = selection.dpc_knn_scores(features, k=3)
    chosen = selection.dpc_knn(features, 7)
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    torch.testing.assert_close(selection.dpc_knn_scores(features, k=3), plain, rtol=1e-6, atol=1e-7)
    assert torch.equal(selection.dpc_knn(features, 7), chosen)
