"""Checkpoints: unnesting saved state dicts and loading the official HoT code's checkpoints.

The documented order for adopting HoT on a pretrained model is: load its weights into the plain
model, then wrap. Original ``state_dict`` keys never change, and HoT's own parameters carry the
official names (``pos_embed_token``, ``x_token``, ``cross_attention.linear_q/k/v``,
``cross_attention.proj``).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from torch import nn

from .recovery import HOT_PARAMETERS
from .state import HotState

__all__ = ["HOT_PARAMETERS", "checkpoint_state_dict", "load_official_hot"]


def checkpoint_state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The model weights of a checkpoint: a bare state dict, or one nested under ``"model_pos"``,
    ``"model"`` or ``"state_dict"``, with DataParallel's ``"module."`` prefixes removed."""
    for key in ("model_pos", "model", "state_dict"):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            checkpoint = checkpoint[key]
            break
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def load_official_hot(model: nn.Module, state_dict: Mapping[str, Any], strict: bool = True):
    """Load a checkpoint of the official HoT code into a model wrapped with the same settings.

    Accepts a bare state dict or one nested under ``"model_pos"``, ``"model"`` or ``"state_dict"``,
    with or without the ``"module."`` prefix of ``nn.DataParallel``. Official key names
    (``pos_embed_token``, ``x_token``, ``cross_attention.linear_q/k/v``, ``cross_attention.proj``)
    are the wrapper's own, so the rest is a plain ``load_state_dict``.

    A seq2seq HoT checkpoint needs a model wrapped with ``recover="tra"`` (the paper's TRA; the
    default ``"tra+interpolate"`` uses the same parameter names differently); an official TPC
    checkpoint (``tpc_mixste``: no HoT parameters at all) one wrapped with ``recover=False``. Both
    were trained choosing frames with DPC-kNN, so the model must be wrapped with
    ``selector="dpc_knn"`` (set ``model.hot.selector`` afterwards to experiment with another).

    Raises:
        ValueError: the model is not wrapped, or wrapped with settings the checkpoint does not fit.
    """
    hot = getattr(model, "hot", None)
    if not isinstance(hot, HotState):
        raise ValueError("load_official_hot: wrap the model with wrap_with_hot first")
    if hot.pending:
        raise ValueError("load_official_hot: the model was wrapped lazily (its input shape could not be inferred), so "
                         "its HoT parameters have no shapes yet; wrap it with input_shape=(T, J, C) (frames, joints, "
                         "channels per joint, e.g. input_shape=(243, 17, 2)), or run one forward first")
    cleaned = checkpoint_state_dict(state_dict)
    recovery = hot.config.recovery
    present = {k.split(".")[0] for k in cleaned if k.split(".")[0] in HOT_PARAMETERS}
    token = cleaned.get("pos_embed_token")
    if token is not None and not recovery.seq2seq:
        raise ValueError("the checkpoint has pos_embed_token, which official TPC-only models do not have: it is "
                         "a seq2seq HoT checkpoint; wrap with recover='tra'")
    if token is not None and tuple(token.shape) != tuple(model.pos_embed_token.shape):
        raise ValueError(f"the checkpoint's pos_embed_token has shape {tuple(token.shape)}, the model's "
                         f"{tuple(model.pos_embed_token.shape)}: wrap with tokens={token.shape[1]}")
    if "x_token" in present and recovery.official_parameters != frozenset(HOT_PARAMETERS):
        raise ValueError(f"the checkpoint has the paper's TRA weights (x_token); wrap with recover='tra' "
                         f"(this model has recover={recovery.name!r})")
    if not present and recovery.seq2seq:
        raise ValueError("the checkpoint has no HoT weights (no pos_embed_token, no x_token): an official TPC "
                         "checkpoint loads into a model wrapped with recover=False; a plain one needs no "
                         "load_official_hot (load it before wrapping)")
    if hot.selector != "dpc_knn":
        raise ValueError(f"official HoT models choose their frames with DPC-kNN; wrap with selector='dpc_knn' "
                         f"(this model has selector={hot.selector!r}; set model.hot.selector after loading to try "
                         "another)")
    if recovery.official_parameters is None:
        raise ValueError(f"the official HoT code has no recover={recovery.name!r}, so none of its checkpoints fits "
                         "this model; wrap with recover='tra' (HoT) or recover=False (TPC)")
    return model.load_state_dict(cleaned, strict=strict)
