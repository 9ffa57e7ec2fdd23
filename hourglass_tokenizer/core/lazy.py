"""Lazy wrapping: models whose frame count cannot be inferred are set up by their first forward.

STCFormer-like models store no frame count and have no position embedding, so the probe has no
input shape. ``wrap_with_hot`` then checks what needs no frame count, registers HoT's parameters as
``UninitializedParameter`` placeholders (so optimisers built now keep valid references), puts a
pending :class:`~hourglass_tokenizer.core.state.HotState` on ``model.hot`` and a pre-hook; the first
real forward probes on its input's shape, fills the placeholders in place, installs the hooks and
prunes that same call. Until then ``state_dict()`` raises, as torch's own lazy modules require one
forward before use. ``model.hot`` stays the same object throughout.
"""
from __future__ import annotations

import logging
from typing import Any, Dict

import torch
from torch import nn

from .probe import example_input, token_argument

__all__ = ["wrap_lazily"]

logger = logging.getLogger("hourglass_tokenizer")


def wrap_lazily(model: nn.Module, state: Any) -> nn.Module:
    """Attach ``state`` (pending) to ``model`` with placeholders for the parameters its recovery adds,
    and the hooks that set it up at the first forward."""
    for name, placeholder in state.config.recovery.placeholders().items():
        setattr(model, name, placeholder)
    model.hot = state
    state._handles = [model.register_forward_pre_hook(_SetUp(state), with_kwargs=True),
                      model.register_state_dict_pre_hook(_refuse_state_dict)]
    logger.info("the model's input shape could not be inferred: HoT is set up by the first forward")
    return model


class _SetUp:
    """The pending model's pre-hook (a class, so the model stays picklable)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.probing = False

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Probe on this input's shape, fill the placeholders in place, hook the model, and open this
        call's pass (hooks registered now run from this call's blocks on, not its model pre-hook). On
        failure the model stays pending."""
        if self.probing:  # the probe's own forward
            return
        x = token_argument(args, kwargs)[0]
        if x is None or x.dim() != 4:
            raise ValueError("the first forward of a lazily wrapped HoT model sets it up and needs the pose "
                             "sequence (batch, frames, joints, channels) as first argument, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        state, handles = self.state, self.state._handles
        self.probing = True
        try:
            for handle in handles:  # the state-dict guard would refuse the probe's bookkeeping otherwise
                handle.remove()
            new = state.set_up(example_input(module, x[:1], None))
        except BaseException:
            state._handles = [module.register_forward_pre_hook(self, with_kwargs=True),
                              module.register_state_dict_pre_hook(_refuse_state_dict)]
            raise
        finally:
            self.probing = False
        _materialise(module, new)
        state._handles = []
        state.install()
        state.start_call(module, args, kwargs)  # the model pre-hook just installed runs from the next call on


def _materialise(model: nn.Module, new: Dict[str, nn.Module]) -> None:
    """Fill each placeholder attribute in place with the values of ``new`` (the same objects stay)."""
    for name, value in new.items():
        placeholder = getattr(model, name)
        if isinstance(value, nn.Parameter):
            _fill(placeholder, value)
            continue
        # A module (the cross-attention): every parameter, and its attributes that depend on the sizes.
        for attribute in ("num_heads",):
            if hasattr(value, attribute):
                setattr(placeholder, attribute, getattr(value, attribute))
        for sub_name, sub in value.named_modules():
            target = placeholder.get_submodule(sub_name) if sub_name else placeholder
            for p_name, p in list(sub.named_parameters(recurse=False)):
                _fill(getattr(target, p_name), p)
            for p_name in [n for n, v in target._parameters.items() if v is not None]:
                if getattr(sub, p_name, None) is None:
                    setattr(target, p_name, None)  # no q/k/v bias in this family
            if isinstance(target, nn.Linear):
                target.in_features, target.out_features = sub.in_features, sub.out_features


def _fill(placeholder: nn.Parameter, value: torch.Tensor) -> None:
    placeholder.materialize(value.shape, device=value.device, dtype=value.dtype)
    with torch.no_grad():
        placeholder.copy_(value)


def _refuse_state_dict(module: nn.Module, prefix: str, keep_vars: bool) -> None:
    raise RuntimeError("this HoT model was wrapped lazily and its HoT parameters do not exist yet: run one forward "
                       "(any input of the right shape, e.g. under torch.no_grad()) before state_dict(), "
                       "optimisers or checkpoint loading")
