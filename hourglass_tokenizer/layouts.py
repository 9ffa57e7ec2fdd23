"""Token layouts: how a block's input tensor arranges batch ``b``, frames ``t``, joints ``j``, channels ``c``.

A layout is an einops-style pattern such as ``"(b t) j c"`` (spatial blocks), ``"(b j) t c"``
(temporal blocks), ``"b t c"`` (one token per frame) or ``"b (t j) c"`` (joint-time tokens). The
channel axis ``c`` is always the last dimension and stands alone; ``"b t (j c)"`` is read as
``"b t c"`` because its frame tokens are gathered the same way.

Gathering keeps the pattern and replaces ``t`` by the number of kept frames, so a block sees the
same arrangement it was written for, only shorter in time.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["TokenLayout", "KNOWN_LAYOUTS", "match_layouts"]

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

    def _expanded(self, x: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        sizes = {"b": b, "t": t, "j": j, "c": x.shape[-1]}
        expected = self.shape(b, t, j, x.shape[-1])
        if tuple(x.shape) != expected:
            raise ValueError(f"tokens of shape {tuple(x.shape)} do not fit layout '{self.pattern}' "
                             f"with b={b}, t={t}, j={j} (expected {expected})")
        return x.reshape([sizes[name] for name in self.axes])

    def _index(self, idx: torch.Tensor, expanded: torch.Tensor) -> torch.Tensor:
        view = [1] * expanded.dim()
        view[self.axes.index("b")] = idx.shape[0]
        view[self.axes.index("t")] = idx.shape[1]
        target = list(expanded.shape)
        target[self.axes.index("t")] = idx.shape[1]
        return idx.reshape(view).expand(target)

    def gather(self, x: torch.Tensor, idx: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        """Keep frames ``idx`` ``(b, f)`` of ``x``; the result has this layout with ``t = f``."""
        expanded = self._expanded(x, b, t, j)
        kept = torch.gather(expanded, self.axes.index("t"), self._index(idx, expanded))
        return kept.reshape(self.shape(b, idx.shape[1], j, x.shape[-1]))

    def scatter(self, full: torch.Tensor, kept: torch.Tensor, idx: torch.Tensor, b: int, t: int, j: int
                ) -> torch.Tensor:
        """Write ``kept`` (this layout, ``t = f``) into a copy of ``full`` at frames ``idx``."""
        expanded = self._expanded(full, b, t, j)
        f = idx.shape[1]
        sizes = {"b": b, "t": f, "j": j, "c": kept.shape[-1]}
        kept_expanded = kept.reshape([sizes[name] for name in self.axes])
        # Promote rather than cast down: under autocast a block may return a wider dtype than it got.
        dtype = torch.promote_types(full.dtype, kept.dtype)
        out = expanded.to(dtype).scatter(self.axes.index("t"), self._index(idx, expanded), kept_expanded.to(dtype))
        return out.reshape(full.shape)

    def frame_features(self, x: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        """One feature per frame, ``(b, t, c)``: the mean over joints (or the frame token itself)."""
        expanded = self._expanded(x, b, t, j)
        if self.has_joints:
            expanded = expanded.mean(dim=self.axes.index("j"))
        remaining = [a for a in self.axes if a != "j"]
        return expanded.permute([remaining.index(a) for a in ("b", "t", "c")])

    def to_sequences(self, x: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        """``(b * j, t, c)``: one temporal sequence per joint (per sample if there are no joints)."""
        expanded = self._expanded(x, b, t, j)
        order = [self.axes.index(a) for a in ("b", "j", "t", "c") if a in self.axes]
        return expanded.permute(order).reshape(-1, t, x.shape[-1])

    def from_sequences(self, seqs: torch.Tensor, b: int, t: int, j: int) -> torch.Tensor:
        """Inverse of :meth:`to_sequences`."""
        named = [a for a in ("b", "j", "t", "c") if a in self.axes]
        sizes = {"b": b, "t": t, "j": j, "c": seqs.shape[-1]}
        expanded = seqs.reshape([sizes[a] for a in named]).permute([named.index(a) for a in self.axes])
        return expanded.reshape(self.shape(b, t, j, seqs.shape[-1]))

    def add_frame_embedding(self, x: torch.Tensor, embedding: torch.Tensor, b: int, t: int, j: int
                            ) -> torch.Tensor:
        """Add ``embedding`` ``(1, t, c)`` to every token of frame ``t`` (broadcast over b and j)."""
        expanded = self._expanded(x, b, t, j)
        view = [1] * expanded.dim()
        view[self.axes.index("t")] = t
        view[-1] = embedding.shape[-1]
        return (expanded + embedding.reshape(view)).reshape(x.shape)


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
