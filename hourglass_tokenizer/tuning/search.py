"""``tune``: the cheapest training-free HoT setting whose error stays within a budget, on the user's data.

For a pretrained (plain) model and test sequences, :func:`tune` wraps deep copies of the model with
``recover="interpolate"`` or ``"nearest"`` (no new weights to train; ``"interpolate+residual"`` when
asked) over ``prune_block`` x ``tokens`` x ``selector`` x ``recover``, scores each on the same
sequences as the unwrapped model, and picks the setting with the lowest MACs ratio whose MPJPE increase is at most ``max_increase``
percent. It does not evaluate the whole grid:

1. **Screening.** Every selector x recovery is scored at one aggressive setting (the first
   ``prune_block``, about a quarter of the frames); only the ``keep`` best go on. At equal
   ``(prune_block, tokens)`` the MACs hardly differ between them, so the others are dominated.
2. **Search, coarse to fine.** For each ``prune_block`` (cheapest first) and each kept selector and
   recovery, a bisection over ``tokens`` finds the fewest tokens within the budget, assuming the
   error falls as tokens grow. Only settings cheaper than the best one found so far are scored,
   and a ``prune_block`` whose cheapest setting is already dearer ends the search.

The chosen setting is, by construction, the cheapest within the budget among the rows scored.
``recover="tra+interpolate"`` is not searched by default: until it is trained it gives exactly the
output of ``"interpolate"`` at a few percent more MACs.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..bench.flops import count_macs
from ..core.modes import evaluation_mode
from ..core.wrapping import is_hot, wrap_with_hot
from ..display import progress_bar, pyplot
from ..files import atomic_write
from ..training.evaluation import evaluate
from ..training.inference import detect_seq2frame, model_num_frames

__all__ = ["tune", "TuneResult", "TuneRow", "TuneError", "DEFAULT_SELECTORS", "DEFAULT_RECOVERS", "RESULT_FILES",
           "write_results", "print_summary"]

#: Selectors searched by default (names of :func:`~hourglass_tokenizer.core.selection.resolve_selector`).
DEFAULT_SELECTORS = ("uniform", "dpc_knn_coverage", "dpc_knn")
#: Training-free recoveries searched by default (``False``, TPC only, for seq2frame models).
#: ``"interpolate+residual"`` is left out: on the benchmark it made ``tune`` choose settings whose error
#: on clips it had not scored exceeded tight budgets (``benchmarks/results/tune_residual``); opt in
#: with ``recovers=``.
DEFAULT_RECOVERS = ("interpolate", "nearest")
#: What :func:`write_results` writes into its folder.
RESULT_FILES = ("hot.json", "tune.csv", "tune.png")


class TuneError(ValueError):
    """The model or the data cannot be tuned: data that does not fit the model, or a model HoT cannot wrap."""


class _OutOfTime(Exception):
    pass


@dataclass
class TuneRow:
    """One scored setting. ``change_pct`` is the MPJPE change against the unwrapped model on the same
    frames (positive: worse); ``wall_ratio`` the measured forward time against the unwrapped model
    (``None`` unless asked for); ``stage`` is ``"screen"`` or ``"search"``."""

    prune_block: int
    tokens: int
    selector: str
    recover: Union[str, bool]
    macs_ratio: float
    mpjpe: float
    change_pct: float
    wall_ratio: Optional[float] = None
    stage: str = "search"

    def settings(self) -> Dict[str, Any]:
        """The keyword arguments of ``wrap_with_hot`` that give this row."""
        return dict(prune_block=self.prune_block, tokens=self.tokens, selector=self.selector, recover=self.recover)


@dataclass
class TuneResult:
    """What :func:`tune` found.

    Attributes:
        chosen_row: the cheapest row (lowest MACs ratio, then lowest MPJPE) within the budget, or
            ``None`` when no scored setting meets it.
        rows: every scored setting, in the order scored.
        baseline_mpjpe: the unwrapped model's MPJPE (mm) on the same frames.
        baseline_macs: the unwrapped model's MACs per window.
        frames: frames scored per row.
        max_increase: the budget, percent.
        seconds: time the search took.
        complete: ``False`` when ``time_budget`` ran out before the search ended.
    """

    chosen_row: Optional[TuneRow]
    rows: List[TuneRow]
    baseline_mpjpe: float
    baseline_macs: int
    frames: int
    max_increase: float
    seconds: float
    complete: bool = True

    @property
    def chosen(self) -> Optional[Dict[str, Any]]:
        """The chosen ``wrap_with_hot`` keyword arguments, or ``None`` when nothing is within the budget."""
        return None if self.chosen_row is None else self.chosen_row.settings()

    @property
    def closest_row(self) -> TuneRow:
        """The chosen row, or else the row with the smallest MPJPE increase (the best found)."""
        return self.chosen_row or min(self.rows, key=lambda r: (r.change_pct, r.macs_ratio))

    def pareto(self) -> List[TuneRow]:
        """Rows no other row beats on both MACs ratio and MPJPE, by increasing MACs ratio."""
        front: List[TuneRow] = []
        for row in sorted(self.rows, key=lambda r: (r.macs_ratio, r.mpjpe)):
            if not front or row.mpjpe < front[-1].mpjpe:
                front.append(row)
        return front

    def format_table(self) -> str:
        """Every row as aligned text, cheapest first; ``*`` marks the chosen one, ``+`` the Pareto front."""
        front = {id(r) for r in self.pareto()}
        wall = any(r.wall_ratio is not None for r in self.rows)
        lines = [f"{'':2}{'prune_block':>11}  {'tokens':>6}  {'selector':<17} {'recover':<12} {'MACs':>5}  "
                 + (f"{'wall':>5}  " if wall else "") + f"{'MPJPE mm':>8}  {'change':>8}"]
        for r in sorted(self.rows, key=lambda r: (r.macs_ratio, r.mpjpe)):
            mark = "*" if r is self.chosen_row else ("+" if id(r) in front else " ")
            wall_cell = (f"{r.wall_ratio:5.2f}  " if r.wall_ratio is not None else f"{'-':>5}  ") if wall else ""
            lines.append(f"{mark:2}{r.prune_block:>11}  {r.tokens:>6}  {r.selector:<17} {str(r.recover):<12} "
                         f"{r.macs_ratio:5.3f}  {wall_cell}{r.mpjpe:8.2f}  {r.change_pct:+7.2f}%")
        return "\n".join(lines)


def _sequences(data: Any) -> List[Tuple[np.ndarray, np.ndarray]]:
    seqs = list(data.sequences) if hasattr(data, "sequences") else [(np.asarray(a), np.asarray(b)) for a, b in data]
    if not seqs:
        raise TuneError("no sequences to score")
    return seqs


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _check_fit(model: nn.Module, seqs: List[Tuple[np.ndarray, np.ndarray]], frames: int) -> torch.Tensor:
    """A zero window the model accepts, shaped like the data; :class:`TuneError` when the data does not fit."""
    kp2d, pos3d = (np.asarray(a) for a in seqs[0])
    if kp2d.ndim != 3 or pos3d.ndim != 3 or len(kp2d) != len(pos3d):
        raise TuneError(f"expected sequences of 2D (N, J, C) and 3D (N, J, 3) poses, got {kp2d.shape} and {pos3d.shape}")
    param = next(model.parameters(), None)
    window = torch.zeros(1, frames, *kp2d.shape[1:],
                         **({} if param is None else dict(device=param.device, dtype=param.dtype)))
    try:
        with evaluation_mode(model), torch.no_grad():
            out = model(window)
    except Exception as exc:  # the model's own error: wrong joints, channels or frames
        raise TuneError(f"the data does not fit the model: a window of {frames} frames x {kp2d.shape[1]} joints x "
                        f"{kp2d.shape[2]} channels fails ({_first_line(exc)})") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[1] not in (1, frames):
        raise TuneError(f"the model's output {tuple(getattr(out, 'shape', ()))} is not (batch, frames, joints, 3)")
    if tuple(out.shape[2:]) != tuple(pos3d.shape[1:]):
        raise TuneError(f"the data does not fit the model: it predicts {out.shape[2]} joints x {out.shape[3]} "
                        f"channels, the targets have {pos3d.shape[1]} x {pos3d.shape[2]}")
    return window


def _planned(tokens: Sequence[int], blocks: int, combos: int, kept: int) -> int:
    """An upper bound of the rows the search scores (for the progress bar's time-left estimate)."""
    return combos + blocks * kept * (2 + math.ceil(math.log2(max(len(tokens), 2))))


def tune(model: nn.Module, data: Any, max_increase: float = 1.0, *, prune_blocks: Optional[Sequence[int]] = None,
         tokens: Optional[Sequence[int]] = None, selectors: Sequence[str] = DEFAULT_SELECTORS,
         recovers: Sequence[Union[str, bool]] = DEFAULT_RECOVERS, keep: int = 2, time_budget: Optional[float] = None,
         wall: bool = False, batch_size: int = 64, progress: Optional[bool] = None,
         log: Optional[Callable[[str], None]] = None) -> TuneResult:
    """The cheapest training-free HoT setting of ``model`` within ``max_increase`` percent of its MPJPE.

    Args:
        model: the pretrained plain (unwrapped) model; it is never changed (deep copies are wrapped).
        data: test sequences: a :class:`~hourglass_tokenizer.data.PoseWindowDataset` (its
            ``sequences``) or a list of ``(2D (N, J, C), 3D (N, J, 3))`` pairs, targets in metres.
        max_increase: the budget: the largest MPJPE increase allowed, percent of the unwrapped model's.
        prune_blocks: depths to try (default: every one, ``1 .. depth - 1``).
        tokens: token counts to try (default: ``2 .. T - 1``).
        selectors: selector names to screen.
        recovers: training-free recoveries to screen (``"interpolate"``, ``"interpolate+residual"``,
            ``"nearest"``); those the model cannot take are left out; a seq2frame model is searched
            with ``False`` (TPC only) whatever this says.
        keep: selector x recovery pairs that survive the screening.
        time_budget: seconds; the search stops (``complete=False``) before a row would exceed it.
        wall: also time the Pareto-front rows against the unwrapped model (slow; batch of 1 window).
        batch_size: windows per forward pass when scoring.
        progress: show a progress bar with the time left (``None``: when stderr is a terminal).
        log: called with one line per scored row (e.g. ``print``).

    Returns:
        :class:`TuneResult`; ``result.chosen`` are the keyword arguments of ``wrap_with_hot``.

    Raises:
        TuneError: the data does not fit the model, or HoT cannot wrap it.
        ValueError: a bad argument.
    """
    if is_hot(model):
        raise ValueError("tune takes the plain pretrained model; this one is already wrapped with HoT (unwrap_hot it)")
    if not (isinstance(max_increase, (int, float)) and math.isfinite(max_increase)):
        raise ValueError(f"max_increase must be a finite number of percent, got {max_increase!r}")
    if keep < 1 or not selectors or not recovers:
        raise ValueError("tune needs at least one selector, one recovery and keep >= 1")
    started = time.time()
    seqs = _sequences(data)
    try:
        frames = model_num_frames(model)
    except ValueError as exc:
        raise TuneError(str(exc)) from None
    window = _check_fit(model, seqs, frames)
    if detect_seq2frame(model, frames, *window.shape[2:]):
        recovers = (False,)
    # A recovery this model cannot take (the residual needs equal widths) is left out; when none
    # remains, the first one's error explains why.
    probes: Dict[Union[str, bool], nn.Module] = {}
    refusal: Optional[TuneError] = None
    for recover in recovers:
        try:
            probes[recover] = _wrapped(model, 1, max(1, frames // 2), "uniform", recover)
        except TuneError as exc:
            refusal = refusal or exc
    if not probes:
        raise refusal
    recovers = list(probes)
    probe = probes[recovers[0]]
    depth = probe.hot.depth
    blocks = sorted(set(prune_blocks)) if prune_blocks is not None else list(range(1, depth))
    grid = sorted(set(tokens)) if tokens is not None else list(range(2, frames))
    if not blocks or not all(1 <= p < depth for p in blocks):
        raise ValueError(f"prune_blocks must lie in 1..{depth - 1}, got {prune_blocks!r}")
    if not grid or not all(1 <= f < frames for f in grid):
        raise ValueError(f"tokens must lie in 1..{frames - 1}, got {tokens!r}")

    base = evaluate(model, seqs, batch_size=batch_size)
    base_macs = count_macs(model, window)
    rows: Dict[Tuple[Any, ...], TuneRow] = {}
    macs_cache: Dict[Tuple[Any, ...], float] = {}
    combos = [(s, r) for r in recovers for s in selectors]
    bar = progress_bar(_planned(grid, len(blocks), len(combos), min(keep, len(combos))), "tune", show=progress)
    seconds_per_row: List[float] = []

    def macs_ratio(p: int, f: int, combo: Tuple[str, Any]) -> float:
        key = (p, f) + combo
        if key not in macs_cache:
            macs_cache[key] = count_macs(_wrapped(model, p, f, *combo), window) / base_macs
        return macs_cache[key]

    def score(p: int, f: int, combo: Tuple[str, Any], stage: str) -> TuneRow:
        key = (p, f) + combo
        if key in rows:
            return rows[key]
        if time_budget is not None and seconds_per_row and \
                time.time() - started + statistics.mean(seconds_per_row) > time_budget:
            raise _OutOfTime
        t0 = time.time()
        hot = _wrapped(model, p, f, *combo)
        mpjpe = evaluate(hot, seqs, batch_size=batch_size)["mpjpe"]
        row = TuneRow(p, f, combo[0], combo[1], macs_ratio(p, f, combo), mpjpe,
                      100.0 * (mpjpe / base["mpjpe"] - 1.0), stage=stage)
        rows[key] = row
        seconds_per_row.append(time.time() - t0)
        bar.update(1)
        if log is not None:
            log(f"({p}, {f}) {combo[0]:<17} {str(combo[1]):<12} MACs {row.macs_ratio:.3f}  MPJPE {mpjpe:.2f} mm "
                f"({row.change_pct:+.2f} %)")
        return row

    def within(row: TuneRow) -> bool:
        return row.change_pct <= max_increase

    complete = True
    try:
        # 1. Screening: every selector x recovery at one aggressive setting; keep the best few.
        screen_tokens = min(grid, key=lambda f: (abs(f - frames / 4), f))
        screened = [score(blocks[0], screen_tokens, c, "screen") for c in combos]
        ranked = sorted(zip(screened, combos), key=lambda rc: (rc[0].mpjpe, rc[0].macs_ratio))
        kept = [c for _, c in ranked[:keep]]
        # 2. Per prune_block, cheapest first: bisection over tokens below the best MACs found so far.
        best: Optional[TuneRow] = None
        for p in blocks:
            if best is not None and all(macs_ratio(p, grid[0], c) >= best.macs_ratio for c in kept):
                break  # deeper pruning only costs more
            for combo in kept:
                limit = len(grid)  # candidates grid[:limit] are cheaper than the best so far
                if best is not None:
                    lo, hi = 0, len(grid)
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if macs_ratio(p, grid[mid], combo) < best.macs_ratio:
                            lo = mid + 1
                        else:
                            hi = mid
                    limit = lo
                if limit == 0 or not within(score(p, grid[limit - 1], combo, "search")):
                    continue
                lo, hi = 0, limit - 1  # grid[hi] is within the budget
                while lo < hi:
                    mid = (lo + hi) // 2
                    if within(score(p, grid[mid], combo, "search")):
                        hi = mid
                    else:
                        lo = mid + 1
                found = rows[(p, grid[hi]) + combo]
                if best is None or (found.macs_ratio, found.mpjpe) < (best.macs_ratio, best.mpjpe):
                    best = found
    except _OutOfTime:
        complete = False
    finally:
        bar.close()
    table = list(rows.values())
    fits = [r for r in table if within(r)]
    chosen = min(fits, key=lambda r: (r.macs_ratio, r.mpjpe)) if fits else None
    result = TuneResult(chosen, table, base["mpjpe"], base_macs, base["frames"], float(max_increase),
                        time.time() - started, complete)
    if wall and table:
        _time_rows(model, window, result)
    result.seconds = time.time() - started
    return result


def _wrapped(model: nn.Module, prune_block: int, tokens: int, selector: str, recover: Union[str, bool]) -> nn.Module:
    try:
        return wrap_with_hot(copy.deepcopy(model), prune_block=prune_block, tokens=tokens, selector=selector,
                             recover=recover)
    except (ValueError, TypeError) as exc:
        raise TuneError(f"cannot wrap the model with HoT at prune_block={prune_block}, tokens={tokens}: "
                        f"{_first_line(exc)}") from None


def _time_rows(model: nn.Module, window: torch.Tensor, result: TuneResult, repeats: int = 5) -> None:
    """Wall-clock ratio of the Pareto-front rows (and the chosen one) against the unwrapped model."""
    from ..bench.timing import time_interleaved

    timed = {id(r): r for r in result.pareto()}
    if result.chosen_row is not None:
        timed[id(result.chosen_row)] = result.chosen_row
    x = torch.randn(window.shape, generator=torch.Generator().manual_seed(0)).to(window)
    for row in timed.values():
        times = time_interleaved([model, _wrapped(model, **row.settings())], x, repeats=repeats, warmup=1)
        row.wall_ratio = statistics.median(times[1]) / statistics.median(times[0])


# -- files -----------------------------------------------------------------------------------------


def write_results(result: TuneResult, out_dir: str) -> List[str]:
    """Write ``hot.json`` (the chosen setting; not when nothing is within the budget), ``tune.csv``
    (every row) and ``tune.png`` (without matplotlib: skipped, with a note on stderr) into ``out_dir``,
    each atomically. Returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    if result.chosen is not None:
        path = os.path.join(out_dir, "hot.json")
        with atomic_write(path) as tmp, open(tmp, "w") as fh:
            json.dump(result.chosen, fh, indent=2)
            fh.write("\n")
        written.append(path)
    path = os.path.join(out_dir, "tune.csv")
    front = {id(r) for r in result.pareto()}
    columns = list(asdict(result.rows[0])) + ["pareto", "within_budget", "chosen"] if result.rows else []
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in sorted(result.rows, key=lambda r: (r.macs_ratio, r.mpjpe)):
            values = asdict(r)
            values.update(pareto=id(r) in front, within_budget=r.change_pct <= result.max_increase,
                          chosen=r is result.chosen_row)
            writer.writerow([f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)
                             for v in (values[c] for c in columns)])
    written.append(path)
    png = _plot(result, os.path.join(out_dir, "tune.png"))
    if png:
        written.append(png)
    return written


def _plot(result: TuneResult, path: str) -> Optional[str]:
    plt = pyplot()
    if plt is None or not result.rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = {"interpolate": "o", "nearest": "s", False: "^"}
    for selector in dict.fromkeys(r.selector for r in result.rows):
        for recover in dict.fromkeys(r.recover for r in result.rows):
            group = [r for r in result.rows if r.selector == selector and r.recover == recover]
            if group:
                ax.scatter([r.macs_ratio for r in group], [r.change_pct for r in group], s=22, alpha=0.75,
                           marker=markers.get(recover, "D"), label=f"{selector}, {recover}")
    front = result.pareto()
    ax.plot([r.macs_ratio for r in front], [r.change_pct for r in front], color="black", linewidth=1,
            label="Pareto front")
    ax.axhline(result.max_increase, color="gray", linestyle="--", linewidth=1,
               label=f"budget +{result.max_increase:g} %")
    if result.chosen_row is not None:
        c = result.chosen_row
        ax.scatter([c.macs_ratio], [c.change_pct], marker="*", s=260, color="red", zorder=5,
                   label=f"chosen ({c.prune_block}, {c.tokens}) {c.selector}")
    low = min(min(r.change_pct for r in result.rows), 0.0)
    high = max(3 * max(result.max_increase, 0.5), max(r.change_pct for r in front))
    ax.set_ylim(low - 0.1 * (high - low), high + 0.05 * (high - low))  # far-off rows (few tokens) would flatten the rest
    ax.set_xlabel("MACs ratio (HoT / original)")
    ax.set_ylabel("MPJPE change vs the unwrapped model (%)")
    ax.set_title(f"tune: {len(result.rows)} settings, baseline {result.baseline_mpjpe:.2f} mm")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def print_summary(result: TuneResult, file: Any = None) -> None:
    """The table and one conclusion line, as the ``tune`` command prints them."""
    file = file or sys.stdout
    print(f"unwrapped model: MPJPE {result.baseline_mpjpe:.2f} mm on {result.frames} frames, "
          f"{result.baseline_macs / 1e6:.1f} MMACs per window", file=file)
    print(result.format_table(), file=file)
