"""Moved to :mod:`hourglass_tokenizer.core.selection`; this path keeps working for existing imports."""
from .core.selection import *  # noqa: F401,F403
from .core.selection import __all__  # noqa: F401
