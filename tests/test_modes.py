"""Wrapping, FLOP counting and prediction leave every submodule's own train/eval flag as it was."""
import numpy as np
import torch

from hourglass_tokenizer import count_flops, wrap_with_hot
from hourglass_tokenizer.training.inference import predict
from hourglass_tokenizer.core.modes import evaluation_mode
from stand_ins import MixSTELike


def frozen_head_model():
    model = MixSTELike().train()
    model.head.eval()  # a user's deliberately frozen part
    return model


def flags(model):
    return {name: m.training for name, m in model.named_modules()}


def test_evaluation_mode_restores_each_flag_even_on_error():
    model = frozen_head_model()
    before = flags(model)
    try:
        with evaluation_mode(model):
            assert not any(flags(model).values())
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert flags(model) == before and before["head"] is False and before[""] is True


def test_wrapping_counting_and_predicting_keep_frozen_submodules_frozen():
    model = frozen_head_model()
    before = flags(model)
    wrap_with_hot(model, prune_block=1, tokens=9)
    assert {k: v for k, v in flags(model).items() if k in before} == before
    count_flops(model, torch.zeros(1, 27, 17, 2))
    predict(model, np.zeros((40, 17, 2), np.float32))
    assert {k: v for k, v in flags(model).items() if k in before} == before
