"""Whole-sequence prediction: window tiling, seq2frame windows, flip test-time augmentation."""
import numpy as np
import pytest
import torch
from torch import nn

from hourglass_tokenizer.data import flip_pose
from hourglass_tokenizer.training.inference import is_seq2frame, model_num_frames, predict, select_prediction


pytestmark = pytest.mark.usefixtures("one_thread")


class FrameIndexModel(nn.Module):
    """seq2seq: outputs each input frame's x value (the frame index in these tests) as x, y and z,
    and records the first frame of every window it sees."""

    def __init__(self, num_frames):
        super().__init__()
        self.num_frames = num_frames
        self.scale = nn.Parameter(torch.ones(()))
        self.window_starts = []

    def forward(self, x):
        assert x.shape[1] == self.num_frames
        self.window_starts += x[:, 0, 0, 0].tolist()
        return x[..., :1].expand(*x.shape[:3], 3) * self.scale


class CentreFrameModel(FrameIndexModel):
    """seq2frame: outputs (b, 1, J, 3), the centre frame's value."""

    def forward(self, x):
        return super().forward(x)[:, (self.num_frames - 1) // 2][:, None]


def _indexed_keypoints(n):
    kp = np.zeros((n, 17, 2), np.float32)
    kp[..., 0] = np.arange(n)[:, None]
    return kp


@pytest.mark.parametrize("n", [100, 81, 54, 28, 10, 1])
def test_seq2seq_tiling_predicts_every_frame_once_last_window_at_the_end(n):
    t = 27
    model = FrameIndexModel(t)
    pred = predict(model, _indexed_keypoints(n), batch_size=3)
    assert pred.shape == (n, 17, 3)
    np.testing.assert_array_equal(pred[:, 0, 0], np.arange(n))  # each frame got its own prediction
    starts = model.window_starts  # the first batch tells seq2seq from seq2frame and is kept: no extra call
    if n >= t:
        expected = list(range(0, n - t + 1, t))
        if expected[-1] + t < n:
            expected.append(n - t)  # aligned to the end, overlapping the previous window
        assert starts == expected
        assert len(starts) == -(-n // t)  # ceil(n / t) windows: each frame computed once (plus overlap)
    else:
        assert len(starts) == 1  # one edge-padded window


def test_seq2frame_runs_one_centred_edge_padded_window_per_frame():
    t, n = 9, 20
    model = CentreFrameModel(t)
    assert is_seq2frame(model, model(torch.zeros(1, t, 17, 2)))
    model.window_starts.clear()
    pred = predict(model, _indexed_keypoints(n), batch_size=7)
    np.testing.assert_array_equal(pred[:, 0, 0], np.arange(n))
    probe, starts = model.window_starts[:3], model.window_starts[3:]
    assert probe == [0, 9, 11]  # one batch of seq2seq windows found out the model is seq2frame
    assert starts == [max(0, c - 4) for c in range(n)]  # frames before 0 replicate frame 0
    model.window_starts.clear()
    predict(model, _indexed_keypoints(n), batch_size=7, seq2frame=True)
    assert model.window_starts == starts  # told: no probe
    sub = predict(model, _indexed_keypoints(n), frames=[0, 5, 19])
    np.testing.assert_array_equal(sub[:, 0, 0], [0, 5, 19])


def test_frames_subset_matches_full_prediction_for_seq2seq():
    model = FrameIndexModel(27)
    kp = _indexed_keypoints(70)
    full = predict(model, kp)
    np.testing.assert_array_equal(predict(model, kp, frames=np.arange(0, 70, 8)), full[::8])
    with pytest.raises(IndexError):
        predict(model, kp, frames=[70])


class BiasedModel(nn.Module):
    """Not mirror-equivariant: outputs (x + 1, y, 0). Flip TTA must average the bias away."""

    num_frames = 5

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        out = torch.cat([x, torch.zeros_like(x[..., :1])], dim=-1)
        out[..., 0] += 1.0
        return out


def test_flip_test_time_augmentation_averages_with_the_mirrored_prediction():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(12, 17, 2)).astype(np.float32)
    model = BiasedModel()
    plain = predict(model, kp)
    np.testing.assert_allclose(plain[..., 0], kp[..., 0] + 1, atol=1e-6)
    flipped = predict(model, kp, flip=True)
    # mirrored input -> x' + 1 -> mirrored back: x - 1; averaged with x + 1: x.
    np.testing.assert_allclose(flipped[..., 0], kp[..., 0], atol=1e-6)
    np.testing.assert_allclose(flipped[..., 1], kp[..., 1], atol=1e-6)
    # A mirror-equivariant model is unchanged by flip TTA.
    eq = FrameIndexModel(5)
    eq.forward = lambda x: torch.cat([x, torch.zeros_like(x[..., :1])], -1)
    np.testing.assert_allclose(predict(eq, kp, flip=True), predict(eq, kp), atol=1e-6)
    assert torch.equal(flip_pose(flip_pose(torch.from_numpy(kp))), torch.from_numpy(kp))


def test_model_num_frames_and_select_prediction():
    assert model_num_frames(FrameIndexModel(9)) == 9
    assert model_num_frames(nn.Linear(2, 3), 31) == 31
    with pytest.raises(ValueError):
        model_num_frames(nn.Linear(2, 3))
    out = torch.zeros(2, 9, 17, 3)
    assert select_prediction(FrameIndexModel(9), out, 9).shape == (2, 9, 17, 3)
    assert select_prediction(FrameIndexModel(9), out[:, :1], 9).shape == (2, 1, 17, 3)
    with pytest.raises(ValueError):
        select_prediction(FrameIndexModel(9), out[:, :4], 9)


def test_predict_with_hot_models_seq2seq_and_tpc_only():
    from hourglass_tokenizer import wrapping  # an import failure must fail the test, not skip it
    from hourglass_tokenizer.models import build_model

    torch.manual_seed(0)
    kp = np.random.default_rng(1).normal(scale=0.3, size=(40, 17, 2)).astype(np.float32)
    model = wrapping.wrap_with_hot(build_model("mixste", "small"), prune_block=1, tokens=9)
    model.train()
    pred = predict(model, kp)
    assert pred.shape == (40, 17, 3) and model.training  # training flag restored
    model.eval()
    with torch.no_grad():
        first = model(torch.from_numpy(kp[:27])[None])[0].numpy()
    np.testing.assert_allclose(pred[:27], first, atol=1e-5)

    torch.manual_seed(0)
    tpc = wrapping.wrap_with_hot(build_model("mixste", "small"), prune_block=1, tokens=9, recover=False).eval()
    assert is_seq2frame(tpc)
    pred = predict(tpc, kp, frames=[0, 20, 39])
    assert pred.shape == (3, 17, 3)
    window = np.clip(np.arange(20 - 13, 20 + 14), 0, 39)
    with torch.no_grad():
        out = tpc(torch.from_numpy(kp[window])[None])
    np.testing.assert_allclose(pred[1], out[0, 13].numpy(), atol=1e-5)
