"""Caption metrics of the COCO caption evaluation (Chen et al. 2015, Microsoft COCO Captions: Data
Collection and Evaluation Server): BLEU-1..4, ROUGE-L and CIDEr-D, without Java.

Two entry points:

* :class:`CaptionMetrics`, the metric object a Lightning system feeds during validation/test
  (``update`` per batch, ``compute`` once per epoch, ``reset``). It is correct under DDP: ``compute``
  gathers every rank's captions, drops the duplicates that distributed samplers add to even out the
  ranks (by image id, keeping the first), and scores the whole split once. CIDEr-D depends on the
  document frequencies of the whole evaluated corpus, so it is never averaged over batches or ranks.
* :func:`score_captions` for captions without a model (e.g. a predictions file):
  ``{image_id: hypothesis}`` and ``{image_id: [references]}``.

Strings are tokenised with :func:`~vltk.metrics.caption_tokenizer.coco_caption_text` (COCO's PTB
tokenisation, reproduced in Python), then scored with scorers that reproduce ``pycocoevalcap``'s
Bleu(4), Rouge and Cider to 1e-6, each splitting the tokenised strings as its COCO scorer does
(:func:`score_texts`). METEOR is added on request (``meteor=True`` or ``"auto"``) through
COCO's Java scorer when Java is installed (:mod:`vltk.metrics.meteor`); otherwise the scores carry a
note saying why it is missing. SPICE needs a download and is never computed.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from vltk.errors import DataError, unknown_choice_message
from vltk.metrics.bleu import bleu_scores, check_corpus
from vltk.metrics.caption_tokenizer import coco_caption_text
from vltk.metrics.cider import cider_d_scores
from vltk.metrics.gather import first_per_key, gather_parts
from vltk.metrics.meteor import MeteorUnavailable, meteor_scores, meteor_unavailable_reason
from vltk.metrics.ngram_table import corpus_tables
from vltk.metrics.rouge import rouge_l_scores, rouge_tokens

logger = logging.getLogger(__name__)

ImageId = Hashable
METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr")
MeteorSetting = bool | Literal["auto"]


@dataclass(frozen=True)
class CaptionRecord:
    """One evaluated image: its id, the generated caption and the reference captions (raw strings)."""

    image_id: ImageId
    hypothesis: str
    references: tuple[str, ...]


@dataclass
class CaptionScores:
    """Corpus metrics and, per image, the same metrics computed for that image alone.

    Attributes:
        metrics: ``{"BLEU-1": ..., "BLEU-4": ..., "ROUGE-L": ..., "CIDEr": ...}`` over the corpus.
        per_image: ``{image_id: {metric name: score}}`` (COCO's per-image BLEU, ROUGE-L and CIDEr-D;
            per-image CIDEr-D still uses the document frequencies of the whole corpus).
        notes: what the user should know, e.g. ``"METEOR unavailable: java is not on PATH"``.
    """

    metrics: dict[str, float]
    per_image: dict[ImageId, dict[str, float]]
    notes: list[str] = field(default_factory=list)

    def ranked(self, metric: str = "CIDEr") -> list[ImageId]:
        """Image ids from the worst to the best score on ``metric`` (to show failure cases)."""
        if metric not in self.metrics:
            raise ValueError(unknown_choice_message("caption metric", metric, self.metrics))
        return sorted(self.per_image, key=lambda image_id: self.per_image[image_id][metric])


def score_tokenized(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """All caption metrics on already tokenised captions, every metric on the same tokens (for COCO's
    exact split of a no-break space, one tokenised string per caption to :func:`score_texts`).

    Args:
        hypotheses: one token list per image.
        references: per image, one token list per reference caption (at least one).

    Returns:
        ``(metrics, per_image)``: corpus metrics by name, and per image a dict with the same names.
    """
    return _score(hypotheses, references, hypotheses, references)


def score_texts(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """All caption metrics on COCO-tokenised strings (what ``PTBTokenizer.tokenize`` returns and
    :func:`~vltk.metrics.caption_tokenizer.coco_caption_text` gives), each metric splitting them as its
    ``pycocoevalcap`` scorer does: BLEU and CIDEr-D with ``str.split()`` (``precook`` in
    ``bleu_scorer.py``/``cider_scorer.py``), ROUGE-L with ``split(" ")`` (``Rouge.calc_score``), which keeps
    a no-break space inside its token.

    Args:
        hypotheses: one tokenised string per image.
        references: per image, the tokenised reference strings (at least one).

    Returns:
        ``(metrics, per_image)`` as :func:`score_tokenized`.
    """
    return _score(
        [hypothesis.split() for hypothesis in hypotheses],
        [[reference.split() for reference in refs] for refs in references],
        [rouge_tokens(hypothesis) for hypothesis in hypotheses],
        [[rouge_tokens(reference) for reference in refs] for refs in references],
    )


def _score(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    rouge_hypotheses: Sequence[Sequence[str]],
    rouge_references: Sequence[Sequence[Sequence[str]]],
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """BLEU and CIDEr-D on ``hypotheses``/``references``, ROUGE-L on the ``rouge_*`` token lists."""
    check_corpus(hypotheses, references)
    tables = corpus_tables(hypotheses, references, max_n=4)  # n-grams counted once for BLEU and CIDEr-D
    bleu, bleu_per_image = bleu_scores(hypotheses, references, max_n=4, tables=tables)
    rouge, rouge_per_image = rouge_l_scores(rouge_hypotheses, rouge_references)
    cider, cider_per_image = cider_d_scores(hypotheses, references, tables=tables)
    metrics = {f"BLEU-{n}": float(bleu[n - 1]) for n in range(1, 5)}
    metrics["ROUGE-L"] = float(rouge)
    metrics["CIDEr"] = float(cider)
    per_image = [
        {**{f"BLEU-{n}": float(b[n - 1]) for n in range(1, 5)}, "ROUGE-L": float(r), "CIDEr": float(c)}
        for b, r, c in zip(bleu_per_image, rouge_per_image, cider_per_image, strict=True)
    ]
    return metrics, per_image


def add_meteor(
    scores: CaptionScores,
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    image_ids: Sequence[ImageId],
    meteor: MeteorSetting,
) -> None:
    """Add COCO's METEOR to ``scores`` (corpus and per image), or a note saying why it is missing.

    ``meteor=True`` asks for it (a missing Java is logged as a warning), ``"auto"`` computes it when Java
    is there (quietly noted otherwise), ``False`` skips it. Never raises for a missing Java.
    """
    if meteor is False:
        return
    reason = meteor_unavailable_reason()
    if reason is None:
        try:
            value, per_image = meteor_scores(hypotheses, references)
        except MeteorUnavailable as error:
            reason = str(error).removeprefix("METEOR unavailable: ")
        else:
            scores.metrics["METEOR"] = value
            for image_id, image_value in zip(image_ids, per_image, strict=True):
                scores.per_image[image_id]["METEOR"] = image_value
            return
    note = f"METEOR unavailable: {reason}"
    scores.notes.append(note)
    (logger.warning if meteor is True else logger.info)(note)


def score_records(records: Sequence[CaptionRecord], *, meteor: MeteorSetting = False) -> CaptionScores:
    """Tokenise and score a list of records (one per image; ids are expected to be distinct).

    Args:
        records: the images, each with its hypothesis and references.
        meteor: add METEOR (Java): ``True``, ``"auto"`` (when Java is available) or ``False``.
    """
    for record in records:
        if len(record.references) == 0:
            raise DataError(f"image {record.image_id!r} has no reference captions")
    hypotheses = [coco_caption_text(record.hypothesis) for record in records]
    references = [[coco_caption_text(ref) for ref in record.references] for record in records]
    metrics, per_image = score_texts(hypotheses, references)
    image_ids = [record.image_id for record in records]
    scores = CaptionScores(metrics, dict(zip(image_ids, per_image, strict=True)))
    # METEOR gets COCO's strings unchanged: joining the split(" ") tokens with " " gives them back.
    add_meteor(
        scores,
        [rouge_tokens(hypothesis) for hypothesis in hypotheses],
        [[rouge_tokens(reference) for reference in refs] for refs in references],
        image_ids,
        meteor,
    )
    return scores


def _records_from_mappings(
    hypotheses: Mapping[ImageId, str], references: Mapping[ImageId, Sequence[str]]
) -> list[CaptionRecord]:
    missing = [image_id for image_id in hypotheses if image_id not in references]
    if missing:
        shown = ", ".join(repr(image_id) for image_id in missing[:5])
        raise DataError(
            f"{len(missing)} of {len(hypotheses)} hypotheses have no references (image ids {shown}"
            f"{', ...' if len(missing) > 5 else ''}); check that both files use the same image ids"
        )
    extra = len(references) - len(hypotheses)
    if extra > 0:
        logger.warning("%d images have references but no hypothesis; they are not scored", extra)
    records = []
    for image_id, hypothesis in hypotheses.items():
        refs = references[image_id]
        if not isinstance(hypothesis, str):
            raise DataError(f"the hypothesis of image {image_id!r} is not a string: {hypothesis!r}")
        if isinstance(refs, str) or not all(isinstance(ref, str) for ref in refs):
            raise DataError(f"the references of image {image_id!r} must be a list of strings, got {refs!r}")
        records.append(CaptionRecord(image_id, hypothesis, tuple(refs)))
    return records


def score_captions_detailed(
    hypotheses: Mapping[ImageId, str],
    references: Mapping[ImageId, Sequence[str]],
    *,
    meteor: MeteorSetting = False,
) -> CaptionScores:
    """Like :func:`score_captions`, with the per-image scores and notes as well."""
    return score_records(_records_from_mappings(hypotheses, references), meteor=meteor)


def score_captions(
    hypotheses: Mapping[ImageId, str], references: Mapping[ImageId, Sequence[str]]
) -> dict[str, float]:
    """COCO caption metrics of generated captions, without a model.

    The corpus is the set of images that have a hypothesis; references of other images are ignored
    (with a warning), as they would change CIDEr-D's document frequencies.

    Args:
        hypotheses: ``{image_id: generated caption}``.
        references: ``{image_id: [reference captions]}``; every hypothesis needs at least one.

    Returns:
        ``{"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"}`` -> score.
    """
    return score_captions_detailed(hypotheses, references).metrics


def merge_records(parts: Iterable[Iterable[CaptionRecord]]) -> list[CaptionRecord]:
    """Concatenate the records of several ranks, keeping the first record of each image id.

    Distributed samplers pad the last batches with repeated examples so that every rank gets the same
    number; those repeats must be scored once.
    """
    return first_per_key(parts, lambda record: record.image_id)


class CaptionMetrics:
    """BLEU-1..4, ROUGE-L and CIDEr(-D) over a whole evaluation split, correct under DDP.

    Usage in a LightningModule::

        self.val_captions = CaptionMetrics()
        # validation_step:
        self.val_captions.update(batch.image_ids, decoded_strings, batch.references)
        # on_validation_epoch_end (every rank must call compute: it is a collective under DDP):
        self.log_dict(self.val_captions.compute()); self.val_captions.reset()

    Args:
        sync_across_ranks: gather captions from every process when ``torch.distributed`` is initialised
            with more than one process. Turn off only to score each rank's share separately.
    """

    def __init__(self, *, sync_across_ranks: bool = True) -> None:
        self.sync_across_ranks = sync_across_ranks
        self._records: dict[ImageId, CaptionRecord] = {}

    def update(
        self,
        image_ids: Sequence[ImageId] | torch.Tensor,
        hypotheses: Sequence[str],
        references: Sequence[Sequence[str]],
    ) -> None:
        """Add a batch. An image id seen before (a padded repeat) is ignored.

        Args:
            image_ids: ``[B]`` dataset image ids (a list or a tensor).
            hypotheses: ``B`` generated captions (detokenised strings).
            references: ``B`` lists of reference captions.
        """
        if isinstance(image_ids, torch.Tensor):
            image_ids = image_ids.tolist()  # [B] -> B python ints (hashable, picklable for the gather)
        # 0-dim tensors hash by identity, so two copies of one id would not be recognised as repeats.
        image_ids = [i.item() if isinstance(i, torch.Tensor) else i for i in image_ids]
        if not len(image_ids) == len(hypotheses) == len(references):
            raise ValueError(
                f"update() got {len(image_ids)} image ids, {len(hypotheses)} hypotheses and "
                f"{len(references)} reference lists; they must have the same length"
            )
        for image_id, hypothesis, refs in zip(image_ids, hypotheses, references, strict=True):
            if isinstance(refs, str) or len(refs) == 0:
                raise DataError(f"image {image_id!r} needs a non-empty list of reference captions: {refs!r}")
            if image_id not in self._records:
                self._records[image_id] = CaptionRecord(image_id, str(hypothesis), tuple(refs))

    def reset(self) -> None:
        """Forget every caption (call after ``compute`` at the end of an epoch)."""
        self._records.clear()

    def __len__(self) -> int:
        """Number of distinct images added on this process."""
        return len(self._records)

    def records(self) -> list[CaptionRecord]:
        """Every image of the split, gathered from all ranks (a collective under DDP), de-duplicated."""
        return merge_records(gather_parts(list(self._records.values()), self.sync_across_ranks))

    def compute_detailed(self, *, meteor: MeteorSetting = False) -> CaptionScores:
        """Corpus metrics and per-image scores of the whole split (see :class:`CaptionScores`).

        Args:
            meteor: also METEOR through Java (``True``/``"auto"``); slow to start, so meant for a final
                test, not every validation epoch. Under DDP every rank computes it.
        """
        records = self.records()
        if not records:
            logger.warning("CaptionMetrics.compute() called before any update(); returning zeros")
            return CaptionScores({name: 0.0 for name in METRIC_NAMES}, {})
        return score_records(records, meteor=meteor)

    def compute(self) -> dict[str, float]:
        """``{"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"}`` over the whole split; every
        rank gets the same numbers."""
        return self.compute_detailed().metrics
