"""Every command-line mistake of ``hot-train`` is one line ``hot-train: error: ...`` on stderr with exit
status 2, before any data is built or any step runs (issue 14, "Command-line errors")."""
import os

import numpy as np
import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.models import build_model
from hourglass_tokenizer.training import cli
from hourglass_tokenizer.training.checkpoints import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES = 9


def _clips(n, length=30, seed=0):
    """Random-walk motion of 17 joints around a standing height (metres): enough for the trainer to run."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(scale=0.3, size=(1, 17, 3)) + np.cumsum(rng.normal(scale=0.01, size=(length, 17, 3)), 0)
             + [0, 1, 0]).astype(np.float32) for _ in range(n)]


def _motion(path, clips, fps=50.0, split=("train", "train", "test")):
    offsets = np.cumsum([0] + [len(c) for c in clips])
    np.savez(path, positions=np.concatenate(clips) if clips else np.zeros((0, 17, 3), np.float32),
             clip_offsets=offsets, fps=np.float64(fps), clip_names=np.array(["a", "b", "c"][:len(clips)]),
             split=np.array(split[:len(clips)]))
    return str(path)


def _mixste(depth=2):
    torch.manual_seed(0)
    return build_model("mixste", "small", depth=depth, num_frames=FRAMES)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny motion files and checkpoints, each with something wrong or right about it."""
    root = tmp_path_factory.mktemp("cli_errors")
    clips = _clips(3)
    nan = [c.copy() for c in clips]
    nan[1][7, 5, 2] = np.nan  # clip "b", frame 7, joint 5 (LKnee)
    paths = {
        "motion": _motion(root / "motion.npz", clips),
        "nan": _motion(root / "nan.npz", nan),
        "negfps": _motion(root / "negfps.npz", clips, fps=-5.0),
        "empty_clip": _motion(root / "empty_clip.npz", [clips[0], clips[1][:0], clips[2]]),
        "no_train": _motion(root / "no_train.npz", clips, split=("test", "test", "test")),
        "dir": str(root / "a_folder"),
        "empty": str(root / "empty.pt"),
        "garbage": str(root / "garbage.pt"),
        "truncated": str(root / "truncated.pt"),
        "plain": str(root / "plain.pt"),
        "hot": str(root / "hot.pt"),
        "other": str(root / "other.pt"),
        "bare": str(root / "bare.pt"),
        "finished": str(root / "finished.pt"),
        "missing": str(root / "missing.pt"),
        "a_file": str(root / "a_file"),
    }
    os.makedirs(paths["dir"])
    open(paths["empty"], "wb").close()
    with open(paths["garbage"], "wb") as fh:
        fh.write(b"this is not a checkpoint" * 10)
    with open(paths["a_file"], "w") as fh:
        fh.write("not a folder")
    save_checkpoint(paths["plain"], _mixste(), epoch=0, config={})
    with open(paths["plain"], "rb") as fh:
        data = fh.read()
    with open(paths["truncated"], "wb") as fh:
        fh.write(data[: len(data) // 2])
    save_checkpoint(paths["hot"], wrap_with_hot(_mixste(), prune_block=1, tokens=3), epoch=0, config={})
    torch.manual_seed(0)
    save_checkpoint(paths["other"], build_model("poseformer", "small", num_frames=FRAMES), epoch=0, config={})
    torch.save(_mixste().state_dict(), paths["bare"])
    save_checkpoint(paths["finished"], _mixste(), epoch=4, config={})
    return paths


def _common(files, tmp_path):
    return ["--data", files["motion"], "--frames", str(FRAMES), "--model-arg", "depth=2", "--epochs", "1",
            "--steps-per-epoch", "1", "--batch-size", "2", "--cameras", "1", "--no-progress",
            "--out", str(tmp_path / "run")]


HOT = ["--hot", "--prune-block", "1", "--tokens", "3"]

#: (id, extra arguments ({name} is a path of the ``files`` fixture), part of the message, whether the
#: mistake is only visible in the data (then reading data is allowed, training is not)).
CASES = [
    ("model-nope", ["--model", "nope"], "unknown model 'nope'", False),
    ("model-factory-missing", ["--model", "no_such_module_x:build"], "No module named 'no_such_module_x'", False),
    ("config-nope", ["--config", "nope"], "unknown MixSTE config 'nope'", False),
    ("tokens-0", HOT[:3] + ["--tokens", "0"], "argument --tokens: must be at least 1, got 0", False),
    ("prune-block-99", ["--hot", "--prune-block", "99", "--tokens", "3"],
     "cannot wrap mixste with HoT --prune-block 99 --tokens 3: prune_block must be", False),
    ("tokens-99", ["--hot", "--prune-block", "1", "--tokens", "99"], "tokens must be", False),
    ("tokens-without-hot", ["--tokens", "3"], "--tokens needs --hot", False),
    ("numbers-without-hot", ["--prune-block", "1", "--tokens", "3"], "--prune-block and --tokens need --hot", False),
    ("batch-size-0", ["--batch-size", "0"], "argument --batch-size: must be finite and at least 1, got 0", False),
    ("frames-0", ["--frames", "0"], "argument --frames: must be at least 1, got 0", False),
    ("train-stride-0", ["--train-stride", "0"], "argument --train-stride: must be at least 1, got 0", False),
    ("cameras-0", ["--cameras", "0"], "argument --cameras: must be at least 1, got 0", False),
    ("lr-nan", ["--lr", "nan"], "argument --lr: expected a number, got nan (not a number)", False),
    ("lr-negative", ["--lr", "-1"], "argument --lr: must be finite and at least 0, got -1.0", False),
    ("lr-decay-0", ["--lr-decay", "0"], "argument --lr-decay: must be finite and greater than 0", False),
    ("noise-inf", ["--noise-px", "inf"], "argument --noise-px: must be finite and at least 0", False),
    ("distill-negative", ["--distill-weight", "-1"], "argument --distill-weight: must be finite", False),
    ("epochs--1", ["--epochs", "-1"], "argument --epochs: must be finite and at least 1, got -1", False),
    ("epochs-0", ["--epochs", "0"], "argument --epochs: must be finite and at least 1, got 0", False),
    ("epochs-text", ["--epochs", "ten"], "argument --epochs: expected an integer, got 'ten'", False),
    ("model-arg-abc", ["--model-arg", "embed_dim=abc"],
     "cannot build --model mixste --config small with depth=2 embed_dim='abc'", False),
    ("model-arg-malformed", ["--model-arg", "embed_dim"], "argument --model-arg: expected KEY=VALUE", False),
    ("model-arg-bad-name", ["--model-arg", "2x=1"], "argument --model-arg: expected KEY=VALUE", False),
    ("model-arg-unknown", ["--model-arg", "bogus=1"], "unexpected keyword argument 'bogus'", False),
    ("model-arg-negative", ["--model-arg", "embed_dim=-4"], "cannot build --model mixste", False),
    ("device-cuda", ["--device", "cuda"], "--device cuda: no CUDA GPU is available", False),
    ("device-tpu", ["--device", "tpu"], "--device 'tpu': expected auto, cpu or cuda[:index]", False),
    ("bogus-flag", ["--bogus"], "unrecognized arguments: --bogus", False),
    ("recover-bogus", ["--recover", "magic"], "argument --recover: invalid choice: 'magic'", False),
    ("split-by-bogus", ["--split-by", "every:0"], "argument --split-by: split specification 'every:0'", False),
    ("x-token-init-without-tra", HOT + ["--x-token-init", "position"], "needs --recover tra", False),
    ("distill-without-init", HOT + ["--distill-weight", "1"], "needs --hot and --init-from", False),
    ("data-missing", ["--data", "{missing}"], "--data {missing}: no such file", False),
    ("test-data-missing", ["--test-data", "{missing}"], "--test-data {missing}: no such file", False),
    ("h36m-without-dir", ["--dataset", "h36m"], "--dataset h36m needs --data-dir DIR", False),
    ("h36m-dir-missing", ["--dataset", "h36m", "--data-dir", "{missing}"],
     "Human3.6M file not found: '{missing}/data_3d_h36m.npz'", True),
    ("out-is-a-file", ["--out", "{a_file}"], "--out: '{a_file}' is a file, not a folder", False),
    ("out-under-a-file", ["--out", "{a_file}/run"], "is a file, not a folder", False),
] + [
    (f"{option[2:]}-{kind}", [option, "{" + kind + "}"], message, False)
    for option in ("--init-from", "--resume")
    for kind, message in (("truncated", "is not a readable torch file"), ("garbage", "is not a readable torch file"),
                          ("empty", "'{empty}' is empty"), ("missing", "'{missing}' does not exist"),
                          ("dir", "'{dir}' is a directory, not a file"))
] + [
    ("init-from-other-architecture", ["--init-from", "{other}"], "--init-from {other} does not match the model", False),
    ("init-from-hot-without-hot", ["--init-from", "{hot}"],
     "holds a HoT model; add --hot --prune-block 1 --tokens 3 --recover tra+interpolate", False),
    ("init-from-hot-other-tokens", ["--init-from", "{hot}", "--hot", "--prune-block", "1", "--tokens", "5"],
     "tokens=3", False),
    ("init-from-hot-other-recover", ["--init-from", "{hot}"] + HOT + ["--recover", "tra"], "recover='tra'", False),
    ("resume-other-architecture", ["--resume", "{other}"], "--resume {other} does not match the model", False),
    ("resume-hot-without-hot", ["--resume", "{hot}"],
     "this model is not wrapped; wrap it with those settings first (to continue it, pass --hot --prune-block 1 "
     "--tokens 3 --recover tra+interpolate)", False),
    ("resume-hot-other-tokens", ["--resume", "{hot}", "--hot", "--prune-block", "1", "--tokens", "5"],
     "tokens=5", False),
    ("resume-hot-other-recover", ["--resume", "{hot}"] + HOT + ["--recover", "tra"], "recover='tra'", False),
    ("resume-plain-with-hot", ["--resume", "{plain}"] + HOT, "holds a plain model", False),
    ("resume-a-bare-state-dict", ["--resume", "{bare}"], "not a checkpoint written by train", False),
    ("resume-a-finished-run", ["--resume", "{finished}", "--epochs", "5"],
     "already finished epoch 5 of --epochs 5; pass a larger --epochs", False),
    ("data-nan", ["--data", "{nan}"], "{nan}: clip 'b' frame 7 joint LKnee is [", True),
    ("data-negative-fps", ["--data", "{negfps}"], "{negfps}: fps is -5; expected a positive number", True),
    ("data-empty-clip", ["--data", "{empty_clip}"], "clip 'b' has no frames", True),
    ("data-no-training-clips", ["--data", "{no_train}"], "no training clips", True),
]


@pytest.mark.parametrize("extra, message, data_stage", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_one_line_and_status_2(files, tmp_path, monkeypatch, capsys, extra, message, data_stage):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine

    def not_now(*args, **kwargs):
        raise AssertionError("the mistake must be reported before this")

    monkeypatch.setattr(cli, "train", not_now)
    if not data_stage:
        monkeypatch.setattr(cli, "make_datasets", not_now)
    argv = _common(files, tmp_path) + [a.format(**files) for a in extra]
    assert cli.main(argv, prog="hot-train") == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("hot-train: error: "), lines[0]
    assert message.format(**files) in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not os.path.exists(tmp_path / "run" / "last.pt")


def test_a_folder_holding_a_run_needs_resume_or_overwrite(files, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", _mixste(), epoch=17, config={})
    before = (run / "best.pt").read_bytes()
    monkeypatch.setattr(cli, "make_datasets", lambda *a, **k: pytest.fail("data built before the refusal"))
    assert cli.main(_common(files, tmp_path), prog="hot-train") == 2
    line = capsys.readouterr().err.strip()
    assert line == (f"hot-train: error: --out {run} already holds a run (best.pt); pass --resume to continue it, "
                    "--overwrite to start afresh and replace it, or choose another --out")
    assert (run / "best.pt").read_bytes() == before
    # Continuing another checkpoint in that folder would replace its run too.
    assert cli.main(_common(files, tmp_path) + ["--resume", files["plain"]], prog="hot-train") == 2
    assert "holds another run (best.pt), which continuing --resume" in capsys.readouterr().err
    monkeypatch.undo()
    # --overwrite starts afresh: the new run's checkpoints replace the old ones.
    assert cli.main(_common(files, tmp_path) + ["--overwrite", "--eval-frame-stride", "5"], prog="hot-train") == 0
    assert (run / "best.pt").read_bytes() != before
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] == 0


def test_a_read_only_out_folder_is_one_line(files, tmp_path, read_only_folder, capsys):
    argv = _common(files, tmp_path)[:-1] + [str(read_only_folder / "run")]
    assert cli.main(argv, prog="hot-train") == 2
    assert "is not writable" in capsys.readouterr().err


def test_ctrl_c_says_where_the_last_checkpoint_is_and_how_to_resume(files, tmp_path, monkeypatch, capsys):
    import shlex

    real_train = cli.train

    def interrupted_after_one_epoch(model, train_set, test_set, config, **kwargs):
        real_train(model, train_set, test_set, config.__class__(**{**vars(config), "epochs": 1}), **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted_after_one_epoch)
    argv = _common(files, tmp_path) + ["--epochs", "2", "--eval-frame-stride", "5", "--overwrite"]
    assert cli.main(argv, prog="hot-train") == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = tmp_path / "run" / "last.pt"
    assert f"hot-train: interrupted; the last checkpoint is {last} (after epoch 1); resume with:" in err
    command = shlex.split(err.strip().splitlines()[-1])
    assert command[0] == "hot-train" and command[-1] == "--resume" and "--overwrite" not in command
    monkeypatch.undo()
    assert cli.main(command[1:], prog="hot-train") == 0  # the printed command continues the run
    assert "resumed from" in capsys.readouterr().err
    assert torch.load(last, weights_only=True)["epoch"] == 1

    # Interrupted before any checkpoint of this run: nothing to resume.
    monkeypatch.setattr(cli, "make_datasets", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert cli.main(_common(files, tmp_path)[:-1] + [str(tmp_path / "fresh")], prog="hot-train") == 130
    assert capsys.readouterr().err.strip() == ("hot-train: interrupted before the first checkpoint was written; "
                                               "nothing to resume")


def test_resume_command_drops_overwrite_and_an_explicit_checkpoint():
    assert cli._resume_command("hot-train", ["--out", "r x", "--resume", "a.pt", "--overwrite", "--hot"]) == \
        "hot-train --out 'r x' --hot --resume"
    assert cli._resume_command("python -m hourglass_tokenizer train", ["--resume", "--lr", "1"]) == \
        "python -m hourglass_tokenizer train --lr 1 --resume"
