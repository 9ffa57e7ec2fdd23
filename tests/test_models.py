"""Tests for the built-in model zoo, ``hourglass_tokenizer.models``.

The expected state_dict layouts below are written out from the naming scheme
of the reference implementations (HoT's MixSTE, MotionBERT's DSTformer,
PoseFormer v1), so a checkpoint saved by those repositories loads into our
classes with ``strict=True``.
"""

from __future__ import annotations

import functools
from typing import Callable

import pytest
import torch
from torch import nn

from hourglass_tokenizer.models import (
    DSTformer,
    MixSTE,
    MotionBERT,
    PoseFormer,
    available_models,
    build_model,
)

Shapes = dict[str, tuple[int, ...]]


# --------------------------------------------------------------------------- #
# Upstream naming schemes
# --------------------------------------------------------------------------- #
def _linear(prefix: str, out_f: int, in_f: int, bias: bool = True) -> Shapes:
    shapes = {f"{prefix}.weight": (out_f, in_f)}
    if bias:
        shapes[f"{prefix}.bias"] = (out_f,)
    return shapes


def _norm(prefix: str, dim: int) -> Shapes:
    return {f"{prefix}.weight": (dim,), f"{prefix}.bias": (dim,)}


def _vit_block(prefix: str, dim: int, hidden: int) -> Shapes:
    """``norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2`` (timm-style ViT block)."""
    return {
        **_norm(f"{prefix}.norm1", dim),
        **_linear(f"{prefix}.attn.qkv", 3 * dim, dim),
        **_linear(f"{prefix}.attn.proj", dim, dim),
        **_norm(f"{prefix}.norm2", dim),
        **_linear(f"{prefix}.mlp.fc1", hidden, dim),
        **_linear(f"{prefix}.mlp.fc2", dim, hidden),
    }


def upstream_mixste(frames: int, joints: int, dim: int, depth: int, hidden: int, in_chans: int = 2) -> Shapes:
    shapes: Shapes = {
        "Spatial_pos_embed": (1, joints, dim),
        "Temporal_pos_embed": (1, frames, dim),
        **_linear("Spatial_patch_to_embedding", dim, in_chans),
    }
    for i in range(depth):
        shapes.update(_vit_block(f"STEblocks.{i}", dim, hidden))
        shapes.update(_vit_block(f"TTEblocks.{i}", dim, hidden))
    shapes.update(_norm("Spatial_norm", dim))
    shapes.update(_norm("Temporal_norm", dim))
    shapes.update(_norm("head.0", dim))
    shapes.update(_linear("head.1", 3, dim))
    return shapes


def _dst_block(prefix: str, dim: int, hidden: int) -> Shapes:
    shapes: Shapes = {}
    for s in ("s", "t"):
        shapes.update(_norm(f"{prefix}.norm1_{s}", dim))
        shapes.update(_linear(f"{prefix}.attn_{s}.qkv", 3 * dim, dim))
        shapes.update(_linear(f"{prefix}.attn_{s}.proj", dim, dim))
        shapes.update(_norm(f"{prefix}.norm2_{s}", dim))
        shapes.update(_linear(f"{prefix}.mlp_{s}.fc1", hidden, dim))
        shapes.update(_linear(f"{prefix}.mlp_{s}.fc2", dim, hidden))
    return shapes


def upstream_dstformer(maxlen: int, dim: int, rep: int, depth: int, mlp_ratio: float, joints: int = 17) -> Shapes:
    hidden = int(dim * mlp_ratio)
    shapes: Shapes = {
        "temp_embed": (1, maxlen, 1, dim),
        "pos_embed": (1, joints, dim),
        **_linear("joints_embed", dim, 3),
    }
    for i in range(depth):
        shapes.update(_dst_block(f"blocks_st.{i}", dim, hidden))
        shapes.update(_dst_block(f"blocks_ts.{i}", dim, hidden))
        shapes.update(_linear(f"ts_attn.{i}", 2, 2 * dim))
    shapes.update(_norm("norm", dim))
    shapes.update(_linear("pre_logits.fc", rep, dim))
    shapes.update(_linear("head", 3, rep))
    return shapes


def upstream_poseformer(frames: int, joints: int, ratio: int, depth: int, mlp_ratio: float,
                        in_chans: int = 2) -> Shapes:
    dim = ratio * joints
    shapes: Shapes = {
        "Spatial_pos_embed": (1, joints, ratio),
        "Temporal_pos_embed": (1, frames, dim),
        **_linear("Spatial_patch_to_embedding", ratio, in_chans),
    }
    for i in range(depth):
        shapes.update(_vit_block(f"Spatial_blocks.{i}", ratio, int(ratio * mlp_ratio)))
        shapes.update(_vit_block(f"blocks.{i}", dim, int(dim * mlp_ratio)))
    shapes.update(_norm("Spatial_norm", ratio))
    shapes.update(_norm("Temporal_norm", dim))
    shapes.update({"weighted_mean.weight": (1, frames, 1), "weighted_mean.bias": (1,)})
    shapes.update(_norm("head.0", dim))
    shapes.update(_linear("head.1", 3 * joints, dim))
    return shapes


