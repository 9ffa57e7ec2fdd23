""":class:`HotState`, the ``model.hot`` of a wrapped model: its settable configuration, the structure
the probe found, and the installed hooks (:class:`~hourglass_tokenizer.core.forward.HotForward`).

A lazily wrapped model (frame count unknown until its first forward) has the same ``model.hot`` from
the start: it is *pending* until :meth:`HotState.set_up` runs on the first input.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import frame_layers
from .config import HotConfig, Stages, as_count, as_stages
from .forward import CallRecord, HotForward
from .presets import paper_setting, qkv_bias
from .probe import ModelStructure, ProbeOptions, probe_structure
from .recovery import HOT_PARAMETERS
from .selection import Selector

__all__ = ["HotState"]

logger = logging.getLogger("hourglass_tokenizer")


def _shown(stages: Tuple[int, ...]) -> Union[int, Tuple[int, ...]]:
    return stages[0] if len(stages) == 1 else stages


class _ProbedFacts:
    """Read-only views of what the probe found (``model.hot.frames``, ``.layouts``...); they raise
    while a lazily wrapped model waits for its first forward."""

    _structure: Optional[ModelStructure]

    def _known(self, name: str) -> ModelStructure:
        if self._structure is None:
            raise AttributeError(f"model.hot.{name} is not known yet: the model was wrapped lazily (its frame count "
                                 "could not be inferred) and is set up by its first forward; run one forward first")
        return self._structure

    @property
    def structure(self) -> ModelStructure:
        """What the probe found (block lists, layouts, recovery point); read-only."""
        return self._known("structure")

    @property
    def frames(self) -> int:
        """Frames ``T`` the model was wrapped for."""
        return self._known("frames").frames

    @property
    def depth(self) -> int:
        """Number of blocks per block list (``prune_block`` ranges over ``1..depth-1``)."""
        return self._known("depth").depth

    @property
    def block_lists(self) -> Tuple[str, ...]:
        return self._known("block_lists").lists

    @property
    def layouts(self) -> Dict[str, str]:
        """Token layout of every hooked block list and of the recovery point."""
        structure = self._known("layouts")
        out = {s.name.rsplit(".", 1)[0]: s.layout.pattern for s in structure.sites}
        out[structure.recover_name] = structure.recover_layout.pattern
        return out

    @property
    def recover_before(self) -> str:
        return self._known("recover_before").recover_name

    @property
    def family(self) -> Optional[str]:
        """Recognised architecture family ("mixste", "motionbert", "motionagformer") or None."""
        return self._known("family").family

    @property
    def center(self) -> int:
        """The frame a TPC-only (seq2frame) model predicts; always among the kept frames."""
        return (self.frames - 1) // 2


class HotState(_ProbedFacts):
    """Configuration and hooks of a HoT model; available as ``model.hot``.

    ``tokens``, ``prune_block``, ``selector``, ``k``, ``seed`` and ``check_inputs`` can be changed in
    place (``model.hot.tokens = 61``) and take effect at the next forward. ``last_indices`` holds the
    frames kept in the calling thread's latest forward, ``(b, tokens)`` (the last stage's when
    pruning at several depths); ``stage_indices`` the frames kept after each stage, as original frame
    numbers. ``pending`` is True while a lazily wrapped model waits for its first forward.
    """

    def __init__(self, model: nn.Module, config: HotConfig, options: ProbeOptions) -> None:
        self._model = model
        self._config = config
        self._options = options
        self._structure: Optional[ModelStructure] = None
        self._record = CallRecord()
        self._warned = [False]
        self._handles: List[Any] = []
        self._forward: Optional[HotForward] = None
        self._swapped: frame_layers.SwapCache = {}

    # -- set-up --------------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """True until the structure is known (a lazily wrapped model before its first forward)."""
        return self._structure is None

    def set_up(self, example: torch.Tensor) -> Dict[str, nn.Module]:
        """Probe the plain model on ``example`` ``(1, T, J, C)``, fill a paper preset, check the
        configuration against the model, and return the new HoT parameters (not yet attached).
        Changes nothing on the model or on this state when it raises."""
        config, model = self._config, self._model
        structure = probe_structure(model, example, self._options, tpc_only=config.tpc_only)
        if config.prune_blocks is None:
            block, count = paper_setting(structure.family, config.recovery.seq2seq, structure.frames, structure.depth)
            config = config.replace(prune_blocks=(block,), tokens=(count,))
        self._check(config, structure)
        like = next((p for name, p in model.named_parameters()
                     if name.split(".")[0] not in HOT_PARAMETERS and not isinstance(p, nn.UninitializedParameter)),
                    torch.zeros(()))
        new = config.recovery.new_parameters(
            model, kept=config.tokens[0], kept_width=structure.channels_at[config.prune_blocks[0]],
            frames=structure.frames, width=structure.recover_width, heads=structure.heads,
            qkv_bias=qkv_bias(structure.family), x_token_init=config.x_token_init, like=like)
        self._config, self._structure = config, structure
        return new

    @staticmethod
    def _check(config: HotConfig, structure: ModelStructure) -> None:
        config.validate(structure)
        if config.tokens[0] == structure.frames:
            # Allowed as the no-pruning reference point of a tokens sweep; it saves nothing.
            logger.warning("tokens == frames (%d): HoT keeps every frame and saves no computation", structure.frames)

    def install(self) -> None:
        """(Re-)register every hook for the current configuration, and put rank-indexed versions of
        the frame-indexed layers into the pruned blocks."""
        self.remove_hooks()
        config, structure = self._config, self._structure
        self._forward = HotForward(self._model, config, structure, self._record, self._warned)
        self._handles = self._forward.install()
        frame_layers.swap_in(structure.sites, config.prune_blocks[0],
                             lambda depth: config.tokens[config.stage_of(depth)], self._swapped)

    def start_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Open a call's pass by hand (the lazy set-up hooks the model in the middle of a call)."""
        self._forward.on_model_start(module, args, kwargs)

    def remove_hooks(self) -> None:
        """Remove every hook and put the original frame-indexed layers back (the plain model)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._structure is not None:
            frame_layers.put_back(self._structure.sites)

    def _apply(self, config: HotConfig) -> None:
        """Take a changed configuration: checked first, so a bad value changes nothing."""
        if self.pending:
            config.validate()
            self._config = config
            return
        self._check(config, self._structure)
        old, self._config = self._config, config
        if (old.prune_blocks, old.tokens) != (config.prune_blocks, config.tokens):
            self._resize_pos_embed()
        if self._handles:
            self.install()

    def _resize_pos_embed(self) -> None:
        old = getattr(self._model, "pos_embed_token", None)
        if old is None:  # TPC only, like the official TPC models, has no kept-frame embedding
            return
        width, count = self._structure.channels_at[self._config.prune_blocks[0]], self._config.tokens[0]
        if old.shape == (1, count, width):
            return
        with torch.no_grad():
            if old.shape[-1] == width:
                # Keep what was learned: resample along the kept-frame axis.
                data = F.interpolate(old.transpose(1, 2), size=count, mode="linear",
                                     align_corners=True).transpose(1, 2)
            else:
                data = old.new_zeros(1, count, width)
        self._model.pos_embed_token = nn.Parameter(data.contiguous(), requires_grad=old.requires_grad)
        warnings.warn("model.pos_embed_token was replaced by a new parameter of shape "
                      f"{tuple(data.shape)}; rebuild optimisers that held the old one", stacklevel=4)

    # -- settings ------------------------------------------------------------------------------
    @property
    def config(self) -> HotConfig:
        """The current settings (frozen); change them through the properties below."""
        return self._config

    @property
    def tokens(self) -> Union[int, Tuple[int, ...]]:
        """Frames kept: an int, or one count per stage when pruning at several depths."""
        if self._config.tokens is None:
            self._known("tokens")
        return _shown(self._config.tokens)

    @tokens.setter
    def tokens(self, value: Stages) -> None:
        self._apply(self._config.replace(tokens=as_stages(value, "tokens")))

    @property
    def prune_block(self) -> Union[int, Tuple[int, ...]]:
        """Depth where pruning starts: an int, or one depth per stage."""
        if self._config.prune_blocks is None:
            self._known("prune_block")
        return _shown(self._config.prune_blocks)

    @prune_block.setter
    def prune_block(self, value: Stages) -> None:
        self._apply(self._config.replace(prune_blocks=as_stages(value, "prune_block")))

    @property
    def recover(self) -> Union[str, bool]:
        """How all frames are restored before the head (one of
        :data:`~hourglass_tokenizer.core.recovery.RECOVERY_MODES`; the model is seq2seq), or
        ``False`` for TPC only (seq2frame). Fixed at wrapping time."""
        return self._config.recovery.name

    @recover.setter
    def recover(self, value: object) -> None:
        raise AttributeError(f"recover is fixed when wrapping; call wrap_with_hot(model, ..., recover={value!r})")

    @property
    def selector(self) -> Union[str, Selector]:
        return self._config.selector

    @selector.setter
    def selector(self, value: Union[str, Selector]) -> None:
        self._apply(self._config.replace(selector=value))

    @property
    def k(self) -> int:
        """Neighbours in DPC-kNN's density estimate."""
        return self._config.k

    @k.setter
    def k(self, value: int) -> None:
        self._apply(self._config.replace(k=as_count(value, "k")))

    @property
    def seed(self) -> int:
        """Seed of the ``"random"`` selector's private generator; setting it restarts the generator."""
        return self._config.seed

    @seed.setter
    def seed(self, value: int) -> None:
        self._apply(self._config.replace(seed=as_count(value, "seed")))

    @property
    def check_inputs(self) -> Optional[bool]:
        """Reject NaN/Inf inputs: ``None`` on CPU inputs only (default), or always / never."""
        return self._config.check_inputs

    @check_inputs.setter
    def check_inputs(self, value: Optional[bool]) -> None:
        self._apply(self._config.replace(check_inputs=value))

    # -- the latest call -----------------------------------------------------------------------
    @property
    def stage_indices(self) -> Tuple[torch.Tensor, ...]:
        """Frames kept after each stage in this thread's latest forward (original frame numbers)."""
        return getattr(self._record.local, "stage_indices", ())

    @property
    def last_indices(self) -> Optional[torch.Tensor]:
        """Frames kept in this thread's latest forward, ``(b, tokens)``; ``None`` before any."""
        stages = self.stage_indices
        return stages[-1] if stages else None

    def __repr__(self) -> str:
        s = self._structure
        return f"HotState({self._config.describe()}; set up by the first forward)" if s is None else (
            f"HotState(prune_block={self.prune_block}, tokens={self.tokens}, frames={s.frames}, recover={self.recover!r}, "
            f"selector={self.selector!r}, block_lists={list(s.lists)}, recover_before={s.recover_name!r}, "
            f"family={s.family!r})")
