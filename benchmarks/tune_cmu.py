"""``tune`` on the CMU baseline of accuracy_cmu.py: tuned on one half of the test clips, checked on the other.

The test split of the CMU motion file is cut into two motion files of whole clips: a validation file
(every other test clip, counting from the first; about 2,000 frames, 4 virtual cameras each) that
``python -m hourglass_tokenizer tune`` scores, and a held-out file (the other clips, including the
long jumping and window-washing clips) that it never sees. The command runs as a user would run it,
in a subprocess with one thread, and is timed; then the chosen setting is scored on the held-out
clips and on the whole test split, against the unwrapped baseline on the same frames.

    python benchmarks/tune_cmu.py --data motion.npz --baseline runs/strong_t27/last.pt

Writes ``tune_cmu.md``, ``tune_cmu.csv`` (the command's table) and ``tune_cmu.png`` (its plot) to
``--out-dir``; the command's own output folder is under ``--runs-dir``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import List, Optional, Sequence

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
    p.add_argument("--max-increase", type=float, default=1.0, help="the budget given to tune, percent")
    p.add_argument("--slack", type=float, default=0.25, help="allowed excess on the held-out clips, percent")
    p.add_argument("--out-dir", default=os.path.join(REPO, "benchmarks", "results"))
    p.add_argument("--runs-dir", default=os.path.join(REPO, "runs", "tune_cmu"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    acc = accuracy_cmu.parse_args(["--data", args.data, "--baseline", args.baseline, "--seed", str(args.seed)])
    os.makedirs(args.runs_dir, exist_ok=True)
    mocap = load_cmu(args.data)
    test = mocap.clip_indices("test")
    val_path, held_path = (os.path.join(args.runs_dir, n) for n in ("validation.npz", "held_out.npz"))
    val_frames = write_clips(args.data, test[0::2], val_path)
    held_frames = write_clips(args.data, test[1::2], held_path)
    out = os.path.join(args.runs_dir, f"tune_{args.max_increase:g}")
    command = [sys.executable, "-m", "hourglass_tokenizer", "tune", "--data", val_path, "--model", "mixste",
               "--config", "small", "--frames", str(acc.frames), "--model-arg", f"embed_dim={acc.embed_dim}",
               "--model-arg", f"depth={acc.depth}", "--model-arg", f"num_heads={acc.heads}",
               "--model-arg", f"mlp_hidden_dim={acc.mlp_hidden}", "--cameras", str(acc.cameras),
               "--seed", str(args.seed), "--init-from", args.baseline, "--max-increase", str(args.max_increase),
               "--out", out, "--overwrite", "--threads", str(args.threads), "--no-progress"]
    print(" ".join(command), flush=True)
    started = time.time()
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    seconds = time.time() - started
    print(run.stdout + run.stderr, flush=True)
    if run.returncode not in (0, 1):
        return run.returncode
    chosen = json.load(open(os.path.join(out, "hot.json"))) if run.returncode == 0 else None

    state = accuracy_cmu.baseline_state(acc, None, None)
    lines = ["# `tune` on the CMU baseline", "",
             f"Baseline `{os.path.basename(args.baseline)}` (MixSTE T={acc.frames}, width {acc.embed_dim}, depth "
             f"{acc.depth}). `tune` scored the validation clips (every other test clip of the CMU split, "
             f"{val_frames} frames x {acc.cameras} virtual cameras = {val_frames * acc.cameras} frames) with a budget "
             f"of +{args.max_increase:g} %, one thread, as a user would run it:", "", "```",
             " ".join(os.path.relpath(c, REPO) if os.path.isabs(c) and c.startswith(REPO) else c for c in command[1:]),
             "```", "", f"It took **{seconds / 60:.1f} min** and scored "
             f"{sum(1 for _ in open(os.path.join(out, 'tune.csv'))) - 1} settings.", ""]
    if chosen is None:
        lines += ["No setting met the budget.", ""]
    else:
        lines += [f"Chosen: `{json.dumps(chosen)}`.", "",
                  "| clips | frames | baseline mm | chosen mm | change | within budget + slack |", "|---|---|---|---|---|---|"]
        for label, path, n in (("validation (tuned on)", val_path, val_frames),
                               ("held out (never seen by tune)", held_path, held_frames),
                               ("whole test split", None, None)):
            data = scored(path, acc.frames, args.seed, acc.cameras) if path else accuracy_cmu.make_cmu_datasets(
                args.data, acc.frames, cameras=acc.cameras, seed=args.seed)[1]
            base = evaluate(accuracy_cmu.pretrained(acc, state), data)
            hot = evaluate(wrap_with_hot(accuracy_cmu.pretrained(acc, state), **chosen), data)
            change = 100 * (hot["mpjpe"] / base["mpjpe"] - 1)
            ok = "yes" if change <= args.max_increase + args.slack else "no"
            lines.append(f"| {label} | {base['frames']} | {base['mpjpe']:.2f} | {hot['mpjpe']:.2f} | {change:+.2f} % "
                         f"| {ok} (+{args.max_increase + args.slack:g} %) |")
        lines.append("")
    lines += ["The command's table: `tune_cmu.csv`; its plot: `tune_cmu.png`.", "", "## Acknowledgement", "",
              CMU_ACKNOWLEDGEMENT, ""]
    os.makedirs(args.out_dir, exist_ok=True)
    with atomic_write(os.path.join(args.out_dir, "tune_cmu.md")) as tmp, open(tmp, "w") as fh:
        fh.write("\n".join(lines))
    for name, target in (("tune.csv", "tune_cmu.csv"), ("tune.png", "tune_cmu.png")):
        if os.path.exists(os.path.join(out, name)):
            shutil.copyfile(os.path.join(out, name), os.path.join(args.out_dir, target))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
