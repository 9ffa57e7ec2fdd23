"""Checkpoint files: saving a model with how to rebuild it, reading checkpoints safely, loading a plain
model's weights into a (HoT-wrapped) model to fine-tune it, and rebuilding a model from a file.

A checkpoint written by :func:`save_checkpoint` is a dict of tensors and plain data:

* ``model``: the state dict (with HoT's parameters when the model was wrapped);
* ``model_spec``: how to build the plain model again, ``{"name", "config", "kwargs"}``: a zoo name
  (:func:`~hourglass_tokenizer.models.build_model`) or a factory ``"pkg.module:fn"`` /
  ``"path/file.py:fn"``, its configuration name (or ``None``) and constructor arguments; ``None``
  when unknown;
* ``hot``: the :func:`~hourglass_tokenizer.wrap_with_hot` settings of a wrapped model (``None`` for a
  plain one): ``prune_block``, ``tokens``, ``recover`` (``False``: TPC only), ``selector``, ``k``,
  ``seed``, ``check_inputs``, ``input_shape`` and the ``structure`` the probe found;
* ``optimizer``, ``epoch``, ``config`` and whatever the caller adds (the trainer's history).

Every file is read with :func:`hourglass_tokenizer.files.load_torch_file`: tensors, plain data and
numpy arrays only, never code. ``trusted=True`` unpickles anything, which runs whatever code the file
carries: only for files from a source you trust.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn

from ..core.checkpoints import HOT_PARAMETERS, checkpoint_state_dict
from ..core.wrapping import is_hot, unwrap_hot, wrap_with_hot
from ..files import atomic_write, load_torch_file

__all__ = ["save_checkpoint", "load_checkpoint", "load_pretrained", "load_model", "load_weights",
           "check_hot_settings", "hot_settings", "describe_model", "CheckpointMismatchError"]

PathLike = Union[str, "os.PathLike[str]"]
#: Attribute where :func:`describe_model` (and ``models.build_model``) record how a model was built.
_SPEC_ATTRIBUTE = "_hot_build_spec"
#: The settings that change what a HoT model computes with the same parameter names.
_COMPARED = ("prune_block", "tokens", "recover")


class CheckpointMismatchError(ValueError, RuntimeError):
    """A checkpoint's weights or HoT settings do not fit the model (also a ``RuntimeError``, which
    ``load_pretrained`` raised before)."""


def _bare(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# -- describing a model ------------------------------------------------------------------------------

def _plain(value: Any, where: str) -> Any:
    """``value`` as plain data (None, bool, int, float, str, and lists/tuples/str-keyed dicts of them)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise ValueError(f"{where} is a {type(value).__name__}; a checkpoint records only plain values "
                     "(numbers, strings, booleans, None, and lists or dicts of them)")


