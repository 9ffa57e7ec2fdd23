"""Contracts with no silent edges: every misuse either works or raises an error that names the argument."""
import threading
import warnings

import pytest
import torch
from einops import rearrange
from torch import nn

from hourglass_tokenizer import is_hot, unwrap_hot, wrap_with_hot
from stand_ins import MixSTELike
from test_wrapping import T, build, randomise_hot_parameters


def test_calling_forward_directly_warns_once_and_runs_the_plain_model():
    model, x, kwargs = build("mixste")
    with torch.no_grad():
        plain = model(x)
        wrap_with_hot(model, **kwargs)
        hot = model(x)
        with pytest.warns(UserWarning, match=r"HoT is skipped: .*model.forward\(x\)"):
            direct = model.forward(x)
        assert torch.equal(direct, plain) and not torch.equal(hot, plain)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per model, not once per block or per call
            model.forward(x)
        assert torch.equal(model(x), hot)  # and the next proper call prunes again


def test_a_failed_rewrap_leaves_the_previous_wrap_working():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    randomise_hot_parameters(model)
    with torch.no_grad():
        before = model(x)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    for bad, error in ((dict(prune_block=1), ValueError),                 # caught before the probe
                       (dict(prune_block=9, tokens=5), ValueError),       # caught after the probe
                       (dict(prune_block=1, tokens=5, num_heads=3), ValueError),
                       (dict(prune_block=1, tokens=5, layouts={"nope": "b t c"}), ValueError)):
        with pytest.raises(error):
            wrap_with_hot(model, **bad)
        assert is_hot(model) and model.hot.prune_block == kwargs["prune_block"]
        with torch.no_grad():
            assert torch.equal(model(x), before)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_arguments_are_checked_before_the_probe_forward():
    model, x, _ = build("mixste")
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    for bad in (dict(prune_block=1, tokens=5, recover="bogus"), dict(prune_block=True, tokens=5),
                dict(prune_block=1, tokens=0), dict(prune_block=1, tokens=5, x_token_init="ones"),
                dict(prune_block=1, tokens=5, blocks="spatial_blocks")):
        with pytest.raises((ValueError, TypeError)):
            wrap_with_hot(model, **bad)
    assert calls == [] and not is_hot(model)


class KeywordTokens(MixSTELike):
    """Passes the tokens to its blocks and head by keyword (``blk(x=h)``)."""

    def forward(self, x):
        b, f, n, _ = x.shape
        x = self.embed(rearrange(x, "b f n c -> (b f) n c")) + self.spatial_pos
        for i in range(len(self.spatial_blocks)):
            x = self.spatial_norm(self.spatial_blocks[i](x=x))
            x = rearrange(x, "(b f) n c -> (b n) f c", f=f)
            if i == 0:
                x = x + self.temporal_pos
            x = self.temporal_norm(self.temporal_blocks[i](x=x))
            x = rearrange(x, "(b n) f c -> (b f) n c", n=n)
        return self.head(input=rearrange(x, "(b f) n c -> b f n c", f=f))


def test_tokens_passed_by_keyword_are_pruned_like_positional_ones():
    positional, x, kwargs = build("mixste")
    keyword = KeywordTokens()
    keyword.load_state_dict(positional.state_dict())
    keyword.eval()
    for model in (positional, keyword):
        wrap_with_hot(model, **kwargs)
    keyword.load_state_dict(positional.state_dict())
    randomise_hot_parameters(positional)
    randomise_hot_parameters(keyword)
    with torch.no_grad():
        torch.testing.assert_close(keyword(x), positional(x), atol=1e-6, rtol=1e-6)
    assert torch.equal(keyword.hot.last_indices, positional.hot.last_indices)


def test_names_that_match_nothing_are_errors():
    model, x, kwargs = build("mixste")
    with pytest.raises(ValueError, match=r"layouts: no block list or called module named \['spatial_block'\]"):
        wrap_with_hot(model, **kwargs, layouts={"spatial_block": "(b t) j c"})
    with pytest.raises(ValueError, match=r"recover_before='haed': the model has no module of that name; .*'head'"):
        wrap_with_hot(model, **kwargs, recover_before="haed")
    with pytest.raises(ValueError, match=r"blocks=\['spatial'\]: no module named"):
        wrap_with_hot(model, **kwargs, blocks=["spatial"])
    assert not is_hot(model)


@pytest.mark.parametrize("returned, error, message", [
    (lambda f, b: torch.arange(f).expand(b, f) + 20, ValueError, r"outside 0..26: min 20, max 28"),
    (lambda f, b: torch.zeros(b, f, dtype=torch.long), ValueError, "returned a frame twice"),
    (lambda f, b: torch.arange(f).expand(b, f).float(), TypeError, "integer frame indices, got dtype torch.float32"),
    (lambda f, b: [list(range(f))] * b, TypeError, "must return a tensor .* got list"),
    (lambda f, b: None, TypeError, "must return a tensor .* got NoneType"),
    (lambda f, b: torch.arange(f - 1).expand(b, f - 1), ValueError, r"shape \(3, 9\) \(batch, tokens\), got \(3, 8\)"),
])
def test_bad_custom_selections_say_which_rule_they_break(returned, error, message):
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs, selector=lambda features, f: returned(f, features.shape[0]))
    with pytest.raises(error, match=message):
        model(x)


def test_seed_changes_restart_the_random_selection():
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs, selector="random", seed=0)
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


def test_concurrent_forwards_keep_their_own_frames():
    """The per-call scratch is thread-local: two threads with different batches never mix."""
    model, x, kwargs = build("mixste")
    wrap_with_hot(model, **kwargs)
    inputs = [x, x[:2].flip(1), x[1:] * 2]
    with torch.no_grad():
        expected = [model(i) for i in inputs]
    results, errors = {}, []

    def run(k):
        try:
            with torch.no_grad():
                for _ in range(20):
                    out = model(inputs[k])
                    if not torch.equal(out, expected[k]):
                        results[k] = "mismatch"
                        return
            results[k] = "ok"
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == {0: "ok", 1: "ok", 2: "ok"}


def test_input_check_can_be_switched_off_and_is_on_by_default_on_the_cpu():
    model, x, kwargs = build("mixste")
    bad = x.clone()
    bad[0, 0, 0, 0] = float("inf")
    wrap_with_hot(model, **kwargs)
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(bad)
    wrap_with_hot(unwrap_hot(model), **kwargs, check_inputs=False)
    model(bad)  # the user's choice: no check, no device sync
