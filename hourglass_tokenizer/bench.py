"""Side-by-side efficiency benchmark: a video pose transformer with and without HoT.

``python -m hourglass_tokenizer bench`` (or ``hot-bench``) builds a zoo model, wraps a deep copy
with :func:`hourglass_tokenizer.wrap_with_hot`, and prints one table with both rows measured in
the same process: parameters, MACs (fvcore plus attention handles, see
:mod:`hourglass_tokenizer.flops`), the paper's "FLOPs" convention (2 x MACs), the MACs
reduction, latency (median and spread), throughput, and the measured speed-up next to the ideal
one (1 / MACs ratio).

``python -m hourglass_tokenizer demo`` does the same for a small MixSTE (81 frames, width 128,
depth 8) in well under a minute on a laptop CPU and says what HoT did.

Timing protocol: both models run in eval mode under ``torch.inference_mode`` with a fixed
thread count; after warm-up they are timed *interleaved* (original, HoT, then HoT, original, ...)
so that slow periods on a shared machine hit both alike, and the medians are reported.
"""
from __future__ import annotations

import argparse
import copy
import csv
import logging
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext as _no_context
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .display import progress_bar, pyplot
from .flops import count_flops, count_params, format_count

__all__ = ["benchmark", "machine_info", "format_table", "write_csv", "plot_rows", "main", "demo", "UsageError"]

# Column order of the CSV written by ``--csv`` (and by ``benchmarks/paper_table.py``).
CSV_FIELDS = (
    "model", "variant", "config", "frames", "joints", "batch", "prune_block", "tokens", "recover",
    "params", "macs", "paper_flops", "macs_ratio", "macs_reduction_pct",
    "latency_ms_median", "latency_ms_min", "latency_ms_max", "latency_ms_q1", "latency_ms_q3",
    "throughput_fps", "speedup", "speedup_paired", "ideal_speedup", "speedup_vs_ideal",
    "repeats", "warmup", "machine", "cpu_count", "torch", "threads", "device",
)


