"""ROUGE-L as the COCO caption toolkit computes it (Lin 2004, ROUGE: A Package for Automatic Evaluation
of Summaries; COCO variant: Chen et al. 2015, Microsoft COCO Captions).

Per image, with ``LCS(h, r)`` the length of the longest common subsequence of hypothesis ``h`` and
reference ``r`` (in tokens)::

    P = max_r LCS(h, r) / |h|          R = max_r LCS(h, r) / |r|
    ROUGE-L = (1 + beta^2) P R / (R + beta^2 P)         beta = 1.2, and 0 when P or R is 0

The maxima of precision and recall are taken separately (they may come from different references), as
``pycocoevalcap/rouge/rouge.py`` does; the corpus score is the mean over images.

COCO splits sentences with ``str.split(" ")``, so an empty sentence is one empty token there. The only
place where that changes a number is an empty hypothesis against an empty reference, which COCO scores
1.0; here an empty hypothesis matches an empty reference perfectly too (P = R = 1), and scores 0 against
every non-empty reference, so the results agree in every case.

The LCS length uses the bit-parallel algorithm of Allison and Dix (1986) / Hyyrö (2004): one big-integer
update per token instead of a row of the dynamic-programming table.
"""

from __future__ import annotations

from collections.abc import Sequence

from vltk.metrics.bleu import check_corpus

BETA = 1.2


def _match_masks(tokens: Sequence[str]) -> dict[str, int]:
    """For every distinct token, the bit mask of the positions where it occurs."""
    masks: dict[str, int] = {}
    for position, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


def _lcs_with_masks(masks: dict[str, int], length: int, other: Sequence[str]) -> int:
    """LCS length of the sentence described by ``masks`` (``length`` tokens) and ``other``."""
    full = (1 << length) - 1
    row = full  # bit i clear <=> the LCS grew at position i; LCS = number of cleared bits
    for token in other:
        matched = row & masks.get(token, 0)
        row = ((row + matched) | (row - matched)) & full
    return length - row.bit_count()


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    if len(a) < len(b):
        a, b = b, a
    return _lcs_with_masks(_match_masks(a), len(a), b)


def rouge_l(hypothesis: Sequence[str], references: Sequence[Sequence[str]], beta: float = BETA) -> float:
    """ROUGE-L F-measure of one hypothesis against its references (COCO definition).

    Args:
        hypothesis: tokens of the generated caption.
        references: token lists of the reference captions (at least one).
        beta: weight of recall relative to precision (COCO: 1.2).
    """
    if len(references) == 0:
        raise ValueError("rouge_l needs at least one reference")
    hyp_len = len(hypothesis)
    masks = _match_masks(hypothesis)
    best_precision = 0.0
    best_recall = 0.0
    for reference in references:
        if hyp_len == 0 or len(reference) == 0:
            # Two empty sentences are identical; an empty and a non-empty one share nothing.
            precision = recall = 1.0 if hyp_len == len(reference) else 0.0
        else:
            lcs = _lcs_with_masks(masks, hyp_len, reference)
            precision = lcs / float(hyp_len)
            recall = lcs / float(len(reference))
        best_precision = max(best_precision, precision)
        best_recall = max(best_recall, recall)
    if best_precision == 0.0 or best_recall == 0.0:
        return 0.0
    beta2 = beta**2
    return ((1 + beta2) * best_precision * best_recall) / float(best_recall + beta2 * best_precision)


def rouge_l_scores(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    beta: float = BETA,
) -> tuple[float, list[float]]:
    """Corpus ROUGE-L (mean over images) and the per-image scores.

    Args:
        hypotheses: one token list per image.
        references: per image, one token list per reference caption (at least one).
        beta: weight of recall relative to precision (COCO: 1.2).
    """
    check_corpus(hypotheses, references)
    per_image = [rouge_l(hyp, refs, beta) for hyp, refs in zip(hypotheses, references, strict=True)]
    return sum(per_image) / len(per_image), per_image


def corpus_rouge_l(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    beta: float = BETA,
) -> float:
    """Mean ROUGE-L over images (COCO definition).

    Args:
        hypotheses: one token list per image.
        references: per image, one token list per reference caption (at least one).
        beta: weight of recall relative to precision (COCO: 1.2).
    """
    return rouge_l_scores(hypotheses, references, beta)[0]
