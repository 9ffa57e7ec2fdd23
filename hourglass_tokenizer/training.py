"""Training and fine-tuning of video pose transformers, with or without HoT.

From Python::

    from hourglass_tokenizer.training import TrainConfig, train
    history = train(model, train_set, test_set, TrainConfig(epochs=10, out_dir="runs/mixste"))

From the command line (``python -m hourglass_tokenizer train --help``, or ``hot-train``)::

    hot-train --model mixste --config small --frames 81 --data motion.npz \\
        --hot --prune-block 2 --tokens 27 --init-from runs/mixste/best.pt --distill-weight 1 --out runs/hot

Multi-GPU / multi-process: launch the same command with ``torchrun --nproc_per_node=N``; the loop then
uses DistributedDataParallel with a DistributedSampler (NCCL on GPUs, gloo on CPU). Without torchrun
it runs in a single process.

The loss is MPJPE in metres on every output frame (seq2seq models), optionally plus
``velocity_weight`` times the velocity error (MPJVE, the temporal-consistency term of MixSTE/HoT);
seq2frame models (output of one frame, or a HoT model with ``recover=False``) are trained on the
window's centre frame ``(T - 1) // 2``. Evaluation reports MPJPE and P-MPJPE in millimetres.
"""
from __future__ import annotations

import argparse
import ast
import copy
import inspect
import re
import typing
import dataclasses
import importlib
import importlib.util
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from .display import progress_bar
from .inference import detect_seq2frame, model_num_frames, predict, select_prediction
from .metrics import MM_PER_M, mpjpe, mpjve, pose_metrics
from .clustering import SELECTORS
from .recovery import RECOVERY_MODES
from .checkpoints import HOT_PARAMETERS, checkpoint_state_dict
from .wrapping import wrap_with_hot

__all__ = ["TrainConfig", "train", "evaluate", "compute_loss", "DistillationLoss", "ExtraLoss", "save_checkpoint",
           "load_checkpoint", "load_pretrained", "main"]

#: ``extra_loss(model, inputs, outputs, targets) -> scalar``, added to the training loss of every step.
ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

