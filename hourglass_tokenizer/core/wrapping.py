"""``wrap_with_hot``: turn an unmodified video pose transformer into a HoT model with hooks.

The model's ``forward`` is never changed; torch calls the hooks below, so the call graph does not
show the data flow. One forward of a wrapped model, in order:

1. ``model`` pre-hook: checks the input ``(b, T, J, C)`` and opens a per-call scratch (:class:`_Pass`,
   thread-local) that holds the batch shape, the kept frame indices and the full-length tensors.
2. Blocks ``0 .. prune_block-1`` run untouched on all ``T`` frames.
3. Pre-hook of each block at depth ``>= prune_block``: the first one pools its input over the joints,
   chooses ``f = tokens`` frames (:func:`~hourglass_tokenizer.clustering.choose_frames`) and adds
   ``pos_embed_token``; every one stores its full-length input, gathers the kept frames
   (:class:`~hourglass_tokenizer.layouts.TokenLayout`) and replaces a frame-count argument ``T``
   by ``f``.
4. Post-hook of the same block: scatters the block's output back into the stored full-length
   tensor. The user's forward keeps seeing ``T`` frames in every reshape and position embedding;
   the pruned slots are never read again.
5. Pre-hook of the recovery point (the head): restores all ``T`` frames from the kept ones
   (:mod:`~hourglass_tokenizer.recovery`), or, TPC only, fills them from the nearest kept frame,
   and records ``last_indices``.
6. ``model`` post-hook: closes the pass (also when the forward raised).

Torch runs the model's own hooks only through ``model(x)``. When ``model.forward(x)`` is called
directly, or a block on its own, the block hooks find no open pass: HoT then does nothing and
warns once, instead of pruning with a guessed batch shape.

Structure discovery lives in :mod:`~hourglass_tokenizer.probe`, checkpoint loading in
:mod:`~hourglass_tokenizer.checkpoints`, the set-up of models whose frame count is only known at
the first forward in :mod:`~hourglass_tokenizer.lazy`.
"""
from __future__ import annotations

import dataclasses
import logging
import operator
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import HOT_PARAMETERS, checkpoint_state_dict, initial_x_token, load_official_hot
from .selection import Selector, choose_frames, resolve_selector
from .presets import paper_setting, qkv_bias
from .lazy import PendingHot, wrap_lazily
from .probe import BlockSite, ModelStructure, ShapeUnknown, probe_structure, token_argument
from .probe import example_input as probe_input
from .recovery import (LEARNED_MODES, CrossAttention, corrected_interpolation, interpolate_frames,
                       nearest_kept_frames, recover_frames, resolve_recover)

__all__ = ["wrap_with_hot", "unwrap_hot", "is_hot", "hot_parameters", "load_official_hot", "HotState",
           "HOT_PARAMETERS", "checkpoint_state_dict"]

logger = logging.getLogger("hourglass_tokenizer")


def _count(value: object, name: str) -> int:
    """An integer argument: ints and integer-like numbers (``np.int64``), never bools or floats."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None


Stages = Union[int, Sequence[int]]


def _stages(value: Stages, name: str) -> Tuple[int, ...]:
    """``prune_block``/``tokens``: one integer, or a sequence of them (pruning at several depths)."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"{name} must be an int or a non-empty tuple of ints, got {value!r}")
        return tuple(_count(v, name) for v in value)
    return (_count(value, name),)


def _rank_indexed(norm: nn.Module, f: int) -> nn.Module:
    """A new norm of the same class and options over ``f`` rank-indexed features, on the same device
    and dtype, initialised with the mean over frames of every per-frame parameter and statistic."""
    tensors = [v for v in (norm.weight, norm.running_mean) if v is not None]
    factory = dict(device=tensors[0].device, dtype=tensors[0].dtype) if tensors else {}
    new = type(norm)(f, eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                     track_running_stats=norm.track_running_stats, **factory)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            old, fresh = getattr(norm, name, None), getattr(new, name, None)
            if old is not None and fresh is not None:
                fresh.copy_(old.mean().expand(f))
        if getattr(norm, "num_batches_tracked", None) is not None and new.num_batches_tracked is not None:
            new.num_batches_tracked.copy_(norm.num_batches_tracked)
    for name in ("weight", "bias"):
        if getattr(new, name, None) is not None:
            getattr(new, name).requires_grad_(getattr(norm, name).requires_grad)
    return new.train(norm.training)


@dataclass
class _Pass:
    """Scratch of one forward: batch shape, kept frames per stage (original frame numbers), and the
    full-length block inputs with the frames each block got."""

    shape: Tuple[int, int, int]
    stages: List[torch.Tensor] = field(default_factory=list)
    full: Dict[str, Tuple[List[torch.Tensor], torch.Tensor]] = field(default_factory=dict)


