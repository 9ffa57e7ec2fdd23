"""The public API of the plugin: :func:`wrap_with_hot`, :func:`unwrap_hot`, :func:`is_hot`,
:func:`hot_parameters` (and :func:`~hourglass_tokenizer.core.checkpoints.load_official_hot`).

One straight path: the arguments become a checked :class:`~hourglass_tokenizer.core.config.HotConfig`
and :class:`~hourglass_tokenizer.core.probe.ProbeOptions`; a :class:`~hourglass_tokenizer.core.state.HotState`
probes the model (:mod:`~hourglass_tokenizer.core.probe`), asks the recovery strategy for its new
parameters (:mod:`~hourglass_tokenizer.core.recovery`) and installs the hooks of the forward pass
(:mod:`~hourglass_tokenizer.core.forward`). A model whose input shape cannot be inferred is wrapped
lazily (:mod:`~hourglass_tokenizer.core.lazy`) and set up by its first forward.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .checkpoints import checkpoint_state_dict, load_official_hot
from .config import HotConfig, Stages
from .lazy import wrap_lazily
from .probe import (NoPrunableBlocks, ProbeForwardError, ProbeOptions, ShapeUnknown, check_names, guess_input_shapes,
                    example_input as probe_input)
from .recovery import HOT_PARAMETERS
from .selection import DEFAULT_SELECTOR, Selector
from .state import HotState

__all__ = ["wrap_with_hot", "unwrap_hot", "is_hot", "hot_parameters", "load_official_hot", "HotState",
           "HOT_PARAMETERS", "checkpoint_state_dict"]

logger = logging.getLogger("hourglass_tokenizer")


def wrap_with_hot(model: nn.Module, prune_block: Optional[Stages] = None, tokens: Optional[Stages] = None, *,
                  recover: Union[str, bool] = "tra+interpolate", selector: Union[str, Selector] = DEFAULT_SELECTOR,
                  k: int = 2, seed: int = 0, example_input: Optional[torch.Tensor] = None,
                  input_shape: Optional[Sequence[int]] = None, blocks: Optional[Sequence[str]] = None,
                  layouts: Optional[Mapping[str, str]] = None, recover_before: Optional[str] = None,
                  num_heads: Optional[int] = None, x_token_init: Union[str, torch.Tensor] = "zeros",
                  check_inputs: Optional[bool] = None, frame_layers: Optional[Sequence[str]] = None) -> nn.Module:
    """Turn a video pose transformer into a Hourglass Tokenizer (HoT) model, in place.

    After the first ``prune_block`` blocks, HoT keeps ``tokens`` representative frames (evenly
    spaced by default; the paper's token pruning cluster, TPC, chooses them by density-peaks
    clustering of per-frame features: ``selector="dpc_knn"``); the deeper
    blocks only process those frames. Before the head all ``T`` frames are restored (``recover``)
    so the model stays seq2seq. The model's own ``forward`` is not modified.

    Load pretrained weights first, then wrap: the original ``state_dict`` keys are unchanged, and
    the default recovery starts as a training-free interpolation of the kept frames, so a trained
    model keeps (almost) its accuracy before any fine-tuning.

    Args:
        model: the VPT; its forward takes ``(batch, frames, joints, channels)``.
        prune_block: blocks ``0..prune_block-1`` see all frames (``1 <= prune_block < depth``).
            ``None`` (with ``tokens=None``) uses the paper's setting for a recognised architecture.
            A tuple of strictly increasing depths prunes at several depths (H2OT), e.g.
            ``prune_block=(2, 5), tokens=(81, 27)``: 81 frames from block 2 on, 27 of those from
            block 5 on, one recovery at the end. ``pos_embed_token`` is added at the first stage.
        tokens: representative frames kept, ``1 <= tokens <= frames`` (``tokens == frames`` keeps
            every frame: a reference point that saves nothing); with several depths, one strictly
            decreasing count per depth.
        recover: how the pruned frames come back before the head (the model stays seq2seq):

            - ``"tra+interpolate"`` (default): linear interpolation in time of the kept tokens,
              plus the paper's cross-attention as a learned correction whose output projection
              starts at zero: exactly ``"interpolate"`` until trained. For pretrained models.
            - ``"tra"`` (or ``True``): the paper's token recovering attention, ``T`` learnable
              queries ``x_token`` attending to the kept tokens. Needs training (from scratch as in
              the paper, or fine-tuning); required by :func:`load_official_hot` for HoT checkpoints.
            - ``"interpolate"``: training-free linear interpolation, no new parameters but
              ``pos_embed_token`` (zeros).
            - ``"interpolate+residual"``: training-free; the interpolation plus half of each
              pruned frame's own detail in the tokens entering the first pruned block (what
              interpolation misses of them there). No new parameters but ``pos_embed_token``; the
              first pruned block and the recovery point must have the same width and joints.
              Best training-free on our benchmark when pruning from block 1 (README).
            - ``"nearest"``: training-free; each pruned frame copies its nearest kept frame.
            - ``False``: TPC only (seq2frame), as the official TPC models: the centre frame
              ``(T-1)//2`` is always kept, there is no ``pos_embed_token``, pruned frames are filled
              from their nearest kept frame before the head, and the centre frame's output is the
              prediction.
        selector: how the kept frames are chosen. ``"uniform"`` (default): evenly spaced frames,
            which measured best for a pretrained model with and without fine-tuning (README,
            "Adopting HoT"), costs nothing and is chosen once per batch shape; ``"dpc_knn"``: the
            paper's density-peaks clustering of per-frame features (official HoT checkpoints were
            trained with it); ``"dpc_knn_coverage"`` (DPC-kNN within equal time strata, keeping the
            first and last frame), ``"random"``, or a callable ``(frame_features (b, t, c), f) ->
            indices (b, f)`` (integer tensor, unique frames per sample; checked at run time).
        k: neighbours in DPC-kNN's density (self included); the paper uses 2.
        seed: seed of the private generator of the ``"random"`` selector.
        example_input / input_shape: input for the probe forward; inferred from the model's
            attributes and parameters when omitted. When they cannot be inferred (a model with no
            frame count anywhere, such as STCFormer), the model is wrapped **lazily**, like torch's
            lazy modules: ``pos_embed_token``, ``x_token`` and TRA's weights are
            ``UninitializedParameter`` placeholders and the probe runs on the first forward (on
            its first sample's shape), which creates them in place. Run one forward before
            building an optimiser, calling ``state_dict()`` (which raises until then) or loading
            HoT weights; ``model.hot.pending`` is True until then.
        blocks: names of block lists to prune (side by side); found automatically when omitted.
        layouts: ``{block list or module name: pattern}`` overrides of inferred token layouts.
        recover_before: name of the module before which the frames are restored; by default the
            first module with parameters (not a norm) called after the last block.
        num_heads: heads of TRA's cross-attention; by default the blocks' own.
        x_token_init: start of TRA's queries (``"tra"``): ``"zeros"`` (the paper's), ``"position"``
            (a copy of the model's own temporal position embedding, ``(1, T, c)`` or
            ``(1, T, 1, c)``, taken from the weights the model has now) or a tensor. With
            ``"tra+interpolate"`` only ``"zeros"`` keeps the start equal to the interpolation.
        check_inputs: reject inputs with NaN/Inf. ``None`` (default): on CPU tensors only, since
            the check reads the values back and would synchronise a GPU on every forward. Skipped
            while compiling.
        frame_layers: names of the layers inside the blocks that are indexed by frame position,
            relative to a block (``"graph_temporal.mixer.batch_norm"``) or full; ``[]`` for none.
            Detected when omitted: a batch/instance norm with ``num_features == T`` over the frame
            axis (MotionAGFormer's temporal GCN). In the pruned blocks each becomes a rank-indexed
            norm of size ``tokens`` at the same name (so official HoT checkpoints load), started
            from the mean over frames of the original; ``unwrap_hot`` puts the original objects
            back. Needed when ``T`` equals the token width (the sizes cannot tell).

    Returns:
        The same ``model`` object, with ``model.hot`` (:class:`HotState`) and new parameters
        ``pos_embed_token (1, tokens, c)`` (not for TPC only), and for ``"tra"`` and
        ``"tra+interpolate"`` ``x_token (1, T, c)`` and ``cross_attention``. Every original
        ``state_dict`` key is unchanged. Wrapping a HoT model again re-wraps it, keeping HoT
        parameters whose shapes still fit; if the new wrap fails, the old one stays as it was.

    Raises:
        ValueError, TypeError: a bad argument (``recover``, ``tokens``, ``prune_block``,
            ``x_token_init``, ``layouts``, ``recover_before``, ``frame_layers``...), or a model whose
            structure HoT cannot use; the model is then left as it was.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"wrap_with_hot expects an nn.Module, got {type(model).__name__}")
    config = HotConfig.from_arguments(prune_block, tokens, recover=recover, selector=selector, k=k, seed=seed,
                                      check_inputs=check_inputs, x_token_init=x_token_init)
    options = ProbeOptions.from_arguments(blocks, layouts, recover_before, frame_layers, num_heads)
    old = model.hot if is_hot(model) else None
    if old is None:
        clashes = [n for n in HOT_PARAMETERS + ("hot",) if hasattr(model, n)]
        if clashes:
            raise ValueError(f"the model already has attribute(s) {clashes}; it looks like a hand-written HoT "
                             "model, which wrap_with_hot cannot wrap again")
    elif old.pending:
        unwrap_hot(model)  # nothing was built yet: start afresh
        old = None
    else:
        old.remove_hooks()  # the probe must see the plain model
        if example_input is None and input_shape is None:
            input_shape = (old.frames, old.structure.joints, old.structure.in_channels)
    state = HotState(model, config, options)
    try:
        try:
            new = state.set_up(probe_input(model, example_input, input_shape))
        except ShapeUnknown:
            if old is not None:
                raise
            check_names(model, options)
            new = _set_up_on_a_guessed_shape(model, state)
            if new is None:
                return wrap_lazily(model, state)
    except BaseException:
        if old is not None:
            old.install()
        raise
    # Nothing can fail from here on: replace the old wrap (if any), keeping HoT weights that still fit.
    previous: Dict[str, torch.Tensor] = {}
    if old is not None:
        previous = {k: v for k, v in model.state_dict().items() if k.split(".")[0] in HOT_PARAMETERS}
        state._swapped = dict(old._swapped)  # trained rank-indexed layers of the same size stay
        unwrap_hot(model)
    for name, value in new.items():
        setattr(model, name, value)
    model.hot = state
    state.install()
    if previous:
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in previous.items() if k in own and own[k].shape == v.shape},
                              strict=False)
    return model


