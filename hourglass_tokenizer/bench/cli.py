"""The ``bench`` and ``demo`` commands (``python -m hourglass_tokenizer bench``, or ``hot-bench``);
the measurements themselves are in :mod:`hourglass_tokenizer.bench.timing`."""
from __future__ import annotations

import argparse
import copy
import logging
import os
import re
import sys
from typing import Any, Dict, List, Mapping, Optional

import torch

from ..cli_support import (OneLineParser, UsageError, check_device, command_name, frames_argument, int_at_least,
                           one_line, run_command)
from ..core.selection import DEFAULT_SELECTOR
from ..display import progress_bar
from ..files import check_output_file
from .timing import benchmark, format_table, header_lines, hot_setting, plot_rows, write_csv

__all__ = ["main", "demo", "UsageError"]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _config_choices() -> Dict[str, List[str]]:
    from ..models import available_models

    return {name: ["paper"] + configs for name, configs in available_models().items()}


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    configs = _config_choices()
    p = OneLineParser(prog=prog, description=description)
    p.add_argument("--model", default="mixste", choices=tuple(configs), help="zoo model (default: mixste)")
    p.add_argument("--config", default="paper", metavar="{" + ",".join(dict.fromkeys(c for cs in configs.values() for c in cs)) + "}",
                   help="zoo configuration (default: paper, the model's paper configuration); per model: "
                   + "; ".join(f"{m}: {', '.join(cs)}" for m, cs in configs.items()))
    p.add_argument("--frames", type=int_at_least(1), default=None, help="override the clip length T")
    p.add_argument("--prune-block", type=int_at_least(1), default=None,
                   help="blocks before pruning (default: the paper's setting for this model)")
    p.add_argument("--tokens", type=int_at_least(1), default=None,
                   help="representative frames kept (default: the paper's setting)")
    p.add_argument("--no-recover", action="store_true", help="TPC only: no token recovering attention")
    p.add_argument("--hot-config", default=None, metavar="FILE",
                   help="HoT settings from a JSON file of wrap_with_hot arguments, as 'tune' writes it (hot.json); "
                        "--prune-block, --tokens and --no-recover given here win")
    p.add_argument("--batch", type=int_at_least(1), default=1, help="clips per forward (default: 1)")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu",
                   help="cpu or cuda[:i] (default: cpu); on CUDA the forwards are timed with CUDA events")
    p.add_argument("--repeats", type=int_at_least(1), default=10, help="timed forwards per model (default: 10)")
    p.add_argument("--warmup", type=int_at_least(0), default=2,
                   help="untimed forwards per model first (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and input (default: 0)")
    p.add_argument("--csv", metavar="PATH", default=None, help="also write the table as CSV")
    p.add_argument("--plot", metavar="PATH", default=None, help="also write a PNG chart (needs matplotlib)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --csv / --plot files")
    return p


def _check_args(args: argparse.Namespace) -> None:
    """Mistakes argparse cannot see on its own, reported before anything is built or timed."""
    configs = _config_choices()[args.model]
    if args.config not in configs:
        raise UsageError(f"--config {args.config!r} is not a configuration of {args.model}; "
                         f"choose from {', '.join(configs)}")
    check_device(args.device)
    for option, path in (("--csv", args.csv), ("--plot", args.plot)):
        if path:
            try:
                check_output_file(path, overwrite=args.overwrite)
            except ValueError as err:
                raise UsageError(f"{option} {err}") from None
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'hourglass_tokenizer[bench]'") from None


def _command_name(command: str) -> str:
    """How the user started this command, for usage and error lines."""
    return command_name(command, "hot-bench" if command == "bench" else None)


