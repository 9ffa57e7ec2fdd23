"""Pushing the training-free frontier of HoT on a pretrained MixSTE (the CMU split of accuracy_cmu.py).

Every attempt of issue 13 is one named *variant*, measured training-free on the same baseline and
test frames as ``accuracy_cmu.py`` over a sweep of ``(prune_block, tokens)``: selectors built for
interpolation (exact keyframes, motion-spaced frames) on the features the wrapper hands them, on the
2D input, on the un-pooled tokens, or on the unpruned model's own output (an oracle no real model
has); token merging instead of dropping; and a residual recovery that carries the per-frame detail
of the features entering the pruned blocks around them (prototypes: ``hot_variants.py``). The
winners are then fine-tuned against the control of ``accuracy_cmu.py`` (same steps, data order and
learning rate).

    python benchmarks/frontier_cmu.py --data motion.npz --baseline runs/strong_t27/last.pt

``motion.npz`` is the CMU split in the layout ``python -m hourglass_tokenizer data bvh`` writes (see
the README's Data section). Every row is cached under ``--runs-dir`` (a rerun computes only what is
missing); ``--only NAME,...`` restricts the computed variants and fine-tuned rows. Writes
``frontier_cmu.md``, ``frontier_cmu_free.csv`` and ``frontier_cmu_finetune.csv`` to ``--out-dir``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, HERE):
    if path not in sys.path:  # run as a script from a checkout
        sys.path.insert(0, path)

import accuracy_cmu  # noqa: E402
from frontier_selectors import KeyframeSelector, MotionSpacedSelector  # noqa: E402
from hot_variants import InterpolationOnly, fit_detail_map, wrap_variant  # noqa: E402
from hourglass_tokenizer.data import PoseWindowDataset, load_cmu, project_clips  # noqa: E402
from hourglass_tokenizer.data.readers import CMU_ACKNOWLEDGEMENT  # noqa: E402
from hourglass_tokenizer.files import atomic_write  # noqa: E402
from hourglass_tokenizer.training import TrainConfig, evaluate, make_cmu_datasets, train  # noqa: E402


def top_motion(signal: torch.Tensor, f: int) -> torch.Tensor:
    """The ``f`` frames of largest motion ``||x_{k+1} - x_{k-1}||`` (one-sided at the ends; the earlier
    frame on a tie): motion-based selection as H2OT describes it, without any spacing."""
    x = signal.double()
    padded = torch.cat([x[:, :1], x, x[:, -1:]], 1)
    motion = (padded[:, 2:] - padded[:, :-2]).norm(dim=-1)
    order = torch.sort(-motion, dim=1, stable=True).indices
    return torch.sort(order[:, :f], dim=1).values


#: name -> wrap_variant options (recover "interpolate" unless given).
VARIANTS: Dict[str, Dict[str, Any]] = {
    "uniform": dict(selector="uniform"),
    "dpc_knn": dict(selector="dpc_knn"),
    "dpc_knn_coverage": dict(selector="dpc_knn_coverage"),
    "keyframes": dict(selector=KeyframeSelector(0.0)),
    "keyframes s1": dict(selector=KeyframeSelector(1.0)),
    "motion_spaced 0.5": dict(selector=MotionSpacedSelector(0.5)),
    "motion_spaced 1": dict(selector=MotionSpacedSelector(1.0)),
    "keyframes on pose2d": dict(selector=KeyframeSelector(0.0), signal="pose2d"),
    "keyframes s1 on pose2d": dict(selector=KeyframeSelector(1.0), signal="pose2d"),
    "motion_spaced 0.5 on pose2d": dict(selector=MotionSpacedSelector(0.5), signal="pose2d"),
    "motion_spaced 1 on pose2d": dict(selector=MotionSpacedSelector(1.0), signal="pose2d"),
    "top motion on pose2d": dict(selector=top_motion, signal="pose2d"),
    "keyframes on tokens": dict(selector=KeyframeSelector(0.0), signal="tokens"),
    "oracle keyframes": dict(selector=KeyframeSelector(0.0), signal="oracle"),
    "uniform + merge time": dict(selector="uniform", merge="time"),
    "uniform + merge feature": dict(selector="uniform", merge="feature"),
    "dpc_knn + merge feature": dict(selector="dpc_knn", merge="feature"),
    "uniform + residual 0.5": dict(selector="uniform", residual=0.5),
    "uniform interpolate+residual (plugin)": dict(selector="uniform", recover="interpolate+residual"),
    "uniform + residual 1": dict(selector="uniform", residual=1.0),
    "uniform + cubic": dict(selector="uniform", cubic=True),
    "keyframes on pose2d + cubic": dict(selector=KeyframeSelector(0.0), signal="pose2d", cubic=True),
    "keyframes s1 on pose2d + cubic": dict(selector=KeyframeSelector(1.0), signal="pose2d", cubic=True),
    "uniform + fitted residual": dict(selector="uniform", residual="fit"),
    "uniform + fitted residual + cubic": dict(selector="uniform", residual="fit", cubic=True),
    "uniform + per-joint fitted residual": dict(selector="uniform", residual="fit per joint"),
    "uniform + residual 0.25": dict(selector="uniform", residual=0.25),
    "uniform + residual 0.75": dict(selector="uniform", residual=0.75),
    "uniform + fitted scalar residual": dict(selector="uniform", residual="fit scalar"),
    "uniform + hot-fitted residual": dict(selector="uniform", residual="fit hot"),
    "uniform + hot-fitted per-joint residual": dict(selector="uniform", residual="fit hot per joint"),
    "uniform + hot-fitted scalar residual": dict(selector="uniform", residual="fit hot scalar"),
    "uniform + residual 0.5 + cubic": dict(selector="uniform", residual=0.5, cubic=True),
    "dpc_knn_coverage + residual 0.5": dict(selector="dpc_knn_coverage", residual=0.5),
    "motion_spaced 0.5 + residual 0.5": dict(selector=MotionSpacedSelector(0.5), residual=0.5),
    "keyframes on pose2d + residual 0.5": dict(selector=KeyframeSelector(0.0), signal="pose2d", residual=0.5),
    "uniform interpolate": dict(selector="uniform", recover="interpolate"),  # fine-tuned without TRA
    "keyframes on pose2d + fitted residual": dict(selector=KeyframeSelector(0.0), signal="pose2d", residual="fit"),
    "interpolation only (diagnostic)": dict(selector="uniform", diagnostic=True),
}


#: Variants no real model can run, shown for what they tell.
DIAGNOSTICS = ("oracle keyframes", "interpolation only (diagnostic)")

ATTEMPTS = """What each variant is (recovery `interpolate` unless it says otherwise):

