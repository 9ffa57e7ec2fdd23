"""Whole-sequence 3D pose prediction with a fixed-length video pose transformer.

``predict`` slides the model's window of ``T`` frames over a sequence of any length:

* seq2seq models (output ``(b, T, J, 3)``, e.g. MixSTE, or HoT with TRA): non-overlapping windows
  ``[0, T), [T, 2T), ...``, the last one aligned to the end of the sequence, so every frame is
  predicted exactly once (frames the last window shares with the previous one keep the previous
  prediction). Sequences shorter than ``T`` are edge-padded on both sides.
* seq2frame models (output ``(b, 1, J, 3)``, e.g. PoseFormer, or a TPC-only HoT model built with
  ``recover=False``): one window per frame, centred on it (centre index ``(T - 1) // 2``), edge-padded
  at the clip's ends; the window's centre-frame output is the frame's prediction.

Inputs are 2D keypoints in the model's coordinates (normalised screen coordinates for the built-in
models, see :func:`hourglass_tokenizer.data.normalize_screen_coordinates`); flip test-time
augmentation mirrors them by negating x, which assumes x is centred on the image.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..data.skeleton import flip_pose
from ..core.modes import evaluation_mode
from ..data.windows import centred_start
from ..display import progress_bar

__all__ = ["predict", "is_seq2frame", "detect_seq2frame", "select_prediction", "model_num_frames",
           "model_input_channels"]


def model_num_frames(model: nn.Module, num_frames: Optional[int] = None) -> int:
    """The window length ``T``: ``num_frames`` if given, else the model's ``num_frames`` attribute
    (or ``model.hot.frames`` for a HoT model)."""
    if num_frames is not None:
        return int(num_frames)
    for owner, name in ((model, "num_frames"), (getattr(model, "hot", None), "frames"),
                        (model, "num_frame"), (model, "maxlen")):
        value = getattr(owner, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError("cannot tell the model's window length: pass num_frames=")


def _hot_without_recovery(model: nn.Module) -> bool:
    hot = getattr(model, "hot", None)
    return hot is not None and getattr(hot, "recover", True) is False


def is_seq2frame(model: nn.Module, output: Optional[torch.Tensor] = None) -> bool:
    """Whether ``model`` predicts only the centre frame of its window.

    True for a HoT model wrapped with ``recover=False`` (TPC only), or when ``output`` (a forward
    output of shape ``(b, T_out, J, C)``) has a single frame.
    """
    if _hot_without_recovery(model):
        return True
    return output is not None and output.shape[1] == 1


def select_prediction(model: nn.Module, output: torch.Tensor, num_frames: int) -> torch.Tensor:
    """The frames of ``output`` that are predictions: all ``T`` frames for seq2seq models, or the
    centre frame ``(b, 1, J, C)`` for seq2frame models (output ``T == 1``, or the centre frame
    ``(T - 1) // 2`` of a TPC-only HoT model, whose other frames are copies of kept frames)."""
    if output.shape[1] == 1:
        return output
    if _hot_without_recovery(model):
        centre = (num_frames - 1) // 2
        return output[:, centre:centre + 1]
    if output.shape[1] != num_frames:
        raise ValueError(f"model output has {output.shape[1]} frames; expected 1 or {num_frames}")
    return output


def _device_dtype(model: nn.Module) -> Tuple[torch.device, torch.dtype]:
    param = next(model.parameters(), None)
    return (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)


def detect_seq2frame(model: nn.Module, num_frames: Optional[int] = None, num_joints: int = 17,
                     in_chans: int = 2) -> bool:
    """Whether ``model`` is seq2frame, from one forward pass on a zero window when the model itself
    does not say so (a TPC-only HoT model does). Runs in eval mode under ``no_grad``."""
    if _hot_without_recovery(model):
        return True
    t = model_num_frames(model, num_frames)
    device, dtype = _device_dtype(model)
    with evaluation_mode(model), torch.no_grad():
        return is_seq2frame(model, model(torch.zeros(1, t, num_joints, in_chans, device=device, dtype=dtype)))


def _seq2seq_starts(n: int, t: int) -> list:
    if n <= t:
        return [-((t - n) // 2)]  # one window, the sequence in the middle, edges replicated
    starts = list(range(0, n - t + 1, t))
    if starts[-1] + t < n:
        starts.append(n - t)  # the last window ends at the last frame
    return starts


def model_input_channels(model: nn.Module, default: int = 2) -> int:
    """Channels per input joint the model takes: its ``in_chans`` (the zoo models: 2 for ``x, y``, 3 for
    ``x, y, confidence`` as MotionBERT and MotionAGFormer take), else ``default``."""
    for name in ("in_chans", "dim_in", "in_channels"):
        value = getattr(model, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


class _Windows:
    """Edge-padded windows of ``keypoints`` starting at ``starts``, cut batch by batch (a seq2frame model
    has one window per frame: cutting them all at once would hold ``T`` copies of the sequence)."""

    def __init__(self, keypoints: np.ndarray, starts: Sequence[int], t: int, device: torch.device,
                 dtype: torch.dtype):
        self.keypoints, self.starts, self.t = keypoints, np.asarray(starts, np.int64), t
        self.device, self.dtype = device, dtype

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, lo: int, hi: int) -> torch.Tensor:
        idx = np.clip(self.starts[lo:hi, None] + np.arange(self.t), 0, len(self.keypoints) - 1)
        return torch.from_numpy(self.keypoints[idx]).to(device=self.device, dtype=self.dtype)


def _finish(model: nn.Module, x: torch.Tensor, output: torch.Tensor, t: int, flip: bool) -> np.ndarray:
    """The prediction frames of ``output`` (``model(x)``), averaged with the mirrored input's when ``flip``."""
    y = select_prediction(model, output, t)
    if flip:
        y = (y + flip_pose(select_prediction(model, model(flip_pose(x)), t))) / 2
    return y.float().cpu().numpy()


@torch.no_grad()
def _run(model: nn.Module, windows: _Windows, batch_size: int, t: int, flip: bool, progress: Optional[bool],
         done: Optional[np.ndarray] = None) -> np.ndarray:
    """Predictions of every window, batch by batch; ``done`` holds those of the first windows when a
    probe already computed them."""
    outs = [] if done is None else [done]
    with progress_bar(len(windows), "predict", show=progress, unit="window") as bar:
        bar.update(0 if done is None else len(done))
        for lo in range(0 if done is None else len(done), len(windows), batch_size):
            x = windows.batch(lo, lo + batch_size)
            outs.append(_finish(model, x, model(x), t, flip))
            bar.update(len(x))
    return np.concatenate(outs, axis=0)


def predict(model: nn.Module, keypoints_2d: Union[np.ndarray, torch.Tensor], *, flip: bool = False,
            batch_size: int = 64, num_frames: Optional[int] = None,
            frames: Optional[Sequence[int]] = None, seq2frame: Optional[bool] = None,
            progress: Optional[bool] = False) -> np.ndarray:
    """Predict 3D poses ``(N, J, 3)`` for a 2D keypoint sequence ``(N, J, C)`` of any length ``N``.

    Args:
        model: a video pose transformer taking ``(b, T, J, C)`` (HoT-wrapped or not). It is run in
            eval mode under ``no_grad``; its training flag is restored afterwards.
        keypoints_2d: ``(N, J, C)`` array or tensor (``C`` as the model takes, see
            :func:`model_input_channels`).
        flip: flip test-time augmentation: also predict the mirrored input and average it with the
            prediction, mirrored back (left/right joints swapped back, x negated).
        batch_size: windows per forward pass.
        num_frames: window length ``T``; defaults to ``model.num_frames`` (see :func:`model_num_frames`).
        frames: only predict these frame indices (returns ``(len(frames), J, 3)``). For seq2frame
            models this runs only their windows, which makes evaluating on a subset of frames cheap.
        seq2frame: whether the model is seq2frame; ``None`` tells from the output of the first batch of
            seq2seq windows (for a seq2seq model that batch is part of the prediction, so nothing runs
            twice; a seq2frame model pays one extra batch).
        progress: a progress bar over the windows on stderr: ``True``, ``False`` (default) or ``None``
            (only when stderr is a terminal).

    Returns:
        float32 numpy array ``(N, J, out)`` (or ``(len(frames), J, out)``), in the model's output units.
    """
    t = model_num_frames(model, num_frames)
    kp = keypoints_2d.detach().cpu().numpy() if isinstance(keypoints_2d, torch.Tensor) else np.asarray(keypoints_2d)
    kp = kp.astype(np.float32, copy=False)
    if kp.ndim != 3 or len(kp) == 0:
        raise ValueError(f"expected keypoints of shape (N, J, C) with N >= 1, got {kp.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(kp)
    wanted = np.arange(n) if frames is None else np.asarray(frames, dtype=np.int64)
    if wanted.size and (wanted.min() < 0 or wanted.max() >= n):
        raise IndexError(f"frames must lie in 0..{n - 1}")
    device, dtype = _device_dtype(model)
    starts = _seq2seq_starts(n, t)
    windows = _Windows(kp, starts, t, device, dtype)

    with evaluation_mode(model), torch.no_grad():
        done = None
        if seq2frame is None:
            x = windows.batch(0, batch_size)
            output = model(x)
            seq2frame = is_seq2frame(model, output)
            done = None if seq2frame else _finish(model, x, output, t, flip)
        if seq2frame:
            if not wanted.size:
                return np.zeros((0, kp.shape[1], 3), np.float32)
            centred = _Windows(kp, [centred_start(int(c), t) for c in wanted], t, device, dtype)
            return _run(model, centred, batch_size, t, flip, progress)[:, 0]
        out = _run(model, windows, batch_size, t, flip, progress, done)
        pred = np.empty((n,) + out.shape[2:], np.float32)
        covered = 0  # frames [0, covered) already have a prediction
        for s, window_out in zip(starts, out):
            lo, hi = max(covered, s, 0), min(s + t, n)
            pred[lo:hi] = window_out[lo - s:hi - s]
            covered = max(covered, hi)
        return pred[wanted]
