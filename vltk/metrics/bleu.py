"""BLEU as the COCO caption toolkit computes it (Papineni et al. 2002, BLEU: a Method for Automatic
Evaluation of Machine Translation; COCO variant: Chen et al. 2015, Microsoft COCO Captions: Data
Collection and Evaluation Server).

The numbers equal ``pycocoevalcap.bleu.Bleu(4).compute_score`` (to float rounding) because every choice
that differs between BLEU implementations is made the way ``bleu_scorer.py`` makes it:

* **corpus level**: clipped n-gram matches and n-gram counts are summed over all images before the
  ratio is taken (not an average of sentence scores);
* **clipping**: a hypothesis n-gram counts at most as often as it occurs in the single reference
  where it occurs most often;
* **"closest" reference length** for the brevity penalty, per image: the reference length nearest to
  the hypothesis length; on a tie the *shorter* reference wins. The corpus reference length is the
  sum of these per-image lengths;
* **smoothing** with two constants, ``tiny = 1e-15`` added to match counts and ``small = 1e-9`` added to
  n-gram counts, so an order with no match gives a score near 0 rather than a division by zero; the
  brevity penalty uses the same constants (``ratio = (c + tiny) / (r + small)``);
* **cumulative geometric mean**: BLEU-n is ``(p_1 * ... * p_n) ** (1 / n)`` times the brevity penalty.

Sentences are lists of tokens (the output of :func:`vltk.metrics.caption_tokenizer.tokenize_caption`);
tokens are expected to be non-empty and free of whitespace, as they are after tokenisation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vltk.errors import DataError
from vltk.metrics.ngram_table import CorpusTables, corpus_tables

# Smoothing constants of bleu_scorer.py; changing them changes the reported numbers.
TINY = 1e-15
SMALL = 1e-9

NGram = tuple[str, ...]


def ngram_counts(tokens: Sequence[str], n: int) -> Counter[NGram]:
    """Counts of the ``n``-grams (tuples of ``n`` tokens) of one sentence."""
    if n == 1:
        return Counter((token,) for token in tokens)
    return Counter(zip(*(tokens[i:] for i in range(n)), strict=False))


def check_corpus(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]) -> None:
    """Raise :class:`DataError` unless there is one non-empty list of references per hypothesis."""
    if len(hypotheses) != len(references):
        raise DataError(
            f"got {len(hypotheses)} hypotheses but {len(references)} reference lists; "
            "there must be exactly one list of references per hypothesis"
        )
    if not hypotheses:
        raise DataError("cannot score an empty corpus: no hypotheses were given")
    for index, refs in enumerate(references):
        if len(refs) == 0:
            raise DataError(f"image #{index} has no reference captions; every image needs at least one")


@dataclass(frozen=True)
class BleuStats:
    """The sufficient statistics of BLEU for one image (or, summed, for a corpus).

    Attributes:
        hyp_len: number of hypothesis tokens.
        ref_len: the effective ("closest") reference length.
        matches: clipped n-gram matches, one entry per order 1..max_n.
        totals: hypothesis n-grams, one entry per order 1..max_n (``max(0, hyp_len - n + 1)``).
    """

    hyp_len: int
    ref_len: int
    matches: tuple[int, ...]
    totals: tuple[int, ...]

    def __add__(self, other: BleuStats) -> BleuStats:
        return BleuStats(
            hyp_len=self.hyp_len + other.hyp_len,
            ref_len=self.ref_len + other.ref_len,
            matches=tuple(a + b for a, b in zip(self.matches, other.matches, strict=True)),
            totals=tuple(a + b for a, b in zip(self.totals, other.totals, strict=True)),
        )


def closest_ref_length(hyp_len: int, ref_lengths: Sequence[int]) -> int:
    """The reference length nearest to ``hyp_len``; ties go to the shorter reference (as in COCO)."""
    return min(ref_lengths, key=lambda length: (abs(length - hyp_len), length))


def image_stats(hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> BleuStats:
    """BLEU statistics of one hypothesis against its references (the readable, per-image definition;
    :func:`bleu_scores` computes the same numbers for a whole corpus at once)."""
    hyp_len = len(hypothesis)
    matches = []
    for n in range(1, max_n + 1):
        hyp_counts = ngram_counts(hypothesis, n)
        max_ref_counts: Counter[NGram] = Counter()
        for ref in references:
            max_ref_counts |= ngram_counts(ref, n)  # element-wise max: clip by the best single reference
        matches.append(sum(min(count, max_ref_counts[g]) for g, count in hyp_counts.items()))
    return BleuStats(
        hyp_len=hyp_len,
        ref_len=closest_ref_length(hyp_len, [len(ref) for ref in references]),
        matches=tuple(matches),
        totals=tuple(max(0, hyp_len - n + 1) for n in range(1, max_n + 1)),
    )


def corpus_stats(tables: CorpusTables) -> list[BleuStats]:
    """Per-image BLEU statistics of a whole corpus from its n-gram tables (numpy; see ngram_table)."""
    table, num_images, max_n = tables.table, tables.num_images, tables.table.max_n
    is_ref = table.sentence >= num_images
    ref_image = tables.ref_image[table.sentence[is_ref] - num_images]  # [Mr]
    # Clipping: the most occurrences of each n-gram in any single reference of the image.
    keys = ref_image * table.num_grams + table.gram[is_ref]
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    max_ref_counts = np.zeros(len(unique_keys), dtype=np.int64)
    np.maximum.at(max_ref_counts, inverse, table.count[is_ref])
    is_hyp = ~is_ref
    hyp_image, hyp_counts = table.sentence[is_hyp], table.count[is_hyp]
    hyp_keys = hyp_image * table.num_grams + table.gram[is_hyp]
    index = np.minimum(np.searchsorted(unique_keys, hyp_keys), max(len(unique_keys) - 1, 0))
    found = unique_keys[index] == hyp_keys if len(unique_keys) else np.zeros(len(hyp_keys), dtype=bool)
    clipped = np.where(found, np.minimum(hyp_counts, max_ref_counts[index] if len(unique_keys) else 0), 0)
    matches = np.bincount(
        hyp_image * max_n + table.order[is_hyp] - 1, weights=clipped, minlength=num_images * max_n
    ).reshape(num_images, max_n)  # [I, n]
    # "Closest" reference length: nearest to the hypothesis length, the shorter one on a tie.
    hyp_lengths = table.lengths[:num_images]  # [I]
    ref_lengths = table.lengths[num_images:]  # [R]
    distance = np.abs(ref_lengths - hyp_lengths[tables.ref_image])
    order = np.lexsort((ref_lengths, distance, tables.ref_image))
    first = np.unique(tables.ref_image[order], return_index=True)[1]
    closest = ref_lengths[order[first]]  # [I]
    stats = []
    for hyp_len, ref_len, image_matches in zip(
        hyp_lengths.tolist(), closest.tolist(), matches.astype(np.int64).tolist(), strict=True
    ):
        totals = tuple(max(0, hyp_len - n + 1) for n in range(1, max_n + 1))
        stats.append(BleuStats(hyp_len, ref_len, tuple(image_matches), totals))
    return stats


def bleu_from_stats(stats: BleuStats) -> list[float]:
    """Cumulative BLEU-1..n from (per-image or summed) statistics, with COCO's smoothing."""
    scores = []
    product = 1.0
    for n, (match, total) in enumerate(zip(stats.matches, stats.totals, strict=True), start=1):
        product *= (float(match) + TINY) / (float(total) + SMALL)
        scores.append(product ** (1.0 / n))
    ratio = (stats.hyp_len + TINY) / (stats.ref_len + SMALL)
    if ratio < 1.0:  # brevity penalty, only for hypotheses shorter than the reference length
        penalty = math.exp(1.0 - 1.0 / ratio)
        scores = [score * penalty for score in scores]
    return scores