# --------------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else whatever ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(device: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """What the timings depend on: CPU (or GPU) model, logical CPUs, torch version, threads."""
    device = torch.device(device)
    name = _cpu_model()
    if device.type == "cuda" and torch.cuda.is_available():
        name = f"{torch.cuda.get_device_name(device)} (host: {name})"
    return {
        "machine": name,
        "cpu_count": os.cpu_count() or 0,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------
class _WallClock:
    """Host timing: ``perf_counter`` around a forward (the CPU runs it synchronously)."""

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> float:
        return time.perf_counter() - self._start


class _CudaClock:
    """GPU timing with CUDA events recorded on the current stream around a forward.

    Kernels run asynchronously, so the host clock would measure the launches; the events measure
    the GPU's own time between them. The device is synchronised before each forward (so queued
    work of the previous model is not counted) and after it (to read the events).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._begin = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        torch.cuda.synchronize(self.device)
        self._begin.record()

    def stop(self) -> float:
        self._end.record()
        torch.cuda.synchronize(self.device)
        return self._begin.elapsed_time(self._end) / 1e3  # milliseconds -> seconds


def _clock(device: torch.device):
    return _CudaClock(device) if device.type == "cuda" else _WallClock()


def _device_of(model: nn.Module, example_input: torch.Tensor) -> torch.device:
    return example_input.device if isinstance(example_input, torch.Tensor) else torch.device("cpu")


def time_interleaved(models: Sequence[nn.Module], example_input: torch.Tensor, repeats: int = 10,
                     warmup: int = 2, progress: Optional[Any] = None) -> List[List[float]]:
    """Seconds per forward for each model, timed interleaved.

    On CPU the host clock times each forward; on CUDA, events on the current stream do (see
    :class:`_CudaClock`), with the device synchronised around every forward.

    Every repeat runs each model once; odd repeats reverse the order so that neither model always
    runs right after the other (cache and turbo effects). Models are put in eval mode and run
    under ``torch.inference_mode``; their training flags are restored afterwards.

    Args:
        models: the models to compare (same input).
        example_input: the batch fed to every model.
        repeats: timed forwards per model (>= 1).
        warmup: untimed forwards per model before timing.
        progress: optional object with ``update(n)`` (e.g. tqdm), advanced once per forward.

    Returns:
        ``times[i]`` is the list of ``repeats`` durations of ``models[i]``, in seconds.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = _device_of(models[0], example_input)
    modes = [[(m, m.training) for m in model.modules()] for model in models]
    times: List[List[float]] = [[] for _ in models]
    try:
        for model in models:
            model.eval()
        # Events are recorded on the current stream of the current device: make it the input's.
        with (torch.cuda.device(device) if device.type == "cuda" else _no_context()), torch.inference_mode():
            clock = _clock(device)
            for _ in range(warmup):
                for model in models:
                    clock.start()
                    model(example_input)
                    clock.stop()
                    if progress is not None:
                        progress.update(1)
            for rep in range(repeats):
                order = list(range(len(models)))
                if rep % 2:
                    order.reverse()
                for i in order:
                    clock.start()
                    models[i](example_input)
                    times[i].append(clock.stop())
                    if progress is not None:
                        progress.update(1)
    finally:
        for saved in modes:
            for module, mode in saved:
                module.training = mode
    return times


def _quartiles(values: Sequence[float]) -> tuple:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def _hot_setting(model: nn.Module) -> Dict[str, Any]:
    """``prune_block``, ``tokens`` and ``recover`` of a HoT-wrapped model (empty when unwrapped)."""
    state = getattr(model, "hot", None)
    if state is None or not hasattr(state, "prune_block"):
        return {}
    return {"prune_block": state.prune_block, "tokens": state.tokens, "recover": state.recover}


def benchmark(model: nn.Module, hot_model: Union[nn.Module, Mapping[str, nn.Module]],
              example_input: torch.Tensor, repeats: int = 10, warmup: int = 2, *,
              labels: Sequence[str] = ("original", "HoT"), count_macs: bool = True,
              progress: Optional[Any] = None) -> List[Dict[str, Any]]:
    """Measure ``model`` and ``hot_model`` side by side; one row (dict) per model.

    MACs are counted per clip (on the first sample of ``example_input``), as the paper reports
    them; latency and throughput use the whole batch. The two models are timed interleaved (see
    :func:`time_interleaved`) in the current thread setting.

    Args:
        model: the reference (unwrapped) model; its row comes first.
        hot_model: the HoT model, or a mapping ``label -> model`` to compare several against the
            same reference in one interleaved run (used by the paper-table sweeps).
        example_input: input batch ``(b, T, J, C)`` on the device to time on.
        repeats: timed forwards per model.
        warmup: untimed forwards per model first.
        labels: labels of the reference and (when ``hot_model`` is a module) the HoT row.
        count_macs: set False to skip the fvcore trace (the MACs fields are then ``None``).
        progress: optional tqdm-like object, advanced once per forward.

    Returns:
        Rows with the keys of :data:`CSV_FIELDS` that this function knows (``model``/``config``
        and the like are left to the caller): ``variant``, ``params``, ``macs``,
        ``paper_flops``, ``macs_ratio``, ``macs_reduction_pct``, ``latency_ms_*``,
        ``throughput_fps``, ``speedup`` (ratio of medians), ``speedup_paired`` (median of the
        per-repeat ratios), ``ideal_speedup`` (1 / MACs ratio), ``speedup_vs_ideal`` and the
        machine description of :func:`machine_info`.
    """
    if isinstance(hot_model, Mapping):
        named = [(labels[0], model)] + list(hot_model.items())
    else:
        named = [(labels[0], model), (labels[1], hot_model)]
    models = [m for _, m in named]
    batch = example_input.shape[0] if isinstance(example_input, torch.Tensor) else 1
    frames = example_input.shape[1] if isinstance(example_input, torch.Tensor) else None
    clip = example_input[:1] if isinstance(example_input, torch.Tensor) else example_input
    macs = [count_flops(m, clip) if count_macs else None for m in models]
    times = time_interleaved(models, example_input, repeats=repeats, warmup=warmup, progress=progress)
    info = machine_info(_device_of(model, example_input))

    base_median = statistics.median(times[0])
    rows: List[Dict[str, Any]] = []
    for (label, m), mac, t in zip(named, macs, times):
        median = statistics.median(t)
        q1, q3 = _quartiles(t)
        paired = statistics.median(b / x for b, x in zip(times[0], t))
        ratio = (mac / macs[0]) if (mac is not None and macs[0]) else None
        ideal = (1.0 / ratio) if ratio else None
        speedup = base_median / median
        row: Dict[str, Any] = {
            "variant": label,
            "batch": batch,
            "frames": frames,
            "params": count_params(m),
            "macs": mac,
            "paper_flops": None if mac is None else 2 * mac,
            "macs_ratio": ratio,
            "macs_reduction_pct": None if ratio is None else 100.0 * (1.0 - ratio),
            "latency_ms_median": 1e3 * median,
            "latency_ms_min": 1e3 * min(t),
            "latency_ms_max": 1e3 * max(t),
            "latency_ms_q1": 1e3 * q1,
            "latency_ms_q3": 1e3 * q3,
            "throughput_fps": (batch * frames / median) if frames else batch / median,
            "speedup": speedup,
            "speedup_paired": paired,
            "ideal_speedup": ideal,
            "speedup_vs_ideal": (speedup / ideal) if ideal else None,
            "repeats": repeats,
            "warmup": warmup,
        }
        row.update(_hot_setting(m))
        row.update(info)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def _fmt(value: Any, spec: str = "", none: str = "-") -> str:
    if value is None or value == "":
        return none
    return format(value, spec)


def header_lines(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """The machine/setting lines printed above a table."""
    r = rows[0]
    return [
        f"machine: {r.get('machine')} ({r.get('cpu_count')} logical CPUs) | torch {r.get('torch')} | "
        f"threads {r.get('threads')} | device {r.get('device')}",
        f"input: batch {r.get('batch')} x {r.get('frames')} frames | {r.get('repeats')} timed runs per model "
        f"(interleaved) after {r.get('warmup')} warm-up | MACs per clip by fvcore (1 multiply-add = 1), "
        "paper FLOPs = 2 x MACs",
    ]


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width text table of benchmark rows (first row = reference)."""
    head = ["model", "params", "MACs", "paper FLOPs", "MACs red.", "latency ms: median [min-max]",
            "frames/s", "speed-up", "ideal", "meas/ideal"]
    body = []
    for r in rows:
        lat = (f"{r['latency_ms_median']:.1f} [{r['latency_ms_min']:.1f}-{r['latency_ms_max']:.1f}]")
        body.append([
            str(r.get("variant")),
            format_count(r["params"]),
            "-" if r.get("macs") is None else format_count(r["macs"]),
            "-" if r.get("paper_flops") is None else format_count(r["paper_flops"]),
            _fmt(r.get("macs_reduction_pct"), ".1f") + ("%" if r.get("macs_reduction_pct") is not None else ""),
            lat,
            f"{r['throughput_fps']:.0f}",
            f"{r['speedup']:.2f}x",
            _fmt(r.get("ideal_speedup"), ".2f") + ("x" if r.get("ideal_speedup") else ""),
            _fmt(r.get("speedup_vs_ideal"), ".2f"),
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths))))
    return "\n".join(lines)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str, fields: Sequence[str] = CSV_FIELDS) -> None:
    """Write rows to ``path`` (machine, torch version and threads are columns of every row)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    extra = [k for r in rows for k in r if k not in fields]
    fieldnames = list(fields) + list(dict.fromkeys(extra))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else _csv_value(r.get(k))) for k in fieldnames})


