"""Contracts with no silent edges: every misuse either works or raises an error that names the argument."""
import threading
import warnings

import numpy as np
import pytest
import torch
from einops import rearrange

from hourglass_tokenizer import is_hot, unwrap_hot, wrap_with_hot
from stand_ins import MixSTELike, randomise_hot_parameters, seeded, walks

TRA = dict(prune_block=2, tokens=9, recover="tra")


def build():
    """The stand-in MixSTE, an input, and the wrap settings the tests use."""
    return seeded(MixSTELike), walks(3), TRA


def test_calling_forward_directly_warns_once_and_runs_the_plain_model():
    model, x, kwargs = build()
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
    model, x, kwargs = build()
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
    model, x, _ = build()
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
    positional, x, kwargs = build()
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


def test_names_that_match_nothing_and_heads_that_do_not_fit_are_errors():
    model, x, kwargs = build()
    with pytest.raises(ValueError, match=r"layouts: no block list or called module named \['spatial_block'\]"):
        wrap_with_hot(model, **kwargs, layouts={"spatial_block": "(b t) j c"})
    with pytest.raises(ValueError, match=r"recover_before='haed': the model has no module of that name; .*'head'"):
        wrap_with_hot(model, **kwargs, recover_before="haed")
    with pytest.raises(ValueError, match=r"blocks=\['spatial'\]: no module named"):
        wrap_with_hot(model, **kwargs, blocks=["spatial"])
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        wrap_with_hot(model, **kwargs, num_heads=3)
    assert not is_hot(model) and not hasattr(model, "pos_embed_token")


def test_concurrent_forwards_keep_their_own_frames():
    """The per-call scratch is thread-local: two threads with different batches never mix."""
    model, x, kwargs = build()
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


def test_bad_inputs_are_rejected_and_the_value_check_can_be_switched_off():
    model, x, kwargs = build()
    wrap_with_hot(model, **kwargs)
    bad = x.clone()
    bad[0, 3, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(bad)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, frames, joints, channels\)"):
        model(x[0])
    with pytest.raises(ValueError, match="wrapped for 27 frames"):
        model(x[:, :20])
    bad[0, 3, 2, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):  # on by default on the CPU
        model(bad)
    wrap_with_hot(unwrap_hot(model), **kwargs, check_inputs=False)
    model(bad)  # the user's choice: no check, no device sync


def test_bad_numbers_name_the_argument():
    model, _, _ = build()
    with pytest.raises(ValueError, match=r"tokens must be an int in 1..frames \(27\), got 28"):
        wrap_with_hot(model, prune_block=1, tokens=28)
    with pytest.raises(ValueError, match="tokens must be >= 1, got 0"):
        wrap_with_hot(model, prune_block=1, tokens=0)
    with pytest.raises(ValueError, match=r"prune_block must be an int in 1..3 .* got 4"):
        wrap_with_hot(model, prune_block=4, tokens=9)
    with pytest.raises(ValueError, match=r"prune_block must be >= 1 \(block 0 always sees every frame\), got 0"):
        wrap_with_hot(model, prune_block=0, tokens=9)
    with pytest.raises(ValueError, match="give both prune_block and tokens"):
        wrap_with_hot(model, prune_block=1)
    with pytest.raises(TypeError, match="prune_block must be an integer, got the bool True"):
        wrap_with_hot(model, prune_block=True, tokens=9)
    with pytest.raises(TypeError, match="tokens must be an integer, got float 9.0"):
        wrap_with_hot(model, prune_block=1, tokens=9.0)
    assert not is_hot(model)
    wrap_with_hot(model, prune_block=np.int64(1), tokens=np.int64(9))  # integer-like numbers are integers
    assert (model.hot.prune_block, model.hot.tokens) == (1, 9) and type(model.hot.tokens) is int
    with pytest.raises(TypeError, match="tokens must be an integer"):
        model.hot.tokens = "9"
