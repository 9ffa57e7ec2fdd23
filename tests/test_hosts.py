"""The wrapper on other ways of writing a VPT: nn.Sequential block lists, torch's own layers, timm blocks."""
import pytest
import torch
from torch import nn

from hourglass_tokenizer import unwrap_hot, wrap_with_hot
from stand_ins import Block


class SequentialVPT(nn.Module):
    """Frame tokens through an nn.Sequential of blocks called as one module (timm's ViT style)."""

    def __init__(self, block_factory, frames=27, joints=17, dim=32, depth=4):
        super().__init__()
        self.num_frames = frames
        self.embed = nn.Linear(joints * 2, dim)
        self.frame_pos = nn.Parameter(torch.randn(1, frames, dim) * 0.1)
        self.blocks = nn.Sequential(*[block_factory(dim) for _ in range(depth)])
        self.head = nn.Linear(dim, joints * 3)

    def forward(self, x):
        b, t, j, _ = x.shape
        return self.head(self.blocks(self.embed(x.reshape(b, t, -1)) + self.frame_pos)).reshape(b, t, j, 3)


def check_wrappable(model):
    model.eval()
    x = torch.cumsum(torch.randn(2, 27, 17, 2), dim=1)
    with torch.no_grad():
        before = model(x)
        wrap_with_hot(model, prune_block=1, tokens=9)
        assert model.hot.block_lists == ("blocks",)
        assert model.hot.layouts == {"blocks": "b t c", "head": "b t c"}
        out = model(x)
        assert out.shape == before.shape and not torch.allclose(out, before)
        unwrap_hot(model)
        assert torch.equal(model(x), before)


def test_sequential_block_list():
    check_wrappable(SequentialVPT(lambda dim: Block(dim, 4, 2 * dim)))


def test_torch_transformer_encoder_layers():
    check_wrappable(SequentialVPT(lambda dim: nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.0,
                                                                         batch_first=True, norm_first=True)))


def _import_timm():
    try:
        import timm.models.vision_transformer as vit
    except Exception as error:  # timm imports torchvision, whose CUDA-only wheel fails on the CPU torch here
        pytest.skip(f"timm cannot be imported here ({type(error).__name__}: {str(error)[:80]}); "
                    "install the [timm] extra with a matching torchvision to run this test")
    return vit


def test_timm_vision_transformer_blocks():
    vit = _import_timm()
    check_wrappable(SequentialVPT(lambda dim: vit.Block(dim, num_heads=4)))


@pytest.mark.parametrize("name", ["mixste", "motionbert", "poseformer"])
def test_zoo_models_satisfy_the_wrapper_contract(name):
    from hourglass_tokenizer.models import build_model

    torch.manual_seed(0)
    model = build_model(name, "small").eval()
    x = torch.cumsum(torch.randn(2, model.num_frames, model.num_joints, model.in_chans), dim=1)
    seq2frame = name == "poseformer"
    original = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model(x)
    wrap_with_hot(model, prune_block=1, tokens=model.num_frames // 3, recover=not seq2frame)
    result = model.load_state_dict(original, strict=False)
    assert result.unexpected_keys == []
    assert {k.split(".")[0] for k in result.missing_keys} == (
        set() if seq2frame else {"pos_embed_token", "x_token", "cross_attention"})
    model.train()
    out = model(x)
    assert out.shape == before.shape
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    unwrap_hot(model)
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("name, overrides, expected", [
    ("mixste", dict(embed_dim=16, num_heads=2, mlp_hidden_dim=32), (3, 81)),
    ("motionbert", dict(dim_feat=16, dim_rep=16, num_heads=2), (1, 81)),
])
def test_zoo_paper_configs_get_the_paper_presets(name, overrides, expected):
    from hourglass_tokenizer.models import build_model

    model = build_model(name, "paper", **overrides)  # paper depth and frame count, narrow for speed
    renamed = type("UserRenamed" + type(model).__name__, (type(model),), {})
    model.__class__ = renamed
    wrap_with_hot(model)
    assert (model.hot.prune_block, model.hot.tokens) == expected
