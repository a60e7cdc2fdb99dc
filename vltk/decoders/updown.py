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
(``captioning/models/AttModel.py``), which this module was checked against. That file first embeds the
region features (``att_embed``: linear, ReLU, dropout) and the pooled feature (``fc_embed``); the paper
attends the regions themselves. Here ``region_embed_dim=None`` (the default) is the paper: ``v_mean`` is the
masked mean of the encoder's regions and the attention reads them. ``region_embed_dim=R`` embeds every region
once per image, ``v_n <- dropout(ReLU(W_r v_n + b_r))`` as ``att_embed`` does, and ``v_mean`` is the masked
mean of the embedded regions (one layer, not a second ``fc_embed``); both LSTMs and the attention then read
``R``-sized features, which makes every word cheaper when ``D`` is large (the built-in shapes regions have
``D = 517``).

The state carries the language LSTM in ``h``/``c`` (the output side) and the attention LSTM in
``top_down_h``/``top_down_c``, every field a tensor so that the ONNX step graph can take it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from vltk.attention import ATTENTIONS
from vltk.decoders.base import CaptionDecoder, cell_step, make_cell
from vltk.decoders.show_attend_tell import masked_mean
from vltk.decoders.state import CONSTANT, DecoderState
from vltk.errors import ConfigError
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
        mean: ``[B, D]`` (``[B, R]`` with embedded regions) the mean of the real regions, ``v_mean``
            (per-image constant).
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
        dropout: dropout on the word embeddings, on ``h^2_t`` before the vocabulary projection and on the
            embedded regions.
        pad_id: the padding token (zero embedding, no gradient).
        region_embed_dim: ``R``: embed the regions to this size first (``att_embed`` of
            ImageCaptioning.pytorch); ``None``: the paper's model, which reads the encoder's ``D``-sized
            regions.
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
        region_embed_dim: int | None = None,
    ):
        if region_embed_dim is not None and region_embed_dim < 1:
            raise ConfigError(
                f"model.decoder.region_embed_dim must be a positive size or null, got {region_embed_dim}"
            )
        region_dim = feature_dim if region_embed_dim is None else region_embed_dim  # what the LSTMs read
        attention_module = build(
            ATTENTIONS,
            DEFAULT_ATTENTION if attention is None else attention,
            path="model.decoder.attention",
            query_dim=hidden_dim,
            key_dim=region_dim,
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
        self.region_embed = (
            None if region_embed_dim is None else nn.Linear(feature_dim, region_embed_dim)
        )  # W_r
        self.top_down = make_cell("lstm", hidden_dim + region_dim + embed_dim, hidden_dim)  # LSTM_1
        self.language = make_cell("lstm", attention_module.out_dim + hidden_dim, hidden_dim)  # LSTM_2

    def init_state(self, features: ImageFeatures) -> DecoderState:
        """The base's state, over the embedded regions ``[B, N, R]`` when ``region_embed_dim`` is set."""
        if self.region_embed is not None:
            embedded = self.dropout(torch.relu(self.region_embed(features.grid)))  # [B, N, R]
            features = replace(features, grid=embedded)
        return super().init_state(features)

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
