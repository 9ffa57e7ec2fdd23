"""The ``train`` command (``python -m hourglass_tokenizer train``, or ``hot-train``).

A command-line mistake is one line ``hot-train: error: ...`` on stderr with exit status 2, found before
any data is built or any step runs: out-of-range numbers, unknown models, configurations or
constructor arguments, a device this machine lacks, checkpoints that are unreadable, unsafe or of
another model or HoT setting, an ``--out`` folder that already holds a run (``--resume`` continues it,
``--overwrite`` replaces it) or cannot be written. Ctrl-C stops with status 130 and prints the command
that resumes from the last checkpoint.

The model and data arguments (:func:`add_model_arguments`, :func:`add_data_arguments`) and the model
they describe (:func:`model_from_args`) serve the ``tune`` command too.
"""
from __future__ import annotations

import argparse
import ast
import copy
import inspect
import os
import re
import shlex
import sys
import time
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn

from ..cli_support import (OneLineParser, UsageError, check_device, command_name, frames_argument, int_at_least,
                           number_at_least, one_line, run_command)
from ..core.checkpoints import HOT_PARAMETERS, checkpoint_state_dict
from ..core.recovery import RECOVERY_MODES
from ..core.selection import DEFAULT_SELECTOR, SELECTORS
from ..core.wrapping import wrap_with_hot
from ..models import build_from_spec
from ..files import FileReadError, OutputPathError, check_output_dir
from .checkpoints import CheckpointMismatchError, describe_model, load_checkpoint, load_pretrained, load_weights
from .datasets import check_data_arguments, make_datasets
from .inference import model_input_channels, model_num_frames
from .trainer import DistillationLoss, TrainConfig, config_value_problem, train

__all__ = ["build_parser", "build_from_spec", "main", "add_model_arguments", "add_data_arguments", "model_from_args",
           "load_plain_weights"]

#: Files of a run in ``--out``; a folder holding one is not reused without ``--resume`` or ``--overwrite``.
RUN_FILES = ("last.pt", "best.pt")


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as a config name


def _model_argument(text: str) -> Tuple[str, Any]:
    """argparse type of ``--model-arg``: ``KEY=VALUE`` with a Python name as key; the value is a Python
    literal (``64``, ``0.1``, ``True``, ``(1, 2)``) or else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a parameter name as KEY (e.g. embed_dim=64), "
                                         f"got {text!r}")
    return key, _parse_value(value)


#: TrainConfig fields the ``train`` command sets under their own names (``lr_decay`` -> ``--lr-decay``).
_CLI_CONFIG_FIELDS = ("epochs", "batch_size", "lr", "lr_decay", "weight_decay", "clip_grad", "velocity_weight",
                      "steps_per_epoch", "max_steps", "eval_every", "eval_flip", "eval_frame_stride", "eval_batch_size")
_CLI_RUN_FIELDS = ("seed", "num_workers", "device")


def _config_help() -> Dict[str, str]:
    """Each TrainConfig field's description, read from the ``Attributes`` section of its docstring."""
    doc = inspect.getdoc(TrainConfig) or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    entries: Dict[str, str] = {}
    for match in re.finditer(r"^    (\w+): (.*(?:\n {8}.*)*)", section, flags=re.MULTILINE):
        entries[match.group(1)] = " ".join(match.group(2).split()).replace("``", "")
    return entries


def _config_type(name: str, kind: type) -> Callable[[str], Any]:
    """argparse type of TrainConfig field ``name``: ``kind`` within the field's bounds
    (:func:`~hourglass_tokenizer.training.trainer.config_value_problem`)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number" if kind is float else kind.__name__
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        problem = config_value_problem(name, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    return parse


def _add_config_arguments(group: Any, names: Sequence[str]) -> None:
    """One option per TrainConfig field, typed, bounded and documented by the dataclass itself."""
    hints = typing.get_type_hints(TrainConfig)
    helps = _config_help()
    defaults = TrainConfig()
    for name in names:
        default, hint = getattr(defaults, name), hints[name]
        flag = "--" + name.replace("_", "-")
        if hint is bool:
            group.add_argument(flag, action="store_true", default=default, help=helps.get(name))
            continue
        kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint)  # Optional[int] -> int
        group.add_argument(flag, type=_config_type(name, kind), default=default,
                           help=f"{helps.get(name, '')} (default: {default})")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--config``, ``--model-arg`` and ``--frames`` (see :func:`model_from_args`)."""
    from ..models import available_models

    zoo = available_models()
    m = p.add_argument_group("model")
    m.add_argument("--model", default="mixste",
                   help=f"zoo model ({', '.join(zoo)}) or a factory 'pkg.module:fn' / 'file.py:fn' (default: mixste)")
    m.add_argument("--config", default="small",
                   help="zoo configuration (default: small); per model: "
                        + "; ".join(f"{name}: {', '.join(configs)}" for name, configs in zoo.items()))
    m.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE", type=_model_argument,
                   help="constructor argument, repeatable (e.g. --model-arg embed_dim=64)")
    m.add_argument("--frames", type=int_at_least(1), default=None,
                   help="window length T (num_frames; maxlen for motionbert, n_frames for motionagformer); "
                        "default: the model's")


