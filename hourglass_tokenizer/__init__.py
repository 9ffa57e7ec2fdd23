"""Hourglass Tokenizer (HoT, CVPR 2024) as a drop-in plugin for video pose transformers.

    from hourglass_tokenizer import wrap_with_hot
    model = wrap_with_hot(model, prune_block=3, tokens=81)
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
    "count_flops",
]


def __getattr__(name: str):
    # fvcore is imported only when FLOPs are counted: wrapping a model should not pay for it.
    if name == "count_flops":
        from .flops import count_flops
        return count_flops
    raise AttributeError(f"module 'hourglass_tokenizer' has no attribute {name!r}")
