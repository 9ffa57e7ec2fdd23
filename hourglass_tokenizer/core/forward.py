"""The forward pass of a wrapped model: the hooks torch calls, reading a frozen
:class:`~hourglass_tokenizer.core.config.HotConfig` (what to do) and
:class:`~hourglass_tokenizer.core.probe.ModelStructure` (where).

The model's ``forward`` is never changed; one call of a wrapped model runs, in order:

1. ``model`` pre-hook: checks the input ``(b, T, J, C)`` and opens a per-call scratch (:class:`_Pass`,
   thread-local): the batch shape, the kept frames of each stage, and the gather index of each layout.
2. Blocks ``0 .. prune_block-1`` run untouched on all ``T`` frames.
3. Pre-hook of each block at depth ``>= prune_block``: the first one pools its input over the joints
   and chooses the frames; every one keeps its full-length input and hands the block only the kept
   frames (one indexing op), plus ``pos_embed_token`` at the first pruned depth; a frame-count argument
   ``T`` becomes ``f``.
4. Post-hook of the same block: writes the block's output into its full-length input at the kept
   frames (one op). The user's forward keeps seeing ``T`` frames in every reshape and position
   embedding; the pruned slots are never read again.
5. Pre-hook of the recovery point (the head): the recovery strategy restores all ``T`` frames from the
   kept ones, and the kept frames are recorded (``last_indices``, per thread).
6. ``model`` post-hook: closes the pass (also when the forward raised).

Per pruned block the hooks add two tensor ops; everything else (selection, index building,
recovery) happens once per call. Torch runs the model's own hooks only through ``model(x)``: when a
hooked block runs outside such a call (``model.forward(x)``, a block on its own), HoT does nothing
and warns once.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from .config import HotConfig
from .layouts import FrameIndex, TokenLayout
from .probe import BlockSite, ModelStructure, token_argument
from .recovery import nearest_kept_frames
from .selection import choose_frames

__all__ = ["HotForward", "CallRecord"]


@dataclass
class _Pass:
    """Scratch of one call: batch shape, kept frames per stage (original frame numbers), the gather
    index of each (stage, layout), and each running block's full-length inputs."""

    shape: Tuple[int, int, int]
    stages: List[torch.Tensor] = field(default_factory=list)
    index: Dict[Tuple[int, str], FrameIndex] = field(default_factory=dict)
    full: Dict[str, Tuple[List[torch.Tensor], FrameIndex]] = field(default_factory=dict)
    prepared: Any = None  # the recovery's own preparation for the last stage's frames
    source: Optional[torch.Tensor] = None  # the first pruned block's input, when the recovery needs it


class CallRecord:
    """Per-thread state of a wrapped model: the open pass and the frames kept in the thread's last call.

    A plain ``threading.local`` underneath (``torch.compile`` traces its attributes; subclasses it
    does not), recreated empty when the model is copied or pickled.
    """

    def __init__(self) -> None:
        self.local = threading.local()

    def __getstate__(self) -> Dict[str, Any]:
        return {}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.local = threading.local()


@dataclass(frozen=True)
class _SitePlan:
    """What the hooks of one block do, decided once at install time."""

    site: BlockSite
    stage: int
    count: int
    selects: bool  # at the depth where its stage chooses frames
    keeps_all: bool  # its stage keeps every frame: nothing to gather or scatter
    adds_embedding: bool
    fills_after: bool  # TPC only with no per-frame head: the nearest-frame fill runs at this block's output
    keeps_source: bool  # its full-length input is the recovery's ``source``

    @property
    def index_key(self) -> Tuple[int, str]:
        return self.stage, self.site.layout.pattern


