"""Choosing HoT's setting for a pretrained model on the user's own data, training-free.

From Python::

    from hourglass_tokenizer.tuning import tune
    result = tune(model, test_set, max_increase=1.0)   # at most 1 % more MPJPE
    wrap_with_hot(model, **result.chosen)

From the command line: ``python -m hourglass_tokenizer tune --help``.
"""
from .search import (DEFAULT_RECOVERS, DEFAULT_SELECTORS, HOT_CONFIG_KEYS, RESULT_FILES, TuneError, TuneResult,
                     TuneRow, read_hot_config, tune, write_results)

__all__ = ["tune", "TuneResult", "TuneRow", "TuneError", "write_results", "read_hot_config", "DEFAULT_SELECTORS",
           "DEFAULT_RECOVERS", "HOT_CONFIG_KEYS", "RESULT_FILES"]
