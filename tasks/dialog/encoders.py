"""The late fusion encoder of Das et al. 2017, *Visual Dialog* (CVPR), section 5.

For round ``r`` of a dialog about image ``I`` it reads the question ``q_r`` with an LSTM, the history (the
caption and the question/answer pairs of rounds ``0..r-1``, one token sequence) with another LSTM, attends
over the image grid with the question as the query, concatenates the three vectors and fuses them with a
linear layer and ``tanh``::

    e_r = tanh(W [attend(I, q_r); q_r; h_r] + b)          # [B*R, F]

Letters as in :mod:`vltk.types`, plus ``R`` rounds per dialog and ``F`` the fused size. Each image is
encoded once (by the caller's CNN) and its grid is expanded to its ``R`` rounds by indexing; the attention
key projection is also computed once per image, not once per round.

Ablations: ``use_image=False`` drops the image (no attention module; with ``use_history=False`` too it is
the question-only model); ``use_history=False`` drops the history (image + question).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vltk.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class FusionOutput:
    """What :class:`LateFusionEncoder` returns.

    Attributes:
        fused: ``[B*R, F]`` the fused encoding of every round (dialog-major: row ``b * R + r``).
        attention: ``[B*R, N]`` the question-guided attention over the image regions, or ``None`` when the
            image is not used.
    """

    fused: Tensor
    attention: Tensor | None


class LateFusionEncoder(nn.Module):
    """Das et al. 2017 late fusion: question LSTM, history LSTM, question-guided image attention, fusion.

    Args:
        question_encoder: a text encoder (``forward(tokens, lengths) -> TextFeatures``, ``out_dim``) for the
            questions; :class:`vltk.encoders.RNNTextEncoder` in the built models.
        history_encoder: the text encoder of the history, or ``None`` when ``use_history`` is false.
        image_dim: ``D`` of the image regions, or ``None`` when the image is not used.
        attention: an attention module of :mod:`vltk.attention` with ``query_dim = question_encoder.out_dim``
            and ``key_dim = image_dim`` (``precompute``/``forward`` protocol), or ``None`` without the image.
        dim: ``F``, the fused size (512 in Das et al.; the discriminative decoder's answer LSTM has this
            hidden size so that scores are dot products).
        dropout: dropout on the concatenated vector before the fusion layer.
    """

    def __init__(
        self,
        question_encoder: nn.Module,
        history_encoder: nn.Module | None,
        *,
        image_dim: int | None,
        attention: nn.Module | None,
        dim: int = 512,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ConfigError(f"late fusion dim must be a positive integer, got {dim!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"late fusion dropout must be in [0, 1), got {dropout!r}")
        if (image_dim is None) != (attention is None):
            raise ValueError("late fusion needs both image_dim and attention, or neither (use_image false)")
        self.question_encoder = question_encoder
        self.history_encoder = history_encoder
        self.attention = attention
        self.image_dim = image_dim
        self.use_image = image_dim is not None
        self.use_history = history_encoder is not None
        in_dim = question_encoder.out_dim
        in_dim += image_dim if image_dim is not None else 0
        in_dim += history_encoder.out_dim if history_encoder is not None else 0
        self.dropout = nn.Dropout(dropout)
        self.fusion = nn.Linear(in_dim, dim)
        self.out_dim = dim

    def forward(
        self,
        grid: Tensor | None,
        questions: Tensor,
        question_lengths: Tensor,
        history: Tensor | None = None,
        history_lengths: Tensor | None = None,
        grid_mask: Tensor | None = None,
    ) -> FusionOutput:
        """Fuse every round of ``B`` dialogs of ``R`` rounds.

        Args:
            grid: ``[B, N, D]`` the region features of each dialog's image, encoded once per image; ignored
                (may be ``None``) when the image is not used.
            questions: ``[B, R, Tq]`` question token ids, right-padded.
            question_lengths: ``[B, R]`` real lengths.
            history: ``[B, R, Th]`` the history before each round, right-padded; ignored (may be ``None``)
                without history.
            history_lengths: ``[B, R]`` real lengths.
            grid_mask: ``[B, N]`` bool, ``True`` = real region; ``None`` = all real.

        Returns:
            :class:`FusionOutput` with ``fused [B*R, F]`` (row ``b * R + r``).
        """
        if questions.dim() != 3:
            raise ValueError(f"late fusion expects questions [B, R, T], got {tuple(questions.shape)}")
        B, R, Tq = questions.shape
        question = self.question_encoder(
            questions.reshape(B * R, Tq), question_lengths.reshape(B * R)
        ).final  # [B*R, H]
        parts = [question]
        attention = None
        if self.use_image:
            if grid is None or grid.dim() != 3 or grid.shape[0] != B or grid.shape[2] != self.image_dim:
                got = None if grid is None else tuple(grid.shape)
                raise ValueError(f"late fusion expects an image grid [{B}, N, {self.image_dim}], got {got}")
            image_index = torch.arange(B, device=questions.device).repeat_interleave(R)  # [B*R]
            projected = self.attention.precompute(grid)  # [B, N, A], once per image
            mask = grid_mask[image_index] if grid_mask is not None else None  # [B*R, N]
            attended, attention = self.attention(
                question, grid[image_index], projected[image_index], mask
            )  # [B*R, D], [B*R, N]
            parts.insert(0, attended)
        if self.use_history:
            if history is None or history_lengths is None:
                raise ValueError("late fusion with use_history needs history and history_lengths")
            Th = history.shape[-1]
            encoded = self.history_encoder(
                history.reshape(B * R, Th), history_lengths.reshape(B * R)
            ).final  # [B*R, H]
            parts.append(encoded)
        joint = self.dropout(torch.cat(parts, dim=-1))  # [B*R, D + H + H]
        fused = torch.tanh(self.fusion(joint))  # [B*R, F]
        return FusionOutput(fused=fused, attention=attention)

    def extra_repr(self) -> str:
        return f"use_image={self.use_image}, use_history={self.use_history}, out_dim={self.out_dim}"
