"""Hourglass Tokenizer (HoT, CVPR 2024) as a drop-in plugin for video pose transformers.

    from hourglass_tokenizer import wrap_with_hot
    model = wrap_with_hot(model, prune_block=3, tokens=81)

The plugin itself: ``wrapping`` (API, state, hooks), ``probe`` (structure discovery), ``clustering``
(frame selection), ``layouts`` (gather/scatter), ``recovery`` (restoring the pruned frames),
``lazy`` (set-up at the first forward) and ``checkpoints``; it needs only torch. Tooling around it: ``flops`` (fvcore MAC counting),
``bench``, ``training``, ``inference``, ``metrics``, ``data`` and the ``models`` zoo.
"""
from .clustering import dpc_knn
from .wrapping import HotState, hot_parameters, is_hot, load_official_hot, unwrap_hot, wrap_with_hot

__version__ = "0.1.0"

__all__ = [
    "wrap_with_hot",
    "unwrap_hot",
    "is_hot",
    "hot_parameters",
    "load_official_hot",
    "HotState",
    "dpc_knn",
    "count_macs",
    "count_flops",
]


def __getattr__(name: str):
    # fvcore is imported only when MACs are counted: wrapping a model should not pay for it.
    if name in ("count_macs", "count_flops"):
        from . import flops
        return getattr(flops, name)
    raise AttributeError(f"module 'hourglass_tokenizer' has no attribute {name!r}")