def bleu_scores(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
    *,
    tables: CorpusTables | None = None,
) -> tuple[list[float], list[list[float]]]:
    """Corpus BLEU-1..``max_n`` and the per-image scores, both as COCO computes them.

    Args:
        hypotheses: one token list per image.
        references: per image, one token list per reference caption (at least one).
        max_n: highest n-gram order.
        tables: the corpus's n-gram tables when already counted (shared with CIDEr-D).

    Returns:
        ``(corpus, per_image)``: ``corpus[n - 1]`` is corpus BLEU-n; ``per_image[i][n - 1]`` is BLEU-n of
        image ``i`` alone (COCO's second return value, transposed to image-major order).
    """
    if max_n < 1:
        raise ValueError(f"max_n must be at least 1, got {max_n}")
    check_corpus(hypotheses, references)
    if tables is None or tables.table.max_n < max_n:
        tables = corpus_tables(hypotheses, references, max_n)
    per_image_stats = corpus_stats(tables)
    if tables.table.max_n > max_n:
        per_image_stats = [
            BleuStats(s.hyp_len, s.ref_len, s.matches[:max_n], s.totals[:max_n]) for s in per_image_stats
        ]
    total = BleuStats(
        hyp_len=sum(s.hyp_len for s in per_image_stats),
        ref_len=sum(s.ref_len for s in per_image_stats),
        matches=tuple(map(sum, zip(*(s.matches for s in per_image_stats), strict=True))),
        totals=tuple(map(sum, zip(*(s.totals for s in per_image_stats), strict=True))),
    )
    return bleu_from_stats(total), [bleu_from_stats(stats) for stats in per_image_stats]


def corpus_bleu(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
) -> list[float]:
    """Corpus BLEU-1..``max_n`` (COCO definition; see the module docstring).

    Args:
        hypotheses: one token list per image.
        references: per image, one token list per reference caption (at least one).
        max_n: highest n-gram order.
    """
    return bleu_scores(hypotheses, references, max_n)[0]
