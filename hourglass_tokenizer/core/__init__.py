"""The HoT plugin itself; it needs only torch and einops and imports nothing from the tooling.

``wrapping`` (the API), ``probe`` (structure discovery), ``selection`` (frame selectors),
``layouts`` (gather/scatter), ``recovery`` (restoring the pruned frames), ``lazy`` (set-up at the
first forward), ``checkpoints`` (official HoT weights), ``presets`` and ``modes``.
"""
from .selection import dpc_knn
from .wrapping import HotState, hot_parameters, is_hot, load_official_hot, unwrap_hot, wrap_with_hot

__all__ = ["wrap_with_hot", "unwrap_hot", "is_hot", "hot_parameters", "load_official_hot", "HotState", "dpc_knn"]
