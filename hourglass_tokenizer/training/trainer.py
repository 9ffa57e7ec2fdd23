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

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..display import progress_bar
from .checkpoints import load_checkpoint, load_weights, save_checkpoint
from .evaluation import evaluate
from .inference import model_num_frames, select_prediction
from .metrics import MM_PER_M, mpjpe, mpjve

__all__ = ["TrainConfig", "train", "compute_loss", "DistillationLoss", "ExtraLoss", "config_value_problem"]

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
        trust_checkpoint: read ``resume`` with full unpickling (``trusted=True`` of
            :func:`~hourglass_tokenizer.training.checkpoints.load_checkpoint`), for legacy files that
            pickle more than tensors and plain data. It runs any code the file carries: only for
            files from a source you trust.
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
    trust_checkpoint: bool = False
    seed: int = 0
    num_workers: int = 0
    progress: bool = True
    verbose: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            problem = config_value_problem(field.name, getattr(self, field.name))
            if problem:
                raise ValueError(f"TrainConfig.{field.name}: {problem}")


#: Smallest value of each numeric TrainConfig field and whether that value itself is allowed
#: (``None`` is allowed where the field is Optional).
_LOWER_BOUNDS: Dict[str, Tuple[float, bool]] = {
    "epochs": (1, True), "batch_size": (1, True), "lr": (0, True), "lr_decay": (0, False),
    "weight_decay": (0, True), "clip_grad": (0, True), "velocity_weight": (0, True), "steps_per_epoch": (1, True),
    "max_steps": (1, True), "eval_every": (1, True), "eval_frame_stride": (1, True), "eval_batch_size": (1, True),
    "num_workers": (0, True)}


def config_value_problem(name: str, value: Any) -> Optional[str]:
    """Why ``value`` cannot be :class:`TrainConfig`'s field ``name`` (``None`` when it can): numbers
    must be finite and within the field's bounds (``epochs >= 1``, ``lr >= 0``, ``lr_decay > 0``...)."""
    if name not in _LOWER_BOUNDS or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {value!r}"
    if math.isnan(value):
        return f"expected a number, got {value!r} (not a number)"
    low, inclusive = _LOWER_BOUNDS[name]
    if math.isinf(value) or value < low or (value == low and not inclusive):
        return f"must be finite and {'at least' if inclusive else 'greater than'} {low}, got {value}"
    return None


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


