"""ONNX export with the default (dynamo) exporter: the frame selection stays in the graph.

The exported graph is run by onnxruntime on inputs other than the export example, whose frames
the model selects differently, so a selection baked into the graph at export time would fail.
"""
from __future__ import annotations

import onnx
import onnxruntime
import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from stand_ins import MixSTELike, MotionBERTLike, PoseFormerLike, randomise_hot_parameters, seeded, walks


# DPC-kNN (the paper's), whose frames depend on the input: the exported graph must choose them afresh.
CASES = {
    "mixste-tra": (MixSTELike, 2, dict(prune_block=2, tokens=9, recover="tra", selector="dpc_knn")),
    "mixste-tra+interpolate-coverage": (MixSTELike, 2, dict(prune_block=1, tokens=7, recover="tra+interpolate",
                                                            selector="dpc_knn_coverage")),
    "motionbert-tra": (MotionBERTLike, 3, dict(prune_block=1, tokens=9, recover="tra", selector="dpc_knn")),
    "poseformer-tpc": (PoseFormerLike, 2, dict(prune_block=2, tokens=9, recover=False, selector="dpc_knn")),
}


def run(session: onnxruntime.InferenceSession, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_onnxruntime_matches_pytorch_on_fresh_inputs(case, tmp_path, one_thread) -> None:
    cls, channels, kwargs = CASES[case]
    model = wrap_with_hot(seeded(cls, in_chans=channels), **kwargs)
    randomise_hot_parameters(model)  # trained-looking HoT parameters, not their zero start
    example = walks(2, channels=channels)
    path = tmp_path / "hot.onnx"
    torch.onnx.export(model, (example,), dynamo=True, verbose=False).save(str(path))
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    with torch.no_grad():
        model(example)
        example_frames = model.hot.last_indices.clone()
        torch.testing.assert_close(run(session, example), model(example), atol=1e-4, rtol=1e-4)
        for seed in (1, 2, 3):
            fresh = walks(2, channels=channels, seed=seed)
            expected = model(fresh)
            frames = model.hot.last_indices.clone()
            torch.testing.assert_close(run(session, fresh), expected, atol=1e-4, rtol=1e-4)
        # The fresh inputs keep other frames than the example, and with the example's frames forced
        # the outputs move far beyond the tolerance: a selection baked into the graph would fail.
        assert not torch.equal(frames, example_frames)
        model.hot.selector = lambda features, f: example_frames
        assert (model(fresh) - expected).abs().max() > 1e-2
