"""Adopting HoT on a pretrained MixSTE, measured on real motion capture (the CMU split).

One strong baseline is trained once and cached; then

* **training-free** rows wrap it with no training at all and score every test frame: each recovery
  (``interpolate``, ``nearest``, untrained ``tra`` with zero and position-embedding queries, and the
  default ``tra+interpolate``) on a sweep of ``(prune_block, tokens)`` with each selector
  (``dpc_knn``, ``dpc_knn_coverage``, ``uniform``, ``random``);
* **fine-tuned** rows continue training the wrapped model for the same number of steps as a
  control, the baseline trained on unwrapped, with the same data order and learning rate; the test
  error is recorded along the way (the curve of MPJPE against steps), and distillation from the
  frozen baseline is swept.

2D inputs come from 4 seeded virtual cameras per clip (Human3.6M-like intrinsics); targets are
root-relative camera-frame 3D; MPJPE and P-MPJPE in mm on every frame of every test sequence.

    # the baseline (about 15 minutes on one CPU thread), then the benchmark (about an hour)
    python -m hourglass_tokenizer train --data motion.npz --model mixste --config small --frames 27 \\
        --model-arg embed_dim=64 --model-arg depth=4 --model-arg num_heads=4 --model-arg mlp_hidden_dim=128 \\
        --epochs 6 --batch-size 16 --threads 1 --seed 0 --out runs/strong_t27 --no-progress
    python benchmarks/accuracy_cmu.py --data motion.npz --baseline runs/strong_t27/last.pt
    python benchmarks/accuracy_cmu.py --data motion.npz --quick --out-dir /tmp/acc     # a one-minute smoke run

``motion.npz`` is the CMU split (83 training and 24 test clips of the action split of Li et al.,
CVPR 2018, at 50 fps) converted to the 17-joint layout; any motion file with a train/test split works.

Rows are cached as JSON under ``--runs-dir``: a second run only computes what is missing,
and ``--only NAME,...`` runs a subset (so two processes can share the rows). Writes
``accuracy_cmu_free.csv``, ``accuracy_cmu_finetune.csv``, ``accuracy_cmu.md`` and
``accuracy_cmu.png`` to ``--out-dir``.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, REPO)

from hourglass_tokenizer import wrap_with_hot  # noqa: E402
from hourglass_tokenizer.data.readers import CMU_ACKNOWLEDGEMENT  # noqa: E402
from hourglass_tokenizer.display import pyplot  # noqa: E402
from hourglass_tokenizer.bench.flops import count_flops  # noqa: E402
from hourglass_tokenizer.models import build_model  # noqa: E402
from hourglass_tokenizer.training import (DistillationLoss, TrainConfig, evaluate, load_checkpoint,  # noqa: E402
                                          load_pretrained, make_cmu_datasets, train)

DEFAULT_OUT = os.path.join(REPO, "benchmarks", "results")
SELECTORS = ("dpc_knn", "dpc_knn_coverage", "uniform", "random")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True,
                   help="the CMU split as a motion .npz (the layout 'python -m hourglass_tokenizer data bvh' writes; "
                        "see the README's Data section)")
    p.add_argument("--baseline", default=None,
                   help="checkpoint of the trained baseline (see the command above); without it the baseline is "
                        "trained here with --baseline-epochs and cached under --runs-dir")
    p.add_argument("--baseline-epochs", type=int, default=6)
    p.add_argument("--out-dir", default=DEFAULT_OUT)
    p.add_argument("--runs-dir", default=os.path.join(REPO, "runs", "accuracy_cmu"), help="caches (ignored by git)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=27)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mlp-hidden", type=int, default=128)
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--train-stride", type=int, default=9)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--settings", default="1:3,1:5,1:9,2:9,2:13",
                   help="training-free (prune_block:tokens) sweep")
    p.add_argument("--finetune-setting", default="1:9", help="(prune_block:tokens) of the fine-tuned rows")
    p.add_argument("--two-stage", default="1+2:15+7,1+2:13+5",
                   help="pruning at two depths, 'n1+n2:f1+f2' (H2OT-style): training-free rows, and the first one "
                        "fine-tuned")
    p.add_argument("--finetune-steps", type=int, default=600)
    p.add_argument("--eval-every-steps", type=int, default=100)
    p.add_argument("--finetune-lr", type=float, default=3e-4, help="first learning rate of every fine-tuned row")
    p.add_argument("--finetune-lr-decay", type=float, default=0.7,
                   help="learning-rate factor after every --eval-every-steps steps (a decaying schedule makes the "
                        "final error less noisy than a constant rate)")
    p.add_argument("--distill-weights", default="0.5,1,2", help="distillation sweep on the default recovery")
    p.add_argument("--only", default=None, help="comma-separated fine-tuned row names to compute (others: cache)")
    p.add_argument("--skip-free", action="store_true", help="no training-free rows unless cached")
    p.add_argument("--max-train-clips", type=int, default=None)
    p.add_argument("--max-test-clips", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration (not for results)")
    args = p.parse_args(argv)
    if args.quick:
        args.embed_dim, args.depth, args.heads, args.mlp_hidden = 16, 3, 2, 32
        args.settings, args.finetune_setting, args.distill_weights = "1:9,2:5", "1:9", "1"
        args.baseline_epochs, args.finetune_steps, args.eval_every_steps = 1, 4, 2
        args.max_train_clips, args.max_test_clips, args.cameras = 2, 1, 1
    return args


def setting(text: str) -> Tuple[int, int]:
    block, tokens = text.split(":")
    return int(block), int(tokens)


def staged(text: str) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """'1+2:15+7' -> ((1, 2), (15, 7))."""
    blocks, tokens = text.split(":")
    return tuple(int(b) for b in blocks.split("+")), tuple(int(t) for t in tokens.split("+"))


def shown(value: Any) -> str:
    """A setting as the tables show it: 9, or 15+7 for several stages."""
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def make_model(args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    return build_model("mixste", "small", num_frames=args.frames, embed_dim=args.embed_dim, depth=args.depth,
                       num_heads=args.heads, mlp_hidden_dim=args.mlp_hidden)


def baseline_state(args: argparse.Namespace, train_set, test_set) -> Dict[str, torch.Tensor]:
    if args.baseline:
        return load_checkpoint(args.baseline)["model"]
    path = os.path.join(args.runs_dir, "baseline", "last.pt")
    if not os.path.exists(path):
        print(f"training the baseline ({args.baseline_epochs} full passes) into {os.path.dirname(path)}", flush=True)
        config = TrainConfig(epochs=args.baseline_epochs, batch_size=args.batch_size, out_dir=os.path.dirname(path),
                             eval_every=args.baseline_epochs, seed=args.seed, progress=False)
        train(make_model(args), train_set, test_set, config)
    return load_checkpoint(path)["model"]


def pretrained(args: argparse.Namespace, state: Dict[str, torch.Tensor]) -> torch.nn.Module:
    model = make_model(args)
    load_pretrained(model, state)
    return model.eval()


def macs(model: torch.nn.Module, frames: int) -> float:
    return count_flops(model, torch.zeros(1, frames, 17, 2))


# --------------------------------------------------------------------------------------------------
# training-free


def two_stage_variants(args: argparse.Namespace) -> List[Tuple[str, Dict[str, Any]]]:
    variants: List[Tuple[str, Dict[str, Any]]] = []
    for blocks, tokens in (staged(t) for t in args.two_stage.split(",") if t.strip()):
        for selector in SELECTORS[:3]:
            variants.append(("interpolate", dict(prune_block=blocks, tokens=tokens, recover="interpolate",
                                                 selector=selector)))
    return variants


def free_rows(args: argparse.Namespace, state, test_set, base_mpjpe: float, base_macs: float,
              variants: Optional[List[Tuple[str, Dict[str, Any]]]] = None) -> List[Dict[str, Any]]:
    if variants is not None:
        return evaluate_variants(args, state, test_set, base_mpjpe, base_macs, variants)
    variants = []
    for block, tokens in map(setting, args.settings.split(",")):
        for selector in SELECTORS:
            for recover in ("interpolate", "nearest"):
                variants.append((recover, dict(prune_block=block, tokens=tokens, recover=recover, selector=selector)))
        # Untrained TRA, to show why the default starts from the interpolation; and the default itself.
        variants.append(("tra, x_token zeros", dict(prune_block=block, tokens=tokens, recover="tra",
                                                    selector="dpc_knn")))
        variants.append(("tra, x_token position", dict(prune_block=block, tokens=tokens, recover="tra",
                                                       x_token_init="position", selector="dpc_knn")))
        # The results were measured when DPC-kNN was the default selector; keep it named so they reproduce.
        variants.append(("tra+interpolate (default)", dict(prune_block=block, tokens=tokens, selector="dpc_knn")))
    return evaluate_variants(args, state, test_set, base_mpjpe, base_macs, variants)


def evaluate_variants(args, state, test_set, base_mpjpe: float, base_macs: float,
                      variants: List[Tuple[str, Dict[str, Any]]]) -> List[Dict[str, Any]]:
    rows = []
    for label, kwargs in variants:
        model = wrap_with_hot(pretrained(args, state), **kwargs)
        scores = evaluate(model, test_set)
        row = {"recovery": label, "selector": kwargs.get("selector", "dpc_knn"),
               "prune_block": shown(kwargs["prune_block"]), "tokens": shown(kwargs["tokens"]),
               "macs_ratio": macs(model, args.frames) / base_macs,
               "mpjpe_mm": scores["mpjpe"], "p_mpjpe_mm": scores["p_mpjpe"],
               "vs_baseline_pct": 100 * (scores["mpjpe"] / base_mpjpe - 1), "frames": scores["frames"]}
        rows.append(row)
        print(f"[{time.strftime('%H:%M:%S')}] free ({row['prune_block']}, {row['tokens']}) {label:26s} "
              f"{row['selector']:17s} MPJPE {row['mpjpe_mm']:7.2f} mm ({row['vs_baseline_pct']:+6.2f}%) "
              f"MACs {row['macs_ratio']:.3f}", flush=True)
    return rows


# --------------------------------------------------------------------------------------------------
# fine-tuned


def finetune_plan(args: argparse.Namespace) -> List[Tuple[str, Optional[Dict[str, Any]], float]]:
    """(row name, wrap_with_hot kwargs or None for the control, distillation weight)."""
    block, tokens = setting(args.finetune_setting)
    hot = dict(prune_block=block, tokens=tokens, selector="dpc_knn")  # the default when these rows were measured
    plan: List[Tuple[str, Optional[Dict[str, Any]], float]] = [("control", None, 0.0)]
    for selector in SELECTORS:
        plan.append((f"tra+interpolate/{selector}", dict(hot, selector=selector), 0.0))
    plan += [("interpolate/dpc_knn", dict(hot, recover="interpolate"), 0.0),
             ("interpolate/dpc_knn_coverage", dict(hot, recover="interpolate", selector="dpc_knn_coverage"), 0.0),
             ("nearest/dpc_knn", dict(hot, recover="nearest"), 0.0),
             ("tra-position/dpc_knn", dict(hot, recover="tra", x_token_init="position"), 0.0)]
    if args.two_stage.strip():
        blocks, counts = staged(args.two_stage.split(",")[0])
        plan.append((f"two-stage {shown(blocks)}:{shown(counts)}/dpc_knn_coverage",
                     dict(prune_block=blocks, tokens=counts, selector="dpc_knn_coverage"), 0.0))
    for weight in (float(w) for w in args.distill_weights.split(",") if w.strip()):
        plan.append((f"tra+interpolate/dpc_knn_coverage+distill{weight:g}", dict(hot, selector="dpc_knn_coverage"),
                     weight))
    return plan


def finetune_row(args: argparse.Namespace, name: str, hot: Optional[Dict[str, Any]], distill: float, state,
                 train_set, test_set, base_macs: float) -> Dict[str, Any]:
    model = pretrained(args, state)
    extra = DistillationLoss(copy.deepcopy(model), distill) if distill else None
    if hot is not None:
        wrap_with_hot(model, **hot)
    start = evaluate(model, test_set)
    chunks = max(1, args.finetune_steps // args.eval_every_steps)
    config = TrainConfig(epochs=chunks, steps_per_epoch=args.eval_every_steps, batch_size=args.batch_size,
                         lr=args.finetune_lr, lr_decay=args.finetune_lr_decay, eval_every=1, seed=args.seed,
                         progress=False,
                         verbose=False)
    started = time.time()
    history = train(model, train_set, test_set, config, extra_loss=extra)
    steps = [0] + [sum(h["steps"] for h in history[:i + 1]) for i in range(len(history))]
    row = {"row": name, "recovery": (hot or {}).get("recover", "tra+interpolate") if hot else "-",
           "selector": (hot or {}).get("selector", "dpc_knn") if hot else "-", "distill_weight": distill,
           "prune_block": shown(hot["prune_block"]) if hot else "-",
           "tokens": shown(hot["tokens"]) if hot else str(args.frames),
           "macs_ratio": macs(model, args.frames) / base_macs, "steps": steps, "mpjpe_curve": [start["mpjpe"]] + [h["mpjpe"] for h in history],
           "p_mpjpe_curve": [start["p_mpjpe"]] + [h["p_mpjpe"] for h in history],
           "train_s": time.time() - started}
    return row


def cached_finetune_rows(args, state, train_set, test_set, base_macs: float) -> List[Dict[str, Any]]:
    os.makedirs(args.runs_dir, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    key = {k: getattr(args, k) for k in ("seed", "frames", "embed_dim", "depth", "heads", "mlp_hidden",
                                         "finetune_setting", "finetune_steps", "eval_every_steps", "finetune_lr",
                                         "finetune_lr_decay",
                                         "batch_size", "max_train_clips", "max_test_clips", "cameras", "baseline")}
    rows = []
    for name, hot, distill in finetune_plan(args):
        path = os.path.join(args.runs_dir, "finetune", name.replace("/", "__") + ".json")
        cached = json.load(open(path)) if os.path.exists(path) else None
        if cached is not None and cached["key"] == key:
            rows.append(cached["row"])
            continue
        if only is not None and name not in only:
            continue
        row = finetune_row(args, name, hot, distill, state, train_set, test_set, base_macs)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            json.dump({"key": key, "row": row}, fh)
        print(f"[{time.strftime('%H:%M:%S')}] fine-tuned {name:45s} MPJPE " +
              " -> ".join(f"{v:.2f}" for v in row["mpjpe_curve"]) + f" mm ({row['train_s']:.0f} s)", flush=True)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# reporting


def write_csv(path: str, rows: List[Dict[str, Any]], columns: Sequence[str]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([f"{r[c]:.4g}" if isinstance(r[c], float) else r[c] for c in columns])


def report(args, base: Dict[str, float], free: List[Dict[str, Any]], tuned: List[Dict[str, Any]],
           wall_s: float) -> None:
    os.makedirs(args.out_dir, exist_ok=True)
    base_macs = base["macs"]
    if free:
        write_csv(os.path.join(args.out_dir, "accuracy_cmu_free.csv"), free,
                  ["prune_block", "tokens", "macs_ratio", "recovery", "selector", "mpjpe_mm", "p_mpjpe_mm",
                   "vs_baseline_pct", "frames"])
    control = next((r for r in tuned if r["row"] == "control"), None)
    flat = []
    for r in tuned:
        final = r["mpjpe_curve"][-1]
        flat.append({**{k: r[k] for k in ("row", "recovery", "selector", "distill_weight", "prune_block", "tokens",
                                          "macs_ratio")},
                     "start_mpjpe_mm": r["mpjpe_curve"][0], "final_mpjpe_mm": final,
                     "final_p_mpjpe_mm": r["p_mpjpe_curve"][-1], "steps": r["steps"][-1],
                     "vs_control_pct": 100 * (final / control["mpjpe_curve"][-1] - 1) if control else float("nan"),
                     "vs_own_start_pct": 100 * (final / r["mpjpe_curve"][0] - 1),
                     "curve": " ".join(f"{s}:{v:.2f}" for s, v in zip(r["steps"], r["mpjpe_curve"]))})
    if flat:
        write_csv(os.path.join(args.out_dir, "accuracy_cmu_finetune.csv"), flat, list(flat[0]))

    lines = ["# Adopting HoT on a pretrained MixSTE (CMU motion capture)", "",
             f"Baseline: MixSTE T={args.frames}, width {args.embed_dim}, depth {args.depth}, {args.heads} heads, MLP "
             f"{args.mlp_hidden}; test MPJPE **{base['mpjpe']:.2f} mm** (P-MPJPE {base['p_mpjpe']:.2f} mm) on "
             f"{base['frames']} test frames, {base_macs / 1e6:.1f} MMACs per window.", ""]
    if free:
        lines += ["## Training-free: wrap the trained baseline, no training", "",
                  "MPJPE change against the baseline (negative: better). Rows: recovery; columns: selector.", ""]
        for block, tokens in map(setting, args.settings.split(",")):
            group = [r for r in free if (r["prune_block"], r["tokens"]) == (str(block), str(tokens))]
            if not group:
                continue
            lines += [f"**(prune_block, tokens) = ({block}, {tokens})**, MACs ratio {group[0]['macs_ratio']:.2f}", "",
                      "| recovery | " + " | ".join(SELECTORS) + " |", "|---|" + "---|" * len(SELECTORS)]
            for label in dict.fromkeys(r["recovery"] for r in group):
                cells = []
                for selector in SELECTORS:
                    hit = next((r for r in group if r["recovery"] == label and r["selector"] == selector), None)
                    cells.append(f"{hit['vs_baseline_pct']:+.2f} % ({hit['mpjpe_mm']:.1f})" if hit else "")
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += targets_free([r for r in free if "+" not in r["tokens"]])
        staged_rows = [r for r in free if "+" in r["tokens"]]
        if staged_rows:
            lines += ["**Pruning at two depths** (`prune_block=(n1, n2), tokens=(f1, f2)`), training-free "
                      "`interpolate`, against single-stage rows of similar MACs above:", "",
                      "| (prune_block, tokens) | MACs ratio | " + " | ".join(SELECTORS[:3]) + " |",
                      "|---|---|" + "---|" * 3]
            for key in dict.fromkeys((r["prune_block"], r["tokens"]) for r in staged_rows):
                group = {r["selector"]: r for r in staged_rows if (r["prune_block"], r["tokens"]) == key}
                first = next(iter(group.values()))
                lines.append(f"| ({key[0]}, {key[1]}) | {first['macs_ratio']:.2f} | " + " | ".join(
                    f"{group[s]['vs_baseline_pct']:+.2f} % ({group[s]['mpjpe_mm']:.1f})" if s in group else ""
                    for s in SELECTORS[:3]) + " |")
            lines.append("")
    if flat:
        lines += ["## Fine-tuned: equal steps, equal data order, against the control", "",
                  f"Every row continues from the baseline for {flat[0]['steps']} steps of {args.batch_size} windows "
                  f"(AdamW, learning rate {args.finetune_lr:g} times {args.finetune_lr_decay:g} after every "
                  f"{args.eval_every_steps} steps, weight decay 0.01, clipping at 1) in the same data order; the "
                  f"control is the unwrapped baseline trained the same way. HoT setting "
                  f"{args.finetune_setting.replace(':', ', ')} (prune_block, tokens).", "",
                  "| row | MACs ratio | start (training-free) mm | final mm | P-MPJPE mm | vs control | vs own start |",
                  "|---|---|---|---|---|---|---|"]
        for r in flat:
            lines.append(f"| {r['row']} | {r['macs_ratio']:.2f} | {r['start_mpjpe_mm']:.2f} | {r['final_mpjpe_mm']:.2f} | "
                         f"{r['final_p_mpjpe_mm']:.2f} | {r['vs_control_pct']:+.2f} % | {r['vs_own_start_pct']:+.2f} % |")
        lines += [""] + targets_tuned(flat)
    lines += ["## Setup", "",
              f"- Data: `{os.path.basename(args.data)}`, train split for training, test split for scoring; 2D from "
              f"{args.cameras} seeded virtual cameras per clip (training seed {args.seed}, test seed {args.seed + 1}); "
              "no 2D noise; every frame of every test sequence is scored (windows of T frames, edge-padded).",
              "- MACs: fvcore with attention matmuls (`hourglass_tokenizer.count_flops`), one window, batch 1.",
              f"- Time: fine-tuning {sum(r['train_s'] for r in tuned) / 60:.0f} min summed over the rows (each "
              f"cached under --runs-dir; this report run {wall_s / 60:.1f} min), {platform.machine()}, torch "
              f"{torch.__version__}, {args.threads} thread(s) per process. Differences of a few tenths of a percent "
              "between fine-tuned rows are within the noise of a single seed.", "",
              "## Acknowledgement", "", CMU_ACKNOWLEDGEMENT, ""]
    with open(os.path.join(args.out_dir, "accuracy_cmu.md"), "w") as fh:
        fh.write("\n".join(lines))
    plot(args, tuned)


def targets_free(free: List[Dict[str, Any]]) -> List[str]:
    lines = ["Targets for training-free `interpolate` (best selector at each MACs budget):", ""]
    for budget, tolerance in ((0.5, 0.5), (0.4, 1.0)):
        fits = [r for r in free if r["recovery"] == "interpolate" and r["macs_ratio"] <= budget]
        if not fits:
            lines.append(f"- MACs ratio <= {budget}: no setting in the sweep.")
            continue
        best = min(fits, key=lambda r: r["vs_baseline_pct"])
        met = best["vs_baseline_pct"] <= tolerance
        lines.append(f"- within {tolerance} % at MACs ratio <= {budget}: {'met' if met else 'not met'}, best "
                     f"{best['vs_baseline_pct']:+.2f} % with ({best['prune_block']}, {best['tokens']}), "
                     f"{best['selector']}, MACs ratio {best['macs_ratio']:.2f}.")
    wins = {s: 0 for s in SELECTORS}
    for key in {(r["prune_block"], r["tokens"], r["recovery"]) for r in free if r["recovery"] in ("interpolate", "nearest")}:
        group = [r for r in free if (r["prune_block"], r["tokens"], r["recovery"]) == key]
        wins[min(group, key=lambda r: r["mpjpe_mm"])["selector"]] += 1
    lines += ["", "Best selector per (setting, training-free recovery): " +
              ", ".join(f"{s} {n}" for s, n in wins.items()) + ".", ""]
    return lines


def targets_tuned(flat: List[Dict[str, Any]]) -> List[str]:
    hot = [r for r in flat if r["row"] != "control"]
    if not hot:
        return []
    best = min(hot, key=lambda r: r["final_mpjpe_mm"])
    return ["Targets for the best fine-tuned recovery (" + best["row"] + "):", "",
            f"- no worse than its own training-free start: {'met' if best['vs_own_start_pct'] <= 0 else 'not met'} "
            f"({best['vs_own_start_pct']:+.2f} %);",
            f"- within 0.5 % of the control at equal steps: {'met' if best['vs_control_pct'] <= 0.5 else 'not met'} "
            f"({best['vs_control_pct']:+.2f} %).", ""]


def plot(args, tuned: List[Dict[str, Any]]) -> None:
    plt = pyplot()
    if plt is None or not tuned:
        return
    fig, ax = plt.subplots(figsize=(9, 5.5))
    control = next((r for r in tuned if r["row"] == "control"), tuned[0])
    top = 1.25 * control["mpjpe_curve"][0]  # rows far above (untrained TRA) would flatten the others
    for i, r in enumerate(tuned):
        style = (dict(color="black", linewidth=2.5) if r["row"] == "control"
                 else dict(alpha=0.85, linestyle=("-", "--", ":", "-.")[i % 4]))
        off_scale = max(r["mpjpe_curve"]) > top
        ax.plot(r["steps"], r["mpjpe_curve"], marker="o", markersize=3,
                label=r["row"] + (" (starts off scale)" if off_scale else ""), **style)
    ax.set_ylim(0.95 * min(min(r["mpjpe_curve"]) for r in tuned), top)
    ax.set_xlabel("fine-tuning steps (batch %d)" % args.batch_size)
    ax.set_ylabel("MPJPE (mm), CMU test split, every frame")
    ax.set_title("HoT on a pretrained MixSTE: fine-tuning against an equally trained control")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.text(0.01, 0.01, "Data: mocap.cs.cmu.edu (NSF EIA-0196217)", fontsize=7, color="gray")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out_dir, "accuracy_cmu.png"), dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    if not os.path.exists(args.data):
        print(f"data file not found: {args.data}; make one with `python -m hourglass_tokenizer data bvh ...`",
              file=sys.stderr)
        return 2
    train_set, test_set = make_cmu_datasets(args.data, args.frames, cameras=args.cameras, seed=args.seed,
                                            train_stride=args.train_stride, flip=True,
                                            max_train_clips=args.max_train_clips, max_test_clips=args.max_test_clips)
    state = baseline_state(args, train_set, test_set)
    model = pretrained(args, state)
    scores = evaluate(model, test_set)
    base = {"mpjpe": scores["mpjpe"], "p_mpjpe": scores["p_mpjpe"], "frames": scores["frames"],
            "macs": macs(model, args.frames)}
    print(f"baseline: MPJPE {base['mpjpe']:.2f} mm, P-MPJPE {base['p_mpjpe']:.2f} mm on {base['frames']} frames",
          flush=True)
    free: List[Dict[str, Any]] = []
    free_cache = os.path.join(args.runs_dir, "free.json")
    free_key = {k: getattr(args, k) for k in ("seed", "frames", "embed_dim", "depth", "heads", "mlp_hidden", "settings",
                                              "max_test_clips", "cameras", "baseline")}
    if os.path.exists(free_cache) and json.load(open(free_cache))["key"] == free_key:
        free = json.load(open(free_cache))["rows"]
    elif not args.skip_free:
        free = free_rows(args, state, test_set, base["mpjpe"], base["macs"])
        os.makedirs(args.runs_dir, exist_ok=True)
        with open(free_cache, "w") as fh:
            json.dump({"key": free_key, "rows": free}, fh)
    for r in free:  # rows cached before settings were shown as text
        r["prune_block"], r["tokens"] = shown(r["prune_block"]), shown(r["tokens"])
    staged_cache = os.path.join(args.runs_dir, "free_two_stage.json")
    staged_key = {**free_key, "two_stage": args.two_stage}
    if os.path.exists(staged_cache) and json.load(open(staged_cache))["key"] == staged_key:
        free += json.load(open(staged_cache))["rows"]
    elif not args.skip_free and args.two_stage.strip():
        rows = free_rows(args, state, test_set, base["mpjpe"], base["macs"], two_stage_variants(args))
        with open(staged_cache, "w") as fh:
            json.dump({"key": staged_key, "rows": rows}, fh)
        free += rows
    tuned = cached_finetune_rows(args, state, train_set, test_set, base["macs"])
    report(args, base, free, tuned, time.time() - started)
    print(f"done in {(time.time() - started) / 60:.1f} min; results in {args.out_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
