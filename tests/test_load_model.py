"""Self-describing checkpoints (issue 15): ``save_checkpoint`` records how to rebuild the model and its
HoT wrap, ``load_model`` rebuilds it (zoo models, factories, upstream MixSTE/MotionBERT files), and a
checkpoint whose recorded HoT settings differ from the model's is refused (issue 14)."""
import os
import re

import numpy as np
import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.data import PoseWindowDataset, project_clips
from hourglass_tokenizer.core.wrapping import is_hot
from hourglass_tokenizer.core.selection import DEFAULT_SELECTOR
from hourglass_tokenizer.models import DSTformer, MotionAGFormer, available_models, build_model
from hourglass_tokenizer.training import checkpoints
from hourglass_tokenizer.training.checkpoints import (CheckpointMismatchError, describe_model, load_checkpoint,
                                                      load_model, load_pretrained, save_checkpoint)
from hourglass_tokenizer.training.trainer import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

#: The smallest configuration of every zoo model, with a constructor argument to record.
TINY = {"mixste": ("small", {"depth": 3}), "motionbert": ("small", {"depth": 3}),
        "poseformer": ("small", {"depth": 3}), "motionagformer": ("tiny", {})}
#: The wraps to round-trip: the default, the paper's TRA, TPC only (seq2frame), two stages.
WRAPS = {"plain": None, "tra+interpolate": dict(prune_block=1, tokens=9),
         "tra": dict(prune_block=1, tokens=9, recover="tra"), "tpc": dict(prune_block=1, tokens=9, recover=False),
         "two-stage": dict(prune_block=(1, 2), tokens=(13, 7), recover="interpolate")}


def test_every_zoo_model_has_a_tiny_configuration_here():
    assert set(TINY) == set(available_models())


def _zoo(name, wrap=None, seed=0):
    """A zoo model with every weight randomised (HoT's too, which start at zeros), in eval mode."""
    config, kwargs = TINY[name]
    torch.manual_seed(seed)
    model = build_model(name, config, **kwargs)
    if wrap is not None:
        wrap_with_hot(model, **wrap)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in model.modules():  # running statistics too: they are part of what must load
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _input(model, seed=1):
    channels = 3 if isinstance(model, (DSTformer, MotionAGFormer)) else 2  # (x, y, confidence)
    return torch.randn(2, 27, 17, channels, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("wrap", list(WRAPS))
@pytest.mark.parametrize("name", list(TINY))
def test_round_trip_of_every_zoo_model_plain_and_wrapped(tmp_path, name, wrap):
    model = _zoo(name, WRAPS[wrap])
    x = _input(model)
    with torch.no_grad():
        expected = model(x)
    save_checkpoint(tmp_path / "model.pt", model, epoch=2)
    saved = load_checkpoint(tmp_path / "model.pt")
    assert saved["model_spec"] == {"name": name, "config": TINY[name][0], "kwargs": TINY[name][1]}
    loaded = load_model(tmp_path / "model.pt")
    assert loaded is not model and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert is_hot(loaded) == (wrap != "plain")
    if wrap != "plain":
        for key in ("prune_block", "tokens", "recover", "selector", "k", "seed"):
            assert getattr(loaded.hot, key) == getattr(model.hot, key), key
        # Saved again, the rebuilt model describes itself the same way.
        save_checkpoint(tmp_path / "again.pt", loaded)
        assert load_checkpoint(tmp_path / "again.pt")["hot"] == saved["hot"]


@pytest.mark.parametrize("name", list(TINY))
def test_the_recorded_structure_rebuilds_the_wrap_when_the_probe_alone_would_not(tmp_path, monkeypatch, name):
    """The explicit path (block lists, layouts, recovery point, heads, frame-indexed layers as recorded)
    that serves models whose wrap needed those options gives the same model."""
    model = _zoo(name, WRAPS["tra"])
    x = _input(model)
    with torch.no_grad():
        expected = model(x)
    save_checkpoint(tmp_path / "model.pt", model)
    same = checkpoints._same_structure
    calls = []
    monkeypatch.setattr(checkpoints, "_same_structure", lambda m, s: bool(calls.append(1)) or (
        len(calls) > 1 and same(m, s)))
    loaded = load_model(tmp_path / "model.pt")
    assert len(calls) == 2  # the automatic wrap was rejected, the explicit one accepted
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_user_given_model_settings_override_the_file(tmp_path):
    model = _zoo("mixste")
    save_checkpoint(tmp_path / "plain.pt", model, model_spec={"name": "mixste", "config": "small", "kwargs": {}})
    # The recorded spec lacks depth=3, so the weights do not fit until the caller says so.
    with pytest.raises(CheckpointMismatchError, match=r"missing \['STEblocks.3"):
        load_model(tmp_path / "plain.pt")
    loaded = load_model(tmp_path / "plain.pt", model_kwargs={"depth": 3})
    x = _input(model)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # An instance to load into: plain here, wrapped with the recorded settings.
    hot = _zoo("mixste", WRAPS["tra"])
    save_checkpoint(tmp_path / "hot.pt", hot)
    target = build_model("mixste", "small", depth=3)
    assert load_model(tmp_path / "hot.pt", model=target) is target and target.hot.recover == "tra"
    with torch.no_grad():
        assert torch.equal(target(x), hot(x))


def test_a_file_that_does_not_describe_its_model_says_what_to_pass(tmp_path):
    torch.save(_zoo("mixste").state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match=r"does not record which model it holds; pass name= \(a zoo model: "
                                         r"mixste, motionbert, poseformer, motionagformer") as caught:
        load_model(tmp_path / "bare.pt")
    assert str(tmp_path / "bare.pt") in str(caught.value) and "\n" not in str(caught.value)
    loaded = load_model(tmp_path / "bare.pt", name="mixste", config="small", model_kwargs={"depth": 3})
    assert not is_hot(loaded)


def test_official_hot_weights_without_recorded_settings_are_not_guessed(tmp_path):
    hot = _zoo("mixste", WRAPS["tra"])
    torch.save({"model_pos": hot.state_dict()}, tmp_path / "official.bin")
    with pytest.raises(CheckpointMismatchError, match="does not record the HoT settings.*load_official_hot"):
        load_model(tmp_path / "official.bin", name="mixste", config="small", model_kwargs={"depth": 3})
    target = wrap_with_hot(build_model("mixste", "small", depth=3), 1, 9, recover="tra")
    x = _input(hot)
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "official.bin", model=target)(x), hot(x))


