"""Training loop: loss falls, checkpoints save/resume/load, fine-tuning from a plain checkpoint, DDP."""
import copy
import os
import re
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from hourglass_tokenizer.data import PARENTS, PoseWindowDataset, load_cmu, project_clips
from hourglass_tokenizer.training import (DistillationLoss, TrainConfig, compute_loss, evaluate, load_checkpoint,
                                          load_pretrained, main, train)
from hourglass_tokenizer.core.wrapping import HOT_PARAMETERS
from hourglass_tokenizer.core.selection import DEFAULT_SELECTOR

SHARED_CMU = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cmu_mocap_h36m17_50fps.npz")
T = 27


pytestmark = pytest.mark.usefixtures("one_thread")


def _synthetic_clips(n_clips, length, seed):
    """Smooth synthetic motion in the 17-joint layout (world metres, Y up): a random rest pose whose
    joints swing sinusoidally while the body walks."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n_clips):
        offsets = rng.normal(scale=0.15, size=(17, 3)) + np.array([0, 0.12, 0])
        rest = np.zeros((17, 3))
        for j in range(1, 17):
            rest[j] = rest[PARENTS[j]] + offsets[j]
        t = np.arange(length)[:, None, None] / 50.0
        freq, phase = rng.uniform(0.5, 2.0, size=(1, 17, 3)), rng.uniform(0, 6.3, size=(1, 17, 3))
        motion = 0.1 * np.sin(2 * np.pi * freq * t + phase) + np.concatenate([0.5 * t, 0 * t + 1.0, 0 * t], -1)
        clips.append((rest[None] + motion).astype(np.float32))
    return clips


def _clips(split, n, length=200):
    """A few CMU clips when the shared file is there, synthetic motion otherwise."""
    if os.path.exists(SHARED_CMU):
        return [c[:length] for c in load_cmu(SHARED_CMU).clips(split, n)]
    return _synthetic_clips(n, length, seed=0 if split == "train" else 1)


@pytest.fixture(scope="module")
def datasets():
    train_set = PoseWindowDataset(project_clips(_clips("train", 3), 2, seed=0), T, stride=4, flip=True)
    test_set = PoseWindowDataset(project_clips(_clips("test", 1, 60), 1, seed=1), T, stride=T)
    return train_set, test_set


def _mixste(hot=True, recover=True):
    from hourglass_tokenizer import wrap_with_hot
    from hourglass_tokenizer.models import build_model

    torch.manual_seed(0)
    model = build_model("mixste", "small", depth=3, drop_path_rate=0.0)
    return wrap_with_hot(model, prune_block=1, tokens=9, recover=recover) if hot else model


def _config(tmp_path, **kw):
    base = dict(epochs=3, steps_per_epoch=8, batch_size=8, lr=2e-3, lr_decay=0.9, progress=False,
                out_dir=str(tmp_path), seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_checkpoints_resume_and_load_into_a_fresh_wrapped_model(datasets, tmp_path):
    train_set, test_set = datasets
    model = _mixste()
    history = train(model, train_set, test_set, _config(tmp_path / "a", epochs=2))
    assert [h["epoch"] for h in history] == [0, 1]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(np.isfinite(h["mpjpe"]) and h["p_mpjpe"] <= h["mpjpe"] for h in history)
    assert history[1]["lr"] == pytest.approx(2e-3 * 0.9)
    for name in ("last.pt", "best.pt"):
        assert (tmp_path / "a" / name).exists()
    ckpt = load_checkpoint(str(tmp_path / "a" / "last.pt"))
    assert ckpt["epoch"] == 1 and ckpt["optimizer"] is not None and ckpt["config"]["lr"] == 2e-3
    assert {k: ckpt["hot"][k] for k in ("prune_block", "tokens", "recover", "selector", "k", "seed")} == {
        "prune_block": 1, "tokens": 9, "recover": "tra", "selector": DEFAULT_SELECTOR, "k": 2, "seed": 0}
    assert ckpt["model_spec"] == {"name": "mixste", "config": "small", "kwargs": {"depth": 3, "drop_path_rate": 0.0}}
    assert {"pos_embed_token", "x_token"} <= set(ckpt["model"])

    # Resume for one more epoch == an uninterrupted 3-epoch run.
    resumed = train(model, train_set, test_set, _config(tmp_path / "a", epochs=3, resume="auto"))
    assert [h["epoch"] for h in resumed] == [0, 1, 2]
    straight_model = _mixste()
    straight = train(straight_model, train_set, test_set, _config(tmp_path / "b", epochs=3))
    assert resumed[-1]["train_loss"] == pytest.approx(straight[-1]["train_loss"], rel=1e-4)
    for (k, a), b in zip(model.state_dict().items(), straight_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)

    # A fresh wrapped model loads the checkpoint strictly and gives identical outputs.
    fresh = _mixste()
    fresh.load_state_dict(load_checkpoint(str(tmp_path / "a" / "last.pt"))["model"])
    x = torch.randn(2, T, 17, 2) * 0.3
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


def test_init_from_a_plain_checkpoint_only_hot_keys_missing(datasets, tmp_path):
    train_set, _ = datasets
    plain = _mixste(hot=False)
    train(plain, train_set, None, _config(tmp_path, epochs=1, steps_per_epoch=2))
    hot = _mixste()
    missing = load_pretrained(hot, str(tmp_path / "best.pt"))
    assert missing and all(k.split(".")[0] in HOT_PARAMETERS for k in missing)
    assert {"pos_embed_token", "x_token"} <= set(missing) and any(k.startswith("cross_attention.") for k in missing)
    for k, v in plain.state_dict().items():
        assert torch.equal(hot.state_dict()[k], v)
    # DataParallel-style prefixes are stripped; a different architecture is refused.
    prefixed = {"module." + k: v for k, v in plain.state_dict().items()}
    assert sorted(load_pretrained(_mixste(), {"model_pos": prefixed})) == sorted(missing)
    from hourglass_tokenizer.models import build_model
    with pytest.raises(RuntimeError, match="does not match"):
        load_pretrained(_mixste(), build_model("mixste", "small", depth=4).state_dict())


def test_seq2frame_loss_uses_the_centre_frame():
    target = torch.zeros(2, 5, 17, 3)
    target[:, 2] = 1.0  # only the centre frame is non-zero
    one_frame = torch.ones(2, 1, 17, 3)
    assert compute_loss(nn.Identity(), one_frame, target).item() == pytest.approx(0.0)
    tpc = _mixste(recover=False)
    out = torch.zeros(2, 5, 17, 3)
    out[:, 2] = 1.0
    assert compute_loss(tpc, out, target).item() == pytest.approx(0.0)
    seq2seq_loss = compute_loss(_mixste(), torch.ones(2, 5, 17, 3), target)
    assert seq2seq_loss.item() == pytest.approx(0.8 * 3 ** 0.5)  # 4 of 5 frames off by sqrt(3)
    with_velocity = compute_loss(_mixste(), torch.ones(2, 5, 17, 3), target, velocity_weight=1.0)
    assert with_velocity.item() > seq2seq_loss.item()


def test_tpc_only_model_trains_and_evaluates(datasets, tmp_path):
    train_set, test_set = datasets
    model = _mixste(recover=False)
    history = train(model, train_set, test_set, _config(tmp_path, epochs=1, steps_per_epoch=3))
    assert history[0]["frames"] == sum(len(s[0]) for s in test_set.sequences)
    scores = evaluate(model, test_set, frame_stride=5)
    assert scores["frames"] == sum(len(range(0, len(s[0]), 5)) for s in test_set.sequences)


@pytest.mark.skipif(not os.path.exists(SHARED_CMU), reason="shared CMU file ../shared/data/cmu_mocap_h36m17_50fps.npz "
                    "is absent: the command-line run needs it")
def test_command_line_training_and_fine_tuning(tmp_path, capsys):
    common = ["--frames", "27", "--model-arg", "depth=2", "--max-train-clips", "2", "--max-test-clips", "1",
              "--cameras", "1", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--no-progress",
              "--data", SHARED_CMU, "--eval-frame-stride", "4"]
    assert main(common + ["--out", str(tmp_path / "plain")]) == 0
    assert main(common + ["--out", str(tmp_path / "hot"), "--hot", "--prune-block", "1", "--tokens", "9",
                          "--init-from", str(tmp_path / "plain" / "best.pt")]) == 0
    out = capsys.readouterr()
    assert "initialised from" in out.err and "test MPJPE" in out.out
    assert load_checkpoint(str(tmp_path / "hot" / "last.pt"))["hot"]["tokens"] == 9
    assert main(common + ["--out", str(tmp_path / "hot"), "--hot", "--prune-block", "1", "--tokens", "9",
                          "--epochs", "2", "--resume"]) == 0
    assert "resumed" in capsys.readouterr().err
    # With lr 0 the fine-tuned x_token is still its start: the pretrained temporal position embedding.
    assert main(common + ["--out", str(tmp_path / "xpos"), "--hot", "--prune-block", "1", "--tokens", "9",
                          "--recover", "tra", "--x-token-init", "position", "--lr", "0",
                          "--init-from", str(tmp_path / "plain" / "best.pt")]) == 0
    pretrained = load_checkpoint(str(tmp_path / "plain" / "best.pt"))["model"]["Temporal_pos_embed"]
    tuned = load_checkpoint(str(tmp_path / "xpos" / "last.pt"))["model"]["x_token"]
    assert torch.equal(tuned, pretrained) and pretrained.abs().sum() > 0
    # Distillation from the --init-from model; its term is reported next to the pose loss.
    assert main(common + ["--out", str(tmp_path / "distill"), "--hot", "--prune-block", "1", "--tokens", "9",
                          "--distill-weight", "0.5", "--init-from", str(tmp_path / "plain" / "best.pt")]) == 0
    history = load_checkpoint(str(tmp_path / "distill" / "last.pt"))["history"]
    assert history[-1]["extra_loss"] > 0
    capsys.readouterr()
    for wrong, message in ((["--x-token-init", "position"], "needs --recover tra"),
                           (["--distill-weight", "1"], "needs --hot and --init-from")):
        assert main(common + ["--out", str(tmp_path / "bad"), "--hot", "--prune-block", "1", "--tokens", "9"]
                    + wrong) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err


def test_distillation_pulls_the_hot_model_towards_its_teacher(datasets, tmp_path):
    """The distillation term falls during training, and the teacher stays frozen."""
    from hourglass_tokenizer import wrap_with_hot

    train_set, _ = datasets
    teacher = _mixste(hot=False)
    train(teacher, train_set, None, _config(tmp_path / "t", epochs=1, out_dir=None))
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = wrap_with_hot(copy.deepcopy(teacher), prune_block=1, tokens=3, recover="tra")
    distill = DistillationLoss(copy.deepcopy(teacher), weight=1.0)
    history = train(student, train_set, None, _config(tmp_path / "s", epochs=3, out_dir=None), extra_loss=distill)
    assert history[-1]["extra_loss"] < history[0]["extra_loss"]
    assert all(torch.equal(distill.teacher.state_dict()[k], v) for k, v in frozen.items())
    assert not any(p.requires_grad for p in distill.teacher.parameters())
    # The term is MPJPE between the two models' predictions, times the weight.
    x, y = next(iter(torch.utils.data.DataLoader(train_set, batch_size=4)))
    with torch.no_grad():
        value = DistillationLoss(teacher, weight=2.0)(student, x, student(x), y)
        expected = 2.0 * (student(x) - teacher(x)).norm(dim=-1).mean()
    torch.testing.assert_close(value, expected)
    with pytest.raises(ValueError, match=">= 0"):
        DistillationLoss(teacher, weight=-1.0)


# ----- DistributedDataParallel on CPU (gloo) --------------------------------------------------------

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = _mixste()  # same seed: same initial weights on both ranks
        clips = _synthetic_clips(2, 80, seed=3)
        data = PoseWindowDataset(project_clips(clips, 1, seed=0), T, stride=5)
        config = TrainConfig(epochs=1, max_steps=1, batch_size=4, lr=1e-3, progress=False, device="cpu")
        seen = []

        class Recording(PoseWindowDataset):  # records which windows this rank trains on
            def __getitem__(self, i):
                seen.append(int(i))
                return super().__getitem__(i)

        data.__class__ = Recording
        history = train(model, data, None, config)
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save({"grads": grads, "seen": seen, "steps": history[0]["steps"]}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_two_cpu_processes_gloo_have_identical_gradients(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert r0["steps"] == r1["steps"] == 1
    assert set(r0["seen"]).isdisjoint(r1["seen"]) and len(r0["seen"]) == len(r1["seen"]) == 4  # different data
    assert r0["grads"].keys() == r1["grads"].keys() and len(r0["grads"]) > 10
    assert any(g.abs().sum() > 0 for g in r0["grads"].values())
    for name, g in r0["grads"].items():
        torch.testing.assert_close(g, r1["grads"][name], rtol=0, atol=1e-7, msg=name)


def test_seq2frame_zoo_model_poseformer_trains_and_predicts(datasets, tmp_path):
    from hourglass_tokenizer.training.inference import predict
    from hourglass_tokenizer.models import build_model

    train_set, test_set = datasets
    torch.manual_seed(0)
    model = build_model("poseformer", "small")  # (b, 27, 17, 2) -> (b, 1, 17, 3)
    history = train(model, train_set, test_set, _config(tmp_path, epochs=1, steps_per_epoch=2, eval_frame_stride=7))
    assert np.isfinite(history[0]["mpjpe"])
    kp = test_set.sequences[0][0]
    assert predict(model, kp).shape == (len(kp), 17, 3)


def test_command_line_options_are_the_config_fields():
    """The CLI is generated from TrainConfig: same defaults, same descriptions, one declaration."""
    from hourglass_tokenizer.training.cli import _CLI_CONFIG_FIELDS, _CLI_RUN_FIELDS, build_parser

    args = build_parser().parse_args([])
    defaults = TrainConfig()
    for name in _CLI_CONFIG_FIELDS + _CLI_RUN_FIELDS:
        assert getattr(args, name) == getattr(defaults, name), name
    usage = build_parser().format_help()
    assert "multiplicative learning-rate decay per epoch" in usage and "--eval-batch-size" in usage
    parsed = build_parser().parse_args(["--lr-decay", "0.5", "--clip-grad", "2", "--eval-flip"])
    assert (parsed.lr_decay, parsed.clip_grad, parsed.eval_flip) == (0.5, 2.0, True)


def _write_motion(path, n_clips=3, length=40):
    clips = _synthetic_clips(n_clips, length, seed=2)
    np.savez(path, positions=np.concatenate(clips), clip_offsets=np.cumsum([0] + [len(c) for c in clips]),
             fps=np.float64(50), clip_names=np.array([f"c{i}" for i in range(n_clips)]),
             split=np.array(["train"] * (n_clips - 1) + ["test"]))
    return str(path)


@pytest.mark.parametrize("model, config, extra", [
    ("motionbert", "small", []),
    ("motionagformer", "tiny", []),
    ("motionagformer", "tiny", ["--hot", "--prune-block", "1", "--tokens", "3"]),
    ("mixste", "small", ["--model-arg", "depth=2"]),
    ("poseformer", "small", []),
])
def test_the_trainer_runs_every_zoo_model(tmp_path, capsys, model, config, extra):
    """MotionBERT and MotionAGFormer take (x, y, confidence): the trainer appends a confidence of 1 to the
    2D keypoints, for training and for the evaluation, and says so in one line."""
    from hourglass_tokenizer.models import build_model
    from hourglass_tokenizer.training.inference import model_input_channels

    argv = ["--data", _write_motion(tmp_path / "motion.npz"), "--model", model, "--config", config, "--frames", "9",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--cameras", "1", "--no-progress",
            "--eval-frame-stride", "5", "--out", str(tmp_path / "run")] + extra
    assert main(argv) == 0
    captured = capsys.readouterr()
    takes_confidence = model_input_channels(build_model(model, config)) == 3
    assert takes_confidence == (model in ("motionbert", "motionagformer"))
    note = f"{model} takes (x, y, confidence) per joint: the 2D keypoints get a confidence of 1"
    assert (note in captured.err) == takes_confidence
    history = load_checkpoint(str(tmp_path / "run" / "last.pt"))["history"]
    assert np.isfinite(history[0]["train_loss"]) and np.isfinite(history[0]["mpjpe"])


def test_help_lists_every_zoo_model(capsys):
    from hourglass_tokenizer.models import available_models

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"zoo model ({', '.join(available_models())})" in text and "motionagformer: " in text


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "must be finite and at least 1, got 0"), ("epochs", -1, "at least 1"),
    ("lr", float("nan"), "not a number"), ("lr", -0.1, "at least 0"), ("lr_decay", 0.0, "greater than 0"),
    ("batch_size", 0, "at least 1"), ("clip_grad", float("inf"), "finite"), ("eval_frame_stride", 0, "at least 1"),
    ("steps_per_epoch", "3", "expected a number, got '3'"),
])
def test_train_config_rejects_values_that_would_do_nothing_or_break(field, value, message):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}: .*{re.escape(message)}"):
        TrainConfig(**{field: value})
    TrainConfig(lr=0.0, clip_grad=None, max_steps=None, num_workers=0)  # the bounds themselves are allowed


def test_an_empty_training_set_is_refused():
    with pytest.raises(ValueError, match="train_set is empty"):
        train(_mixste(), PoseWindowDataset([], T), None, TrainConfig(epochs=1, progress=False))
