"""Checkpoints: unnesting saved state dicts, loading the official HoT code's checkpoints, and the
start of TRA's queries (``x_token``) from a model's own weights.

The documented order for adopting HoT on a pretrained model is: load its weights into the plain
model, then wrap. Original ``state_dict`` keys never change, and HoT's own parameters carry the
official names (``pos_embed_token``, ``x_token``, ``cross_attention.linear_q/k/v``,
``cross_attention.proj``).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Union

import torch
from torch import nn

__all__ = ["HOT_PARAMETERS", "checkpoint_state_dict", "load_official_hot", "initial_x_token"]

#: Attributes the wrapper adds to the model; their parameters appear in its ``state_dict``.
HOT_PARAMETERS = ("pos_embed_token", "x_token", "cross_attention")


def checkpoint_state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The model weights of a checkpoint: a bare state dict, or one nested under ``"model_pos"``,
    ``"model"`` or ``"state_dict"``, with DataParallel's ``"module."`` prefixes removed."""
    for key in ("model_pos", "model", "state_dict"):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            checkpoint = checkpoint[key]
            break
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def initial_x_token(model: nn.Module, init: Union[str, torch.Tensor], frames: int, width: int) -> torch.Tensor:
    """TRA's starting queries ``(1, frames, width)``: ``"zeros"`` (the paper's), ``"position"`` (a copy
    of the model's temporal position embedding as it is now) or a given tensor."""
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) != (1, frames, width):
            raise ValueError(f"x_token_init must have shape (1, {frames}, {width}), got {tuple(init.shape)}")
        return init.detach().clone()
    if init == "zeros":
        return torch.zeros(1, frames, width)
    if init == "position":
        for name, p in model.named_parameters():
            if name.split(".")[0] in HOT_PARAMETERS or not any(w in name.lower() for w in ("temp", "frame", "time")):
                continue
            if p.numel() == frames * width and p.shape[0] == 1 and p.shape[1] == frames and p.shape[-1] == width:
                return p.detach().reshape(1, frames, width).clone()
        raise ValueError(f"x_token_init='position': no temporal position embedding of shape (1, {frames}, {width}) "
                         "found (looked for parameters named *temp*, *frame*, *time*); pass a tensor instead")
    raise ValueError(f"x_token_init must be 'zeros', 'position' or a tensor, got {init!r}")


def load_official_hot(model: nn.Module, state_dict: Mapping[str, Any], strict: bool = True):
    """Load a checkpoint of the official HoT code into a model wrapped with the same settings.

    Accepts a bare state dict or one nested under ``"model_pos"``, ``"model"`` or ``"state_dict"``,
    with or without the ``"module."`` prefix of ``nn.DataParallel``. Official key names
    (``pos_embed_token``, ``x_token``, ``cross_attention.linear_q/k/v``, ``cross_attention.proj``)
    are the wrapper's own, so the rest is a plain ``load_state_dict``.

    A seq2seq HoT checkpoint needs a model wrapped with ``recover="tra"`` (the paper's TRA; the
    default ``"tra+interpolate"`` uses the same parameter names differently); an official TPC
    checkpoint (``tpc_mixste``: no HoT parameters at all) one wrapped with ``recover=False``.

    Raises:
        ValueError: the model is not wrapped, or wrapped with settings the checkpoint does not fit.
    """
    from .wrapping import is_hot

    if not is_hot(model):
        raise ValueError("load_official_hot: wrap the model with wrap_with_hot first")
    if model.hot.pending:
        raise ValueError("load_official_hot: the model was wrapped lazily; run one forward first, so that the HoT "
                         "parameters exist with their shapes")
    cleaned = checkpoint_state_dict(state_dict)
    token = cleaned.get("pos_embed_token")
    if token is not None and model.hot.recover is False:
        raise ValueError("the checkpoint has pos_embed_token, which official TPC-only models do not have: it is "
                         "a seq2seq HoT checkpoint; wrap with recover='tra'")
    if token is not None and tuple(token.shape) != tuple(model.pos_embed_token.shape):
        raise ValueError(f"the checkpoint's pos_embed_token has shape {tuple(token.shape)}, the model's "
                         f"{tuple(model.pos_embed_token.shape)}: wrap with tokens={token.shape[1]}")
    if "x_token" in cleaned and model.hot.recover != "tra":
        raise ValueError(f"the checkpoint has the paper's TRA weights (x_token); wrap with recover='tra' "
                         f"(this model has recover={model.hot.recover!r})")
    if "x_token" not in cleaned and "pos_embed_token" not in cleaned and model.hot.recover is not False:
        raise ValueError("the checkpoint has no HoT weights (no pos_embed_token, no x_token): an official TPC "
                         "checkpoint loads into a model wrapped with recover=False; a plain one needs no "
                         "load_official_hot (load it before wrapping)")
    return model.load_state_dict(cleaned, strict=strict)
