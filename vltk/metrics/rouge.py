"""ROUGE-L as the COCO caption toolkit computes it (Lin 2004, ROUGE: A Package for Automatic Evaluation
of Summaries; COCO variant: Chen et al. 2015, Microsoft COCO Captions).

Per image, with ``LCS(h, r)`` the length of the longest common subsequence of hypothesis ``h`` and
reference ``r`` (in tokens)::

    P = max_r LCS(h, r) / |h|          R = max_r LCS(h, r) / |r|
    ROUGE-L = (1 + beta^2) P R / (R + beta^2 P)         beta = 1.2, and 0 when P or R is 0

The maxima of precision and recall are taken separately (they may come from different references), as
``pycocoevalcap/rouge/rouge.py`` does; the corpus score is the mean over images.

Tokens: COCO's ``Rouge.calc_score`` splits the tokenised strings with ``split(" ")`` (a single ASCII
space), not with ``str.split()`` as its BLEU and CIDEr-D do. So a Java token holding a no-break space
(``"3\u00a01/2"``, ``"12\u00a0345\u00a06789"``) is one token for ROUGE-L and two or three for BLEU, and two
spaces in a row make an empty token that counts in the lengths (and matches another empty token).
:func:`rouge_tokens` splits that way, and :func:`rouge_l_text_scores` scores such strings;
``vltk.metrics.score_records`` gives ROUGE-L the COCO strings split this way. An empty string is one empty
token there; on token lists, an empty list stands for it (it matches an empty reference, P = R = 1, and
nothing else), so both forms give COCO's numbers.

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


def rouge_tokens(sentence: str) -> list[str]:
    """The tokens of a tokenised sentence as COCO's ROUGE-L reads them: ``sentence.split(" ")``.

    Only the ASCII space separates: ``"3\u00a01/2 cups"`` is 2 tokens (``str.split()`` gives 3), and
    ``"a  dog"`` is 3 (``"a"``, ``""``, ``"dog"``).
    """
    return sentence.split(" ")


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


def rouge_l_text_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], beta: float = BETA
) -> tuple[float, list[float]]:
    """Corpus ROUGE-L and the per-image scores of tokenised strings (what ``PTBTokenizer.tokenize``
    returns), split with :func:`rouge_tokens` exactly as ``pycocoevalcap.rouge.Rouge`` splits them.

    Args:
        hypotheses: one tokenised string per image.
        references: per image, the tokenised reference strings (at least one).
        beta: weight of recall relative to precision (COCO: 1.2).
    """
    return rouge_l_scores(
        [rouge_tokens(hypothesis) for hypothesis in hypotheses],
        [[rouge_tokens(reference) for reference in refs] for refs in references],
        beta,
    )


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
