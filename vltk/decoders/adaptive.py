"""Adaptive attention with a visual sentinel: Lu, Xiong, Parikh and Socher 2017, "Knowing When to Look:
Adaptive Attention via A Visual Sentinel for Image Captioning" (CVPR), section 2.3.

Image encoding (section 2.4): every region is projected to the hidden size, ``V = ReLU(W_a A)``, and the
global feature is a projection of the mean region, ``v_g = ReLU(W_b a_g)`` with ``a_g`` the mean of the
real regions. The LSTM reads ``x_t = [w_t; v_g]`` and attends *after* its step, with the current ``h_t``.

Besides the ``N`` regions it may attend to a *visual sentinel*, a vector of what the language model
already knows, read from the LSTM memory ``m_t`` through a gate like the output gate (eq. 9):

    g_t = sigmoid(W_x x_t + W_h h_{t-1}),      s_t = g_t * tanh(m_t)

Spatial attention scores the regions with ``h_t`` (eq. 6-8); the sentinel is scored with the same
``w_h`` and ``W_g h_t`` (eq. 11), and ``beta_t``, the sentinel's share of one softmax over the ``N + 1``
scores (eq. 12), says how much the word comes from the language model instead of the image:

    z_t = w_h^T tanh(W_v V + W_g h_t 1^T),     alpha_t = softmax(z_t),     c_t = sum_n alpha_tn v_n
    alpha_hat_t = softmax([z_t; w_h^T tanh(W_s s_t + W_g h_t)]),          beta_t = alpha_hat_t[N + 1]
    c_hat_t = beta_t s_t + (1 - beta_t) c_t                                 (eq. 10)
    p_t = softmax(W_p (c_hat_t + h_t))                                      (eq. 13)

The first ``N`` entries of ``alpha_hat_t`` are ``(1 - beta_t) alpha_t``, so ``c_hat_t`` is one weighted sum
over ``[V; s_t]``; ``W_p`` is the base class's vocabulary projection.

Padded regions (mask ``False``) get exactly zero weight; the sentinel is always a candidate. Each step
sets ``state.attention`` to the region weights (they sum to ``1 - beta_t``) and ``state.gate`` to
``beta_t``, so ``DecoderOutput.gates`` is the sentinel weight of every word.

Checked against ``AdaAtt_lstm``, ``AdaAtt_attention`` and ``AdaAttCore`` of
ruotianluo/ImageCaptioning.pytorch (``captioning/models/AttModel.py``) and the authors' Lua code,
jiasenlu/AdaptiveAttention (``misc/LSTM.lua``, ``misc/attention.lua``, ``misc/img_embedding.lua``). Both
add layers the paper does not write: the sentinel passes through ``ReLU(Linear)`` and ``h_t`` through
``tanh(Linear)`` before the attention, and ``c_hat_t + h_t`` through ``tanh(Linear)`` before ``W_p``; both
take ``v_g`` from the encoder's pooled vector (``fc_feats``) where this module uses the mean of the real
regions, as the paper does. ``variant="paper"`` (the default) is the equations as the paper writes them;
``variant="authors"`` adds the authors' layers of ``misc/attention.lua`` (and ruotianluo's
``AdaAtt_attention``), with dropout where they have it:

    s'_t = dropout(ReLU(W_fr s_t)),   h'_t = dropout(tanh(W_ho h_t)),   the attention queried by ``h'_t``
    over ``[V; s'_t]`` (its scores through dropout),   c_hat_t = beta_t s'_t + (1 - beta_t) c_t,
    p_t = softmax(W_p dropout(tanh(W_o (c_hat_t + h'_t))))

so that the word is a non-linear function of what was seen and of the language state; the paper's output
``W_p (c_hat_t + h_t)`` adds their two contributions to the logits. Masks: ruotianluo's file
zeroes padded regions after the softmax and renormalises (the Lua code has a fixed 7x7 grid);
:func:`~vltk.attention.masked_softmax` gives the same weights, exactly zero at padding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from vltk.attention import masked_softmax, weighted_sum
from vltk.decoders.base import CaptionDecoder, cell_step, make_cell
from vltk.decoders.show_attend_tell import masked_mean
from vltk.decoders.state import CONSTANT, DecoderState
from vltk.errors import ConfigError, unknown_choice_message
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)

VARIANTS = ("paper", "authors")


@dataclass
class AdaptiveState(DecoderState):
    """:class:`DecoderState` of the adaptive decoder: ``h``/``c`` are the LSTM's ``h_t`` and memory ``m_t``;
    ``attention`` the region weights (summing to ``1 - beta``) and ``gate`` the sentinel weight ``beta``.

    Attributes:
        visual: ``[B, N, H]`` the projected regions ``V = ReLU(W_a A)`` (per-image constant).
        image: ``[B, H]`` the global image feature ``v_g`` (per-image constant).

    ``projected_keys`` holds ``W_v V`` ``[B, N, A]`` and ``mask`` the regions' mask; ``grid`` stays unset
    (the attention reads ``visual``, not the encoder's regions).
    """

    visual: Tensor | None = field(default=None, metadata=CONSTANT)
    image: Tensor | None = field(default=None, metadata=CONSTANT)


class AdaptiveAttentionDecoder(CaptionDecoder):
    """Lu et al. 2017 adaptive attention: an LSTM that decides at every word how much to look at the image
    and how much to rely on its visual sentinel.

    Args:
        vocab_size: ``V`` (wired from the vocabulary).
        feature_dim: ``D`` of the region features (wired from the encoder's ``out_dim``).
        embed_dim: ``E``, size of the word embeddings ``w_t``.
        hidden_dim: ``H``, the LSTM's hidden size, which is also the size of the projected regions ``V``,
            of ``v_g`` and of the sentinel (``c_hat_t + h_t`` needs them all the same size).
        attention_dim: ``A``, the hidden size of the attention scores (``W_v``, ``W_g``, ``W_s``, ``w_h``).
        dropout: dropout on the word embeddings and on ``c_hat_t + h_t`` before the vocabulary projection
            (and, in the ``authors`` variant, where that code has it).
        pad_id: the padding token (zero embedding, no gradient).
        variant: ``paper`` (the equations of section 2.3) or ``authors`` (the extra layers of the authors'
            ``misc/attention.lua``; see the module docstring).
    """

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        *,
        embed_dim: int = 512,
        hidden_dim: int = 512,
        attention_dim: int = 512,
        dropout: float = 0.5,
        pad_id: int = 0,
        variant: str = "paper",
    ):
        if variant not in VARIANTS:
            raise ConfigError(unknown_choice_message("model.decoder.variant", variant, VARIANTS))
        # no attention module for the base: it would project the encoder's regions, and this one attends
        # over V (and the sentinel), which _init_state projects itself
        super().__init__(
            vocab_size,
            embed_dim=embed_dim,
            output_dim=hidden_dim,
            hidden_dim=hidden_dim,
            dropout=dropout,
            pad_id=pad_id,
        )
        self.feature_dim = feature_dim
        self.attention_dim = attention_dim
        self.region_proj = nn.Linear(feature_dim, hidden_dim)  # W_a
        self.image_proj = nn.Linear(feature_dim, hidden_dim)  # W_b
        self.rnn = make_cell("lstm", embed_dim + hidden_dim, hidden_dim)
        self.sentinel_input = nn.Linear(embed_dim + hidden_dim, hidden_dim)  # W_x
        self.sentinel_hidden = nn.Linear(hidden_dim, hidden_dim, bias=False)  # W_h
        self.visual_key = nn.Linear(hidden_dim, attention_dim)  # W_v
        self.sentinel_key = nn.Linear(hidden_dim, attention_dim)  # W_s
        self.query = nn.Linear(hidden_dim, attention_dim, bias=False)  # W_g (the keys' biases serve it)
        self.score = nn.Linear(attention_dim, 1, bias=False)  # w_h
        self.variant = variant
        if variant == "authors":
            self.sentinel_embed = nn.Linear(hidden_dim, hidden_dim)  # W_fr
            self.hidden_embed = nn.Linear(hidden_dim, hidden_dim)  # W_ho
            self.output_embed = nn.Linear(hidden_dim, hidden_dim)  # W_o

    def _init_state(self, features: ImageFeatures) -> AdaptiveState:
        """``V = ReLU(W_a A)``, ``v_g = ReLU(W_b mean(A))`` and ``W_v V`` once per image; zero LSTM state."""
        visual = torch.relu(self.region_proj(features.grid))  # [B, N, H]
        image = torch.relu(self.image_proj(masked_mean(features.grid, features.mask)))  # [B, H]
        # two tensors, not one shared: the ONNX encoder graph returns each as its own output
        h, m = image.new_zeros(2, image.shape[0], self.hidden_dim).unbind(0)  # [B, H] each
        return AdaptiveState(
            h=h,
            c=m,
            visual=visual,
            image=image,
            projected_keys=self.visual_key(visual),  # [B, N, A]
            mask=features.mask,  # [B, N] or None
        )

    def _advance(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """LSTM step on ``[w_t; v_g]``, the sentinel, attention over ``[V; s_t]`` with ``h_t``; the output is
        ``c_hat_t + h_t``."""
        assert isinstance(state, AdaptiveState)
        inputs = torch.cat([embedded, state.image], dim=-1)  # x_t [B, E + H]
        h, m = cell_step(self.rnn, inputs, state.h, state.c)  # [B, H], [B, H]
        gate = torch.sigmoid(self.sentinel_input(inputs) + self.sentinel_hidden(state.h))  # g_t [B, H]
        sentinel = gate * torch.tanh(m)  # s_t [B, H]
        language = h  # what the attention is queried by and the output adds: h_t
        if self.variant == "authors":
            sentinel = self.dropout(torch.relu(self.sentinel_embed(sentinel)))  # s'_t [B, H]
            language = self.dropout(torch.tanh(self.hidden_embed(h)))  # h'_t [B, H]

        query = self.query(language).unsqueeze(1)  # W_g h_t [B, 1, A]
        # tanh in place on the fresh sum: one [B, N, A] buffer per step, not two (as in AdditiveAttention)
        hidden = torch.add(state.projected_keys, query).tanh_()  # [B, N, A]
        sentinel_key = self.sentinel_key(sentinel).unsqueeze(1)  # W_s s_t [B, 1, A]
        sentinel_hidden = torch.tanh(sentinel_key + query)  # [B, 1, A]
        if self.variant == "authors":
            hidden, sentinel_hidden = self.dropout(hidden), self.dropout(sentinel_hidden)
        region_scores = self.score(hidden).squeeze(-1)  # z_t [B, N]
        sentinel_score = self.score(sentinel_hidden).squeeze(-1)  # [B, 1]
        scores = torch.cat([region_scores, sentinel_score], dim=-1)  # [B, N + 1]
        mask = None
        if state.mask is not None:
            mask = torch.cat([state.mask, state.mask.new_ones(state.mask.shape[0], 1)], dim=-1)  # [B, N + 1]
        weights = masked_softmax(scores, mask)  # alpha_hat_t [B, N + 1]
        regions, beta = weights[:, :-1], weights[:, -1]  # [B, N], [B]

        # beta s_t + (1 - beta) c_t: the region weights already sum to 1 - beta
        context = beta.unsqueeze(-1) * sentinel + weighted_sum(regions, state.visual)  # c_hat_t [B, H]
        state = replace(state, h=h, c=m, attention=regions, gate=beta)
        output = context + language  # [B, H]
        if self.variant == "authors":
            output = torch.tanh(self.output_embed(output))  # [B, H]
        return output, state  # [B, H]
