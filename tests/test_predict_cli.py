"""``python -m hourglass_tokenizer predict``: one test per input format, one per error (one line on
stderr, exit status 2), scores reaching only the models that take them, and seq2frame windows."""
import os

import numpy as np
import pytest
import torch

from hourglass_tokenizer.__main__ import main as package_main
from hourglass_tokenizer.data.keypoints import read_keypoints
from hourglass_tokenizer.models import build_model
from hourglass_tokenizer.training.checkpoints import load_model, save_checkpoint
from hourglass_tokenizer.training.predict_cli import main
from hourglass_tokenizer.wrapping import wrap_with_hot
from hourglass_tokenizer.data.keypoints import BODY25_KEYPOINTS
from keypoint_files import coco_track, h36m_reference, mmpose_instance, write_json, write_openpose_folder

pytestmark = pytest.mark.usefixtures("one_thread")

T, W, H = 30, 1280.0, 720.0
TINY = dict(num_frames=9, embed_dim=16, depth=2)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    paths = {"plain": str(folder / "plain.pt"), "hot": str(folder / "hot.pt"),
             "scores": str(folder / "motionbert.pt"), "seq2frame": str(folder / "tpc.pt"),
             "bare": str(folder / "state_dict.pt")}
    save_checkpoint(paths["plain"], build_model("mixste", "small", **TINY))
    save_checkpoint(paths["hot"], wrap_with_hot(build_model("mixste", "small", **TINY), prune_block=1, tokens=3))
    save_checkpoint(paths["scores"], build_model("motionbert", "small", maxlen=9, depth=1))
    save_checkpoint(paths["seq2frame"], wrap_with_hot(build_model("mixste", "small", **TINY), prune_block=1,
                                                      tokens=3, recover=False))
    torch.save(build_model("mixste", "small", **TINY).state_dict(), paths["bare"])
    return paths


@pytest.fixture(scope="module")
def track():
    return coco_track(T, offset=(640.0, 360.0))


def mmpose_file(folder, coco, scores, name="video.json", nobody=()):
    frames = [{"frame_id": t + 1, "instances": [] if t in nobody else [mmpose_instance(coco[t], scores[t])]}
              for t in range(len(coco))]
    return write_json(os.path.join(folder, name), {"meta_info": {"dataset_name": "coco"}, "instance_info": frames})


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err


def manual_windows(model, x, t):
    """The seq2seq tiling written out: windows [0, t), [t, 2t), ..., then one ending at the last frame whose
    frames shared with the previous window keep the previous prediction."""
    n = len(x)
    out = np.empty((n, 17, 3), np.float32)
    with torch.no_grad():
        for s in range(0, n - t + 1, t):
            out[s:s + t] = model(torch.from_numpy(x[s:s + t])[None])[0].numpy()
        if n % t:
            last = model(torch.from_numpy(x[n - t:])[None])[0].numpy()
            out[n - n % t:] = last[t - n % t:]
    return out


# -- one test per input format ---------------------------------------------------------------------

def test_mmpose_json_to_3d_matches_the_model_on_hand_cut_windows(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    out = tmp_path / "poses.npz"
    code, err = run(["--checkpoint", checkpoints["hot"], "--keypoints", mmpose_file(tmp_path, coco, scores),
                     "-o", out, "--width", W, "--height", H], capsys)
    assert code == 0, err
    result = np.load(out)
    expected_2d, _ = h36m_reference(coco, scores)
    np.testing.assert_allclose(result["keypoints_2d"], expected_2d, atol=1e-3)
    x = np.stack([expected_2d[..., 0] / W * 2 - 1, expected_2d[..., 1] / W * 2 - H / W], axis=-1).astype(np.float32)
    model = load_model(checkpoints["hot"])
    np.testing.assert_allclose(result["poses_3d"], manual_windows(model, x, 9), atol=1e-4)
    assert result["frame_ids"].tolist() == list(range(1, T + 1))
    assert (float(result["width"]), float(result["height"]), int(result["input_channels"])) == (W, H, 2)
    assert str(result["person"]) == "largest box" and not result["missing_frames"].any()
    assert str(result["format"]) == "mmpose" and "VideoPose3D" in str(result["normalisation"])


def test_openpose_folder(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    folder = write_openpose_folder(tmp_path / "openpose", coco, scores, names=BODY25_KEYPOINTS)
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", folder, "-o", tmp_path / "o.npz",
                     "--width", W, "--height", H], capsys)
    assert code == 0, err
    result = np.load(tmp_path / "o.npz")
    np.testing.assert_allclose(result["keypoints_2d"], h36m_reference(coco, scores)[0], atol=1e-3)
    assert result["poses_3d"].shape == (T, 17, 3) and str(result["layout"]) == "body25"


