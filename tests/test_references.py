"""The stand-ins run as their upstream families do, and their hand-written HoT forwards
(``tests/stand_ins.py``) are right without the wrapper.

Each reference keeping every frame (zero kept-frame embedding, recovery by nearest kept frame)
must give exactly the unwrapped model's output; with fewer frames it must really prune (the
blocks after the prune point see ``f`` frames) and select per sample.
"""
import copy

import pytest
import torch
from torch import nn

from hourglass_tokenizer.core.recovery import CrossAttention
from hourglass_tokenizer.core.selection import dpc_knn
from stand_ins import (J, T, MHFormerLike, MixSTELike, MotionAGFormerLike, STCFormerLike, nearest_fill, record_inputs,
                       reference_mhformer_tpc, reference_mixste, reference_motionagformer, reference_stcformer, seeded,
                       take_frames, tra, walks, with_rank_indexed_norms)


class Hot(nn.Module):
    """HoT parameters for a reference run without the wrapper."""

    def __init__(self, tokens, frames, width, randomise=False, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        scale = 0.5 if randomise else 0.0
        self.pos_embed_token = nn.Parameter(torch.randn(1, tokens, width, generator=g) * scale)
        self.x_token = nn.Parameter(torch.randn(1, frames, width, generator=g) * scale)
        self.cross_attention = CrossAttention(width, 2)


def frames_seen(blocks, run):
    """The frame count (axis 1) of the first input of each of ``blocks`` while ``run()`` runs."""
    shapes, handles = record_inputs(blocks)
    with torch.no_grad():
        out = run()
    for handle in handles:
        handle.remove()
    return [shape[1] for shape in shapes], out


def every_third(features, f):
    return torch.arange(f).mul(3).expand(features.shape[0], f)


# --- the stand-ins themselves -----------------------------------------------------------------
def test_stcformer_like_accepts_any_length_and_keeps_its_frame_count_only_in_d_time():
    m = seeded(STCFormerLike)
    for frames in (9, 27, 31):
        with torch.no_grad():
            assert m(torch.randn(2, frames, J, 2)).shape == (2, frames, J, 3)
    sizes = {s for p in list(m.parameters()) + list(m.buffers()) for s in p.shape}
    assert not {9, 27, 31} & sizes
    assert not any(isinstance(getattr(m, a, None), int) for a in ("num_frames", "frames", "maxlen", "n_frames"))
    assert m.stcformer.d_time == T and list(m.named_parameters(recurse=False)) == []
    assert [name for name, _ in m.named_children()] == ["pose_emb", "gelu", "stcformer", "regress_head"]


def test_mhformer_like_blocks_carry_three_streams():
    m = seeded(MHFormerLike)
    x = torch.randn(2, T, J, 2)
    with torch.no_grad():
        assert m(x).shape == (2, T, J, 3)
        streams = m.hypotheses(x)
        stage = m.Transformer_hypothesis
        for blk in list(stage.SHR_blocks) + list(stage.CHI_blocks):
            out = blk(*streams)
            assert isinstance(out, tuple) and [o.shape for o in out] == [(2, T, 12)] * 3
            streams = out
    # The MHG encoders' tokens are (b, 2J, T): frames are channels there.
    assert frames_seen(m.Transformer_encoder_1.blocks, lambda: m(x))[0] == [2 * J, 2 * J]


def test_motionagformer_like_norms_are_per_frame_index():
    m = seeded(MotionAGFormerLike)
    assert all(layer.mixer.batch_norm.num_features == T for layer in m.layers)
    with torch.no_grad():
        assert m(torch.randn(2, T, J, 3)).shape == (2, T, J, 3)
        with pytest.raises(RuntimeError, match="running_mean should contain 9 elements not 27"):
            m(torch.randn(2, 9, J, 3))


# --- keeping every frame, each reference is the model -------------------------------------------
@pytest.mark.parametrize("build, channels, reference", [
    (lambda: seeded(STCFormerLike), 2, lambda m, x, hot: reference_stcformer(m, x, 2, T, recover=nearest_fill, hot=hot)),
    (lambda: seeded(MotionAGFormerLike), 3,
     lambda m, x, hot: reference_motionagformer(m, x, 2, T, recover=nearest_fill, hot=hot)),
    (lambda: seeded(MixSTELike, depth=6), 2,  # two stages
     lambda m, x, hot: reference_mixste(m, x, (2, 4), (T, T), recover=nearest_fill, hot=hot)),
], ids=["STCFormer", "MotionAGFormer", "MixSTE at two depths"])
def test_a_reference_keeping_every_frame_is_the_model(build, channels, reference):
    m = build()
    x = walks(3, channels=channels)
    with torch.no_grad():
        assert torch.equal(reference(m, x, Hot(T, T, 16)), m(x))


def test_mhformer_reference_keeping_every_frame_is_the_model():
    m = seeded(MHFormerLike)
    x = walks(3)
    trace = {}
    with torch.no_grad():
        out = reference_mhformer_tpc(m, x, T, trace=trace)
        assert torch.equal(out, m(x))
        assert torch.equal(trace["official"], out)
    assert trace["indices"].tolist() == [list(range(T))] * 3


# --- with fewer frames, the references really prune -------------------------------------------
def test_stcformer_reference_prunes_per_sample():
    m = seeded(STCFormerLike)
    x = walks(3)
    hot = Hot(9, T, 16, randomise=True)
    trace = {}
    seen, out = frames_seen(m.stcformer.stc_block, lambda: reference_stcformer(m, x, 2, 9, hot=hot, trace=trace))
    assert seen == [T, T, 9, 9]
    assert out.shape == (3, T, J, 3) and not torch.allclose(out, m(x), atol=1e-3)
    assert len({tuple(r) for r in trace["indices"].tolist()}) > 1
    # TRA itself by hand: the recovered tokens come from x_token queries, not from the kept frames.
    assert tra(hot, torch.randn(3 * J, 9, 16), T).shape == (3 * J, T, 16)


def test_mhformer_reference_keeps_the_centre_and_matches_the_official_centre_prediction():
    m = seeded(MHFormerLike)
    x = walks(3)
    stage = m.Transformer_hypothesis
    trace = {}
    seen, out = frames_seen(list(stage.SHR_blocks) + list(stage.CHI_blocks),
                            lambda: reference_mhformer_tpc(m, x, 9, trace=trace))
    assert seen == [T, 9, 9]  # pruned after SHR[0]; SHR[1] and CHI[0] see the kept frames
    idx = trace["indices"]
    centre = (T - 1) // 2
    assert (idx == centre).sum(dim=1).tolist() == [1, 1, 1]
    # The kept frames' predictions are the official per-kept-frame outputs, the centre's included.
    torch.testing.assert_close(take_frames(out, idx), trace["official"], atol=1e-6, rtol=1e-6)
    # Selection is DPC-kNN on concat(x1, x2, x3) over channels, excluding then adding the centre.
    with torch.no_grad():
        first = stage.SHR_blocks[0](*(s + p for s, p in zip(
            m.hypotheses(x), (stage.pos_embed_1, stage.pos_embed_2, stage.pos_embed_3))))
    expected = dpc_knn(torch.cat(first, dim=2), 8, exclude=centre)
    assert torch.equal(idx, torch.sort(torch.cat([expected, torch.full((3, 1), centre)], 1), 1).values)


def test_motionagformer_reference_needs_rank_indexed_norms_and_uses_them():
    m = seeded(MotionAGFormerLike)
    x = walks(3, channels=3)
    hot = Hot(9, T, 16)
    with pytest.raises(AssertionError, match=r"layers.2.mixer.batch_norm has 27 features, expected 9"):
        with torch.no_grad():
            reference_motionagformer(m, x, 2, 9, hot=hot)

    def first_frames(original, f):  # any rank-indexed initialisation: here the first f statistics
        new = nn.BatchNorm1d(f).eval()
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, name).data.copy_(getattr(original, name).data[:f])
        return new

    pruned = with_rank_indexed_norms(copy.deepcopy(m), 2, 9, first_frames)
    trace = {}
    with torch.no_grad():
        out = reference_motionagformer(pruned, x, 2, 9, recover=nearest_fill, hot=hot, trace=trace)
        # Rank r uses statistic r: shifting the statistics of one rank changes only that rank's frames.
        pruned.layers[3].mixer.batch_norm.running_mean[4] += 3.0
        shifted = reference_motionagformer(pruned, x, 2, 9, recover=nearest_fill, hot=hot)
    assert out.shape == (3, T, J, 3)
    changed = (shifted - out).abs().amax(dim=(2, 3)) > 0  # (b, T)
    idx = trace["indices"]
    for s in range(3):
        filled_from = [min(idx[s].tolist(), key=lambda k: (abs(k - t), k)) for t in range(T)]
        expected = torch.tensor([f == idx[s, 4].item() for f in filled_from])
        assert torch.equal(changed[s], expected)


def test_two_stage_reference_composes_indices_into_original_frames():
    m = seeded(MixSTELike, depth=6)
    x = walks(2)
    trace = {}
    seen, _ = frames_seen(m.temporal_blocks, lambda: reference_mixste(
        m, x, (2, 4), (9, 3), select=every_third, recover=nearest_fill, hot=Hot(9, T, 16, randomise=True),
        trace=trace))
    # Temporal blocks see (b j) t c tokens: 27, 27, 9, 9, 3, 3 frames.
    assert seen == [T, T, 9, 9, 3, 3]
    # Stage 1 keeps frames 0, 3, ..., 24; stage 2 keeps ranks 0, 3, 6 of those: frames 0, 9, 18.
    assert trace["indices"].tolist() == [[0, 9, 18]] * 2
