"""Reproduce the HoT paper's efficiency table (MACs, params, wall clock) for every zoo model.

Run from the repository root::

    python benchmarks/paper_table.py                 # everything, ~15 min (1 thread, busy 2-core VM)
    python benchmarks/paper_table.py --only paper    # just the paper settings
    python benchmarks/paper_table.py --quick         # smoke run: 1 repeat, batch 1 only
    python benchmarks/paper_table.py --replot        # redraw PNGs/summary from the CSVs

It writes to ``benchmarks/results/``:

* ``paper_table.csv``: MixSTE-243 with HoT (3, 81) and TPC-only (7, 61); MotionBERT-243 at
  dim 256 (the HoT repository's model) and dim 512 (MotionBERT's released one) with HoT (1, 81);
  PoseFormer-81 with TPC-only (1, 27); each at batch 1 and 4.
* ``tokens_sweep.csv`` / ``.png``: MixSTE-243, prune_block 3, tokens 27/61/81/121 (243 = unwrapped).
* ``prune_block_sweep.csv`` / ``.png``: MixSTE-243, tokens 81, prune_block 1..7.
* ``speedup_vs_ideal.png``: measured wall-clock speed-up against the ideal 1 / MACs ratio.
* ``summary.md``: the paper table as Markdown.

Every CSV row carries the machine (CPU model), the torch version, the thread count and the
1-minute load average at the start of the run. MACs are per clip (fvcore with the attention
handles of :mod:`hourglass_tokenizer.bench.flops`; 1 multiply-add = 1), ``paper_flops`` = 2 x MACs.

The ``analytic_*`` columns are an independent check: the MACs each model should cost, derived by
hand from its structure (token counts times per-token costs, fvcore's conventions), for the
original and for the HoT model, and the ratio between them. ``ratio_gap_points`` is
``100 * (fvcore ratio - analytic ratio)``; anything beyond a fraction of a point means the
wrapper does work the structure does not call for (or misses some).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from a checkout without installing the package
    sys.path.insert(0, ROOT)

from hourglass_tokenizer import wrap_with_hot  # noqa: E402
from hourglass_tokenizer.bench import CSV_FIELDS, benchmark, write_csv  # noqa: E402
from hourglass_tokenizer.display import progress_bar, pyplot  # noqa: E402
from hourglass_tokenizer.bench.flops import count_flops  # noqa: E402
from hourglass_tokenizer.models import build_model  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results")
EXTRA_FIELDS = ("analytic_macs", "analytic_ratio", "ratio_gap_points", "analytic_vs_fvcore", "load_1min",
                "section", "label")


# ------------------------------------------------------------------------------------------
# Analytic MAC counts, from each architecture's structure (fvcore conventions: a Linear costs
# in*out per token, LayerNorm 5 per element, attention 2 * L * C per token for a sequence of
# length L: q @ k^T plus attn @ v; element-wise ops, softmax, top-k are free).
# ------------------------------------------------------------------------------------------
def _block(tokens: int, seq_len: int, width: int, hidden: int) -> int:
    """One pre-norm transformer layer (2 LayerNorms, attention, 2-layer MLP) over ``tokens``."""
    per_token = 4 * width * width + 2 * width * hidden + 2 * 5 * width + 2 * seq_len * width
    return tokens * per_token


def _hot_extras(frames: int, tokens: int, width: int, sequences: int, recover: bool) -> int:
    """TPC's pairwise distances between frame features (``T x T x C``, features averaged over
    joints) plus, with recovery, TRA: per joint sequence, q/proj projections on ``T`` queries,
    k/v projections on ``f`` kept tokens, and attention ``2 * T * f * C``."""
    tpc = frames * frames * width
    tra = sequences * (2 * frames * width * width + 2 * tokens * width * width + 2 * frames * tokens * width)
    return tpc + (tra if recover else 0)


def _frames_at(depth: int, frames: int, prune_block: Optional[int], tokens: Optional[int]) -> int:
    return frames if prune_block is None or depth < prune_block else tokens


def analytic_macs(name: str, model: nn.Module, prune_block: Optional[int] = None, tokens: Optional[int] = None,
                  recover: bool = True) -> int:
    """MACs per clip of zoo model ``name`` (unwrapped: ``prune_block=None``) from its structure.

    Norms and fusion layers that sit between blocks run outside the hooked blocks, so with the
    hook-based wrapper they still see all ``T`` frames; only the blocks see ``tokens`` frames.
    """
    T, J, cin = model.num_frames, model.num_joints, model.in_chans
    if name == "mixste":
        C, D = model.embed_dim, model.block_depth
        H = model.STEblocks[0].mlp.fc1.out_features
        total = T * J * cin * C  # joint embedding
        for d in range(D):
            t = _frames_at(d, T, prune_block, tokens)
            total += _block(t * J, J, C, H) + _block(t * J, t, C, H)  # spatial + temporal block
            total += 2 * 5 * C * T * J  # Spatial_norm, Temporal_norm (shared, outside the blocks)
        total += T * J * (5 * C + C * model.out_chans)  # head: LayerNorm + Linear
        width, sequences = C, J
    elif name == "motionbert":
        C, D = model.dim_feat, len(model.blocks_st)
        H = model.blocks_st[0].mlp_s.fc1.out_features
        total = T * J * cin * C
        for d in range(D):
            t = _frames_at(d, T, prune_block, tokens)
            stream = _block(t * J, J, C, H) + _block(t * J, t, C, H)  # spatial + temporal sub-layers
            total += 2 * stream  # the ST and the TS stream
            if getattr(model, "att_fuse", False):
                total += T * J * 2 * C * 2  # ts_attn Linear(2C, 2), outside the blocks
        total += 5 * C * T * J  # final norm
        head_in = C
        fc = getattr(model.pre_logits, "fc", None)
        if fc is not None:
            total += T * J * C * fc.out_features
            head_in = fc.out_features
        if isinstance(model.head, nn.Linear):
            total += T * J * head_in * model.head.out_features
        width, sequences = C, J
    elif name == "poseformer":
        cs = model.Spatial_patch_to_embedding.out_features
        C, D = model.embed_dim, len(model.blocks)
        Hs = model.Spatial_blocks[0].mlp.fc1.out_features
        Ht = model.blocks[0].mlp.fc1.out_features
        total = T * J * cin * cs
        total += len(model.Spatial_blocks) * _block(T * J, J, cs, Hs) + 5 * cs * T * J  # + Spatial_norm
        for d in range(D):
            t = _frames_at(d, T, prune_block, tokens)
            total += _block(t, t, C, Ht)  # one token per frame
        total += 5 * C * T  # Temporal_norm
        total += T * C  # weighted_mean: Conv1d(T -> 1, kernel 1) over C positions
        total += 5 * C + C * model.head[1].out_features  # head on the pooled token
        width, sequences = C, 1
    else:
        raise ValueError(f"no analytic count for {name!r}")
    if prune_block is not None:
        total += _hot_extras(T, tokens, width, sequences, recover)
    return int(total)


# ------------------------------------------------------------------------------------------
# Experiments
# ------------------------------------------------------------------------------------------
@dataclass
class Variant:
    prune_block: int
    tokens: int
    recover: bool = True

    @property
    def label(self) -> str:
        return f"{'HoT' if self.recover else 'TPC'} ({self.prune_block}, {self.tokens})"


@dataclass
class Entry:
    name: str
    config: str
    title: str
    variants: List[Variant]
    batches: Tuple[int, ...] = (1, 4)
    note: str = ""


PAPER_ENTRIES = [
    Entry("mixste", "paper", "MixSTE-243", [Variant(3, 81), Variant(7, 61, recover=False)]),
    Entry("motionbert", "hot-243", "MotionBERT-243 (dim 256)", [Variant(1, 81)]),
    Entry("motionbert", "h36m-243", "MotionBERT-243 (dim 512)", [Variant(1, 81)]),
    # The paper's seq2frame experiments use MHFormer and MixSTE; for PoseFormer we prune after the
    # first of its 4 temporal blocks and keep a third of the frames (our choice, not the paper's).
    Entry("poseformer", "paper", "PoseFormer-81", [Variant(1, 27, recover=False)],
          note="setting chosen here, not from the paper"),
]
SWEEP_TOKENS = (27, 61, 81, 121)
SWEEP_BLOCKS = tuple(range(1, 8))


class _Progress:
    """A tqdm bar on stderr whose description names the stage; nothing when disabled."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.bar = None
        self.enabled = enabled
        if enabled:
            self.bar = progress_bar(total, "", show=True, unit="fwd")

    def stage(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description(text)
        elif self.enabled:
            print(f"[paper_table] {text}", file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _load() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _wrap(model: nn.Module, v: Variant) -> nn.Module:
    return wrap_with_hot(copy.deepcopy(model), prune_block=v.prune_block, tokens=v.tokens, recover=v.recover,
                         selector="dpc_knn")  # the paper's TPC


def _input(model: nn.Module, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.num_frames, model.num_joints, model.in_chans, generator=g)


def measure(name: str, config: str, title: str, variants: Sequence[Variant], batches: Sequence[int],
            repeats: int, warmup: int, progress: _Progress, section: str) -> List[Dict[str, Any]]:
    """Build one model and its HoT variants; time them all interleaved at each batch size."""
    torch.manual_seed(0)
    model = build_model(name, config=config)
    hots = {v.label: _wrap(model, v) for v in variants}
    # MACs per clip once (the fvcore trace costs about a forward); reused for every batch size.
    clip = _input(model, 1)
    progress.stage(f"{title}: counting MACs")
    macs = {"ref": count_flops(model, clip), **{k: count_flops(m, clip) for k, m in hots.items()}}
    analytic = {"ref": analytic_macs(name, model),
                **{v.label: analytic_macs(name, model, v.prune_block, v.tokens, v.recover) for v in variants}}
    rows: List[Dict[str, Any]] = []
    for batch in batches:
        progress.stage(f"{title}: timing batch {batch}")
        load = _load()
        got = benchmark(model, hots, _input(model, batch), repeats=repeats, warmup=warmup,
                        labels=(title,), count_macs=False, progress=progress)
        keys = ["ref"] + list(hots)
        for key, row, v in zip(keys, got, [None] + list(variants)):
            mac, ratio = macs[key], macs[key] / macs["ref"]
            a_ratio = analytic[key] / analytic["ref"]
            ideal = 1.0 / ratio
            row.update(
                section=section, label=title if v is None else f"{title} {v.label}", model=name, config=config,
                joints=model.num_joints, prune_block=None if v is None else v.prune_block,
                tokens=None if v is None else v.tokens, recover=None if v is None else v.recover,
                macs=mac, paper_flops=2 * mac, macs_ratio=ratio, macs_reduction_pct=100 * (1 - ratio),
                ideal_speedup=ideal, speedup_vs_ideal=row["speedup"] / ideal,
                analytic_macs=analytic[key], analytic_ratio=a_ratio,
                ratio_gap_points=100 * (ratio - a_ratio), analytic_vs_fvcore=analytic[key] / mac,
                load_1min=load,
            )
            rows.append(row)
    return rows


def _forwards(n_models: int, batches: int, repeats: int, warmup: int) -> int:
    return n_models * batches * (repeats + warmup)


# ------------------------------------------------------------------------------------------
# Plots and summary
# ------------------------------------------------------------------------------------------
def _threads(row: Dict[str, Any]) -> str:
    return f"{row['threads']} thread" + ("" if str(row["threads"]) == "1" else "s")


def _footer(rows: Sequence[Dict[str, Any]]) -> str:
    r = rows[0]
    return f"{r['machine']} | torch {r['torch']} | {_threads(r)} | batch {r['batch']}"


def plot_sweep(rows: Sequence[Dict[str, Any]], key: str, xlabel: str, path: str, reference_x: Optional[int]) -> None:
    """Left: GMACs per clip (fvcore and analytic) against ``key``; right: speed-up, measured vs ideal."""
    plt = pyplot()
    if plt is None:
        return
    hot = [r for r in rows if r[key] is not None]
    ref = next(r for r in rows if r[key] is None)
    xs = [r[key] for r in hot]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(xs, [r["macs"] / 1e9 for r in hot], "o-", label="HoT, fvcore")
    ax1.plot(xs, [r["analytic_macs"] / 1e9 for r in hot], "x--", label="HoT, analytic")
    ax1.axhline(ref["macs"] / 1e9, color="gray", ls=":", label="original")
    if reference_x is not None:
        ax1.plot([reference_x], [ref["macs"] / 1e9], "s", color="gray")
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel("GMACs per clip")
    ax1.legend(fontsize=8)
    ax2.plot(xs, [r["ideal_speedup"] for r in hot], "x--", label="ideal (1 / MACs ratio)")
    ax2.plot(xs, [r["speedup"] for r in hot], "o-", label="measured (wall clock)")
    ax2.plot(xs, [0.9 * r["ideal_speedup"] for r in hot], ":", color="gray", label="0.9 x ideal")
    if reference_x is not None:
        ax2.plot([reference_x], [1.0], "s", color="gray", label="original")
    ax2.axhline(1.0, color="gray", lw=0.5)
    ax2.set_xlabel(xlabel)
    ax2.set_ylabel("speed-up over the original")
    ax2.legend(fontsize=8)
    fig.suptitle(f"MixSTE-243 with HoT | {_footer(rows)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_speedups(rows: Sequence[Dict[str, Any]], path: str) -> None:
    """Every HoT row: measured speed-up against the ideal one, with y = x and y = 0.9 x."""
    plt = pyplot()
    if plt is None:
        return
    hot = [r for r in rows if r.get("prune_block") is not None]
    fig, ax = plt.subplots(figsize=(6, 5))
    top = max(max(r["ideal_speedup"], r["speedup"]) for r in hot) * 1.08
    ax.plot([1, top], [1, top], color="gray", lw=1, label="measured = ideal")
    ax.plot([1, top], [0.9, 0.9 * top], color="gray", lw=1, ls=":", label="0.9 x ideal")
    markers = {1: "o", 4: "s"}
    for section, color in (("paper", "#3b75af"), ("tokens", "#e0823d"), ("prune_block", "#519e3e")):
        for batch, marker in markers.items():
            pts = [r for r in hot if r["section"] == section and r["batch"] == batch]
            if pts:
                ax.scatter([r["ideal_speedup"] for r in pts], [r["speedup"] for r in pts], marker=marker,
                           color=color, label=f"{section}, batch {batch}")
    for r in hot:
        if r["section"] == "paper":
            ax.annotate(r["label"], (r["ideal_speedup"], r["speedup"]), fontsize=6, xytext=(3, -8),
                        textcoords="offset points")
    ax.set_xlabel("ideal speed-up (1 / MACs ratio)")
    ax.set_ylabel("measured speed-up (median wall clock)")
    ax.legend(fontsize=7)
    r0 = rows[0]
    ax.set_title(f"{r0['machine']} | torch {r0['torch']} | {_threads(r0)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_markdown(rows: Sequence[Dict[str, Any]]) -> str:
    """The measured table as Markdown (one line per model and batch)."""
    r0 = rows[0]
    lines = [
        f"Machine: {r0['machine']} ({r0['cpu_count']} logical CPUs), torch {r0['torch']}, "
        f"{_threads(r0)}, 1-minute load average at start {r0.get('load_1min')}. MACs per clip by fvcore "
        "(1 multiply-add = 1, attention matmuls included); paper FLOPs = 2 x MACs. Latency: median of "
        f"{r0['repeats']} interleaved runs after {r0['warmup']} warm-up.",
        "",
        "| model | batch | params | GMACs | MACs ratio (analytic) | latency ms | speed-up | ideal | meas/ideal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['macs_ratio']:.3f} ({r['analytic_ratio']:.3f})" if r.get("prune_block") is not None else "1"
        lines.append(
            f"| {r['label']} | {r['batch']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.2f} | {ratio} | "
            f"{r['latency_ms_median']:.0f} | {r['speedup']:.2f}x | {r['ideal_speedup']:.2f}x | "
            f"{r['speedup_vs_ideal']:.2f} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
_INT_FIELDS = {"frames", "joints", "batch", "prune_block", "tokens", "params", "macs", "paper_flops",
               "analytic_macs", "repeats", "warmup", "cpu_count", "threads"}
_TEXT_FIELDS = {"model", "variant", "config", "machine", "torch", "device", "section", "label"}


def read_rows(path: str) -> List[Dict[str, Any]]:
    """Rows of a CSV written by this script, with numbers and booleans parsed back."""
    import csv

    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row: Dict[str, Any] = {}
            for k, v in raw.items():
                if v == "":
                    row[k] = None
                elif k in _TEXT_FIELDS:
                    row[k] = v
                elif k == "recover":
                    row[k] = v == "True"
                elif k in _INT_FIELDS:
                    row[k] = int(v)
                else:
                    row[k] = float(v)
            rows.append(row)
    return rows


def replot(out: str) -> None:
    """Rebuild ``summary.md`` and the PNGs from the CSVs already in ``out`` (no measuring)."""
    everything: List[Dict[str, Any]] = []
    paper = os.path.join(out, "paper_table.csv")
    if os.path.exists(paper):
        rows = read_rows(paper)
        with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as fh:
            fh.write(summary_markdown(rows))
        everything += rows
    for name, key, xlabel, ref in (
            ("tokens_sweep", "tokens", "representative frames kept (prune_block 3; 243 = original)", 243),
            ("prune_block_sweep", "prune_block", "prune_block: blocks that see all frames (tokens 81; 8 = original)", 8)):
        path = os.path.join(out, name + ".csv")
        if os.path.exists(path):
            rows = read_rows(path)
            plot_sweep(rows, key, xlabel, os.path.join(out, name + ".png"), reference_x=ref)
            everything += rows
    if everything:
        plot_speedups(everything, os.path.join(out, "speedup_vs_ideal.png"))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the selected sections and write CSV/PNG/Markdown files; returns an exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="paper,tokens,prune_block",
                   help="comma-separated sections: paper, tokens, prune_block (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed forwards per model (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed forwards per model first (default 1)")
    # One thread by default: on a machine shared with other jobs, OpenMP threads that get
    # descheduled stall each other at every operator and the timings become meaningless.
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1; use more only on an otherwise idle machine)")
    p.add_argument("--batches", default="1,4", help="batch sizes for the paper table (default 1,4)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, no warm-up, batch 1")
    p.add_argument("--out", default=RESULTS, help=f"output folder (default {RESULTS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--replot", action="store_true",
                   help="only rebuild summary.md and the PNGs from the CSVs in --out (no measuring)")
    args = p.parse_args(argv)
    if args.replot:
        replot(args.out)
        return 0
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - {"paper", "tokens", "prune_block"}
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}")
    batches = (1,) if args.quick else tuple(int(b) for b in args.batches.split(","))
    repeats, warmup = (1, 0) if args.quick else (args.repeats, args.warmup)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    fields = list(CSV_FIELDS) + list(EXTRA_FIELDS)

    total = 0
    if "paper" in sections:
        total += sum(_forwards(1 + len(e.variants), len(batches), repeats, warmup) for e in PAPER_ENTRIES)
    if "tokens" in sections:
        total += _forwards(1 + len(SWEEP_TOKENS), 1, repeats, warmup)
    if "prune_block" in sections:
        total += _forwards(1 + len(SWEEP_BLOCKS), 1, repeats, warmup)
    progress = _Progress(total, enabled=not args.no_progress)
    started = time.perf_counter()
    everything: List[Dict[str, Any]] = []
    try:
        if "paper" in sections:
            rows: List[Dict[str, Any]] = []
            for e in PAPER_ENTRIES:
                rows += measure(e.name, e.config, e.title, e.variants, batches, repeats, warmup, progress, "paper")
            write_csv(rows, os.path.join(args.out, "paper_table.csv"), fields)
            with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as fh:
                fh.write(summary_markdown(rows))
            everything += rows
        if "tokens" in sections:
            variants = [Variant(3, f) for f in SWEEP_TOKENS]
            rows = measure("mixste", "paper", "MixSTE-243", variants, (1,), repeats, warmup, progress, "tokens")
            write_csv(rows, os.path.join(args.out, "tokens_sweep.csv"), fields)
            plot_sweep(rows, "tokens", "representative frames kept (prune_block 3; 243 = original)",
                       os.path.join(args.out, "tokens_sweep.png"), reference_x=243)
            everything += rows
        if "prune_block" in sections:
            variants = [Variant(n, 81) for n in SWEEP_BLOCKS]
            rows = measure("mixste", "paper", "MixSTE-243", variants, (1,), repeats, warmup, progress,
                           "prune_block")
            write_csv(rows, os.path.join(args.out, "prune_block_sweep.csv"), fields)
            plot_sweep(rows, "prune_block", "prune_block: blocks that see all frames (tokens 81; 8 = original)",
                       os.path.join(args.out, "prune_block_sweep.png"), reference_x=8)
            everything += rows
    finally:
        progress.close()
    if everything:
        plot_speedups(everything, os.path.join(args.out, "speedup_vs_ideal.png"))
    print(f"done in {time.perf_counter() - started:.0f} s; results in {args.out}", file=sys.stderr)
    for r in everything:
        if r.get("prune_block") is None:
            continue
        print(f"{r['section']:>11} b{r['batch']} {r['label']:<34} MACs ratio {r['macs_ratio']:.3f} "
              f"(analytic {r['analytic_ratio']:.3f}, gap {r['ratio_gap_points']:+.2f} pt)  "
              f"speed-up {r['speedup']:.2f}x / ideal {r['ideal_speedup']:.2f}x = {r['speedup_vs_ideal']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