class HotState:
    """Configuration and hooks of a HoT model; available as ``model.hot``.

    ``tokens``, ``prune_block``, ``selector``, ``k`` and ``seed`` can be changed in place
    (``model.hot.tokens = 61``) and take effect at the next forward. ``last_indices`` holds the
    frames kept in the latest forward, ``(b, tokens)`` (the last stage's when pruning at several
    depths); ``stage_indices`` the frames kept after each stage, as original frame numbers.
    """

    pending = False

    def __init__(self, model: nn.Module, structure: ModelStructure, prune_block: Stages, tokens: Stages,
                 recover: Optional[str], selector: Union[str, Selector], k: int, seed: int,
                 check_inputs: Optional[bool]) -> None:
        self._model = model
        self._structure = structure
        self._recover = recover
        self._k = _count(k, "k")
        self._seed = _count(seed, "seed")
        self.check_inputs = check_inputs
        self._select = resolve_selector(selector, k=self._k, seed=self._seed)
        self._selector_spec = selector
        self._handles: List[Any] = []
        self._local = threading.local()
        self._warned_outside_call = False
        self.last_indices: Optional[torch.Tensor] = None
        self.stage_indices: Tuple[torch.Tensor, ...] = ()
        #: Rank-indexed replacements of frame-indexed layers, by (name, size); the originals stay in
        #: the structure and come back on unwrap.
        self._swapped: Dict[Tuple[str, int], nn.Module] = {}
        blocks, counts = _stages(prune_block, "prune_block"), _stages(tokens, "tokens")
        self._validate(blocks, counts)
        self._prune_blocks = blocks
        self._counts = counts

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        del state["_local"]  # per-call scratch: neither picklable nor worth keeping
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # -- configuration -------------------------------------------------------------------------
    @property
    def frames(self) -> int:
        """Frames ``T`` the model was wrapped for."""
        return self._structure.frames

    @property
    def depth(self) -> int:
        """Number of blocks per block list (``prune_block`` ranges over ``1..depth-1``)."""
        return self._structure.depth

    @property
    def structure(self) -> ModelStructure:
        """What the probe found (block lists, layouts, recovery point); read-only."""
        return self._structure

    @property
    def block_lists(self) -> Tuple[str, ...]:
        return self._structure.lists

    @property
    def layouts(self) -> Dict[str, str]:
        """Token layout of every hooked block list and of the recovery point."""
        out = {s.name.rsplit(".", 1)[0]: s.layout.pattern for s in self._structure.sites}
        out[self._structure.recover_name] = self._structure.recover_layout.pattern
        return out

    @property
    def recover_before(self) -> str:
        return self._structure.recover_name

    @property
    def family(self) -> Optional[str]:
        """Recognised architecture family ("mixste", "motionbert") or None."""
        return self._structure.family

    @property
    def tokens(self) -> Union[int, Tuple[int, ...]]:
        """Frames kept: an int, or one count per stage when pruning at several depths."""
        return self._counts[0] if len(self._counts) == 1 else self._counts

    @tokens.setter
    def tokens(self, value: Stages) -> None:
        value = _stages(value, "tokens")
        self._validate(self._prune_blocks, value)
        if value != self._counts:
            self._counts = value
            self._resize_pos_embed()
            self.install()  # frame-indexed layers are sized by the kept frames

    @property
    def prune_block(self) -> Union[int, Tuple[int, ...]]:
        """Depth where pruning starts: an int, or one depth per stage."""
        return self._prune_blocks[0] if len(self._prune_blocks) == 1 else self._prune_blocks

    @prune_block.setter
    def prune_block(self, value: Stages) -> None:
        value = _stages(value, "prune_block")
        self._validate(value, self._counts)
        self._prune_blocks = value
        self._resize_pos_embed()
        self.install()

    @property
    def _tokens(self) -> int:
        """Frames reaching the recovery point (the last stage's count)."""
        return self._counts[-1]

    @property
    def recover(self) -> Union[str, bool]:
        """How all frames are restored before the head (``"tra"``, ``"interpolate"``, ``"nearest"``,
        ``"tra+interpolate"``; the model is seq2seq), or ``False`` for TPC only (seq2frame). Fixed at
        wrapping time."""
        return self._recover if self._recover is not None else False

    @recover.setter
    def recover(self, value: object) -> None:
        raise AttributeError(f"recover is fixed when wrapping; call wrap_with_hot(model, ..., recover={value!r})")

    @property
    def k(self) -> int:
        """Neighbours in DPC-kNN's density estimate."""
        return self._k

    @k.setter
    def k(self, value: int) -> None:
        value = _count(value, "k")
        self._select = resolve_selector(self._selector_spec, k=value, seed=self._seed)
        self._k = value

    @property
    def seed(self) -> int:
        """Seed of the ``"random"`` selector's private generator; setting it restarts the generator."""
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        value = _count(value, "seed")
        self._select = resolve_selector(self._selector_spec, k=self._k, seed=value)
        self._seed = value

    @property
    def selector(self) -> Union[str, Selector]:
        return self._selector_spec

    @selector.setter
    def selector(self, value: Union[str, Selector]) -> None:
        self._select = resolve_selector(value, k=self._k, seed=self._seed)
        self._selector_spec = value

    @property
    def center(self) -> int:
        """The frame a TPC-only (seq2frame) model predicts; always among the kept frames."""
        return (self.frames - 1) // 2

    def _validate(self, prune_blocks: Tuple[int, ...], counts: Tuple[int, ...]) -> None:
        show = (lambda v: v[0] if len(v) == 1 else v)
        if len(prune_blocks) != len(counts):
            raise ValueError(f"prune_block {show(prune_blocks)!r} and tokens {show(counts)!r} must name as many "
                             "stages; to change the number of stages, wrap again with both")
        if not all(1 <= p <= self.depth - 1 for p in prune_blocks):
            raise ValueError(f"prune_block must be an int in 1..{self.depth - 1} (the block lists "
                             f"{list(self._structure.lists)} have depth {self.depth}), got {show(prune_blocks)!r}")
        if any(a >= b for a, b in zip(prune_blocks, prune_blocks[1:])):
            raise ValueError(f"prune_block depths must be strictly increasing, got {prune_blocks!r}")
        if not 1 <= counts[0] <= self.frames:
            raise ValueError(f"tokens must be an int in 1..frames ({self.frames}), got {show(counts)!r}")
        if any(a <= b or b < 1 for a, b in zip(counts, counts[1:])):
            raise ValueError(f"tokens must be strictly decreasing from stage to stage (each stage keeps some "
                             f"of the frames the previous one kept), got {counts!r}")
        unprunable = [u for s in self._structure.sites if s.depth >= prune_blocks[0] for u in s.unprunable]
        if unprunable:
            raise ValueError(f"cannot prune from block {prune_blocks[0]} on: {unprunable[0]} inside a pruned block "
                             f"mixes a fixed number of frames ({self.frames}), which cannot run on fewer frames; "
                             "prune later (prune_block), or pass frame_layers=[] if those features are not frames")
        if counts[0] == self.frames:
            # Allowed as the no-pruning reference point of a tokens sweep; it saves nothing.
            logger.warning("tokens == frames (%d): HoT keeps every frame and saves no computation", counts[0])

    def _resize_pos_embed(self) -> None:
        old = getattr(self._model, "pos_embed_token", None)
        if old is None:  # TPC only, like the official TPC models, has no kept-frame embedding
            return
        width, count = self._structure.channels_at[self._prune_blocks[0]], self._counts[0]
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
                      f"{tuple(data.shape)}; rebuild optimisers that held the old one", stacklevel=3)

    def __repr__(self) -> str:
        return (f"HotState(prune_block={self.prune_block}, tokens={self.tokens}, frames={self.frames}, "
                f"recover={self.recover!r}, selector={self._selector_spec!r}, "
                f"block_lists={list(self._structure.lists)}, recover_before={self._structure.recover_name!r}, "
                f"family={self._structure.family!r})")

    # -- hooks ---------------------------------------------------------------------------------
    def install(self) -> None:
        """(Re-)register every hook for the current ``prune_block``, and put rank-indexed versions of
        the frame-indexed layers into the pruned blocks."""
        self.remove_hooks()
        model = self._model
        self._handles.append(model.register_forward_pre_hook(self._on_model_start, with_kwargs=True))
        self._handles.append(model.register_forward_hook(self._on_model_end, always_call=True))
        for site in self._structure.sites:
            if site.depth >= self._prune_blocks[0]:
                self._handles.append(site.module.register_forward_pre_hook(
                    _SiteHook(self, site, before=True), with_kwargs=True))
                self._handles.append(site.module.register_forward_hook(
                    _SiteHook(self, site, before=False), with_kwargs=True))
        if not self._structure.recover_after_block:
            self._handles.append(self._structure.recover_module.register_forward_pre_hook(
                self._on_recover, with_kwargs=True))
        self._swap_frame_layers()

    def remove_hooks(self) -> None:
        """Remove every hook and put the original frame-indexed layers back (the plain model)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for site in self._structure.sites:
            for layer in site.frame_layers:
                present = getattr(layer.parent, layer.attribute)
                if present is not layer.module:
                    # Follow a .to() of the wrapped model: the original lives outside it meanwhile.
                    ref = next((v for v in present.state_dict().values() if v.is_floating_point()), None)
                    if ref is not None:
                        layer.module.to(device=ref.device, dtype=ref.dtype)
                    layer.module.train(present.training)
                    setattr(layer.parent, layer.attribute, layer.module)

    def _swap_frame_layers(self) -> None:
        swapped: Dict[Tuple[str, int], nn.Module] = {}
        for site in self._structure.sites:
            if site.depth < self._prune_blocks[0]:
                continue
            f = self._counts[self._stage_of(site.depth)]
            for layer in site.frame_layers:
                key = (layer.name, f)
                new = self._swapped.get(key)
                if new is None:
                    new = _rank_indexed(layer.module, f)
                setattr(layer.parent, layer.attribute, new.train(layer.module.training))
                swapped[key] = new
        self._swapped.update(swapped)  # sizes not in use now stay cached: setting them back restores them

    def _stage_of(self, depth: int) -> int:
        """The pruning stage a block of this depth belongs to (-1: before any)."""
        return sum(1 for p in self._prune_blocks if p <= depth) - 1

    def _checks_values(self, x: torch.Tensor) -> bool:
        # A NaN check reads the tensor back to the host: cheap on the CPU, a device sync elsewhere.
        wanted = self.check_inputs if self.check_inputs is not None else x.device.type == "cpu"
        return wanted and not torch.compiler.is_compiling()

    def _on_model_start(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        x, _ = token_argument(args, kwargs)
        if x is None:
            raise TypeError("a HoT model expects the pose sequence tensor as its first argument")
        s = self._structure
        if x.dim() != 4 or tuple(x.shape[2:]) != (s.joints, s.in_channels):
            raise ValueError(f"expected input of shape (batch, frames, joints, channels) = (b, {s.frames}, "
                             f"{s.joints}, {s.in_channels}), got {tuple(x.shape)}")
        if x.shape[1] != self.frames and (self.recover or x.shape[1] <= self._counts[0]):
            raise ValueError(f"this HoT model was wrapped for {self.frames} frames and keeps {self.tokens}; "
                             f"got an input with {x.shape[1]} frames"
                             + ("" if not self.recover else " (seq2seq recovery restores exactly the wrapped frame count)"))
        if self._checks_values(x) and not bool(torch.isfinite(x).all()):
            raise ValueError("the input contains NaN or Inf values; HoT's frame selection would be meaningless")
        self._local.current = _Pass((x.shape[0], x.shape[1], s.joints))

    def _on_model_end(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._local.current = None

    def _current(self) -> Optional[_Pass]:
        current = getattr(self._local, "current", None)
        if current is None and not self._warned_outside_call:
            self._warned_outside_call = True
            warnings.warn("HoT is skipped: a hooked block ran outside a call of the wrapped model (model.forward(x) "
                          "called directly, or a block called on its own); call model(x) to prune", stacklevel=4)
        return current

    def _select_frames(self, streams: List[torch.Tensor], site: BlockSite, current: _Pass, stage: int
                       ) -> torch.Tensor:
        """The frames stage ``stage`` keeps, as original frame numbers ``(b, f)``, ascending.

        Features: the joint-pooled tokens of the frames still present (every stream concatenated
        over channels). A later stage chooses ranks among the previous stage's frames, composed into
        frame numbers. TPC only keeps the centre frame at every stage.
        """
        b, t, j = current.shape
        layout, previous = site.layout, (current.stages[-1] if stage else None)
        if previous is not None:
            streams = [layout.gather(v, previous, b, t, j) for v in streams]
        present = t if previous is None else previous.shape[1]
        parts = [layout.frame_features(v, b, present, j) for v in streams]
        features = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        custom = not isinstance(self._selector_spec, str) and not torch.compiler.is_compiling()
        f, centre = self._counts[stage], (t - 1) // 2
        if previous is None:
            return choose_frames(self._select, features, f, keep=None if self.recover else centre, check=custom)
        if self.recover:
            ranks = choose_frames(self._select, features, f, check=custom)
        else:  # the centre's rank among the frames still present differs per sample
            centre_rank = (previous < centre).sum(dim=1).tolist()
            ranks = torch.cat([choose_frames(self._select, features[i:i + 1], f, keep=centre_rank[i], check=custom)
                               for i in range(b)])
        return previous.gather(1, ranks)

    def _before_block(self, site: BlockSite, args: tuple, kwargs: dict) -> Optional[Tuple[tuple, dict]]:
        current = self._current()
        if current is None:
            return None
        x, token_kwarg = token_argument(args, kwargs)
        if x is None:
            raise TypeError(f"HoT found no token tensor among the arguments of {site.name}")
        b, t, j = current.shape
        stage = self._stage_of(site.depth)
        streams = list(args[:site.streams]) if site.streams > 1 else [x]
        if site.depth == self._prune_blocks[stage] and len(current.stages) == stage:
            current.stages.append(self._select_frames(streams, site, current, stage))
        if len(current.stages) <= stage:
            raise RuntimeError(f"{site.name} ran before any block of depth {self._prune_blocks[stage]} chose the "
                               "frames")
        idx, f = current.stages[stage], self._counts[stage]
        kept = [site.layout.gather(v, idx, b, t, j) for v in streams]
        embedding = getattr(self._model, "pos_embed_token", None)
        if stage == 0 and site.depth == self._prune_blocks[0] and site.shares_first_input and embedding is not None:
            kept = [site.layout.add_frame_embedding(v, embedding, b, f, j) for v in kept]
        current.full[site.name] = (streams, idx)
        new_args = tuple(f if i in site.frame_args else a for i, a in enumerate(args))
        new_kwargs = {k: (f if k in site.frame_kwargs else v) for k, v in kwargs.items()}
        if site.streams > 1:
            new_args = tuple(kept) + new_args[site.streams:]
        elif token_kwarg is None:
            new_args = (kept[0],) + new_args[1:]
        else:
            new_kwargs[token_kwarg] = kept[0]
        return new_args, new_kwargs

    def _after_block(self, site: BlockSite, output: Any) -> Any:
        current = getattr(self._local, "current", None)
        if current is None:
            return None
        b, t, j = current.shape
        streams, idx = current.full.pop(site.name)
        outputs = list(output) if site.streams > 1 else [output]
        full = [site.layout.scatter(v, o, idx, b, t, j) for v, o in zip(streams, outputs)]
        if self._structure.recover_after_block and site.name == self._structure.recover_name:
            # TPC only, no per-frame module after the blocks: fill every frame from its nearest kept one here.
            final = self._record_indices(current)
            nearest = nearest_kept_frames(final, t)
            full = [site.layout.gather(v, nearest, b, t, j) for v in full]
        return type(output)(full) if site.streams > 1 else full[0]

    def _record_indices(self, current: _Pass) -> torch.Tensor:
        if len(current.stages) < len(self._counts):
            raise RuntimeError(f"{self._structure.recover_name} ran before HoT chose the frames")
        self.stage_indices = tuple(s.detach() for s in current.stages)
        self.last_indices = self.stage_indices[-1]
        return current.stages[-1]

    def _on_recover(self, module: nn.Module, args: tuple, kwargs: dict) -> Optional[Tuple[tuple, dict]]:
        current = getattr(self._local, "current", None)
        if current is None:
            return None
        idx = self._record_indices(current)
        b, t, j = current.shape
        layout = self._structure.recover_layout
        x, token_kwarg = token_argument(args, kwargs)
        mode = self._recover
        if mode in (None, "nearest"):
            x = layout.gather(x, nearest_kept_frames(idx, t), b, t, j)
        else:
            kept = layout.to_sequences(layout.gather(x, idx, b, t, j), b, self._tokens, j)
            if mode == "tra":
                full = recover_frames(self._model.x_token, self._model.cross_attention, kept)
            elif mode == "interpolate":
                full = interpolate_frames(kept, idx, t)
            else:
                full = corrected_interpolation(self._model.x_token, self._model.cross_attention, kept, idx)
            x = layout.from_sequences(full, b, t, j)
        if token_kwarg is None:
            return (x,) + tuple(args[1:]), kwargs
        return args, {**kwargs, token_kwarg: x}


class _SiteHook:
    """A picklable hook bound to one block site (closures would break ``torch.save(model)``)."""

    def __init__(self, state: HotState, site: BlockSite, before: bool) -> None:
        self.state, self.site, self.before = state, site, before

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, *output: Any) -> Any:
        if self.before:
            return self.state._before_block(self.site, args, kwargs)
        return self.state._after_block(self.site, output[0])


def is_hot(model: nn.Module) -> bool:
    """True when ``model`` is currently wrapped by :func:`wrap_with_hot` (also while a lazy wrap waits
    for its first forward: ``model.hot.pending``)."""
    return isinstance(getattr(model, "hot", None), (HotState, PendingHot))


def _check_arguments(prune_block: Optional[Stages], tokens: Optional[Stages], recover: object,
                     x_token_init: Union[str, torch.Tensor], layouts: Optional[Mapping[str, str]],
                     blocks: Optional[Sequence[str]]) -> Tuple[Optional[Stages], Optional[Stages], Optional[str]]:
    """Everything that can be checked before the probe forward (which may take seconds)."""
    if (prune_block is None) != (tokens is None):
        raise ValueError("give both prune_block and tokens, or neither to use the paper's setting")
    if prune_block is not None:
        blocks_, counts = _stages(prune_block, "prune_block"), _stages(tokens, "tokens")
        if len(blocks_) != len(counts):
            raise ValueError(f"prune_block={prune_block!r} and tokens={tokens!r} must name as many stages")
        if min(blocks_) < 1:
            raise ValueError(f"prune_block must be >= 1 (block 0 always sees every frame), got {prune_block}")
        if min(counts) < 1:
            raise ValueError(f"tokens must be >= 1, got {tokens}")
        if any(a >= b for a, b in zip(blocks_, blocks_[1:])):
            raise ValueError(f"prune_block depths must be strictly increasing, got {prune_block!r}")
        if any(a <= b for a, b in zip(counts, counts[1:])):
            raise ValueError(f"tokens must be strictly decreasing from stage to stage, got {tokens!r}")
        prune_block = blocks_[0] if len(blocks_) == 1 else blocks_
        tokens = counts[0] if len(counts) == 1 else counts
    mode = resolve_recover(recover)
    if mode == "tra+interpolate" and not (isinstance(x_token_init, str) and x_token_init == "zeros"):
        raise ValueError("recover='tra+interpolate' adds x_token to the interpolated queries, so it must start at "
                         f"zeros to begin as the exact interpolation; got x_token_init={x_token_init!r} "
                         "(use recover='tra' for a non-zero start)")
    if not isinstance(x_token_init, torch.Tensor) and x_token_init not in ("zeros", "position"):
        raise ValueError(f"x_token_init must be 'zeros', 'position' or a tensor, got {x_token_init!r}")
    if layouts is not None and not isinstance(layouts, Mapping):
        raise TypeError(f"layouts must be a dict {{module name: pattern}}, got {type(layouts).__name__}")
    if blocks is not None and (isinstance(blocks, str) or not all(isinstance(n, str) for n in blocks)):
        raise TypeError(f"blocks must be a list of module names, got {blocks!r}")
    return prune_block, tokens, mode


def wrap_with_hot(model: nn.Module, prune_block: Optional[Stages] = None, tokens: Optional[Stages] = None, *,
                  recover: Union[str, bool] = "tra+interpolate", selector: Union[str, Selector] = "dpc_knn",
                  k: int = 2, seed: int = 0, example_input: Optional[torch.Tensor] = None,
                  input_shape: Optional[Sequence[int]] = None, blocks: Optional[Sequence[str]] = None,
                  layouts: Optional[Mapping[str, str]] = None, recover_before: Optional[str] = None,
                  num_heads: Optional[int] = None, x_token_init: Union[str, torch.Tensor] = "zeros",
                  check_inputs: Optional[bool] = None, frame_layers: Optional[Sequence[str]] = None) -> nn.Module:
    """Turn a video pose transformer into a Hourglass Tokenizer (HoT) model, in place.

    After the first ``prune_block`` blocks, token pruning cluster (TPC) keeps ``tokens``
    representative frames chosen by density-peaks clustering of per-frame features; the deeper
    blocks only process those frames. Before the head all ``T`` frames are restored (``recover``)
    so the model stays seq2seq. The model's own ``forward`` is not modified.

    Load pretrained weights first, then wrap: the original ``state_dict`` keys are unchanged, and
    the default recovery starts as a training-free interpolation of the kept frames, so a trained
    model keeps (almost) its accuracy before any fine-tuning.

    Args:
        model: the VPT; its forward takes ``(batch, frames, joints, channels)``.
        prune_block: blocks ``0..prune_block-1`` see all frames (``1 <= prune_block < depth``).
            ``None`` (with ``tokens=None``) uses the paper's setting for a recognised architecture.
            A tuple of strictly increasing depths prunes at several depths (H2OT), e.g.
            ``prune_block=(2, 5), tokens=(81, 27)``: 81 frames from block 2 on, 27 of those from
            block 5 on, one recovery at the end. ``pos_embed_token`` is added at the first stage.
        tokens: representative frames kept, ``1 <= tokens <= frames`` (``tokens == frames`` keeps
            every frame: a reference point that saves nothing); with several depths, one strictly
            decreasing count per depth.
        recover: how the pruned frames come back before the head (the model stays seq2seq):

            - ``"tra+interpolate"`` (default): linear interpolation in time of the kept tokens,
              plus the paper's cross-attention as a learned correction whose output projection
              starts at zero: exactly ``"interpolate"`` until trained. For pretrained models.
            - ``"tra"`` (or ``True``): the paper's token recovering attention, ``T`` learnable
              queries ``x_token`` attending to the kept tokens. Needs training (from scratch as in
              the paper, or fine-tuning); required by :func:`load_official_hot` for HoT checkpoints.
            - ``"interpolate"``: training-free linear interpolation, no new parameters but
              ``pos_embed_token`` (zeros).
            - ``"nearest"``: training-free; each pruned frame copies its nearest kept frame.
            - ``False``: TPC only (seq2frame), as the official TPC models: the centre frame
              ``(T-1)//2`` is always kept, there is no ``pos_embed_token``, pruned frames are filled
              from their nearest kept frame before the head, and the centre frame's output is the
              prediction.
        selector: ``"dpc_knn"``, ``"dpc_knn_coverage"`` (DPC-kNN within equal time strata, keeping
            the first and last frame: bounded gaps, better for interpolation), ``"uniform"``,
            ``"random"`` or a callable ``(frame_features (b, t, c), f) -> indices (b, f)`` (integer
            tensor, unique frames per sample; checked at run time).
        k: neighbours in DPC-kNN's density (self included); the paper uses 2.
        seed: seed of the private generator of the ``"random"`` selector.
        example_input / input_shape: input for the probe forward; inferred from the model's
            attributes and parameters when omitted. When they cannot be inferred (a model with no
            frame count anywhere, such as STCFormer), the model is wrapped **lazily**, like torch's
            lazy modules: ``pos_embed_token``, ``x_token`` and TRA's weights are
            ``UninitializedParameter`` placeholders and the probe runs on the first forward (on
            its first sample's shape), which creates them in place. Run one forward before
            building an optimiser, calling ``state_dict()`` (which raises until then) or loading
            HoT weights; ``model.hot.pending`` is True until then.
        blocks: names of block lists to prune (side by side); found automatically when omitted.
        layouts: ``{block list or module name: pattern}`` overrides of inferred token layouts.
        recover_before: name of the module before which the frames are restored; by default the
            first module with parameters (not a norm) called after the last block.
        num_heads: heads of TRA's cross-attention; by default the blocks' own.
        x_token_init: start of TRA's queries (``"tra"``): ``"zeros"`` (the paper's), ``"position"``
            (a copy of the model's own temporal position embedding, ``(1, T, c)`` or
            ``(1, T, 1, c)``, taken from the weights the model has now) or a tensor. With
            ``"tra+interpolate"`` only ``"zeros"`` keeps the start equal to the interpolation.
        check_inputs: reject inputs with NaN/Inf. ``None`` (default): on CPU tensors only, since
            the check reads the values back and would synchronise a GPU on every forward. Skipped
            while compiling.
        frame_layers: names of the layers inside the blocks that are indexed by frame position,
            relative to a block (``"graph_temporal.mixer.batch_norm"``) or full; ``[]`` for none.
            Detected when omitted: a batch/instance norm with ``num_features == T`` over the frame
            axis (MotionAGFormer's temporal GCN). In the pruned blocks each becomes a rank-indexed
            norm of size ``tokens`` at the same name (so official HoT checkpoints load), started
            from the mean over frames of the original; ``unwrap_hot`` puts the original objects
            back. Needed when ``T`` equals the token width (the sizes cannot tell).

    Returns:
        The same ``model`` object, with ``model.hot`` (:class:`HotState`) and new parameters
        ``pos_embed_token (1, tokens, c)`` (not for TPC only), and for ``"tra"`` and
        ``"tra+interpolate"`` ``x_token (1, T, c)`` and ``cross_attention``. Every original
        ``state_dict`` key is unchanged. Wrapping a HoT model again re-wraps it, keeping HoT
        parameters whose shapes still fit; if the new wrap fails, the old one stays as it was.

    Raises:
        ValueError, TypeError: a bad argument (``recover``, ``tokens``, ``prune_block``,
            ``x_token_init``, ``layouts``, ``recover_before``, ``frame_layers``...), or a model whose
            structure HoT cannot use; the model is then left as it was.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"wrap_with_hot expects an nn.Module, got {type(model).__name__}")
    prune_block, tokens, mode = _check_arguments(prune_block, tokens, recover, x_token_init, layouts, blocks)
    options = dict(prune_block=prune_block, tokens=tokens, mode=mode, selector=selector, k=k, seed=seed,
                   blocks=blocks, layouts=layouts, recover_before=recover_before, num_heads=num_heads,
                   x_token_init=x_token_init, check_inputs=check_inputs, frame_layers=frame_layers)
    old = model.hot if is_hot(model) else None
    if old is None:
        clashes = [n for n in HOT_PARAMETERS + ("hot",) if hasattr(model, n)]
        if clashes:
            raise ValueError(f"the model already has attribute(s) {clashes}; it looks like a hand-written HoT "
                             "model, which wrap_with_hot cannot wrap again")
    elif old.pending:
        unwrap_hot(model)  # nothing was built yet: start afresh
        old = None
    else:
        old.remove_hooks()  # the probe must see the plain model
        if example_input is None and input_shape is None:
            input_shape = (old.frames, old.structure.joints, old.structure.in_channels)
    try:
        try:
            example = probe_input(model, example_input, input_shape)
        except ShapeUnknown:
            if old is not None:
                raise
            return wrap_lazily(model, options)
        state, new = _build(model, example, **options)
    except BaseException:
        if old is not None:
            old.install()
        raise
    # Nothing can fail from here on: replace the old wrap (if any), keeping HoT weights that still fit.
    previous: Dict[str, torch.Tensor] = {}
    if old is not None:
        previous = {k: v for k, v in model.state_dict().items() if k.split(".")[0] in HOT_PARAMETERS}
        state._swapped = dict(old._swapped)  # trained rank-indexed layers of the same size stay
        unwrap_hot(model)
    for name, value in new.items():
        setattr(model, name, value)
    model.hot = state
    state.install()
    if previous:
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in previous.items() if k in own and own[k].shape == v.shape},
                              strict=False)
    return model


