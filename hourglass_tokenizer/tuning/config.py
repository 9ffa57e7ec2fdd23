"""``hot.json``: the ``wrap_with_hot`` settings ``tune`` chooses, as a file the ``train`` and ``bench``
commands read with ``--hot-config`` (and Python with ``wrap_with_hot(model, **json.load(...))``)."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Sequence

from ..files import FileReadError

__all__ = ["HOT_CONFIG_KEYS", "read_hot_config", "hot_config_options"]

#: Keys a ``hot.json`` may hold: keyword arguments of ``wrap_with_hot``.
HOT_CONFIG_KEYS = ("prune_block", "tokens", "selector", "recover")
#: The command-line flags of ``train`` and ``bench`` that each key stands for.
_FLAGS = {"prune_block": ("--prune-block",), "tokens": ("--tokens",), "selector": ("--selector",),
          "recover": ("--recover", "--no-recover")}


def read_hot_config(path: str) -> Dict[str, Any]:
    """The ``wrap_with_hot`` keyword arguments in a ``hot.json`` that ``tune`` wrote (or a user did).

    Raises:
        FileReadError: the file is missing, not JSON, not an object, or holds other keys (one line).
    """
    if not os.path.isfile(path):
        raise FileReadError(f"hot config {path!r} does not exist")
    try:
        with open(path) as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise FileReadError(f"hot config {path!r} is not valid JSON ({type(exc).__name__}: {first})") from None
    if not isinstance(config, dict):
        raise FileReadError(f"hot config {path!r} must hold a JSON object of wrap_with_hot arguments")
    unknown = sorted(set(config) - set(HOT_CONFIG_KEYS))
    if unknown:
        raise FileReadError(f"hot config {path!r} has unknown keys {unknown}; allowed: {', '.join(HOT_CONFIG_KEYS)}")
    return config


def hot_config_options(path: str, argv: Sequence[str]) -> Dict[str, Any]:
    """The settings of a ``--hot-config`` file less those the command line ``argv`` gives itself
    (flags given there win over the file).

    Raises:
        FileReadError: see :func:`read_hot_config`.
    """
    def given(flags: Sequence[str]) -> bool:
        return any(a == f or a.startswith(f + "=") for a in argv for f in flags)

    return {k: v for k, v in read_hot_config(path).items() if not given(_FLAGS.get(k, ()))}
