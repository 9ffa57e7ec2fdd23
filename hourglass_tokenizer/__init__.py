"""Hourglass Tokenizer (HoT, CVPR 2024) as a drop-in plugin for video pose transformers.

    from hourglass_tokenizer import wrap_with_hot
    model = wrap_with_hot(model, prune_block=3, tokens=81)

``core`` is the plugin itself and needs only torch and einops; the tooling around it imports the core,
never the reverse: ``bench`` (fvcore MACs and timing), ``training`` (trainer, checkpoints, evaluation,
inference), ``tuning`` (choosing the setting on your data), ``data`` (readers, cameras, detector
formats) and ``models`` (the zoo). Tooling names below are imported on first use, so wrapping a
model pays for none of them.
"""
from importlib import import_module

from .core.config import HotConfig
from .core.selection import dpc_knn
from .core.wrapping import HotState, hot_parameters, is_hot, load_official_hot, unwrap_hot, wrap_with_hot

__version__ = "0.1.0"

#: Public tooling names and the modules they come from (imported when first used).
_TOOLING = {
    "count_macs": "hourglass_tokenizer.bench.flops",
    "count_flops": "hourglass_tokenizer.bench.flops",
    "predict": "hourglass_tokenizer.training.inference",
    "load_model": "hourglass_tokenizer.training.checkpoints",
    "tune": "hourglass_tokenizer.tuning",
    "read_keypoints": "hourglass_tokenizer.data.keypoints",
}

__all__ = ["wrap_with_hot", "unwrap_hot", "is_hot", "hot_parameters", "load_official_hot", "HotState", "HotConfig",
           "dpc_knn"] + list(_TOOLING)


def __getattr__(name: str):
    if name in _TOOLING:
        return getattr(import_module(_TOOLING[name]), name)
    raise AttributeError(f"module 'hourglass_tokenizer' has no attribute {name!r}")
