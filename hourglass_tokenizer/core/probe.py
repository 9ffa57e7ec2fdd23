"""Structure discovery: one probe forward finds the block lists, their token layouts and the head.

:func:`probe_structure` runs the model once on a dummy input of one sample with recording hooks on
every candidate block list (every ``nn.ModuleList``/``nn.Sequential`` of two or more identical
composite modules) and on the model's direct children. From the record it derives a frozen
:class:`ModelStructure`: which lists run side by side (one depth = one block of each) or one after
another (stages; the last stage that mixes frames is pruned), each block's layout over batch ``b``,
frames ``t`` and joints ``j``, which integer arguments carry ``T``, and the module before which the
frames are restored (the head). Nothing here modifies the model.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from .layouts import TokenLayout, match_layouts, parse_layouts
from .modes import evaluation_mode
from .presets import recognise_family

__all__ = ["BlockSite", "FrameLayer", "ModelStructure", "ProbeOptions", "ShapeUnknown", "ProbeForwardError",
           "NoPrunableBlocks",
           "probe_structure", "check_names", "example_input", "infer_input_shape", "guess_input_shapes",
           "token_argument", "find_block_lists"]

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


@dataclass
class _Call:
    kind: str  # "block" or "child"
    name: str
    args: tuple
    kwargs: dict
    output: Any = None


@dataclass(frozen=True)
class BlockSite:
    """One block to hook: where it is, how its tokens are laid out, which arguments carry ``T``, and
    whether it receives the same tensor as the first block of its depth (the kept-frame embedding is
    added to each such input)."""

    name: str
    module: nn.Module
    depth: int
    layout: TokenLayout
    frame_args: Tuple[int, ...]
    frame_kwargs: Tuple[str, ...]
    shares_first_input: bool
    #: Token streams: 1 for a block on one tensor; ``n`` for a block that takes ``n`` same-layout
    #: tensors as its first positional arguments and returns a tuple (or list) of ``n`` (MHFormer).
    streams: int = 1
    #: Layers inside the block indexed by frame position (``BatchNorm1d(T)`` over the frame axis).
    frame_layers: Tuple["FrameLayer", ...] = ()
    #: Layers inside the block that consume ``T`` features (they mix a fixed number of frames).
    unprunable: Tuple[str, ...] = ()


@dataclass(frozen=True)
class FrameLayer:
    """A leaf module inside a block whose parameters/buffers are indexed by frame position: a
    ``BatchNorm1d(T)`` applied to ``(n, T, c)`` tokens (MotionAGFormer's temporal GCN). After
    pruning it must become a rank-indexed ``BatchNorm1d(f)`` at the same attribute."""

    name: str
    parent: nn.Module
    attribute: str
    module: nn.Module


@dataclass(frozen=True)
class ModelStructure:
    """What the probe found; see the module docstring."""

    lists: Tuple[str, ...]
    depth: int
    sites: Tuple[BlockSite, ...]
    recover_name: str
    recover_module: nn.Module
    recover_layout: TokenLayout
    frames: int
    joints: int
    in_channels: int
    family: Optional[str]
    heads: int
    recover_width: int
    channels_at: Mapping[int, int] = field(default_factory=dict)
    #: TPC only, when no module after the blocks takes per-frame tokens (MHFormer's channels-first
    #: head): the pruned frames are filled at the output of the last block, ``recover_name``.
    recover_after_block: bool = False

    def first_site(self, depth: int) -> BlockSite:
        """The block that runs first at ``depth`` (the first list's, for lists side by side)."""
        return next(s for s in self.sites if s.depth == depth)


def token_argument(args: tuple, kwargs: dict) -> Tuple[Optional[torch.Tensor], Optional[str]]:
    """The token tensor of a call and the keyword that carries it (``None``: first positional)."""
    if args and isinstance(args[0], torch.Tensor):
        return args[0], None
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            return value, key
    return None, None


def find_block_lists(model: nn.Module, single: bool = False) -> Dict[str, nn.Module]:
    """``nn.ModuleList``/``nn.Sequential`` containers of >= 2 identical composite modules.

    With ``single=True``: the containers of exactly one composite module instead, outside and not
    around any list of two or more. Such a list only counts when it continues a usable list (its
    block takes that list's last outputs, as MHFormer's ``CHI_blocks`` after ``SHR_blocks``).
    """
    found = {}
    for name, module in model.named_modules():
        if module is model or not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < 2:
            continue
        children = list(module)
        # Leaf layers (e.g. MotionBERT's per-depth fusion Linears) are not transformer blocks.
        if len({type(m) for m in children}) == 1 and all(any(True for _ in m.children()) for m in children):
            found[name] = module
    found = {n: m for n, m in found.items() if not any(n.startswith(o + ".") for o in found if o != n)}
    if not single:
        return found
    singles = {}
    for name, module in model.named_modules():
        if (module is model or not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) != 1
                or not any(True for _ in module[0].children())):
            continue
        related = [o for o in list(found) + list(singles) if o.startswith(name + ".") or name.startswith(o + ".")]
        if not related:
            singles[name] = module
    return singles


class ShapeUnknown(ValueError):
    """The model's input shape cannot be inferred before a real input arrives (``wrap_with_hot``
    then tries :func:`guess_input_shapes`, and wraps lazily when none fits)."""


class ProbeForwardError(RuntimeError):
    """The probe forward raised: the example input does not fit the model."""


class NoPrunableBlocks(ValueError):
    """The probe ran, but no block list carries the input's frames on a token axis."""


def infer_input_shape(model: nn.Module) -> Tuple[int, int, int]:
    """Guess ``(frames, joints, channels)`` from common attribute and parameter names.

    Raises:
        ShapeUnknown: no frame count (or no input width) can be read from the model.
    """
    def attribute(*names: str) -> Optional[int]:
        for n in names:
            value = getattr(model, n, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    frames = attribute("num_frames", "num_frame", "frames", "maxlen", "receptive_field")
    joints = attribute("num_joints", "n_joints", "joints")
    channels = attribute("in_chans", "dim_in", "in_channels")
    for name, p in model.named_parameters():
        lowered = name.lower()
        if p.dim() not in (3, 4) or p.shape[0] != 1:
            continue
        # Position embeddings give the sizes away: (1, T, c) / (1, T, 1, c) per frame, (1, J, c) per joint.
        if frames is None and any(word in lowered for word in ("temp", "frame", "time")):
            frames = p.shape[1]
        elif joints is None and p.dim() == 3 and (
                any(word in lowered for word in ("spatial", "joint")) or lowered.split(".")[-1] == "pos_embed"):
            joints = p.shape[1]
    if channels is None:
        first_linear = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
        channels = first_linear.in_features if first_linear is not None else None
        # Models embedding whole frames (PoseFormer-style) see joints * channels features at once.
        if channels is not None and channels > 3 and channels % (joints or 17) == 0:
            channels //= joints or 17
    if frames is None or channels is None:
        raise ShapeUnknown("could not infer the model's input shape (frames, joints, channels); pass "
                         "input_shape=(T, J, C) or example_input=torch.randn(1, T, J, C)")
    return frames, joints or 17, channels


def guess_input_shapes(model: nn.Module) -> List[Tuple[int, int, int]]:
    """Input shapes ``(T, J, C)`` worth one probe forward each, when :func:`infer_input_shape` finds none.

    Upstream models that store no frame count still size parameters by it: position embeddings
    ``(1, T, c)`` under any name (MHFormer's ``pos_embed_1``), norms over a frame axis inside the
    blocks (MotionAGFormer's temporal ``BatchNorm1d(T)``), norms over frames used as channels
    (MHFormer's ``LayerNorm(T)``). Frame counts seen most often come first; the caller keeps the
    first shape whose probe succeeds. Joints: 17 (Human3.6M) first; channels: 2, then 3.
    """
    lists = find_block_lists(model)
    widths = {m.normalized_shape[-1] for lst in lists.values() for m in lst.modules() if isinstance(m, nn.LayerNorm)}
    votes: Dict[int, int] = {}
    for name, p in model.named_parameters():
        if p.dim() in (3, 4) and p.shape[0] == 1:  # (1, N, c) / (1, N, 1, c): an embedding per frame or per joint
            votes[p.shape[1]] = votes.get(p.shape[1], 0) + 1
    for module in model.modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)):
            if module.num_features not in widths:
                votes[module.num_features] = votes.get(module.num_features, 0) + 1
        elif isinstance(module, nn.LayerNorm) and module.normalized_shape[-1] not in widths:
            votes[module.normalized_shape[-1]] = votes.get(module.normalized_shape[-1], 0) + 1
    frames = sorted((n for n in votes if n > 1), key=lambda n: (-votes[n], n))
    first_linear = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    channels = [2, 3] + ([first_linear.in_features] if first_linear is not None and first_linear.in_features < 8 else [])
    channels = sorted(set(channels), key=channels.index)
    if first_linear is not None and first_linear.in_features in (2, 3):  # the joints' embedding says which
        channels = [first_linear.in_features]
    return [(t, 17, c) for t in frames for c in channels]


