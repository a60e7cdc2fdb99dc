"""Every n-gram count of a caption corpus as flat numpy arrays, shared by BLEU and CIDEr-D.

COCO's scorers count n-grams with a Python dictionary per sentence and compare them in Python loops. Here
the corpus is counted once, in numpy: tokens become integer ids, an n-gram of order ``n`` becomes the id of
(its first ``n - 1`` tokens, its last token) made dense again with ``np.unique``, and the counts per
sentence come from one sort. BLEU's clipping and CIDEr-D's document frequencies and clipped cosine are then
joins and sums over these arrays (``np.searchsorted``, ``np.bincount``) instead of per-sentence loops, which
makes scoring a 5,000-image split several times faster than ``pycocoevalcap`` with the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NgramTable:
    """The n-gram counts of ``num_sentences`` sentences: one row per distinct (sentence, n-gram).

    Attributes:
        sentence: ``[M]`` index of the sentence of each row.
        order: ``[M]`` the n-gram order ``n`` (1..``max_n``).
        gram: ``[M]`` dense id of the n-gram (ids are unique across orders).
        count: ``[M]`` occurrences of the n-gram in the sentence.
        lengths: ``[S]`` number of tokens of each sentence.
        num_grams: one more than the largest n-gram id.
        max_n: the highest order counted.
    """

    sentence: np.ndarray
    order: np.ndarray
    gram: np.ndarray
    count: np.ndarray
    lengths: np.ndarray
    num_grams: int
    max_n: int

    @property
    def num_sentences(self) -> int:
        return len(self.lengths)


def ngram_table(sentences: Sequence[Sequence[str]], max_n: int = 4) -> NgramTable:
    """Count every n-gram of order 1..``max_n`` of every sentence (lists of tokens).

    Args:
        sentences: token lists; empty lists are allowed (they have no n-grams).
        max_n: highest n-gram order.
    """
    vocabulary: dict[str, int] = {}
    flat = [vocabulary.setdefault(token, len(vocabulary)) for sentence in sentences for token in sentence]
    lengths = np.fromiter((len(sentence) for sentence in sentences), dtype=np.int64, count=len(sentences))
    tokens = np.asarray(flat, dtype=np.int64)  # [T]
    num_sentences, num_tokens = len(sentences), len(flat)
    sentence_of = np.repeat(np.arange(num_sentences, dtype=np.int64), lengths)  # [T]
    starts = np.cumsum(lengths) - lengths  # [S]
    remaining = lengths[sentence_of] - (np.arange(num_tokens, dtype=np.int64) - starts[sentence_of])  # [T]

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []  # (positions, gram ids, order)
    previous = tokens  # dense ids of the (n-1)-grams starting at each position
    offset = 0  # first id of the current order
    base = max(len(vocabulary), 1)
    for n in range(1, max_n + 1):
        positions = np.nonzero(remaining >= n)[0]  # [P] starts of the n-grams of order n
        if n == 1:
            ids = tokens[positions]
            width = base
        else:
            codes = previous[positions] * base + tokens[positions + n - 1]  # (prefix id, last token)
            unique, ids = np.unique(codes, return_inverse=True)
            width = len(unique)
        dense = np.full(num_tokens, -1, dtype=np.int64)
        dense[positions] = ids + offset
        parts.append((positions, ids + offset, n))
        previous = dense
        offset += width
    num_grams = max(offset, 1)

    sentence_parts, order_parts, gram_parts, count_parts = [], [], [], []
    for positions, gram_ids, n in parts:
        keys = sentence_of[positions] * num_grams + gram_ids
        unique_keys, counts = np.unique(keys, return_counts=True)
        sentence_parts.append(unique_keys // num_grams)
        gram_parts.append(unique_keys % num_grams)
        count_parts.append(counts)
        order_parts.append(np.full(len(unique_keys), n, dtype=np.int64))
    return NgramTable(
        sentence=np.concatenate(sentence_parts),
        order=np.concatenate(order_parts),
        gram=np.concatenate(gram_parts),
        count=np.concatenate(count_parts).astype(np.int64),
        lengths=lengths,
        num_grams=num_grams,
        max_n=max_n,
    )


@dataclass(frozen=True)
class CorpusTables:
    """A hypothesis/references corpus laid out for the scorers.

    Sentences ``0..I-1`` of ``table`` are the hypotheses (one per image), the rest the references.

    Attributes:
        table: n-gram counts of hypotheses then references.
        num_images: ``I``.
        ref_image: ``[R]`` image index of each reference sentence (sentence ``I + r``).
        refs_per_image: ``[I]`` number of references of each image.
    """

    table: NgramTable
    num_images: int
    ref_image: np.ndarray
    refs_per_image: np.ndarray


def corpus_tables(
    hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]], max_n: int = 4
) -> CorpusTables:
    """Count the n-grams of a corpus once (for :func:`~vltk.metrics.bleu.bleu_scores` and
    :func:`~vltk.metrics.cider.cider_d_scores`)."""
    refs_per_image = np.fromiter((len(refs) for refs in references), dtype=np.int64, count=len(references))
    sentences = list(hypotheses) + [ref for refs in references for ref in refs]
    return CorpusTables(
        table=ngram_table(sentences, max_n),
        num_images=len(hypotheses),
        ref_image=np.repeat(np.arange(len(references), dtype=np.int64), refs_per_image),
        refs_per_image=refs_per_image,
    )


def hypothesis_lookup(
    tables: CorpusTables, image: np.ndarray, gram: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For (image, n-gram) pairs, the hypothesis count of that n-gram (0 when absent) and a found-mask."""
    table = tables.table
    is_hyp = table.sentence < tables.num_images
    hyp_keys = table.sentence[is_hyp] * table.num_grams + table.gram[is_hyp]  # sorted within each order
    order = np.argsort(hyp_keys, kind="stable")
    hyp_keys, hyp_counts = hyp_keys[order], table.count[is_hyp][order]
    keys = image * table.num_grams + gram
    index = np.searchsorted(hyp_keys, keys)
    index = np.minimum(index, max(len(hyp_keys) - 1, 0))
    found = (hyp_keys[index] == keys) if len(hyp_keys) else np.zeros(len(keys), dtype=bool)
    counts = np.where(found, hyp_counts[index] if len(hyp_keys) else 0, 0)
    return counts, found
