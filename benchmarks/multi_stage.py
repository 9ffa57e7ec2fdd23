"""Pruning at several depths (H2OT-style) against single-stage HoT of about the same MACs.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/multi_stage.py            # ~3 min on one busy core
    OMP_NUM_THREADS=1 python benchmarks/multi_stage.py --repeats 2 --model-config small   # smoke run

On the zoo's MixSTE-243 (dim 512, depth 8), batch 1, one thread: MACs by
:func:`hourglass_tokenizer.count_flops` (fvcore plus attention, 1 multiply-add = 1) and wall time
as the median of interleaved runs (every setting once per round, rounds repeated), all settings
in one process on the same input. Prints a Markdown table and writes
``benchmarks/results/multi_stage.csv``.

Every HoT setting uses the paper's TRA (``recover="tra"``) with the default DPC-kNN selection.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from hourglass_tokenizer import count_flops, wrap_with_hot  # noqa: E402
from hourglass_tokenizer.models import build_model  # noqa: E402

# (label, prune_block, tokens); pairs of about equal MACs: frame-depth units of 8 blocks at 243 frames
# are 3*243+5*81 = 1134 for (3, 81); 2*243+3*81+3*27 = 810 for (2, 5)/(81, 27), the same as
# 1*243+7*81 = 810 for (1, 81) and 2*243+6*54 = 810 for (2, 54).
SETTINGS = (
    ("original", None, None),
    ("single (3, 81), paper", 3, 81),
    ("two-stage (3, 6) / (121, 41)", (3, 6), (121, 41)),
    ("single (1, 81)", 1, 81),
    ("single (2, 54)", 2, 54),
    ("two-stage (2, 5) / (81, 27), H2OT-like", (2, 5), (81, 27)),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-config", default="h36m-243", help="zoo MixSTE configuration")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median reported)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "multi_stage.csv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = build_model("mixste", args.model_config).eval()
    frames = base.num_frames if hasattr(base, "num_frames") else 243
    x = torch.randn(1, frames, 17, 2)
    models = []
    for label, prune_block, tokens in SETTINGS:
        model = build_model("mixste", args.model_config).eval()
        model.load_state_dict(base.state_dict())
        if prune_block is not None:
            if frames != 243:  # smoke runs on small configs: scale the counts, keep the depths in range
                depth = len(model.STEblocks) if hasattr(model, "STEblocks") else 4
                scale = frames / 243
                tokens = tuple(max(2, round(t * scale)) for t in tokens) if isinstance(tokens, tuple) else \
                    max(2, round(tokens * scale))
                prune_block = tuple(min(p, depth - 1 - (len(prune_block) - 1 - i)) for i, p in enumerate(prune_block)) \
                    if isinstance(prune_block, tuple) else min(prune_block, depth - 1)
            wrap_with_hot(model, prune_block=prune_block, tokens=tokens, recover="tra", selector="dpc_knn")
        models.append((label, prune_block, tokens, model))
    macs = {label: count_flops(model, x) for label, _, _, model in models}
    times = {label: [] for label, *_ in models}
    with torch.no_grad():
        for label, *_, model in models:  # warm-up
            model(x)
        for _ in range(args.repeats):
            for label, *_, model in models:
                start = time.perf_counter()
                model(x)
                times[label].append(time.perf_counter() - start)
    original_macs, original_ms = macs["original"], 1000 * statistics.median(times["original"])
    rows = []
    for label, prune_block, tokens, _ in models:
        ms = 1000 * statistics.median(times[label])
        rows.append(dict(setting=label, prune_block=prune_block, tokens=tokens, gmacs=round(macs[label] / 1e9, 2),
                         macs_ratio=round(macs[label] / original_macs, 3), wall_ms=round(ms, 1),
                         wall_ratio=round(ms / original_ms, 3), repeats=args.repeats, threads=1,
                         config=args.model_config, torch=torch.__version__, machine=platform.processor() or
                         platform.machine(), load_1min=round(os.getloadavg()[0], 2)))
    print("| setting | GMACs | MACs ratio | wall ms | wall ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['gmacs']} | {r['macs_ratio']} | {r['wall_ms']} | {r['wall_ratio']} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
