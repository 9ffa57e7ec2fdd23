"""``wrap_with_hot``: turn an unmodified video pose transformer into a HoT model with hooks.

How it works. One probe forward on a dummy input records, for every ``nn.ModuleList`` of identical
blocks, the shape of each block's input (which gives its token layout over batch ``b``, frames
``t`` and joints ``j``), which integer arguments equal the frame count, and the order of the calls.
The wrapper then hooks:

- the model: checks the input and resets the per-forward state;
- every block at depth ``>= prune_block``: a pre-hook gathers the kept frames (choosing them with
  the selector at the first block of depth ``prune_block``, which also adds ``pos_embed_token``)
  and replaces a frame-count argument ``T`` by ``f``; a post-hook writes the block output back into
  a full-length tensor. The user's forward therefore keeps seeing ``T`` frames in every reshape,
  while the expensive blocks only process ``f``;
- the module after the last block (the head): a pre-hook restores all ``T`` frames from the ``f``
  kept ones (``recover=``: TRA, interpolation, nearest kept frame, or interpolation corrected by
  TRA; see :mod:`hourglass_tokenizer.recovery`), or, for TPC only (``recover=False``), fills every
  pruned frame with its nearest kept frame so the centre frame's prediction is the kept token's.
"""
from __future__ import annotations

import inspect
import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .clustering import Selector, resolve_selector
from .layouts import TokenLayout, match_layouts, parse_layouts
from .presets import paper_setting, recognise_family
from .recovery import (LEARNED_MODES, CrossAttention, corrected_interpolation, interpolate_frames,
                       nearest_kept_frames, recover_frames, resolve_recover)

__all__ = ["wrap_with_hot", "unwrap_hot", "is_hot", "hot_parameters", "load_official_hot", "HotState",
           "HOT_PARAMETERS"]

logger = logging.getLogger("hourglass_tokenizer")

#: Attributes the wrapper adds to the model; their parameters appear in its ``state_dict``.
HOT_PARAMETERS = ("pos_embed_token", "x_token", "cross_attention")

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


@dataclass
class _Call:
    kind: str  # "block" or "child"
    name: str
    args: tuple
    kwargs: dict
    output: Any = None


@dataclass
class BlockSite:
    """One hooked block: where it is, how its tokens are laid out, which arguments carry ``T``."""

    name: str
    module: nn.Module
    depth: int
    layout: TokenLayout
    frame_args: Tuple[int, ...]
    frame_kwargs: Tuple[str, ...]
    first_at_depth: bool
    shares_first_input: bool


@dataclass
class _Plan:
    lists: Tuple[str, ...]
    depth: int
    sites: List[BlockSite]
    recover_name: str
    recover_module: nn.Module
    recover_layout: TokenLayout
    frames: int
    joints: int
    in_channels: int
    family: Optional[str]
    heads: int
    recover_width: int
    channels_at: Dict[int, int] = field(default_factory=dict)


def _tensor_arg(args: tuple, kwargs: dict) -> Optional[torch.Tensor]:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    return next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)


def _find_block_lists(model: nn.Module) -> Dict[str, nn.Module]:
    """``nn.ModuleList``/``nn.Sequential`` containers of >= 2 identical composite modules."""
    found = {}
    for name, module in model.named_modules():
        if module is model or not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < 2:
            continue
        children = list(module)
        # Leaf layers (e.g. MotionBERT's per-depth fusion Linears) are not transformer blocks.
        if len({type(m) for m in children}) == 1 and all(any(True for _ in m.children()) for m in children):
            found[name] = module
    return {n: m for n, m in found.items() if not any(n.startswith(o + ".") for o in found if o != n)}


def _infer_input_shape(model: nn.Module) -> Tuple[int, int, int]:
    """Guess ``(frames, joints, channels)`` from common attribute and parameter names."""
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
        raise ValueError("could not infer the model's input shape (frames, joints, channels); pass "
                         "input_shape=(T, J, C) or example_input=torch.randn(1, T, J, C)")
    return frames, joints or 17, channels


def _num_heads(block: nn.Module, width: int) -> int:
    for m in block.modules():
        heads = getattr(m, "num_heads", None)
        if isinstance(heads, int) and heads > 0 and width % heads == 0:
            return heads
    return math.gcd(width, 8)


def _probe(model: nn.Module, example: torch.Tensor, candidates: Dict[str, nn.Module],
           extra: Dict[str, nn.Module]) -> List[_Call]:
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
    for kind, name, module in targets:
        pre, post = recorder(kind, name)
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    except Exception as error:
        raise RuntimeError(f"the probe forward on an input of shape {tuple(example.shape)} failed ({error}); "
                           "pass example_input= (or input_shape=(T, J, C)) matching your model") from error
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return log