def _csv_value(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def plot_rows(rows: Sequence[Mapping[str, Any]], path: str, title: str = "") -> None:
    """Bar charts of MACs and latency (median, interquartile whiskers) for benchmark rows, as a PNG."""
    plt = pyplot()
    if plt is None:
        return
    labels = [str(r["variant"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    macs = [(r.get("macs") or 0) / 1e9 for r in rows]
    ax1.bar(labels, macs, color=["#888888"] + ["#3b75af"] * (len(rows) - 1))
    ax1.set_ylabel("GMACs per clip (fvcore)")
    for i, r in enumerate(rows):
        if r.get("macs_reduction_pct"):
            ax1.annotate(f"-{r['macs_reduction_pct']:.1f}%", (i, macs[i]), ha="center", va="bottom")
    med = [r["latency_ms_median"] for r in rows]
    # Interquartile whiskers: on a shared machine a single slow run would dwarf min-max bars.
    err = [[m - r["latency_ms_q1"] for m, r in zip(med, rows)], [r["latency_ms_q3"] - m for m, r in zip(med, rows)]]
    ax2.bar(labels, med, yerr=err, capsize=4, color=["#888888"] + ["#e0823d"] * (len(rows) - 1))
    ax2.set_ylabel(f"latency ms (batch {rows[0].get('batch')}, median, IQR)")
    for i, r in enumerate(rows[1:], start=1):
        ideal = r.get("ideal_speedup")
        note = f"{r['speedup']:.2f}x" + (f" (ideal {ideal:.2f}x)" if ideal else "")
        ax2.annotate(note, (i, med[i]), ha="center", va="bottom")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=15)
    r0 = rows[0]
    fig.suptitle(title or f"{r0.get('machine')} | torch {r0.get('torch')} | {r0.get('threads')} threads",
                 fontsize=9)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
class UsageError(Exception):
    """A command-line mistake: reported as one line ``PROG: error: ...`` with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print the usage and exit itself
        raise UsageError(message)


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _config_choices() -> Dict[str, List[str]]:
    from .models import available_models

    return {name: ["paper"] + configs for name, configs in available_models().items()}


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    configs = _config_choices()
    p = _Parser(prog=prog, description=description)
    p.add_argument("--model", default="mixste", choices=tuple(configs), help="zoo model (default: mixste)")
    p.add_argument("--config", default="paper", metavar="{" + ",".join(dict.fromkeys(c for cs in configs.values() for c in cs)) + "}",
                   help="zoo configuration (default: paper, the model's paper configuration); per model: "
                   + "; ".join(f"{m}: {', '.join(cs)}" for m, cs in configs.items()))
    p.add_argument("--frames", type=_int_at_least(1), default=None, help="override the clip length T")
    p.add_argument("--prune-block", type=_int_at_least(1), default=None,
                   help="blocks before pruning (default: the paper's setting for this model)")
    p.add_argument("--tokens", type=_int_at_least(1), default=None,
                   help="representative frames kept (default: the paper's setting)")
    p.add_argument("--no-recover", action="store_true", help="TPC only: no token recovering attention")
    p.add_argument("--batch", type=_int_at_least(1), default=1, help="clips per forward (default: 1)")
    p.add_argument("--threads", type=_int_at_least(1), default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu",
                   help="cpu or cuda[:i] (default: cpu); on CUDA the forwards are timed with CUDA events")
    p.add_argument("--repeats", type=_int_at_least(1), default=10, help="timed forwards per model (default: 10)")
    p.add_argument("--warmup", type=_int_at_least(0), default=2,
                   help="untimed forwards per model first (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and input (default: 0)")
    p.add_argument("--csv", metavar="PATH", default=None, help="also write the table as CSV")
    p.add_argument("--plot", metavar="PATH", default=None, help="also write a PNG chart (needs matplotlib)")
    return p


def _check_args(args: argparse.Namespace) -> None:
    """Mistakes argparse cannot see on its own, reported before anything is built."""
    configs = _config_choices()[args.model]
    if args.config not in configs:
        raise UsageError(f"--config {args.config!r} is not a configuration of {args.model}; "
                         f"choose from {', '.join(configs)}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UsageError(f"--device {args.device!r}: expected cpu or cuda[:index]") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {args.device!r}: expected cpu or cuda[:index]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is a CPU-only build" if torch.version.cuda is None
                   else "torch finds no CUDA device")
            raise UsageError(f"--device {args.device}: no CUDA GPU is available ({why}, torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {args.device}: only {torch.cuda.device_count()} CUDA device(s)")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'hourglass_tokenizer[bench]'") from None


def _command_name(command: str) -> str:
    """How the user started this command, for usage and error lines."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    package = os.path.basename(os.path.dirname(script))
    if package == "hourglass_tokenizer" and os.path.basename(script) == "__main__.py":
        return f"python -m hourglass_tokenizer {command}"
    if package == "hourglass_tokenizer" and os.path.basename(script) == "bench.py":
        return "python -m hourglass_tokenizer.bench"
    if command == "bench":
        return "hot-bench"
    return f"python -m hourglass_tokenizer {command}"


# Constructor argument that sets the clip length T, per zoo model.
_FRAMES_ARGUMENT = {"mixste": "num_frames", "motionbert": "maxlen", "poseformer": "num_frames",
                    "motionagformer": "n_frames"}


def _build_pair(args: argparse.Namespace, overrides: Mapping[str, Any]):
    """The zoo model and a HoT-wrapped deep copy, per the command-line options."""
    from . import wrap_with_hot
    from .models import build_model

    if args.frames is not None:
        overrides = {**overrides, _FRAMES_ARGUMENT.get(args.model, "num_frames"): args.frames}
    torch.manual_seed(args.seed)
    try:
        model = build_model(args.model, config=args.config, **overrides)
    except (ValueError, TypeError) as err:  # TypeError: an override the constructor does not take
        raise UsageError(f"cannot build {args.model} ({args.config}): {err}") from err
    numbers = {k: v for k, v in (("prune_block", args.prune_block), ("tokens", args.tokens)) if v is not None}
    # With no numbers the wrapper's presets choose the paper's setting for this architecture.
    try:
        hot = wrap_with_hot(copy.deepcopy(model), **numbers, recover=not args.no_recover)
    except ValueError as err:
        message = f"cannot wrap {args.model} ({args.config}) with HoT: {err}"
        if len(numbers) < 2:
            # Both numbers always work for a model of T frames with 1 <= 1 < depth and 1 <= T // 3 <= T.
            message += (f" (give both --prune-block and --tokens, e.g. --prune-block 1 "
                        f"--tokens {max(1, model.num_frames // 3)})")
        raise UsageError(message) from err
    return model, hot


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
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, model.num_frames, model.num_joints, model.in_chans, generator=generator).to(device)

    setting = _hot_setting(hot)
    hot_label = "HoT" if not args.no_recover else "HoT TPC-only"
    if setting:
        hot_label += f" ({setting['prune_block']}, {setting['tokens']})"
    with progress_bar(2 * (args.warmup + args.repeats), "timing forwards") as bar:
        rows = benchmark(model, hot, x, repeats=args.repeats, warmup=args.warmup,
                         labels=(f"{args.model}-{model.num_frames}", hot_label), progress=bar)
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
        write_csv(rows, args.csv)
        print(f"wrote {args.csv}")
    if args.plot:
        plot_rows(rows, args.plot)
        print(f"wrote {args.plot}")
    return rows


def _cli(prog: str, body) -> int:
    """Run a command; a command-line mistake becomes one line on stderr and exit status 2."""
    try:
        return body()
    except UsageError as err:
        message = " ".join(str(err).split())
        print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
        return 2


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """``hot-bench`` / ``python -m hourglass_tokenizer bench``: original vs HoT, one table.

    Returns the exit status: 0, or 2 after a one-line error for a command-line mistake.
    """
    prog = prog or _command_name("bench")
    return _cli(prog, lambda: _bench(argv, prog))


def _bench(argv: Optional[List[str]], prog: str) -> int:
    args = _parser(prog, "Compare a zoo video pose transformer with its HoT-wrapped copy "
                   "(MACs, latency, throughput).").parse_args(argv)
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
    print(f"What HoT did: {after} ran on {f} of {frames} frames picked by density-peaks clustering "
          f"(token pruning cluster, TPC); {tail}. That cut the MACs by {hot['macs_reduction_pct']:.1f}% "
          f"and the latency by {100 * (1 - 1 / hot['speedup']):.1f}% ({hot['speedup']:.2f}x faster, "
          f"ideal {hot['ideal_speedup']:.2f}x).")
    return 0


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