def _build(model: nn.Module, example: torch.Tensor, *, prune_block: Optional[Stages], tokens: Optional[Stages],
           mode: Optional[str], selector: Union[str, Selector], k: int, seed: int, blocks: Optional[Sequence[str]],
           layouts: Optional[Mapping[str, str]], recover_before: Optional[str], num_heads: Optional[int],
           x_token_init: Union[str, torch.Tensor], check_inputs: Optional[bool],
           frame_layers: Optional[Sequence[str]]) -> Tuple[HotState, Dict[str, Any]]:
    """Probe the (plain) model and build its state and new parameters; changes nothing on the model."""
    structure = probe_structure(model, example, blocks, layouts, recover_before, frame_layers,
                                tpc_only=mode is None)
    if prune_block is None:
        prune_block, tokens = paper_setting(structure.family, mode is not None, structure.frames, structure.depth)
    if num_heads is not None:
        structure = dataclasses.replace(structure, heads=_count(num_heads, "num_heads"))
    state = HotState(model, structure, prune_block, tokens, mode, selector, k, seed, check_inputs)
    ref = next(iter(model.parameters()), torch.zeros(()))
    new: Dict[str, Any] = {}
    if mode is not None:
        first = state._prune_blocks[0]
        new["pos_embed_token"] = nn.Parameter(ref.new_zeros(1, state._counts[0], structure.channels_at[first]))
    if mode in LEARNED_MODES:
        x_token = initial_x_token(model, x_token_init, structure.frames, structure.recover_width)
        new["x_token"] = nn.Parameter(x_token.to(ref))
        new["cross_attention"] = CrossAttention(structure.recover_width, structure.heads,
                                                qkv_bias=qkv_bias(structure.family),
                                                zero_output=mode == "tra+interpolate").to(ref)
    return state, new


def hot_parameters(model: nn.Module) -> List[nn.Parameter]:
    """The parameters :func:`wrap_with_hot` added (``pos_embed_token``, ``x_token``, TRA's).

    Useful for a separate learning rate when fine-tuning a pretrained VPT: these start from
    zeros (or a fresh initialisation) while the rest of the model is already trained.
    """
    if not is_hot(model):
        raise ValueError("hot_parameters: the model is not wrapped with HoT")
    return [p for name, p in model.named_parameters() if name.split(".")[0] in HOT_PARAMETERS]


def unwrap_hot(model: nn.Module) -> nn.Module:
    """Remove every hook and parameter added by :func:`wrap_with_hot`; returns the same object."""
    if not is_hot(model):
        raise ValueError("unwrap_hot: the model is not wrapped with HoT")
    model.hot.remove_hooks()
    for name in HOT_PARAMETERS + ("hot",):
        if hasattr(model, name):
            delattr(model, name)
    return model
