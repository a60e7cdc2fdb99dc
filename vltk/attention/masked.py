"""The two operations every attention module here shares: a softmax over regions in which padding (mask
``False``) gets exactly zero weight, and the context vector as the weighted sum of the keys.

Mask polarity, everywhere in vltk: ``True`` = a real region, ``False`` = padding.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last dimension in which masked-out entries get exactly zero weight.

    Args:
        scores: ``[B, N]`` unnormalised attention scores.
        mask: ``[B, N]`` bool, ``True`` = real region; ``None`` means every region is real.

    A row whose regions are all padding gets all-zero weights (and so a zero context), never NaN.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)  # [B, N]
    # The most negative finite value (not -inf) keeps all-padding rows finite; the final masked_fill makes
    # padding exactly 0 even for those rows.
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # [B, N]
    weights = torch.softmax(scores, dim=-1)  # [B, N]
    return weights.masked_fill(~mask, 0.0)  # [B, N]


def weighted_sum(weights: Tensor, keys: Tensor) -> Tensor:
    """The context vector ``sum_n weights[b, n] * keys[b, n]``: ``[B, N]`` x ``[B, N, D]`` -> ``[B, D]``."""
    return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # [B, D]