- `uniform`, `dpc_knn`, `dpc_knn_coverage`: the selectors the plugin had (references).
- `keyframes`: the exact dynamic programme over linear-interpolation fits (`frontier_selectors.keyframes`): the kept
  frames from which interpolation rebuilds the features best, both ends kept. `s1`: with the regular-spacing
  prior at weight 1 (each term is 1 for evenly spaced frames).
- `motion_spaced 0.5` / `1`: frames evenly spaced along time blended with travelled distance (half and half / distance
  only; `frontier_selectors.motion_spaced`).
- `... on pose2d`: the same selector on the 2D input (all joints, per frame) instead of the joint-pooled features of
  the pruning block; `on tokens`: on the pruning block's un-pooled tokens (all joints).
- `top motion on pose2d`: the frames of largest 2D motion, no spacing (motion-based selection as in H2OT).
- `oracle keyframes` (diagnostic): keyframes on the unpruned model's own 3D output, which no real model has: the
  most any selection can gain for interpolation.
- `merge time` / `merge feature`: token merging instead of dropping: at the first pruned block each kept token is
  the mean of its cluster (every frame joins the kept frame nearest in time / in pooled-feature distance).
- `residual a`: recovery adds `a x (x_p - interp(x_p))`, the per-frame detail of the features entering the first
  pruned block, to the interpolated output.
