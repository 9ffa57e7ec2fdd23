"""Tests for the zoo's MotionAGFormer (``hourglass_tokenizer.models.motionagformer``).

The expected checkpoint layout is written out below as data, from the parameter names and shapes
of upstream ``model/MotionAGFormer.py`` (TaatiTeam/MotionAGFormer) and of the HoT repository's
``model/motionagformer/hot_motionagformer.py``; the parameter counts are those of the upstream
README (2.2M / 4.8M / 11.7M / 19.0M).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hourglass_tokenizer import load_official_hot, wrap_with_hot
from hourglass_tokenizer.models import MotionAGFormer, available_models, build_model
from hourglass_tokenizer.models.motionagformer import HOT_PRESET, SkeletonGCN

Shapes = dict[str, tuple[int, ...]]

# Upstream's spatial graph (model/modules/graph.py, CONNECTIONS): joint -> joints it aggregates from.
UPSTREAM_CONNECTIONS = {10: [9], 9: [8, 10], 8: [7, 9], 14: [15, 8], 15: [16, 14], 11: [12, 8], 12: [13, 11],
                        7: [0, 8], 0: [1, 7], 1: [2, 0], 2: [3, 1], 4: [5, 0], 5: [6, 4], 16: [15], 13: [12],
                        3: [2], 6: [5]}


def block_shapes(prefix: str, d: int, frames: int, joints: int = 17, hidden_ratio: int = 4) -> Shapes:
    """One upstream ``MotionAGFormerBlock`` (non-hierarchical, adaptive fusion, layer scale), as data."""
    h = hidden_ratio * d
    shapes: Shapes = {}
    for stream, mixer in (("att_spatial", "attn"), ("att_temporal", "attn"), ("graph_spatial", "gcn"),
                          ("graph_temporal", "gcn")):
        p = f"{prefix}.{stream}"
        shapes.update({
            f"{p}.layer_scale_1": (d,), f"{p}.layer_scale_2": (d,),
            f"{p}.norm1.weight": (d,), f"{p}.norm1.bias": (d,),
            f"{p}.norm2.weight": (d,), f"{p}.norm2.bias": (d,),
            f"{p}.mlp.fc1.weight": (h, d), f"{p}.mlp.fc1.bias": (h,),
            f"{p}.mlp.fc2.weight": (d, h), f"{p}.mlp.fc2.bias": (d,),
        })
        if mixer == "attn":  # qkv_bias=False in every paper config
            shapes.update({f"{p}.mixer.qkv.weight": (3 * d, d), f"{p}.mixer.proj.weight": (d, d),
                           f"{p}.mixer.proj.bias": (d,)})
        else:
            nodes = joints if stream == "graph_spatial" else frames
            shapes.update({
                f"{p}.mixer.U.weight": (d, d), f"{p}.mixer.U.bias": (d,),
                f"{p}.mixer.V.weight": (d, d), f"{p}.mixer.V.bias": (d,),
                f"{p}.mixer.batch_norm.weight": (nodes,), f"{p}.mixer.batch_norm.bias": (nodes,),
                f"{p}.mixer.batch_norm.running_mean": (nodes,), f"{p}.mixer.batch_norm.running_var": (nodes,),
                f"{p}.mixer.batch_norm.num_batches_tracked": (),
            })
    shapes.update({f"{prefix}.fusion.weight": (2, 2 * d), f"{prefix}.fusion.bias": (2,)})
    return shapes


def upstream_shapes(n_layers: int, d: int, frames: int, rep: int = 512, joints: int = 17, dim_in: int = 3) -> Shapes:
    shapes: Shapes = {"joints_embed.weight": (d, dim_in), "joints_embed.bias": (d,), "pos_embed": (1, joints, d),
                      "norm.weight": (d,), "norm.bias": (d,)}
    for i in range(n_layers):
        shapes.update(block_shapes(f"layers.{i}", d, frames, joints))
    shapes.update({"rep_logit.fc.weight": (rep, d), "rep_logit.fc.bias": (rep,), "head.weight": (3, rep),
                   "head.bias": (3,)})
    return shapes


def official_hot_shapes() -> Shapes:
    """HoT-MotionAGFormer checkpoint layout: layers 7.. built with n_frames=81, TRA without q/k/v bias."""
    shapes = upstream_shapes(16, 128, 243)
    for i in range(7, 16):
        shapes.update(block_shapes(f"layers.{i}", 128, 81))
    shapes.update({"pos_embed_token": (1, 81, 128), "x_token": (1, 243, 128),
                   "cross_attention.linear_q.weight": (128, 128), "cross_attention.linear_k.weight": (128, 128),
                   "cross_attention.linear_v.weight": (128, 128), "cross_attention.proj.weight": (128, 128),
                   "cross_attention.proj.bias": (128,)})
    return shapes


def parameter_count(shapes: Shapes) -> int:
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(math.prod(s) for k, s in shapes.items() if not k.endswith(buffers))


def on_meta(config: str) -> MotionAGFormer:
    with torch.device("meta"):  # the large configs build in milliseconds without memory
        return build_model("motionagformer", config)


def tiny(seed: int = 0, **overrides) -> MotionAGFormer:
    torch.manual_seed(seed)
    return build_model("motionagformer", "tiny", **overrides)


PAPER = {  # config: (n_layers, dim_feat, n_frames, README params in millions)
    "xsmall": (12, 64, 27, 2.2),
    "small": (26, 64, 81, 4.8),
    "base": (16, 128, 243, 11.7),
    "large": (26, 128, 243, 19.0),
}


def test_registered_in_the_zoo():
    assert available_models()["motionagformer"] == ["xsmall", "small", "base", "large", "hot-243", "tiny"]
    assert type(build_model("MotionAGFormer", "tiny")) is MotionAGFormer
    with pytest.raises(ValueError, match="xsmall.*"):
        build_model("motionagformer", "huge")


@pytest.mark.parametrize("config", PAPER)
def test_parameter_counts_of_the_paper_configs(config):
    n_layers, d, frames, millions = PAPER[config]
    n = sum(p.numel() for p in on_meta(config).parameters())
    assert round(n / 1e6, 1) == millions
    assert n == parameter_count(upstream_shapes(n_layers, d, frames))


@pytest.mark.parametrize("config", ["xsmall", "base", "hot-243"])
def test_state_dict_matches_upstream_layout(config):
    n_layers, d, frames = {"xsmall": (12, 64, 27), "base": (16, 128, 243), "hot-243": (16, 128, 243)}[config]
    expected = upstream_shapes(n_layers, d, frames)
    got = {k: tuple(v.shape) for k, v in on_meta(config).state_dict().items()}
    assert set(got) == set(expected), (sorted(set(expected) - set(got))[:5], sorted(set(got) - set(expected))[:5])
    assert {k: s for k, s in got.items() if s != expected[k]} == {}


def test_configs_carry_the_upstream_hyperparameters():
    for name in PAPER:
        m = on_meta(name)
        block = m.layers[0]
        assert block.att_spatial.mixer.num_heads == 8
        assert block.graph_temporal.mixer.neighbour_num == 2
        assert block.graph_temporal.mixer.batch_norm.num_features == m.num_frames == PAPER[name][2]
        assert block.att_spatial.mixer.qkv.bias is None
        assert isinstance(block.att_spatial.drop_path, torch.nn.Identity)  # drop_path 0.0
    hot = on_meta("hot-243")
    assert (hot.layers[0].att_temporal.mixer.num_heads, hot.layers[0].graph_temporal.mixer.neighbour_num) == (4, 4)
    assert HOT_PRESET == dict(config="hot-243", frames=243, depth=16, prune_block=7, tokens=81,
                              cross_attention_qkv_bias=False)


def test_upstream_checkpoint_loads_strict():
    torch.manual_seed(1)
    ckpt = {k: (torch.tensor(5) if not s else torch.randn(s)) for k, s in upstream_shapes(3, 16, 27, rep=32).items()}
    m = tiny()
    result = m.load_state_dict(ckpt, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(torch.equal(v, ckpt[k]) for k, v in m.state_dict().items())
    assert "adj" not in " ".join(m.state_dict())  # the fixed graph is not a checkpoint entry


def test_official_hot_checkpoint_differs_only_by_rank_indexed_norms_and_hot_parameters():
    """What the wrapper must map for official HoT-MotionAGFormer checkpoints (issue 8)."""
    ours = {k: tuple(v.shape) for k, v in on_meta("hot-243").state_dict().items()}
    official = official_hot_shapes()
    assert set(official) - set(ours) == {"pos_embed_token", "x_token", "cross_attention.linear_q.weight",
                                         "cross_attention.linear_k.weight", "cross_attention.linear_v.weight",
                                         "cross_attention.proj.weight", "cross_attention.proj.bias"}
    assert set(ours) <= set(official)
    resized = {k for k in ours if ours[k] != official[k]}
    assert resized == {f"layers.{i}.graph_temporal.mixer.batch_norm.{n}" for i in range(7, 16)
                       for n in ("weight", "bias", "running_mean", "running_var")}
    assert all(official[k] == (81,) and ours[k] == (243,) for k in resized)
    extra = parameter_count(official) - parameter_count(ours)
    assert extra == 81 * 128 + 243 * 128 + 4 * 128 * 128 + 128 - 9 * 2 * (243 - 81)


def test_spatial_graph_is_upstreams():
    gcn = tiny().layers[0].graph_spatial.mixer
    expected = torch.zeros(17, 17)
    for i, row in UPSTREAM_CONNECTIONS.items():
        expected[i, row] = 1
    assert torch.equal(gcn.adj, expected)
    assert not torch.equal(expected, expected.T)  # upstream's graph is directed; kept as is


def test_output_shapes_and_representation():
    m = tiny().eval()
    x = torch.randn(2, 27, 17, 3)
    with torch.no_grad():
        assert m(x).shape == (2, 27, 17, 3)
        assert m(x, return_rep=True).shape == (2, 27, 17, 32)
        assert torch.isfinite(m(x)).all()


def test_temporal_batch_norm_is_indexed_by_frame_so_other_lengths_fail():
    m = tiny().eval()
    with torch.no_grad():
        for layer in m.layers:
            norm = layer.graph_temporal.mixer.batch_norm
            norm.running_mean.copy_(torch.linspace(-1, 1, 27))  # per-frame statistics
        with pytest.raises(RuntimeError, match="running_mean should contain 9 elements not 27"):
            m(torch.randn(1, 9, 17, 3))
        # Shifting which frame index a statistic belongs to changes the output: per-index layer.
        x = torch.randn(1, 27, 17, 3)
        before = m(x)
        for layer in m.layers:
            layer.graph_temporal.mixer.batch_norm.running_mean.copy_(torch.linspace(1, -1, 27))
        assert not torch.allclose(m(x), before)


def _gcn_by_hand(gcn: SkeletonGCN, x: torch.Tensor) -> torch.Tensor:
    """The temporal similarity GCN written with explicit loops over (sample, joint)."""
    b, t, j, c = x.shape
    bn = gcn.batch_norm
    out = torch.empty(b, t, j, c)
    for s in range(b):
        for joint in range(j):
            seq = x[s, :, joint]  # (t, c)
            sim = seq @ seq.T
            adj = torch.zeros(t, t)
            for r in range(t):
                kth = sorted(sim[r].tolist(), reverse=True)[gcn.neighbour_num - 1]
                adj[r] = (sim[r] >= kth).float()
            deg = adj.sum(1)
            norm_adj = adj / torch.sqrt(deg[:, None] * deg[None, :])
            mixed = norm_adj @ F.linear(seq, gcn.V.weight, gcn.V.bias) + F.linear(seq, gcn.U.weight, gcn.U.bias)
            # BatchNorm1d(T) in eval: frame r uses statistic r.
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            normed = (mixed - bn.running_mean[:, None]) * scale[:, None] + bn.bias[:, None]
            out[s, :, joint] = torch.relu(seq + normed)
    return out


def test_temporal_gcn_against_a_hand_written_computation():
    torch.manual_seed(3)
    gcn = SkeletonGCN(8, 8, num_nodes=6, neighbour_num=2, mode="temporal").eval()
    with torch.no_grad():
        gcn.batch_norm.running_mean.normal_()
        gcn.batch_norm.running_var.uniform_(0.5, 2)
        gcn.batch_norm.weight.normal_()
        gcn.batch_norm.bias.normal_()
        x = torch.randn(2, 6, 3, 8)
        torch.testing.assert_close(gcn(x), _gcn_by_hand(gcn, x), atol=1e-5, rtol=1e-5)


def test_attention_streams_mix_the_right_axis():
    m = tiny().eval()
    x = torch.randn(1, 27, 17, 3)
    x2 = x.clone()
    x2[:, -1, 5] += 1.0  # one joint of the last frame
    with torch.no_grad():
        h, h2 = m.joints_embed(x) + m.pos_embed, m.joints_embed(x2) + m.pos_embed
        spatial, temporal = m.layers[0].att_spatial, m.layers[0].att_temporal
        ds = spatial(h2) - spatial(h)
        dt = temporal(h2) - temporal(h)
    # Spatial attention: only the perturbed frame changes, but all its joints do.
    assert ds[:, :-1].abs().max() == 0 and (ds[0, -1].abs().sum(-1) > 0).all()
    # Temporal attention: only the perturbed joint changes, but in every frame.
    others = [j for j in range(17) if j != 5]
    assert dt[:, :, others].abs().max() == 0 and (dt[0, :, 5].abs().sum(-1) > 0).all()


def test_fusion_starts_even_and_gradients_reach_every_parameter():
    m = tiny()
    for layer in m.layers:
        assert torch.all(layer.fusion.weight == 0) and torch.all(layer.fusion.bias == 0.5)
    m(torch.randn(2, 27, 17, 3)).square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_variants_hierarchical_graph_only_and_fixed_temporal_graph():
    x = torch.randn(1, 27, 17, 3)
    for overrides in (dict(hierarchical=True), dict(graph_only=True), dict(use_temporal_similarity=False),
                      dict(use_adaptive_fusion=False, use_layer_scale=False)):
        m = tiny(**overrides).eval()
        with torch.no_grad():
            assert m(x).shape == (1, 27, 17, 3)
    fixed = tiny(use_temporal_similarity=False).layers[0].graph_temporal.mixer.adj
    assert fixed[3].nonzero().flatten().tolist() == [3, 4] and fixed[26].nonzero().flatten().tolist() == [26]
    with pytest.raises(ValueError, match="use_tcn"):
        tiny(use_tcn=True)


def test_zoo_motionagformer_is_recognised_and_the_official_checkpoint_layout_loads_strictly():
    model = build_model("motionagformer", "tiny").eval()
    wrap_with_hot(model, selector="dpc_knn")  # the preset, scaled: 3 layers of the paper's 16, 27 frames of its 243
    assert model.hot.family == "motionagformer" and (model.hot.prune_block, model.hot.tokens) == (1, 9)
    assert model.hot.recover_before == "rep_logit"
    assert model.cross_attention.linear_q.bias is None and model.cross_attention.proj.bias is not None
    with torch.device("meta"):
        official = build_model("motionagformer", "hot-243")
    wrap_with_hot(official, recover="tra", selector="dpc_knn")
    assert (official.hot.prune_block, official.hot.tokens) == (7, 81)
    expected = official_hot_shapes()
    got = {k: tuple(v.shape) for k, v in official.state_dict().items()}
    assert got == expected
    checkpoint = {"model_pos": {f"module.{k}": torch.empty(s, device="meta") for k, s in expected.items()}}
    result = load_official_hot(official, checkpoint)
    assert not result.missing_keys and not result.unexpected_keys
