"""Speed of the ``predict`` command against calling the model on the same windows in a loop.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/predict_speed.py --overwrite                  # 10,000 frames, ~10 min
    OMP_NUM_THREADS=1 python benchmarks/predict_speed.py --frames 600 --model-config small --out /tmp/p.csv

The model is the zoo's MixSTE-243 (paper configuration, dim 512, depth 8) wrapped with HoT at the
paper's setting (3, 81), saved with ``save_checkpoint`` (random weights: speed does not depend on
them). The input is an MMPose-layout COCO-17 JSON of ``--frames`` frames, one person per frame.

Two things are timed, interleaved (one of each per round, the order alternating from round to round,
rounds repeated, medians reported):

* **predict**: ``python -m hourglass_tokenizer predict --checkpoint ... --keypoints video.json -o ...``
  in this process, from the command line to the written ``.npz``: reading the JSON, mapping and
  normalising the joints, rebuilding the model from the checkpoint, the windows, writing the output.
* **loop**: the bare forward passes over the same windows (the same tiling, edge padding and
  batch size), prepared beforehand, under ``no_grad``: what a hand-written loop costs at best.

``speed ratio = loop time / predict time``; 1.0 means no overhead. Reported as the ratio of the medians
and as the median of each round's own ratio (the two runs of a round share the machine's load, so
that one is steadier on a busy machine), for wall-clock time and for this process's CPU time
(``time.process_time``: with one thread it leaves out the time other jobs take the core, the main
noise on a shared machine). Also reported: the parts of the overhead measured alone
(reading the JSON, loading the checkpoint: rebuilding and wrapping the model, whose probe runs one
forward pass) and the 1-minute load average before the first round. Writes a CSV and a Markdown table.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from hourglass_tokenizer import wrap_with_hot  # noqa: E402
from hourglass_tokenizer.data.keypoints import network_input, read_keypoints  # noqa: E402
from hourglass_tokenizer.files import atomic_write, check_output_file  # noqa: E402
from hourglass_tokenizer.models import build_model  # noqa: E402
from hourglass_tokenizer.training.checkpoints import load_model, save_checkpoint  # noqa: E402
from hourglass_tokenizer.training.inference import model_num_frames  # noqa: E402
from hourglass_tokenizer.training.predict_cli import main as predict_main  # noqa: E402

WIDTH, HEIGHT = 1920, 1080


def write_coco_json(path: str, frames: int, seed: int = 0) -> None:
    """An MMPose demo file: one walking-ish person (a random walk of a COCO-17 skeleton) per frame."""
    rng = np.random.default_rng(seed)
    base = np.array([WIDTH / 2, HEIGHT / 2]) + 120 * rng.standard_normal((17, 2))
    drift = np.cumsum(rng.standard_normal((frames, 1, 2)), axis=0)
    keypoints = base + drift + 2 * rng.standard_normal((frames, 17, 2))
    scores = rng.uniform(0.5, 1.0, (frames, 17))
    info = []
    for t in range(frames):
        lo, hi = keypoints[t].min(axis=0) - 20, keypoints[t].max(axis=0) + 20
        info.append({"frame_id": t + 1, "instances": [{
            "keypoints": np.round(keypoints[t], 2).tolist(), "keypoint_scores": np.round(scores[t], 3).tolist(),
            "bbox": [[*lo.round(1).tolist(), *hi.round(1).tolist()]], "bbox_score": 0.99}]})
    with open(path, "w") as fp:
        json.dump({"meta_info": {"dataset_name": "coco"}, "instance_info": info}, fp)


def seq2seq_starts(n: int, t: int) -> list:
    """The tiling ``predict`` uses: [0, t), [t, 2t), ..., the last window ending at the last frame."""
    if n <= t:
        return [-((t - n) // 2)]
    starts = list(range(0, n - t + 1, t))
    return starts + [n - t] if starts[-1] + t < n else starts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000, help="frames in the JSON (default 10,000)")
    parser.add_argument("--model-config", default="paper", help="zoo MixSTE configuration (default: paper, 243 frames)")
    parser.add_argument("--prune-block", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=81)
    parser.add_argument("--batch-size", type=int, default=4, help="windows per forward, in both (predict's default)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "predict_speed.csv"))
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results")
    args = parser.parse_args(argv)
    markdown = os.path.splitext(args.out)[0] + ".md"
    for path in (args.out, markdown):
        check_output_file(path, overwrite=args.overwrite)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = os.path.join(folder, "mixste_hot.pt")
        keypoints = os.path.join(folder, "video.json")
        output = os.path.join(folder, "poses.npz")
        model = wrap_with_hot(build_model("mixste", args.model_config), prune_block=args.prune_block,
                              tokens=args.tokens)
        save_checkpoint(checkpoint, model)
        write_coco_json(keypoints, args.frames)
        del model

        started = time.perf_counter()
        track = read_keypoints(keypoints)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        model = load_model(checkpoint)
        load_s = time.perf_counter() - started
        t = model_num_frames(model)
        x = network_input(track, WIDTH, HEIGHT, 2)
        starts = seq2seq_starts(len(x), t)
        windows = torch.from_numpy(np.stack([x[np.clip(np.arange(s, s + t), 0, len(x) - 1)] for s in starts]))

        def loop() -> tuple:
            begin, begin_cpu = time.perf_counter(), time.process_time()
            with torch.no_grad():
                for i in range(0, len(windows), args.batch_size):
                    model(windows[i:i + args.batch_size])
            return time.perf_counter() - begin, time.process_time() - begin_cpu

        def command() -> tuple:
            begin, begin_cpu = time.perf_counter(), time.process_time()
            code = predict_main(["--checkpoint", checkpoint, "--keypoints", keypoints, "-o", output, "--width",
                                 str(WIDTH), "--height", str(HEIGHT), "--batch-size", str(args.batch_size),
                                 "--no-progress", "--overwrite"])
            if code:
                raise SystemExit(f"predict failed with status {code}")
            return time.perf_counter() - begin, time.process_time() - begin_cpu

        times = {"predict": [], "loop": [], "predict_cpu": [], "loop_cpu": []}
        load_average = os.getloadavg()[0]
        for round_ in range(args.repeats):
            for name in (("predict", "loop") if round_ % 2 == 0 else ("loop", "predict")):
                wall, cpu = command() if name == "predict" else loop()
                times[name].append(wall)
                times[name + "_cpu"].append(cpu)
            print(f"round {round_ + 1}/{args.repeats}: predict {times['predict'][-1]:.1f} s "
                  f"(CPU {times['predict_cpu'][-1]:.1f} s), loop {times['loop'][-1]:.1f} s "
                  f"(CPU {times['loop_cpu'][-1]:.1f} s)", file=sys.stderr)

    predict_s, loop_s = statistics.median(times["predict"]), statistics.median(times["loop"])
    round_ratio = statistics.median(b / a for a, b in zip(times["predict"], times["loop"]))
    predict_cpu, loop_cpu = statistics.median(times["predict_cpu"]), statistics.median(times["loop_cpu"])
    round_ratio_cpu = statistics.median(b / a for a, b in zip(times["predict_cpu"], times["loop_cpu"]))
    row = {"frames": args.frames, "windows": len(starts), "window": t, "model": f"MixSTE {args.model_config}",
           "hot": f"({args.prune_block}, {args.tokens})", "batch_size": args.batch_size, "threads": args.threads,
           "repeats": args.repeats, "predict_s": round(predict_s, 2), "loop_s": round(loop_s, 2),
           "speed_ratio": round(loop_s / predict_s, 3), "median_round_ratio": round(round_ratio, 3),
           "predict_cpu_s": round(predict_cpu, 2), "loop_cpu_s": round(loop_cpu, 2),
           "speed_ratio_cpu": round(loop_cpu / predict_cpu, 3), "median_round_ratio_cpu": round(round_ratio_cpu, 3),
           "read_json_s": round(read_s, 2),
           "load_checkpoint_s": round(load_s, 2), "load_average": round(load_average, 2), "cpus": os.cpu_count(),
           "torch": torch.__version__, "machine": platform.machine(),
           "predict_runs_s": " ".join(f"{v:.2f}" for v in times["predict"]),
           "loop_runs_s": " ".join(f"{v:.2f}" for v in times["loop"]),
           "predict_cpu_runs_s": " ".join(f"{v:.2f}" for v in times["predict_cpu"]),
           "loop_cpu_runs_s": " ".join(f"{v:.2f}" for v in times["loop_cpu"])}
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    with atomic_write(args.out) as tmp, open(tmp, "w", newline="") as fp:
        fp.write(text.getvalue())
    table = (f"| time | predict (s) | loop (s) | speed ratio (loop / predict) | median of round ratios |\n"
             f"|---|---|---|---|---|\n"
             f"| wall clock | {predict_s:.1f} | {loop_s:.1f} | {loop_s / predict_s:.3f} | {round_ratio:.3f} |\n"
             f"| CPU (this process) | {predict_cpu:.1f} | {loop_cpu:.1f} | {loop_cpu / predict_cpu:.3f} | "
             f"{round_ratio_cpu:.3f} |\n\n"
             f"{args.frames} frames, {len(starts)} windows of {t}, batch {args.batch_size}, {args.threads} thread(s); "
             f"measured alone: reading the JSON {read_s:.2f} s, loading the checkpoint {load_s:.2f} s; load average "
             f"{load_average:.1f} on {os.cpu_count()} CPUs at the start.\n")
    with atomic_write(markdown) as tmp, open(tmp, "w") as fp:
        fp.write(f"# predict speed: MixSTE {args.model_config} HoT ({args.prune_block}, {args.tokens}), "
                 f"medians of {args.repeats} interleaved rounds\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
