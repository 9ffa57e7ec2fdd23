"""MAC counting for video pose transformers, with and without HoT.

Convention
----------
fvcore counts one fused multiply-add as one "flop", so everything here returns **MACs**
(multiply-accumulates). The HoT paper reports "FLOPs" measured with thop, which are
``2 x MACs`` of the layers thop knows about; thop misses the attention matmuls (``q @ k^T`` and
``attn @ v``), so the paper's numbers are not simply twice ours. For MixSTE at T=243 the paper
reports 277G FLOPs, while fvcore with the handles below counts 147.9G MACs (295.8G "FLOPs").

What is counted
---------------
* fvcore's own handles: ``linear``/``addmm``/``matmul``/``bmm``/``einsum``/convolutions and the
  normalisation layers (fvcore charges LayerNorm 5 ops per element; we keep that default).
* extra handles registered here for ops fvcore would count as zero:
  ``aten::scaled_dot_product_attention`` (``q @ k^T`` plus ``attn @ v``), ``aten::cdist``
  (the pairwise distances in DPC-kNN clustering) and ``aten::baddbmm``.
* deliberately free: element-wise arithmetic, activations, softmax, reductions, sorting, top-k,
  indexing and shape ops. They are a small fraction of a transformer's cost and neither fvcore
  nor thop charges them; we register zero handles for them so fvcore does not log them as
  "unsupported".
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter
from math import prod
from typing import Any, Iterable, List, Optional, Tuple, Union

import torch
from torch import nn

from ..core.modes import evaluation_mode

__all__ = ["count_flops", "count_macs", "count_flops_by_operator", "count_params", "format_count", "FREE_OPS", "EXTRA_HANDLES"]

_log = logging.getLogger(__name__)

Inputs = Union[torch.Tensor, Tuple[Any, ...], List[Any]]


def _shape(value: Any) -> Optional[List[int]]:
    """Static shape of a traced ``torch._C.Value``, or ``None`` when the trace did not record it."""
    if value.isCompleteTensor():
        return list(value.type().sizes())
    return None


def _sdpa_macs(inputs: List[Any], outputs: List[Any]) -> int:
    """``scaled_dot_product_attention(q, k, v, ...)``: ``q @ k^T`` plus ``attn @ v``.

    With ``q (..., Lq, Dqk)``, ``k (..., Lk, Dqk)``, ``v (..., Lk, Dv)`` and output ``(..., Lq, Dv)``
    this is ``prod(...) * Lq * Lk * (Dqk + Dv)`` MACs. The leading dimensions are read from the
    query and from the output separately, so grouped-query attention (fewer key heads, broadcast)
    is charged per query head, which is what the kernel computes.
    """
    q, k, v = (_shape(x) for x in inputs[:3])
    out = _shape(outputs[0])
    if q is None or k is None or v is None:
        raise RuntimeError("scaled_dot_product_attention: the trace did not record the input shapes")
    if out is None:
        out = q[:-1] + [v[-1]]
    lk = k[-2]
    scores = prod(q[:-1]) * lk * q[-1]  # (..., Lq, Dqk) @ (..., Dqk, Lk)
    mix = prod(out[:-1]) * lk * v[-1]  # (..., Lq, Lk) @ (..., Lk, Dv)
    return int(scores + mix)


def _cdist_macs(inputs: List[Any], outputs: List[Any]) -> int:
    """``cdist(x1 (..., P, M), x2 (..., R, M))``: one MAC per coordinate per pair, ``prod(out) * M``.

    This is the cost of the exact (difference-based) path and of the matrix-product path alike,
    up to lower-order terms.
    """
    x1, out = _shape(inputs[0]), _shape(outputs[0])
    if x1 is None or out is None:
        raise RuntimeError("cdist: the trace did not record the input shapes")
    return int(prod(out) * x1[-1])


def _baddbmm_macs(inputs: List[Any], outputs: List[Any]) -> int:
    """``baddbmm(input, b1 (B, N, M), b2 (B, M, P))``: ``B * N * M * P`` (the addition is free)."""
    b1, b2 = _shape(inputs[1]), _shape(inputs[2])
    if b1 is None or b2 is None:
        raise RuntimeError("baddbmm: the trace did not record the input shapes")
    return int(prod(b1) * b2[-1])


def _free(inputs: List[Any], outputs: List[Any]) -> int:
    """Handle for ops we deliberately treat as costing nothing (see the module docstring)."""
    return 0


#: Handles added on top of fvcore's defaults for ops that do real multiply-adds.
EXTRA_HANDLES = {
    "aten::scaled_dot_product_attention": _sdpa_macs,
    "aten::cdist": _cdist_macs,
    "aten::baddbmm": _baddbmm_macs,
}

#: Ops counted as zero on purpose. Registering them silences fvcore's "unsupported operator" log.
FREE_OPS: Tuple[str, ...] = tuple(
    "aten::" + name
    for name in (
        # element-wise arithmetic and activations
        "add add_ sub sub_ rsub mul mul_ div div_ neg pow sqrt rsqrt exp log abs sign reciprocal "
        "gelu silu sigmoid tanh relu relu_ hardtanh leaky_relu elu softplus erf "
        "where masked_fill masked_fill_ clamp clamp_min clamp_max lerp fill_ zero_ "
        # normalisations of attention weights and reductions
        "softmax log_softmax _softmax mean sum amax amin max min argmax argmin norm "
        "linalg_vector_norm linalg_norm frobenius_norm var std cumsum prod "
        # sorting and selection (DPC-kNN)
        "topk sort argsort searchsorted kthvalue "
        # comparisons and logic
        "lt le gt ge eq ne logical_and logical_or logical_not __and__ __or__ bitwise_and bitwise_or "
        "bitwise_not isnan isinf "
        # indexing, copying and shape ops
        "gather scatter scatter_ scatter_add scatter_add_ index index_select index_put index_put_ "
        "index_add index_add_ index_copy index_copy_ take_along_dim masked_select masked_scatter "
        "repeat repeat_interleave expand expand_as tile unbind unflatten view view_as reshape "
        "flatten permute transpose contiguous clone copy_ detach to type_as unsqueeze squeeze "
        "cat stack split chunk narrow select slice roll flip movedim pad constant_pad_nd "
        "zeros zeros_like ones ones_like full full_like empty empty_like new_zeros new_ones "
        "new_empty new_full arange linspace rand rand_like randn randn_like randint randperm "
        "dropout feature_dropout alpha_dropout Int ScalarImplicit Float size numel dim "
        "floor ceil round floor_divide remainder fmod trunc bernoulli_ uniform_ normal_ "
        "lift_fresh alias"
    ).split()
)


def _prepare_inputs(inputs: Inputs) -> Tuple[Any, ...]:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _analysis(model: nn.Module, inputs: Tuple[Any, ...]):
    """Build a quiet ``FlopCountAnalysis`` with the extra and the zero handles registered."""
    with warnings.catch_warnings():
        # fvcore's package import touches torch.jit.script, deprecated in recent torch; not our concern.
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle(**{op: _free for op in FREE_OPS})
    analysis.set_op_handle(**EXTRA_HANDLES)
    # Every op we know about has a handle now; modules skipped by HoT (or never called, e.g. an
    # unused head) are expected, and tracer warnings about data-dependent shapes are harmless
    # because the trace is only used for counting.
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


def _run_counted(model: nn.Module, inputs: Inputs):
    """Trace ``model`` in eval mode under ``no_grad``, restoring every module's training flag."""
    args = _prepare_inputs(inputs)
    with evaluation_mode(model), torch.no_grad():
        analysis = _analysis(model, args)
        by_operator = analysis.by_operator()
        total = analysis.total()
        unknown = analysis.unsupported_ops()
    if unknown:
        # Ops outside both lists: counted as zero. Say so once, quietly, instead of fvcore's
        # one-warning-per-op spam; raise the logger level to see it.
        _log.debug("count_flops: no handle (counted as 0) for %s", dict(unknown))
    return int(total), Counter({k: int(v) for k, v in by_operator.items()})