def _set_up_on_a_guessed_shape(model: nn.Module, state: HotState) -> Optional[Dict[str, nn.Module]]:
    """Set up on the first guessed input shape that works; ``None`` when the model runs on none of them
    (it is then wrapped lazily). A guess on which the model runs and has prunable blocks, but the
    wrap's settings do not fit, is the user's to fix: its error is raised when no guess works."""
    first_error: Optional[Exception] = None
    for shape in guess_input_shapes(model):
        try:
            new = state.set_up(probe_input(model, None, shape))
        except (ProbeForwardError, NoPrunableBlocks):
            continue
        except ValueError as error:
            first_error = first_error or error
            continue
        logger.info("input shape (T, J, C) = %s inferred from the model's parameters; pass input_shape= to choose "
                    "another", shape)
        return new
    if first_error is not None:
        raise first_error
    return None


def is_hot(model: nn.Module) -> bool:
    """True when ``model`` is currently wrapped by :func:`wrap_with_hot` (also while a lazy wrap waits
    for its first forward: ``model.hot.pending``)."""
    return isinstance(getattr(model, "hot", None), HotState)


def hot_parameters(model: nn.Module) -> List[nn.Parameter]:
    """The parameters :func:`wrap_with_hot` added (``pos_embed_token``, ``x_token``, TRA's).

    Useful for a separate learning rate when fine-tuning a pretrained VPT: these start from
    zeros (or a fresh initialisation) while the rest of the model is already trained.
    """
    if not is_hot(model):
        raise ValueError("hot_parameters: the model is not wrapped with HoT")
    return [p for name, p in model.named_parameters() if name.split(".")[0] in HOT_PARAMETERS]


def unwrap_hot(model: nn.Module) -> nn.Module:
    """Remove every hook and parameter added by :func:`wrap_with_hot`; returns the same object."""
    if not is_hot(model):
        raise ValueError("unwrap_hot: the model is not wrapped with HoT")
    model.hot.remove_hooks()
    for name in HOT_PARAMETERS + ("hot",):
        if hasattr(model, name):
            delattr(model, name)
    return model
