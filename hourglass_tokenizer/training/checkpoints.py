"""Checkpoint files of the trainer: saving a model with its optimiser and HoT settings, reading
them back, and loading a plain model's weights into a (HoT-wrapped) model to fine-tune it."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from torch import nn

from ..core.checkpoints import HOT_PARAMETERS, checkpoint_state_dict

__all__ = ["save_checkpoint", "load_checkpoint", "load_pretrained"]


def _bare(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _hot_settings(model: nn.Module) -> Optional[Dict[str, Any]]:
    hot = getattr(model, "hot", None)
    if hot is None:
        return None
    selector = hot.selector if isinstance(hot.selector, str) else repr(hot.selector)
    return {"prune_block": hot.prune_block, "tokens": hot.tokens, "recover": hot.recover, "selector": selector}


def save_checkpoint(path: str, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    epoch: int = -1, config: Optional[Mapping[str, Any]] = None,
                    **extra: Any) -> None:
    """Save ``{"model", "optimizer", "epoch", "config", "hot", **extra}`` atomically to ``path``.

    ``model`` is saved unwrapped from DDP; its state dict includes the HoT parameters of a wrapped
    model. ``hot`` records the wrapper settings (``None`` for a plain model) for information.
    """
    bare = _bare(model)
    state = {"model": bare.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "epoch": epoch, "config": dict(config or {}), "hot": _hot_settings(bare), **extra}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-save leaves the previous checkpoint intact


def load_checkpoint(path: str, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (our own files: full unpickling)."""
    return torch.load(path, map_location=map_location, weights_only=False)


def _state_dict_of(source: Union[str, Mapping[str, Any]]) -> Dict[str, torch.Tensor]:
    return checkpoint_state_dict(load_checkpoint(source) if isinstance(source, (str, os.PathLike)) else source)


def load_pretrained(model: nn.Module, source: Union[str, Mapping[str, Any]]) -> List[str]:
    """Load a plain (unwrapped) checkpoint into a model, typically a HoT-wrapped one, to fine-tune it.

    ``source`` is a path or a state dict (bare, or nested under ``model``/``model_pos``/``state_dict``,
    ``module.`` prefixes stripped). Loads with ``strict=False`` and checks that the only missing keys
    are HoT's own (``pos_embed_token``, ``x_token``, ``cross_attention.*``), which keep their fresh
    initialisation, and that nothing is unexpected. Returns the missing keys.

    Raises:
        RuntimeError: other keys are missing or unexpected (a different architecture or config).
    """
    result = _bare(model).load_state_dict(_state_dict_of(source), strict=False)
    foreign = [k for k in result.missing_keys if k.split(".")[0] not in HOT_PARAMETERS]
    if foreign or result.unexpected_keys:
        raise RuntimeError(f"checkpoint does not match the model: missing {foreign[:10]}, unexpected "
                           f"{list(result.unexpected_keys)[:10]} (only HoT keys {HOT_PARAMETERS} may be missing)")
    return list(result.missing_keys)