def _plan(model: nn.Module, example: torch.Tensor, blocks: Optional[Sequence[str]],
          layouts: Optional[Mapping[str, str]], recover_before: Optional[str]) -> _Plan:
    b, t, j = example.shape[:3]
    overrides = parse_layouts(dict(layouts or {}))
    candidates = _find_block_lists(model)
    if blocks is not None:
        missing = [n for n in blocks if n not in dict(model.named_modules())]
        if missing:
            raise ValueError(f"blocks={list(blocks)}: no module named {missing}; block lists found: {sorted(candidates)}")
        candidates = {n: model.get_submodule(n) for n in blocks}
    if not candidates:
        raise ValueError("no block list found: HoT needs the transformer blocks in an nn.ModuleList (or "
                         "nn.Sequential) of identical modules; pass blocks=['name', ...]")
    extra = {recover_before: model.get_submodule(recover_before)} if recover_before else {}
    log = _probe(model, example, candidates, extra)

    def layout_of(name: str, owner: str, call: _Call) -> Optional[TokenLayout]:
        if owner in overrides:
            return overrides[owner]
        x = _tensor_arg(call.args, call.kwargs)
        if x is None:
            return None
        found = match_layouts(x.shape, b, t, j)
        if len(found) > 1:
            raise ValueError(f"the input of {name} has shape {tuple(x.shape)}, which fits several layouts "
                             f"{[l.pattern for l in found]} (frames={t}, joints={j}); pass "
                             f"layouts={{'{owner}': '...'}}")
        return found[0] if found else None

    block_calls: Dict[str, List[Tuple[int, _Call]]] = {}
    for position, call in enumerate(log):
        if call.kind == "block":
            block_calls.setdefault(call.name.rsplit(".", 1)[0], []).append((position, call))
    usable: Dict[str, Tuple[TokenLayout, int, int]] = {}
    rejected = {}
    for lname, lst in candidates.items():
        calls = block_calls.get(lname, [])
        names = [c.name for _, c in calls]
        if len(calls) != len(lst) or len(set(names)) != len(lst):
            rejected[lname] = f"{len(calls)} calls for {len(lst)} blocks (HoT needs each block called once)"
            continue
        found = {layout_of(c.name, lname, c) for _, c in calls}
        if None in found or len(found) != 1:
            rejected[lname] = "inputs are not token tensors over (batch, frames, joints)"
            continue
        bad = [c.name for _, c in calls if not isinstance(c.output, torch.Tensor)
               or c.output.shape != _tensor_arg(c.args, c.kwargs).shape]
        if bad:
            rejected[lname] = f"{bad[0]} does not return one tensor of its input's shape"
            continue
        usable[lname] = (found.pop(), calls[0][0], calls[-1][0])
    if blocks is not None and rejected:
        raise ValueError(f"cannot use the given block lists: {rejected}")
    if not usable:
        raise ValueError(f"no usable block list: candidates {sorted(candidates) or 'none'} were rejected "
                         f"({rejected}); pass blocks=[...] and layouts={{...}}")

    # Lists whose calls interleave run side by side (one depth = one block of each); lists that run
    # one after another are stages, and HoT prunes the last stage that mixes frames.
    groups: List[List[str]] = []
    for lname in sorted(usable, key=lambda n: usable[n][1]):
        _, start, _ = usable[lname]
        if groups and any(usable[o][2] > start for o in groups[-1]):
            groups[-1].append(lname)
        else:
            groups.append([lname])
    if blocks is None:
        # A '(b t) j c' block can still mix frames when it is told the frame count (MotionBERT).
        def mixes_frames(lname: str) -> bool:
            return not usable[lname][0].is_spatial or any(
                type(a) is int and a == t for _, c in block_calls[lname] for a in c.args[1:] + tuple(c.kwargs.values()))
        temporal = [g for g in groups if any(mixes_frames(n) for n in g)]
        if not temporal:
            raise ValueError(f"no block list mixes frames (all are spatial '(b t) j c' without a frame-count "
                             f"argument): {sorted(usable)}; pass blocks=[...] to prune anyway")
        group = temporal[-1]
    else:
        if len(groups) != 1:
            raise ValueError(f"blocks={list(blocks)} run one after another, not side by side; give one stage")
        group = groups[0]
    depths = {len(candidates[n]) for n in group}
    if len(depths) != 1:
        raise ValueError(f"block lists {group} run side by side but have different lengths {sorted(depths)}")
    depth = depths.pop()
    if len(usable) > len(group):
        logger.info("HoT prunes block list(s) %s; also found %s (pass blocks=[...] to choose)",
                    group, sorted(set(usable) - set(group)))

    sites: List[BlockSite] = []
    channels_at: Dict[int, int] = {}
    by_name = {c.name: c for calls in block_calls.values() for _, c in calls}
    order = {c.name: p for calls in block_calls.values() for p, c in calls}
    for d in range(depth):
        at_depth = sorted((f"{n}.{d}" for n in group), key=order.get)
        first_input = _tensor_arg(by_name[at_depth[0]].args, by_name[at_depth[0]].kwargs)
        channels_at[d] = first_input.shape[-1]
        for rank, name in enumerate(at_depth):
            call = by_name[name]
            lname = name.rsplit(".", 1)[0]
            x = _tensor_arg(call.args, call.kwargs)
            sites.append(BlockSite(
                name=name, module=candidates[lname][d], depth=d, layout=usable[lname][0],
                frame_args=tuple(i for i, a in enumerate(call.args) if i > 0 and type(a) is int and a == t),
                frame_kwargs=tuple(k for k, v in call.kwargs.items() if type(v) is int and v == t),
                first_at_depth=rank == 0, shares_first_input=rank == 0 or x is first_input))

    last_block = max(usable[n][2] for n in group)
    if recover_before:
        chosen = next(((p, c) for p, c in enumerate(log) if c.name == recover_before and p > last_block), None)
        if chosen is None:
            raise ValueError(f"recover_before={recover_before!r} is not called after the last block")
    else:
        def looks_like_head(call: _Call) -> bool:
            module = model.get_submodule(call.name)
            return (not isinstance(module, _NORMS) and any(True for _ in module.parameters())
                    and _tensor_arg(call.args, call.kwargs) is not None)
        chosen = next(((p, c) for p, c in enumerate(log)
                       if p > last_block and c.kind == "child" and looks_like_head(c)), None)
        if chosen is None:
            raise ValueError("could not find the module that follows the last block (the head); "
                             "pass recover_before='name'")
    recover_call = chosen[1]
    recover_layout = layout_of(recover_call.name, recover_call.name, recover_call)
    if recover_layout is None:
        shape = tuple(_tensor_arg(recover_call.args, recover_call.kwargs).shape)
        raise ValueError(f"the input of {recover_call.name!r} (shape {shape}) is not a token tensor over "
                         f"(batch={b}, frames={t}, joints={j}); pass recover_before= or layouts={{...}}")
    recover_width = _tensor_arg(recover_call.args, recover_call.kwargs).shape[-1]
    takes_frames = any(s.frame_args or s.frame_kwargs for s in sites)
    family = recognise_family([usable[n][0] for n in group], takes_frames)
    return _Plan(lists=tuple(group), depth=depth, sites=sites, recover_name=recover_call.name,
                 recover_module=model.get_submodule(recover_call.name), recover_layout=recover_layout,
                 frames=t, joints=j, in_channels=example.shape[3], family=family,
                 heads=_num_heads(candidates[group[0]][0], recover_width), recover_width=recover_width,
                 channels_at=channels_at)


