"""From 2D keypoints to 3D, end to end, on motion capture you have (BVH files).

1. ``data bvh``: convert the BVH files to a 17-joint motion file (a train/test split of the clips).
2. ``train``: train a small HoT-wrapped MixSTE on the training clips seen through virtual cameras;
   the checkpoint records how to rebuild the model.
3. Film a test clip with a virtual camera and write what a 2D detector would: an MMPose-layout
   COCO-17 JSON (nose, eyes and ears placed around the head, pixels, one person per frame).
4. ``predict``: the checkpoint and the JSON give 3D poses, rendered as a GIF and one PNG frame.

    python examples/keypoints_to_3d.py path/to/bvh_folder --out runs/keypoints_to_3d
    python examples/keypoints_to_3d.py --motion motion.npz --steps 300        # a motion file you made

Every step is a command of the package, run here in-process; the script prints each one. About
5 minutes on one CPU thread at the default 3000 training steps (the tiny model trains fast). With the CMU database (mocap.cs.cmu.edu):
"The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with
funding from NSF EIA-0196217."
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from hourglass_tokenizer.__main__ import main as command  # noqa: E402
from hourglass_tokenizer.data import JOINT_NAMES, load_cmu, random_virtual_cameras  # noqa: E402
from hourglass_tokenizer.data.keypoints import COCO_KEYPOINTS  # noqa: E402
from hourglass_tokenizer.render import render_frame  # noqa: E402

WIDTH = HEIGHT = 1000


def run(*args: str) -> None:
    print("$ python -m hourglass_tokenizer " + " ".join(shlex.quote(a) for a in args), flush=True)
    code = command(list(args))
    if code:
        raise SystemExit(code)


def coco_from_h36m(pixels: np.ndarray) -> np.ndarray:
    """COCO-17 pixels ``(T, 17, 2)`` a detector could have seen, from Human3.6M-17 pixels: the joints both
    have as they are, the nose at Neck/Nose, eyes and ears on either side of Head (so mid-eyes = Head)."""
    h36m = {name: pixels[:, i] for i, name in enumerate(JOINT_NAMES)}
    across = h36m["LShoulder"] - h36m["RShoulder"]  # the body's left direction in the image
    source = {"Nose": h36m["Neck/Nose"], "LEye": h36m["Head"] + 0.1 * across, "REye": h36m["Head"] - 0.1 * across,
              "LEar": h36m["Head"] + 0.25 * across, "REar": h36m["Head"] - 0.25 * across,
              "LAnkle": h36m["LFoot"], "RAnkle": h36m["RFoot"]}
    return np.stack([source.get(name, h36m.get(name)) for name in COCO_KEYPOINTS], axis=1)


def write_mmpose_json(path: str, coco: np.ndarray) -> None:
    frames = []
    for t, kp in enumerate(coco):
        lo, hi = kp.min(axis=0) - 20, kp.max(axis=0) + 20
        frames.append({"frame_id": t + 1, "instances": [{
            "keypoints": np.round(kp, 2).tolist(), "keypoint_scores": [0.9] * len(kp),
            "bbox": [[*lo.tolist(), *hi.tolist()]], "bbox_score": 0.99}]})
    with open(path, "w") as fp:
        json.dump({"meta_info": {"dataset_name": "coco"}, "instance_info": frames}, fp)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bvh", nargs="*", help="BVH files or folders (or give --motion)")
    p.add_argument("--motion", default=None, help="a motion .npz made by 'data bvh' instead of BVH files")
    p.add_argument("--out", default=os.path.join("runs", "keypoints_to_3d"), help="folder for every output")
    p.add_argument("--steps", type=int, default=3000, help="training steps")
    p.add_argument("--frame", type=int, default=150, help="the frame of the test clip shown in the PNG")
    args = p.parse_args()
    if not args.bvh and not args.motion:
        p.error("give BVH files or folders, or --motion motion.npz")
    os.makedirs(args.out, exist_ok=True)
    motion = args.motion or os.path.join(args.out, "motion.npz")
    if not args.motion:
        run("data", "bvh", *args.bvh, "-o", motion, "--split", "every:3", "--overwrite")

    run_dir = os.path.join(args.out, "train")
    steps_per_epoch = 100
    run("train", "--data", motion, "--model", "mixste", "--config", "small", "--hot", "--prune-block", "1",
        "--tokens", "9", "--epochs", str(max(1, args.steps // steps_per_epoch)), "--steps-per-epoch",
        str(steps_per_epoch), "--batch-size", "16", "--lr", "1e-3", "--eval-frame-stride", "4", "--threads", "1",
        "--out", run_dir, "--no-progress")

    clip = load_cmu(motion).clips("test")[0]
    camera = random_virtual_cameras(clip, 1, 7)[0]
    keypoints = os.path.join(args.out, "detections.json")
    write_mmpose_json(keypoints, coco_from_h36m(camera.project(clip)))
    poses = os.path.join(args.out, "poses_3d.npz")
    run("predict", "--checkpoint", os.path.join(run_dir, "best.pt"), "--keypoints", keypoints, "-o", poses,
        "--width", str(WIDTH), "--height", str(HEIGHT), "--render", os.path.join(args.out, "poses_3d.gif"),
        "--render-fps", "50", "--render-step", "2", "--overwrite", "--no-progress")

    result = np.load(poses)
    frame = min(args.frame, len(result["poses_3d"]) - 1)
    picture = os.path.join(args.out, "frame.png")
    render_frame(result["keypoints_2d"], result["poses_3d"], picture, frame, width=WIDTH, height=HEIGHT)
    print(f"3D poses {result['poses_3d'].shape} in {poses}; frame {frame} drawn in {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