def _build_pair(args: argparse.Namespace, overrides: Mapping[str, Any]):
    """The zoo model and a HoT-wrapped deep copy, per the command-line options."""
    from ..core.wrapping import wrap_with_hot
    from ..models import build_model

    if args.frames is not None:
        overrides = {**overrides, frames_argument(args.model): args.frames}
    torch.manual_seed(args.seed)
    try:
        model = build_model(args.model, config=args.config, **overrides)
    except (ValueError, TypeError) as err:  # TypeError: an override the constructor does not take
        raise UsageError(f"cannot build {args.model} ({args.config}): {err}") from err
    _check_input_fits(args, model)
    args.hot_options = {}
    if args.hot_config:
        from ..tuning.config import hot_config_options
        args.hot_options = hot_config_options(args.hot_config, sys.argv[1:] if args.argv is None else args.argv)
        args.prune_block = args.hot_options.pop("prune_block", args.prune_block)
        args.tokens = args.hot_options.pop("tokens", args.tokens)
    numbers = {k: v for k, v in (("prune_block", args.prune_block), ("tokens", args.tokens)) if v is not None}
    # With no numbers the wrapper's presets choose the paper's setting for this architecture.
    try:
        hot = wrap_with_hot(copy.deepcopy(model), **numbers, **{"recover": not args.no_recover, **args.hot_options})
    except ValueError as err:
        message = f"cannot wrap {args.model} ({args.config}) with HoT: {err}"
        if len(numbers) < 2:
            # Both numbers always work for a model of T frames with 1 <= 1 < depth and 1 <= T // 3 <= T.
            message += (f" (give both --prune-block and --tokens, e.g. --prune-block 1 "
                        f"--tokens {max(1, model.num_frames // 3)})")
        raise UsageError(message) from err
    return model, hot


def _check_input_fits(args: argparse.Namespace, model: torch.nn.Module) -> None:
    """Refuse a ``--batch`` whose input alone exceeds this machine's memory, before anything is built
    on it (a batch that fits but whose forward does not is caught when it fails)."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: rely on the allocation failing
        return
    needed = 4 * args.batch * model.num_frames * model.num_joints * model.in_chans
    if needed > memory:
        raise UsageError(f"--batch {args.batch}: not enough memory for this batch (its input alone is "
                         f"{needed / 1e9:.1f} GB; this machine has {memory / 1e9:.1f} GB); try a smaller --batch")


def _out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation failure (host or GPU memory), not another runtime error."""
    text = str(err).lower()
    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or "allocate" in text or "out of memory" in text


def _run(args: argparse.Namespace, overrides: Mapping[str, Any], title: str) -> List[Dict[str, Any]]:
    # The thread count is process-wide state; put it back so that calling main() from Python
    # (tests, notebooks) leaves no trace.
    threads_before = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run_with_threads(args, overrides, title)
    finally:
        torch.set_num_threads(threads_before)


def _run_with_threads(args: argparse.Namespace, overrides: Mapping[str, Any], title: str) -> List[Dict[str, Any]]:
    device = torch.device(args.device)
    model, hot = _build_pair(args, overrides)
    model, hot = model.to(device), hot.to(device)
    setting = hot_setting(hot)
    hot_label = "HoT" if not args.no_recover else "HoT TPC-only"
    if setting:
        hot_label += f" ({setting['prune_block']}, {setting['tokens']})"
    try:
        generator = torch.Generator().manual_seed(args.seed)
        x = torch.randn(args.batch, model.num_frames, model.num_joints, model.in_chans, generator=generator).to(device)
        with progress_bar(2 * (args.warmup + args.repeats), "timing forwards") as bar:
            rows = benchmark(model, hot, x, repeats=args.repeats, warmup=args.warmup,
                             labels=(f"{args.model}-{model.num_frames}", hot_label), progress=bar)
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        wanted = re.search(r"allocate (\d+) bytes", str(err))
        detail = f"{int(wanted.group(1)) / 1e9:.1f} GB asked for" if wanted else one_line(err)[:160]
        raise UsageError(f"--batch {args.batch}: not enough memory on {device} for this batch ({detail}); "
                         "try a smaller --batch") from None
    for r in rows:
        r.update(model=args.model, config=args.config, joints=model.num_joints)
    rows[0].update(prune_block=None, tokens=None, recover=None)
    if rows[1].get("recover") is None:
        rows[1]["recover"] = not args.no_recover

    print(title)
    for line in header_lines(rows):
        print(line)
    print(format_table(rows))
    if args.csv:
        write_csv(rows, args.csv)  # atomic: a failed write keeps the previous file
        print(f"wrote {args.csv}")
    if args.plot:
        plot_rows(rows, args.plot)
        print(f"wrote {args.plot}")
    return rows


