"""``tune`` on the CMU baseline of accuracy_cmu.py: tuned on one half of the test clips, checked on the other.

The test split of the CMU motion file is cut into two motion files of whole clips: a validation file
(every other test clip, counting from the first; about 2,000 frames, 4 virtual cameras each) that
``python -m hourglass_tokenizer tune`` scores, and a held-out file (the other clips, including the
long jumping and window-washing clips) that it never sees. The command runs as a user would run it,
in a subprocess with one thread, and is timed; then the chosen setting is scored on the held-out
clips and on the whole test split, against the unwrapped baseline on the same frames.

    python benchmarks/tune_cmu.py --data motion.npz --baseline runs/strong_t27/last.pt

Writes ``tune_cmu.md`` (one row per budget), ``tune_cmu.csv`` and ``tune_cmu.png`` (the first budget's
table and plot) to ``--out-dir``; the command's own output folders are under ``--runs-dir``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, HERE):
    if path not in sys.path:  # run as a script from a checkout
        sys.path.insert(0, path)

import accuracy_cmu  # noqa: E402

from hourglass_tokenizer import wrap_with_hot  # noqa: E402
from hourglass_tokenizer.data import PoseWindowDataset, load_cmu, project_clips  # noqa: E402
from hourglass_tokenizer.data.readers import CMU_ACKNOWLEDGEMENT  # noqa: E402
from hourglass_tokenizer.files import atomic_write  # noqa: E402
from hourglass_tokenizer.training import evaluate  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the CMU split as a motion .npz (see the README's Data section)")
    p.add_argument("--baseline", required=True, help="checkpoint of the trained baseline (accuracy_cmu.py's command)")
    p.add_argument("--max-increase", default="1,0.5,3", help="budgets given to tune, percent, comma-separated")
    p.add_argument("--slack", type=float, default=0.25, help="allowed excess on the held-out clips, percent")
    p.add_argument("--out-dir", default=os.path.join(REPO, "benchmarks", "results"))
    p.add_argument("--runs-dir", default=os.path.join(REPO, "runs", "tune_cmu"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--recovers", default=None, help="passed to tune's --recovers (default: tune's own default)")
    return p.parse_args(argv)


def write_clips(source: str, indices: List[int], path: str) -> int:
    """A motion file of the given clips of ``source``, without a split (so every clip is scored)."""
    mocap = load_cmu(source)
    clips = [mocap.clip(i) for i in indices]
    with np.load(source) as data:
        extra = {k: data[k] for k in ("fps", "joint_names", "parents", "licence") if k in data.files}
        names = data["clip_names"][indices]
    with atomic_write(path) as tmp:
        np.savez(tmp, positions=np.concatenate(clips), clip_offsets=np.cumsum([0] + [len(c) for c in clips]),
                 clip_names=names, **extra)
    return sum(len(c) for c in clips)


def scored(path: str, frames: int, seed: int, cameras: int) -> PoseWindowDataset:
    """Every clip of ``path`` through the test cameras the ``tune`` and ``train`` commands use (seed + 1)."""
    return PoseWindowDataset(project_clips(load_cmu(path).clips(None), cameras, seed + 1), frames, stride=frames)


def run_tune(args, acc, val_path: str, budget: float) -> Dict[str, Any]:
    """One ``tune`` command on the validation file, as a user would run it; returns its time, status and choice."""
    out = os.path.join(args.runs_dir, f"tune_{budget:g}")
    command = ["-m", "hourglass_tokenizer", "tune", "--data", val_path, "--model", "mixste",
               "--config", "small", "--frames", str(acc.frames), "--model-arg", f"embed_dim={acc.embed_dim}",
               "--model-arg", f"depth={acc.depth}", "--model-arg", f"num_heads={acc.heads}",
               "--model-arg", f"mlp_hidden_dim={acc.mlp_hidden}", "--cameras", str(acc.cameras),
               "--seed", str(args.seed), "--init-from", args.baseline, "--max-increase", f"{budget:g}",
               "--out", out, "--overwrite", "--threads", str(args.threads), "--no-progress"]
    if args.recovers:
        command += ["--recovers", args.recovers]
    started = time.time()
    run = subprocess.run([sys.executable] + command, cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    seconds = time.time() - started
    print(run.stdout + run.stderr, flush=True)
    if run.returncode not in (0, 1):
        raise SystemExit(f"tune failed with status {run.returncode}")
    shown = ["python"] + [os.path.basename(c) if os.path.isabs(c) else c for c in command]
    with open(os.path.join(out, "tune.csv")) as fh:
        rows = sum(1 for _ in fh) - 1
    chosen = json.load(open(os.path.join(out, "hot.json"))) if run.returncode == 0 else None
    return {"budget": budget, "seconds": seconds, "status": run.returncode, "rows": rows, "chosen": chosen,
            "command": " ".join(shown), "out": out}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    acc = accuracy_cmu.parse_args(["--data", args.data, "--baseline", args.baseline, "--seed", str(args.seed)])
    os.makedirs(args.runs_dir, exist_ok=True)
    test = load_cmu(args.data).clip_indices("test")
    val_path, held_path = (os.path.join(args.runs_dir, n) for n in ("validation.npz", "held_out.npz"))
    val_frames = write_clips(args.data, test[0::2], val_path)
    held_frames = write_clips(args.data, test[1::2], held_path)
    runs = [run_tune(args, acc, val_path, float(b)) for b in args.max_increase.split(",")]

    state = accuracy_cmu.baseline_state(acc, None, None)
    sets = {"validation": scored(val_path, acc.frames, args.seed, acc.cameras),
            "held out": scored(held_path, acc.frames, args.seed, acc.cameras),
            "whole test split": accuracy_cmu.make_cmu_datasets(args.data, acc.frames, cameras=acc.cameras,
                                                               seed=args.seed)[1]}
    base = {name: evaluate(accuracy_cmu.pretrained(acc, state), data) for name, data in sets.items()}
    lines = ["# `tune` on the CMU baseline", "",
             f"Baseline `{os.path.basename(args.baseline)}` (MixSTE T={acc.frames}, width {acc.embed_dim}, depth "
             f"{acc.depth}): {base['whole test split']['mpjpe']:.2f} mm on the whole test split. `tune` scored the "
             f"validation clips, every other test clip of the CMU split ({val_frames} frames x {acc.cameras} "
             f"virtual cameras = {base['validation']['frames']} frames), in a subprocess with one thread as a user "
             "would run it (on a 2-core machine shared with other jobs), e.g.:", "", "```", runs[0]["command"], "```",
             "", f"The held-out clips are the other {len(test) - len(test[0::2])} test clips ({held_frames} frames x "
             f"{acc.cameras} cameras = {base['held out']['frames']} frames), among them the long jumping and "
             "window-washing clips; `tune` never saw them. Change: MPJPE of the chosen setting against the unwrapped "
             "baseline on the same frames.", "",
             "| budget | time | settings scored | chosen | MACs ratio | validation | held out | whole test split | "
             f"held out within budget + {args.slack:g} % |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if r["chosen"] is None:
            lines.append(f"| +{r['budget']:g} % | {r['seconds'] / 60:.1f} min | {r['rows']} | none (exit 1) "
                         "| | | | | |")
            continue
        changes, macs = {}, None
        for name, data in sets.items():
            hot = wrap_with_hot(accuracy_cmu.pretrained(acc, state), **r["chosen"])
            changes[name] = 100 * (evaluate(hot, data)["mpjpe"] / base[name]["mpjpe"] - 1)
            macs = accuracy_cmu.macs(hot, acc.frames) / accuracy_cmu.macs(accuracy_cmu.pretrained(acc, state),
                                                                          acc.frames)
        c = r["chosen"]
        ok = "yes" if changes["held out"] <= r["budget"] + args.slack else "no"
        lines.append(f"| +{r['budget']:g} % | {r['seconds'] / 60:.1f} min | {r['rows']} | ({c['prune_block']}, "
                     f"{c['tokens']}) {c['selector']}, {c['recover']} | {macs:.3f} | {changes['validation']:+.2f} % | "
                     f"{changes['held out']:+.2f} % | {changes['whole test split']:+.2f} % | {ok} |")
    first = runs[0]
    lines += ["", f"The table and the plot of the +{first['budget']:g} % run: `tune_cmu.csv`, `tune_cmu.png`.", "",
              "## Acknowledgement", "", CMU_ACKNOWLEDGEMENT, ""]
    os.makedirs(args.out_dir, exist_ok=True)
    with atomic_write(os.path.join(args.out_dir, "tune_cmu.md")) as tmp, open(tmp, "w") as fh:
        fh.write("\n".join(lines))
    for name, target in (("tune.csv", "tune_cmu.csv"), ("tune.png", "tune_cmu.png")):
        if os.path.exists(os.path.join(first["out"], name)):
            shutil.copyfile(os.path.join(first["out"], name), os.path.join(args.out_dir, target))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
