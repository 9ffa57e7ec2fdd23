"""Running a model in eval mode for a moment without disturbing its submodules' own flags.

``model.train(was_training)`` after an eval-mode pass sets *every* submodule to the model's flag,
which silently unfreezes a user's deliberately frozen (eval-mode) BatchNorm or dropout layers.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

__all__ = ["evaluation_mode"]


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode inside the block; afterwards every module has its own flag back."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training
