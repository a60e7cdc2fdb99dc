"""Up-Down: Anderson, He, Buehler, Teney, Johnson, Gould and Zhang 2018, "Bottom-Up and Top-Down Attention
for Image Captioning and Visual Question Answering" (CVPR), section 3.2, the captioning model.

Two LSTMs per word. The *top-down attention LSTM* (superscript 1) reads the language LSTM's previous
output, the mean image feature and the word (eq. 2):

    x^1_t = [h^2_{t-1}; v_mean; W_e y_{t-1}],      h^1_t = LSTM_1(x^1_t, h^1_{t-1})

its ``h^1_t`` attends over the ``N`` regions (eq. 3-5, additive attention by default, padded regions get
weight 0): ``a_t = w_a^T tanh(W_va v + W_ha h^1_t)``, ``alpha_t = softmax(a_t)``,
``v_hat_t = sum_n alpha_tn v_n``; the *language LSTM* (superscript 2) reads the attended feature and
``h^1_t`` (eq. 6) and its output is the base class's vocabulary projection (eq. 7):

    x^2_t = [v_hat_t; h^1_t],   h^2_t = LSTM_2(x^2_t, h^2_{t-1}),   p(y_t) = softmax(W_p h^2_t + b_p)

Both LSTMs start from zero states, as in the paper and in ``UpDownCore`` of ruotianluo/ImageCaptioning.pytorch
(``captioning/models/AttModel.py``), which this module was checked against. One difference from that file:
it first embeds the pooled and region features to the hidden size (``fc_embed``/``att_embed``, a linear
layer with ReLU); here, as in the paper, ``v_mean`` is the masked mean of the encoder's regions and the
attention reads those regions themselves (an encoder that wants a projection has its own ``out_dim``).

The state carries the language LSTM in ``h``/``c`` (the output side) and the attention LSTM in
``top_down_h``/``top_down_c``, every field a tensor so that the ONNX step graph can take it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from vltk.attention import ATTENTIONS
from vltk.decoders.base import CaptionDecoder, cell_step, make_cell
from vltk.decoders.show_attend_tell import masked_mean
from vltk.decoders.state import CONSTANT, DecoderState
from vltk.registry import build
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)

DEFAULT_ATTENTION = {"name": "additive", "dim": 512}


@dataclass
class UpDownState(DecoderState):
    """:class:`DecoderState` of Up-Down: ``h``/``c`` are the language LSTM's (``h^2``, ``c^2``).

    Attributes:
        top_down_h: ``[B, H]`` the top-down attention LSTM's hidden state ``h^1``.
        top_down_c: ``[B, H]`` its memory cell ``c^1``.
        mean: ``[B, D]`` the mean of the real regions, ``v_mean`` (per-image constant).
    """

    top_down_h: Tensor | None = None
    top_down_c: Tensor | None = None
    mean: Tensor | None = field(default=None, metadata=CONSTANT)


class UpDownDecoder(CaptionDecoder):
    """Anderson et al. 2018 top-down captioner: an attention LSTM whose state attends over the regions, and a
    language LSTM on the attended feature.

    Args:
        vocab_size: ``V`` (wired from the vocabulary).
        feature_dim: ``D`` of the region features (wired from the encoder's ``out_dim``).
        embed_dim: ``E``, size of the word embeddings ``W_e y``.
        hidden_dim: ``H``, hidden size of both LSTMs (the attention query size).
        attention: spec of the attention module, a key of :data:`vltk.attention.ATTENTIONS` with its own
            options (``query_dim``/``key_dim`` are wired); default ``{"name": "additive", "dim": 512}``
            (the paper's 512 attention units).
        dropout: dropout on the word embeddings and on ``h^2_t`` before the vocabulary projection.
        pad_id: the padding token (zero embedding, no gradient).
    """

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        *,
        embed_dim: int = 512,
        hidden_dim: int = 512,
        attention: dict[str, Any] | None = None,
        dropout: float = 0.5,
        pad_id: int = 0,
    ):
        attention_module = build(
            ATTENTIONS,
            DEFAULT_ATTENTION if attention is None else attention,
            path="model.decoder.attention",
            query_dim=hidden_dim,
            key_dim=feature_dim,
        )
        super().__init__(
            vocab_size,
            embed_dim=embed_dim,
            output_dim=hidden_dim,
            hidden_dim=hidden_dim,
            dropout=dropout,
            pad_id=pad_id,
            attention=attention_module,
        )
        self.feature_dim = feature_dim
        self.top_down = make_cell("lstm", hidden_dim + feature_dim + embed_dim, hidden_dim)  # LSTM_1
        self.language = make_cell("lstm", attention_module.out_dim + hidden_dim, hidden_dim)  # LSTM_2

    def _init_state(self, features: ImageFeatures) -> UpDownState:
        """Zero states for both LSTMs; ``v_mean``, the mean of the real regions, once per image."""
        mean = masked_mean(features.grid, features.mask)  # [B, D]
        # four tensors, not one shared: the ONNX encoder graph returns each as its own output
        h, c, top_h, top_c = mean.new_zeros(4, mean.shape[0], self.hidden_dim).unbind(0)  # [B, H] each
        return UpDownState(h=h, c=c, top_down_h=top_h, top_down_c=top_c, mean=mean)

    def _advance(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Top-down LSTM on ``[h^2_{t-1}; v_mean; W_e y_{t-1}]``, attention with ``h^1_t``, language LSTM
        on ``[v_hat_t; h^1_t]``; the output is ``h^2_t``."""
        assert isinstance(state, UpDownState)
        inputs = torch.cat([state.h, state.mean, embedded], dim=-1)  # [B, H + D + E]
        top_h, top_c = cell_step(self.top_down, inputs, state.top_down_h, state.top_down_c)  # [B, H], [B, H]
        keys, projected, mask = state.grid, state.projected_keys, state.mask  # [B, N, D], [B, N, A], [B, N]
        context, weights = self.attention(top_h, keys, projected, mask)  # [B, D], [B, N]
        inputs = torch.cat([context, top_h], dim=-1)  # [B, D + H]
        h, c = cell_step(self.language, inputs, state.h, state.c)  # [B, H], [B, H]
        state = replace(state, h=h, c=c, top_down_h=top_h, top_down_c=top_c, attention=weights)
        return h, state  # [B, H]
