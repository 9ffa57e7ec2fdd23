"""Frame-indexed layers inside the pruned blocks (MotionAGFormer's temporal ``BatchNorm1d(T)``): each
becomes a rank-indexed layer of size ``tokens`` at the same name, and ``unwrap_hot`` puts the
originals back. Checked against the hand-written reference of ``tests/stand_ins.py``."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hourglass_tokenizer import is_hot, unwrap_hot, wrap_with_hot
from stand_ins import (HOT_ROOTS, J, T, MotionAGFormerLike, assert_every_parameter_trains, assert_unwraps_exactly,
                       randomise_hot_parameters, reference_motionagformer, seeded, snapshot, walks)


def test_motionagformer_like_matches_reference_with_rank_indexed_norms():
    model = seeded(MotionAGFormerLike)
    x = walks(3, channels=3)
    before = snapshot(model, x)
    originals = [layer.mixer.batch_norm for layer in model.layers]
    wrap_with_hot(model, prune_block=2, tokens=9, recover="tra", input_shape=(T, J, 3), selector="dpc_knn")
    randomise_hot_parameters(model)
    norms = [layer.mixer.batch_norm for layer in model.layers]
    assert [n.num_features for n in norms] == [T, T, 9, 9]
    assert norms[:2] == originals[:2] and all(n is not o for n, o in zip(norms[2:], originals[2:]))
    # Initialised from the originals: the mean over frames of every per-frame tensor.
    for new, old in zip(norms[2:], originals[2:]):
        for name in ("weight", "bias", "running_mean", "running_var"):
            torch.testing.assert_close(getattr(new, name), getattr(old, name).mean().expand(9))
        assert not new.training and new.weight.dtype == old.weight.dtype
    keys = set(model.state_dict())
    assert {k for k in keys if k.split(".")[0] not in HOT_ROOTS} == set(before[0])  # same names, resized norms
    with torch.no_grad():  # trained-looking rank statistics, so a wrong rank would show
        for n in norms[2:]:
            n.running_mean.normal_(0, 0.5)
            n.weight.uniform_(0.5, 1.5)
        trace = {}
        expected = reference_motionagformer(model, x, 2, 9, trace=trace)
        out = model(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.hot.last_indices, trace["indices"])
    # Recognised by structure (one b t j c list with frame-indexed norms), so TRA has no q/k/v bias as upstream.
    assert model.hot.family == "motionagformer" and model.cross_attention.linear_k.bias is None
    assert_every_parameter_trains(model, x)
    model.eval()
    assert_unwraps_exactly(model, x, before)
    assert [layer.mixer.batch_norm for layer in model.layers] == originals


def test_changing_tokens_or_prune_block_resizes_the_norms_and_unwrap_restores_them():
    model = seeded(MotionAGFormerLike)
    x = walks(2, channels=3)
    originals = [layer.mixer.batch_norm for layer in model.layers]
    wrap_with_hot(model, prune_block=2, tokens=9, recover="nearest", input_shape=(T, J, 3), selector="dpc_knn")
    swapped = model.layers[3].mixer.batch_norm
    with pytest.warns(UserWarning):
        model.hot.tokens = 5
    assert [layer.mixer.batch_norm.num_features for layer in model.layers] == [T, T, 5, 5]
    model.hot.prune_block = 1
    assert [layer.mixer.batch_norm.num_features for layer in model.layers] == [T, 5, 5, 5]
    assert model.layers[0].mixer.batch_norm is originals[0]
    with torch.no_grad():
        assert model(x).shape == (2, T, J, 3)
    with pytest.warns(UserWarning):
        model.hot.tokens = 9
    model.hot.prune_block = 2
    assert model.layers[3].mixer.batch_norm is swapped  # the same rank-indexed object comes back
    # A failed re-wrap leaves the wrap as it was, swapped layers included.
    with pytest.raises(ValueError, match="tokens must be an int in 1..frames"):
        wrap_with_hot(model, prune_block=2, tokens=99, recover="nearest", selector="dpc_knn")
    assert model.layers[3].mixer.batch_norm is swapped and model.hot.tokens == 9
    unwrap_hot(model)
    assert [layer.mixer.batch_norm for layer in model.layers] == originals


def test_frame_sized_linear_in_a_pruned_block_is_an_error_and_ambiguous_sizes_ask():
    class FrameMixer(nn.Module):  # an MLP-Mixer-style token mixing Linear over the T frames
        def __init__(self, frames, dim):
            super().__init__()
            self.norm = nn.LayerNorm(dim)
            self.mix = nn.Linear(frames, frames)

        def forward(self, x):  # (b, t, c)
            return x + self.mix(self.norm(x).transpose(1, 2)).transpose(1, 2)

    class MixerVPT(nn.Module):
        def __init__(self, frames=T, dim=16):
            super().__init__()
            self.embed = nn.Linear(J * 2, dim)
            self.blocks = nn.ModuleList(FrameMixer(frames, dim) for _ in range(3))
            self.head = nn.Linear(dim, J * 3)

        def forward(self, x):
            b, t = x.shape[:2]
            h = self.embed(x.reshape(b, t, -1))
            for blk in self.blocks:
                h = blk(h)
            return self.head(h).reshape(b, t, J, 3)

    model = MixerVPT()
    with pytest.raises(ValueError, match=r"blocks.1.mix \(Linear over 27 features\) inside a pruned block mixes "
                                         r"a fixed number of frames"):
        wrap_with_hot(model, prune_block=1, tokens=9, input_shape=(T, J, 2), selector="dpc_knn")
    assert not is_hot(model)
    # T equal to the token width: a BatchNorm1d(T) could be per channel; the user must say.
    amb = MotionAGFormerLike(frames=16, dim=16).eval()
    with pytest.raises(ValueError, match=r"frames \(16\) equal the token width.*frame_layers="):
        wrap_with_hot(amb, prune_block=2, tokens=5, recover="nearest", input_shape=(16, J, 3), selector="dpc_knn")
    wrap_with_hot(amb, prune_block=2, tokens=5, recover="nearest", input_shape=(16, J, 3),
                  frame_layers=["mixer.batch_norm"], selector="dpc_knn")
    assert amb.layers[2].mixer.batch_norm.num_features == 5
    with pytest.raises(ValueError, match="frame_layers: no module .* matches \\['nope'\\]"):
        wrap_with_hot(amb, prune_block=2, tokens=5, recover="nearest", frame_layers=["nope"], selector="dpc_knn")


def test_unwrap_after_a_dtype_change_gives_back_the_originals_in_that_dtype():
    model = seeded(MotionAGFormerLike)
    original = model.layers[3].mixer.batch_norm
    wrap_with_hot(model, prune_block=2, tokens=9, recover="nearest", input_shape=(T, J, 3), selector="dpc_knn")
    model.double()
    with torch.no_grad():
        assert model(walks(2, channels=3).double()).dtype == torch.float64
    unwrap_hot(model)
    assert model.layers[3].mixer.batch_norm is original and original.running_mean.dtype == torch.float64
    assert original.num_batches_tracked.dtype == torch.long