def _accepts_exclude(selector: Callable) -> bool:
    try:
        return "exclude" in inspect.signature(selector).parameters
    except (TypeError, ValueError):
        return False


class HotState:
    """Configuration, hooks and per-forward state of a HoT model; available as ``model.hot``.

    ``tokens``, ``prune_block`` and ``selector`` can be changed in place (``model.hot.tokens = 61``).
    ``last_indices`` holds the frames kept in the latest forward, ``(b, tokens)``.
    """

    def __init__(self, model: nn.Module, plan: _Plan, prune_block: int, tokens: int, recover: Optional[str],
                 selector: Union[str, Selector], k: int, seed: int, check_inputs: bool) -> None:
        self._model = model
        self._plan = plan
        self._recover = recover
        self._k = k
        self.seed = seed
        self.check_inputs = check_inputs
        self._selector_spec = selector
        self._select = resolve_selector(selector, k=k, seed=seed)
        self._handles: List[Any] = []
        self._idx: Optional[torch.Tensor] = None
        self._active = False
        self._full: Dict[str, torch.Tensor] = {}
        self._shape = (0, 0, 0)
        self.last_indices: Optional[torch.Tensor] = None
        self._validate(prune_block, tokens)
        self._prune_block = prune_block
        self._tokens = tokens

    # -- configuration -------------------------------------------------------------------------
    @property
    def frames(self) -> int:
        """Frames ``T`` the model was wrapped for."""
        return self._plan.frames

    @property
    def depth(self) -> int:
        """Number of blocks per block list (``prune_block`` ranges over ``1..depth-1``)."""
        return self._plan.depth

    @property
    def block_lists(self) -> Tuple[str, ...]:
        return self._plan.lists

    @property
    def layouts(self) -> Dict[str, str]:
        """Token layout of every hooked block list and of the recovery point."""
        out = {s.name.rsplit(".", 1)[0]: s.layout.pattern for s in self._plan.sites}
        out[self._plan.recover_name] = self._plan.recover_layout.pattern
        return out

    @property
    def recover_before(self) -> str:
        return self._plan.recover_name

    @property
    def family(self) -> Optional[str]:
        """Recognised architecture family ("mixste", "motionbert") or None."""
        return self._plan.family

    @property
    def tokens(self) -> int:
        return self._tokens

    @tokens.setter
    def tokens(self, value: int) -> None:
        self._validate(self._prune_block, value)
        if value != self._tokens:
            self._tokens = value
            self._resize_pos_embed()

    @property
    def prune_block(self) -> int:
        return self._prune_block

    @prune_block.setter
    def prune_block(self, value: int) -> None:
        self._validate(value, self._tokens)
        self._prune_block = value
        self._resize_pos_embed()
        self.install()

    @property
    def recover(self) -> Union[str, bool]:
        """How all frames are restored before the head (``"tra"``, ``"interpolate"``, ``"nearest"``,
        ``"tra+interpolate"``; the model is seq2seq), or ``False`` for TPC only (seq2frame). Fixed at
        wrapping time."""
        return self._recover if self._recover is not None else False

    @recover.setter
    def recover(self, value: bool) -> None:
        raise AttributeError(f"recover is fixed when wrapping; call wrap_with_hot(model, ..., recover={value})")

    @property
    def k(self) -> int:
        """Neighbours in DPC-kNN's density estimate."""
        return self._k

    @k.setter
    def k(self, value: int) -> None:
        self._select = resolve_selector(self._selector_spec, k=value, seed=self.seed)
        self._k = value

    @property
    def selector(self) -> Union[str, Selector]:
        return self._selector_spec

    @selector.setter
    def selector(self, value: Union[str, Selector]) -> None:
        self._select = resolve_selector(value, k=self.k, seed=self.seed)
        self._selector_spec = value

    @property
    def center(self) -> int:
        """The frame a TPC-only (seq2frame) model predicts; always among the kept frames."""
        return (self.frames - 1) // 2

    def _validate(self, prune_block: int, tokens: int) -> None:
        if not isinstance(prune_block, int) or not 1 <= prune_block <= self.depth - 1:
            raise ValueError(f"prune_block must be an int in 1..{self.depth - 1} (the block lists "
                             f"{list(self._plan.lists)} have depth {self.depth}), got {prune_block!r}")
        if not isinstance(tokens, int) or not 1 <= tokens <= self.frames:
            raise ValueError(f"tokens must be an int in 1..frames ({self.frames}), got {tokens!r}")
        if tokens == self.frames:
            # Allowed as the no-pruning reference point of a tokens sweep; it saves nothing.
            logger.warning("tokens == frames (%d): HoT keeps every frame and saves no computation", tokens)

    def _resize_pos_embed(self) -> None:
        old = getattr(self._model, "pos_embed_token", None)
        if old is None:  # TPC only, like the official TPC models, has no kept-frame embedding
            return
        width = self._plan.channels_at[self._prune_block]
        if old.shape == (1, self._tokens, width):
            return
        with torch.no_grad():
            if old.shape[-1] == width:
                # Keep what was learned: resample along the kept-frame axis.
                data = F.interpolate(old.transpose(1, 2), size=self._tokens, mode="linear",
                                     align_corners=True).transpose(1, 2)
            else:
                data = old.new_zeros(1, self._tokens, width)
        self._model.pos_embed_token = nn.Parameter(data.contiguous(), requires_grad=old.requires_grad)
        warnings.warn("model.pos_embed_token was replaced by a new parameter of shape "
                      f"{tuple(data.shape)}; rebuild optimisers that held the old one", stacklevel=3)

    def __repr__(self) -> str:
        return (f"HotState(prune_block={self._prune_block}, tokens={self._tokens}, frames={self.frames}, "
                f"recover={self.recover}, selector={self._selector_spec!r}, block_lists={list(self._plan.lists)}, "
                f"recover_before={self._plan.recover_name!r}, family={self._plan.family!r})")

    # -- hooks ---------------------------------------------------------------------------------
    def install(self) -> None:
        """(Re-)register every hook for the current ``prune_block``."""
        self.remove_hooks()
        model = self._model
        self._handles.append(model.register_forward_pre_hook(self._on_model_start, with_kwargs=True))
        self._handles.append(model.register_forward_hook(self._on_model_end, always_call=True))
        for site in self._plan.sites:
            if site.depth >= self._prune_block:
                self._handles.append(site.module.register_forward_pre_hook(
                    _SiteHook(self, site, before=True), with_kwargs=True))
                self._handles.append(site.module.register_forward_hook(
                    _SiteHook(self, site, before=False), with_kwargs=True))
        self._handles.append(self._plan.recover_module.register_forward_pre_hook(
            self._on_recover, with_kwargs=True))

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _on_model_start(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = _tensor_arg(args, kwargs)
        if x is None:
            raise TypeError("a HoT model expects the pose sequence tensor as its first argument")
        expected = (self.frames, self._plan.joints, self._plan.in_channels)
        if x.dim() != 4 or tuple(x.shape[2:]) != expected[1:]:
            raise ValueError(f"expected input of shape (batch, frames, joints, channels) = (b, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}), got {tuple(x.shape)}")
        if x.shape[1] != self.frames and (self.recover or x.shape[1] <= self._tokens):
            raise ValueError(f"this HoT model was wrapped for {self.frames} frames and keeps {self._tokens}; "
                             f"got an input with {x.shape[1]} frames"
                             + ("" if not self.recover else " (seq2seq recovery restores exactly the wrapped frame count)"))
        if self.check_inputs and not torch.compiler.is_compiling() and not bool(torch.isfinite(x).all()):
            raise ValueError("the input contains NaN or Inf values; HoT's frame selection would be meaningless")
        self._shape = (x.shape[0], x.shape[1], self._plan.joints)
        self._idx = None
        self._full = {}
        self._active = True

    def _on_model_end(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._idx is not None:
            self.last_indices = self._idx.detach()
        self._idx = None
        self._full = {}
        self._active = False

    def _select_frames(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        b, t, j = self._shape
        features = layout.frame_features(x, b, t, j)
        f = self._tokens
        if self.recover:
            idx = self._select(features, f)
        elif _accepts_exclude(self._select):
            # TPC-only models predict the centre frame, so it is always kept (as in the paper's code).
            center = torch.full((b, 1), (t - 1) // 2, dtype=torch.long, device=x.device)
            idx = center if f == 1 else torch.cat([self._select(features, f - 1, exclude=(t - 1) // 2), center], 1)
        else:
            idx = self._force_center(self._select(features, f), (t - 1) // 2)
        idx = torch.sort(idx.to(device=x.device, dtype=torch.long), dim=-1).values
        if not isinstance(self._selector_spec, str) and not torch.compiler.is_compiling():
            if idx.shape != (b, f) or bool((idx < 0).any() | (idx >= t).any()) or bool((idx.diff(dim=-1) == 0).any()):
                raise ValueError(f"selector {self._selector_spec!r} must return {f} unique frame indices in "
                                 f"0..{t - 1} per sample, shape ({b}, {f}); got shape {tuple(idx.shape)}")
        return idx

    @staticmethod
    def _force_center(idx: torch.Tensor, center: int) -> torch.Tensor:
        missing = ~(idx == center).any(dim=-1)
        nearest = (idx - center).abs().argmin(dim=-1)
        replaced = idx.scatter(1, nearest[:, None], center)
        return torch.where(missing[:, None], replaced, idx)

    def _before_block(self, site: BlockSite, args: tuple, kwargs: dict) -> Optional[Tuple[tuple, dict]]:
        if not self._active:
            return None
        b, t, j = self._shape
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is None:
            raise TypeError(f"HoT expects the tokens as the first positional argument of {site.name}")
        pruning_here = site.depth == self._prune_block
        if pruning_here and self._idx is None:
            self._idx = self._select_frames(x, site.layout)
        if self._idx is None:
            raise RuntimeError(f"{site.name} ran before any block of depth {self._prune_block} chose the frames")
        kept = site.layout.gather(x, self._idx, b, t, j)
        embedding = getattr(self._model, "pos_embed_token", None)
        if pruning_here and site.shares_first_input and embedding is not None:
            kept = site.layout.add_frame_embedding(kept, embedding, b, self._tokens, j)
        self._full[site.name] = x
        new_args = (kept,) + tuple(self._tokens if i in site.frame_args else a for i, a in enumerate(args) if i > 0)
        new_kwargs = {k: (self._tokens if k in site.frame_kwargs else v) for k, v in kwargs.items()}
        return new_args, new_kwargs

    def _after_block(self, site: BlockSite, output: Any) -> Any:
        if not self._active:
            return None
        b, t, j = self._shape
        full = self._full.pop(site.name)
        return site.layout.scatter(full, output, self._idx, b, t, j)

    def _on_recover(self, module: nn.Module, args: tuple, kwargs: dict) -> Optional[Tuple[tuple, dict]]:
        if not self._active:
            return None
        if self._idx is None:
            raise RuntimeError(f"{self._plan.recover_name} ran before HoT chose the frames")
        b, t, j = self._shape
        layout = self._plan.recover_layout
        x = args[0]
        mode = self._recover
        if mode in (None, "nearest"):
            x = layout.gather(x, nearest_kept_frames(self._idx, t), b, t, j)
        else:
            kept = layout.to_sequences(layout.gather(x, self._idx, b, t, j), b, self._tokens, j)
            if mode == "tra":
                full = recover_frames(self._model.x_token, self._model.cross_attention, kept)
            elif mode == "interpolate":
                full = interpolate_frames(kept, self._idx, t)
            else:
                full = corrected_interpolation(self._model.x_token, self._model.cross_attention, kept, self._idx)
            x = layout.from_sequences(full, b, t, j)
        return (x,) + tuple(args[1:]), kwargs


class _SiteHook:
    """A picklable hook bound to one block site (closures would break ``torch.save(model)``)."""

    def __init__(self, state: HotState, site: BlockSite, before: bool) -> None:
        self.state, self.site, self.before = state, site, before

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, *output: Any) -> Any:
        if self.before:
            return self.state._before_block(self.site, args, kwargs)
        return self.state._after_block(self.site, output[0])


def is_hot(model: nn.Module) -> bool:
    """True when ``model`` is currently wrapped by :func:`wrap_with_hot`."""
    return isinstance(getattr(model, "hot", None), HotState)


def _example_input(model: nn.Module, example_input: Optional[torch.Tensor],
                   input_shape: Optional[Sequence[int]]) -> torch.Tensor:
    if example_input is not None:
        if example_input.dim() != 4:
            raise ValueError(f"example_input must be (batch, frames, joints, channels), got {tuple(example_input.shape)}")
        frames, joints, channels = example_input.shape[1:]
    else:
        frames, joints, channels = input_shape if input_shape is not None else _infer_input_shape(model)
    # One sample keeps the probe as cheap as a single inference; with b = 1 the known layouts still
    # give distinct shapes as long as frames != joints (checked per module when they are equal).
    batch = 1
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, frames, joints, channels, generator=generator)
    if example_input is not None:
        sample = sample.to(example_input.dtype)
    return sample.to(device=device, dtype=dtype if sample.is_floating_point() else sample.dtype)


def wrap_with_hot(model: nn.Module, prune_block: Optional[int] = None, tokens: Optional[int] = None, *,
                  recover: Union[str, bool] = "tra+interpolate", selector: Union[str, Selector] = "dpc_knn",
                  k: int = 2, seed: int = 0, example_input: Optional[torch.Tensor] = None,
                  input_shape: Optional[Sequence[int]] = None, blocks: Optional[Sequence[str]] = None,
                  layouts: Optional[Mapping[str, str]] = None, recover_before: Optional[str] = None,
                  num_heads: Optional[int] = None, x_token_init: Union[str, torch.Tensor] = "zeros",
                  check_inputs: bool = True) -> nn.Module:
    """Turn a video pose transformer into a Hourglass Tokenizer (HoT) model, in place.

    After the first ``prune_block`` blocks, token pruning cluster (TPC) keeps ``tokens``
    representative frames chosen by density-peaks clustering of per-frame features; the deeper
    blocks only process those frames. Before the head all ``T`` frames are restored (``recover``)
    so the model stays seq2seq. The model's own ``forward`` is not modified.

    Load pretrained weights first, then wrap: the original ``state_dict`` keys are unchanged, and
    the default recovery starts as a training-free interpolation of the kept frames, so a trained
    model keeps (almost) its accuracy before any fine-tuning.

    Args:
        model: the VPT; its forward takes ``(batch, frames, joints, channels)``.
        prune_block: blocks ``0..prune_block-1`` see all frames (``1 <= prune_block < depth``).
            ``None`` (with ``tokens=None``) uses the paper's setting for a recognised architecture.
        tokens: representative frames kept, ``1 <= tokens <= frames`` (``tokens == frames`` keeps
            every frame: a reference point that saves nothing).
        recover: how the pruned frames come back before the head (the model stays seq2seq):

            - ``"tra+interpolate"`` (default): linear interpolation in time of the kept tokens,
              plus the paper's cross-attention as a learned correction whose output projection
              starts at zero: exactly ``"interpolate"`` until trained. For pretrained models.
            - ``"tra"`` (or ``True``): the paper's token recovering attention, ``T`` learnable
              queries ``x_token`` attending to the kept tokens. Needs training (from scratch as in
              the paper, or fine-tuning); required by :func:`load_official_hot` for HoT checkpoints.
            - ``"interpolate"``: training-free linear interpolation, no new parameters but
              ``pos_embed_token`` (zeros).
            - ``"nearest"``: training-free; each pruned frame copies its nearest kept frame.
            - ``False``: TPC only (seq2frame), as the official TPC models: the centre frame
              ``(T-1)//2`` is always kept, there is no ``pos_embed_token``, pruned frames are filled
              from their nearest kept frame before the head, and the centre frame's output is the
              prediction.
        selector: ``"dpc_knn"``, ``"dpc_knn_coverage"`` (DPC-kNN within equal time strata, keeping
            the first and last frame: bounded gaps, better for interpolation), ``"uniform"``,
            ``"random"`` or a callable ``(frame_features (b, t, c), f) -> indices (b, f)``.
        k: neighbours in DPC-kNN's density (self included); the paper uses 2.
        seed: seed of the private generator of the ``"random"`` selector.
        example_input / input_shape: input for the probe forward; inferred from the model's
            attributes and parameters when omitted.
        blocks: names of block lists to prune (side by side); found automatically when omitted.
        layouts: ``{module name: pattern}`` overrides of inferred token layouts.
        recover_before: name of the module before which the frames are restored; by default the
            first module with parameters (not a norm) called after the last block.
        num_heads: heads of TRA's cross-attention; by default the blocks' own.
        x_token_init: start of TRA's queries (``"tra"``): ``"zeros"`` (the paper's), ``"position"``
            (a copy of the model's own temporal position embedding, ``(1, T, c)`` or
            ``(1, T, 1, c)``, taken from the weights the model has now) or a tensor. With
            ``"tra+interpolate"`` only ``"zeros"`` keeps the start equal to the interpolation.
        check_inputs: reject inputs with NaN/Inf (skipped while compiling).

    Returns:
        The same ``model`` object, with ``model.hot`` (:class:`HotState`) and new parameters
        ``pos_embed_token (1, tokens, c)`` (not for TPC only), and for ``"tra"`` and
        ``"tra+interpolate"`` ``x_token (1, T, c)`` and ``cross_attention``. Every original
        ``state_dict`` key is unchanged. Wrapping a HoT model again re-wraps it, keeping HoT
        parameters whose shapes still fit.

    Raises:
        ValueError: a bad argument (``recover``, ``tokens``, ``prune_block``, ``x_token_init``...),
            or a model whose structure HoT cannot use; the model is then left as it was.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"wrap_with_hot expects an nn.Module, got {type(model).__name__}")
    mode = resolve_recover(recover)
    if mode == "tra+interpolate" and not (isinstance(x_token_init, str) and x_token_init == "zeros"):
        raise ValueError("recover='tra+interpolate' adds x_token to the interpolated queries, so it must start at "
                         f"zeros to begin as the exact interpolation; got x_token_init={x_token_init!r} "
                         "(use recover='tra' for a non-zero start)")
    previous: Dict[str, torch.Tensor] = {}
    if is_hot(model):
        previous = {k: v for k, v in model.state_dict().items() if k.split(".")[0] in HOT_PARAMETERS}
        unwrap_hot(model)
    clashes = [n for n in HOT_PARAMETERS + ("hot",) if hasattr(model, n)]
    if clashes:
        raise ValueError(f"the model already has attribute(s) {clashes}; it looks like a hand-written HoT model, "
                         "which wrap_with_hot cannot wrap again")
    example = _example_input(model, example_input, input_shape)
    plan = _plan(model, example, blocks, layouts, recover_before)
    if (prune_block is None) != (tokens is None):
        raise ValueError("give both prune_block and tokens, or neither to use the paper's setting")
    if prune_block is None:
        prune_block, tokens = paper_setting(plan.family, mode is not None, plan.frames, plan.depth)
    if num_heads is not None:
        plan.heads = num_heads
    state = HotState(model, plan, prune_block, tokens, mode, selector, k, seed, check_inputs)
    # Everything that can fail is checked before the model is touched: no half-wrapped models.
    ref = next(iter(model.parameters()), torch.zeros(()))
    learned = mode in LEARNED_MODES
    if learned:
        x_token = _initial_x_token(model, x_token_init, plan.frames, plan.recover_width)
        cross_attention = CrossAttention(plan.recover_width, plan.heads, zero_output=mode == "tra+interpolate")
        cross_attention.to(device=ref.device, dtype=ref.dtype)
    if mode is not None:
        model.pos_embed_token = nn.Parameter(ref.new_zeros(1, tokens, plan.channels_at[prune_block]))
    if learned:
        model.x_token = nn.Parameter(x_token.to(ref))
        model.cross_attention = cross_attention
    model.hot = state
    state.install()
    if previous:
        own = model.state_dict()
        kept = {k: v for k, v in previous.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(kept, strict=False)
    return model


def _initial_x_token(model: nn.Module, init: Union[str, torch.Tensor], frames: int, width: int) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) != (1, frames, width):
            raise ValueError(f"x_token_init must have shape (1, {frames}, {width}), got {tuple(init.shape)}")
        return init.detach().clone()
    if init == "zeros":
        return torch.zeros(1, frames, width)
    if init == "position":
        for name, p in model.named_parameters():
            if name.split(".")[0] in HOT_PARAMETERS or not any(w in name.lower() for w in ("temp", "frame", "time")):
                continue
            if p.numel() == frames * width and p.shape[0] == 1 and p.shape[1] == frames and p.shape[-1] == width:
                return p.detach().reshape(1, frames, width).clone()
        raise ValueError(f"x_token_init='position': no temporal position embedding of shape (1, {frames}, {width}) "
                         "found (looked for parameters named *temp*, *frame*, *time*); pass a tensor instead")
    raise ValueError(f"x_token_init must be 'zeros', 'position' or a tensor, got {init!r}")


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


def checkpoint_state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The model weights of a checkpoint: a bare state dict, or one nested under ``"model_pos"``,
    ``"model"`` or ``"state_dict"``, with DataParallel's ``"module."`` prefixes removed."""
    for key in ("model_pos", "model", "state_dict"):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            checkpoint = checkpoint[key]
            break
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def load_official_hot(model: nn.Module, state_dict: Mapping[str, Any], strict: bool = True):
    """Load a checkpoint of the official HoT code into a model wrapped with the same settings.

    Accepts a bare state dict or one nested under ``"model_pos"``, ``"model"`` or ``"state_dict"``,
    with or without the ``"module."`` prefix of ``nn.DataParallel``. Official key names
    (``pos_embed_token``, ``x_token``, ``cross_attention.linear_q/k/v``, ``cross_attention.proj``)
    are the wrapper's own, so the rest is a plain ``load_state_dict``.

    A seq2seq HoT checkpoint needs a model wrapped with ``recover="tra"`` (the paper's TRA; the
    default ``"tra+interpolate"`` uses the same parameter names differently); an official TPC
    checkpoint (``tpc_mixste``: no HoT parameters at all) one wrapped with ``recover=False``.
    """
    if not is_hot(model):
        raise ValueError("load_official_hot: wrap the model with wrap_with_hot first")
    cleaned = checkpoint_state_dict(state_dict)
    token = cleaned.get("pos_embed_token")
    if token is not None and model.hot.recover is False:
        raise ValueError("the checkpoint has pos_embed_token, which official TPC-only models do not have: it is "
                         "a seq2seq HoT checkpoint; wrap with recover='tra'")
    if token is not None and tuple(token.shape) != tuple(model.pos_embed_token.shape):
        raise ValueError(f"the checkpoint's pos_embed_token has shape {tuple(token.shape)}, the model's "
                         f"{tuple(model.pos_embed_token.shape)}: wrap with tokens={token.shape[1]}")
    if "x_token" in cleaned and model.hot.recover != "tra":
        raise ValueError(f"the checkpoint has the paper's TRA weights (x_token); wrap with recover='tra' "
                         f"(this model has recover={model.hot.recover!r})")
    if "x_token" not in cleaned and "pos_embed_token" not in cleaned and model.hot.recover is not False:
        raise ValueError("the checkpoint has no HoT weights (no pos_embed_token, no x_token): an official TPC "
                         "checkpoint loads into a model wrapped with recover=False; a plain one needs no "
                         "load_official_hot (load it before wrapping)")
    return model.load_state_dict(cleaned, strict=strict)