def _upstream_mixste(model):
    """MixSTE's run.py: {'epoch', 'lr', 'random_state', 'optimizer', 'model_pos'} of an nn.DataParallel."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-5, weight_decay=0.1)
    return {"epoch": 120, "lr": 4e-5 * 0.99 ** 120, "random_state": np.random.RandomState(1234).get_state(),
            "optimizer": optimizer.state_dict(),
            "model_pos": {"module." + k: v for k, v in model.state_dict().items()}}


def _upstream_motionbert(model):
    """MotionBERT's train.py: {'epoch', 'lr', 'optimizer', 'model_pos', 'min_loss'}, DataParallel keys,
    min_loss a numpy float (np.mean of the per-action errors)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    return {"epoch": 60, "lr": 2e-4, "optimizer": optimizer.state_dict(),
            "model_pos": {"module." + k: v for k, v in model.state_dict().items()}, "min_loss": np.float64(39.2)}


@pytest.mark.parametrize("name, layout", [("mixste", _upstream_mixste), ("motionbert", _upstream_motionbert)])
def test_upstream_checkpoints_load_when_the_model_is_named(tmp_path, name, layout):
    model = _zoo(name)
    torch.save(layout(model), tmp_path / "best_epoch.bin")
    config, kwargs = TINY[name]
    with pytest.raises(ValueError, match="pass name="):
        load_model(tmp_path / "best_epoch.bin")
    loaded = load_model(tmp_path / "best_epoch.bin", name=name, config=config, model_kwargs=kwargs)
    x = _input(model)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # The documented adoption: the upstream weights into a HoT model, to fine-tune it.
    hot = wrap_with_hot(build_model(name, config, **kwargs), 1, 9)
    missing = load_pretrained(hot, tmp_path / "best_epoch.bin")
    assert missing and all(k.split(".")[0] in ("pos_embed_token", "x_token", "cross_attention") for k in missing)


def test_a_factory_named_only_by_the_file_is_not_imported(tmp_path):
    marker = tmp_path / "FACTORY_RAN"
    factory = tmp_path / "my_models.py"
    factory.write_text(
        "import pathlib\nfrom hourglass_tokenizer.models import build_model\n\n"
        f"def make(depth=3):\n    pathlib.Path({str(marker)!r}).touch()\n"
        "    return build_model('mixste', 'small', depth=depth)\n")
    spec = f"{factory}:make"
    model = describe_model(_zoo("mixste"), spec, None, {"depth": 3})
    save_checkpoint(tmp_path / "custom.pt", model)
    assert load_checkpoint(tmp_path / "custom.pt")["model_spec"] == {"name": spec, "config": None,
                                                                    "kwargs": {"depth": 3}}
    with pytest.raises(ValueError, match=r"was built by the factory .*pass name="):
        load_model(tmp_path / "custom.pt")
    assert not marker.exists()
    x = _input(model)
    for loaded in (load_model(tmp_path / "custom.pt", name=spec, model_kwargs={"depth": 3}),
                   load_model(tmp_path / "custom.pt", trusted=True)):
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))
    assert marker.exists()


