"""The ``train`` command (``python -m hourglass_tokenizer train``, or ``hot-train``)."""
from __future__ import annotations

import argparse
import ast
import copy
import importlib
import importlib.util
import inspect
import os
import re
import sys
import time
import typing
from typing import Any, Dict, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ..core.checkpoints import HOT_PARAMETERS
from ..core.recovery import RECOVERY_MODES
from ..core.selection import SELECTORS
from ..core.wrapping import wrap_with_hot
from .checkpoints import _state_dict_of, load_pretrained
from .datasets import make_datasets
from .inference import model_num_frames
from .trainer import DistillationLoss, TrainConfig, train

__all__ = ["build_parser", "build_from_spec", "main"]


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as a config name


def build_from_spec(name: str, config: str, kwargs: Dict[str, Any]) -> nn.Module:
    """A zoo model (``mixste``, ``motionbert``, ``poseformer``) or a user factory ``package.module:callable``
    (or ``path/to/file.py:callable``) called with ``kwargs``."""
    if ":" not in name:
        from ..models import build_model
        return build_model(name, config, **kwargs)
    module_name, attr = name.rsplit(":", 1)
    if module_name.endswith(".py"):
        spec = importlib.util.spec_from_file_location("user_model", module_name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, attr)(**kwargs)


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


def _add_config_arguments(group: Any, names: Sequence[str]) -> None:
    """One option per TrainConfig field, typed and documented by the dataclass itself."""
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
        group.add_argument(flag, type=kind, default=default, help=f"{helps.get(name, '')} (default: {default})")


def build_parser() -> argparse.ArgumentParser:
    """The ``train`` command's argument parser."""
    p = argparse.ArgumentParser(prog="hot-train", description=(
        "Train or fine-tune a video pose transformer (optionally wrapped with HoT) on Human3.6M "
        "(VideoPose3D's files) or on 3D motion capture (a motion .npz, e.g. converted from BVH with "
        "'python -m hourglass_tokenizer data bvh'), with 2D inputs from seeded virtual cameras."))
    m = p.add_argument_group("model")
    m.add_argument("--model", default="mixste",
                   help="zoo model (mixste, motionbert, poseformer) or a factory 'pkg.module:fn' / 'file.py:fn'")
    m.add_argument("--config", default="small", help="zoo configuration name (default: small)")
    m.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument, repeatable (e.g. --model-arg embed_dim=64)")
    m.add_argument("--frames", type=int, default=None,
                   help="window length T (sets num_frames, or maxlen for motionbert); default: the model's")
    h = p.add_argument_group("HoT")
    h.add_argument("--hot", action="store_true", help="wrap the model with HoT")
    h.add_argument("--prune-block", type=int, default=None, help="blocks before pruning (default: paper setting)")
    h.add_argument("--tokens", type=int, default=None, help="representative frames kept (default: paper setting)")
    h.add_argument("--recover", default="tra+interpolate", choices=list(RECOVERY_MODES) + ["none"],
                   help="how pruned frames come back before the head: tra+interpolate (default: starts as the "
                        "training-free interpolation, for fine-tuning a pretrained model), tra (the paper's TRA), "
                        "interpolate, nearest, or none (TPC only, seq2frame)")
    h.add_argument("--no-recover", action="store_true", help="the same as --recover none")
    h.add_argument("--selector", default="dpc_knn", choices=list(SELECTORS))
    h.add_argument("--x-token-init", default="zeros", choices=["zeros", "position"],
                   help="with --recover tra: TRA's queries start at zeros (paper) or at the model's temporal "
                        "position embedding (taken from the --init-from weights)")
    h.add_argument("--distill-weight", type=float, default=0.0,
                   help="add W x MPJPE(HoT model, frozen --init-from model) to the loss (same unit as the pose "
                        "loss: W=1 weighs the pretrained model's prediction like the ground truth)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="mocap", choices=["mocap", "h36m"],
                   help="mocap: a motion .npz (--data) seen through virtual cameras (default); h36m: Human3.6M "
                        "from VideoPose3D's files in --data-dir, standard protocol (S1 S5 S6 S7 S8 / S9 S11)")
    d.add_argument("--data", default=None, metavar="FILE",
                   help="motion .npz for --dataset mocap (make one with 'python -m hourglass_tokenizer data bvh')")
    d.add_argument("--data-dir", default=None, metavar="DIR",
                   help="--dataset h36m: folder with data_3d_h36m.npz and the 2D file (VideoPose3D's data/)")
    d.add_argument("--keypoints", default="cpn", choices=["cpn", "gt"],
                   help="--dataset h36m: 2D input, CPN detections (default) or ground truth")
    d.add_argument("--split-by", default=None, type=_split_spec, metavar="SPEC",
                   help="train/test split of --data instead of the file's own: 'every:N' (every N-th clip, counting "
                        "back from the last, is a test clip) or 'glob:PATTERN' (clips whose name matches are test)")
    d.add_argument("--test-data", default=None, metavar="FILE",
                   help="score on another motion .npz (cross-dataset): its test split, or all of it if it has none")
    d.add_argument("--cameras", type=int, default=4, help="virtual cameras per clip")
    d.add_argument("--noise-px", type=float, default=0.0, help="Gaussian noise on the 2D inputs, pixels")
    d.add_argument("--train-stride", type=int, default=9, help="frames between training window centres")
    d.add_argument("--max-train-clips", type=int, default=None,
                   help="use the first N training clips (h36m: recordings x cameras), for quick runs")
    d.add_argument("--max-test-clips", type=int, default=None, help="use the first N test clips (h36m: sequences)")
    d.add_argument("--no-flip-augment", action="store_true", help="no horizontal-flip augmentation")
    _add_config_arguments(p.add_argument_group("optimisation (TrainConfig)"), _CLI_CONFIG_FIELDS)
    r = p.add_argument_group("run")
    r.add_argument("--out", default=os.path.join("runs", "train"), help="checkpoint directory")
    r.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from a checkpoint (default: OUT/last.pt)")
    r.add_argument("--init-from", default=None,
                   help="checkpoint to start from: a plain model's (loaded, then wrapped with --hot) or a HoT "
                        "model's (wrapped with --hot, then loaded, to continue a fine-tune)")
    _add_config_arguments(r, _CLI_RUN_FIELDS)
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
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


