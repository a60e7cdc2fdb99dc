"""Multiplicative attention: Luong, Pham and Manning 2015, "Effective Approaches to Attention-based Neural
Machine Translation" (EMNLP), section 3.1, the ``dot`` score ``q^T k`` and the ``general`` score
``q^T W k``.

Both follow the protocol described in :mod:`vltk.attention.additive`: ``precompute(keys)`` once per image,
then ``forward(query, keys, projected, mask) -> (context, weights)`` at every step.
"""

from __future__ import annotations

import logging
import math

from torch import Tensor, nn

from vltk.attention.masked import masked_softmax, weighted_sum
from vltk.errors import ConfigError

logger = logging.getLogger(__name__)


def _bilinear_scores(query: Tensor, projected: Tensor) -> Tensor:
    """``projected[b, n] . query[b]``: ``[B, N, Q]`` x ``[B, Q]`` -> ``[B, N]``."""
    return (projected @ query.unsqueeze(-1)).squeeze(-1)  # [B, N]


class DotAttention(nn.Module):
    """Luong et al. 2015 ``dot`` attention: ``e_n = q^T k_n``, ``alpha = softmax(e)``; no parameters.

    Args:
        query_dim: size ``Q`` of the query; wired by the decoder. Must equal ``key_dim``.
        key_dim: size ``D`` of the keys; wired from the encoder's ``out_dim``.
        scaled: divide the scores by ``sqrt(D)`` (Vaswani et al. 2017, "Attention Is All You Need"), which
            keeps the softmax from saturating for large ``D``; Luong's original ``dot`` is unscaled.

    Raises:
        ConfigError: when ``query_dim != key_dim`` (use ``general`` or ``additive`` attention instead).
    """

    def __init__(self, query_dim: int, key_dim: int, *, scaled: bool = False):
        super().__init__()
        if query_dim != key_dim:
            raise ConfigError(
                f"dot attention needs query_dim == key_dim, got query_dim={query_dim} (the decoder's hidden "
                f"size) and key_dim={key_dim} (the image feature size); use attention 'general' or 'additive'"
            )
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.scaled = scaled
        self.out_dim = key_dim
        self.scale = 1.0 / math.sqrt(key_dim) if scaled else 1.0

    def precompute(self, keys: Tensor) -> Tensor:
        """Nothing to project: the keys themselves ``[B, N, D]``."""
        return keys  # [B, N, D]

    def forward(
        self, query: Tensor, keys: Tensor, projected: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend over ``keys`` [B, N, D] with ``query`` [B, Q]; returns ``(context [B, D], weights [B, N])``.

        ``projected`` is accepted for the common protocol and ignored (it is ``keys``); ``mask`` is ``[B, N]``
        bool with ``True`` = real region.
        """
        scores = _bilinear_scores(query, keys) * self.scale  # [B, N]
        weights = masked_softmax(scores, mask)  # [B, N]
        return weighted_sum(weights, keys), weights  # [B, D], [B, N]

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, scaled={self.scaled}"


class GeneralAttention(nn.Module):
    """Luong et al. 2015 ``general`` attention: ``e_n = q^T W k_n``, ``alpha = softmax(e)``.

    ``k W`` depends only on the image and is computed once per image by :meth:`precompute`.

    Args:
        query_dim: size ``Q`` of the query; wired by the decoder.
        key_dim: size ``D`` of the keys; wired from the encoder's ``out_dim``.
    """

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.out_dim = key_dim
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False)

    def precompute(self, keys: Tensor) -> Tensor:
        """``k W`` for every region: ``[B, N, D]`` -> ``[B, N, Q]``."""
        return self.key_proj(keys)  # [B, N, Q]

    def forward(
        self, query: Tensor, keys: Tensor, projected: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend over ``keys`` with ``query``.

        Args:
            query: ``[B, Q]``.
            keys: ``[B, N, D]`` region features.
            projected: ``precompute(keys)`` ``[B, N, Q]``; computed here when ``None``.
            mask: ``[B, N]`` bool, ``True`` = real region.

        Returns:
            ``(context [B, D], weights [B, N])``.
        """
        if projected is None:
            projected = self.precompute(keys)  # [B, N, Q]
        scores = _bilinear_scores(query, projected)  # [B, N]
        weights = masked_softmax(scores, mask)  # [B, N]
        return weighted_sum(weights, keys), weights  # [B, D], [B, N]

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}"