def _numel(shapes: Shapes) -> int:
    total = 0
    for shape in shapes.values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


# (name, config, upstream shape table) for the configs whose layout we pin down.
LAYOUT_CASES: list[tuple[str, str, Callable[[], Shapes]]] = [
    ("mixste", "small", lambda: upstream_mixste(27, 17, 32, 4, 64)),
    ("mixste", "h36m-243", lambda: upstream_mixste(243, 17, 512, 8, 1024)),
    ("motionbert", "small", lambda: upstream_dstformer(27, 32, 32, 3, 2)),
    ("motionbert", "hot-243", lambda: upstream_dstformer(243, 256, 512, 5, 4)),
    ("motionbert", "h36m-243", lambda: upstream_dstformer(243, 512, 512, 5, 2)),
    ("poseformer", "small", lambda: upstream_poseformer(27, 17, 8, 2, 2.0)),
    ("poseformer", "h36m-81", lambda: upstream_poseformer(81, 17, 32, 4, 2.0)),
]
SMALL = ["mixste", "motionbert", "poseformer"]
SEQ2SEQ = ["mixste", "motionbert"]


@functools.lru_cache(maxsize=None)
def _built(name: str, config: str) -> nn.Module:
    """Shared read-only instance: building the paper-size models dominates test time."""
    return build_model(name, config)


def _small(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, "small", **kw)


def _input(model: nn.Module, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, model.num_frames, model.num_joints, model.in_chans)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
def test_available_models_lists_names_and_configs() -> None:
    assert available_models() == {
        "mixste": ["h36m-243", "small"],
        "motionbert": ["h36m-243", "hot-243", "small"],
        "poseformer": ["h36m-81", "small"],
        "motionagformer": ["xsmall", "small", "base", "large", "hot-243", "tiny"],
    }


def test_build_model_classes_and_case_insensitive() -> None:
    assert type(build_model("MixSTE", "small")) is MixSTE
    assert type(build_model("MotionBERT", "SMALL")) is DSTformer
    assert type(build_model("dstformer", "small")) is DSTformer
    assert type(build_model("poseformer", "small")) is PoseFormer
    assert MotionBERT is DSTformer


def test_build_model_overrides() -> None:
    m = build_model("mixste", "small", num_frames=9, depth=2)
    assert m.num_frames == 9 and len(m.STEblocks) == 2
    assert build_model("motionbert", "small", maxlen=9).num_frames == 9


def test_build_model_errors_list_valid_choices() -> None:
    with pytest.raises(ValueError, match="mixste.*motionbert.*poseformer"):
        build_model("videopose3d")
    with pytest.raises(ValueError, match="h36m-243.*small"):
        build_model("mixste", "tiny")


@pytest.mark.parametrize(
    "cls, alias",
    [(MixSTE, "h36m-243"), (DSTformer, "hot-243"), (PoseFormer, "h36m-81")],
)
def test_paper_alias(cls: type, alias: str) -> None:
    # Compare the resolved kwargs rather than building the large models twice.
    from hourglass_tokenizer.models._layers import resolve_config

    assert resolve_config(cls, "paper", {}) == resolve_config(cls, alias, {})


def test_model_attributes() -> None:
    for name, (frames, chans) in {"mixste": (27, 2), "motionbert": (27, 3), "poseformer": (27, 2)}.items():
        m = _small(name)
        assert (m.num_frames, m.num_joints, m.in_chans) == (frames, 17, chans)


# --------------------------------------------------------------------------- #
# Shapes, parameters, checkpoint layout
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", SMALL)
def test_output_shape_small(name: str) -> None:
    m = _small(name)
    x = _input(m)
    y = m(x)
    expected_frames = 1 if name == "poseformer" else m.num_frames
    assert y.shape == (2, expected_frames, 17, 3)
    assert torch.isfinite(y).all()


def test_motionbert_shorter_clip_and_representation() -> None:
    m = _small("motionbert").eval()
    x = torch.randn(2, 10, 17, 3)
    assert m(x).shape == (2, 10, 17, 3)
    assert m(x, return_rep=True).shape == (2, 10, 17, 32)
    with pytest.raises(ValueError, match="maxlen"):
        m(torch.randn(1, 28, 17, 3))