class HotForward:
    """The hooks of one wrap; a new one is made whenever the configuration changes."""

    def __init__(self, model: nn.Module, config: HotConfig, structure: ModelStructure, record: CallRecord,
                 warned: List[bool]) -> None:
        self.model, self.config, self.structure, self.record = model, config, structure, record
        self.warned = warned  # shared with the state, so the outside-call warning is given once per model
        self.select = config.make_selector()
        self.custom_selector = not isinstance(config.selector, str)
        # A selection that ignores the input ("uniform") is the same for every call of one batch shape:
        # the frames, the gather indices and the recovery's preparation are kept and reused.
        self.reuses_selection = config.selector == "uniform"
        self.reused: Dict[Tuple[int, int, str, bool], _Pass] = {}
        first = config.prune_blocks[0]
        source_site = structure.first_site(first) if config.recovery.needs_source else None
        self.source_layout = source_site.layout if source_site is not None else None
        self.plans = tuple(
            _SitePlan(site, config.stage_of(site.depth), config.tokens[config.stage_of(site.depth)],
                      selects=site.depth in config.prune_blocks,
                      keeps_all=config.tokens[config.stage_of(site.depth)] == structure.frames,
                      adds_embedding=site.depth == first and site.shares_first_input and config.recovery.seq2seq,
                      fills_after=structure.recover_after_block and site.name == structure.recover_name,
                      keeps_source=site is source_site)
            for site in structure.sites if site.depth >= first)

    def install(self) -> List[Any]:
        """Register the hooks; returns their handles."""
        model = self.model
        handles = [model.register_forward_pre_hook(self.on_model_start, with_kwargs=True),
                   model.register_forward_hook(self.on_model_end, always_call=True)]
        for plan in self.plans:
            handles.append(plan.site.module.register_forward_pre_hook(_BlockHook(self, plan, True), with_kwargs=True))
            handles.append(plan.site.module.register_forward_hook(_BlockHook(self, plan, False), with_kwargs=True))
        if not self.structure.recover_after_block and not self.restores_nothing:
            handles.append(self.structure.recover_module.register_forward_pre_hook(self.on_recover, with_kwargs=True))
        return handles

    @property
    def restores_nothing(self) -> bool:
        """Every frame is kept and the recovery gives kept frames back unchanged: the head's input
        needs no change (``tokens == T``, the no-pruning reference point)."""
        return self.config.tokens[-1] == self.structure.frames and self.config.recovery.keeps_kept

    # -- the model's own call ------------------------------------------------------------------
    def _checks_values(self, x: torch.Tensor) -> bool:
        # A NaN check reads the tensor back to the host: cheap on the CPU, a device sync elsewhere.
        wanted = self.config.check_inputs if self.config.check_inputs is not None else x.device.type == "cpu"
        return wanted and not torch.compiler.is_compiling()

    def on_model_start(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = token_argument(args, kwargs)[0]
        if x is None:
            raise TypeError("a HoT model expects the pose sequence tensor as its first argument")
        s, config = self.structure, self.config
        if x.dim() != 4 or tuple(x.shape[2:]) != (s.joints, s.in_channels):
            raise ValueError(f"expected input of shape (batch, frames, joints, channels) = (b, {s.frames}, "
                             f"{s.joints}, {s.in_channels}), got {tuple(x.shape)}")
        seq2seq = config.recovery.seq2seq
        if x.shape[1] != s.frames and (seq2seq or x.shape[1] <= config.tokens[0]):
            tokens = config.tokens[0] if len(config.tokens) == 1 else config.tokens
            raise ValueError(f"this HoT model was wrapped for {s.frames} frames and keeps {tokens}; "
                             f"got an input with {x.shape[1]} frames"
                             + (" (seq2seq recovery restores exactly the wrapped frame count)" if seq2seq else ""))
        if self._checks_values(x) and not bool(torch.isfinite(x).all()):
            raise ValueError("the input contains NaN or Inf values; HoT's frame selection would be meaningless")
        current = _Pass((x.shape[0], x.shape[1], s.joints))
        if self.reuses_selection and not torch.compiler.is_compiling():
            # Tensors made in inference mode cannot be saved for a backward pass: one entry per mode.
            earlier = self.reused.get((x.shape[0], x.shape[1], str(x.device), torch.is_inference_mode_enabled()))
            if earlier is not None:
                current.stages, current.index, current.prepared = list(earlier.stages), earlier.index, earlier.prepared
        self.record.local.current = current

    def on_model_end(self, module: nn.Module, args: tuple, output: Any) -> None:
        current = getattr(self.record.local, "current", None)
        self.record.local.current = None
        if (self.reuses_selection and current is not None and len(current.stages) == len(self.config.tokens)
                and not torch.compiler.is_compiling()):
            key = (current.shape[0], current.shape[1], str(current.stages[0].device), torch.is_inference_mode_enabled())
            self.reused.setdefault(key, current)

    # -- pruned blocks -------------------------------------------------------------------------
    def _open_pass(self) -> Optional[_Pass]:
        current = getattr(self.record.local, "current", None)
        if current is None and not self.warned[0]:
            self.warned[0] = True
            warnings.warn("HoT is skipped: a hooked block ran outside a call of the wrapped model (model.forward(x) "
                          "called directly, or a block called on its own); call model(x) to prune", stacklevel=5)
        return current

    def _index(self, current: _Pass, key: Tuple[int, str], layout: TokenLayout) -> FrameIndex:
        index = current.index.get(key)
        if index is None:
            index = current.index[key] = layout.frame_index(current.stages[key[0]], *current.shape)
        return index

    def _select_frames(self, streams: List[torch.Tensor], plan: _SitePlan, current: _Pass) -> torch.Tensor:
        """The frames stage ``plan.stage`` keeps, as original frame numbers ``(b, f)``, ascending.

        Features: the joint-pooled tokens of the frames still present (every stream concatenated over
        channels), in float32 whatever the model's dtype, so that a bf16 model chooses as its float32
        twin would on the same values. A later stage chooses ranks among the previous stage's frames.
        TPC only keeps the centre frame at every stage.
        """
        b, t, j = current.shape
        stage, layout = plan.stage, plan.site.layout
        previous = current.stages[-1] if stage else None
        if previous is not None:
            index = self._index(current, (stage - 1, layout.pattern), layout)
            streams = [index.take(v) for v in streams]
        present = t if previous is None else previous.shape[1]
        parts = [layout.frame_features(v.float(), b, present, j) for v in streams]
        features = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        check = self.custom_selector and not torch.compiler.is_compiling()
        f, centre, seq2seq = plan.count, (t - 1) // 2, self.config.recovery.seq2seq
        if previous is None:
            return choose_frames(self.select, features, f, keep=None if seq2seq else centre, check=check)
        if seq2seq:
            ranks = choose_frames(self.select, features, f, check=check)
        else:  # the centre's rank among the frames still present differs per sample
            centre_rank = (previous < centre).sum(dim=1).tolist()
            ranks = torch.cat([choose_frames(self.select, features[i:i + 1], f, keep=centre_rank[i], check=check)
                               for i in range(b)])
        return previous.gather(1, ranks)

    def before_block(self, plan: _SitePlan, args: tuple, kwargs: dict) -> Optional[Tuple[tuple, dict]]:
        current = self._open_pass()
        if current is None:
            return None
        site = plan.site
        x, token_kwarg = token_argument(args, kwargs)
        if x is None:
            raise TypeError(f"HoT found no token tensor among the arguments of {site.name}")
        stage = plan.stage
        streams = list(args[:site.streams]) if site.streams > 1 else [x]
        if plan.keeps_all:  # every frame kept: the block runs as it is, after the kept-frame embedding
            return self._keep_all(plan, current, streams, args, kwargs, token_kwarg)
        if plan.selects and len(current.stages) == stage:
            current.stages.append(self._select_frames(streams, plan, current))
        if len(current.stages) <= stage:
            raise RuntimeError(f"{site.name} ran before any block of depth {self.config.prune_blocks[stage]} chose "
                               "the frames")
        layout = site.layout
        index = self._index(current, plan.index_key, layout)
        kept = [index.take(v) for v in streams]
        if plan.adds_embedding:
            b, _, j = current.shape
            kept = [layout.add_frame_embedding(v, self.model.pos_embed_token, b, plan.count, j) for v in kept]
        current.full[site.name] = (streams, index)
        if plan.keeps_source:
            current.source = x
        if site.frame_args:
            args = tuple(plan.count if i in site.frame_args else a for i, a in enumerate(args))
        if site.frame_kwargs:
            kwargs = {k: (plan.count if k in site.frame_kwargs else v) for k, v in kwargs.items()}
        return _with_tokens(site, args, kwargs, token_kwarg, kept)

    def _keep_all(self, plan: _SitePlan, current: _Pass, streams: List[torch.Tensor], args: tuple, kwargs: dict,
                  token_kwarg: Optional[str]) -> Optional[Tuple[tuple, dict]]:
        if plan.selects and not current.stages:
            b, t, _ = current.shape
            current.stages.append(torch.arange(t, device=streams[0].device).expand(b, t))
            if self.restores_nothing:
                self._record_indices(current)
        if not plan.adds_embedding:
            return None
        b, t, j = current.shape
        kept = [plan.site.layout.add_frame_embedding(v, self.model.pos_embed_token, b, t, j) for v in streams]
        return _with_tokens(plan.site, args, kwargs, token_kwarg, kept)

    def after_block(self, plan: _SitePlan, output: Any) -> Any:
        current = getattr(self.record.local, "current", None)
        if current is None:
            return None
        if plan.keeps_all:  # the output is already every frame's (TPC only: the fill has nothing to fill)
            if plan.fills_after:
                self._record_indices(current)
            return None
        site = plan.site
        streams, index = current.full.pop(site.name)
        outputs = list(output) if site.streams > 1 else [output]
        full = [index.put(v, o) for v, o in zip(streams, outputs)]
        if plan.fills_after:
            # TPC only, no per-frame module after the blocks: fill every frame from its nearest kept one here.
            b, t, j = current.shape
            nearest = site.layout.frame_index(nearest_kept_frames(self._record_indices(current), t), b, t, j)
            full = [nearest.take(v) for v in full]
        return type(output)(full) if site.streams > 1 else full[0]

    # -- recovery ------------------------------------------------------------------------------
    def _record_indices(self, current: _Pass) -> torch.Tensor:
        if len(current.stages) < len(self.config.tokens):
            raise RuntimeError(f"{self.structure.recover_name} ran before HoT chose the frames")
        self.record.local.stage_indices = tuple(s.detach() for s in current.stages)
        return current.stages[-1]

    def on_recover(self, module: nn.Module, args: tuple, kwargs: dict) -> Optional[Tuple[tuple, dict]]:
        current = getattr(self.record.local, "current", None)
        if current is None:
            return None
        idx = self._record_indices(current)
        b, t, j = current.shape
        layout = self.structure.recover_layout
        x, token_kwarg = token_argument(args, kwargs)
        kept = self._index(current, (len(current.stages) - 1, layout.pattern), layout).take(x)
        sequences = layout.to_sequences(kept, b, idx.shape[1], j)
        recovery = self.config.recovery
        if current.prepared is None:
            current.prepared = recovery.prepare(idx, t)
        source = None if current.source is None else self.source_layout.to_sequences(current.source, b, t, j)
        x = layout.from_sequences(recovery.restore(self.model, sequences, idx, t, current.prepared, source), b, t, j)
        if token_kwarg is None:
            return (x,) + tuple(args[1:]), kwargs
        return args, {**kwargs, token_kwarg: x}


def _with_tokens(site: BlockSite, args: tuple, kwargs: dict, token_kwarg: Optional[str],
                 tokens: List[torch.Tensor]) -> Tuple[tuple, dict]:
    """The block's arguments with its token tensor(s) replaced, wherever the call passed them."""
    if site.streams > 1:
        return tuple(tokens) + args[site.streams:], kwargs
    if token_kwarg is None:
        return (tokens[0],) + args[1:], kwargs
    return args, {**kwargs, token_kwarg: tokens[0]}


class _BlockHook:
    """A picklable hook bound to one block (closures would break ``torch.save(model)``)."""

    def __init__(self, forward: HotForward, plan: _SitePlan, before: bool) -> None:
        self.forward, self.plan, self.before = forward, plan, before

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, *output: Any) -> Any:
        if self.before:
            return self.forward.before_block(self.plan, args, kwargs)
        return self.forward.after_block(self.plan, output[0])
