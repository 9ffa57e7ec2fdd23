"""Lazy wrapping: models whose frame count cannot be inferred are set up by their first forward.

STCFormer-like models store no frame count and have no position embedding, so the probe has no
input shape. ``wrap_with_hot`` then checks what needs no frame count, registers HoT's parameters
as ``UninitializedParameter`` placeholders (so optimisers built now keep valid references) and a
pre-hook; the first real forward probes on its input's shape, fills the placeholders in place,
installs the hooks and prunes that same call. Until then ``state_dict()`` raises, as torch's own
lazy modules require one forward before use.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from .probe import example_input as probe_input
from .probe import find_block_lists, token_argument
from .recovery import LEARNED_MODES, CrossAttention

__all__ = ["PendingHot", "wrap_lazily"]

logger = logging.getLogger("hourglass_tokenizer")


class PendingHot:
    """``model.hot`` of a lazily wrapped model before its first forward (see :func:`wrap_with_hot`).

    Only ``pending`` (True) and the wrapping options are known; everything that needs the frame
    count (``frames``, ``tokens`` of a paper preset, the layouts) exists after the first forward,
    which replaces this object by a :class:`HotState`.
    """

    pending = True

    def __init__(self, model: nn.Module, options: Dict[str, Any]) -> None:
        self._model = model
        self.options = options
        self._handles: List[Any] = []
        self._probing = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_model", "options", "_handles", "_probing"):
            raise AttributeError(name)
        raise AttributeError(f"model.hot.{name} is not known yet: the model was wrapped lazily (its frame count "
                             "could not be inferred) and is set up by its first forward; run one forward first")

    def __repr__(self) -> str:
        return f"PendingHot({self.options!r}; set up by the first forward)"

    def install(self) -> None:
        self.remove_hooks()
        self._handles.append(self._model.register_forward_pre_hook(_LazySetUp(self), with_kwargs=True))
        self._handles.append(self._model.register_state_dict_pre_hook(_refuse_state_dict))

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def set_up(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """First forward: probe on this input's shape, create the placeholders in place, hook the model,
        and start this call's pass (pre-hooks registered now would only run from the next call on).
        On failure the model stays pending."""
        if self._probing:  # the probe's own forward
            return
        x, _ = token_argument(args, kwargs)
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError("the first forward of a lazily wrapped HoT model sets it up and needs the pose "
                             "sequence (batch, frames, joints, channels) as first argument, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        self._probing = True
        try:
            self.remove_hooks()  # the state-dict guard would refuse the probe's bookkeeping otherwise
            from .wrapping import _build  # the wrapper imports this module

            state, new = _build(self._model, probe_input(self._model, x[:1], None), **self.options)
        except BaseException:
            self.install()
            raise
        finally:
            self._probing = False
        model = self._model
        for name, value in new.items():
            placeholder = getattr(model, name)
            if isinstance(value, nn.Parameter):
                _materialise(placeholder, value)
            else:  # the cross-attention module: every parameter, and its head count
                placeholder.num_heads = value.num_heads
                for sub_name, sub in value.named_modules():
                    target = placeholder.get_submodule(sub_name) if sub_name else placeholder
                    for p_name, p in list(sub.named_parameters(recurse=False)):
                        _materialise(getattr(target, p_name), p)
                    for p_name in [n for n, v in target._parameters.items() if v is not None]:
                        if getattr(sub, p_name, None) is None:
                            setattr(target, p_name, None)  # no q/k/v bias in this family
                    if isinstance(target, nn.Linear):
                        target.in_features, target.out_features = sub.in_features, sub.out_features
        model.hot = state
        state.install()
        state._on_model_start(module, args, kwargs)


def _materialise(placeholder: nn.Parameter, value: torch.Tensor) -> None:
    placeholder.materialize(value.shape, device=value.device, dtype=value.dtype)
    with torch.no_grad():
        placeholder.copy_(value)


class _LazySetUp:
    """The lazily wrapped model's pre-hook (a class, so the model stays picklable)."""

    def __init__(self, pending: PendingHot) -> None:
        self.pending = pending

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.pending.set_up(module, args, kwargs)


def _refuse_state_dict(module: nn.Module, prefix: str, keep_vars: bool) -> None:
    raise RuntimeError("this HoT model was wrapped lazily and its HoT parameters do not exist yet: run one forward "
                       "(any input of the right shape, e.g. under torch.no_grad()) before state_dict(), "
                       "optimisers or checkpoint loading")


def wrap_lazily(model: nn.Module, options: Dict[str, Any]) -> nn.Module:
    """Check what needs no frame count, then register placeholders and the set-up hook."""
    blocks, recover_before = options["blocks"], options["recover_before"]
    names = dict(model.named_modules())
    if blocks is not None:
        missing = [n for n in blocks if n not in names]
        if missing:
            raise ValueError(f"blocks={list(blocks)}: no module named {missing}; block lists found: "
                             f"{sorted(find_block_lists(model))}")
    elif not find_block_lists(model):
        raise ValueError("no block list found: HoT needs the transformer blocks in an nn.ModuleList (or "
                         "nn.Sequential) of identical modules; pass blocks=['name', ...]")
    if recover_before is not None and recover_before not in names:
        raise ValueError(f"recover_before={recover_before!r}: the model has no module of that name; its direct "
                         f"children are {[n for n, _ in model.named_children()]}")
    if options["num_heads"] is not None:
        from .wrapping import _count

        _count(options["num_heads"], "num_heads")
    mode = options["mode"]
    if mode is not None:
        model.pos_embed_token = UninitializedParameter()
    if mode in LEARNED_MODES:
        model.x_token = UninitializedParameter()
        attention = CrossAttention(1, 1)
        for linear in (attention.linear_q, attention.linear_k, attention.linear_v, attention.proj):
            linear.weight = UninitializedParameter()
            linear.bias = UninitializedParameter()
        model.cross_attention = attention
    pending = PendingHot(model, options)
    model.hot = pending
    pending.install()
    logger.info("the model's input shape could not be inferred: HoT is set up by the first forward")
    return model