@dataclass
class TrainConfig:
    """Hyper-parameters and bookkeeping of :func:`train`.

    Attributes:
        epochs: passes over the training windows (each capped at ``steps_per_epoch`` steps).
        batch_size: windows per step and process.
        lr: AdamW learning rate of the first epoch; epoch ``e`` uses ``lr * lr_decay ** e``.
        lr_decay: multiplicative learning-rate decay per epoch.
        weight_decay: AdamW weight decay.
        clip_grad: max global gradient norm (``None`` or 0: no clipping).
        velocity_weight: weight of the velocity (MPJVE) term of the seq2seq loss; 0 turns it off.
        steps_per_epoch: cap on optimiser steps per epoch (a random subset of windows each epoch).
        max_steps: stop after this many steps in total (smoke tests).
        eval_every: evaluate on the test set every this many epochs (and after the last one).
        eval_flip: flip test-time augmentation during evaluation.
        eval_frame_stride: evaluate every this many frames of each test sequence (1: all frames);
            makes seq2frame evaluation, one forward pass per frame, affordable.
        eval_batch_size: windows per forward pass in evaluation.
        out_dir: where ``last.pt`` (every epoch) and ``best.pt`` (lowest test MPJPE) go; ``None``: no files.
        resume: a checkpoint path, or ``"auto"`` for ``out_dir/last.pt``, to continue from.
        seed: seeds the data order, flip augmentation and dropout of every epoch (``seed + epoch``).
        num_workers: DataLoader workers.
        progress: show a tqdm progress bar with the running loss.
        verbose: print one summary line per epoch (loss, test errors, time) to stderr.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    lr_decay: float = 0.95
    weight_decay: float = 0.01
    clip_grad: Optional[float] = 1.0
    velocity_weight: float = 0.0
    steps_per_epoch: Optional[int] = None
    max_steps: Optional[int] = None
    eval_every: int = 1
    eval_flip: bool = False
    eval_frame_stride: int = 1
    eval_batch_size: int = 64
    out_dir: Optional[str] = None
    resume: Optional[str] = None
    seed: int = 0
    num_workers: int = 0
    progress: bool = True
    verbose: bool = True
    device: str = "auto"


# --------------------------------------------------------------------------------------------------
# loss and evaluation


def compute_loss(model: nn.Module, output: torch.Tensor, target: torch.Tensor,
                 velocity_weight: float = 0.0) -> torch.Tensor:
    """Training loss of one batch: MPJPE (input units) on the predicted frames.

    ``output`` is the model's raw output for windows of ``T = target.shape[1]`` frames. seq2seq
    outputs are compared with every target frame (plus ``velocity_weight`` x MPJVE); seq2frame
    outputs (see :func:`hourglass_tokenizer.inference.select_prediction`) with the centre frame.
    """
    t = target.shape[1]
    pred = select_prediction(model, output, t)
    if pred.shape[1] == 1:
        centre = (t - 1) // 2
        return mpjpe(pred, target[:, centre:centre + 1])
    loss = mpjpe(pred, target)
    if velocity_weight:
        loss = loss + velocity_weight * mpjve(pred, target)
    return loss


class DistillationLoss:
    """Keep a HoT model close to the model it was made from: ``weight x MPJPE(student, teacher)``.

    The teacher is a frozen copy of the unwrapped, pretrained model; its predictions on the same
    inputs are a second target. The term is in the same unit as the training loss (MPJPE, in the
    targets' unit), so ``weight = 1`` counts the teacher as much as the ground truth. Use it as
    ``train(..., extra_loss=DistillationLoss(teacher, 1.0))`` or ``--distill-weight 1``.
    """

    def __init__(self, teacher: nn.Module, weight: float = 1.0) -> None:
        if weight < 0:
            raise ValueError(f"the distillation weight must be >= 0, got {weight}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.weight = weight

    def __call__(self, model: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor,
                 targets: torch.Tensor) -> torch.Tensor:
        t = targets.shape[1]
        with torch.no_grad():
            if next(self.teacher.parameters()).device != inputs.device:
                self.teacher.to(inputs.device)
            wanted = select_prediction(self.teacher, self.teacher(inputs), t)
        pred = select_prediction(model, outputs, t)
        if pred.shape[1] != wanted.shape[1]:  # a seq2frame student learns the teacher's centre frame
            centre = (t - 1) // 2
            wanted = wanted[:, centre:centre + 1]
        return self.weight * mpjpe(pred, wanted)


def _sequences_of(data: Any) -> List[Tuple[np.ndarray, np.ndarray]]:
    if hasattr(data, "sequences"):
        return list(data.sequences)
    return [(np.asarray(a), np.asarray(b)) for a, b in data]


def evaluate(model: nn.Module, data: Any, *, flip: bool = False, batch_size: int = 64,
             frame_stride: int = 1, num_frames: Optional[int] = None) -> Dict[str, float]:
    """MPJPE, P-MPJPE and N-MPJPE in mm (targets in metres) over whole test sequences.

    ``data`` is a :class:`~hourglass_tokenizer.data.PoseWindowDataset` (its ``sequences`` are used,
    not its windows, so every frame counts once) or a list of ``(2D (N, J, 2), 3D (N, J, 3))``.
    Predictions come from :func:`hourglass_tokenizer.inference.predict`; with ``frame_stride > 1``
    only every ``frame_stride``-th frame of each sequence is predicted and scored.
    Errors are averaged over all scored frames. Also returns ``frames``, the number scored.
    """
    preds, targets = [], []
    sequences = _sequences_of(data)
    if not sequences:
        raise ValueError("evaluate: no test sequences")
    seq2frame = detect_seq2frame(model, num_frames, *np.asarray(sequences[0][0]).shape[1:])
    for kp2d, pos3d in sequences:
        frames = np.arange(0, len(kp2d), frame_stride)
        preds.append(predict(model, kp2d, flip=flip, batch_size=batch_size, num_frames=num_frames, frames=frames,
                             seq2frame=seq2frame))
        targets.append(np.asarray(pos3d)[frames])
    pred, target = np.concatenate(preds), np.concatenate(targets)
    # Frames of different sequences (and strided frames) are not consecutive: no velocity error.
    return {**pose_metrics(pred, target, scale=MM_PER_M, velocity=False), "frames": int(len(pred))}


# --------------------------------------------------------------------------------------------------
# checkpoints


def _bare(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _hot_settings(model: nn.Module) -> Optional[Dict[str, Any]]:
    hot = getattr(model, "hot", None)
    if hot is None:
        return None
    selector = hot.selector if isinstance(hot.selector, str) else repr(hot.selector)
    return {"prune_block": hot.prune_block, "tokens": hot.tokens, "recover": hot.recover, "selector": selector}


def save_checkpoint(path: str, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    epoch: int = -1, config: Optional[Mapping[str, Any]] = None,
                    **extra: Any) -> None:
    """Save ``{"model", "optimizer", "epoch", "config", "hot", **extra}`` atomically to ``path``.

    ``model`` is saved unwrapped from DDP; its state dict includes the HoT parameters of a wrapped
    model. ``hot`` records the wrapper settings (``None`` for a plain model) for information.
    """
    bare = _bare(model)
    state = {"model": bare.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "epoch": epoch, "config": dict(config or {}), "hot": _hot_settings(bare), **extra}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-save leaves the previous checkpoint intact


def load_checkpoint(path: str, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (our own files: full unpickling)."""
    return torch.load(path, map_location=map_location, weights_only=False)


def _state_dict_of(source: Union[str, Mapping[str, Any]]) -> Dict[str, torch.Tensor]:
    return checkpoint_state_dict(load_checkpoint(source) if isinstance(source, (str, os.PathLike)) else source)


def load_pretrained(model: nn.Module, source: Union[str, Mapping[str, Any]]) -> List[str]:
    """Load a plain (unwrapped) checkpoint into a model, typically a HoT-wrapped one, to fine-tune it.

    ``source`` is a path or a state dict (bare, or nested under ``model``/``model_pos``/``state_dict``,
    ``module.`` prefixes stripped). Loads with ``strict=False`` and checks that the only missing keys
    are HoT's own (``pos_embed_token``, ``x_token``, ``cross_attention.*``), which keep their fresh
    initialisation, and that nothing is unexpected. Returns the missing keys.

    Raises:
        RuntimeError: other keys are missing or unexpected (a different architecture or config).
    """
    result = _bare(model).load_state_dict(_state_dict_of(source), strict=False)
    foreign = [k for k in result.missing_keys if k.split(".")[0] not in HOT_PARAMETERS]
    if foreign or result.unexpected_keys:
        raise RuntimeError(f"checkpoint does not match the model: missing {foreign[:10]}, unexpected "
                           f"{list(result.unexpected_keys)[:10]} (only HoT keys {HOT_PARAMETERS} may be missing)")
    return list(result.missing_keys)


# --------------------------------------------------------------------------------------------------
# the loop


def _resolve_device(config: TrainConfig) -> torch.device:
    if config.device != "auto":
        return torch.device(config.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _setup_distributed(device: torch.device) -> Tuple[int, int, bool]:
    """(rank, world size, whether this call initialised the process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:  # launched by torchrun
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


def train(model: nn.Module, train_set: Dataset, test_set: Any = None,
          config: Optional[TrainConfig] = None, extra_loss: Optional[ExtraLoss] = None) -> List[Dict[str, Any]]:
    """Train ``model`` on ``train_set`` and evaluate it on ``test_set`` every ``eval_every`` epochs.

    Args:
        model: any video pose transformer, plain or HoT-wrapped, taking ``(b, T, J, 2)``.
        train_set: a dataset of ``(2D window (T, J, 2), 3D target (T, J, 3))`` pairs, e.g.
            :class:`~hourglass_tokenizer.data.PoseWindowDataset` (targets in metres).
        test_set: test sequences (see :func:`evaluate`) or ``None``.
        config: :class:`TrainConfig`.
        extra_loss: ``extra_loss(model, inputs, outputs, targets) -> scalar tensor`` added to every
            step's loss (e.g. :class:`DistillationLoss`); ``model`` is the bare model (not DDP).

    Returns:
        The history: one dict per epoch with ``epoch``, ``lr``, ``train_loss`` (mm; the pose loss
        alone), ``extra_loss`` (mm-scaled mean of ``extra_loss``, when given), ``steps``,
        ``seconds`` and, where evaluated, ``mpjpe`` / ``p_mpjpe`` / ``n_mpjpe`` (mm). A resumed run
        returns the earlier epochs' entries too. With ``out_dir``, ``last.pt`` is written every epoch
        and ``best.pt`` whenever the test MPJPE improves (or every epoch without a test set).
        After the call the model is in eval mode with the last epoch's weights; its ``.grad`` hold
        the last step's (all-reduced) gradients.
    """
    config = config or TrainConfig()
    device = _resolve_device(config)
    rank, world, initialised_here = _setup_distributed(device)
    model.to(device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    t = model_num_frames(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    history: List[Dict[str, Any]] = []
    best = math.inf
    start_epoch = 0

    resume = config.resume
    if resume == "auto":
        resume = os.path.join(config.out_dir, "last.pt") if config.out_dir else None
        if not (resume and os.path.exists(resume)):
            if rank == 0:
                print(f"nothing to resume from ({resume or 'no out_dir'}); starting from epoch 1", file=sys.stderr)
            resume = None
    if resume:
        ckpt = load_checkpoint(resume, map_location=device)
        model.load_state_dict(ckpt["model"])
        if ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch = ckpt["epoch"] + 1
        history = list(ckpt.get("history", []))
        best = ckpt.get("best_mpjpe", math.inf)
        if rank == 0:
            print(f"resumed from {resume} at epoch {start_epoch}", file=sys.stderr)

    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed,
                                 drop_last=world > 1)
    loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                        num_workers=config.num_workers, drop_last=False)
    steps_total = sum(h.get("steps", 0) for h in history)
    show = config.progress and rank == 0
    try:
        for epoch in range(start_epoch, config.epochs):
            if config.max_steps is not None and steps_total >= config.max_steps:
                break
            started = time.time()
            lr = optimizer.param_groups[0]["lr"]
            sampler.set_epoch(epoch)
            # Per-epoch seed: flips and dropout are reproducible and a resumed run continues identically.
            torch.manual_seed(config.seed * 1000 + epoch + rank * 100003)
            n_steps = len(loader) if config.steps_per_epoch is None else min(len(loader), config.steps_per_epoch)
            if config.max_steps is not None:
                n_steps = min(n_steps, config.max_steps - steps_total)
            net.train()
            loss_sum, extra_sum, count = 0.0, 0.0, 0
            bar = progress_bar(n_steps, f"epoch {epoch + 1}/{config.epochs}", show=show) if show else None
            # zip stops before the loader builds a batch that would not be used.
            for _, (x, y) in zip(range(n_steps), loader):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                output = net(x)
                pose_loss = compute_loss(model, output, y, config.velocity_weight)
                loss = pose_loss
                if extra_loss is not None:
                    extra = extra_loss(model, x, output, y)
                    loss = loss + extra
                    extra_sum += float(extra.detach()) * len(x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_grad:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                optimizer.step()
                loss_sum += float(pose_loss.detach()) * len(x)
                count += len(x)
                steps_total += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss_mm=f"{loss_sum / count * MM_PER_M:.1f}", refresh=False)
            if bar is not None:
                bar.close()
            if world > 1:  # report the loss over all processes
                totals = torch.tensor([loss_sum, extra_sum, count], dtype=torch.float64, device=device)
                dist.all_reduce(totals)
                loss_sum, extra_sum, count = float(totals[0]), float(totals[1]), int(totals[2])
            entry: Dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": loss_sum / max(count, 1) * MM_PER_M,
                                     "steps": n_steps}
            if extra_loss is not None:
                entry["extra_loss"] = extra_sum / max(count, 1) * MM_PER_M
            scheduler.step()  # on every rank, before saving: a resumed run starts at the next epoch's rate
            last = epoch == config.epochs - 1 or (config.max_steps is not None and steps_total >= config.max_steps)
            evaluate_now = test_set is not None and ((epoch + 1) % config.eval_every == 0 or last)
            if rank == 0:
                if evaluate_now:
                    entry.update(evaluate(model, test_set, flip=config.eval_flip, batch_size=config.eval_batch_size,
                                          frame_stride=config.eval_frame_stride, num_frames=t))
                entry["seconds"] = time.time() - started
                history.append(entry)
                improved = evaluate_now and entry["mpjpe"] < best
                best = entry["mpjpe"] if improved else best
                if config.out_dir:
                    bookkeeping = {"history": history, "best_mpjpe": best, "scheduler": scheduler.state_dict()}
                    save_checkpoint(os.path.join(config.out_dir, "last.pt"), model, optimizer, epoch,
                                    dataclasses.asdict(config), **bookkeeping)
                    if improved or test_set is None:
                        save_checkpoint(os.path.join(config.out_dir, "best.pt"), model, optimizer, epoch,
                                        dataclasses.asdict(config), **bookkeeping)
                if config.verbose:
                    scores = (f", test MPJPE {entry['mpjpe']:.1f} mm, P-MPJPE {entry['p_mpjpe']:.1f} mm"
                              if evaluate_now else "")
                    print(f"epoch {epoch + 1}: train loss {entry['train_loss']:.1f} mm{scores} "
                          f"({entry['seconds']:.0f} s)", file=sys.stderr, flush=True)
            else:
                history.append(entry)
            if world > 1:
                dist.barrier()  # the other ranks wait for rank 0's evaluation and checkpoint
    finally:
        if initialised_here:
            dist.destroy_process_group()
    model.eval()
    return history


# --------------------------------------------------------------------------------------------------
# command line


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as a config name


def build_from_spec(name: str, config: str, kwargs: Dict[str, Any]) -> nn.Module:
    """A zoo model (``mixste``, ``motionbert``, ``poseformer``) or a user factory ``package.module:callable``
    (or ``path/to/file.py:callable``) called with ``kwargs``."""
    if ":" not in name:
        from .models import build_model
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
    from .data.readers import split_clips

    try:
        split_clips([], text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _test_clips_of(path: str, max_clips: Optional[int]) -> List[np.ndarray]:
    """Clips of a ``--test-data`` file: its test split, or every clip when it has no split or no test clips."""
    from .data import load_cmu

    mocap = load_cmu(path)
    has_test = mocap.split is not None and len(mocap.clip_indices("test")) > 0
    return mocap.clips("test" if has_test else None, max_clips)


def make_cmu_datasets(path: str, num_frames: int, *, cameras: int = 4, noise_px: float = 0.0, seed: int = 0,
                      train_stride: int = 9, flip: bool = True, max_train_clips: Optional[int] = None,
                      max_test_clips: Optional[int] = None, split_by: Optional[str] = None,
                      test_data: Optional[str] = None):
    """Training windows and test sequences from a motion file (CMU layout) through seeded virtual cameras.

    ``split_by`` replaces the file's train/test split (see
    :func:`~hourglass_tokenizer.data.readers.split_clips`); it is required when the file has none.
    With ``test_data`` the test sequences come from that file instead (its test split, or all of it
    when it has none). Returns ``(train PoseWindowDataset, test PoseWindowDataset)``; the test set's
    ``sequences`` are what :func:`evaluate` scores. Training and test cameras use different seeds.

    Raises:
        DataError: a file is missing, has the wrong layout, or a split is empty.
    """
    from .data import PoseWindowDataset, load_cmu, project_clips
    from .data.readers import DataLayoutError

    mocap = load_cmu(path)
    if split_by:
        mocap = mocap.with_split(split_by)
    train_clips = mocap.clips("train", max_train_clips)
    test_clips = _test_clips_of(test_data, max_test_clips) if test_data else mocap.clips("test", max_test_clips)
    where = f"{path}" + (f" split by {split_by}" if split_by else "")
    if not train_clips:
        raise DataLayoutError(f"{where}: no training clips; choose a split with --split-by (e.g. every:5)")
    if not test_clips:
        raise DataLayoutError(f"{test_data or where}: no test clips; choose a split with --split-by (e.g. every:5) "
                              "or score on another file with --test-data")
    train_seqs = project_clips(train_clips, cameras, seed, noise_px=noise_px)
    test_seqs = project_clips(test_clips, cameras, seed + 1, noise_px=noise_px)
    return (PoseWindowDataset(train_seqs, num_frames, stride=train_stride, flip=flip),
            PoseWindowDataset(test_seqs, num_frames, stride=num_frames))


def make_h36m_datasets(data_dir: str, num_frames: int, *, keypoints: str = "cpn", train_stride: int = 9,
                       flip: bool = True, max_train_sequences: Optional[int] = None,
                       max_test_sequences: Optional[int] = None, test_data: Optional[str] = None,
                       cameras: int = 4, noise_px: float = 0.0, seed: int = 0):
    """Human3.6M with the standard protocol (:mod:`hourglass_tokenizer.data.h36m`).

    Trains on S1, S5, S6, S7, S8 and tests on S9, S11 (every recording and camera; ``max_*_sequences``
    keep the first few, for smoke tests). Returns ``(train PoseWindowDataset, test PoseWindowDataset,
    test sequences grouped by action)`` for :func:`~hourglass_tokenizer.data.h36m.evaluate_by_action`.
    With ``test_data`` (a motion file, cross-dataset) the test set comes from it through virtual cameras
    and the grouping is ``None``.
    """
    from .data import PoseWindowDataset, project_clips
    from .data.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS, load_h36m_sequences, sequences_by_action

    train_seqs = load_h36m_sequences(data_dir, TRAIN_SUBJECTS, keypoints=keypoints)[:max_train_sequences]
    train_set = PoseWindowDataset([s.pair for s in train_seqs], num_frames, stride=train_stride, flip=flip)
    if test_data:
        test_pairs = project_clips(_test_clips_of(test_data, max_test_sequences), cameras, seed + 1,
                                   noise_px=noise_px)
        return train_set, PoseWindowDataset(test_pairs, num_frames, stride=num_frames), None
    test_seqs = load_h36m_sequences(data_dir, TEST_SUBJECTS, keypoints=keypoints)[:max_test_sequences]
    return (train_set, PoseWindowDataset([s.pair for s in test_seqs], num_frames, stride=num_frames),
            sequences_by_action(test_seqs))


def make_datasets(args: argparse.Namespace, num_frames: int):
    """The datasets the ``train`` command's data arguments describe: ``(train set, test set, test
    sequences by action or None)``. Raises :class:`~hourglass_tokenizer.data.readers.DataError` for user errors."""
    from .data.readers import MAKE_MOTION_HINT, DataFileNotFoundError

    if args.dataset == "h36m":
        if not args.data_dir:
            raise DataFileNotFoundError("--dataset h36m needs --data-dir DIR, the folder holding VideoPose3D's "
                                        "data_3d_h36m.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz (or _gt)")
        return make_h36m_datasets(
            args.data_dir, num_frames, keypoints=args.keypoints, train_stride=args.train_stride,
            flip=not args.no_flip_augment, max_train_sequences=args.max_train_clips,
            max_test_sequences=args.max_test_clips, test_data=args.test_data, cameras=args.cameras,
            noise_px=args.noise_px, seed=args.seed)
    if not args.data:
        raise DataFileNotFoundError(f"--dataset mocap needs --data FILE, a motion .npz; {MAKE_MOTION_HINT}")
    return (*make_cmu_datasets(
        args.data, num_frames, cameras=args.cameras, noise_px=args.noise_px, seed=args.seed,
        train_stride=args.train_stride, flip=not args.no_flip_augment, max_train_clips=args.max_train_clips,
        max_test_clips=args.max_test_clips, split_by=args.split_by, test_data=args.test_data), None)


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
    from .data.readers import DataError
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
            from .data.h36m import evaluate_by_action, format_action_table
            table = evaluate_by_action(model, test_by_action, flip=args.eval_flip, batch_size=config.eval_batch_size,
                                       frame_stride=args.eval_frame_stride, num_frames=t)
            print(f"Human3.6M, last epoch's model, {args.keypoints} 2D, errors in mm averaged per action:\n"
                  f"{format_action_table(table)}\nProtocol 1 (MPJPE) {table['average']['mpjpe']:.1f} mm, "
                  f"Protocol 2 (P-MPJPE) {table['average']['p_mpjpe']:.1f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