def test_alphapose_json_with_frames_with_nobody_reported(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    halpe = np.concatenate([np.concatenate([coco, scores[..., None]], axis=-1), np.full((T, 9, 3), 5.0)], axis=1)
    data = [{"image_id": f"{t}.jpg", "category_id": 1, "keypoints": halpe[t].reshape(-1).tolist(), "score": 2.0,
             "box": [0, 0, 100, 200], "idx": 1} for t in range(T) if t not in (10, 11, 12, 20)]
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", write_json(tmp_path / "ap.json", data),
                     "-o", tmp_path / "o.npz", "--width", W, "--height", H], capsys)
    assert code == 0, err
    assert "4 frame(s) with nobody, filled by interpolation: frames 10-12, 20" in err
    result = np.load(tmp_path / "o.npz")
    assert np.flatnonzero(result["missing_frames"]).tolist() == [10, 11, 12, 20]
    assert str(result["layout"]) == "halpe26" and np.isfinite(result["poses_3d"]).all()


def test_videopose3d_custom_npz_takes_the_image_size_from_the_file(tmp_path, checkpoints, track, capsys):
    coco, _ = track
    path = str(tmp_path / "data_2d_custom_clip.npz")
    np.savez_compressed(path, positions_2d={"clip.mp4": {"custom": [coco.astype(np.float32)]}},
                        metadata={"layout_name": "coco", "num_joints": 17,
                                  "video_metadata": {"clip.mp4": {"w": int(W), "h": int(H)}}})
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", path, "-o", tmp_path / "o.npz"], capsys)
    assert code == 0, err
    result = np.load(tmp_path / "o.npz")
    assert (float(result["width"]), float(result["height"])) == (W, H)
    assert str(result["format"]) == "videopose3d"


def test_h36m_npz_and_our_own_output_read_back(tmp_path, checkpoints, capsys):
    rng = np.random.default_rng(4)
    kp = np.concatenate([rng.uniform(100, 900, (T, 17, 2)), rng.uniform(0.5, 1, (T, 17, 1))], axis=-1)
    path = str(tmp_path / "kp.npz")
    np.savez(path, keypoints_2d=kp.astype(np.float32))
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", path, "-o", tmp_path / "a.npz",
                     "--width", 1000, "--height", 1000], capsys)
    assert code == 0, err
    first = np.load(tmp_path / "a.npz")
    np.testing.assert_allclose(first["keypoints_2d"], kp[..., :2], atol=1e-4)
    # the output records the 2D it used and the image size, so it is itself a valid input
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", tmp_path / "a.npz", "-o",
                     tmp_path / "b.npz"], capsys)
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "b.npz")["poses_3d"], first["poses_3d"], atol=1e-5)


