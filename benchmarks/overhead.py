"""The wrapper's per-call cost: ATen calls and batch-1 latency with and without HoT, and where the
pruning starts to pay (break-even).

For each small model it counts the ATen operators one forward dispatches (``TorchDispatchMode``,
inference mode) for the plain model, the model wrapped with ``tokens == T`` (nothing pruned: the
hooks' cost alone) and the model wrapped at its HoT setting; it times the three side by side
(interleaved, medians, batch 1, one thread), optionally also compiled with ``torch.compile``; then
it sweeps MixSTE's width and frames to show the model time at which the speed-up approaches
1 / MACs ratio. ``--clock thread`` times the thread's CPU time instead of the wall clock (steadier
on a machine shared with other jobs; one thread only).

    python benchmarks/overhead.py                       # ~5 min on one CPU thread
    python benchmarks/overhead.py --compile             # adds torch.compile rows (minutes of compiling)
    python benchmarks/overhead.py --quick --out-dir /tmp/overhead

Writes ``overhead.csv``, ``overhead_breakeven.csv`` and ``overhead.md`` to ``--out-dir``.
"""
from __future__ import annotations

import argparse
import copy
import csv
import logging
import os
import statistics
import sys
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, REPO)

from hourglass_tokenizer import count_macs, wrap_with_hot  # noqa: E402
from hourglass_tokenizer.bench.timing import machine_info, time_interleaved  # noqa: E402
from hourglass_tokenizer.files import atomic_write  # noqa: E402
from hourglass_tokenizer.models import build_model  # noqa: E402

#: (label, zoo name, config, overrides, (prune_block, tokens))
MODELS = (
    ("MixSTE-27 small", "mixste", "small", {}, (1, 9)),
    ("MixSTE-81 small", "mixste", "small", {"num_frames": 81}, (1, 27)),
    ("PoseFormer-81 small", "poseformer", "small", {"num_frames": 81}, (1, 27)),
    ("MotionBERT-27 small", "motionbert", "small", {}, (1, 9)),
)


