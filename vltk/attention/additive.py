"""Additive (concat / MLP) attention: Bahdanau, Cho and Bengio 2015, "Neural Machine Translation by Jointly
Learning to Align and Translate" (ICLR), eq. 6 ``e = v^T tanh(W_k k + W_q q)``; the form Xu et al. 2015
("Show, Attend and Tell") use for soft visual attention over CNN grid features.

Every attention module follows the same two-method protocol:

- ``precompute(keys [B, N, D]) -> projected``: the part of the score that depends on the keys only, computed
  once per image (not once per decoding step);
- ``forward(query [B, Q], keys [B, N, D], projected, mask [B, N] | None)`` returning
  ``(context [B, D], weights [B, N])``.

The softmax over the real regions and the weighted sum are :func:`~vltk.attention.masked.masked_softmax` and
:func:`~vltk.attention.masked.weighted_sum`, shared by every module. Teacher forcing over a whole caption
runs :meth:`AdditiveAttention.loop`, the same maths with a leaner backward, in
:mod:`vltk.attention._additive_fused`.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from vltk.attention._additive_fused import AdditiveLoop
from vltk.attention.masked import masked_softmax, weighted_sum

logger = logging.getLogger(__name__)

__all__ = ["AdditiveAttention", "AdditiveLoop", "masked_softmax", "weighted_sum"]


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

    def loop(self, projected: Tensor) -> AdditiveLoop:
        """An :meth:`attend` for every step of a time loop over the same ``projected`` keys ``[B, N, A]``,
        with a leaner forward and backward (see :class:`AdditiveLoop`)."""
        return AdditiveLoop(self, projected)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, dim={self.dim}"