class _Run:
    """The state of one :func:`train` call between its epochs: optimiser, schedule, history, best score."""

    def __init__(self, config: TrainConfig, model: nn.Module, net: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, device: torch.device, rank: int, world: int, extra_loss: Optional[ExtraLoss],
                 frames: int) -> None:
        self.config, self.model, self.net, self.optimizer, self.scheduler = config, model, net, optimizer, scheduler
        self.device, self.rank, self.world, self.extra_loss, self.frames = device, rank, world, extra_loss, frames
        self.history: List[Dict[str, Any]] = []
        self.best = math.inf
        self.start_epoch = 0
        self.steps_total = 0

    def resume(self) -> None:
        """Continue from ``config.resume`` (``"auto"``: ``out_dir/last.pt`` when there is one)."""
        config, resume = self.config, self.config.resume
        if resume == "auto":
            resume = os.path.join(config.out_dir, "last.pt") if config.out_dir else None
            if not (resume and os.path.exists(resume)):
                if self.rank == 0:
                    print(f"nothing to resume from ({resume or 'no out_dir'}); starting from epoch 1", file=sys.stderr)
                resume = None
        if not resume:
            return
        # Tensors and plain data only, so no code runs, unless the user vouched for the file.
        ckpt = load_checkpoint(resume, map_location=self.device, trusted=config.trust_checkpoint)
        if not isinstance(ckpt, dict) or "epoch" not in ckpt:
            raise ValueError(f"{resume!r} is not a checkpoint written by train (it records no epoch); start from "
                             "its weights with --init-from (load_pretrained) instead")
        load_weights(self.model, ckpt, source=f"checkpoint {resume!r}")  # refuses other HoT settings, strictly
        if ckpt.get("optimizer"):
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler"):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.start_epoch = ckpt["epoch"] + 1
        self.history = list(ckpt.get("history", []))
        self.best = ckpt.get("best_mpjpe", math.inf)
        self.steps_total = sum(h.get("steps", 0) for h in self.history)
        if self.rank == 0:
            print(f"resumed from {resume} at epoch {self.start_epoch}", file=sys.stderr)

    def epoch(self, epoch: int, loader: DataLoader) -> Dict[str, Any]:
        """One pass of optimiser steps; returns the epoch's history entry (losses in mm)."""
        config, model = self.config, self.model
        started, lr = time.time(), self.optimizer.param_groups[0]["lr"]
        # Per-epoch seed: flips and dropout are reproducible and a resumed run continues identically.
        torch.manual_seed(config.seed * 1000 + epoch + self.rank * 100003)
        n_steps = len(loader) if config.steps_per_epoch is None else min(len(loader), config.steps_per_epoch)
        if config.max_steps is not None:
            n_steps = min(n_steps, config.max_steps - self.steps_total)
        self.net.train()
        loss_sum, extra_sum, count = 0.0, 0.0, 0
        show = config.progress and self.rank == 0
        # The bar closes however the epoch ends (an interrupt's message then starts on its own line).
        with progress_bar(n_steps, f"epoch {epoch + 1}/{config.epochs}", show=show) as bar:
            # zip stops before the loader builds a batch that would not be used.
            for _, (x, y) in zip(range(n_steps), loader):
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                output = self.net(x)
                pose_loss = compute_loss(model, output, y, config.velocity_weight)
                loss = pose_loss
                if self.extra_loss is not None:
                    extra = self.extra_loss(model, x, output, y)
                    loss = loss + extra
                    extra_sum += float(extra.detach()) * len(x)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_grad:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                self.optimizer.step()
                loss_sum += float(pose_loss.detach()) * len(x)
                count += len(x)
                self.steps_total += 1
                if show:
                    bar.update(1)
                    bar.set_postfix(loss_mm=f"{loss_sum / count * MM_PER_M:.1f}", refresh=False)
        if self.world > 1:  # report the loss over all processes
            totals = torch.tensor([loss_sum, extra_sum, count], dtype=torch.float64, device=self.device)
            dist.all_reduce(totals)
            loss_sum, extra_sum, count = float(totals[0]), float(totals[1]), int(totals[2])
        entry: Dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": loss_sum / max(count, 1) * MM_PER_M,
                                 "steps": n_steps, "started": started}
        if self.extra_loss is not None:
            entry["extra_loss"] = extra_sum / max(count, 1) * MM_PER_M
        return entry

    def finish_epoch(self, epoch: int, entry: Dict[str, Any], test_set: Any) -> None:
        """Step the schedule, evaluate, record and save (rank 0), and report the epoch."""
        config = self.config
        started = entry.pop("started")
        self.scheduler.step()  # on every rank, before saving: a resumed run starts at the next epoch's rate
        last = epoch == config.epochs - 1 or (config.max_steps is not None and self.steps_total >= config.max_steps)
        evaluate_now = test_set is not None and ((epoch + 1) % config.eval_every == 0 or last)
        if self.rank == 0:
            if evaluate_now:
                entry.update(evaluate(self.model, test_set, flip=config.eval_flip, batch_size=config.eval_batch_size,
                                      frame_stride=config.eval_frame_stride, num_frames=self.frames))
            entry["seconds"] = time.time() - started
            self.history.append(entry)
            improved = evaluate_now and entry["mpjpe"] < self.best
            self.best = entry["mpjpe"] if improved else self.best
            if config.out_dir:
                self._save(epoch, best_too=improved or test_set is None)
            if config.verbose:
                scores = (f", test MPJPE {entry['mpjpe']:.1f} mm, P-MPJPE {entry['p_mpjpe']:.1f} mm"
                          if evaluate_now else "")
                print(f"epoch {epoch + 1}: train loss {entry['train_loss']:.1f} mm{scores} "
                      f"({entry['seconds']:.0f} s)", file=sys.stderr, flush=True)
        else:
            self.history.append(entry)
        if self.world > 1:
            dist.barrier()  # the other ranks wait for rank 0's evaluation and checkpoint

    def _save(self, epoch: int, best_too: bool) -> None:
        bookkeeping = {"history": self.history, "best_mpjpe": self.best, "scheduler": self.scheduler.state_dict()}
        names = ("last.pt", "best.pt") if best_too else ("last.pt",)
        for name in names:
            save_checkpoint(os.path.join(self.config.out_dir, name), self.model, self.optimizer, epoch,
                            dataclasses.asdict(self.config), **bookkeeping)


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
    if len(train_set) == 0:
        raise ValueError("train_set is empty: there are no training windows to learn from")
    device = _resolve_device(config)
    rank, world, initialised_here = _setup_distributed(device)
    model.to(device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    run = _Run(config, model, net, optimizer, scheduler, device, rank, world, extra_loss, model_num_frames(model))
    run.resume()
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed,
                                 drop_last=world > 1)
    loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                        num_workers=config.num_workers, drop_last=False)
    try:
        for epoch in range(run.start_epoch, config.epochs):
            if config.max_steps is not None and run.steps_total >= config.max_steps:
                break
            sampler.set_epoch(epoch)
            entry = run.epoch(epoch, loader)
            run.finish_epoch(epoch, entry, test_set)
    finally:
        if initialised_here:
            dist.destroy_process_group()
    model.eval()
    return run.history
