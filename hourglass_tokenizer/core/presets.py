"""The paper's HoT settings for architectures recognised by their block structure.

Recognition looks at the block lists found by the probe (how many run side by side, their token
layouts, whether blocks take the frame count), never at class or attribute names, so renamed
copies of MixSTE or MotionBERT are recognised too.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from .layouts import TokenLayout

__all__ = ["PaperSetting", "PAPER_SETTINGS", "NO_QKV_BIAS", "recognise_family", "paper_setting", "qkv_bias"]

logger = logging.getLogger("hourglass_tokenizer")


@dataclass(frozen=True)
class PaperSetting:
    family: str
    recover: bool
    frames: int
    depth: int
    prune_block: int
    tokens: int


# HoT paper / official code: MixSTE-243 (3, 81) seq2seq and (7, 61) TPC-only; MotionBERT-243 (1, 81);
# HoT-MotionAGFormer (official code, 16 layers at 243 frames): layer_index 7, token_num 81.
PAPER_SETTINGS: Tuple[PaperSetting, ...] = (
    PaperSetting("mixste", True, 243, 8, 3, 81),
    PaperSetting("mixste", False, 243, 8, 7, 61),
    PaperSetting("motionbert", True, 243, 5, 1, 81),
    PaperSetting("motionagformer", True, 243, 16, 7, 81),
)

#: Families whose official TRA cross-attention has no bias on the q/k/v projections.
NO_QKV_BIAS = frozenset({"motionagformer"})


def recognise_family(layouts: Sequence[TokenLayout], takes_frame_count: bool,
                     frame_indexed: bool = False) -> Optional[str]:
    """Name the architecture family of a block group, or None when it is not one the paper covers.

    - MixSTE: two lists side by side, spatial ``(b t) j c`` and temporal ``(b j) t c``.
    - MotionBERT: two ``(b t) j c`` lists side by side whose blocks take the frame count.
    - MotionAGFormer: one list of ``b t j c`` blocks with layers indexed by frame position inside
      (the temporal GCN's ``BatchNorm1d(T)``); without them (STCFormer) there is no paper setting.
    """
    patterns = sorted(layout.pattern for layout in layouts)
    if patterns == ["(b j) t c", "(b t) j c"] and not takes_frame_count:
        return "mixste"
    if patterns == ["(b t) j c", "(b t) j c"] and takes_frame_count:
        return "motionbert"
    if patterns == ["b t j c"] and not takes_frame_count and frame_indexed:
        return "motionagformer"
    return None


def qkv_bias(family: Optional[str]) -> bool:
    """Whether TRA's q/k/v projections carry a bias, as in the official code of this family."""
    return family not in NO_QKV_BIAS


def paper_setting(family: Optional[str], recover: bool, frames: int, depth: int) -> Tuple[int, int]:
    """``(prune_block, tokens)`` from the paper for this family, scaled to other frame counts/depths.

    Raises:
        ValueError: the architecture has no paper setting; the caller must give the numbers.
    """
    matches = [s for s in PAPER_SETTINGS if s.family == family]
    if not matches:
        raise ValueError("this model is not an architecture with a paper setting (MixSTE-, MotionBERT- or "
                         "MotionAGFormer-like block structure); give prune_block= and tokens= explicitly")
    setting = next((s for s in matches if s.recover == recover), matches[0])
    prune_block, tokens = setting.prune_block, setting.tokens
    notes = []
    if setting.recover != recover:
        notes.append(f"the paper has no {'seq2seq' if recover else 'TPC-only'} setting for {family}; "
                     f"using its {'seq2seq' if setting.recover else 'TPC-only'} numbers")
    if depth != setting.depth:
        prune_block = min(max(1, round(setting.prune_block * depth / setting.depth)), depth - 1)
        notes.append(f"depth {depth} instead of {setting.depth}: prune_block scaled to {prune_block}")
    if frames != setting.frames:
        tokens = max(1, min(frames - 1, round(frames / 3)))
        notes.append(f"{frames} frames instead of {setting.frames}: tokens scaled to about a third, {tokens}")
    message = f"HoT preset for {family}-{setting.frames}: prune_block={prune_block}, tokens={tokens}"
    if notes:
        logger.warning("%s (%s)", message, "; ".join(notes))
    else:
        logger.info(message)
    return prune_block, tokens