def _checked_spec(spec: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ValueError(f"model_spec must be a dict with a 'name' (zoo name or 'pkg.module:fn'), got {spec!r}")
    config = spec.get("config")
    if config is not None and not isinstance(config, str):
        raise ValueError(f"model_spec['config'] must be a configuration name or None, got {config!r}")
    return {"name": spec["name"], "config": config,
            "kwargs": _plain(dict(spec.get("kwargs") or {}), "model_spec['kwargs']")}


def describe_model(model: nn.Module, name: str, config: Optional[str] = None,
                   kwargs: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """Record on ``model`` how it was built, so that :func:`save_checkpoint` stores it and
    :func:`load_model` can rebuild it. ``models.build_model`` does this itself; call it for models
    made by your own factory (``name="pkg.module:fn"`` or ``"path/file.py:fn"``). Returns ``model``.

    Raises:
        ValueError: ``kwargs`` holds something other than plain values.
    """
    setattr(model, _SPEC_ATTRIBUTE, _checked_spec({"name": name, "config": config, "kwargs": kwargs}))
    return model


def _recorded_spec(model: nn.Module) -> Optional[Dict[str, Any]]:
    spec = getattr(model, _SPEC_ATTRIBUTE, None)
    if spec is None:
        return None
    try:
        return _checked_spec(spec)
    except ValueError as exc:
        warnings.warn(f"the checkpoint cannot record how to rebuild the model ({exc}); load it with "
                      "load_model(path, name=..., model_kwargs=...)", stacklevel=3)
        return None


def hot_settings(model: nn.Module) -> Optional[Dict[str, Any]]:
    """Everything :func:`wrap_with_hot` needs to wrap a fresh copy of ``model`` the same way, as plain
    data (``None`` for a plain model). A callable selector cannot be recorded: ``selector`` is then
    ``None`` (with a warning), and a rebuilt model uses the default selector (``"uniform"``).
    ``x_token_init`` is not recorded: it only sets TRA's start, which the saved ``x_token`` replaces.

    Raises:
        ValueError: the model was wrapped lazily and has not run its first forward yet.
    """
    model = _bare(model)
    if not is_hot(model):
        return None
    hot = model.hot
    if hot.pending:
        raise ValueError("the HoT model was wrapped lazily and is set up by its first forward; run one forward "
                         "before saving it")
    selector = hot.selector if isinstance(hot.selector, str) else None
    if selector is None:
        warnings.warn("the HoT selector is a callable, which a checkpoint cannot record; a model rebuilt from "
                      "it uses 'dpc_knn' until you set model.hot.selector again", stacklevel=3)
    structure = hot.structure
    stages = (lambda v: list(v) if isinstance(v, tuple) else v)
    return {"prune_block": stages(hot.prune_block), "tokens": stages(hot.tokens), "recover": hot.recover,
            "selector": selector, "k": hot.k, "seed": hot.seed, "check_inputs": hot.check_inputs,
            "input_shape": [structure.frames, structure.joints, structure.in_channels],
            "structure": {"blocks": list(hot.block_lists), "recover_before": hot.recover_before,
                          "layouts": dict(hot.layouts), "num_heads": structure.heads,
                          "frame_layers": sorted(layer.name for site in structure.sites
                                                 for layer in site.frame_layers)}}


# -- saving and reading ------------------------------------------------------------------------------

def save_checkpoint(path: PathLike, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    epoch: int = -1, config: Optional[Mapping[str, Any]] = None, *,
                    model_spec: Optional[Mapping[str, Any]] = None, **extra: Any) -> None:
    """Save ``{"model", "model_spec", "hot", "optimizer", "epoch", "config", **extra}`` to ``path``.

    The file is written beside ``path`` and renamed over it once complete: a failed save (full disk,
    interrupted) leaves the previous checkpoint as it was and no temporary file. ``model`` is saved
    unwrapped from DDP; its state dict includes the HoT parameters of a wrapped model.

    Args:
        model_spec: how to build the plain model again, ``{"name": zoo name or "pkg.module:fn",
            "config": configuration name or None, "kwargs": {constructor arguments}}`` (plain values).
            By default what ``models.build_model`` or :func:`describe_model` recorded on the model,
            else ``None`` (then :func:`load_model` needs ``name=``).
        config: the training configuration (plain values), stored under ``"config"``.

    Raises:
        ValueError: ``model_spec`` is not plain data, or the HoT model has not been set up yet.
        hourglass_tokenizer.files.OutputPathError: ``path`` is a directory.
    """
    bare = _bare(model)
    spec = _checked_spec(model_spec) if model_spec is not None else _recorded_spec(bare)
    state = {"model": bare.state_dict(), "model_spec": spec, "hot": hot_settings(bare),
             "optimizer": optimizer.state_dict() if optimizer else None, "epoch": epoch,
             "config": dict(config or {}), **extra}
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu", *,
                    trusted: bool = False) -> Dict[str, Any]:
    """Read a checkpoint without running code: tensors, plain data and numpy arrays only.

    Args:
        trusted: unpickle anything. **Only for files from a source you trust**: a pickled object can
            run arbitrary code on your machine while it is loaded. Files written by this library,
            and the upstream MixSTE/MotionBERT checkpoints, never need it.

    Raises:
        hourglass_tokenizer.files.UnsafeFileError: the file pickles other objects (loading it could
            run code); the message names the first one.
        hourglass_tokenizer.files.FileReadError: missing, empty, truncated, a directory or not a torch file.
    """
    return load_torch_file(path, map_location=map_location, trusted=trusted)


def _source(source: Union[PathLike, Mapping[str, Any]], trusted: bool, map_location: Any = "cpu") -> tuple:
    """``(checkpoint dict, how to name it in messages)`` of a path or an already loaded checkpoint."""
    if isinstance(source, (str, os.PathLike)):
        checkpoint = load_checkpoint(source, map_location, trusted=trusted)
        where = f"checkpoint {os.fspath(source)!r}"
    else:
        checkpoint, where = source, "the checkpoint"
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(f"{where} holds a {type(checkpoint).__name__}, not a state dict")
    return checkpoint, where


def _state_dict_of(source: Union[PathLike, Mapping[str, Any]], *, trusted: bool = False) -> Dict[str, Any]:
    return checkpoint_state_dict(_source(source, trusted)[0])


# -- HoT settings and strict loading ------------------------------------------------------------------

def _comparable(value: Any) -> Any:
    """A setting comparable across its spellings: int / one-element tuple / list, ``True`` / ``"tra"``."""
    if isinstance(value, (list, tuple)):
        return value[0] if len(value) == 1 else tuple(value)
    return "tra" if value is True else value


def _current_settings(model: nn.Module) -> Optional[Dict[str, Any]]:
    if not is_hot(model):
        return None
    settings = {}
    for key in _COMPARED:
        try:
            settings[key] = getattr(model.hot, key)
        except (AttributeError, ValueError, RuntimeError):  # a paper preset of a lazy wrap before its first forward
            settings[key] = None
    return settings


def _describe(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={_comparable(settings.get(key))!r}" for key in _COMPARED)


def check_hot_settings(model: nn.Module, checkpoint: Mapping[str, Any], *, source: str = "the checkpoint",
                       allow_plain_checkpoint: bool = False) -> None:
    """Refuse a checkpoint whose recorded HoT settings differ from the model's.

    HoT parameters have the same names whatever ``prune_block`` and ``recover`` are, so a strict load
    can succeed into a model that computes something else (``"tra"`` weights in a ``"tra+interpolate"``
    model). Compares ``prune_block``, ``tokens`` and ``recover`` with the checkpoint's ``hot`` entry.
    Checkpoints that record nothing (bare state dicts, upstream files) pass.

    Args:
        allow_plain_checkpoint: a plain model's checkpoint may go into a wrapped model (fine-tuning).

    Raises:
        CheckpointMismatchError: one line naming both settings.
    """
    if not isinstance(checkpoint, Mapping) or "hot" not in checkpoint:
        return
    recorded = checkpoint["hot"]
    if recorded is not None and not isinstance(recorded, Mapping):
        return  # a parameter that happens to be called "hot", not our record
    current = _current_settings(_bare(model))
    if recorded is None:
        if current is not None and not allow_plain_checkpoint:
            raise CheckpointMismatchError(f"{source} holds a plain model, but this model is wrapped with HoT "
                                          f"({_describe(current)}); load it before wrapping")
        return
    if current is None:
        raise CheckpointMismatchError(f"{source} holds a HoT model ({_describe(recorded)}), but this model is not "
                                      "wrapped; wrap it with those settings first")
    differ = [key for key in _COMPARED if current.get(key) is not None
              and _comparable(recorded.get(key)) != _comparable(current[key])]
    if differ:
        raise CheckpointMismatchError(f"{source} was saved from a HoT model with {_describe(recorded)}; this model "
                                      f"has {_describe(current)}; wrap it with the checkpoint's settings")


def _mismatches(model: nn.Module, state: Mapping[str, Any]) -> tuple:
    """(missing keys, unexpected keys, ``key (saved) vs (model)`` for keys whose shapes differ)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape]
    return missing, unexpected, shapes


def _mismatch_message(where: str, missing: List[str], unexpected: List[str], shapes: List[str]) -> str:
    parts = [f"{label} {items[:5]}{' ...' if len(items) > 5 else ''} ({len(items)})"
             for label, items in (("missing", missing), ("unexpected", unexpected), ("shapes differ:", shapes))
             if items]
    return f"{where} does not match the model: {'; '.join(parts)}"


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], *, source: str = "the checkpoint") -> None:
    """Load a checkpoint's weights strictly into a model built (and wrapped) like the one saved, after
    :func:`check_hot_settings`. Used to resume training and by :func:`load_model`.

    Raises:
        CheckpointMismatchError: other HoT settings, or keys/shapes that differ (one line).
    """
    check_hot_settings(model, checkpoint, source=source)
    bare, state = _bare(model), checkpoint_state_dict(checkpoint)
    missing, unexpected, shapes = _mismatches(bare, state)
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(_mismatch_message(source, missing, unexpected, shapes))
    bare.load_state_dict(state)


def load_pretrained(model: nn.Module, source: Union[PathLike, Mapping[str, Any]], *,
                    trusted: bool = False) -> List[str]:
    """Load a plain (unwrapped) checkpoint into a model, typically a HoT-wrapped one, to fine-tune it.

    ``source`` is a path or a state dict (bare, or nested under ``model``/``model_pos``/``state_dict``,
    ``module.`` prefixes stripped). Loads with ``strict=False`` and checks that the only missing keys
    are HoT's own (``pos_embed_token``, ``x_token``, ``cross_attention.*``), which keep their fresh
    initialisation, and that nothing is unexpected. A HoT checkpoint loads into a model wrapped with
    the same settings (see :func:`check_hot_settings`). Returns the missing keys.

    Args:
        trusted: see :func:`load_checkpoint` (runs any code the file carries; only for trusted files).

    Raises:
        CheckpointMismatchError (a ``RuntimeError`` and a ``ValueError``): other keys are missing or
            unexpected, shapes differ (a different architecture or config), or the recorded HoT
            settings differ from the model's.
        hourglass_tokenizer.files.FileReadError: the file cannot be read safely.
    """
    checkpoint, where = _source(source, trusted)
    check_hot_settings(model, checkpoint, source=where, allow_plain_checkpoint=True)
    bare, state = _bare(model), checkpoint_state_dict(checkpoint)
    missing, unexpected, shapes = _mismatches(bare, state)
    foreign = [k for k in missing if k.split(".")[0] not in HOT_PARAMETERS]
    if foreign or unexpected or shapes:
        raise CheckpointMismatchError(_mismatch_message(where, foreign, unexpected, shapes)
                                      + f" (only HoT keys {HOT_PARAMETERS} may be missing)")
    bare.load_state_dict(state, strict=False)
    return missing


# -- rebuilding a model from a file ------------------------------------------------------------------

def _build_described(checkpoint: Mapping[str, Any], where: str, name: Optional[str], config: Optional[str],
                     model_kwargs: Optional[Mapping[str, Any]], trusted: bool) -> nn.Module:
    from ..models import available_models, build_from_spec

    spec = checkpoint.get("model_spec") if name is None else None
    if name is None:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ValueError(f"{where} does not record which model it holds; pass name= (a zoo model: "
                             f"{', '.join(available_models())}; or a factory 'pkg.module:fn') with the config= and "
                             "model_kwargs= it was built with, or model=")
        name = spec["name"]
        if ":" in name and not trusted:
            raise ValueError(f"{where} was built by the factory {name!r}, which load_model does not import on a "
                             f"file's word; pass name={name!r} if you trust that code")
        config = config if config is not None else spec.get("config")
        model_kwargs = {**dict(spec.get("kwargs") or {}), **dict(model_kwargs or {})}
    return build_from_spec(name, config, dict(model_kwargs or {}))


def _same_structure(model: nn.Module, structure: Mapping[str, Any]) -> bool:
    hot = model.hot
    found = {"blocks": list(hot.block_lists), "recover_before": hot.recover_before, "layouts": dict(hot.layouts)}
    return all(structure.get(key) is None or structure[key] == value for key, value in found.items())


def _wrap_like(model: nn.Module, hot: Mapping[str, Any], where: str) -> None:
    """Wrap a plain model as recorded: first as ``wrap_with_hot`` finds the structure on its own; when
    that fails or finds another structure, with the recorded block lists, layouts and recovery point."""
    from ..core.selection import DEFAULT_SELECTOR, SELECTORS

    selector = hot.get("selector")
    if selector not in SELECTORS:
        warnings.warn(f"{where} records no selector name (it was a callable); using {DEFAULT_SELECTOR!r}: set "
                      "model.hot.selector to yours", stacklevel=3)
        selector = DEFAULT_SELECTOR
    options = dict(recover=hot.get("recover", "tra+interpolate"), selector=selector, k=hot.get("k", 2),
                   seed=hot.get("seed", 0), check_inputs=hot.get("check_inputs"))
    if hot.get("input_shape"):
        options["input_shape"] = tuple(hot["input_shape"])
    structure = hot.get("structure") or {}
    try:
        wrap_with_hot(model, hot["prune_block"], hot["tokens"], **options)
        if _same_structure(model, structure):
            return
        unwrap_hot(model)
    except (ValueError, TypeError):
        if not structure:
            raise
    wrap_with_hot(model, hot["prune_block"], hot["tokens"], blocks=structure.get("blocks"),
                  recover_before=structure.get("recover_before"), layouts=structure.get("layouts"),
                  num_heads=structure.get("num_heads"), frame_layers=structure.get("frame_layers"), **options)
    if not _same_structure(model, structure):
        raise CheckpointMismatchError(f"{where}: the rebuilt model's HoT structure differs from the saved one "
                                      f"({structure}); pass model= wrapped as it was")


def load_model(path: PathLike, *, model: Optional[nn.Module] = None, name: Optional[str] = None,
               config: Optional[str] = None, model_kwargs: Optional[Mapping[str, Any]] = None,
               trusted: bool = False, map_location: Union[str, torch.device] = "cpu") -> nn.Module:
    """The model a checkpoint holds, rebuilt, with its weights, wrapped with HoT when it was, in eval mode.

    The model comes from, in order: ``model`` (an instance to load into, plain or already wrapped);
    ``name``/``config``/``model_kwargs`` (a zoo name such as ``"mixste"``, or a factory
    ``"pkg.module:fn"`` / ``"path/file.py:fn"`` called with ``model_kwargs``); the file's own
    ``model_spec`` (written by :func:`save_checkpoint`; ``config``/``model_kwargs`` given here
    override its values). A factory named only by the file is not imported unless ``trusted``.

    Upstream checkpoints load when you name the model: MixSTE's and MotionBERT's ``model_pos``
    (DataParallel's ``module.`` prefixes are removed), or any bare state dict. A HoT checkpoint is
    loaded in the documented order: the plain weights into the plain model, then the wrap with the
    recorded settings, then every weight strictly (HoT's own and the rank-indexed layers).

    Args:
        trusted: see :func:`load_checkpoint`: unpickles anything and imports the factory the file
            names. **Only for files from a source you trust**: both can run arbitrary code.
        map_location: where tensors are loaded and the model is moved.

    Raises:
        ValueError: the file does not say which model it holds and neither ``name`` nor ``model`` is
            given (the message says what to pass), or it names a factory and ``trusted`` is False.
        CheckpointMismatchError: the weights or recorded HoT settings do not fit the model.
        hourglass_tokenizer.files.FileReadError: the file cannot be read safely.
    """
    checkpoint, where = _source(path, trusted, map_location)
    if model is None:
        model = _build_described(checkpoint, where, name, config, model_kwargs, trusted)
    recorded = checkpoint.get("hot") if isinstance(checkpoint.get("hot"), Mapping) else None
    state = checkpoint_state_dict(checkpoint)
    if recorded is not None and not is_hot(_bare(model)):
        own = _bare(model).state_dict()  # the plain weights first: the wrap sees the trained model
        _bare(model).load_state_dict({k: v for k, v in state.items()
                                      if k in own and getattr(v, "shape", None) == own[k].shape}, strict=False)
        _wrap_like(_bare(model), recorded, where)
    elif "hot" not in checkpoint and not is_hot(_bare(model)) and any(
            k.split(".")[0] in HOT_PARAMETERS for k in state):
        raise CheckpointMismatchError(f"{where} holds HoT weights but does not record the HoT settings (an official "
                                      "HoT checkpoint?); wrap the model as it was trained and pass model=, or use "
                                      "load_official_hot")
    load_weights(model, checkpoint, source=where)
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval()