def example_input(model: nn.Module, given: Optional[torch.Tensor], input_shape: Optional[Sequence[int]]
                  ) -> torch.Tensor:
    """The probe's input: one sample, ``(1, T, J, C)``, on the model's device and dtype."""
    if given is not None:
        if not isinstance(given, torch.Tensor) or given.dim() != 4:
            raise ValueError("example_input must be a tensor (batch, frames, joints, channels), got "
                             f"{tuple(given.shape) if isinstance(given, torch.Tensor) else type(given).__name__}")
        frames, joints, channels = given.shape[1:]
    elif input_shape is not None:
        if len(tuple(input_shape)) != 3:
            raise ValueError(f"input_shape must be (frames, joints, channels), got {tuple(input_shape)}")
        frames, joints, channels = input_shape
    else:
        frames, joints, channels = infer_input_shape(model)
    # One sample keeps the probe as cheap as a single inference; with b = 1 the known layouts still
    # give distinct shapes as long as frames != joints (checked per module when they are equal).
    param = next(model.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
    sample = torch.randn(1, frames, joints, channels, generator=torch.Generator().manual_seed(0))
    if given is not None:
        sample = sample.to(given.dtype)
    return sample.to(device=device, dtype=dtype if sample.is_floating_point() else sample.dtype)


def _num_heads(block: nn.Module, width: int) -> int:
    for m in block.modules():
        heads = getattr(m, "num_heads", None)
        if isinstance(heads, int) and heads > 0 and width % heads == 0:
            return heads
    return math.gcd(width, 8)


def _record_calls(model: nn.Module, example: torch.Tensor, candidates: Dict[str, nn.Module],
                  extra: Dict[str, nn.Module], leaves: Optional[Dict[str, nn.Module]] = None) -> List[_Call]:
    log: List[_Call] = []
    handles = []

    def recorder(kind: str, name: str) -> Tuple[Callable, Callable]:
        def pre(module, args, kwargs):
            log.append(_Call(kind, name, args, dict(kwargs)))

        def post(module, args, kwargs, output):
            for call in reversed(log):
                if call.name == name and call.output is None:
                    call.output = output
                    break
        return pre, post

    targets = [("block", f"{lname}.{d}", blk) for lname, lst in candidates.items() for d, blk in enumerate(lst)]
    listed = set(map(id, candidates.values()))
    targets += [("child", n, m) for n, m in model.named_children() if id(m) not in listed]
    targets += [("child", n, m) for n, m in extra.items()]
    targets += [("leaf", n, m) for n, m in (leaves or {}).items()]
    for kind, name, module in targets:
        pre, post = recorder(kind, name)
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    try:
        with evaluation_mode(model), torch.no_grad():
            model(example)
    except Exception as error:
        raise ProbeForwardError(f"the probe forward on an input of shape {tuple(example.shape)} failed ({error}); "
                           "pass example_input= (or input_shape=(T, J, C)) matching your model") from error
    finally:
        for h in handles:
            h.remove()
    return log


def _layout_candidates(call: _Call, b: int, t: int, j: int) -> List[TokenLayout]:
    x = token_argument(call.args, call.kwargs)[0]
    return [] if x is None else match_layouts(x.shape, b, t, j)


def _check_ambiguity(calls: List[_Call], overrides: Dict[str, TokenLayout], b: int, t: int, j: int) -> None:
    """With ``T == J`` several layouts fit one shape: ask for every needed ``layouts`` entry at once."""
    needed: Dict[str, List[str]] = {}
    for call in calls:
        owner = call.name.rsplit(".", 1)[0] if call.kind == "block" else call.name
        if owner in overrides:
            continue
        found = _layout_candidates(call, b, t, j)
        if len(found) > 1:
            needed.setdefault(owner, [l.pattern for l in found])
    if needed:
        suggestion = ", ".join(f"'{owner}': one of {patterns}" for owner, patterns in needed.items())
        raise ValueError(f"frames == joints == {t}: the token layouts of {sorted(needed)} fit several patterns; "
                         f"pass layouts={{{suggestion}}}")


@dataclass(frozen=True)
class ProbeOptions:
    """The user's overrides of what the probe infers (``wrap_with_hot``'s ``blocks``, ``layouts``,
    ``recover_before``, ``frame_layers`` and ``num_heads``)."""

    blocks: Optional[Tuple[str, ...]] = None
    layouts: Mapping[str, str] = field(default_factory=dict)
    recover_before: Optional[str] = None
    frame_layers: Optional[Tuple[str, ...]] = None
    num_heads: Optional[int] = None

    @classmethod
    def from_arguments(cls, blocks: Optional[Sequence[str]], layouts: Optional[Mapping[str, str]],
                       recover_before: Optional[str], frame_layers: Optional[Sequence[str]],
                       num_heads: Optional[int]) -> "ProbeOptions":
        """Type-checked options (names are checked against a model by :func:`check_names`)."""
        if layouts is not None and not isinstance(layouts, Mapping):
            raise TypeError(f"layouts must be a dict {{module name: pattern}}, got {type(layouts).__name__}")
        for name, given in (("blocks", blocks), ("frame_layers", frame_layers)):
            if given is not None and (isinstance(given, str) or not all(isinstance(n, str) for n in given)):
                raise TypeError(f"{name} must be a list of module names, got {given!r}")
        if num_heads is not None:
            if isinstance(num_heads, bool) or not isinstance(num_heads, int):
                raise TypeError(f"num_heads must be an integer, got {type(num_heads).__name__} {num_heads!r}")
        parse_layouts(dict(layouts or {}))  # a malformed pattern fails now
        return cls(None if blocks is None else tuple(blocks), dict(layouts or {}), recover_before,
                   None if frame_layers is None else tuple(frame_layers), num_heads)


def check_names(model: nn.Module, options: ProbeOptions) -> None:
    """``blocks`` and ``recover_before`` must name modules of ``model``; checked before any forward."""
    modules = dict(model.named_modules())
    if options.blocks is not None:
        missing = [n for n in options.blocks if n not in modules]
        if missing:
            raise ValueError(f"blocks={list(options.blocks)}: no module named {missing}; block lists found: "
                             f"{sorted(find_block_lists(model))}")
    elif not find_block_lists(model):
        raise ValueError("no block list found: HoT needs the transformer blocks in an nn.ModuleList (or "
                         "nn.Sequential) of identical modules; pass blocks=['name', ...]")
    if options.recover_before is not None and options.recover_before not in modules:
        raise ValueError(f"recover_before={options.recover_before!r}: the model has no module of that name; its "
                         f"direct children are {[n for n, _ in model.named_children()]}")


@dataclass(frozen=True)
class _ListSpan:
    """A usable block list in the probe's call log: its layout, the log positions of its first and
    last block calls, and its token streams."""

    layout: TokenLayout
    first: int
    last: int
    streams: int


@dataclass
class _Probe:
    """The probe forward's record, shared by the steps of :func:`probe_structure`."""

    model: nn.Module
    b: int
    t: int
    j: int
    overrides: Dict[str, TokenLayout]
    log: List[_Call]

    def layout_of(self, owner: str, call: _Call) -> Optional[TokenLayout]:
        if owner in self.overrides:
            return self.overrides[owner]
        found = _layout_candidates(call, self.b, self.t, self.j)
        return found[0] if found else None


def probe_structure(model: nn.Module, example: torch.Tensor, options: ProbeOptions = ProbeOptions(),
                    tpc_only: bool = False) -> ModelStructure:
    """Run the probe forward on ``example`` ``(1, T, J, C)`` and describe the model's structure.

    ``options`` override what is inferred (see :class:`ProbeOptions`). With ``tpc_only`` the frames
    are restored by the nearest-frame fill, which may run at the output of the last block when no
    module after the blocks takes per-frame tokens.

    Raises:
        ValueError: no usable block list, an unknown name in ``blocks``/``layouts``/``recover_before``/
            ``frame_layers``, ambiguous layouts (``T == J``) or frame-indexed layers (``T`` equal to
            the token width), or no module after the last block.
    """
    check_names(model, options)
    b, t, j = example.shape[:3]
    candidates = find_block_lists(model) if options.blocks is None else \
        {n: model.get_submodule(n) for n in options.blocks}
    singles = find_block_lists(model, single=True) if options.blocks is None else {}
    recorded = {**candidates, **singles}
    extra = {options.recover_before: model.get_submodule(options.recover_before)} if options.recover_before else {}
    log = _record_calls(model, example, recorded, extra, _frame_sized_leaves(recorded, t))
    probe = _Probe(model, b, t, j, parse_layouts(dict(options.layouts)), log)
    _check_layout_names(probe, recorded, candidates, options.recover_before)
    block_calls = _block_calls(log)
    spans, rejected = _usable_lists(probe, recorded, candidates, block_calls)
    if options.blocks is not None and rejected:
        raise ValueError(f"cannot use the given block lists: {rejected}")
    chains = _chains(spans, block_calls, singles)
    if not chains:
        raise NoPrunableBlocks(f"no usable block list: candidates {sorted(candidates) or 'none'} were rejected "
                         f"({rejected}); pass blocks=[...] and layouts={{...}}")
    chain_spans = {head: dataclasses.replace(spans[head], last=spans[members[-1]].last)
                   for head, members in chains.items()}
    calls_of = {head: [pc for m in members for pc in block_calls[m]] for head, members in chains.items()}
    group = _pruned_group(chain_spans, calls_of, t, explicit=options.blocks is not None)
    depths = {len(calls_of[n]) for n in group}
    if len(depths) != 1:
        raise ValueError(f"block lists {group} run side by side but have different lengths {sorted(depths)}")
    depth = depths.pop()
    sites, channels_at = _sites(model, group, depth, chain_spans, calls_of, t)
    widths = {token_argument(c.args, c.kwargs)[0].shape[-1] for h in group for _, c in calls_of[h]}
    sites = _with_frame_layers(model, sites, log, t, widths, options.frame_layers)
    recover_call, recover_layout, after_block = _recovery_site(probe, max(chain_spans[n].last for n in group),
                                                               options.recover_before, tpc_only)
    recover_width = token_argument(recover_call.args, recover_call.kwargs)[0].shape[-1]
    takes_frames = any(s.frame_args or s.frame_kwargs for s in sites)
    heads = options.num_heads if options.num_heads is not None else _num_heads(sites[0].module, recover_width)
    return ModelStructure(
        lists=tuple(m for head in group for m in chains[head]), depth=depth, sites=tuple(sites),
        recover_name=recover_call.name, recover_module=model.get_submodule(recover_call.name),
        recover_layout=recover_layout, frames=t, joints=j, in_channels=example.shape[3],
        family=recognise_family([chain_spans[n].layout for n in group], takes_frames,
                                frame_indexed=any(s.frame_layers for s in sites)),
        heads=heads, recover_width=recover_width, channels_at=dict(channels_at), recover_after_block=after_block)


def _check_layout_names(probe: _Probe, recorded: Dict[str, nn.Module], candidates: Dict[str, nn.Module],
                        recover_before: Optional[str]) -> None:
    """Unknown ``layouts`` keys are errors; with ``T == J`` every ambiguous layout is asked for at once."""
    log = probe.log
    unknown = sorted(set(probe.overrides) - set(recorded) - {c.name for c in log if c.kind == "child"})
    if unknown:
        called = [c.name for c in log if c.kind == "child"]
        raise ValueError(f"layouts: no block list or called module named {unknown}; block lists "
                         f"{sorted(candidates)}, modules called by forward {called}")
    block_positions = [p for p, c in enumerate(log) if c.kind == "block"]
    if block_positions:  # the blocks and the likely head: every entry the user must give, in one message
        likely_head = _recovery_point(probe.model, log, max(block_positions), recover_before, required=False)
        _check_ambiguity([c for c in log if c.kind == "block"] + ([likely_head] if likely_head else []),
                         probe.overrides, probe.b, probe.t, probe.j)


def _block_calls(log: List[_Call]) -> Dict[str, List[Tuple[int, _Call]]]:
    """Each recorded list's block calls with their positions in the log."""
    calls: Dict[str, List[Tuple[int, _Call]]] = {}
    for position, call in enumerate(log):
        if call.kind == "block":
            calls.setdefault(call.name.rsplit(".", 1)[0], []).append((position, call))
    return calls


def _usable_lists(probe: _Probe, recorded: Dict[str, nn.Module], candidates: Dict[str, nn.Module],
                  block_calls: Dict[str, List[Tuple[int, _Call]]]) -> Tuple[Dict[str, _ListSpan], Dict[str, str]]:
    """The lists whose blocks are each called once on token tensors of one layout; why the others are not."""
    spans: Dict[str, _ListSpan] = {}
    rejected: Dict[str, str] = {}
    for lname, lst in recorded.items():
        calls = block_calls.get(lname, [])
        reason = None
        if len(calls) != len(lst) or len({c.name for _, c in calls}) != len(lst):
            reason = f"{len(calls)} calls for {len(lst)} blocks (HoT needs each block called once)"
        else:
            found = {probe.layout_of(lname, c) for _, c in calls}
            counts = [_stream_count(c) for _, c in calls]
            if None in found or len(found) != 1:
                x = token_argument(calls[0][1].args, calls[0][1].kwargs)[0] if calls else None
                shape = tuple(x.shape) if x is not None else None
                reason = (f"inputs (shape {shape}) are not token tensors over (batch={probe.b}, frames={probe.t}, "
                          f"joints={probe.j}): no axis carries the {probe.t} frames, so their tokens are something "
                          "else (frames as channels, or e.g. PoseFormerV2's DCT coefficients plus a few centre "
                          "frames) and cannot be pruned frame by frame")
            elif None in counts or len(set(counts)) != 1:
                bad = calls[counts.index(None)][1].name if None in counts else calls[0][1].name
                reason = (f"{bad} does not return one tensor of its input's shape (nor a tuple of the "
                          "same-shape tensors it takes)")
            else:
                spans[lname] = _ListSpan(found.pop(), calls[0][0], calls[-1][0], counts[0])
        if reason is not None and lname in candidates:
            rejected[lname] = reason
    return spans, rejected


def _recovery_site(probe: _Probe, last_block: int, recover_before: Optional[str], tpc_only: bool
                   ) -> Tuple[_Call, TokenLayout, bool]:
    """The call before which the frames are restored, its layout, and whether the restore runs at the
    output of the last block instead (TPC only, when nothing after the blocks takes per-frame tokens)."""
    call = _recovery_point(probe.model, probe.log, last_block, recover_before,
                           required=not tpc_only or recover_before is not None)
    layout = probe.layout_of(call.name, call) if call is not None else None
    if layout is None and tpc_only and recover_before is None:
        # MHFormer's head is channels-first: fill the pruned frames at the output of the last block instead.
        # Equivalent when what follows is token-wise.
        call = probe.log[last_block]
        return call, probe.layout_of(call.name.rsplit(".", 1)[0], call), True
    if layout is None:
        shape = tuple(token_argument(call.args, call.kwargs)[0].shape)
        raise ValueError(f"the input of {call.name!r} (shape {shape}) is not a token tensor over (batch={probe.b}, "
                         f"frames={probe.t}, joints={probe.j}), so no module after the blocks takes per-frame "
                         "tokens and HoT cannot restore every frame (seq2seq) there: wrap with recover=False "
                         "(TPC only, seq2frame: the model predicts the centre frame), or pass recover_before= "
                         "or layouts={...} naming a module that does take per-frame tokens")
    return call, layout, False


def _stream_count(call: _Call) -> Optional[int]:
    """1 for a block returning one tensor of its input's shape; ``n`` for a block taking ``n`` same-shape
    tensors as its first positional arguments and returning a tuple/list of ``n`` of that shape; else None."""
    x = token_argument(call.args, call.kwargs)[0]
    out = call.output
    if isinstance(out, torch.Tensor):
        return 1 if x is not None and out.shape == x.shape else None
    if isinstance(out, (tuple, list)) and len(out) >= 2 and len(call.args) >= len(out):
        ins = call.args[:len(out)]
        if all(isinstance(v, torch.Tensor) for v in tuple(ins) + tuple(out)) and \
                len({tuple(v.shape) for v in tuple(ins) + tuple(out)}) == 1:
            return len(out)
    return None


def _chains(spans: Dict[str, _ListSpan], block_calls: Dict[str, List[Tuple[int, _Call]]],
            singles: Dict[str, nn.Module]) -> Dict[str, List[str]]:
    """Usable lists grouped into sequences of depths: list B continues list A when B's first block takes
    A's last outputs (the very same tensors) in the same layout (MHFormer: ``SHR_blocks`` then
    ``CHI_blocks``). A list of one block only counts as such a continuation."""
    chains: Dict[str, List[str]] = {}
    for lname in sorted(spans, key=lambda n: spans[n].first):
        span = spans[lname]
        inputs = list(block_calls[lname][0][1].args[:span.streams])

        def continues(members: List[str]) -> bool:
            tail = spans[members[-1]]
            outputs = _outputs(block_calls[members[-1]][-1][1], span.streams)
            return (tail.layout == span.layout and tail.streams == span.streams and outputs is not None
                    and len(inputs) == span.streams and all(a is o for a, o in zip(inputs, outputs)))

        head = next((h for h, members in chains.items() if continues(members)), None)
        if head is not None:
            chains[head].append(lname)
        elif lname not in singles:
            chains[lname] = [lname]
    return chains


def _outputs(call: _Call, n: int) -> Optional[tuple]:
    out = call.output
    if n == 1:
        return (out,) if isinstance(out, torch.Tensor) else None
    return tuple(out) if isinstance(out, (tuple, list)) and len(out) == n else None


def _pruned_group(spans: Dict[str, _ListSpan], block_calls: Dict[str, List[Tuple[int, _Call]]],
                  t: int, explicit: bool) -> List[str]:
    """Lists whose calls interleave run side by side (one depth = one block of each); lists that run
    one after another are stages, and HoT prunes the last stage that mixes frames."""
    groups: List[List[str]] = []
    for lname in sorted(spans, key=lambda n: spans[n].first):
        if groups and any(spans[o].last > spans[lname].first for o in groups[-1]):
            groups[-1].append(lname)
        else:
            groups.append([lname])
    if explicit:
        if len(groups) != 1:
            raise ValueError(f"blocks={sorted(spans)} run one after another, not side by side; give one stage")
        return groups[0]

    # A '(b t) j c' block can still mix frames when it is told the frame count (MotionBERT).
    def mixes_frames(lname: str) -> bool:
        return not spans[lname].layout.is_spatial or any(
            type(a) is int and a == t for _, c in block_calls[lname] for a in c.args[1:] + tuple(c.kwargs.values()))

    temporal = [g for g in groups if any(mixes_frames(n) for n in g)]
    if not temporal:
        raise NoPrunableBlocks(f"no block list mixes frames (all are spatial '(b t) j c' without a frame-count "
                         f"argument): {sorted(spans)}; pass blocks=[...] to prune anyway")
    return temporal[-1]


def _sites(model: nn.Module, group: List[str], depth: int, spans: Dict[str, _ListSpan],
           calls_of: Dict[str, List[Tuple[int, _Call]]], t: int) -> Tuple[List[BlockSite], Dict[int, int]]:
    """One :class:`BlockSite` per block of the pruned group, in call order per depth, and the token
    width at each depth."""
    sites: List[BlockSite] = []
    channels_at: Dict[int, int] = {}
    for d in range(depth):
        at_depth = sorted(((calls_of[n][d], n) for n in group), key=lambda item: item[0][0])
        first_call = at_depth[0][0][1]
        first_input = token_argument(first_call.args, first_call.kwargs)[0]
        channels_at[d] = first_input.shape[-1]
        for rank, ((_, call), head) in enumerate(at_depth):
            n = spans[head].streams
            sites.append(BlockSite(
                name=call.name, module=model.get_submodule(call.name), depth=d, layout=spans[head].layout,
                frame_args=tuple(i for i, a in enumerate(call.args) if i >= n and type(a) is int and a == t),
                frame_kwargs=tuple(k for k, v in call.kwargs.items() if type(v) is int and v == t),
                shares_first_input=rank == 0 or token_argument(call.args, call.kwargs)[0] is first_input, streams=n))
    return sites, channels_at


def _frame_sized_leaves(lists: Dict[str, nn.Module], t: int) -> Dict[str, nn.Module]:
    """Leaf modules inside the blocks with a parameter or buffer that has an axis of size ``t``."""
    found = {}
    for lname, lst in lists.items():
        for name, module in lst.named_modules(prefix=lname):
            if any(True for _ in module.children()):
                continue
            tensors = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
            if any(t in tuple(v.shape) for v in tensors):
                found[name] = module
    return found


_FRAME_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def _with_frame_layers(model: nn.Module, sites: List[BlockSite], log: List[_Call], t: int, widths: set,
                       given: Optional[Sequence[str]]) -> List[BlockSite]:
    """Attach to every site the layers inside its block that are indexed by frame position.

    Detected: a batch/instance norm with ``num_features == T`` applied to ``(n, T, ...)`` tokens
    (one statistic per frame index). A Linear or convolution consuming ``T`` features inside a block
    mixes a fixed number of frames and cannot be pruned: an error (raised when wrapping prunes that
    block). When ``T`` equals a token width, a norm of size ``T`` could be per channel: the user must
    say (``frame_layers``).
    """
    leaf_input: Dict[str, torch.Tensor] = {}
    for call in log:
        if call.kind == "leaf" and call.name not in leaf_input:
            x = token_argument(call.args, call.kwargs)[0]
            if x is not None:
                leaf_input[call.name] = x
    owner = {name: next(s for s in sites if name.startswith(s.name + "."))
             for name in leaf_input if any(name.startswith(s.name + ".") for s in sites)}
    if given is not None:
        per_site, unprunable = _given_frame_layers(model, owner, given, t), {}
    else:
        per_site, unprunable = _detected_frame_layers(model, owner, leaf_input, t, widths)
    out = []
    for site in sites:
        layers = tuple(FrameLayer(name=n, parent=model.get_submodule(n.rsplit(".", 1)[0]),
                                  attribute=n.rsplit(".", 1)[1], module=model.get_submodule(n))
                       for n in per_site.get(site.name, []))
        out.append(dataclasses.replace(site, frame_layers=layers, unprunable=tuple(unprunable.get(site.name, []))))
    return out


def _given_frame_layers(model: nn.Module, owner: Dict[str, BlockSite], given: Sequence[str], t: int
                        ) -> Dict[str, List[str]]:
    """The user's ``frame_layers`` names resolved to full names per block; each must be a size-``T`` norm."""
    if isinstance(given, str) or not all(isinstance(n, str) for n in given):
        raise TypeError(f"frame_layers must be a list of module names, got {given!r}")
    per_site: Dict[str, List[str]] = {}
    used = set()
    for name, site in owner.items():
        for entry in given:
            if name == entry or name == f"{site.name}.{entry}":
                module = model.get_submodule(name)
                if not isinstance(module, _FRAME_NORMS) or module.num_features != t:
                    raise ValueError(f"frame_layers: {name} is a {type(module).__name__}; only batch/instance "
                                     f"norms with num_features == frames ({t}) can be made rank-indexed")
                per_site.setdefault(site.name, []).append(name)
                used.add(entry)
    missing = [e for e in given if e not in used]
    if missing:
        raise ValueError(f"frame_layers: no module with a size-{t} parameter inside the blocks matches "
                         f"{missing}; candidates: {sorted(owner)}")
    return per_site


def _detected_frame_layers(model: nn.Module, owner: Dict[str, BlockSite], leaf_input: Dict[str, torch.Tensor],
                           t: int, widths: set) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """Per block, the norms over its frame axis, and the layers that consume ``T`` features."""
    per_site: Dict[str, List[str]] = {}
    unprunable: Dict[str, List[str]] = {}
    ambiguous = []
    for name, site in owner.items():
        module, x = model.get_submodule(name), leaf_input[name]
        if isinstance(module, _FRAME_NORMS) and module.num_features == t and x.dim() >= 2 and x.shape[1] == t:
            (ambiguous if t in widths else per_site.setdefault(site.name, [])).append(name)
        elif t not in widths and (
                (isinstance(module, nn.Linear) and module.in_features == t)
                or (isinstance(module, nn.modules.conv._ConvNd) and module.in_channels == t)):
            unprunable.setdefault(site.name, []).append(f"{name} ({type(module).__name__} over {t} features)")
    if ambiguous:
        raise ValueError(f"frames ({t}) equal the token width, so {sorted(ambiguous)[:3]} could be indexed by "
                         "frame or by channel; pass frame_layers=[names of the layers indexed by frame] "
                         "(relative to a block, e.g. 'mixer.batch_norm'), or frame_layers=[] for none")
    return per_site, unprunable


def _recovery_point(model: nn.Module, log: List[_Call], last_block: int, recover_before: Optional[str],
                    required: bool = True) -> Optional[_Call]:
    if recover_before:
        chosen = next((c for p, c in enumerate(log) if c.name == recover_before and p > last_block), None)
        if chosen is None and required:
            raise ValueError(f"recover_before={recover_before!r} is not called after the last block")
        return chosen

    def looks_like_head(call: _Call) -> bool:
        module = model.get_submodule(call.name)
        return (not isinstance(module, _NORMS) and any(True for _ in module.parameters())
                and token_argument(call.args, call.kwargs)[0] is not None)

    chosen = next((c for p, c in enumerate(log) if p > last_block and c.kind == "child" and looks_like_head(c)), None)
    if chosen is None and required:
        raise ValueError("could not find the module that follows the last block (the head); "
                         "pass recover_before='name'")
    return chosen
