"""The visual dialog dataset (one item = one whole dialog) and :func:`collate_dialogs` into a
:class:`~vltk.tasks.dialog.batch.DialogBatch`.

Text is encoded once when the dataset is built: the caption, every question (cut to
``max_question_length`` words), and every candidate answer of the split once (cut to
``max_answer_length`` words, then wrapped in ``<start> .. <end>``). The history of round ``r`` is the
caption followed by ``question answer`` of rounds ``0..r-1``, one sequence whose oldest words are dropped
beyond ``max_history_length`` (Das et al. 2017's late fusion encodes it as one string). An item carries
only the distinct answers of its own dialog; the collate function merges them across the batch, so every
distinct answer is encoded once per batch (``option_tokens``) and ``options`` indexes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from vltk.data.feature_cache import FeatureStore
from vltk.data.images import ImageTransform, default_image_transform, load_image
from vltk.errors import DataError
from vltk.tasks.dialog.batch import DialogBatch
from vltk.tasks.dialog.history import history_ids
from vltk.tasks.dialog.visdial import DialogRecord
from vltk.text.vocab import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class DialogItem:
    """One encoded dialog (what :class:`DialogDataset` yields).

    Attributes:
        image: ``[3, H, W]`` transformed image, or the cached grid ``[N, D]`` with a feature cache.
        record: the dialog as read.
        questions: per round, the question's ids.
        histories: per round, the history ids before that round (already truncated on the left).
        answer_texts: the distinct candidate answers of this dialog.
        answer_tokens: per distinct answer, ``<start> .. <end>`` ids.
        options: per round, the rows of ``answer_texts`` of its candidates, in the data's order.
    """

    image: Tensor
    record: DialogRecord
    questions: list[list[int]]
    histories: list[list[int]]
    answer_texts: list[str]
    answer_tokens: list[list[int]]
    options: list[list[int]]


class DialogDataset(Dataset[DialogItem]):
    """The dialogs of one split, encoded.

    Args:
        records: the split's dialogs (:func:`vltk.tasks.dialog.visdial.read_visdial`).
        answers: the split's answer strings that the rounds' ``options`` index.
        vocab: encodes captions, questions and answers (unknown words -> ``<unk>``).
        transform: PIL image -> ``[3, H, W]``, or a :class:`~vltk.data.feature_cache.FeatureStore` whose
            grids replace the images (default: :func:`~vltk.data.images.default_image_transform`).
        max_question_length: questions are cut to this many words.
        max_answer_length: answers are cut to this many words (``<start>``/``<end>`` not counted).
        max_history_length: histories keep their last this many words.
        in_memory: keep every transformed image after its first read (decode once).
        skipped: dialogs the reader dropped as bad (reported, not used here).
    """

    def __init__(
        self,
        records: Sequence[DialogRecord],
        answers: Sequence[str],
        vocab: Vocabulary,
        *,
        transform: ImageTransform | FeatureStore | None = None,
        max_question_length: int = 20,
        max_answer_length: int = 12,
        max_history_length: int = 100,
        in_memory: bool = False,
        skipped: int = 0,
    ) -> None:
        for name, value in (
            ("max_question_length", max_question_length),
            ("max_answer_length", max_answer_length),
            ("max_history_length", max_history_length),
        ):
            if value < 1:
                raise DataError(f"{name} must be >= 1, got {value}")
        self.records = list(records)
        self.answers = list(answers)
        self.vocab = vocab
        self.in_memory = in_memory
        self.skipped = skipped
        self.unreadable_images = 0
        self._transform = transform if transform is not None else default_image_transform()
        self._cache: dict[int, Tensor] = {}
        used = sorted({o for record in self.records for turn in record.rounds for o in turn.options})
        encoded = vocab.encode_batch([self.answers[i] for i in used], add_special=False) if used else []
        self._answer_ids = {
            index: [vocab.start_id, *ids[:max_answer_length], vocab.end_id]
            for index, ids in zip(used, encoded, strict=True)
        }
        self._questions: list[list[list[int]]] = []
        self._histories: list[list[list[int]]] = []
        texts = [t for record in self.records for t in (record.caption, *(r.question for r in record.rounds))]
        ids = iter(vocab.encode_batch(texts, add_special=False) if texts else [])
        known = sorted({turn.answer for record in self.records for turn in record.rounds if turn.answer})
        answer_words = dict(
            zip(known, vocab.encode_batch(known, add_special=False) if known else [], strict=True)
        )
        for record in self.records:
            caption = next(ids)
            questions = [next(ids) for _ in record.rounds]
            turns = [q + answer_words.get(r.answer or "", []) for q, r in zip(questions, record.rounds)]
            self._questions.append([q[:max_question_length] for q in questions])
            self._histories.append(history_ids(caption, turns, max_history_length))

    @property
    def transform(self) -> ImageTransform | FeatureStore:
        return self._transform

    @transform.setter
    def transform(self, transform: ImageTransform | FeatureStore) -> None:
        if transform is not self._transform:
            self._cache.clear()  # made by the old transform
        self._transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def image(self, index: int) -> Tensor:
        """The transformed image ``[3, H, W]`` of dialog ``index``, or its cached grid ``[N, D]``."""
        record = self.records[index]
        if isinstance(self._transform, FeatureStore):
            return self._transform.lookup(record.image_id)  # [N, D]
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        if record.image_path is None:
            raise DataError(
                f"dialog image_id={record.image_id}: no image file (give data.image_dir, or use a "
                "feature cache: model.encoder.name=cached)"
            )
        try:
            picture = load_image(record.image_path)
        except DataError as error:
            self.unreadable_images += 1
            logger.warning("dialog image_id=%d: %s; a black image stands in for it", record.image_id, error)
            picture = Image.new("RGB", (64, 64))
        tensor = self._transform(picture)  # [3, H, W]
        if self.in_memory:
            self._cache[index] = tensor
        return tensor

    def __getitem__(self, index: int) -> DialogItem:
        record = self.records[index]
        rows: dict[int, int] = {}
        options = [[rows.setdefault(o, len(rows)) for o in turn.options] for turn in record.rounds]
        return DialogItem(
            image=self.image(index),
            record=record,
            questions=self._questions[index],
            histories=self._histories[index],
            answer_texts=[self.answers[o] for o in rows],
            answer_tokens=[self._answer_ids[o] for o in rows],
            options=options,
        )


def _pad(rows: Sequence[Sequence[int]], pad_id: int, shape: tuple[int, ...]) -> Tensor:
    out = np.full((len(rows), max(1, max((len(r) for r in rows), default=0))), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out).view(*shape, out.shape[-1])


def collate_dialogs(items: Sequence[DialogItem], pad_id: int = 0) -> DialogBatch:
    """Pad ``B`` dialogs to ``R`` rounds and merge their candidate answers (see :class:`DialogBatch`).

    Rounds missing from a shorter dialog have ``round_mask`` False, empty questions (length 0), the
    dialog's full history, options pointing at row 0 and ``gt_index`` -1.
    """
    batch, rounds = len(items), max(len(item.record.rounds) for item in items)
    num_options = max(len(r.options) for item in items for r in item.record.rounds)
    row_of: dict[str, int] = {}
    option_texts: list[str] = []
    option_rows: list[list[int]] = []
    options = np.zeros((batch, rounds, num_options), dtype=np.int64)  # [B, R, O]
    gt_index = np.full((batch, rounds), -1, dtype=np.int64)  # [B, R]
    round_mask = np.zeros((batch, rounds), dtype=bool)  # [B, R]
    relevance = np.zeros((batch, rounds, num_options), dtype=np.float32)  # [B, R, O]
    relevance_mask = np.zeros((batch, rounds), dtype=bool)  # [B, R]
    questions: list[list[int]] = []
    histories: list[list[int]] = []
    for b, item in enumerate(items):
        local = []
        for text, tokens in zip(item.answer_texts, item.answer_tokens, strict=True):
            if text not in row_of:
                row_of[text] = len(option_texts)
                option_texts.append(text)
                option_rows.append(tokens)
            local.append(row_of[text])
        turns = item.record.rounds
        if item.options:
            options[b, : len(turns)] = np.asarray(local, dtype=np.int64)[np.asarray(item.options)]  # [R_b, O]
        gt_index[b, : len(turns)] = [turn.gt_index for turn in turns]
        round_mask[b, : len(turns)] = True
        for r, scores in item.record.relevance.items():
            relevance[b, r, : len(scores)] = scores
            relevance_mask[b, r] = True
        questions += item.questions + [[]] * (rounds - len(turns))
        histories += item.histories + [item.histories[-1] if item.histories else []] * (rounds - len(turns))
    return DialogBatch(
        images=torch.stack([item.image for item in items]),  # [B, 3, H, W] (or [B, N, D] cached)
        image_ids=torch.tensor([item.record.image_id for item in items], dtype=torch.long),  # [B]
        questions=_pad(questions, pad_id, (batch, rounds)),  # [B, R, Tq]
        question_lengths=torch.tensor([len(q) for q in questions], dtype=torch.long).view(batch, rounds),
        history=_pad(histories, pad_id, (batch, rounds)),  # [B, R, Th]
        history_lengths=torch.tensor([len(h) for h in histories], dtype=torch.long).view(batch, rounds),
        option_tokens=_pad(option_rows, pad_id, (len(option_rows),)),  # [U, Ta]
        option_lengths=torch.tensor([len(t) for t in option_rows], dtype=torch.long),  # [U]
        options=torch.from_numpy(options),
        gt_index=torch.from_numpy(gt_index),
        round_mask=torch.from_numpy(round_mask),
        relevance=torch.from_numpy(relevance),
        relevance_mask=torch.from_numpy(relevance_mask),
        round_types=[
            [t.type for t in item.record.rounds] + [""] * (rounds - len(item.record.rounds)) for item in items
        ],
        captions=[item.record.caption for item in items],
        question_texts=[
            [t.question for t in item.record.rounds] + [""] * (rounds - len(item.record.rounds))
            for item in items
        ],
        option_texts=option_texts,
    )
