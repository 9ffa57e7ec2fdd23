"""How often a bfloat16 model keeps the frames its float32 twin keeps.

The same MixSTE (zoo "small", T=27, prune_block 1, 9 tokens) runs in float32 and, with the same
weights, in bfloat16, on random walks with pauses. For every sample it compares the kept frames of
the bf16 model with the float32 model's, the way the wrapper selects now (pooling over joints and
scoring in float32) and the way it did before (pooling in bf16). Prints a markdown table.

    python benchmarks/bf16_selection.py --samples 400
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from hourglass_tokenizer import dpc_knn, wrap_with_hot  # noqa: E402
from hourglass_tokenizer.models import build_model  # noqa: E402


def walks(n: int, frames: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(n, frames, 17, 2, generator=g) * 0.3
    for i in range(n):
        start = int(torch.randint(0, frames - 6, (1,), generator=g))
        steps[i, start:start + 6] = 0
    return torch.cumsum(steps, dim=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=400)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows = {}
    models = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        model = build_model("mixste", "small").eval().to(dtype)
        captured = []
        model.STEblocks[1].register_forward_pre_hook(lambda module, a, store=captured: store.append(a[0]))
        models[dtype] = (wrap_with_hot(model, prune_block=1, tokens=9, selector="dpc_knn"), captured)
        captured.clear()  # the probe's own forward
    x = walks(args.samples, 27, 0)
    with torch.no_grad():
        reference = {}
        for dtype, (model, captured) in models.items():
            model(x.to(dtype))
            reference[dtype] = (model.hot.last_indices, captured[0].reshape(args.samples, 27, 17, -1))
    kept32 = reference[torch.float32][0]
    kept16, tokens16 = reference[torch.bfloat16]
    before = dpc_knn(tokens16.mean(dim=2).float(), 9)
    rows["float32 pooling (now)"] = int((dpc_knn(tokens16.float().mean(dim=2), 9) == kept32).all(1).sum())
    rows["bf16 pooling (before)"] = int((before == kept32).all(1).sum())
    assert torch.equal(kept16, dpc_knn(tokens16.float().mean(dim=2), 9))  # what the wrapper chose
    print(f"| selection of the bf16 model | samples keeping exactly the float32 model's frames (of {args.samples}) |")
    print("|---|---|")
    for name in ("bf16 pooling (before)", "float32 pooling (now)"):
        print(f"| {name} | {rows[name]} ({100 * rows[name] / args.samples:.1f} %) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
