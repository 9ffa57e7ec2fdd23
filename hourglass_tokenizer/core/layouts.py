"""Token layouts: how a block's input tensor arranges batch ``b``, frames ``t``, joints ``j``, channels ``c``.

A layout is an einops-style pattern such as ``"(b t) j c"`` (spatial blocks), ``"(b j) t c"``
(temporal blocks), ``"b t c"`` (one token per frame) or ``"b (t j) c"`` (joint-time tokens). The
channel axis ``c`` is always the last dimension and stands alone; ``"b t (j c)"`` is read as
``"b t c"`` because its frame tokens are gathered the same way.

Gathering keeps the pattern and replaces ``t`` by the number of kept frames, so a block sees the
same arrangement it was written for, only shorter in time. The pattern is parsed here only to
validate it and to name its axes. Gathering and scattering frames is one advanced-indexing op each
(``aten.index`` / ``aten.index_put``) with an index built once per forward (:meth:`TokenLayout.frame_index`):
no reshapes on the per-block path, which matters for small models at batch 1. Everything else
(pooling, embeddings, per-joint sequences) is an ``einops`` rearrangement to and from one canonical
view, ``b t j c``.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from einops import rearrange, reduce

__all__ = ["TokenLayout", "KNOWN_LAYOUTS", "match_layouts", "FrameIndex"]



_AXES = ("b", "t", "j")


class TokenLayout:
    """A parsed token layout with frame gather/scatter along its ``t`` axis."""

    def __init__(self, pattern: str) -> None:
        groups = re.findall(r"\(([^)]*)\)|(\S+)", pattern.strip())
        parsed: List[Tuple[str, ...]] = []
        for grouped, single in groups:
            names = tuple(grouped.split()) if grouped else (single,)
            parsed.append(names)
        if not parsed or parsed[-1] == () or "c" not in parsed[-1]:
            raise ValueError(f"layout {pattern!r}: the channel axis 'c' must be the last axis")
        if parsed[-1] != ("c",):
            # "(j c)" as the channel axis: one token per frame, treat the whole token as channels.
            parsed[-1] = ("c",)
        flat = [name for group in parsed for name in group]
        unknown = set(flat) - {"b", "t", "j", "c"}
        if unknown or len(flat) != len(set(flat)) or "b" not in flat or "t" not in flat:
            raise ValueError(
                f"layout {pattern!r}: expected axes b, t, optional j, and c (each once), e.g. '(b t) j c'")
        self.groups: Tuple[Tuple[str, ...], ...] = tuple(parsed)
        self.axes: Tuple[str, ...] = tuple(flat)
        self.has_joints = "j" in self.axes
        self.pattern = " ".join(g[0] if len(g) == 1 else "(" + " ".join(g) + ")" for g in self.groups)
        self._canonical_pattern = "b t j c" if self.has_joints else "b t c"

    def __repr__(self) -> str:
        return f"TokenLayout({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenLayout) and other.axes == self.axes and other.groups == self.groups

    def __hash__(self) -> int:
        return hash(self.pattern)

    @property
    def is_spatial(self) -> bool:
        """True when attention over these tokens cannot mix frames (each frame is its own sequence)."""
        return self.groups[0] == ("b", "t")

    def shape(self, b: int, t: int, j: int, c: int) -> Tuple[int, ...]:
        """The tensor shape this layout gives for the given sizes."""
        sizes = {"b": b, "t": t, "j": j, "c": c}
        out = []
        for group in self.groups:
            size = 1
            for name in group:
                size *= sizes[name]
            out.append(size)
        return tuple(out)

    def _sizes(self, b: int, t: int, j: int) -> Dict[str, int]:
        return {"b": b, "t": t, "j": j} if self.has_joints else {"b": b, "t": t}

    def check(self, x: torch.Tensor, b: int, t: int, j: int) -> None:
        """Raise ``ValueError`` unless ``x`` has this layout's shape for these sizes (any channels)."""
        expected = self.shape(b, t, j, x.shape[-1])
        if tuple(x.shape) != expected:
            raise ValueError(f"tokens of shape {tuple(x.shape)} do not fit layout '{self.pattern}' "
                             f"with b={b}, t={t}, j={j} (expected {expected})")

    def _canonical(self, x: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        """The tokens as ``b t j c`` (``b t c`` without joints): one view every operation shares."""
        self.check(x, b, t, j)
        return rearrange(x, f"{self.pattern} -> {self._canonical_pattern}", **self._sizes(b, t, j))

    def _restored(self, canonical: torch.Tensor) -> torch.Tensor:
        return rearrange(canonical, f"{self._canonical_pattern} -> {self.pattern}")

    def frame_index(self, idx: Tensor, b: int, t: int, j: int) -> "FrameIndex":
        """Where frames ``idx (b, f)`` are in a tensor of this layout (see :class:`FrameIndex`)."""
        f = idx.shape[1]
        dims = self.groups[:-1]
        sizes = {"b": b, "t": t, "j": j}
        canonical = {"b": lambda: torch.arange(b, device=idx.device).view(b, 1, 1), "t": lambda: idx.view(b, f, 1),
                     "j": lambda: torch.arange(j, device=idx.device).view(1, 1, j)}

        def linear(group: Tuple[str, ...]) -> Tensor:
            """The group's flat position of every kept token, broadcast over canonical ``(b, f, j)``."""
            out = None
            for name in group:
                out = canonical[name]() if out is None else out * sizes[name] + canonical[name]()
            return out

        axis = next(d for d, group in enumerate(dims) if "t" in group)
        group = dims[axis]
        if (b == 1 or "b" in group) and list(group) == sorted(group, key="btj".index):
            # One axis holds every kept token: row-major order of (b, f, j) is the group's own order.
            return FrameIndex(self, (b, t, j, f), axis, linear(group).reshape(-1))
        needed = [d for d, g in enumerate(dims) if "t" in g or "b" in g]
        low, high = min(needed), max(needed)  # advanced indices must be adjacent to keep the axis order
        kept_pattern = " ".join(g[0] if len(g) == 1 else "(" + " ".join(g) + ")" for g in dims)
        index: List[Optional[Tensor]] = []
        for d, group in enumerate(dims):
            if d < low or d > high:
                index.append(None)
                continue
            grid = linear(group).expand(b, f, j)
            grid = rearrange(grid, f"b t j -> {kept_pattern}") if self.has_joints else \
                rearrange(grid[:, :, 0], f"b t -> {kept_pattern}")
            # Whole axes are not indexed: take position 0 along them (the index does not vary there).
            index.append(grid[(0,) * low + (slice(None),) * (high - low + 1) + (0,) * (len(dims) - 1 - high)])
        return FrameIndex(self, (b, t, j, f), None, None, index)

    def frame_features(self, x: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        """One feature per frame, ``(b, t, c)``: the mean over joints (or the frame token itself)."""
        self._canonical(x, b, t, j)  # checks the shape
        return reduce(x, f"{self.pattern} -> b t c", "mean", **self._sizes(b, t, j))

    def to_sequences(self, x: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        """``(b * j, t, c)``: one temporal sequence per joint (per sample if there are no joints)."""
        self._canonical(x, b, t, j)  # checks the shape
        target = "(b j) t c" if self.has_joints else "b t c"
        return rearrange(x, f"{self.pattern} -> {target}", **self._sizes(b, t, j))

    def from_sequences(self, seqs: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        """Inverse of :meth:`to_sequences`."""
        source = "(b j) t c" if self.has_joints else "b t c"
        return rearrange(seqs, f"{source} -> {self.pattern}", **self._sizes(b, t, j))

    def add_frame_embedding(self, x: torch.Tensor, embedding: torch.Tensor, b: int, t: int, j: int
                            ) -> torch.Tensor:
        """Add ``embedding`` ``(1, t, c)`` to every token of frame ``t`` (broadcast over b and j)."""
        canonical = self._canonical(x, b, t, j)
        per_frame = embedding.reshape((1, t) + (1,) * (canonical.dim() - 3) + (embedding.shape[-1],))
        return self._restored(canonical + per_frame)


class FrameIndex:
    """Where the kept frames lie in a token tensor of one layout, built once per call by
    :meth:`TokenLayout.frame_index`; :meth:`take` gathers them and :meth:`put` scatters them back,
    one op each.

    Usually one axis holds every kept token (at batch 1 always): ``axis`` and the 1-D ``positions``
    along it (``index_select``/``index_copy``, the cheapest ops for it). When the frames differ per
    sample and the batch is on another axis, ``advanced`` is an index over adjacent leading axes
    (``None``: a whole axis) for ``aten.index``/``aten.index_put``.
    """

    __slots__ = ("layout", "sizes", "axis", "positions", "advanced")

    def __init__(self, layout: TokenLayout, sizes: Tuple[int, int, int, int], axis: Optional[int],
                 positions: Optional[Tensor], advanced: Optional[List[Optional[Tensor]]] = None) -> None:
        self.layout, self.sizes = layout, sizes  # (b, t, j, f)
        self.axis, self.positions, self.advanced = axis, positions, advanced

    def take(self, x: Tensor) -> Tensor:
        """The kept frames of ``x``, in its layout with ``t = f``."""
        b, t, j, _ = self.sizes
        self.layout.check(x, b, t, j)  # a shape alone: no tensor op
        if self.advanced is None:
            return x.index_select(self.axis, self.positions)
        return torch.ops.aten.index(x, self.advanced)

    def put(self, full: Tensor, kept: Tensor) -> Tensor:
        """A copy of ``full`` with ``kept`` written at the kept frames, in the wider of the two dtypes
        (under autocast a block may return a wider dtype than it got)."""
        b, t, j, f = self.sizes
        self.layout.check(full, b, t, j)
        self.layout.check(kept, b, f, j)
        if full.dtype != kept.dtype:
            dtype = torch.promote_types(full.dtype, kept.dtype)
            full, kept = full.to(dtype), kept.to(dtype)
        if self.advanced is None:
            return full.index_copy(self.axis, self.positions, kept)
        return torch.ops.aten.index_put(full, self.advanced, kept)


KNOWN_LAYOUTS: Tuple[TokenLayout, ...] = tuple(
    TokenLayout(p) for p in ("(b t) j c", "(b j) t c", "b t c", "b (t j) c", "b t j c", "b j t c"))


def match_layouts(shape: Sequence[int], b: int, t: int, j: int,
                  candidates: Sequence[TokenLayout] = KNOWN_LAYOUTS) -> List[TokenLayout]:
    """All candidate layouts that produce ``shape`` for the given ``b``, ``t``, ``j``."""
    shape = tuple(shape)
    if not shape:
        return []
    return [layout for layout in candidates
            if len(layout.groups) == len(shape) and layout.shape(b, t, j, shape[-1]) == shape]


def parse_layouts(layouts: Optional[Dict[str, str]]) -> Dict[str, TokenLayout]:
    """Parse a user's ``{name: pattern}`` overrides."""
    return {name: TokenLayout(pattern) for name, pattern in (layouts or {}).items()}
