"""Rendering: GIF frame count and size, the 2D panel drawn where the keypoints are, one PNG frame,
and the checks made before any work."""
import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="rendering needs the bench extra (matplotlib)")
from PIL import Image  # noqa: E402  (Pillow comes with fvcore)

from hourglass_tokenizer.render import RenderError, check_render_path, render_animation, render_frame  # noqa: E402


def skeleton(t, rng, centre_x):
    kp = np.stack([centre_x + 40 * rng.standard_normal((t, 17)), 500 + 150 * rng.standard_normal((t, 17))], -1)
    poses = 0.3 * rng.standard_normal((t, 17, 3))
    return kp, poses


def test_gif_has_one_frame_per_step_at_the_requested_size(tmp_path):
    kp, poses = skeleton(7, np.random.default_rng(0), 500.0)
    path = tmp_path / "a.gif"
    assert render_animation(kp, poses, path, width=1000, height=1000, step=2, size_px=(321, 200),
                            progress=False) == 4
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (320, 200)  # made even
        assert gif.info["duration"] == 80  # 25 fps / step 2 = 12.5 frames per second
    assert not [p for p in tmp_path.iterdir() if p.name != "a.gif"]  # no temporary file left


def test_a_still_pose_keeps_one_frame_per_input_frame(tmp_path):
    """The frame number under each picture makes every frame distinct (GIF writers merge equal ones)."""
    kp, poses = skeleton(1, np.random.default_rng(1), 500.0)
    kp, poses = np.repeat(kp, 3, axis=0), np.repeat(poses, 3, axis=0)
    render_animation(kp, poses, tmp_path / "still.gif", width=1000, height=1000, progress=False)
    with Image.open(tmp_path / "still.gif") as gif:
        assert gif.n_frames == 3


def test_2d_panel_follows_the_keypoints(tmp_path):
    rng = np.random.default_rng(2)
    left, poses = skeleton(1, rng, 150.0)
    right, _ = skeleton(1, rng, 850.0)
    render_animation(np.concatenate([left, right]), np.repeat(poses, 2, axis=0), tmp_path / "lr.gif", width=1000,
                     height=1000, size_px=(400, 200), progress=False)
    with Image.open(tmp_path / "lr.gif") as gif:
        frames = []
        for i in range(2):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB"), np.float64))
    # the 2D panel is the left half of the picture; colour (not grey) marks the limbs
    colour = [np.abs(f[:, :200] - f[:, :200].mean(axis=-1, keepdims=True)).sum(axis=-1) > 60 for f in frames]
    cols = [np.flatnonzero(c.any(axis=0)) for c in colour]
    assert cols[0].mean() < cols[1].mean() - 40


def test_one_png_frame(tmp_path):
    kp, poses = skeleton(3, np.random.default_rng(3), 500.0)
    render_frame(kp, poses, tmp_path / "f.png", 2, width=1000, height=1000, size_px=(500, 250))
    with Image.open(tmp_path / "f.png") as png:
        assert png.size == (500, 250) and png.format == "PNG"
    with pytest.raises(IndexError):
        render_frame(kp, poses, tmp_path / "g.png", 3, width=1000, height=1000)


def test_checks_before_any_work(tmp_path, monkeypatch):
    kp, poses = skeleton(2, np.random.default_rng(4), 500.0)
    with pytest.raises(RenderError, match="give a .gif or .mp4 name"):
        render_animation(kp, poses, tmp_path / "a.webm", width=10, height=10)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RenderError, match="needs ffmpeg"):
        check_render_path(tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="same frames and joints"):
        render_animation(kp, poses[:1], tmp_path / "a.gif", width=10, height=10)


def test_mp4_where_ffmpeg_exists(tmp_path):
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not on PATH: MP4 rendering is not available on this machine")
    kp, poses = skeleton(5, np.random.default_rng(5), 500.0)
    assert render_animation(kp, poses, tmp_path / "a.mp4", width=1000, height=1000, progress=False) == 5
    assert (tmp_path / "a.mp4").stat().st_size > 0
