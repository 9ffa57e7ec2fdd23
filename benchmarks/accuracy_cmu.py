"""Accuracy benchmark on real motion capture: MixSTE vs HoT on the shared CMU data, on this CPU.

2D inputs come from 4 seeded virtual cameras per clip (Human3.6M-like intrinsics, subject about 5 m
away); models are trained on the train split and scored on the test split (MPJPE, P-MPJPE in mm,
root-relative camera coordinates). Every row uses the same seed, epochs and learning-rate schedule:

* ``baseline``: MixSTE at a CPU-sized config, trained from scratch;
* ``baseline-ft``: the baseline trained for the same schedule once more, a control for the
  fine-tuned rows, which also see the schedule twice (pretraining, then fine-tuning);
* ``hot-scratch``: the same MixSTE wrapped with HoT (DPC-kNN, TRA) and trained from scratch;
* ``hot-ft``: HoT fine-tuned from the trained baseline (how users adopt it), and a ``tokens`` sweep;
* ``uniform-ft`` / ``random-ft``: the same with uniform or random frame selection instead of DPC-kNN;
* ``tpc-ft``: TPC only (``recover=False``, seq2frame: one forward pass per output frame), fine-tuned.
* ``*-xpos``: TRA's ``x_token`` starts from the baseline's temporal position embedding instead of
  zeros (``x_token_init="position"``), the recommended way to fine-tune; the selector comparison
  and the ``tokens`` sweep use it too.
  ``tokens = T`` is no pruning at all: that sweep point is ``baseline-ft``, the baseline trained as long
  (keeping every frame saves nothing).

All rows are scored on the same frames (every ``--eval-frame-stride``-th frame of each test sequence)
so that the seq2frame row, which needs one forward pass per frame, stays affordable.

    python benchmarks/accuracy_cmu.py                 # the default run (about half an hour on 2 cores)
    python benchmarks/accuracy_cmu.py --quick --out-dir /tmp/acc   # a one-minute smoke run

Writes ``accuracy_cmu.csv``, ``accuracy_cmu.md`` and ``accuracy_cmu.png`` to ``--out-dir``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, REPO)

from hourglass_tokenizer.wrapping import reset_x_token, wrap_with_hot  # noqa: E402
from hourglass_tokenizer.data.readers import CMU_ACKNOWLEDGEMENT  # noqa: E402
from hourglass_tokenizer.flops import count_flops, count_params  # noqa: E402
from hourglass_tokenizer.models import build_model  # noqa: E402
from hourglass_tokenizer.training import TrainConfig, load_pretrained, make_cmu_datasets, train  # noqa: E402

DEFAULT_DATA = os.path.join(REPO, "..", "shared", "data", "cmu_mocap_h36m17_50fps.npz")
DEFAULT_OUT = os.path.join(REPO, "benchmarks", "results")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--out-dir", default=DEFAULT_OUT)
    p.add_argument("--runs-dir", default=os.path.join(REPO, "runs", "accuracy_cmu"),
                   help="checkpoints (ignored by git)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=81)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mlp-hidden", type=int, default=128)
    p.add_argument("--prune-block", type=int, default=2)
    p.add_argument("--tokens", type=int, default=27)
    p.add_argument("--sweep", default="9,27,41,81", help="tokens of the fine-tuned HoT sweep")
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--train-stride", type=int, default=9, help="frames between training window centres")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps-per-epoch", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-decay", type=float, default=0.85)
    p.add_argument("--eval-frame-stride", type=int, default=8)
    p.add_argument("--max-train-clips", type=int, default=None)
    p.add_argument("--max-test-clips", type=int, default=None)
    p.add_argument("--latency-runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 by default: on a 2-core machine shared with other jobs, two threads "
                        "ran these small models about 5x slower than one, measured)")
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration (not for results)")
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.embed_dim, args.depth, args.heads, args.mlp_hidden = 27, 32, 3, 2, 64
        args.prune_block, args.tokens, args.sweep = 1, 9, "3,9,27"
        args.epochs, args.steps_per_epoch, args.batch_size = 1, 3, 8
        args.max_train_clips, args.max_test_clips, args.latency_runs = 3, 2, 3
    return args


def make_model(args: argparse.Namespace) -> torch.nn.Module:
    # Same seed for every row: HoT rows start from the baseline's initial weights.
    torch.manual_seed(args.seed)
    return build_model("mixste", "small", num_frames=args.frames, embed_dim=args.embed_dim, depth=args.depth,
                       num_heads=args.heads, mlp_hidden_dim=args.mlp_hidden)


def latency_ms(models: Sequence[torch.nn.Module], frames: int, runs: int) -> List[float]:
    """Median wall time (ms) of one forward pass of each model on a (1, T, 17, 2) window, eval mode,
    no grad. The models take turns, run by run, so that load from other jobs on the machine falls on
    all of them alike rather than on whichever happened to be timed at a busy moment."""
    x = torch.randn(1, frames, 17, 2, generator=torch.Generator().manual_seed(0))
    times: List[List[float]] = [[] for _ in models]
    with torch.no_grad():
        for model in models:
            model.eval()
            for _ in range(3):  # warm-up
                model(x)
        for _ in range(runs):
            for i, model in enumerate(models):
                start = time.perf_counter()
                model(x)
                times[i].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


def run_row(name: str, args: argparse.Namespace, train_set, test_set, *, hot: Optional[Dict[str, Any]] = None,
            init: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, Any]:
    model = make_model(args)
    if hot is not None:
        wrap_with_hot(model, hot["prune_block"], hot["tokens"], recover=hot.get("recover", True),
                      selector=hot.get("selector", "dpc_knn"))
    if init is not None:
        load_pretrained(model, init)
    if hot is not None and hot.get("x_token_from"):
        # TRA's queries start as zeros, so every recovered frame starts identical; starting them from
        # the pretrained temporal position embedding gives each frame its own query.
        reset_x_token(model, "position")
    config = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                         lr=args.lr, lr_decay=args.lr_decay, eval_every=args.epochs,
                         eval_frame_stride=args.eval_frame_stride, out_dir=os.path.join(args.runs_dir, name),
                         seed=args.seed, progress=False)
    started = time.time()
    history = train(model, train_set, test_set, config)
    seconds = time.time() - started
    final = history[-1]
    example = torch.zeros(1, args.frames, 17, 2)
    macs = count_flops(model, example)
    seq2frame = hot is not None and not hot.get("recover", True)
    row = {
        "row": name,
        "selector": hot.get("selector", "dpc_knn") if hot else "-",
        "prune_block": hot["prune_block"] if hot else "-",
        "tokens": hot["tokens"] if hot else args.frames,
        "mode": "seq2frame" if seq2frame else "seq2seq",
        "init": ("baseline" if init is not None else "scratch")
        + (f", x_token={hot['x_token_from']}" if hot and hot.get("x_token_from") else ""),
        "params": count_params(model),
        "gmacs_per_pass": macs / 1e9,
        "gmacs_per_frame": macs / 1e9 / (1 if seq2frame else args.frames),
        "mpjpe_mm": final["mpjpe"],
        "p_mpjpe_mm": final["p_mpjpe"],
        "eval_frames": final["frames"],
        "train_s": seconds,
        "model": model,
    }
    print(f"[{time.strftime('%H:%M:%S')}] {name}: MPJPE {row['mpjpe_mm']:.1f} mm, P-MPJPE {row['p_mpjpe_mm']:.1f} mm, "
          f"{row['gmacs_per_pass']:.3f} GMACs/pass, trained and scored in {seconds:.0f} s", flush=True)
    return row


COLUMNS = ["row", "mode", "init", "selector", "prune_block", "tokens", "params", "gmacs_per_pass",
           "gmacs_per_frame", "macs_ratio", "latency_ms_per_pass", "latency_ratio", "mpjpe_mm", "p_mpjpe_mm",
           "mpjpe_vs_baseline_pct", "mpjpe_vs_control_pct", "eval_frames", "train_s"]


def write_results(rows: List[Dict[str, Any]], args: argparse.Namespace, wall_s: float) -> None:
    os.makedirs(args.out_dir, exist_ok=True)
    base = next(r for r in rows if r["row"] == "baseline")
    # The fair reference of a fine-tuned row is the baseline trained for as long (baseline-ft).
    control_ft = next((r for r in rows if r["row"] == "baseline-ft"), base)
    for r in rows:
        control = control_ft if r["init"].startswith("baseline") else base
        r["macs_ratio"] = r["gmacs_per_pass"] / base["gmacs_per_pass"]
        r["latency_ratio"] = r["latency_ms_per_pass"] / base["latency_ms_per_pass"]
        r["mpjpe_vs_baseline_pct"] = 100 * (r["mpjpe_mm"] / base["mpjpe_mm"] - 1)
        r["mpjpe_vs_control_pct"] = 100 * (r["mpjpe_mm"] / control["mpjpe_mm"] - 1)
    with open(os.path.join(args.out_dir, "accuracy_cmu.json"), "w") as fh:
        json.dump({"args": {k: v for k, v in vars(args).items() if k not in ("out_dir", "runs_dir", "data")},
                   "data": os.path.basename(args.data), "wall_s": wall_s, "torch": torch.__version__,
                   "finished_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}, fh, indent=1)

    def fmt(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    with open(os.path.join(args.out_dir, "accuracy_cmu.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([fmt(r[c]) for c in COLUMNS])

    header = ["row", "mode", "init", "selector", "prune", "tokens", "GMACs/pass", "GMACs/frame", "MACs ratio",
              "latency ms/pass", "MPJPE mm", "P-MPJPE mm", "MPJPE vs baseline", "MPJPE vs control"]
    lines = ["# Accuracy on CMU motion capture (MixSTE vs HoT, CPU-sized)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["row"], r["mode"], r["init"], str(r["selector"]), str(r["prune_block"]), str(r["tokens"]),
            f"{r['gmacs_per_pass']:.3f}", f"{r['gmacs_per_frame']:.4f}", f"{r['macs_ratio']:.3f}",
            f"{r['latency_ms_per_pass']:.1f}", f"{r['mpjpe_mm']:.1f}", f"{r['p_mpjpe_mm']:.1f}",
            f"{r['mpjpe_vs_baseline_pct']:+.1f}%", f"{r['mpjpe_vs_control_pct']:+.1f}%"]) + " |")
    lines += ["", "\"MPJPE vs control\" compares each row with the baseline trained for as long: `baseline` "
              "for rows trained from scratch, `baseline-ft` (the baseline trained for the schedule a second "
              "time) for rows fine-tuned from the baseline."]
    ft = next((r for r in rows if r["row"] == f"hot-ft-{args.tokens}"), None)
    verdict = []
    if ft is not None:
        within = ft["mpjpe_vs_baseline_pct"] <= 2.0
        cheap = ft["macs_ratio"] <= 0.60
        verdict.append(f"- Target \"fine-tuned HoT within 2% of the baseline MPJPE at <= 60% of its MACs\": "
                       f"MPJPE {ft['mpjpe_vs_baseline_pct']:+.1f}% ({'met' if within else 'not met'}), "
                       f"MACs ratio {ft['macs_ratio']:.3f} ({'met' if cheap else 'not met'}).")
        if control_ft is not base:
            verdict.append(f"- Against the equally long-trained control `baseline-ft` ({control_ft['mpjpe_mm']:.1f} mm): "
                           f"HoT fine-tuned is {ft['mpjpe_vs_control_pct']:+.1f}%.")
        xpos = next((r for r in rows if r["row"] == f"hot-ft-{args.tokens}-xpos"), None)
        if xpos is not None:
            verdict.append(f"- With TRA's `x_token` started from the pretrained temporal position embedding instead of "
                           f"zeros: {xpos['mpjpe_mm']:.1f} mm ({xpos['mpjpe_vs_baseline_pct']:+.1f}% vs the baseline, "
                           f"{xpos['mpjpe_vs_control_pct']:+.1f}% vs `baseline-ft`).")
            verdict.append(f"- Target with that recipe: MPJPE {xpos['mpjpe_vs_baseline_pct']:+.1f}% vs the baseline "
                           f"({'met' if xpos['mpjpe_vs_baseline_pct'] <= 2.0 else 'not met'}), "
                           f"{xpos['mpjpe_vs_control_pct']:+.1f}% vs `baseline-ft` "
                           f"({'met' if xpos['mpjpe_vs_control_pct'] <= 2.0 else 'not met'}).")
        for suffix, ours in (("", ft), ("-xpos", xpos)):
            for sel in ("uniform", "random"):
                other = next((r for r in rows if r["row"] == f"{sel}-ft-{args.tokens}{suffix}"), None)
                if other is not None and ours is not None:
                    better = ours["mpjpe_mm"] < other["mpjpe_mm"]
                    verdict.append(f"- DPC-kNN vs {sel} selection at {args.tokens} tokens, x_token "
                                   f"{'from the position embedding' if suffix else 'zeros'}: {ours['mpjpe_mm']:.1f} vs "
                                   f"{other['mpjpe_mm']:.1f} mm ({'DPC-kNN better' if better else 'DPC-kNN not better'}).")
    tpc = next((r for r in rows if r["mode"] == "seq2frame"), None)
    scratch = next((r for r in rows if r["row"] == "hot-scratch"), None)
    if scratch is not None:
        verdict.append(f"- HoT trained from scratch: {scratch['mpjpe_mm']:.1f} mm ({scratch['mpjpe_vs_baseline_pct']:+.1f}% "
                       f"vs the baseline) at {scratch['macs_ratio']:.2f} of its MACs and {scratch['latency_ratio']:.2f} "
                       "of its latency.")
    if tpc is not None:
        verdict.append(f"- TPC only (seq2frame): {tpc['mpjpe_mm']:.1f} mm ({tpc['mpjpe_vs_control_pct']:+.1f}% vs "
                       f"`baseline-ft`), but one forward pass gives one frame: "
                       f"{tpc['gmacs_per_frame'] / base['gmacs_per_frame']:.0f}x the baseline's MACs per output frame.")
    lines += ["", "## Verdict", ""] + verdict
    lines += ["", "## Setup", "",
              f"- Data: `{os.path.basename(args.data)}` (shared CMU mocap, 17-joint Human3.6M layout, 50 fps); "
              f"train split for training, test split for scoring; 2D inputs from {args.cameras} seeded virtual "
              "cameras per clip (focal ~1145 px, 1000x1000 image, subject ~5 m away, no 2D noise), "
              "normalised screen coordinates; targets root-relative camera-frame 3D.",
              f"- Model: MixSTE, T={args.frames}, embed_dim={args.embed_dim}, depth={args.depth}, heads={args.heads}, "
              f"MLP hidden {args.mlp_hidden}. HoT: prune_block={args.prune_block}, tokens={args.tokens} unless the "
              "row says otherwise; `tokens=T` is no pruning: in the fine-tuned sweep that point is `baseline-ft`.",
              f"- Training (every row): {args.epochs} epochs x {args.steps_per_epoch} steps of {args.batch_size} "
              f"windows (window centres every {args.train_stride} frames, random subset per epoch, flip "
              f"augmentation), AdamW lr {args.lr} decayed x{args.lr_decay} per epoch, weight decay 0.01, gradient "
              "clipping at norm 1, MPJPE loss (seq2seq: all frames; seq2frame: centre frame). Fine-tuned rows start "
              "from the trained baseline (`load_pretrained`: only HoT's keys are new) and train for the same "
              "epochs and schedule again.",
              f"- Scoring: MPJPE (protocol 1) and P-MPJPE (protocol 2) in mm on every {args.eval_frame_stride}th "
              f"frame of each test sequence ({rows[0]['eval_frames']} frames, the same for every row), no "
              "test-time flip, model after the last epoch.",
              "- MACs: `hourglass_tokenizer.flops.count_flops` (fvcore, attention matmuls included) of one "
              f"forward pass on a (1, {args.frames}, 17, 2) window; per frame = per pass / T for seq2seq, per pass "
              "for seq2frame (one output frame per pass). Latency: median of "
              f"{args.latency_runs} forward passes of one window, batch 1, {args.threads} CPU threads, on a "
              "machine shared with other jobs (expect noise).",
              f"- Seed {args.seed} for model initialisation (the same initial weights for every row), data order, "
              f"flip augmentation and cameras (training cameras seed {args.seed}, test cameras seed "
              f"{args.seed + 1}).",
              f"- Wall time of the whole benchmark: {wall_s / 60:.1f} min on {platform.processor() or platform.machine()}, "
              f"torch {torch.__version__}, {args.threads} threads.",
              "- This is a short CPU-sized training run on small data: absolute errors are far above published "
              "Human3.6M figures, and differences of a few percent between rows are within run-to-run noise.",
              "", "## Acknowledgement", "", CMU_ACKNOWLEDGEMENT, ""]
    with open(os.path.join(args.out_dir, "accuracy_cmu.md"), "w") as fh:
        fh.write("\n".join(lines))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no PNG", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7.5, 5))
    styles = {"baseline-ft": ("gray", "s"), "baseline": ("k", "s"), "hot-scratch": ("tab:orange", "^"),
              "xpos": ("tab:cyan", "*"), "hot-ft": ("tab:blue", "o"), "uniform-ft": ("tab:green", "v"),
              "random-ft": ("tab:red", "D"), "tpc-ft": ("tab:purple", "P")}
    sweep = sorted((r for r in rows if r["row"].startswith("hot-ft-") and r["row"].endswith("-xpos")),
                   key=lambda r: r["gmacs_per_pass"])
    if sweep:  # tokens = T (no pruning) is the baseline fine-tuned as long: baseline-ft
        xs = [r["gmacs_per_pass"] for r in sweep] + [control_ft["gmacs_per_pass"]]
        ys = [r["mpjpe_mm"] for r in sweep] + [control_ft["mpjpe_mm"]]
        order = sorted(range(len(xs)), key=xs.__getitem__)
        ax.plot([xs[i] for i in order], [ys[i] for i in order], "-", color="tab:blue", alpha=0.4,
                label="HoT fine-tuned, tokens sweep")
    for r in rows:
        kind = "xpos" if r["row"].endswith("-xpos") else next((k for k in styles if r["row"].startswith(k)), "")
        color, marker = styles.get(kind, ("gray", "x"))
        ax.scatter(r["gmacs_per_pass"], r["mpjpe_mm"], color=color, marker=marker, s=60, zorder=3)
        ax.annotate(r["row"] + (" (seq2frame)" if r["mode"] == "seq2frame" else ""),
                    (r["gmacs_per_pass"], r["mpjpe_mm"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("GMACs per forward pass (one window of T=%d frames)" % args.frames)
    ax.set_ylabel("MPJPE (mm), CMU test split")
    ax.set_title("MixSTE vs HoT on CMU mocap (CPU-sized training)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.text(0.01, 0.01, "Data: mocap.cs.cmu.edu (NSF EIA-0196217)", fontsize=7, color="gray")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out_dir, "accuracy_cmu.png"), dpi=120)
    plt.close(fig)


XPOS = "Temporal_pos_embed"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    if not os.path.exists(args.data):
        print(f"data file not found: {args.data} (the shared CMU file lives in ../shared/data)", file=sys.stderr)
        return 2
    train_set, test_set = make_cmu_datasets(args.data, args.frames, cameras=args.cameras, seed=args.seed,
                                            train_stride=args.train_stride, flip=True,
                                            max_train_clips=args.max_train_clips, max_test_clips=args.max_test_clips)
    print(f"{len(train_set)} training windows, {len(test_set.sequences)} test sequences; "
          f"{args.epochs} x {args.steps_per_epoch} steps per row", flush=True)
    pb, tok = args.prune_block, args.tokens
    rows = [run_row("baseline", args, train_set, test_set)]
    baseline_state = {k: v.detach().clone() for k, v in rows[0]["model"].state_dict().items()}
    plan: List[tuple] = [
        # Control: fine-tuned rows get the schedule twice (pretraining + fine-tuning); so does this one.
        ("baseline-ft", None, baseline_state),
        ("hot-scratch", dict(prune_block=pb, tokens=tok), None),
        (f"hot-ft-{tok}", dict(prune_block=pb, tokens=tok), baseline_state),
        (f"uniform-ft-{tok}", dict(prune_block=pb, tokens=tok, selector="uniform"), baseline_state),
        (f"random-ft-{tok}", dict(prune_block=pb, tokens=tok, selector="random"), baseline_state),
        (f"tpc-ft-{tok}", dict(prune_block=pb, tokens=tok, recover=False), baseline_state),
        (f"hot-ft-{tok}-xpos", dict(prune_block=pb, tokens=tok, x_token_from=XPOS), baseline_state),
        (f"uniform-ft-{tok}-xpos", dict(prune_block=pb, tokens=tok, selector="uniform", x_token_from=XPOS),
         baseline_state),
        (f"random-ft-{tok}-xpos", dict(prune_block=pb, tokens=tok, selector="random", x_token_from=XPOS),
         baseline_state),
    ]
    # The tokens sweep uses the recommended fine-tuning recipe (x_token from the position embedding).
    for f in (int(s) for s in args.sweep.split(",") if s.strip()):
        if f != tok and f < args.frames:  # f == T is no pruning: the baseline-ft row
            plan.append((f"hot-ft-{f}-xpos", dict(prune_block=pb, tokens=f, x_token_from=XPOS), baseline_state))
    models = [rows[0]["model"]]
    for name, hot, init in plan:
        row = run_row(name, args, train_set, test_set, hot=hot, init=init)
        models.append(row.pop("model"))
        rows.append(row)
    for row, ms in zip(rows, latency_ms(models, args.frames, args.latency_runs)):
        row["latency_ms_per_pass"] = ms
    wall = time.time() - started
    write_results(rows, args, wall)
    print(f"benchmark wall time {wall / 60:.1f} min; results in {args.out_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