def test_model_specs_hold_plain_values_only(tmp_path):
    with pytest.raises(ValueError, match=r"model_spec\['kwargs'\]\['act'\] is a ReLU"):
        save_checkpoint(tmp_path / "x.pt", _zoo("mixste"),
                        model_spec={"name": "mixste", "kwargs": {"act": torch.nn.ReLU()}})
    assert not os.listdir(tmp_path)
    spec = describe_model(_zoo("mixste"), "mixste", "small", {"depth": np.int64(3), "sizes": (1, 2)})._hot_build_spec
    assert spec["kwargs"] == {"depth": 3, "sizes": (1, 2)} and type(spec["kwargs"]["depth"]) is int


def test_a_callable_selector_is_not_recorded_and_says_so(tmp_path):
    model = _zoo("mixste", dict(prune_block=1, tokens=9, selector=lambda feats, f: torch.arange(f).expand(
        feats.shape[0], f)))
    with pytest.warns(UserWarning, match="selector is a callable"):
        save_checkpoint(tmp_path / "m.pt", model)
    assert load_checkpoint(tmp_path / "m.pt")["hot"]["selector"] is None
    with pytest.warns(UserWarning, match=f"using '{DEFAULT_SELECTOR}'"):
        assert load_model(tmp_path / "m.pt").hot.selector == DEFAULT_SELECTOR


def _windows():
    rng = np.random.default_rng(0)
    clip = (rng.normal(scale=0.1, size=(1, 17, 3)) + 0.01 * rng.normal(size=(40, 17, 3)) + [0, 1, 0])
    return PoseWindowDataset(project_clips([clip.astype(np.float32)], 1, seed=0), 27, stride=9)


# -- recovery mode (and the rest of the wrap) on load ---------------------------------------------

@pytest.mark.parametrize("other", [dict(prune_block=1, tokens=9, recover="tra+interpolate"),
                                   dict(prune_block=2, tokens=9, recover="tra"),
                                   dict(prune_block=1, tokens=7, recover="tra")])
def test_other_hot_settings_are_refused_on_every_load(tmp_path, other):
    trained = _zoo("mixste", WRAPS["tra"])
    save_checkpoint(tmp_path / "last.pt", trained, epoch=0)
    expected = re.escape("saved from a HoT model with prune_block=1, tokens=9, recover='tra'; this model has "
                         f"prune_block={other['prune_block']}, tokens={other['tokens']}, recover='{other['recover']}'")
    loads = {
        "load_pretrained": lambda m: load_pretrained(m, tmp_path / "last.pt"),
        "load_model": lambda m: load_model(tmp_path / "last.pt", model=m),
        "resume": lambda m: train(m, _windows(), None, TrainConfig(epochs=1, resume=str(tmp_path / "last.pt"),
                                                                   progress=False, verbose=False)),
    }
    for how, load in loads.items():
        model = wrap_with_hot(build_model("mixste", "small", depth=3), **other)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(CheckpointMismatchError, match=expected) as caught:
            load(model)
        assert "\n" not in str(caught.value), how
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), how  # nothing loaded


def test_plain_and_hot_checkpoints_go_only_where_they_fit(tmp_path):
    save_checkpoint(tmp_path / "plain.pt", _zoo("mixste"), epoch=0)
    save_checkpoint(tmp_path / "hot.pt", _zoo("mixste", WRAPS["tra"]), epoch=0)
    plain, hot = build_model("mixste", "small", depth=3), wrap_with_hot(build_model("mixste", "small", depth=3), 1, 9)
    with pytest.raises(CheckpointMismatchError, match="holds a HoT model .*recover='tra'.*not wrapped"):
        load_pretrained(plain, tmp_path / "hot.pt")
    with pytest.raises(CheckpointMismatchError, match="holds a plain model, but this model is wrapped"):
        train(hot, _windows(), None, TrainConfig(epochs=1, resume=str(tmp_path / "plain.pt"), progress=False,
                                                 verbose=False))
    assert load_pretrained(hot, tmp_path / "plain.pt")  # fine-tuning: the plain weights into a HoT model
    with pytest.raises(CheckpointMismatchError, match=r"does not match the model: shapes differ: \['"):
        load_pretrained(build_model("mixste", "small", depth=3, embed_dim=16), tmp_path / "plain.pt")
    with pytest.raises(RuntimeError, match="does not match"):  # what load_pretrained raised before
        load_pretrained(build_model("mixste", "small", depth=4), tmp_path / "plain.pt")