- `uniform interpolate+residual (plugin)`: the plugin's `recover="interpolate+residual"` (weight 0.5), to check that
  it gives the prototype `uniform + residual 0.5` exactly.
- `fitted residual`: the same detail through a linear map fitted by ridge least squares on the unpruned model
  (target: the detail of its head input) over 2,048 unlabelled training windows; `per-joint`: one map per joint;
  `scalar`: one number (column `fitted_alpha` of the CSV). `hot-fitted`: the target is what the wrapped model
  gets wrong, the unpruned model's head input minus the interpolated one (context loss included).
- `cubic`: cubic Hermite instead of linear interpolation of the kept frames.
- `interpolation only` (diagnostic): the unpruned model, then its head input interpolated from the uniform frames:
  the error of the interpolation alone, without the pruned blocks' loss of context.
"""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the CMU split as a motion .npz (see the README's Data section)")
    p.add_argument("--baseline", required=True, help="checkpoint of the trained baseline (accuracy_cmu.py's command)")
    p.add_argument("--out-dir", default=os.path.join(REPO, "benchmarks", "results"))
    p.add_argument("--runs-dir", default=os.path.join(REPO, "runs", "frontier_cmu"), help="caches (ignored by git)")
    p.add_argument("--settings", default="1:3,1:5,1:9", help="(prune_block:tokens) sweep")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variant names")
    p.add_argument("--only", default=None, help="compute only these variants / fine-tuned rows (others: cache)")
    p.add_argument("--finetune", default="", help="'NAME@p:f,...' variants to fine-tune (training-free rows first)")
    p.add_argument("--finetune-steps", type=int, default=600, help="as accuracy_cmu.py (fewer: smoke runs only)")
    p.add_argument("--eval-every-steps", type=int, default=100)
    p.add_argument("--other-data", default=None,
                   help="a motion .npz from another source: fine-tuned rows are also scored on all of its clips")
    p.add_argument("--seed", type=int, default=0, help="fine-tuning data order and test cameras (seed + 1)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-test-clips", type=int, default=None)
    args = p.parse_args(argv)
    for name in args.variants.split(","):
        if name not in VARIANTS:
            p.error(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return args


def base_args(args: argparse.Namespace) -> argparse.Namespace:
    """accuracy_cmu.py's options (model shape, fine-tuning schedule) for the same baseline."""
    return accuracy_cmu.parse_args(["--data", args.data, "--baseline", args.baseline, "--seed", str(args.seed),
                                    "--finetune-steps", str(args.finetune_steps),
                                    "--eval-every-steps", str(args.eval_every_steps),
                                    "--runs-dir", os.path.join(args.runs_dir, "accuracy_cmu")]
                                   + (["--max-test-clips", str(args.max_test_clips)] if args.max_test_clips else []))


def option_text(options: Dict[str, Any]) -> Dict[str, str]:
    """A variant's options as stable text (functions by name), so a changed definition is recomputed."""
    return {k: getattr(v, "__name__", None) or repr(v) for k, v in sorted(options.items())}


def cache_key(args: argparse.Namespace) -> Dict[str, Any]:
    stat = os.stat(args.baseline)
    return {"baseline": os.path.abspath(args.baseline), "baseline_size": stat.st_size,
            "baseline_mtime": int(stat.st_mtime), "seed": args.seed, "max_test_clips": args.max_test_clips}


def cached(path: str, key: Dict[str, Any], compute) -> Dict[str, Any]:
    if os.path.exists(path):
        with open(path) as fh:
            stored = json.load(fh)
        if stored["key"] == key:
            return stored["row"]
    row = compute()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(path) as tmp, open(tmp, "w") as fh:
        json.dump({"key": key, "row": row}, fh)
    return row