def test_package_entry_point_runs_predict(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    code = package_main(["predict", "--checkpoint", checkpoints["plain"], "--keypoints",
                         mmpose_file(tmp_path, coco, scores), "-o", str(tmp_path / "o.npz"), "--width", "1280",
                         "--height", "720", "--no-progress"])
    assert code == 0 and os.path.exists(tmp_path / "o.npz")


# -- what reaches the model ------------------------------------------------------------------------

def test_scores_reach_a_three_channel_model_and_not_a_two_channel_one(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    low = mmpose_file(tmp_path, coco, scores * 0.5, name="low.json")
    high = mmpose_file(tmp_path, coco, scores, name="high.json")
    results = {}
    for kind in ("scores", "plain"):
        for name, path in (("low", low), ("high", high)):
            out = tmp_path / f"{kind}_{name}.npz"
            code, err = run(["--checkpoint", checkpoints[kind], "--keypoints", path, "-o", out, "--width", W,
                             "--height", H], capsys)
            assert code == 0, err
            results[kind, name] = np.load(out)
    assert int(results["scores", "low"]["input_channels"]) == 3
    assert not np.allclose(results["scores", "low"]["poses_3d"], results["scores", "high"]["poses_3d"])
    np.testing.assert_array_equal(results["plain", "low"]["poses_3d"], results["plain", "high"]["poses_3d"])
    # the third channel is the mapped scores (derived joints: the minimum of their sources)
    model = load_model(checkpoints["scores"])
    track_high = read_keypoints(high)
    x = np.concatenate([np.stack([track_high.keypoints[..., 0] / W * 2 - 1,
                                  track_high.keypoints[..., 1] / W * 2 - H / W], -1),
                        track_high.scores[..., None]], axis=-1).astype(np.float32)
    np.testing.assert_allclose(results["scores", "high"]["poses_3d"], manual_windows(model, x, 9), atol=1e-4)


def test_seq2frame_model_gets_one_centred_window_per_frame(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    out = tmp_path / "o.npz"
    code, err = run(["--checkpoint", checkpoints["seq2frame"], "--keypoints", mmpose_file(tmp_path, coco, scores),
                     "-o", out, "--width", W, "--height", H, "--batch-size", 7], capsys)
    assert code == 0, err
    poses = np.load(out)["poses_3d"]
    kp = read_keypoints(os.path.join(tmp_path, "video.json")).keypoints
    x = np.stack([kp[..., 0] / W * 2 - 1, kp[..., 1] / W * 2 - H / W], -1).astype(np.float32)
    model = load_model(checkpoints["seq2frame"])
    with torch.no_grad():
        for frame in (0, 13, T - 1):
            window = np.clip(np.arange(frame - 4, frame + 5), 0, T - 1)
            expected = model(torch.from_numpy(x[window])[None])[0, 4].numpy()
            np.testing.assert_allclose(poses[frame], expected, atol=1e-4)


# -- one test per error ----------------------------------------------------------------------------

def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m hourglass_tokenizer predict: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_csv(path):
    path.write_text("0,1,2\n")


def write_14_joints(path):
    np.savez(path, keypoints_2d=np.zeros((T, 14, 2)))


def write_empty(path):
    path.write_text("")


@pytest.mark.parametrize("name, write, fragments", [
    ("detections.csv", write_csv, ["unknown keypoint format"]),
    ("k.npz", write_14_joints, ["(30, 14, 2)", "expected (T, 17, 2)"]),
    ("empty.json", write_empty, ["empty file"]),
])
def test_error_bad_input_file(tmp_path, checkpoints, capsys, name, write, fragments):
    """An unknown format, joints that do not fit, an empty file."""
    write(tmp_path / name)
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", tmp_path / name, "-o", tmp_path / "o.npz",
                     "--width", W, "--height", H], capsys)
    assert_one_line_error(code, err, *fragments)


def test_error_checkpoint_that_does_not_describe_its_model(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    code, err = run(["--checkpoint", checkpoints["bare"], "--keypoints", mmpose_file(tmp_path, coco, scores),
                     "-o", tmp_path / "o.npz", "--width", W, "--height", H], capsys)
    assert_one_line_error(code, err, "--checkpoint", "state_dict.pt")
    assert not os.path.exists(tmp_path / "o.npz")
    # naming the model makes the same file usable
    code, err = run(["--checkpoint", checkpoints["bare"], "--keypoints", os.path.join(tmp_path, "video.json"),
                     "-o", tmp_path / "o.npz", "--width", W, "--height", H, "--model", "mixste", "--config",
                     "small", "--model-arg", "num_frames=9", "--model-arg", "embed_dim=16", "--model-arg",
                     "depth=2"], capsys)
    assert code == 0, err


def test_error_missing_image_size(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", mmpose_file(tmp_path, coco, scores),
                     "-o", tmp_path / "o.npz"], capsys)
    assert_one_line_error(code, err, "pass --width and --height")
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", os.path.join(tmp_path, "video.json"),
                     "-o", tmp_path / "o.npz", "--width", W], capsys)
    assert_one_line_error(code, err, "both --width and --height")


def test_error_existing_output_is_refused_before_any_work(tmp_path, checkpoints, capsys):
    out = tmp_path / "o.npz"
    out.write_bytes(b"earlier result")
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", tmp_path / "absent.json", "-o", out],
                    capsys)
    assert_one_line_error(code, err, "already exists", "--overwrite")
    assert out.read_bytes() == b"earlier result"


def test_error_nobody_in_any_frame(tmp_path, checkpoints, track, capsys):
    coco, scores = track
    path = mmpose_file(tmp_path, coco, scores, nobody=range(T))
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", path, "-o", tmp_path / "o.npz",
                     "--width", W, "--height", H], capsys)
    assert_one_line_error(code, err, "nobody in any of its 30 frames")


@pytest.mark.parametrize("args, fragment", [
    (["--person", "-1"], "--person"),
    (["--render", "out.avi"], "give a .gif or .mp4 name"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_error_bad_options(tmp_path, checkpoints, track, capsys, args, fragment):
    coco, scores = track
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", mmpose_file(tmp_path, coco, scores),
                     "-o", tmp_path / "o.npz", "--width", W, "--height", H] + args, capsys)
    assert_one_line_error(code, err, fragment)


def test_error_missing_required_argument(capsys):
    code, err = run(["--keypoints", "x.json"], capsys)
    assert_one_line_error(code, err, "--checkpoint")


def test_error_render_without_matplotlib(tmp_path, checkpoints, track, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    coco, scores = track
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", mmpose_file(tmp_path, coco, scores),
                     "-o", tmp_path / "o.npz", "--width", W, "--height", H, "--render", tmp_path / "o.gif"], capsys)
    assert_one_line_error(code, err, "needs matplotlib", "hourglass_tokenizer[bench]")
    assert not os.path.exists(tmp_path / "o.npz")  # checked before any work


def test_render_option_writes_a_gif(tmp_path, checkpoints, track, capsys):
    from PIL import Image

    coco, scores = track
    code, err = run(["--checkpoint", checkpoints["plain"], "--keypoints", mmpose_file(tmp_path, coco, scores),
                     "-o", tmp_path / "o.npz", "--width", W, "--height", H, "--render", tmp_path / "o.gif",
                     "--render-step", 10, "--no-progress"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "o.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (800, 400)
