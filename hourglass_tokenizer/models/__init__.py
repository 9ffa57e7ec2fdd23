"""Built-in video pose transformers that Hourglass Tokenizer can wrap.

Each model is a plain ``nn.Module`` with checkpoint-compatible parameter
names of its reference implementation, transformer blocks held in
``nn.ModuleList`` s, and a ``from_config(name, **overrides)`` classmethod:

==================  ===========================  =====================================
name                class                        configs (``"paper"`` is an alias)
==================  ===========================  =====================================
``mixste``          :class:`MixSTE`              ``h36m-243`` (paper), ``small``
``motionbert``      :class:`DSTformer`           ``h36m-243``, ``hot-243`` (paper),
                                                 ``small``
``poseformer``      :class:`PoseFormer`          ``h36m-81`` (paper), ``small``
``motionagformer``  :class:`MotionAGFormer`      ``xsmall``, ``small``, ``base``,
                                                 ``large``, ``hot-243`` (paper),
                                                 ``tiny``
==================  ===========================  =====================================

Example:
    >>> from hourglass_tokenizer.models import build_model
    >>> model = build_model("mixste", "small")
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Mapping, Optional

from torch import nn

from .mixste import MixSTE
from .motionagformer import MotionAGFormer
from .motionbert import DSTformer, MotionBERT
from .poseformer import PoseFormer

__all__ = ["MixSTE", "DSTformer", "MotionBERT", "PoseFormer", "MotionAGFormer", "build_model", "available_models",
           "build_from_spec"]

_MODELS: dict[str, type[nn.Module]] = {
    "mixste": MixSTE,
    "motionbert": DSTformer,
    "poseformer": PoseFormer,
    "motionagformer": MotionAGFormer,
}
# Accepted by build_model but not listed by available_models (same model twice).
_NAME_ALIASES: dict[str, str] = {"dstformer": "motionbert"}


def available_models() -> dict[str, list[str]]:
    """Model names accepted by :func:`build_model`, each with its configuration names.

    The alias ``"paper"`` (each model's main paper configuration) is accepted
    too but not listed, so iterating over the result builds every model once.
    """
    return {name: list(cls.configs) for name, cls in _MODELS.items()}  # type: ignore[attr-defined]


def build_model(name: str, config: str = "paper", **overrides: Any) -> nn.Module:
    """Build a built-in model by name and configuration.

    Args:
        name: ``"mixste"``, ``"motionbert"`` (or ``"dstformer"``), ``"poseformer"`` or
            ``"motionagformer"``; case-insensitive.
        config: A configuration name from :func:`available_models`, or ``"paper"``.
        **overrides: Constructor arguments replacing the configuration's values,
            e.g. ``num_frames=81`` for MixSTE or ``maxlen=81`` for MotionBERT.

    Raises:
        ValueError: Unknown model name or configuration (the message lists the valid ones).
    """
    key = name.lower()
    key = _NAME_ALIASES.get(key, key)
    if key not in _MODELS:
        valid = ", ".join(f"{n} ({', '.join(c)})" for n, c in available_models().items())
        raise ValueError(f"unknown model {name!r}; valid models (configs): {valid}")
    model = _MODELS[key].from_config(config, **overrides)  # type: ignore[attr-defined]
    # How to build it again: save_checkpoint records this, so load_model can rebuild the model.
    model._hot_build_spec = {"name": key, "config": config, "kwargs": dict(overrides)}
    return model


def build_from_spec(name: str, config: Optional[str], kwargs: Mapping[str, Any]) -> nn.Module:
    """A zoo model (:func:`build_model` with ``config``) or a user factory, ``package.module:callable``
    or ``path/to/file.py:callable``, called with ``kwargs``.

    The model records how it was built (checkpoints store it, so the model can be rebuilt from the
    file). Importing a factory runs its module's code: name only code you trust.
    """
    if ":" not in name:
        return build_model(name, config if config is not None else "paper", **kwargs)
    module_name, attr = name.rsplit(":", 1)
    if module_name.endswith(".py"):
        spec = importlib.util.spec_from_file_location("user_model", module_name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    model = getattr(module, attr)(**kwargs)
    model._hot_build_spec = {"name": name, "config": None, "kwargs": dict(kwargs)}
    return model
