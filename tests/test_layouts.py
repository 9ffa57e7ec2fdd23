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
        layout.gather(torch.zeros(5, 3, 4), torch.zeros(2, 1, dtype=torch.long), 2, 3, 3)
    full = torch.zeros(2 * 3, 3, 4)
    kept = torch.ones(2 * 2, 3, 4, dtype=torch.bfloat16)
    out = layout.scatter(full, kept, torch.tensor([[0, 2], [1, 2]]), 2, 3, 3)
    assert out.dtype == torch.float32
    assert out.reshape(2, 3, 3, 4)[:, :, 0, 0].tolist() == [[1, 0, 1], [0, 1, 1]]
