"""MPJPE, P-MPJPE, N-MPJPE, MPJVE, PCK and AUC against hand-computed values."""
import math

import numpy as np
import pytest
import torch

from hourglass_tokenizer.training.metrics import (MM_PER_M, PCK_THRESHOLDS_MM, auc, mpjpe, mpjve, n_mpjpe, p_mpjpe, pck,
                                                  pose_metrics, procrustes_align)


def _rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K  # Rodrigues


def test_mpjpe_hand_values_and_units():
    target = np.zeros((2, 17, 3))
    pred = target + np.array([0.003, 0.004, 0.0])  # 5 mm everywhere, in metres
    assert mpjpe(pred, target) == pytest.approx(0.005)
    assert mpjpe(pred, target, scale=MM_PER_M) == pytest.approx(5.0)
    # Two joints: one exact, one off by sqrt(2): mean sqrt(2) / 2.
    t = np.array([[0.0, 0, 0], [1, 0, 0]])
    p = np.array([[0.0, 0, 0], [0, 1, 0]])
    assert mpjpe(p, t) == pytest.approx(math.sqrt(2) / 2)
    with pytest.raises(ValueError):
        mpjpe(p, t[:1])


def test_mpjpe_is_a_differentiable_loss_on_tensors():
    pred = torch.zeros(2, 4, 17, 3, requires_grad=True)
    loss = mpjpe(pred, torch.ones(2, 4, 17, 3))
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert loss.item() == pytest.approx(math.sqrt(3))
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_p_mpjpe_is_zero_for_a_similarity_transform_and_not_for_a_reflection():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(3, 17, 3))
    R = _rotation([1, 2, 3], 0.7)
    pred = 1.7 * target @ R.T + np.array([0.3, -2.0, 5.0])
    assert mpjpe(pred, target) > 0.5
    assert p_mpjpe(pred, target) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(procrustes_align(pred, target), target, atol=1e-9)
    # A mirror image cannot be aligned by a rotation: protocol 2 excludes reflections.
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, target) > 0.1
    # Hand value: alignment cannot remove noise orthogonal to all similarity transforms; for a
    # pure scaling of the error the aligned error is never larger than the raw one.
    noisy = target + rng.normal(scale=0.05, size=target.shape)
    assert p_mpjpe(noisy, target) <= mpjpe(noisy, target)
    assert p_mpjpe(torch.from_numpy(pred), torch.from_numpy(target)).item() == pytest.approx(0.0, abs=1e-9)


def test_p_mpjpe_hand_value_on_a_four_joint_pose():
    # Target: a cross (+-1 on x and y). Prediction: only the x arm (+-1), y joints collapsed to 0.
    # The least-squares similarity keeps the x arm on the x axis at scale 1 (SSE 2(s^2 - 2 s cos + 1) + 2
    # is smallest at s = 1, angle 0), so the x joints are exact and the y joints are 1 off: mean 0.5.
    target = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
    pred = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert p_mpjpe(pred, target) == pytest.approx(0.5)
    # The same prediction rotated, scaled and moved: the same aligned error.
    moved = 3.0 * pred @ _rotation([0.3, -1, 2], 2.0).T + np.array([4.0, 5.0, 6.0])
    assert p_mpjpe(moved, target) == pytest.approx(0.5)
    assert p_mpjpe(moved, target, scale=MM_PER_M) == pytest.approx(500.0)


def test_n_mpjpe_removes_scale_only():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(4, 17, 3))
    assert n_mpjpe(0.5 * target, target) == pytest.approx(0.0, abs=1e-12)
    assert mpjpe(0.5 * target, target) > 0.1
    shifted = target + 1.0
    assert n_mpjpe(shifted, target) > 0.1  # no translation alignment
    # Hand value: pred = 2 * target, one pose of one joint at (1, 0, 0): scale 1/2, error 0.
    assert n_mpjpe(np.array([[2.0, 0, 0]]), np.array([[1.0, 0, 0]])) == pytest.approx(0.0)


def test_mpjve_hand_values():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(10, 17, 3))
    assert mpjve(target + 0.2, target) == pytest.approx(0.0, abs=1e-12)  # constant offset: same velocity
    drift = target + np.arange(10)[:, None, None] * np.array([0.0, 0.003, 0.004])  # 5 mm per frame
    assert mpjve(drift, target, scale=MM_PER_M) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        mpjve(target[:1], target[:1])


def test_pose_metrics_reports_millimetres_for_metres():
    target = np.zeros((3, 17, 3))
    pred = target + np.array([0.0, 0.0, 0.01])
    out = pose_metrics(pred, target)
    assert out["mpjpe"] == pytest.approx(10.0) and out["mpjve"] == pytest.approx(0.0)
    assert set(out) == {"mpjpe", "p_mpjpe", "n_mpjpe", "mpjve"}


def _poses_with_errors_mm(errors_mm):
    """One pose whose joint j is off by errors_mm[j] millimetres (in metres, along mixed axes)."""
    target = np.zeros((1, len(errors_mm), 3))
    directions = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0]])
    pred = target + np.array([d * e / 1000 for d, e in zip(directions[np.arange(len(errors_mm)) % 4], errors_mm)])
    return pred, target


def test_pck_and_auc_hand_computed():
    errors = [0.0, 4.9, 5.0, 100.0, 149.9, 150.0, 200.0]
    pred, target = _poses_with_errors_mm(errors)
    # below 150 mm, strictly: 0, 4.9, 5, 100 and 149.9 -> 5 of 7
    assert pck(pred, target) == pytest.approx(100 * 5 / 7)
    assert pck(pred, target, threshold=5.0) == pytest.approx(100 * 2 / 7)  # 5.0 is not below 5
    # PCK curve over 0, 5, ..., 150 (31 thresholds), joints below each:
    # t=0: 0; t=5: 2; t=10..100 (19 values): 3; t=105..145 (9 values): 4; t=150: 5 -> 100 joint-thresholds
    assert len(PCK_THRESHOLDS_MM) == 31 and PCK_THRESHOLDS_MM[0] == 0 and PCK_THRESHOLDS_MM[-1] == 150
    assert auc(pred, target) == pytest.approx(100 * 100 / (31 * 7))
    # joints= keeps only some joints: 100 (below 150) and 200 (not)
    assert pck(pred, target, joints=[3, 6]) == pytest.approx(50.0)
    assert auc(pred, target, joints=[0]) == pytest.approx(100 * 30 / 31)  # 0 is below every threshold but 0


def test_pck_units_and_tensors():
    pred, target = _poses_with_errors_mm([100.0, 200.0])
    assert pck(pred * 1000, target * 1000, scale=1.0) == pytest.approx(50.0)  # millimetre inputs
    assert pck(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        pck(pred, target[:, :1])
