"""``python -m hourglass_tokenizer predict``: 3D poses from a checkpoint and a 2D detector's keypoints.

    python -m hourglass_tokenizer predict --checkpoint best.pt --keypoints video.json -o poses.npz \\
        --width 1920 --height 1080 --render poses.gif

The keypoint file is read by :func:`hourglass_tokenizer.data.keypoints.read_keypoints` (MMPose/RTMPose
JSON, an OpenPose folder, AlphaPose JSON, VideoPose3D's custom npz or a ``(T, 17, 2|3)`` npz), one
person per frame, mapped to Human3.6M's 17 joints, gaps filled by interpolation, and normalised as
VideoPose3D does with the image size (``--width/--height``, or the file's own). A model that takes
``(x, y, confidence)`` gets the detector's scores as its third channel. The model comes from the
checkpoint (:func:`hourglass_tokenizer.training.checkpoints.load_model`): a checkpoint written by
``train`` describes its model; an upstream one needs ``--model`` (and ``--config``/``--model-arg``).

The output ``.npz`` holds ``poses_3d`` ``(T, 17, 3)`` (the model's output: for the built-in training,
metres in the camera's coordinates, relative to the pelvis) and what produced it: ``keypoints_2d``
(pixels, after mapping and filling), ``scores``, ``frame_ids``, ``missing_frames`` (frames with nobody,
filled), ``filled`` (per joint), ``person_indices``, ``person``, ``width``, ``height``,
``normalisation``, ``input_channels``, ``num_frames`` (the model's window), ``flip``, ``format``,
``layout``, ``joint_names``, ``keypoints_file`` and ``checkpoint``.
"""
from __future__ import annotations

import ast
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..cli_support import OneLineParser, UsageError, check_device, command_name, int_at_least, number_at_least, \
    one_line, run_command
from ..data.keypoints import FORMATS, Keypoints2D, network_input, read_keypoints
from ..data.skeleton import JOINT_NAMES
from ..files import atomic_write, check_output_file
from .inference import model_input_channels, model_num_frames, predict

__all__ = ["build_parser", "main", "NORMALISATION"]

NORMALISATION = "x / width * 2 - [1, height / width] (VideoPose3D's normalised screen coordinates)"


def build_parser(prog: str = "python -m hourglass_tokenizer predict") -> OneLineParser:
    """The ``predict`` command's argument parser."""
    p = OneLineParser(prog=prog, description=(
        "Lift a 2D keypoint track from a pose detector to 3D poses with a trained video pose transformer "
        "(HoT-wrapped or not), and optionally render the result."))
    io = p.add_argument_group("input and output")
    io.add_argument("--checkpoint", required=True, metavar="FILE",
                    help="a checkpoint written by 'train' (it describes its model), or an upstream one with --model")
    io.add_argument("--keypoints", required=True, metavar="INPUT",
                    help="MMPose/RTMPose JSON, an OpenPose --write_json folder, AlphaPose JSON, VideoPose3D's "
                         "data_2d_custom_*.npz, or an npz with one (T, 17, 2|3) array in Human3.6M order (pixels)")
    io.add_argument("-o", "--out", required=True, metavar="FILE", help="output .npz of 3D poses")
    io.add_argument("--format", default="auto", choices=("auto",) + FORMATS, help="input format (default: from the content)")
    io.add_argument("--width", type=number_at_least(0, inclusive=False), default=None,
                    help="image width in pixels (default: from the file, when it records it)")
    io.add_argument("--height", type=number_at_least(0, inclusive=False), default=None, help="image height in pixels")
    io.add_argument("--person", type=int_at_least(0), default=None, metavar="INDEX",
                    help="use each frame's INDEX-th detection (file order); default: the largest box")
    io.add_argument("--video", default=None, help="the video of a VideoPose3D file that holds several")
    io.add_argument("--overwrite", action="store_true", help="replace existing output files")
    m = p.add_argument_group("model (for checkpoints that do not describe their model)")
    m.add_argument("--model", default=None, help="zoo model name (mixste, motionbert, poseformer, motionagformer) or "
                                                 "a factory 'pkg.module:fn' / 'file.py:fn'")
    m.add_argument("--config", default=None, help="zoo configuration name")
    m.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE", help="constructor argument, repeatable")
    m.add_argument("--trust-checkpoint", action="store_true",
                   help="load a checkpoint that pickles objects, or import the factory it names: only for files "
                        "from a source you trust (loading can run code)")
    r = p.add_argument_group("run")
    r.add_argument("--flip", action="store_true", help="flip test-time augmentation")
    r.add_argument("--batch-size", type=int_at_least(1), default=4, help="windows per forward pass (default: 4)")
    r.add_argument("--device", default="cpu", help="cpu or cuda[:index] (default: cpu)")
    r.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    v = p.add_argument_group("rendering")
    v.add_argument("--render", default=None, metavar="FILE",
                   help="also write the 2D input beside the 3D skeleton: a .gif, or an .mp4 (needs ffmpeg); needs "
                        "matplotlib (pip install 'hourglass_tokenizer[bench]')")
    v.add_argument("--render-fps", type=number_at_least(0, inclusive=False), default=25.0,
                   help="frame rate of the input video, for the rendering (default: 25)")
    v.add_argument("--render-step", type=int_at_least(1), default=1, help="render every N-th frame (default: 1)")
    return p


