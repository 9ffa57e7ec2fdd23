"""Pictures of a result: the 2D input beside the 3D skeleton, as a GIF, an MP4 or one PNG frame.

matplotlib draws (the ``bench`` extra: ``pip install 'hourglass_tokenizer[bench]'``); Pillow, which
comes with fvcore, writes GIFs; an MP4 is piped to ``ffmpeg``, which must be on ``PATH``. A GIF keeps
every frame in memory until it is written (about 0.3 MB per frame at the default size): for long
inputs render an MP4, or every ``step``-th frame.

The 3D panel shows each pose relative to its root joint (pelvis), in camera coordinates as the
built-in models predict them (x right, y down, z away from the camera), drawn with up as up.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .data.skeleton import JOINTS_LEFT, JOINTS_RIGHT, PARENTS, ROOT_JOINT
from .display import progress_bar
from .files import atomic_write

__all__ = ["RenderError", "RENDER_FORMATS", "check_render_path", "render_animation", "render_frame"]

PathLike = Union[str, "os.PathLike[str]"]

#: Output extensions :func:`render_animation` writes.
RENDER_FORMATS: Tuple[str, ...] = (".gif", ".mp4")
_BONES = [(j, p) for j, p in enumerate(PARENTS) if p >= 0]
_LEFT, _RIGHT = set(JOINTS_LEFT), set(JOINTS_RIGHT)


class RenderError(ValueError):
    """A rendering request that cannot be met: a missing tool or an unsupported output."""


def _colour(joint: int) -> str:
    return "tab:blue" if joint in _LEFT else "tab:red" if joint in _RIGHT else "0.2"


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RenderError("rendering needs matplotlib: pip install 'hourglass_tokenizer[bench]'") from None
    matplotlib.use("Agg")
    return matplotlib


def check_render_path(path: PathLike) -> str:
    """Check, before any work, that ``path`` can be rendered here: a ``.gif`` or ``.mp4`` name,
    matplotlib installed, and ``ffmpeg`` on ``PATH`` for an MP4. Returns the extension.

    Raises:
        RenderError: with a one-line reason and what to install.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in RENDER_FORMATS:
        raise RenderError(f"cannot render {os.fspath(path)!r}: give a .gif or .mp4 name")
    _matplotlib()
    if ext == ".mp4" and shutil.which("ffmpeg") is None:
        raise RenderError("rendering an .mp4 needs ffmpeg on PATH; install it or render a .gif")
    return ext


class _Figure:
    """One figure, two panels; :meth:`draw` updates the artists and returns the RGB pixels."""

    def __init__(self, region: Tuple[float, float, float, float], radius: float, size_px: Tuple[int, int],
                 dpi: int = 100):
        _matplotlib()
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.figure = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self.ax2d = self.figure.add_subplot(1, 2, 1)
        self.ax3d = self.figure.add_subplot(1, 2, 2, projection="3d")
        self.ax2d.set_xlim(region[0], region[2])
        self.ax2d.set_ylim(region[3], region[1])  # image rows grow downwards
        self.ax2d.set_aspect("equal")
        self.ax2d.set_title("2D input (image pixels)", fontsize=9)
        self.ax2d.tick_params(labelsize=7)
        for set_lim in (self.ax3d.set_xlim, self.ax3d.set_ylim, self.ax3d.set_zlim):
            set_lim(-radius, radius)
        self.ax3d.set_box_aspect((1, 1, 1))
        self.ax3d.view_init(elev=15, azim=-35)  # turned from the camera, so depth shows
        self.ax3d.set_title("3D (root-relative)", fontsize=9)
        self.ax3d.tick_params(labelsize=6)
        self.lines2d = [self.ax2d.plot([], [], color=_colour(j), lw=2)[0] for j, _ in _BONES]
        self.lines3d = [self.ax3d.plot([], [], [], color=_colour(j), lw=2)[0] for j, _ in _BONES]
        self.label = self.figure.text(0.5, 0.02, "", ha="center", fontsize=8)
        self.figure.subplots_adjust(left=0.06, right=0.98, top=0.92, bottom=0.1, wspace=0.1)

    def draw(self, keypoints: np.ndarray, pose: np.ndarray, label: str) -> np.ndarray:
        # camera (x right, y down, z forward) -> plot (x, depth, up)
        p = pose - pose[ROOT_JOINT]
        shown = np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=-1)
        for (j, parent), line2d, line3d in zip(_BONES, self.lines2d, self.lines3d):
            line2d.set_data(keypoints[[j, parent], 0], keypoints[[j, parent], 1])
            line3d.set_data_3d(shown[[j, parent], 0], shown[[j, parent], 1], shown[[j, parent], 2])
        self.label.set_text(label)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        self.figure.clear()