def _cli(prog: str, body) -> int:
    """Run a command; a command-line mistake becomes one line on stderr and exit status 2."""
    return run_command(prog, body, hint=True)


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """``hot-bench`` / ``python -m hourglass_tokenizer bench``: original vs HoT, one table.

    Returns the exit status: 0, or 2 after a one-line error for a command-line mistake.
    """
    prog = prog or _command_name("bench")
    return _cli(prog, lambda: _bench(argv, prog))


def _bench(argv: Optional[List[str]], prog: str) -> int:
    args = _parser(prog, "Compare a zoo video pose transformer with its HoT-wrapped copy "
                   "(MACs, latency, throughput).").parse_args(argv)
    args.argv = argv  # which HoT flags the command line gives itself (over --hot-config)
    _check_args(args)
    rows = _run(args, {}, f"HoT benchmark: {args.model} ({args.config} config)")
    hot = rows[1]
    if hot.get("speedup_vs_ideal") is not None:
        print(f"HoT removes {hot['macs_reduction_pct']:.1f}% of the MACs; measured speed-up "
              f"{hot['speedup']:.2f}x vs ideal {hot['ideal_speedup']:.2f}x ({hot['speedup_vs_ideal']:.2f} of ideal).")
    return 0


# The demo model: MixSTE's architecture at a size that runs in well under a second per clip on a
# laptop CPU but is deep and long enough for pruning to matter (8 block pairs, 81 frames).
DEMO_OVERRIDES: Dict[str, Any] = dict(num_frames=81, embed_dim=128, depth=8, num_heads=8, mlp_hidden_dim=256)


def demo(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """``python -m hourglass_tokenizer demo``: a small MixSTE with and without HoT (no downloads)."""
    prog = prog or _command_name("demo")
    return _cli(prog, lambda: _demo(argv, prog))


def _demo(argv: Optional[List[str]], prog: str) -> int:
    parser = _parser(prog, "HoT on a small MixSTE (81 frames, width 128, depth 8; random weights, no downloads).")
    # One thread by default: the demo model is small, and a single thread keeps its timing steady
    # on a busy machine (oversubscribed OpenMP threads stall); --threads N to change it.
    parser.set_defaults(model="mixste", repeats=10, warmup=2, threads=1)
    args = parser.parse_args(argv)
    args.argv = argv
    _check_args(args)
    overrides = DEMO_OVERRIDES if args.model == "mixste" and args.config == "paper" else {}
    # The demo's numbers are those of the paper's MixSTE-243 setting scaled to 81 frames:
    # prune after 3 of 8 block pairs, keep a third of the frames.
    if overrides and args.prune_block is None and args.tokens is None and not args.no_recover:
        args.prune_block, args.tokens = 3, 27
    label = "MixSTE, 81 frames, width 128, depth 8" if overrides else f"{args.model} ({args.config})"
    rows = _run(args, overrides, f"HoT demo: {label}, random weights")
    base, hot = rows
    pb, f = hot.get("prune_block", args.prune_block), hot.get("tokens", args.tokens)
    frames = base["frames"]
    depth = overrides.get("depth") if overrides else None
    after = f"blocks {pb + 1}-{depth}" if (depth and pb is not None) else f"the blocks after block {pb}"
    tail = ("the token recovering attention (TRA) rebuilt all "
            f"{frames} frames before the head, so the output shape is unchanged"
            if hot.get("recover", not args.no_recover) else
            f"the pruned frames were filled from the nearest kept frame, so the output still has {frames} frames")
    selector = args.hot_options.get("selector", DEFAULT_SELECTOR)
    picked = {"dpc_knn": "by density-peaks clustering (the paper's token pruning cluster, TPC)",
              "uniform": "at even spacing (the default selector; selector='dpc_knn' is the paper's clustering)"}.get(
        selector, f"by the {selector!r} selector")
    print(f"What HoT did: {after} ran on {f} of {frames} frames picked {picked}; {tail}. "
          f"That cut the MACs by {hot['macs_reduction_pct']:.1f}% "
          f"and the latency by {100 * (1 - 1 / hot['speedup']):.1f}% ({hot['speedup']:.2f}x faster, "
          f"ideal {hot['ideal_speedup']:.2f}x).")
    return 0


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
