"""Choosing HoT's setting for a pretrained model on the user's own data, training-free.

From Python::

    from hourglass_tokenizer.tuning import tune
    result = tune(model, test_set, max_increase=1.0)   # at most 1 % more MPJPE
    wrap_with_hot(model, **result.chosen)

From the command line: ``python -m hourglass_tokenizer tune --help``.
"""
from .config import HOT_CONFIG_KEYS, hot_config_options, read_hot_config
from .search import DEFAULT_RECOVERS, DEFAULT_SELECTORS, RESULT_FILES, TuneError, TuneResult, TuneRow, tune, write_results

__all__ = ["tune", "TuneResult", "TuneRow", "TuneError", "write_results", "read_hot_config", "hot_config_options",
           "DEFAULT_SELECTORS", "DEFAULT_RECOVERS", "HOT_CONFIG_KEYS", "RESULT_FILES"]