def _region(keypoints: np.ndarray, width: float, height: float) -> Tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` of the 2D panel: the part of the image the keypoints cover in any frame, with a
    margin of a tenth of its size, inside the image (a small person far away stays readable)."""
    finite = keypoints[np.isfinite(keypoints).all(axis=-1)]
    if not len(finite):
        return 0.0, 0.0, float(width), float(height)
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    margin = 0.1 * max(hi[0] - lo[0], hi[1] - lo[1], 1.0)
    return (max(lo[0] - margin, 0.0), max(lo[1] - margin, 0.0), min(hi[0] + margin, float(width)),
            min(hi[1] + margin, float(height)))


def _radius(poses: np.ndarray) -> float:
    relative = poses - poses[:, ROOT_JOINT:ROOT_JOINT + 1]
    finite = relative[np.isfinite(relative)]
    return float(max(np.abs(finite).max() if finite.size else 0.0, 1e-3) * 1.1)


def _checked(keypoints_2d: np.ndarray, poses_3d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    kp, poses = np.asarray(keypoints_2d, np.float64), np.asarray(poses_3d, np.float64)
    if kp.ndim != 3 or kp.shape[-1] < 2 or poses.ndim != 3 or poses.shape[-1] != 3:
        raise ValueError(f"expected keypoints (T, J, 2) and poses (T, J, 3), got {kp.shape} and {poses.shape}")
    if len(kp) != len(poses) or kp.shape[1] != poses.shape[1] or len(kp) == 0:
        raise ValueError(f"keypoints {kp.shape} and poses {poses.shape} should have the same frames and joints")
    return kp[..., :2], poses


def _even(size_px: Tuple[int, int]) -> Tuple[int, int]:
    return (int(size_px[0]) // 2 * 2, int(size_px[1]) // 2 * 2)  # yuv420p needs even sizes


def render_animation(keypoints_2d: np.ndarray, poses_3d: np.ndarray, path: PathLike, *, width: float,
                     height: float, fps: float = 25.0, step: int = 1, size_px: Tuple[int, int] = (800, 400),
                     frame_ids: Optional[Sequence[int]] = None, filled: Optional[Sequence[bool]] = None,
                     progress: Optional[bool] = None) -> int:
    """Write a GIF or MP4 (by ``path``'s extension) of the 2D input beside the 3D skeleton.

    Args:
        keypoints_2d: ``(T, 17, 2)`` pixels of a ``width`` x ``height`` image; the 2D panel shows the part
            of the image the keypoints cover over the whole sequence.
        poses_3d: ``(T, 17, 3)`` camera-frame poses (any unit: the axes fit the sequence).
        fps: frames per second of the output (divided by ``step``, so the motion keeps its speed).
        step: draw every ``step``-th frame.
        size_px: ``(width, height)`` of the picture in pixels (made even).
        frame_ids: frame numbers shown under each picture (default: 0, 1, ...).
        filled: ``(T,)`` frames whose input was interpolated (marked in the picture).
        progress: progress bar on stderr (``None``: only when stderr is a terminal).

    Returns:
        The number of frames written. The file is written atomically.

    Raises:
        RenderError: see :func:`check_render_path`.
    """
    ext = check_render_path(path)
    kp, poses = _checked(keypoints_2d, poses_3d)
    if step < 1 or fps <= 0:
        raise ValueError(f"step must be >= 1 and fps > 0, got step={step}, fps={fps}")
    ids = np.arange(len(kp)) if frame_ids is None else np.asarray(frame_ids)
    marks = np.zeros(len(kp), bool) if filled is None else np.asarray(filled, bool)
    size = _even(size_px)
    figure = _Figure(_region(kp, width, height), _radius(poses), size)
    chosen = range(0, len(kp), step)
    rate = fps / step

    def pictures():
        with progress_bar(len(chosen), "render", show=progress, unit="frame") as bar:
            for t in chosen:
                note = "  (no detection: interpolated)" if marks[t] else ""
                yield figure.draw(kp[t], poses[t], f"frame {ids[t]}{note}")
                bar.update(1)

    try:
        with atomic_write(path) as tmp:
            if ext == ".gif":
                count = _write_gif(pictures(), tmp, rate)
            else:
                count = _write_mp4(pictures(), tmp, rate, size)
    finally:
        figure.close()
    return count


def _write_gif(pictures: Any, path: str, fps: float) -> int:
    from PIL import Image

    frames: List[Any] = [Image.fromarray(p).quantize(colors=64) for p in pictures]
    # Pillow merges a frame equal to the previous one into it; the frame number drawn on each keeps them apart
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=int(round(1000 / fps)),
                   loop=0, optimize=False, disposal=1)
    return len(frames)


def _write_mp4(pictures: Any, path: str, fps: float, size: Tuple[int, int]) -> int:
    command = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
               f"{size[0]}x{size[1]}", "-r", f"{fps:g}", "-i", "-", "-an", "-pix_fmt", "yuv420p", path]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    count = 0
    try:
        for picture in pictures:
            process.stdin.write(np.ascontiguousarray(picture).tobytes())
            count += 1
    finally:
        process.stdin.close()
        error = process.stderr.read().decode(errors="replace").strip()
        process.wait()
    if process.returncode:
        raise RenderError(f"ffmpeg failed: {error.splitlines()[-1] if error else f'exit {process.returncode}'}")
    return count


def render_frame(keypoints_2d: np.ndarray, poses_3d: np.ndarray, path: PathLike, frame: int = 0, *,
                 width: float, height: float, size_px: Tuple[int, int] = (800, 400)) -> None:
    """Write one frame of :func:`render_animation`'s picture as an image (PNG by ``path``'s extension)."""
    kp, poses = _checked(keypoints_2d, poses_3d)
    if not -len(kp) <= frame < len(kp):
        raise IndexError(f"frame {frame} outside 0..{len(kp) - 1}")
    from PIL import Image

    figure = _Figure(_region(kp, width, height), _radius(poses), _even(size_px))
    try:
        picture = figure.draw(kp[frame], poses[frame], f"frame {frame % len(kp)}")
    finally:
        figure.close()
    with atomic_write(path) as tmp:
        Image.fromarray(picture).save(tmp)
