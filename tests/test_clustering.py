import math

import pytest
import torch

from hourglass_tokenizer.core.selection import RandomSelector, dpc_knn, resolve_selector, uniform


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
    state = torch.get_rng_state()
    features = torch.randn(2, 30, 4)
    state = torch.get_rng_state()
    dpc_knn(features, 10)
    RandomSelector(seed=3)(features, 10)
    assert torch.equal(state, torch.get_rng_state())


def test_random_selector_reproducible_and_varies_between_calls():
    features = torch.zeros(2, 30, 4)
    a, b = RandomSelector(seed=7), RandomSelector(seed=7)
    first = a(features, 10)
    assert torch.equal(first, b(features, 10))
    assert not torch.equal(first, a(features, 10))
    assert (first.diff(dim=-1) > 0).all()


def test_uniform_is_evenly_spaced():
    idx = uniform(torch.zeros(2, 9, 1), 5)
    assert idx.tolist() == [[0, 2, 4, 6, 8]] * 2
    assert not (uniform(torch.zeros(1, 9, 1), 4, exclude=4) == 4).any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="cannot pick 11 of 10"):
        dpc_knn(torch.randn(1, 10, 2), 11)
    with pytest.raises(ValueError, match="frames, channels"):
        dpc_knn(torch.randn(10, 2), 3)
    with pytest.raises(ValueError, match="unknown selector 'kmeans'"):
        resolve_selector("kmeans")