class _CountCalls(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def aten_calls(model: nn.Module, x: torch.Tensor) -> int:
    """ATen operators dispatched by one forward in inference mode."""
    with torch.inference_mode(), _CountCalls() as counter:
        model(x)
    return sum(counter.calls.values())


def _recover(args: argparse.Namespace) -> Dict[str, Any]:
    return {} if args.recover is None else {"recover": args.recover}


def _median_ms(times: List[float]) -> float:
    return statistics.median(times) * 1e3


def measure(label: str, name: str, config: str, overrides: Dict[str, Any], setting: Tuple[int, int],
            args: argparse.Namespace) -> List[Dict[str, Any]]:
    torch.manual_seed(0)
    plain = build_model(name, config, **overrides).eval()
    frames = plain.num_frames if hasattr(plain, "num_frames") else plain.maxlen
    x = torch.randn(1, frames, 17, plain.in_chans if hasattr(plain, "in_chans") else 3)
    reference = wrap_with_hot(copy.deepcopy(plain), setting[0], frames, **_recover(args)).eval()
    hot = wrap_with_hot(copy.deepcopy(plain), *setting, **_recover(args)).eval()
    variants = [("plain", plain), (f"HoT tokens=T ({frames})", reference), (f"HoT {setting}", hot)]
    macs = [count_macs(m, x) for _, m in variants]
    calls = [aten_calls(m, x) for _, m in variants]
    times = time_interleaved([m for _, m in variants], x, repeats=args.repeats, warmup=args.warmup,
                             clock=args.clock)
    rows = []
    for (variant, _), mac, call, t in zip(variants, macs, calls, times):
        rows.append(dict(model=label, variant=variant, mode="eager", frames=frames, macs_ratio=mac / macs[0],
                         aten_calls=call, extra_calls=call - calls[0], ms=_median_ms(t)))
    if args.compile:
        compiled = [torch.compile(m) for _, m in variants]
        times = time_interleaved(compiled, x, repeats=args.repeats, warmup=max(args.warmup, 2), clock=args.clock)
        for (variant, _), mac, t in zip(variants, macs, times):
            rows.append(dict(model=label, variant=variant, mode="compiled", frames=frames, macs_ratio=mac / macs[0],
                             aten_calls=None, extra_calls=None, ms=_median_ms(t)))
    for row in rows:
        base = next(r["ms"] for r in rows if r["mode"] == row["mode"] and r["variant"] == "plain")
        row["time_ratio"] = row["ms"] / base
    return rows


def breakeven(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """MixSTE at growing width and frames: plain time against HoT's time ratio at (1, T/3)."""
    rows = []
    sizes = [(27, 32), (27, 128), (81, 32), (81, 128), (243, 64)] if not args.quick else [(27, 32), (81, 64)]
    for frames, width in sizes:
        torch.manual_seed(0)
        plain = build_model("mixste", "small", num_frames=frames, embed_dim=width, mlp_hidden_dim=2 * width).eval()
        x = torch.randn(1, frames, 17, 2)
        hot = wrap_with_hot(copy.deepcopy(plain), 1, frames // 3, **_recover(args)).eval()
        ratio = count_macs(hot, x) / count_macs(plain, x)
        times = time_interleaved([plain, hot], x, repeats=args.repeats, warmup=args.warmup, clock=args.clock)
        plain_ms, hot_ms = _median_ms(times[0]), _median_ms(times[1])
        rows.append(dict(frames=frames, width=width, plain_ms=plain_ms, hot_ms=hot_ms, macs_ratio=ratio,
                         time_ratio=hot_ms / plain_ms, overhead_ms=hot_ms - ratio * plain_ms))
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_outputs(rows: List[Dict[str, Any]], even: List[Dict[str, Any]], args: argparse.Namespace) -> None:
    os.makedirs(args.out_dir, exist_ok=True)
    for name, table in (("overhead.csv", rows), ("overhead_breakeven.csv", even)):
        with atomic_write(os.path.join(args.out_dir, name)) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    info = machine_info()
    lines = [
        "# The wrapper's per-call cost", "",
        f"`python benchmarks/overhead.py {' '.join(sys.argv[1:])}`: batch 1, {info['threads']} thread(s), "
        f"{args.clock} clock, medians of {args.repeats} interleaved runs, "
        f"recover={args.recover or 'the default'!r}, selector: the default; "
        f"{info['machine']}, torch {info['torch']}. ATen calls are operators dispatched by one forward in "
        "inference mode.", "",
        "| model | variant | mode | MACs ratio | ATen calls | extra calls | ms | time ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['variant']} | {r['mode']} | {r['macs_ratio']:.2f} | "
                     f"{_fmt(r['aten_calls'], 'd')} | {_fmt(r['extra_calls'], 'd')} | {r['ms']:.2f} | "
                     f"{r['time_ratio']:.2f} |")
    lines += ["", "## Break-even: MixSTE (depth 4) at (1, T/3)", "",
              "| frames | width | plain ms | HoT ms | MACs ratio | time ratio | overhead ms (HoT - ratio x plain) |",
              "|---|---|---|---|---|---|---|"]
    for r in even:
        lines.append(f"| {r['frames']} | {r['width']} | {r['plain_ms']:.2f} | {r['hot_ms']:.2f} | "
                     f"{r['macs_ratio']:.2f} | {r['time_ratio']:.2f} | {r['overhead_ms']:.2f} |")
    with atomic_write(os.path.join(args.out_dir, "overhead.md")) as tmp, open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["wall", "thread"], default="wall")
    p.add_argument("--recover", default=None, help="recover= of the wrapped models (default: the library's)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd models (slow to compile)")
    p.add_argument("--quick", action="store_true", help="few repeats and sizes (a smoke run)")
    p.add_argument("--only", default=None, help="comma-separated labels of MODELS to measure (default: all)")
    p.add_argument("--out-dir", default=os.path.join(REPO, "benchmarks", "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 10), min(args.warmup, 2)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("hourglass_tokenizer").setLevel(logging.ERROR)  # the tokens == T reference warns
    models = MODELS[:1] if args.quick else MODELS
    if args.only:
        models = [m for m in MODELS if m[0] in args.only.split(",")]
    rows = [row for spec in models for row in measure(*spec, args)]
    write_outputs(rows, breakeven(args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
