"""Fine-tune a pretrained video pose transformer with HoT: the usual way to adopt it.

1. Build the plain model (here the built-in MixSTE) and load its pretrained weights, or, without
   ``--init-from``, pretrain it briefly here so the example runs end to end.
2. Wrap it with HoT (``wrap_with_hot``), after loading the weights. The default recovery,
   ``"tra+interpolate"``, starts as a training-free interpolation of the kept frames, so the
   wrapped model is already about as accurate as the plain one.
3. Fine-tune (optionally with distillation from the plain model), then compare accuracy and MACs.

    python -m hourglass_tokenizer data bvh path/to/bvh_folder -o motion.npz  # your motion capture
    python examples/finetune.py --data motion.npz --epochs 2               # pretrain briefly, then fine-tune
    python examples/finetune.py --data motion.npz --init-from runs/mixste/best.pt --frames 81 --embed-dim 64 --depth 6

The same from the command line:
``hot-train --hot --prune-block 1 --tokens 9 --init-from ckpt.pt --distill-weight 1``.
Data: motion capture in the CMU layout (``--data motion.npz``; make one from BVH files with
``python -m hourglass_tokenizer data bvh``), 2D inputs from virtual cameras. The data used in this
project was obtained from mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from hourglass_tokenizer import wrap_with_hot  # noqa: E402
from hourglass_tokenizer.data.readers import MAKE_MOTION_HINT  # noqa: E402
from hourglass_tokenizer.bench.flops import count_flops  # noqa: E402
from hourglass_tokenizer.models import build_model  # noqa: E402
from hourglass_tokenizer.training import (DistillationLoss, TrainConfig, evaluate, load_pretrained,  # noqa: E402
                                          make_cmu_datasets, save_checkpoint, train)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help=f"motion .npz in the CMU layout; {MAKE_MOTION_HINT}")
    p.add_argument("--init-from", default=None, help="plain (unwrapped) checkpoint of the same MixSTE config")
    p.add_argument("--frames", type=int, default=27)
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--prune-block", type=int, default=1)
    p.add_argument("--tokens", type=int, default=9)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps-per-epoch", type=int, default=30)
    p.add_argument("--distill-weight", type=float, default=1.0, help="0: no distillation")
    p.add_argument("--out", default=os.path.join("runs", "finetune_example"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not os.path.exists(args.data):
        print(f"data file not found: {args.data}", file=sys.stderr)
        return 2

    def make_model() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model("mixste", "small", num_frames=args.frames, embed_dim=args.embed_dim, depth=args.depth)

    train_set, test_set = make_cmu_datasets(args.data, args.frames, cameras=2, max_train_clips=20, max_test_clips=6)
    config = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=16,
                         eval_frame_stride=4)

    pretrained = args.init_from
    if pretrained is None:  # no checkpoint at hand: pretrain the plain model briefly
        model = make_model()
        train(model, train_set, test_set, config)
        pretrained = os.path.join(args.out, "plain.pt")
        save_checkpoint(pretrained, model)
    plain = make_model()
    load_pretrained(plain, pretrained)  # a plain model: nothing is missing

    model = make_model()
    load_pretrained(model, pretrained)  # the documented order: load the weights, then wrap
    teacher = DistillationLoss(copy.deepcopy(model), args.distill_weight) if args.distill_weight else None
    wrap_with_hot(model, args.prune_block, args.tokens)
    before = evaluate(model, test_set, frame_stride=4)
    print(f"HoT before fine-tuning (training-free start): MPJPE {before['mpjpe']:.1f} mm")
    train(model, train_set, test_set, dataclasses.replace(config, out_dir=os.path.join(args.out, "hot")),
          extra_loss=teacher)

    x = torch.zeros(1, args.frames, 17, 2)
    for name, m in (("plain", plain), ("HoT", model)):
        scores = evaluate(m, test_set, frame_stride=4)
        print(f"{name:5s}: MPJPE {scores['mpjpe']:.1f} mm, P-MPJPE {scores['p_mpjpe']:.1f} mm, "
              f"{count_flops(m, x) / 1e6:.1f} MMACs per window")
    return 0


if __name__ == "__main__":
    sys.exit(main())
