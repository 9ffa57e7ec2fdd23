"""Moved to :mod:`hourglass_tokenizer.core.wrapping`; this path keeps working for existing imports."""
from .core.wrapping import *  # noqa: F401,F403
from .core.wrapping import __all__  # noqa: F401
