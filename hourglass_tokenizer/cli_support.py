"""What every command shares: a command-line mistake is one line ``PROG: error: ...`` on stderr and
exit status 2, found before any long work starts.

* :class:`OneLineParser` is an ``ArgumentParser`` whose errors raise :class:`UsageError` instead of
  printing the usage block and exiting.
* :func:`run_command` runs a command's body and turns :class:`UsageError` and the user errors of
  files and data (:class:`~hourglass_tokenizer.files.OutputPathError`,
  :class:`~hourglass_tokenizer.files.FileReadError`, :class:`~hourglass_tokenizer.data.readers.DataError`)
  into that one line.
* ``int_at_least``, ``number_at_least`` and :func:`check_device` are argument types and checks that
  name the option and the value in their message.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Callable, NoReturn, Optional

__all__ = ["UsageError", "OneLineParser", "run_command", "command_name", "int_at_least", "number_at_least",
           "check_device", "one_line", "frames_argument"]


class UsageError(Exception):
    """A command-line mistake: reported as one line ``PROG: error: ...`` with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors raise :class:`UsageError` (no usage block, no exit)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def one_line(text: object) -> str:
    """``text`` with every run of white space (newlines included) made one space."""
    return " ".join(str(text).split())


def _user_errors() -> tuple:
    from .data.readers import DataError
    from .files import FileReadError, OutputPathError

    return (UsageError, OutputPathError, FileReadError, DataError)


def run_command(prog: str, body: Callable[[], Optional[int]], *, hint: bool = False) -> int:
    """Run ``body``; a user error becomes one line ``PROG: error: ...`` on stderr and status 2.

    Args:
        hint: end the line with ``(see PROG --help)``.
    """
    try:
        return body() or 0
    except _user_errors() as err:
        tail = f" (see {prog} --help)" if hint else ""
        print(f"{prog}: error: {one_line(err)}{tail}", file=sys.stderr)
        return 2


def command_name(command: str, installed: Optional[str] = None) -> str:
    """How the user started ``command``: ``python -m hourglass_tokenizer COMMAND`` when run through
    the package's ``__main__``, else the installed script's name ``installed`` (e.g. ``hot-bench``)."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    package = os.path.basename(os.path.dirname(script))
    if package == "hourglass_tokenizer" and os.path.basename(script) == "__main__.py":
        return f"python -m hourglass_tokenizer {command}"
    return installed or f"python -m hourglass_tokenizer {command}"


#: Constructor argument that sets the clip length ``T``, per zoo model (``num_frames`` for the others).
_FRAMES_ARGUMENT = {"motionbert": "maxlen", "dstformer": "maxlen", "motionagformer": "n_frames"}


def frames_argument(model_name: str) -> str:
    """The constructor argument of zoo model ``model_name`` that sets its clip length ``T``."""
    return _FRAMES_ARGUMENT.get(model_name.lower(), "num_frames")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer ``>= minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def number_at_least(minimum: float, *, inclusive: bool = True) -> Callable[[str], float]:
    """argparse type: a finite number ``>= minimum`` (``> minimum`` when not ``inclusive``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if math.isnan(value):
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r} (not a number)")
        if math.isinf(value) or value < minimum or (value == minimum and not inclusive):
            bound = f"at least {minimum:g}" if inclusive else f"greater than {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be finite and {bound}, got {text}")
        return value
    return parse


def check_device(text: str, option: str = "--device", *, allow_auto: bool = False):
    """The ``torch.device`` named by ``text`` (``cpu``, ``cuda``, ``cuda:1``; ``auto`` when allowed,
    returned as the string ``"auto"``), checked against the GPUs this torch build can use.

    Raises:
        UsageError: an unknown device, CUDA on a machine or build without it, or a GPU index too high.
    """
    import torch

    if allow_auto and text == "auto":
        return "auto"
    expected = "auto, cpu or cuda[:index]" if allow_auto else "cpu or cuda[:index]"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"{option} {text!r}: expected {expected}") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"{option} {text!r}: expected {expected}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is a CPU-only build" if torch.version.cuda is None else "torch finds no CUDA device"
            raise UsageError(f"{option} {text}: no CUDA GPU is available ({why}, torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{option} {text}: only {torch.cuda.device_count()} CUDA device(s)")
    return device
