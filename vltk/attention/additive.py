"""Additive (concat / MLP) attention: Bahdanau, Cho and Bengio 2015, "Neural Machine Translation by Jointly
Learning to Align and Translate" (ICLR), eq. 6 ``e = v^T tanh(W_k k + W_q q)``; the form Xu et al. 2015
("Show, Attend and Tell") use for soft visual attention over CNN grid features.

Also home of :func:`masked_softmax` and :func:`weighted_sum`, the two operations every attention module here
shares: a softmax over regions in which padding (mask ``False``) gets exactly zero weight, and the context
vector as the weighted sum of the keys.

Every attention module follows the same two-method protocol:

- ``precompute(keys [B, N, D]) -> projected``: the part of the score that depends on the keys only, computed
  once per image (not once per decoding step);
- ``forward(query [B, Q], keys [B, N, D], projected, mask [B, N] | None)`` returning
  ``(context [B, D], weights [B, N])``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)


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


class AdditiveAttention(nn.Module):
    """Bahdanau et al. 2015 additive attention: ``e_n = v^T tanh(W_k k_n + W_q q)``, ``alpha = softmax(e)``.

    ``W_k k`` (with its bias) depends only on the image, so :meth:`precompute` computes it once per image
    and :meth:`forward` adds the query projection at each step.

    Args:
        query_dim: size ``Q`` of the query (the decoder's hidden state); wired by the decoder.
        key_dim: size ``D`` of the keys (the image region features); wired from the encoder's ``out_dim``.
        dim: size ``A`` of the hidden layer of the scoring MLP.
    """

    def __init__(self, query_dim: int, key_dim: int, *, dim: int = 256):
        super().__init__()
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.dim = dim
        self.out_dim = key_dim
        self.key_proj = nn.Linear(key_dim, dim)
        self.query_proj = nn.Linear(query_dim, dim, bias=False)  # the key projection's bias serves both
        self.score = nn.Linear(dim, 1, bias=False)

    def precompute(self, keys: Tensor) -> Tensor:
        """``W_k k + b`` for every region: ``[B, N, D]`` -> ``[B, N, A]``."""
        return self.key_proj(keys)  # [B, N, A]

    def forward(
        self, query: Tensor, keys: Tensor, projected: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend over ``keys`` with ``query``.

        Args:
            query: ``[B, Q]``.
            keys: ``[B, N, D]`` region features.
            projected: ``precompute(keys)`` ``[B, N, A]``; computed here when ``None``.
            mask: ``[B, N]`` bool, ``True`` = real region.

        Returns:
            ``(context [B, D], weights [B, N])``.
        """
        if projected is None:
            projected = self.precompute(keys)  # [B, N, A]
        return self.attend(self.query_proj(query), keys, projected, mask)  # [B, D], [B, N]

    def attend(
        self, query_projected: Tensor, keys: Tensor, projected: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The step after the query projection, for callers that compute ``W_q q`` themselves (e.g. fused
        with other projections of the same query in one matmul).

        Args:
            query_projected: ``W_q q`` ``[B, A]`` (any strides, e.g. a column slice of a wider matmul).
            keys: ``[B, N, D]`` region features.
            projected: ``precompute(keys)`` ``[B, N, A]``.
            mask: ``[B, N]`` bool, ``True`` = real region.

        Returns:
            ``(context [B, D], weights [B, N])``.
        """
        # tanh in place on the fresh sum: one [B, N, A] buffer per step instead of two (autograd keeps the
        # tanh output for the backward and the sum's backward needs neither input)
        hidden = torch.add(projected, query_projected.unsqueeze(1)).tanh_()  # [B, N, A]
        scores = self.score(hidden).squeeze(-1)  # [B, N]
        weights = masked_softmax(scores, mask)  # [B, N]
        return weighted_sum(weights, keys), weights  # [B, D], [B, N]

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, dim={self.dim}"
