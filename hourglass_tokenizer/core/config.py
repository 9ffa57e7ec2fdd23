"""What a HoT wrap does: a frozen :class:`HotConfig` and its one :meth:`~HotConfig.validate`.

Where it does it (block lists, layouts, recovery point) is the probe's
:class:`~hourglass_tokenizer.core.probe.ModelStructure`; the forward pass reads both. A change of
setting on ``model.hot`` builds a new config and re-installs the hooks.
"""
from __future__ import annotations

import dataclasses
import logging
import operator
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import torch

from .probe import ModelStructure
from .recovery import Recovery, recovery_strategy
from .selection import DEFAULT_SELECTOR, Selector, resolve_selector

__all__ = ["HotConfig", "Stages", "as_count", "as_stages"]

logger = logging.getLogger("hourglass_tokenizer")

#: ``prune_block``/``tokens``: one integer, or one per pruning stage.
Stages = Union[int, Sequence[int]]


def as_count(value: object, name: str) -> int:
    """An integer argument: ints and integer-like numbers (``np.int64``), never bools or floats."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None


def as_stages(value: Stages, name: str) -> Tuple[int, ...]:
    """``prune_block``/``tokens`` as a tuple: one integer, or a non-empty sequence of them."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"{name} must be an int or a non-empty tuple of ints, got {value!r}")
        return tuple(as_count(v, name) for v in value)
    return (as_count(value, name),)


def _shown(stages: Tuple[int, ...]) -> object:
    return stages[0] if len(stages) == 1 else stages


@dataclass(frozen=True, eq=False)
class HotConfig:
    """What to do: prune at depths ``prune_blocks`` keeping ``tokens`` frames (one count per stage),
    choose them with ``selector``, restore them with ``recovery``.

    ``prune_blocks``/``tokens`` are ``None`` until a paper preset fills them in (after the probe).
    """

    prune_blocks: Optional[Tuple[int, ...]]
    tokens: Optional[Tuple[int, ...]]
    recovery: Recovery
    selector: Union[str, Selector] = DEFAULT_SELECTOR
    k: int = 2
    seed: int = 0
    check_inputs: Optional[bool] = None
    x_token_init: Union[str, torch.Tensor] = "zeros"

    @classmethod
    def from_arguments(cls, prune_block: Optional[Stages], tokens: Optional[Stages], *, recover: object,
                       selector: Union[str, Selector], k: int, seed: int, check_inputs: Optional[bool],
                       x_token_init: Union[str, torch.Tensor]) -> "HotConfig":
        """The config of ``wrap_with_hot``'s arguments, checked as far as possible without the model."""
        if (prune_block is None) != (tokens is None):
            raise ValueError("give both prune_block and tokens, or neither to use the paper's setting")
        blocks = None if prune_block is None else as_stages(prune_block, "prune_block")
        counts = None if tokens is None else as_stages(tokens, "tokens")
        config = cls(blocks, counts, recovery_strategy(recover), selector, as_count(k, "k"), as_count(seed, "seed"),
                     check_inputs, x_token_init)
        config.validate()
        return config

    @property
    def tpc_only(self) -> bool:
        return not self.recovery.seq2seq

    def replace(self, **changes: object) -> "HotConfig":
        return dataclasses.replace(self, **changes)

    def make_selector(self) -> Selector:
        """The selector as a callable (names resolved with this config's ``k`` and ``seed``)."""
        return resolve_selector(self.selector, k=self.k, seed=self.seed)

    def validate(self, structure: Optional[ModelStructure] = None) -> None:
        """Check the settings; with the probed ``structure``, also against the model (depth, frames,
        layers that cannot run on fewer frames). Raises ``ValueError``/``TypeError`` naming the argument."""
        self.make_selector()  # an unknown selector name, checked now rather than at the first forward
        init = self.x_token_init
        if not isinstance(init, torch.Tensor) and init not in ("zeros", "position"):
            raise ValueError(f"x_token_init must be 'zeros', 'position' or a tensor, got {init!r}")
        if self.recovery.name == "tra+interpolate" and not (isinstance(init, str) and init == "zeros"):
            raise ValueError("recover='tra+interpolate' adds x_token to the interpolated queries, so it must start at "
                             f"zeros to begin as the exact interpolation; got x_token_init={init!r} "
                             "(use recover='tra' for a non-zero start)")
        if self.prune_blocks is None:
            return
        blocks, counts = self.prune_blocks, self.tokens
        if len(blocks) != len(counts):
            raise ValueError(f"prune_block {_shown(blocks)!r} and tokens {_shown(counts)!r} must name as many "
                             "stages; to change the number of stages, wrap again with both")
        if min(blocks) < 1:
            raise ValueError(f"prune_block must be >= 1 (block 0 always sees every frame), got {_shown(blocks)}")
        if min(counts) < 1:
            raise ValueError(f"tokens must be >= 1, got {_shown(counts)}")
        if any(a >= b for a, b in zip(blocks, blocks[1:])):
            raise ValueError(f"prune_block depths must be strictly increasing, got {blocks!r}")
        if any(a <= b for a, b in zip(counts, counts[1:])):
            raise ValueError(f"tokens must be strictly decreasing from stage to stage (each stage keeps some of the "
                             f"frames the previous one kept), got {counts!r}")
        if structure is None:
            return
        depth, frames = structure.depth, structure.frames
        if not all(p <= depth - 1 for p in blocks):
            raise ValueError(f"prune_block must be an int in 1..{depth - 1} (the block lists {list(structure.lists)} "
                             f"have depth {depth}), got {_shown(blocks)!r}")
        if counts[0] > frames:
            raise ValueError(f"tokens must be an int in 1..frames ({frames}), got {_shown(counts)!r}")
        if self.recovery.needs_source:
            _check_source(structure, blocks[0], self.recovery.name)
        unprunable = [u for s in structure.sites if s.depth >= blocks[0] for u in s.unprunable]
        if unprunable:
            raise ValueError(f"cannot prune from block {blocks[0]} on: {unprunable[0]} inside a pruned block mixes a "
                             f"fixed number of frames ({frames}), which cannot run on fewer frames; prune later "
                             "(prune_block), or pass frame_layers=[] if those features are not frames")

    def stage_of(self, depth: int) -> int:
        """The pruning stage a block of this depth belongs to (-1: before any)."""
        return sum(1 for p in self.prune_blocks if p <= depth) - 1

    def describe(self) -> str:
        return (f"prune_block={_shown(self.prune_blocks) if self.prune_blocks else None}, "
                f"tokens={_shown(self.tokens) if self.tokens else None}, recover={self.recovery.name!r}, "
                f"selector={self.selector!r}")


def _check_source(structure: ModelStructure, depth: int, recover: object) -> None:
    """A recovery that adds the first pruned block's input to the recovery point's tokens needs both
    to hold the same joints and channels, and the block to take one token tensor."""
    site = structure.first_site(depth)
    width, joints = structure.channels_at.get(depth), site.layout.has_joints
    if site.streams != 1 or width != structure.recover_width or joints != structure.recover_layout.has_joints:
        raise ValueError(f"recover={recover!r} adds the tokens entering block {depth} ({site.name}: "
                         f"'{site.layout.pattern}', {width} channels) to those entering {structure.recover_name} "
                         f"('{structure.recover_layout.pattern}', {structure.recover_width} channels), which needs the "
                         "same width and joints in both; use recover='interpolate'")
