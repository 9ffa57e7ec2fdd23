"""Token layout patterns: which are accepted, how they are normalised, and their shape errors."""
import pytest
import torch

from hourglass_tokenizer.core.layouts import TokenLayout


RULES = "(the channel axis 'c' must be the last axis|expected axes b, t, optional j, and c)"


@pytest.mark.parametrize("pattern, message", [(p, f"layout '{p}': {RULES}") for p in
                                              ("b t j", "c b t", "b t x c", "b b t c", "t j c", "b j c")]
                         + [("", "layout"), ("(b t c)", "layout")])
def test_layout_patterns_that_are_rejected(pattern, message):
    with pytest.raises(ValueError, match=message):
        TokenLayout(pattern)


def test_layout_patterns_are_normalised_and_compared():
    assert TokenLayout(" ( b  t )  j c ").pattern == "(b t) j c"
    assert TokenLayout("b (t j) c").pattern == "b (t j) c"
    merged = TokenLayout("b t (j c)")  # one token per frame: read as b t c
    assert merged.pattern == "b t c" and merged.axes == ("b", "t", "c") and merged == TokenLayout("b t c")
    assert TokenLayout("b t c") != "b t c"
    assert TokenLayout("(b t) j c") != TokenLayout("(b j) t c")
    assert TokenLayout("(b t) j c") == TokenLayout("(b  t) j   c")


def test_layout_shape_errors_and_dtype_promotion():
    layout = TokenLayout("(b t) j c")
    with pytest.raises(ValueError, match=r"tokens of shape \(5, 3, 4\) do not fit layout '\(b t\) j c' "
                                         r"with b=2, t=3, j=3 \(expected \(6, 3, 4\)\)"):
        layout.frame_index(torch.zeros(2, 1, dtype=torch.long), 2, 3, 3).take(torch.zeros(5, 3, 4))
    index = layout.frame_index(torch.tensor([[0, 2], [1, 2]]), 2, 3, 3)
    full = torch.zeros(2 * 3, 3, 4)
    with pytest.raises(ValueError, match=r"expected \(4, 3, 4\)"):
        index.put(full, torch.ones(2 * 3, 3, 4))  # the kept tokens must hold the kept frames only
    out = index.put(full, torch.ones(2 * 2, 3, 4, dtype=torch.bfloat16))
    assert out.dtype == torch.float32
    assert out.reshape(2, 3, 3, 4)[:, :, 0, 0].tolist() == [[1, 0, 1], [0, 1, 1]]


def _by_hand(layout, x, idx, b, t, j):
    """The kept tokens one by one: token (sample s, rank r, joint q) of the kept tensor is token
    (s, idx[s, r], q) of ``x``, each placed by the layout's own arithmetic."""
    f = idx.shape[1]
    sizes_full, sizes_kept = {"b": b, "t": t, "j": j}, {"b": b, "t": f, "j": j}
    out = torch.empty(layout.shape(b, f, j, x.shape[-1]))

    def position(sizes, coords):
        return tuple(sum(coords[n] * _stride(group, n, sizes) for n in group) for group in layout.groups[:-1])

    for s_ in range(b):
        for r in range(f):
            for q in range(j if layout.has_joints else 1):
                out[position(sizes_kept, {"b": s_, "t": r, "j": q})] = x[position(sizes_full, {"b": s_, "t": int(idx[s_, r]), "j": q})]
    return out


def _stride(group, name, sizes):
    """Row-major stride of axis ``name`` inside a grouped axis such as ``(b j)``."""
    later = group[group.index(name) + 1:]
    stride = 1
    for other in later:
        stride *= sizes[other]
    return stride


@pytest.mark.parametrize("pattern", ["(b t) j c", "(b j) t c", "b t c", "b (t j) c", "b t j c", "b j t c"])
@pytest.mark.parametrize("batch", [1, 3])
def test_frame_index_takes_and_puts_the_kept_frames_token_by_token(pattern, batch):
    layout, t, j, c = TokenLayout(pattern), 7, 4, 5
    g = torch.Generator().manual_seed(batch)
    x = torch.randn(layout.shape(batch, t, j, c), generator=g)
    idx = torch.stack([torch.randperm(t, generator=g)[:3].sort().values for _ in range(batch)])
    if batch == 3:
        idx[0] = torch.tensor([0, 1, 2])  # samples keep different frames
    index = layout.frame_index(idx, batch, t, j)
    assert (index.advanced is None) == (batch == 1 or pattern == "(b t) j c")  # one axis where it can
    kept = index.take(x)
    assert torch.equal(kept, _by_hand(layout, x, idx, batch, t, j))
    fresh = torch.randn(kept.shape, generator=g)
    written = index.put(x, fresh)
    assert torch.equal(index.take(written), fresh)
    untouched = torch.ones(layout.shape(batch, t, j, 1), dtype=torch.bool)
    untouched = index.put(untouched, torch.zeros(kept.shape[:-1] + (1,), dtype=torch.bool))
    assert torch.equal(written[untouched.expand_as(x)], x[untouched.expand_as(x)])  # the pruned frames stay
    assert int((~untouched).sum()) == batch * 3 * (j if layout.has_joints else 1)