"""``vltk score captioning``: COCO caption metrics of a predictions file, without a model.

Predictions come in the COCO results format (``[{"image_id", "caption"}]``, what ``vltk evaluate
--predictions`` writes and the COCO server takes); references as a COCO ``captions_*.json`` or a
Karpathy-split JSON with ``--split``. Both files are checked against each other first
(:func:`vltk.metrics.caption_files.load_caption_files`): malformed entries, repeated ids, ids the references
do not know and images without a prediction are errors that count and name the offending ids. The
metrics are the COCO toolkit's (BLEU-1..4, ROUGE-L, CIDEr-D, and METEOR when Java is installed), with
the whole file as CIDEr-D's corpus.
"""

from __future__ import annotations

import logging

from vltk.errors import DataError
from vltk.metrics.caption import score_captions_detailed
from vltk.metrics.caption_files import load_caption_files
from vltk.metrics.meteor import SPICE_NOTE
from vltk.tasks.training import ScoreRequest, ScoreResult

logger = logging.getLogger(__name__)


def score_captioning(request: ScoreRequest) -> ScoreResult:
    """BLEU-1..4, ROUGE-L, CIDEr(-D) and, when Java is there, METEOR of ``request.predictions``.

    Args:
        request: ``predictions`` (COCO results JSON), ``references`` (COCO captions or Karpathy JSON) and,
            for Karpathy JSON, ``split``.

    Returns:
        The metrics, and notes on METEOR (when unavailable, and why) and SPICE (never available offline).
    """
    if request.references is None:
        raise DataError(
            "vltk score captioning needs --references: a COCO captions_*.json or a Karpathy-split JSON "
            "(with --split)"
        )
    hypotheses, references = load_caption_files(request.predictions, request.references, request.split)
    logger.info("scoring %d images of %s", len(hypotheses), request.references)
    scores = score_captions_detailed(hypotheses, references, meteor="auto")
    return ScoreResult(metrics=scores.metrics, notes=[*scores.notes, SPICE_NOTE])
