"""Layers indexed by frame position inside pruned blocks (MotionAGFormer's temporal GCN applies a
``BatchNorm1d(T)`` over the frame axis): in a block that sees ``f`` kept frames each becomes a
rank-indexed norm of size ``f`` at the same attribute, and the originals come back on unwrap."""
from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

import torch
from torch import nn

from .probe import BlockSite

__all__ = ["rank_indexed", "swap_in", "put_back"]

#: Rank-indexed replacements by (layer name, size); kept so that setting a size back restores them.
SwapCache = Dict[Tuple[str, int], nn.Module]


def rank_indexed(norm: nn.Module, f: int) -> nn.Module:
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


def swap_in(sites: Sequence[BlockSite], first_depth: int, kept_at: Callable[[int], int], cache: SwapCache) -> None:
    """Put rank-indexed norms into every block from ``first_depth`` on (``kept_at(depth)`` frames),
    reusing trained ones of the same size from ``cache`` and adding the new ones to it."""
    for site in sites:
        if site.depth < first_depth:
            continue
        f = kept_at(site.depth)
        for layer in site.frame_layers:
            new = cache.get((layer.name, f))
            if new is None:
                new = cache[(layer.name, f)] = rank_indexed(layer.module, f)
            setattr(layer.parent, layer.attribute, new.train(layer.module.training))


def put_back(sites: Sequence[BlockSite]) -> None:
    """The original frame-indexed layers back in place, following a ``.to()`` of the wrapped model
    made while they were out of it."""
    for site in sites:
        for layer in site.frame_layers:
            present = getattr(layer.parent, layer.attribute)
            if present is not layer.module:
                ref = next((v for v in present.state_dict().values() if v.is_floating_point()), None)
                if ref is not None:
                    layer.module.to(device=ref.device, dtype=ref.dtype)
                layer.module.train(present.training)
                setattr(layer.parent, layer.attribute, layer.module)