def count_flops(model: nn.Module, inputs: Inputs) -> int:
    """Multiply-accumulates (MACs) of one forward pass of ``model`` on ``inputs``.

    Uses fvcore's ``FlopCountAnalysis`` (one multiply-add = one "flop", hence MACs) plus handles
    for ``scaled_dot_product_attention``, ``cdist`` and ``baddbmm``, which fvcore alone counts as
    zero. Element-wise ops, softmax, top-k and sorting are counted as free, silently. The paper's
    "FLOPs" are ``2 x MACs`` from thop, which also misses attention matmuls (see module docs).

    The model is traced in eval mode under ``torch.no_grad`` and the training flag of every
    submodule is restored afterwards, also on error.

    Args:
        model: any ``nn.Module`` that ``torch.jit`` can trace (hooks included).
        inputs: one tensor, or a tuple/list of positional arguments.

    Returns:
        Total MACs as an ``int`` (for the whole batch in ``inputs``).
    """
    return _run_counted(model, inputs)[0]


#: The same function under the name of what it counts: multiply-accumulates, not FLOPs (= 2 x MACs).
count_macs = count_flops


def count_flops_by_operator(model: nn.Module, inputs: Inputs) -> Counter:
    """Like :func:`count_flops` but broken down by operator (``{"linear": ..., "matmul": ...}``)."""
    return _run_counted(model, inputs)[1]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once).

    Args:
        model: the module.
        trainable_only: count only parameters with ``requires_grad``.
    """
    params: Iterable[nn.Parameter] = model.parameters()  # parameters() already deduplicates
    return int(sum(p.numel() for p in params if p.requires_grad or not trainable_only))


def format_count(n: float, unit: str = "") -> str:
    """``147_900_000_000 -> '147.90G'``: a short human-readable count with an SI prefix."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f}{prefix}{unit}"
    return f"{n:.0f}{unit}"
