"""The ``tune`` command (``python -m hourglass_tokenizer tune``): the cheapest training-free HoT setting
within an error budget, on the user's own model and data."""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import List, Optional, Sequence

import torch

from ..cli_support import OneLineParser, UsageError, command_name, run_command
from ..core.recovery import RECOVERY_MODES
from ..core.selection import SELECTORS
from ..files import check_output_dir
from .search import DEFAULT_RECOVERS, DEFAULT_SELECTORS, RESULT_FILES, TuneError, print_summary, tune, write_results

__all__ = ["main", "build_parser"]

def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of percent, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number of percent, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _names(allowed: Sequence[str]):
    def parse(text: str) -> List[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in allowed]
        if not names or unknown:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(allowed)}, got {text!r}")
        return names
    return parse


def _counts(text: str) -> List[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser(prog: str = "python -m hourglass_tokenizer tune") -> argparse.ArgumentParser:
    """The ``tune`` command's parser: ``train``'s model and data arguments plus the budget and outputs."""
    from ..training.cli import add_data_arguments, add_model_arguments

    p = OneLineParser(prog=prog, description=(
        "Find the cheapest training-free HoT setting (prune_block, tokens, selector, recover) of a pretrained "
        "model whose MPJPE stays within --max-increase percent of the unwrapped model's, on your data: the test "
        "split of --data, or all of it when the file has none. Writes hot.json (wrap_with_hot's arguments), "
        "tune.csv (every setting scored) and tune.png into --out."))
    add_model_arguments(p)
    add_data_arguments(p, training=False)
    t = p.add_argument_group("tune")
    t.add_argument("--init-from", default=None, metavar="CKPT",
                   help="the pretrained plain model's checkpoint (not needed when the factory loads its weights)")
    t.add_argument("--max-increase", type=_percent, default=1.0, metavar="PCT",
                   help="largest MPJPE increase allowed, percent of the unwrapped model's (default: 1)")
    t.add_argument("--out", default=os.path.join("runs", "tune"), metavar="DIR",
                   help="folder for hot.json, tune.csv and tune.png (default: runs/tune)")
    t.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    t.add_argument("--time-budget", type=_seconds, default=None, metavar="SECONDS",
                   help="stop searching before this many seconds (the best setting so far is kept)")
    t.add_argument("--wall", action="store_true",
                   help="also time the Pareto-front settings against the unwrapped model (slow)")
    t.add_argument("--selectors", type=_names(SELECTORS), default=list(DEFAULT_SELECTORS), metavar="NAMES",
                   help=f"selectors to screen (default: {','.join(DEFAULT_SELECTORS)})")
    t.add_argument("--recovers", type=_names([m for m in RECOVERY_MODES if m != "tra"]),
                   default=list(DEFAULT_RECOVERS), metavar="NAMES",
                   help=f"training-free recoveries to screen (default: {','.join(DEFAULT_RECOVERS)}; "
                        "tra+interpolate equals interpolate until trained, at more MACs)")
    t.add_argument("--prune-blocks", type=_counts, default=None, metavar="N,...",
                   help="depths to try (default: all)")
    t.add_argument("--tokens", type=_counts, default=None, metavar="F,...", help="token counts to try (default: 2..T-1)")
    t.add_argument("--batch-size", type=int, default=64, help="windows per forward pass when scoring (default: 64)")
    t.add_argument("--seed", type=int, default=0, help="seed of the virtual cameras (test cameras use seed + 1)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m hourglass_tokenizer tune``. Exit status 0 with a setting within the budget, 1 when
    no setting meets it (the best found is printed), 2 for a usage or data error (one line)."""
    prog = command_name("tune")
    return run_command(prog, lambda: _tune(argv, prog))


def _tune(argv: Optional[Sequence[str]], prog: str) -> int:
    from ..training.cli import load_plain_weights, model_from_args
    from ..training.datasets import check_data_arguments, make_test_set
    from ..training.inference import model_input_channels, model_num_frames

    args = build_parser(prog).parse_args(argv)
    check_output_dir(args.out, results=RESULT_FILES, overwrite=args.overwrite)
    check_data_arguments(args)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = model_from_args(args)
    if args.init_from:
        load_plain_weights(model, args.init_from)
    try:
        frames = model_num_frames(model)
    except ValueError as exc:
        raise UsageError(f"{exc} (give --frames)") from None
    channels = model_input_channels(model)
    test_set = make_test_set(args, frames, channels if channels in (2, 3) else 2)
    try:
        result = tune(model.eval(), test_set, args.max_increase, prune_blocks=args.prune_blocks, tokens=args.tokens,
                      selectors=args.selectors, recovers=args.recovers, time_budget=args.time_budget, wall=args.wall,
                      batch_size=args.batch_size, progress=False if args.no_progress else None)
    except TuneError as exc:
        raise UsageError(str(exc)) from None
    written = write_results(result, args.out)
    print_summary(result)
    best = result.closest_row
    line = (f"({best.prune_block}, {best.tokens}) {best.selector}, {best.recover}: MACs ratio {best.macs_ratio:.3f}, "
            f"MPJPE {best.mpjpe:.2f} mm ({best.change_pct:+.2f} %)")
    note = "" if result.complete else f" (time budget reached after {len(result.rows)} settings)"
    print(f"scored {len(result.rows)} settings in {result.seconds:.0f} s{note}; wrote {', '.join(written)}")
    if result.chosen is None:
        print(f"{prog}: no setting is within +{args.max_increase:g} %; the best found is {line}", file=sys.stderr)
        return 1
    print(f"chosen {line}; use it with wrap_with_hot(model, **json.load(open({written[0]!r}))) or "
          f"--hot-config {written[0]}")
    return 0
