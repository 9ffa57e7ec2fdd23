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

import csv
import os
import platform
import statistics
import time
from contextlib import nullcontext as _no_context
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..display import pyplot
from ..files import atomic_write
from .flops import count_flops, count_params, format_count

__all__ = ["CSV_FIELDS", "benchmark", "time_interleaved", "machine_info", "hot_setting", "header_lines", "format_table",
           "write_csv", "plot_rows"]

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


class _ThreadClock(_WallClock):
    """CPU time of the calling thread (``thread_time``): on a machine shared with other jobs it leaves
    out the time the thread waited for a core, so small differences stay visible. Single-threaded
    runs only (other threads' work is not counted)."""

    def start(self) -> None:
        self._start = time.thread_time()

    def stop(self) -> float:
        return time.thread_time() - self._start


def _clock(device: torch.device, kind: str = "wall"):
    if kind not in ("wall", "thread"):
        raise ValueError(f"clock must be 'wall' or 'thread', got {kind!r}")
    if device.type == "cuda":
        return _CudaClock(device)
    return _ThreadClock() if kind == "thread" else _WallClock()


def _device_of(model: nn.Module, example_input: torch.Tensor) -> torch.device:
    return example_input.device if isinstance(example_input, torch.Tensor) else torch.device("cpu")


def time_interleaved(models: Sequence[nn.Module], example_input: torch.Tensor, repeats: int = 10,
                     warmup: int = 2, progress: Optional[Any] = None, clock: str = "wall") -> List[List[float]]:
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
        clock: on CPU, ``"wall"`` (``perf_counter``) or ``"thread"`` (the thread's CPU time, for
            one-thread runs on a busy machine).

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
            timer = _clock(device, clock)
            for _ in range(warmup):
                for model in models:
                    timer.start()
                    model(example_input)
                    timer.stop()
                    if progress is not None:
                        progress.update(1)
            for rep in range(repeats):
                order = list(range(len(models)))
                if rep % 2:
                    order.reverse()
                for i in order:
                    timer.start()
                    models[i](example_input)
                    times[i].append(timer.stop())
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


def hot_setting(model: nn.Module) -> Dict[str, Any]:
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
        row.update(hot_setting(m))
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
    """Write rows to ``path`` (machine, torch version and threads are columns of every row).

    Written to a temporary file and renamed: a failed write leaves an earlier ``path`` as it was.
    """
    extra = [k for r in rows for k in r if k not in fields]
    fieldnames = list(fields) + list(dict.fromkeys(extra))
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else _csv_value(r.get(k))) for k in fieldnames})


def _csv_value(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def plot_rows(rows: Sequence[Mapping[str, Any]], path: str, title: str = "") -> None:
    """Bar charts of MACs and latency (median, interquartile whiskers) for benchmark rows, as a PNG
    (written to a temporary file and renamed, like :func:`write_csv`)."""
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
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, dpi=120, format=os.path.splitext(path)[1][1:] or "png")
    finally:
        plt.close(fig)
