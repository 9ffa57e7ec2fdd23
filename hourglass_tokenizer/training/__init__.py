"""Training, fine-tuning, evaluation and inference of video pose transformers, with or without HoT.

From Python::

    from hourglass_tokenizer.training import TrainConfig, train
    history = train(model, train_set, test_set, TrainConfig(epochs=10, out_dir="runs/mixste"))

From the command line: ``python -m hourglass_tokenizer train --help`` (or ``hot-train``).
"""
from .checkpoints import describe_model, load_checkpoint, load_model, load_pretrained, save_checkpoint
from ..models import build_from_spec
from .cli import build_parser, main
from .datasets import make_cmu_datasets, make_datasets, make_h36m_datasets
from .evaluation import evaluate, evaluate_3dhp, evaluate_by_action, format_3dhp_scores, format_action_table
from .inference import predict
from .trainer import DistillationLoss, ExtraLoss, TrainConfig, compute_loss, train

__all__ = ["TrainConfig", "train", "evaluate", "evaluate_by_action", "format_action_table", "evaluate_3dhp",
           "format_3dhp_scores", "compute_loss",
           "DistillationLoss", "ExtraLoss", "save_checkpoint", "load_checkpoint", "load_pretrained", "load_model",
           "describe_model", "predict",
           "make_cmu_datasets", "make_h36m_datasets", "make_datasets", "build_parser", "build_from_spec", "main"]
