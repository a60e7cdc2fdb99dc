"""Show and Tell: Vinyals, Toshev, Bengio and Erhan 2015, "Show and Tell: A Neural Image Caption Generator"
(CVPR), as in Karpathy's neuraltalk2.

The pooled image vector, linearly projected to the word embedding size, is the RNN's input at ``t = -1``
(its output there is discarded); the words follow from ``t = 0`` (``<start>``). The image is seen once, so
this decoder has no attention.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal

from torch import Tensor, nn

from vltk.decoders.base import CaptionDecoder, cell_step, make_cell
from vltk.decoders.state import DecoderState
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)


class ShowTellDecoder(CaptionDecoder):
    """Vinyals et al. 2015 decoder: ``x_{-1} = W_I CNN(I)``, ``x_t = W_e S_t``, ``p_{t+1} = LSTM(x_t)``.

    Args:
        vocab_size: ``V`` (wired from the vocabulary).
        feature_dim: ``D`` of the pooled image vector (wired from the encoder's ``out_dim``).
        embed_dim: ``E``, size of the word embeddings and of the projected image.
        hidden_dim: ``H``, recurrent hidden size.
        cell: ``"lstm"`` (the paper) or ``"gru"`` (cells of :mod:`vltk.rnn`).
        dropout: dropout on the RNN inputs and on its outputs before the vocabulary projection.
        pad_id: the padding token (zero embedding, no gradient).
    """

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        *,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        cell: Literal["lstm", "gru"] = "lstm",
        dropout: float = 0.5,
        pad_id: int = 0,
    ):
        super().__init__(
            vocab_size,
            embed_dim=embed_dim,
            output_dim=hidden_dim,
            hidden_dim=hidden_dim,
            dropout=dropout,
            pad_id=pad_id,
        )
        self.feature_dim = feature_dim
        self.image_proj = nn.Linear(feature_dim, embed_dim)
        self.rnn = make_cell(cell, embed_dim, hidden_dim)

    def _init_state(self, features: ImageFeatures) -> DecoderState:
        """Feed the projected image at ``t = -1``; the state after it starts the sentence."""
        pooled = features.pooled  # [B, D]
        image = self.dropout(self.image_proj(pooled))  # [B, E]
        h = pooled.new_zeros(pooled.shape[0], self.hidden_dim)  # [B, H]
        c = h if self.rnn.state_size == 2 else None  # [B, H]
        h, c = cell_step(self.rnn, image, h, c)  # [B, H], [B, H]
        return DecoderState(h=h, c=c)

    def _advance(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        h, c = cell_step(self.rnn, embedded, state.h, state.c)  # [B, H], [B, H]
        return h, replace(state, h=h, c=c)  # [B, H]