def add_data_arguments(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    """The data arguments: the data set, its files, its split, the virtual cameras; with ``training``
    also the training windows (stride, clip count, flip augmentation) and ``--test-data``."""
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="mocap", choices=["mocap", "h36m", "3dhp"],
                   help="mocap: a motion .npz (--data) seen through virtual cameras (default); h36m: Human3.6M "
                        "from VideoPose3D's files in --data-dir, standard protocol (S1 S5 S6 S7 S8 / S9 S11); 3dhp: "
                        "MPI-INF-3DHP from data_train_3dhp.npz / data_test_3dhp.npz in --data-dir (PCK, AUC and "
                        "MPJPE over valid test frames at the end)")
    d.add_argument("--data", default=None, metavar="FILE",
                   help="motion .npz for --dataset mocap (make one with 'python -m hourglass_tokenizer data bvh')")
    d.add_argument("--data-dir", default=None, metavar="DIR",
                   help="--dataset h36m: folder with data_3d_h36m.npz and the 2D file (VideoPose3D's data/); "
                        "--dataset 3dhp: folder with data_train_3dhp.npz and data_test_3dhp.npz")
    d.add_argument("--keypoints", default="cpn", choices=["cpn", "gt"],
                   help="--dataset h36m: 2D input, CPN detections (default) or ground truth")
    d.add_argument("--split-by", default=None, type=_split_spec, metavar="SPEC",
                   help="train/test split of --data instead of the file's own: 'every:N' (every N-th clip, counting "
                        "back from the last, is a test clip) or 'glob:PATTERN' (clips whose name matches are test)")
    if training:
        d.add_argument("--test-data", default=None, metavar="FILE",
                       help="score on another motion .npz (cross-dataset): its test split, or all of it if it has none")
    d.add_argument("--cameras", type=int_at_least(1), default=4, help="virtual cameras per clip")
    d.add_argument("--noise-px", type=number_at_least(0), default=0.0, help="Gaussian noise on the 2D inputs, pixels")
    if training:
        d.add_argument("--train-stride", type=int_at_least(1), default=9, help="frames between training window centres")
        d.add_argument("--max-train-clips", type=int_at_least(1), default=None,
                       help="use the first N training clips (h36m: recordings x cameras), for quick runs")
    d.add_argument("--max-test-clips", type=int_at_least(1), default=None,
                   help="use the first N test clips (h36m: sequences)")
    if training:
        d.add_argument("--no-flip-augment", action="store_true", help="no horizontal-flip augmentation")