def calibration_windows(train_set, count: int = 2048) -> torch.Tensor:
    """Evenly spread training windows (2D inputs) for the fitted residual map."""
    step = max(1, len(train_set) // count)
    return torch.stack([torch.as_tensor(train_set[i][0]) for i in range(0, len(train_set), step)][:count]).float()


def free_row(args, acc, plain, test_set, base: Dict[str, float], name: str, block: int, tokens: int,
             train_set=None) -> Dict[str, Any]:
    options = dict(VARIANTS[name])
    started = time.time()
    fit = options.get("residual")
    if isinstance(fit, str) and fit.startswith("fit"):
        options["residual"] = fit_detail_map(plain, calibration_windows(train_set), block, tokens,
                                             options.get("selector", "uniform"), signal=options.get("signal", "features"),
                                             cubic=options.get("cubic", False), per_joint="per joint" in fit,
                                             target="hot" if "hot" in fit else "plain", scalar="scalar" in fit)
    if options.pop("diagnostic", False):
        model = InterpolationOnly(plain, tokens, options.get("selector", "uniform"))
    else:
        model = wrap_variant(plain, prune_block=block, tokens=tokens, **{"recover": "interpolate", **options})
    scores = evaluate(model, test_set)
    if options.get("signal") == "oracle" or isinstance(model, InterpolationOnly):
        # Diagnostics: charged as the same selector on the features (what a real model could run).
        counted = wrap_variant(plain, prune_block=block, tokens=tokens, selector=options.get("selector", "uniform"))
    else:
        counted = model
    macs = accuracy_cmu.macs(counted, acc.frames) / base["macs"]
    fitted = options.get("residual")
    row = {"variant": name, "prune_block": block, "tokens": tokens, "macs_ratio": macs,
           "fitted_alpha": fitted if isinstance(fitted, float) and isinstance(fit, str) else "",
           "mpjpe_mm": scores["mpjpe"], "p_mpjpe_mm": scores["p_mpjpe"],
           "vs_baseline_pct": 100 * (scores["mpjpe"] / base["mpjpe"] - 1), "frames": scores["frames"],
           "seconds": time.time() - started}
    print(f"[{time.strftime('%H:%M:%S')}] ({block}, {tokens}) {name:32s} MPJPE {row['mpjpe_mm']:7.2f} mm "
          f"({row['vs_baseline_pct']:+6.2f} %) MACs {macs:.3f} ({row['seconds']:.0f} s)", flush=True)
    return row


def finetune_variant(args, acc, state, train_set, test_set, other_set, base: Dict[str, float], name: str,
                     block: int, tokens: int) -> Dict[str, Any]:
    """accuracy_cmu.py's fine-tuning protocol (same steps, data order, learning rate) on a variant with the
    default recovery, or on the unwrapped baseline (``name == "control"``); also scored on ``other_set``."""
    model = accuracy_cmu.pretrained(acc, state)
    if name != "control":
        model = wrap_variant(model, prune_block=block, tokens=tokens,
                             **{"recover": "tra+interpolate", **VARIANTS[name]})
    start = evaluate(model, test_set)
    other_start = evaluate(model, other_set)["mpjpe"] if other_set is not None else None
    chunks = max(1, acc.finetune_steps // acc.eval_every_steps)
    config = TrainConfig(epochs=chunks, steps_per_epoch=acc.eval_every_steps, batch_size=acc.batch_size,
                         lr=acc.finetune_lr, lr_decay=acc.finetune_lr_decay, eval_every=1, seed=args.seed,
                         progress=False, verbose=False)
    started = time.time()
    history = train(model, train_set, test_set, config)
    steps = [0] + [sum(h["steps"] for h in history[:i + 1]) for i in range(len(history))]
    row = {"row": name if name == "control" else f"{name}@{block}:{tokens}", "variant": name,
           "prune_block": block, "tokens": tokens,
           "macs_ratio": accuracy_cmu.macs(model, acc.frames) / base["macs"], "steps": steps,
           "mpjpe_curve": [start["mpjpe"]] + [h["mpjpe"] for h in history],
           "p_mpjpe_curve": [start["p_mpjpe"]] + [h["p_mpjpe"] for h in history], "train_s": time.time() - started,
           "other_start_mpjpe": other_start,
           "other_final_mpjpe": evaluate(model, other_set)["mpjpe"] if other_set is not None else None}
    print(f"[{time.strftime('%H:%M:%S')}] fine-tuned {row['row']:32s} MPJPE "
          + " -> ".join(f"{v:.2f}" for v in row["mpjpe_curve"]) + f" mm ({row['train_s']:.0f} s)", flush=True)
    return row


def write_csv(path: str, rows: List[Dict[str, Any]]) -> None:
    if not rows:
        return
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        columns = list(dict.fromkeys(c for r in rows for c in r))
        writer.writerow(columns)
        for r in rows:
            values = [r.get(c, "") for c in columns]
            writer.writerow([f"{v:.4g}" if isinstance(v, float) else v for v in values])


def targets(free: List[Dict[str, Any]]) -> List[str]:
    """The issue's training-free targets against the rows (diagnostics excluded)."""
    real = [r for r in free if r["variant"] not in DIAGNOSTICS]
    lines = ["Targets (best real variant at each MACs budget):", ""]
    for budget, tolerance in ((0.5, 0.5), (0.4, 1.0), (0.35, 3.0)):
        fits = [r for r in real if r["macs_ratio"] <= budget]
        if not fits:
            lines.append(f"- within {tolerance} % at MACs ratio <= {budget}: no row in the sweep.")
            continue
        best = min(fits, key=lambda r: r["vs_baseline_pct"])
        lines.append(f"- within {tolerance} % at MACs ratio <= {budget}: "
                     f"{'met' if best['vs_baseline_pct'] <= tolerance else 'not met'}, best "
                     f"{best['vs_baseline_pct']:+.2f} % with `{best['variant']}` at ({best['prune_block']}, "
                     f"{best['tokens']}), MACs ratio {best['macs_ratio']:.3f}.")
    return lines + [""]


def report(args, acc, base, free: List[Dict[str, Any]], tuned: List[Dict[str, Any]],
           control: Optional[Dict[str, Any]]) -> None:
    os.makedirs(args.out_dir, exist_ok=True)
    write_csv(os.path.join(args.out_dir, "frontier_cmu_free.csv"), free)
    settings = list(dict.fromkeys((r["prune_block"], r["tokens"]) for r in free))
    names = list(dict.fromkeys(r["variant"] for r in free))
    lines = ["# Pushing HoT's training-free frontier on a pretrained MixSTE (CMU motion capture)", "",
             f"Baseline: `{os.path.basename(args.baseline)}`, MixSTE T={acc.frames}, width {acc.embed_dim}, depth "
             f"{acc.depth}; test MPJPE **{base['mpjpe']:.2f} mm** on {base['frames']} frames. Recovery: "
             "`interpolate` (training-free) unless the variant says otherwise. MPJPE change against the "
             "baseline; lower is better.", ""]
    if free:
        head = " | ".join(f"({b}, {t}) MACs {next(r['macs_ratio'] for r in free if (r['prune_block'], r['tokens']) == (b, t)):.2f}"
                          for b, t in settings)
        lines += [f"| variant | {head} |", "|---|" + "---|" * len(settings)]
        for name in names:
            cells = []
            for b, t in settings:
                hit = next((r for r in free if r["variant"] == name and (r["prune_block"], r["tokens"]) == (b, t)), None)
                cells.append(f"{hit['vs_baseline_pct']:+.2f} %" if hit else "")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if free:
        lines += targets(free) + [ATTEMPTS]
    if tuned and control:
        flat = []
        for r in [control] + tuned:
            final, other = r["mpjpe_curve"][-1], r.get("other_final_mpjpe")
            flat.append({"row": r["row"], "prune_block": r["prune_block"], "tokens": r["tokens"],
                         "macs_ratio": r["macs_ratio"], "start_mpjpe_mm": r["mpjpe_curve"][0], "final_mpjpe_mm": final,
                         "vs_control_pct": 100 * (final / control["mpjpe_curve"][-1] - 1),
                         "other_start_mpjpe_mm": r.get("other_start_mpjpe") or float("nan"),
                         "other_final_mpjpe_mm": other or float("nan"),
                         "other_vs_control_pct": 100 * (other / control["other_final_mpjpe"] - 1) if other else float("nan"),
                         "train_s": r["train_s"],
                         "curve": " ".join(f"{s}:{v:.2f}" for s, v in zip(r["steps"], r["mpjpe_curve"]))})
        write_csv(os.path.join(args.out_dir, "frontier_cmu_finetune.csv"), flat)
        lines += ["## Fine-tuned", "",
                  f"accuracy_cmu.py's protocol: {acc.finetune_steps} steps of {acc.batch_size} windows from the baseline, "
                  f"same data order (seed {args.seed}), recovery `tra+interpolate`; the control is the unwrapped "
                  "baseline trained the same way. "
                  + (f"`other source`: every clip of `{os.path.basename(args.other_data)}` through the test cameras."
                     if args.other_data else ""), "",
                  "| row | MACs ratio | start mm | final mm | vs control | other source: start mm | final mm | vs control |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in flat:
            lines.append(f"| {r['row']} | {r['macs_ratio']:.2f} | {r['start_mpjpe_mm']:.2f} | {r['final_mpjpe_mm']:.2f} | "
                         f"{r['vs_control_pct']:+.2f} % | {r['other_start_mpjpe_mm']:.2f} | "
                         f"{r['other_final_mpjpe_mm']:.2f} | {r['other_vs_control_pct']:+.2f} % |")
        lines.append("")
    lines += ["## Acknowledgement", "", CMU_ACKNOWLEDGEMENT, ""]
    with atomic_write(os.path.join(args.out_dir, "frontier_cmu.md")) as tmp, open(tmp, "w") as fh:
        fh.write("\n".join(lines))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    acc = base_args(args)
    train_set, test_set = make_cmu_datasets(args.data, acc.frames, cameras=acc.cameras, seed=args.seed,
                                            train_stride=acc.train_stride, flip=True,
                                            max_test_clips=args.max_test_clips)
    state = accuracy_cmu.baseline_state(acc, train_set, test_set)
    plain = accuracy_cmu.pretrained(acc, state)
    key = cache_key(args)
    runs = os.path.join(args.runs_dir, f"seed{args.seed}")
    base = cached(os.path.join(runs, "baseline.json"), key, lambda: {
        **{k: v for k, v in evaluate(plain, test_set).items() if k in ("mpjpe", "p_mpjpe", "frames")},
        "macs": accuracy_cmu.macs(plain, acc.frames)})
    print(f"baseline: MPJPE {base['mpjpe']:.2f} mm on {base['frames']} frames", flush=True)
    only = set(args.only.split(",")) if args.only else None
    free = []
    for block, tokens in map(accuracy_cmu.setting, args.settings.split(",")):
        for name in args.variants.split(","):
            path = os.path.join(runs, "free", f"{block}_{tokens}__{name.replace(' ', '_')}.json")
            if only is not None and name not in only and not os.path.exists(path):
                continue
            row = cached(path, {**key, "variant": name, "options": option_text(VARIANTS[name])},
                         lambda: free_row(args, acc, plain, test_set, base, name, block, tokens, train_set))
            free.append(row)
    tuned, control = [], None
    other_set = None
    if args.other_data:
        other_set = PoseWindowDataset(project_clips(load_cmu(args.other_data).clips(None), acc.cameras, args.seed + 1),
                                      acc.frames, stride=acc.frames)
    specs = [s for s in args.finetune.split(",") if s.strip()]
    if specs:
        specs = ["control@0:0"] + specs
    for spec in specs:
        name, setting = spec.rsplit("@", 1)
        block, tokens = accuracy_cmu.setting(setting)
        path = os.path.join(runs, "finetune", f"{block}_{tokens}__{name.replace(' ', '_')}.json")
        if only is not None and spec not in only and name != "control" and not os.path.exists(path):
            continue
        row = cached(path, {**key, "steps": acc.finetune_steps, "other": args.other_data,
                            "options": option_text(VARIANTS.get(name, {}))},
                     lambda: finetune_variant(args, acc, state, train_set, test_set, other_set, base, name, block,
                                              tokens))
        if name == "control":
            control = row
        else:
            tuned.append(row)
    report(args, acc, base, free, tuned, control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
