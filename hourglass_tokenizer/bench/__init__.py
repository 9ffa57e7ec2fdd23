"""Efficiency measurements: MACs (:mod:`.flops`, fvcore plus handles for attention), side-by-side
timing (:mod:`.timing`) and the ``bench``/``demo`` commands (:mod:`.cli`)."""
from .cli import UsageError, demo, main
from .flops import count_flops, count_macs, count_params, format_count
from .timing import CSV_FIELDS, benchmark, format_table, machine_info, plot_rows, time_interleaved, write_csv

__all__ = ["count_macs", "count_flops", "count_params", "format_count", "benchmark", "time_interleaved",
           "machine_info", "format_table", "write_csv", "plot_rows", "CSV_FIELDS", "main", "demo", "UsageError"]
