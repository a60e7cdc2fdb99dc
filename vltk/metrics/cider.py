"""CIDEr-D as the COCO caption toolkit computes it (Vedantam, Zitnick and Parikh 2015, CIDEr:
Consensus-based Image Description Evaluation).

The numbers equal ``pycocoevalcap.cider.Cider().compute_score`` (to float rounding); the field reports
this CIDEr-D variant under the name "CIDEr". For every image ``i`` with hypothesis ``h`` and references
``r_1..r_m``, and every n-gram order ``n = 1..4``:

* **TF-IDF vectors**: an n-gram ``g`` of a sentence weighs ``tf(g) * (log(N) - log(max(1, df(g))))``,
  where ``N`` is the number of images in the evaluated corpus and ``df(g)`` the number of images whose
  references contain ``g``. Document frequencies come from the references of the corpus being scored,
  so the same caption can score differently in another corpus.
* **clipped cosine**: ``sum_g min(h_g, r_g) * r_g / (|h| |r|)`` (``|.|`` are the unclipped norms; the
  ratio is 0 when either norm is 0). Clipping is what makes CIDEr-D robust to repeated words.
* **Gaussian length penalty** ``exp(-delta^2 / (2 sigma^2))`` with ``sigma = 6`` and ``delta`` the
  difference in words. (COCO's code counts a sentence's *bigrams*, ``max(len - 1, 0)``; the two
  differ only for an empty sentence, whose score is 0 whatever the penalty.)
* the image score is ``10 * mean_n mean_j sim_n(h, r_j)``; the corpus score is the mean over images.

Corner cases, identical to COCO: a corpus of one image has ``log(N) = 0``, so every weight is 0 and
CIDEr-D is 0 whatever the captions; an empty hypothesis scores 0; n-grams that occur in no reference
get the largest weight ``log(N)`` in the hypothesis norm (they lower the score) but never match.

:func:`cider_d_scores` computes every image at once over numpy n-gram tables
(:mod:`vltk.metrics.ngram_table`); :func:`reference_cider_d` is the same definition written image by
image with dictionaries, kept as the readable version the fast one is tested against.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from vltk.metrics.bleu import NGram, check_corpus, ngram_counts
from vltk.metrics.ngram_table import CorpusTables, corpus_tables, hypothesis_lookup

SIGMA = 6.0


def _counts_by_order(tokens: Sequence[str], max_n: int) -> list[Counter[NGram]]:
    return [ngram_counts(tokens, n) for n in range(1, max_n + 1)]


def document_frequencies(reference_counts: Sequence[Sequence[Sequence[Counter[NGram]]]]) -> Counter[NGram]:
    """Number of images whose references contain each n-gram (any order).

    Args:
        reference_counts: per image, per reference, per order, the n-gram counts.
    """
    frequencies: Counter[NGram] = Counter()
    for refs in reference_counts:
        frequencies.update({g for ref in refs for counts in ref for g in counts})
    return frequencies


class _Vectorizer:
    """Turns n-gram counts into CIDEr TF-IDF vectors, caching the IDF of every n-gram seen."""

    def __init__(self, frequencies: Counter[NGram], num_images: int) -> None:
        self.frequencies = frequencies
        self.log_num_images = math.log(float(num_images))
        self._idf: dict[NGram, float] = {}

    def idf(self, ngram: NGram) -> float:
        value = self._idf.get(ngram)
        if value is None:
            value = self.log_num_images - math.log(max(1.0, float(self.frequencies.get(ngram, 0))))
            self._idf[ngram] = value
        return value

    def vectors(self, counts: list[Counter[NGram]]) -> tuple[list[dict[NGram, float]], list[float]]:
        """Per order, the TF-IDF weights and their Euclidean norm."""
        weights = []
        norms = []
        for order_counts in counts:
            vector = {g: float(tf) * self.idf(g) for g, tf in order_counts.items()}
            weights.append(vector)
            norms.append(math.sqrt(sum(w * w for w in vector.values())))
        return weights, norms


def _similarity(
    hyp: tuple[list[dict[NGram, float]], list[float]],
    ref: tuple[list[dict[NGram, float]], list[float]],
    length_penalty: float,
) -> list[float]:
    """Per order, the clipped cosine similarity times the length penalty."""
    hyp_weights, hyp_norms = hyp
    ref_weights, ref_norms = ref
    values = []
    for hyp_vec, ref_vec, hyp_norm, ref_norm in zip(
        hyp_weights, ref_weights, hyp_norms, ref_norms, strict=True
    ):
        value = 0.0
        for g, weight in hyp_vec.items():
            ref_weight = ref_vec.get(g)
            if ref_weight is not None:
                value += min(weight, ref_weight) * ref_weight  # clip repeated hypothesis n-grams
        if hyp_norm != 0.0 and ref_norm != 0.0:
            value /= hyp_norm * ref_norm
        values.append(value * length_penalty)
    return values


def _cider_from_tables(tables: CorpusTables, sigma: float) -> list[float]:
    """Per-image CIDEr-D of a counted corpus, all images at once (the loops of :func:`reference_cider_d`
    as numpy joins and sums)."""
    table, num_images, max_n = tables.table, tables.num_images, tables.table.max_n
    num_sentences = table.num_sentences
    is_ref = table.sentence >= num_images
    ref_sentence = table.sentence[is_ref] - num_images  # [Mr] 0..R-1
    ref_image = tables.ref_image[ref_sentence]  # [Mr]
    ref_gram = table.gram[is_ref]
    # Document frequency: number of images whose references contain the n-gram.
    image_grams = np.sort(ref_image * table.num_grams + ref_gram)  # (image, n-gram) pairs, repeated
    if len(image_grams):
        image_grams = image_grams[np.concatenate(([True], image_grams[1:] != image_grams[:-1]))]  # distinct
    # (a sort, not np.unique: numpy 2's hash-based unique is ten times slower on these int64 keys)
    frequency = np.bincount(image_grams % table.num_grams, minlength=table.num_grams).astype(np.float64)
    idf = np.log(float(num_images)) - np.log(np.maximum(1.0, frequency))  # [G]
    weights = table.count * idf[table.gram]  # [M] TF-IDF of every (sentence, n-gram)
    norms = np.sqrt(
        np.bincount(
            table.sentence * max_n + table.order - 1,
            weights=weights * weights,
            minlength=num_sentences * max_n,
        )
    ).reshape(num_sentences, max_n)  # [S, n]
    # Clipped cosine numerators: for each reference n-gram, the hypothesis weight of the same n-gram.
    hyp_counts, found = hypothesis_lookup(tables, ref_image, ref_gram)
    ref_weights = weights[is_ref]
    hyp_weights = hyp_counts * idf[ref_gram]
    products = np.where(found, np.minimum(hyp_weights, ref_weights) * ref_weights, 0.0)
    num_refs = num_sentences - num_images
    values = np.bincount(
        ref_sentence * max_n + table.order[is_ref] - 1, weights=products, minlength=num_refs * max_n
    ).reshape(num_refs, max_n)  # [R, n]
    hyp_norms, ref_norms = norms[tables.ref_image], norms[num_images:]  # [R, n] each
    both = (hyp_norms != 0.0) & (ref_norms != 0.0)
    values = np.where(both, values / np.where(both, hyp_norms * ref_norms, 1.0), values)
    bigrams = np.maximum(table.lengths - 1, 0).astype(np.float64)  # COCO's length: the bigram count
    delta = bigrams[tables.ref_image] - bigrams[num_images:]  # [R]
    values = values * (np.e ** (-(delta**2) / (2 * sigma**2)))[:, None]
    summed = np.bincount(tables.ref_image, weights=values.sum(axis=1), minlength=num_images)  # [I]
    return (10.0 * summed / max_n / tables.refs_per_image).tolist()


def cider_d_scores(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
    sigma: float = SIGMA,
    *,
    tables: CorpusTables | None = None,
) -> tuple[float, list[float]]:
    """Corpus CIDEr-D and the per-image scores (COCO definition; see the module docstring).

    Args:
        hypotheses: one token list per image; the corpus is exactly these images.
        references: per image, one token list per reference caption (at least one). Document
            frequencies are computed from these references.
        max_n: highest n-gram order (COCO's scorer only works with 4).
        sigma: width of the Gaussian length penalty.
        tables: the corpus's n-gram tables when already counted (shared with BLEU); must use ``max_n``.

    Returns:
        ``(corpus, per_image)`` where ``corpus`` is the mean of ``per_image``.
    """
    if max_n < 1:
        raise ValueError(f"max_n must be at least 1, got {max_n}")
    check_corpus(hypotheses, references)
    if tables is None or tables.table.max_n != max_n:
        tables = corpus_tables(hypotheses, references, max_n)
    per_image = _cider_from_tables(tables, sigma)
    return sum(per_image) / len(per_image), per_image


def reference_cider_d(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
    sigma: float = SIGMA,
) -> tuple[float, list[float]]:
    """CIDEr-D image by image with dictionaries: the readable definition that :func:`cider_d_scores`
    vectorises (same arguments and results; kept to test the fast path against)."""
    check_corpus(hypotheses, references)
    reference_counts = [[_counts_by_order(ref, max_n) for ref in refs] for refs in references]
    vectorizer = _Vectorizer(document_frequencies(reference_counts), len(hypotheses))
    two_sigma2 = 2 * sigma**2
    per_image = []
    for hyp_tokens, ref_tokens, ref_counts in zip(hypotheses, references, reference_counts, strict=True):
        hyp = vectorizer.vectors(_counts_by_order(hyp_tokens, max_n))
        summed = [0.0] * max_n  # per order, sum over references
        for tokens, counts in zip(ref_tokens, ref_counts, strict=True):
            delta = float(len(hyp_tokens) - len(tokens))
            penalty = math.exp(-(delta**2) / two_sigma2)
            for n, value in enumerate(_similarity(hyp, vectorizer.vectors(counts), penalty)):
                summed[n] += value
        per_image.append(10.0 * (sum(summed) / max_n) / len(ref_tokens))
    return sum(per_image) / len(per_image), per_image


def corpus_cider_d(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
    sigma: float = SIGMA,
) -> float:
    """Corpus CIDEr-D (COCO's "CIDEr"): the mean of the per-image scores.

    Args:
        hypotheses: one token list per image; the corpus is exactly these images.
        references: per image, one token list per reference caption (at least one).
        max_n: highest n-gram order.
        sigma: width of the Gaussian length penalty.
    """
    return cider_d_scores(hypotheses, references, max_n, sigma)[0]
