"""Hourglass Tokenizer (HoT, CVPR 2024) as a drop-in plugin for video pose transformers.

    from hourglass_tokenizer import wrap_with_hot
    model = wrap_with_hot(model, prune_block=3, tokens=81)

``core`` is the plugin itself and needs only torch and einops; the tooling around it imports the core,
never the reverse: ``bench`` (fvcore MACs and timing), ``training`` (trainer, evaluation, inference),
``data`` (readers and cameras) and ``models`` (the zoo).
"""
from .core.selection import dpc_knn
from .core.wrapping import HotState, hot_parameters, is_hot, load_official_hot, unwrap_hot, wrap_with_hot

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
        from .bench import flops
        return getattr(flops, name)
    raise AttributeError(f"module 'hourglass_tokenizer' has no attribute {name!r}")