def _model_kwargs(pairs: Sequence[str]) -> Dict[str, Any]:
    kwargs = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--model-arg {pair!r}: expected KEY=VALUE")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text  # a bare string
    return kwargs


def _frame_ranges(ids: np.ndarray, limit: int = 8) -> str:
    """``3-5, 9, 12-20`` for sorted frame numbers, at most ``limit`` runs."""
    runs: List[str] = []
    start = prev = None
    for i in list(ids) + [None]:
        if start is not None and (i is None or i != prev + 1):
            runs.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(runs[:limit]) + (f", ... ({len(runs)} runs)" if len(runs) > limit else "")


def _check_outputs(args: Any) -> None:
    """Every output path is checked before any work."""
    check_output_file(args.out, overwrite=args.overwrite)
    if args.render is not None:
        from ..render import RenderError, check_render_path

        if os.path.abspath(args.render) == os.path.abspath(args.out):
            raise UsageError("--render and -o name the same file")
        check_output_file(args.render, overwrite=args.overwrite)
        try:
            check_render_path(args.render)
        except RenderError as exc:
            raise UsageError(f"--render: {exc}") from None
    if (args.width is None) != (args.height is None):
        raise UsageError("give both --width and --height, or neither")


def _load(args: Any, device: torch.device) -> torch.nn.Module:
    from .checkpoints import load_model

    try:
        return load_model(args.checkpoint, name=args.model, config=args.config,
                          model_kwargs=_model_kwargs(args.model_arg) or None, trusted=args.trust_checkpoint,
                          map_location=device)
    except (ValueError, RuntimeError, KeyError, TypeError, ImportError, AttributeError) as exc:
        from ..files import FileReadError
        from .checkpoints import CheckpointMismatchError

        if isinstance(exc, FileReadError):  # missing, unsafe or unreadable: run_command reports it as it is
            raise
        message = one_line(exc)
        where = "--checkpoint" if args.checkpoint in message else f"--checkpoint {args.checkpoint}"
        hint = ("; on the command line: --model NAME [--config NAME] [--model-arg KEY=VALUE ...]"
                if args.model is None and not isinstance(exc, CheckpointMismatchError) else "")
        raise UsageError(f"{where}: {message}{hint}") from None


def _write(path: str, poses: np.ndarray, track: Keypoints2D, *, width: float, height: float, args: Any,
           channels: int, num_frames: int) -> None:
    person = "largest box" if args.person is None else f"index {args.person}"
    with atomic_write(path) as tmp, open(tmp, "wb") as fp:
        np.savez(fp, poses_3d=poses.astype(np.float32), keypoints_2d=track.keypoints, scores=track.scores,
                 frame_ids=track.frame_ids, missing_frames=track.missing_frames, filled=track.filled,
                 person_indices=track.person_indices, person=np.str_(person), width=np.float64(width),
                 height=np.float64(height), normalisation=np.str_(NORMALISATION), input_channels=np.int64(channels),
                 num_frames=np.int64(num_frames), flip=np.bool_(args.flip),
                 format=np.str_(track.format), layout=np.str_(track.layout), joint_names=np.array(JOINT_NAMES),
                 keypoints_file=np.str_(os.path.abspath(args.keypoints)),
                 checkpoint=np.str_(os.path.abspath(args.checkpoint)))


def _run(args: Any) -> int:
    _check_outputs(args)
    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    track = read_keypoints(args.keypoints, args.format, person=args.person, video=args.video)
    width = args.width if args.width is not None else track.width
    height = args.height if args.height is not None else track.height
    if width is None or height is None:
        raise UsageError(f"{args.keypoints} does not record the image size: pass --width and --height (the "
                         "video's size in pixels)")
    model = _load(args, device)
    try:
        num_frames = model_num_frames(model)
    except ValueError as exc:
        raise UsageError(f"--checkpoint {args.checkpoint}: {exc}") from None
    channels = model_input_channels(model)
    if channels not in (2, 3):
        raise UsageError(f"--checkpoint {args.checkpoint}: the model takes {channels} channels per joint; predict "
                         "gives it 2 (x, y) or 3 (x, y, score)")
    inputs = network_input(track, width, height, channels)
    poses = predict(model, inputs, flip=args.flip, batch_size=args.batch_size,
                    progress=False if args.no_progress else None)
    _write(args.out, poses, track, width=width, height=height, args=args, channels=channels, num_frames=num_frames)
    missing = track.frame_ids[track.missing_frames]
    note = (f"; {len(missing)} frame(s) with nobody, filled by interpolation: frames {_frame_ranges(missing)}"
            if len(missing) else "")
    print(f"{len(track)} frames ({track.format}, {track.layout}) -> {args.out}{note}", file=sys.stderr)
    if args.render is not None:
        from ..render import render_animation

        count = render_animation(track.keypoints, poses, args.render, width=width, height=height,
                                 fps=args.render_fps, step=args.render_step, frame_ids=track.frame_ids,
                                 filled=track.missing_frames, progress=False if args.no_progress else None)
        print(f"rendered {count} frames -> {args.render}", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m hourglass_tokenizer predict``."""
    prog = command_name("predict")
    parser = build_parser(prog)
    return run_command(prog, lambda: _run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