def _prepare_model(model: nn.Module, args: argparse.Namespace, parser: argparse.ArgumentParser
                   ) -> Optional[nn.Module]:
    """Load ``--init-from`` and wrap with ``--hot``, in the documented order: a plain checkpoint is
    loaded first and the model wrapped after it (so ``x_token_init="position"`` sees the pretrained
    embedding); a HoT checkpoint (a fine-tune to continue) is loaded into the wrapped model. Returns
    the distillation teacher, a copy of the model before wrapping, when ``--distill-weight`` is set."""
    recover = False if args.no_recover or args.recover == "none" else args.recover
    x_token_init = args.x_token_init if recover == "tra" else "zeros"
    if args.x_token_init != "zeros" and recover != "tra":
        parser.error(f"--x-token-init {args.x_token_init} needs --recover tra (got --recover "
                     f"{'none' if recover is False else recover})")
    if args.distill_weight and not (args.hot and args.init_from):
        parser.error("--distill-weight needs --hot and --init-from (the teacher is the pretrained model)")

    def wrap() -> None:
        wrap_with_hot(model, args.prune_block, args.tokens, recover=recover, selector=args.selector,
                      x_token_init=x_token_init)

    teacher = None
    if args.init_from:
        if not os.path.exists(args.init_from):
            parser.error(f"--init-from {args.init_from}: no such checkpoint")
        state = _state_dict_of(args.init_from)
        if any(k.split(".")[0] in HOT_PARAMETERS for k in state):
            if not args.hot:
                parser.error(f"{args.init_from} holds a HoT model; add --hot with its settings to continue it")
            wrap()
            model.load_state_dict(state)
        else:
            load_pretrained(model, state)
            if args.distill_weight:
                teacher = copy.deepcopy(model)
        print(f"initialised from {args.init_from}", file=sys.stderr)
    if args.hot and not getattr(model, "hot", None):
        wrap()
    return teacher


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``hot-train`` / ``python -m hourglass_tokenizer train``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # model initialisation
    kwargs = dict(kv.split("=", 1) for kv in args.model_arg)
    kwargs = {k: _parse_value(v) for k, v in kwargs.items()}
    if args.frames is not None:
        kwargs["maxlen" if args.model.lower() in ("motionbert", "dstformer") else "num_frames"] = args.frames
    model = build_from_spec(args.model, args.config, kwargs)
    teacher = _prepare_model(model, args, parser)
    t = model_num_frames(model)
    from ..data.readers import DataError
    try:
        train_set, test_set, test_by_action = make_datasets(args, t)
    except DataError as exc:  # a user error: one line, argparse's exit status, no traceback
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    config = TrainConfig(**{name: getattr(args, name) for name in _CLI_CONFIG_FIELDS + _CLI_RUN_FIELDS},
                         out_dir=args.out, resume=args.resume, progress=not args.no_progress)
    started = time.time()
    extra = DistillationLoss(teacher, args.distill_weight) if teacher is not None else None
    history = train(model, train_set, test_set, config, extra_loss=extra)
    if history and (not dist.is_initialized() or dist.get_rank() == 0):
        last = history[-1]
        scores = f"test MPJPE {last['mpjpe']:.1f} mm, P-MPJPE {last['p_mpjpe']:.1f} mm" if "mpjpe" in last else ""
        print(f"done in {time.time() - started:.0f} s; {scores}; checkpoints in {args.out}")
        if test_by_action:
            from .evaluation import evaluate_by_action, format_action_table
            table = evaluate_by_action(model, test_by_action, flip=args.eval_flip, batch_size=config.eval_batch_size,
                                       frame_stride=args.eval_frame_stride, num_frames=t)
            print(f"Human3.6M, last epoch's model, {args.keypoints} 2D, errors in mm averaged per action:\n"
                  f"{format_action_table(table)}\nProtocol 1 (MPJPE) {table['average']['mpjpe']:.1f} mm, "
                  f"Protocol 2 (P-MPJPE) {table['average']['p_mpjpe']:.1f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