@pytest.mark.parametrize(
    "name, config, expected",
    [
        # HoT repository's reported figures (MixSTE 33.78M, MotionBERT 16.00M);
        # MotionBERT's 162 MB release and PoseFormer's 9.6M give the others.
        ("mixste", "h36m-243", 33_783_811),
        ("motionbert", "hot-243", 16_001_549),
        ("motionbert", "h36m-243", 42_466_317),
        ("poseformer", "h36m-81", 9_602_885),
    ],
)
def test_parameter_count_paper_configs(name: str, config: str, expected: int) -> None:
    n = sum(p.numel() for p in _built(name, config).parameters())
    assert n == expected
    upstream = next(f for nm, cfg, f in LAYOUT_CASES if (nm, cfg) == (name, config))()
    assert n == _numel(upstream)


@pytest.mark.parametrize("name, millions, digits", [("mixste", 33.78, 2), ("motionbert", 16.00, 2),
                                                    ("poseformer", 9.6, 1)])
def test_parameter_count_matches_published_millions(name: str, millions: float, digits: int) -> None:
    paper = {"mixste": "h36m-243", "motionbert": "hot-243", "poseformer": "h36m-81"}[name]
    assert round(sum(p.numel() for p in _built(name, paper).parameters()) / 1e6, digits) == millions


@pytest.mark.parametrize("name, config, upstream", LAYOUT_CASES, ids=[f"{n}-{c}" for n, c, _ in LAYOUT_CASES])
def test_state_dict_matches_upstream_layout(name: str, config: str, upstream: Callable[[], Shapes]) -> None:
    expected = upstream()
    sd = _built(name, config).state_dict()
    assert set(sd) == set(expected), (
        f"missing {sorted(set(expected) - set(sd))[:5]}, unexpected {sorted(set(sd) - set(expected))[:5]}"
    )
    wrong = {k: (tuple(v.shape), expected[k]) for k, v in sd.items() if tuple(v.shape) != expected[k]}
    assert not wrong


@pytest.mark.parametrize("name, config, upstream", [c for c in LAYOUT_CASES if c[1] == "small"],
                         ids=SMALL)
def test_upstream_checkpoint_loads_strict(name: str, config: str, upstream: Callable[[], Shapes]) -> None:
    torch.manual_seed(1)
    ckpt = {k: torch.randn(shape) for k, shape in upstream().items()}
    m = build_model(name, config)
    result = m.load_state_dict(ckpt, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in m.state_dict().items():
        assert torch.equal(v, ckpt[k])


def test_motionbert_fusion_init() -> None:
    m = _small("motionbert")
    for lin in m.ts_attn:
        assert torch.all(lin.weight == 0) and torch.all(lin.bias == 0.5)


# --------------------------------------------------------------------------- #
# Behaviour
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", SEQ2SEQ)
def test_temporal_mixing(name: str) -> None:
    m = _small(name).eval()
    x = _input(m, batch=1)
    x2 = x.clone()
    x2[:, -1] += 1.0  # perturb only the last frame
    with torch.no_grad():
        y, y2 = m(x), m(x2)
    # Frame 0 must react to a change in another frame, through temporal attention.
    assert not torch.allclose(y[:, 0], y2[:, 0])


@pytest.mark.parametrize("name", SMALL)
def test_eval_deterministic_and_train_stochastic(name: str) -> None:
    # A drop-path rate is forced so that train mode actually has randomness.
    m = _small(name, drop_path_rate=0.5)
    x = _input(m, batch=1)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))
    m.train()
    torch.manual_seed(3)
    with torch.no_grad():
        assert not torch.equal(m(x), m(x))


def test_blocks_are_modulelists_of_single_tensor_residual_blocks() -> None:
    m = _small("mixste")
    for blocks in (m.STEblocks, m.TTEblocks):
        assert isinstance(blocks, nn.ModuleList)
    t = torch.randn(4, 17, 32)
    assert m.STEblocks[1](t).shape == t.shape

    mb = _small("motionbert")
    t = torch.randn(2 * 5, 17, 32)
    for blk in (mb.blocks_st[0], mb.blocks_ts[0]):
        out = blk(t, 5)
        assert isinstance(out, torch.Tensor) and out.shape == t.shape


def test_motionbert_temporal_attention_stays_within_clip() -> None:
    # Two clips batched together must not attend to each other.
    mb = _small("motionbert").eval()
    blk = mb.blocks_st[0]
    a, b = torch.randn(5, 17, 32), torch.randn(5, 17, 32)
    with torch.no_grad():
        joint = blk(torch.cat([a, b]), 5)
        alone = blk(a, 5)
    torch.testing.assert_close(joint[:5], alone)


def test_backward_small() -> None:
    for name in SMALL:
        m = _small(name)
        m(_input(m)).sum().backward()
        assert all(p.grad is not None for p in m.parameters())