def build_parser(prog: str = "hot-train") -> argparse.ArgumentParser:
    """The ``train`` command's argument parser (its errors raise :class:`~hourglass_tokenizer.cli_support.UsageError`)."""
    p = OneLineParser(prog=prog, description=(
        "Train or fine-tune a video pose transformer (optionally wrapped with HoT) on Human3.6M "
        "(VideoPose3D's files) or on 3D motion capture (a motion .npz, e.g. converted from BVH with "
        "'python -m hourglass_tokenizer data bvh'), with 2D inputs from seeded virtual cameras. Models that "
        "take (x, y, confidence), such as motionbert and motionagformer, get a confidence of 1."))
    add_model_arguments(p)
    h = p.add_argument_group("HoT")
    h.add_argument("--hot", action="store_true", help="wrap the model with HoT")
    h.add_argument("--prune-block", type=int_at_least(1), default=None,
                   help="blocks before pruning (default: paper setting)")
    h.add_argument("--tokens", type=int_at_least(1), default=None,
                   help="representative frames kept (default: paper setting)")
    h.add_argument("--recover", default="tra+interpolate", choices=list(RECOVERY_MODES) + ["none"],
                   help="how pruned frames come back before the head: tra+interpolate (default: starts as the "
                        "training-free interpolation, for fine-tuning a pretrained model), tra (the paper's TRA), "
                        "interpolate, interpolate+residual (training-free), nearest, or none (TPC only, seq2frame)")
    h.add_argument("--no-recover", action="store_true", help="the same as --recover none")
    h.add_argument("--selector", default=DEFAULT_SELECTOR, choices=list(SELECTORS),
                   help=f"how the kept frames are chosen (default: {DEFAULT_SELECTOR}; dpc_knn is the paper's)")
    h.add_argument("--hot-config", default=None, metavar="FILE",
                   help="wrap with HoT using the wrap_with_hot arguments in this JSON file, as 'tune' writes it "
                        "(hot.json); implies --hot; --prune-block, --tokens, --selector and --recover given here win")
    h.add_argument("--x-token-init", default="zeros", choices=["zeros", "position"],
                   help="with --recover tra: TRA's queries start at zeros (paper) or at the model's temporal "
                        "position embedding (taken from the --init-from weights)")
    h.add_argument("--distill-weight", type=number_at_least(0), default=0.0,
                   help="add W x MPJPE(HoT model, frozen --init-from model) to the loss (same unit as the pose "
                        "loss: W=1 weighs the pretrained model's prediction like the ground truth)")
    add_data_arguments(p)
    _add_config_arguments(p.add_argument_group("optimisation (TrainConfig)"), _CLI_CONFIG_FIELDS)
    r = p.add_argument_group("run")
    r.add_argument("--out", default=os.path.join("runs", "train"),
                   help="checkpoint directory (default: runs/train); one that holds a run needs --resume or --overwrite")
    r.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that holds a run, replacing its checkpoints")
    r.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from a checkpoint (default: OUT/last.pt)")
    r.add_argument("--init-from", default=None,
                   help="checkpoint to start from: a plain model's (loaded, then wrapped with --hot) or a HoT "
                        "model's (wrapped with --hot, then loaded, to continue a fine-tune)")
    r.add_argument("--trust-checkpoint", action="store_true",
                   help="read --init-from and --resume with full unpickling, for legacy files that hold more than "
                        "tensors and plain data; this runs any code the file carries: only for files you trust")
    _add_config_arguments(r, _CLI_RUN_FIELDS)
    r.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _split_spec(text: str) -> str:
    """argparse type of ``--split-by``: a split specification that :func:`split_clips` accepts."""
    from ..data.readers import split_clips

    try:
        split_clips([], text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def model_from_args(args: argparse.Namespace) -> nn.Module:
    """The plain model ``--model``, ``--config``, ``--model-arg`` and ``--frames`` describe.

    Raises:
        UsageError: an unknown model or configuration, or constructor arguments it does not take (one line).
    """
    kwargs = dict(args.model_arg)
    if args.frames is not None:
        kwargs["num_frames" if ":" in args.model else frames_argument(args.model)] = args.frames
    given = "".join(f" {k}={v!r}" for k, v in kwargs.items())
    try:
        model = build_from_spec(args.model, args.config, kwargs)
    except (ValueError, TypeError, RuntimeError, ImportError, AttributeError, OSError, SyntaxError) as err:
        # RuntimeError: torch refusing a size (embed_dim=-1); the others: a factory that cannot be imported.
        raise UsageError(f"cannot build --model {args.model} --config {args.config}"
                         f"{' with' + given if given else ''}: {one_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"--model {args.model} returned a {type(model).__name__}, not a torch.nn.Module")
    if ":" in args.model:
        try:  # what save_checkpoint records, so that load_model can rebuild a factory's model
            describe_model(model, args.model, None, kwargs)
        except ValueError:
            pass  # arguments that are not plain values: the checkpoint records no spec (save_checkpoint warns)
    return model


def _read_checkpoint(path: str, option: str, args: argparse.Namespace) -> Dict[str, Any]:
    """The checkpoint at ``path``, read without running code; an unreadable or unsafe file is a usage error."""
    try:
        checkpoint = load_checkpoint(path, trusted=getattr(args, "trust_checkpoint", False))
    except FileReadError as err:  # missing, a directory, empty, truncated, garbage, or pickling code
        raise UsageError(f"{option}: {err}") from None
    except Exception as err:  # noqa: BLE001 - torch's unpickler fails on some garbage with IndexError and the like
        raise UsageError(f"{option}: checkpoint {path!r} is not a readable torch file: truncated or another format "
                         f"({type(err).__name__}: {one_line(err)[:120]})") from None
    if not isinstance(checkpoint, Mapping):
        raise UsageError(f"{option} {path}: holds a {type(checkpoint).__name__}, not a checkpoint")
    return dict(checkpoint)


def load_plain_weights(model: nn.Module, path: str, *, option: str = "--init-from",
                       args: Optional[argparse.Namespace] = None) -> None:
    """Load a plain model's checkpoint into ``model`` (see :func:`load_pretrained`), read safely.

    Raises:
        UsageError: the file cannot be read safely or holds another model (one line).
    """
    state = _read_checkpoint(path, option, args or argparse.Namespace())
    try:
        load_pretrained(model, state)
    except CheckpointMismatchError as err:
        raise UsageError(f"{option} {path}: {one_line(err)}") from None


def _recover_of(args: argparse.Namespace) -> Any:
    return False if args.no_recover or args.recover == "none" else args.recover


def _hot_flags(hot: Any) -> str:
    """The command-line flags that wrap a model like the recorded HoT settings ``hot`` ("" if none can)."""
    if not isinstance(hot, Mapping) or not all(isinstance(hot.get(k), int) for k in ("prune_block", "tokens")):
        return ""
    recover = hot.get("recover")
    flags = f"--hot --prune-block {hot['prune_block']} --tokens {hot['tokens']} --recover "
    flags += "none" if recover is False else "tra" if recover is True else str(recover)
    if isinstance(hot.get("selector"), str) and hot["selector"] != DEFAULT_SELECTOR:
        flags += f" --selector {hot['selector']}"
    return flags


def _checked_arguments(args: argparse.Namespace) -> None:
    """Mistakes argparse cannot see on its own, found before anything is read or built."""
    check_device(args.device, allow_auto=True)
    recover = _recover_of(args)
    if args.x_token_init != "zeros" and recover != "tra":
        raise UsageError(f"--x-token-init {args.x_token_init} needs --recover tra (got --recover "
                         f"{'none' if recover is False else recover})")
    if args.distill_weight and not (args.hot and args.init_from):
        raise UsageError("--distill-weight needs --hot and --init-from (the teacher is the pretrained model)")
    unused = [flag for flag, value in (("--prune-block", args.prune_block), ("--tokens", args.tokens)) if value]
    if unused and not args.hot:
        raise UsageError(f"{' and '.join(unused)} need{'s' if len(unused) == 1 else ''} --hot (without it the "
                         "model is not wrapped)")
    found = [name for name in RUN_FILES if os.path.isfile(os.path.join(args.out, name))]
    if found and not args.resume and not args.overwrite:
        raise UsageError(f"--out {args.out} already holds a run ({', '.join(found)}); pass --resume to continue it, "
                         "--overwrite to start afresh and replace it, or choose another --out")
    own = {os.path.realpath(os.path.join(args.out, name)) for name in RUN_FILES}
    if found and args.resume not in (None, "auto") and os.path.realpath(args.resume) not in own and not args.overwrite:
        raise UsageError(f"--out {args.out} holds another run ({', '.join(found)}), which continuing --resume "
                         f"{args.resume} there would replace; pass --overwrite or choose another --out")
    try:
        check_output_dir(args.out)
    except OutputPathError as err:
        raise UsageError(f"--out: {err}") from None
    check_data_arguments(args)


def _wrap(model: nn.Module, args: argparse.Namespace) -> None:
    recover = _recover_of(args)
    try:
        wrap_with_hot(model, args.prune_block, args.tokens, recover=recover, selector=args.selector,
                      x_token_init=args.x_token_init if recover == "tra" else "zeros")
    except (ValueError, TypeError) as err:
        numbers = f" --prune-block {args.prune_block} --tokens {args.tokens}" if args.tokens or args.prune_block else ""
        raise UsageError(f"cannot wrap {args.model} with HoT{numbers}: {one_line(err)}") from None


def _prepare_model(model: nn.Module, args: argparse.Namespace, init: Optional[Mapping[str, Any]]
                   ) -> Optional[nn.Module]:
    """Load ``--init-from`` (``init``, already read) and wrap with ``--hot``, in the documented order: a
    plain checkpoint is loaded first and the model wrapped after it (so ``x_token_init="position"`` sees
    the pretrained embedding); a HoT checkpoint (a fine-tune to continue) is loaded into the wrapped
    model, whose settings must be the recorded ones. Returns the distillation teacher, a copy of the
    model before wrapping, when ``--distill-weight`` is set."""
    teacher = None
    if init is not None:
        where = f"--init-from {args.init_from}"
        try:
            if any(k.split(".")[0] in HOT_PARAMETERS for k in checkpoint_state_dict(init)):
                if not args.hot:
                    hint = _hot_flags(init.get("hot")) or "--hot with its settings"
                    raise UsageError(f"{where} holds a HoT model; add {hint} to continue it")
                _wrap(model, args)
                load_weights(model, init, source=where)
            else:
                load_pretrained(model, init)
                if args.distill_weight:
                    teacher = copy.deepcopy(model)
        except CheckpointMismatchError as err:
            message = one_line(err).replace("the checkpoint", where, 1)
            raise UsageError(message if message.startswith(where) else f"{where}: {message}") from None
        print(f"initialised from {args.init_from}", file=sys.stderr)
    if args.hot and not getattr(model, "hot", None):
        _wrap(model, args)
    return teacher


def _check_resumable(model: nn.Module, checkpoint: Mapping[str, Any], path: str, args: argparse.Namespace) -> None:
    """Refuse a checkpoint that ``train`` could not continue, before any data is built: not a training
    checkpoint, another model or HoT setting (its weights load here, as the trainer will load them), or
    a run that already reached ``--epochs``."""
    where = f"--resume {path}"
    if "epoch" not in checkpoint or "model" not in checkpoint:
        raise UsageError(f"{where}: not a checkpoint written by train (it records no epoch); start from its "
                         "weights with --init-from instead")
    try:
        load_weights(model, checkpoint, source=where)
    except CheckpointMismatchError as err:
        hint = _hot_flags(checkpoint.get("hot"))
        raise UsageError(one_line(err) + (f" (to continue it, pass {hint})" if hint else "")) from None
    done = int(checkpoint["epoch"]) + 1
    if done >= args.epochs:
        raise UsageError(f"{where}: the run already finished epoch {done} of --epochs {args.epochs}; pass a "
                         "larger --epochs to train on")


def _resume_path(args: argparse.Namespace) -> Optional[str]:
    """The checkpoint ``--resume`` names (``OUT/last.pt`` for a bare ``--resume``), or ``None``."""
    if args.resume == "auto":
        path = os.path.join(args.out, "last.pt")
        return path if os.path.exists(path) else None  # the trainer says there is nothing to resume
    return args.resume


def _input_channels(model: nn.Module, args: argparse.Namespace) -> int:
    """How many values per 2D keypoint the model takes: 2 (x, y) or 3 (x, y and a confidence of 1)."""
    channels = model_input_channels(model)
    if channels not in (2, 3):
        raise UsageError(f"{args.model} takes {channels} values per joint; the 2D keypoints give 2 (x, y), or 3 "
                         "with a confidence of 1: build it with 2 or 3 input channels")
    if channels == 3:
        print(f"{args.model} takes (x, y, confidence) per joint: the 2D keypoints get a confidence of 1",
              file=sys.stderr)
    return channels


def _resume_command(prog: str, argv: Sequence[str]) -> str:
    """``argv`` as a command that continues the run: any ``--resume [PATH]`` and ``--overwrite`` replaced
    by a bare ``--resume`` (``OUT/last.pt``)."""
    kept: List[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            if not arg.startswith("-"):
                continue
        if arg == "--resume":
            skip_value = True
            continue
        if arg.startswith("--resume=") or arg == "--overwrite":
            continue
        kept.append(arg)
    return " ".join([prog] + [shlex.quote(a) for a in kept + ["--resume"]])


def _report_interrupt(prog: str, argv: Sequence[str], run: Dict[str, Any]) -> None:
    args = run.get("args")
    last = os.path.join(args.out, "last.pt") if args is not None else None
    # A last.pt older than this run belongs to the run --overwrite is replacing: not one to continue.
    if last and os.path.isfile(last) and (args.resume or os.path.getmtime(last) >= run["started"]):
        try:
            after = f" (after epoch {int(load_checkpoint(last)['epoch']) + 1})"
        except Exception:  # noqa: BLE001 - the epoch is a courtesy; the path is the answer
            after = ""
        print(f"{prog}: interrupted; the last checkpoint is {last}{after}; resume with:\n  "
              f"{_resume_command(prog, argv)}", file=sys.stderr)
    else:
        print(f"{prog}: interrupted before the first checkpoint was written; nothing to resume", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``hot-train`` / ``python -m hourglass_tokenizer train``.

    Returns the exit status: 0; 2 after a one-line error (a command-line mistake, unreadable or
    mismatched checkpoint, bad data, an output folder that holds a run or cannot be written); 130 after
    Ctrl-C, with the command that resumes from the last checkpoint.
    """
    prog = prog or command_name("train", "hot-train")
    argv = list(sys.argv[1:] if argv is None else argv)
    run: Dict[str, Any] = {"started": time.time()}
    try:
        return run_command(prog, lambda: _train(argv, prog, run))
    except KeyboardInterrupt:
        _report_interrupt(prog, argv, run)
        return 130


def _train(argv: Sequence[str], prog: str, run: Dict[str, Any]) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.hot_config:
        from ..tuning.config import hot_config_options
        for key, value in hot_config_options(args.hot_config, argv).items():
            setattr(args, key, "none" if key == "recover" and value is False else value)
        args.hot = True
    _checked_arguments(args)
    run["args"] = args
    if args.threads:
        torch.set_num_threads(args.threads)
    init = _read_checkpoint(args.init_from, "--init-from", args) if args.init_from else None
    resume = _resume_path(args)
    resume_state = _read_checkpoint(resume, "--resume", args) if resume else None
    torch.manual_seed(args.seed)  # model initialisation
    model = model_from_args(args)
    channels = _input_channels(model, args)
    teacher = _prepare_model(model, args, init)
    if resume_state is not None:
        _check_resumable(model, resume_state, resume, args)
    t = model_num_frames(model)
    train_set, test_set, test_by_action = make_datasets(args, t, channels)
    config = TrainConfig(**{name: getattr(args, name) for name in _CLI_CONFIG_FIELDS + _CLI_RUN_FIELDS},
                         trust_checkpoint=args.trust_checkpoint,
                         out_dir=args.out, resume=args.resume, progress=not args.no_progress)
    started = time.time()
    extra = DistillationLoss(teacher, args.distill_weight) if teacher is not None else None
    history = train(model, train_set, test_set, config, extra_loss=extra)
    if history and (not dist.is_initialized() or dist.get_rank() == 0):
        last = history[-1]
        scores = f"test MPJPE {last['mpjpe']:.1f} mm, P-MPJPE {last['p_mpjpe']:.1f} mm" if "mpjpe" in last else ""
        print(f"done in {time.time() - started:.0f} s; {scores}; checkpoints in {args.out}")
        if args.dataset == "3dhp":
            from .evaluation import evaluate_3dhp, format_3dhp_scores
            scores = evaluate_3dhp(model, test_by_action, flip=args.eval_flip, batch_size=config.eval_batch_size,
                                   num_frames=t)
            print(f"last epoch's model: {format_3dhp_scores(scores)}")
        elif test_by_action:
            from .evaluation import evaluate_by_action, format_action_table
            table = evaluate_by_action(model, test_by_action, flip=args.eval_flip, batch_size=config.eval_batch_size,
                                       frame_stride=args.eval_frame_stride, num_frames=t)
            print(f"Human3.6M, last epoch's model, {args.keypoints} 2D, errors in mm averaged per action:\n"
                  f"{format_action_table(table)}\nProtocol 1 (MPJPE) {table['average']['mpjpe']:.1f} mm, "
                  f"Protocol 2 (P-MPJPE) {table['average']['p_mpjpe']:.1f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
