"""Progress bars and headless plotting for the tooling (bench, trainer, benchmark scripts).

tqdm always comes with fvcore, a run-time dependency; matplotlib is the ``bench`` extra, so
:func:`pyplot` says what to install instead of failing when it is missing.
"""
from __future__ import annotations

import sys
from typing import Any, Optional

from tqdm.auto import tqdm

__all__ = ["progress_bar", "pyplot"]


def progress_bar(total: int, desc: str, show: Optional[bool] = None, **options: Any) -> tqdm:
    """A tqdm bar on stderr. ``show=None`` shows it only when stderr is a terminal; ``False`` never."""
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5, file=sys.stderr,
                disable=None if show is None else not show, **options)


def pyplot() -> Optional[Any]:
    """matplotlib's pyplot with a headless backend, or ``None`` (with a note on stderr) without it."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'hourglass_tokenizer[bench]')", file=sys.stderr)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
