"""The batch of the visual dialog task: whole dialogs (image, caption, ten rounds, 100 options per round).

This file is the contract between the dialog data (:mod:`vltk.tasks.dialog.visdial`,
:mod:`vltk.tasks.dialog.shapes_dialog`), the models (:mod:`vltk.tasks.dialog.model`) and the system
(:mod:`vltk.tasks.dialog.system`). Letters as in :mod:`vltk.types`, plus ``R`` rounds per dialog, ``O``
options per round (100 in VisDial) and ``U`` distinct candidate answers in the batch.

Candidate answers are stored once per batch: ``option_tokens [U, T]`` holds each distinct answer of the batch
once and ``options [B, R, O]`` indexes its rows. VisDial answers repeat heavily across rounds (``yes``,
``no``, numbers), so encoding ``U`` answers instead of ``B * R * O`` is what keeps the discriminative decoder
cheap. The ground-truth answer of a round is ``options[b, r, gt_index[b, r]]``; the generative decoder is
trained on those rows of ``option_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class DialogBatch:
    """A batch of ``B`` dialogs of ``R`` rounds.

    Attributes:
        images: ``[B, 3, H, W]`` float, normalised by the encoder's ``transforms()``; with the ``cached``
            encoder (``vltk.encoders.cached``), the cached grids ``[B, N, D]`` instead.
        image_ids: ``[B]`` long, VisDial ``image_id``.
        questions: ``[B, R, Tq]`` long question token ids (no ``<start>``/``<end>``), right-padded with 0.
        question_lengths: ``[B, R]`` long real lengths.
        history: ``[B, R, Th]`` long: the history *before* round ``r`` as one token sequence: the caption,
            then ``question answer`` of rounds ``0..r-1`` (Das et al. 2017's late fusion reads it as one
            string), right-padded, truncated on the left (oldest words dropped) to the data's
            ``max_history_length``.
        history_lengths: ``[B, R]`` long real lengths.
        option_tokens: ``[U, Ta]`` long: every distinct candidate answer of the batch once, as
            ``<start> w1 .. wn <end> <pad> ...``.
        option_lengths: ``[U]`` long real lengths, ``<start>`` and ``<end>`` included.
        options: ``[B, R, O]`` long rows of ``option_tokens``, in the dataset's option order.
        gt_index: ``[B, R]`` long, the position of the right answer among the ``O`` options; ``-1`` when
            unknown (VisDial test rounds).
        round_mask: ``[B, R]`` bool, ``True`` = a real round (dialogs may be shorter than ``R`` in test data).
        relevance: ``[B, R, O]`` float dense relevance of every option in ``[0, 1]`` (NDCG), zero where
            ``relevance_mask`` is ``False``.
        relevance_mask: ``[B, R]`` bool, ``True`` = the round has dense annotations.
        round_types: per dialog, per round, the question's type (``count``, ``colour``, ``coreference``...)
            when the data provides one, else ``""`` (metrics are also reported per type).
        captions: per dialog, the caption as a raw string.
        question_texts: per dialog, per round, the raw question.
        option_texts: per row of ``option_tokens``, the raw answer string.
    """

    images: Tensor
    image_ids: Tensor
    questions: Tensor
    question_lengths: Tensor
    history: Tensor
    history_lengths: Tensor
    option_tokens: Tensor
    option_lengths: Tensor
    options: Tensor
    gt_index: Tensor
    round_mask: Tensor
    relevance: Tensor
    relevance_mask: Tensor
    round_types: list[list[str]]
    captions: list[str]
    question_texts: list[list[str]]
    option_texts: list[str]

    def to(self, device: torch.device | str) -> DialogBatch:
        moved = {
            f.name: (getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), Tensor) else
                     getattr(self, f.name))
            for f in fields(self)
        }  # fmt: skip
        return DialogBatch(**moved)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_rounds(self) -> int:
        """``R``."""
        return self.questions.shape[1]

    @property
    def num_options(self) -> int:
        """``O``."""
        return self.options.shape[2]
