"""CIDEr-D as a training reward: sampled captions (token ids) scored against the references of their
training images, with document frequencies fixed to the training corpus.

This is the reward of self-critical sequence training (Rennie et al. 2017, "Self-critical Sequence Training
for Image Captioning", CVPR) as ruotianluo/self-critical.pytorch computes it:

* ``scripts/prepro_ngrams.py`` counts, once, the document frequency of every n-gram (orders 1-4) over the
  training images' references *as token ids with the end token appended* (``tokens + ['<eos>']``, words
  outside the vocabulary as ``UNK``), and the number of training images ``N``;
* ``captioning/utils/rewards.py`` turns each sampled caption into its ids up to and including the end token
  (``array_to_str``: a caption cut at the length limit has none) and scores it with ``CiderD(df=...)``,
  the scorer of vrama91/cider ``pyciderevalcap/ciderD/ciderD_scorer.py``: the clipped cosine of TF-IDF
  vectors, ``idf = log(N) - log(max(1, df))``, a Gaussian length penalty with ``sigma = 6`` on the
  difference in *bigram* counts, the mean over orders, over references, times 10.

The definitions are those of :mod:`vltk.metrics.cider` except that ``df`` and ``N`` come from the training
corpus instead of the scored one. Here the reference side (n-grams, TF-IDF weights, norms, lengths) is
prepared once per run by :class:`CiderDReward`; a call counts the hypotheses' n-grams and joins them with
their images' reference tables in numpy (``np.unique``, ``np.searchsorted``, ``np.bincount``), with no loop
over captions. N-grams are integer keys ``sum_k (t_k + 1) * base^(n - k)`` of their token ids, distinct
across orders because no digit is zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SIGMA = 6.0


@dataclass(frozen=True)
class _Grams:
    """The distinct n-grams of a list of sentences: one row per (sentence, n-gram), sorted by sentence.

    Attributes:
        sentence: ``[M]`` the sentence of each row.
        key: ``[M]`` the n-gram's integer key.
        order: ``[M]`` its order ``n`` (1..max_n).
        count: ``[M]`` its occurrences in the sentence.
        bigrams: ``[S]`` each sentence's length as CIDEr-D's penalty counts it, ``max(len - 1, 0)``.
    """

    sentence: np.ndarray
    key: np.ndarray
    order: np.ndarray
    count: np.ndarray
    bigrams: np.ndarray


def _count_grams(sentences: Sequence[Sequence[int]], base: int, max_n: int) -> _Grams:
    """Every n-gram of order 1..``max_n`` of every sentence, counted per sentence."""
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))  # [S]
    tokens = np.fromiter((t for s in sentences for t in s), dtype=np.int64, count=int(lengths.sum()))  # [T]
    if tokens.size and (tokens.min() < 0 or tokens.max() >= base - 1):
        raise ValueError(f"token ids must lie in [0, {base - 2}], got {tokens.min()}..{tokens.max()}")
    sentence_of = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)  # [T]
    starts = np.cumsum(lengths) - lengths  # [S]
    remaining = lengths[sentence_of] - (np.arange(tokens.size, dtype=np.int64) - starts[sentence_of])  # [T]
    digits = tokens + 1  # [T] no digit is 0, so keys of different orders never collide
    keys = np.zeros(tokens.size, dtype=np.int64)  # [T] key of the n-gram starting at each position
    parts = []
    for n in range(1, max_n + 1):
        positions = np.nonzero(remaining >= n)[0]  # [P] starts of the n-grams of order n
        keys[positions] = keys[positions] * base + digits[positions + n - 1]
        parts.append((sentence_of[positions], keys[positions], n))
    sentence = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    key = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    order = np.concatenate([np.full(len(p[0]), p[2], np.int64) for p in parts]) if parts else key
    # One row per distinct (sentence, key): sort by both, count the runs.
    sort = np.lexsort((key, sentence))
    sentence, key, order = sentence[sort], key[sort], order[sort]
    first = np.ones(len(key), dtype=bool)
    first[1:] = (sentence[1:] != sentence[:-1]) | (key[1:] != key[:-1])
    run_starts = np.nonzero(first)[0]
    count = np.diff(np.append(run_starts, len(key)))
    return _Grams(
        sentence=sentence[run_starts],
        key=key[run_starts],
        order=order[run_starts],
        count=count.astype(np.int64),
        bigrams=np.maximum(lengths - 1, 0).astype(np.float64),
    )


def _norms(grams: _Grams, weights: np.ndarray, num_sentences: int, max_n: int) -> np.ndarray:
    """``[S, n]`` the Euclidean norm of each sentence's TF-IDF vector of each order."""
    squares = np.bincount(
        grams.sentence * max_n + grams.order - 1, weights=weights * weights, minlength=num_sentences * max_n
    )
    return np.sqrt(squares).reshape(num_sentences, max_n)


class CiderDReward:
    """CIDEr-D of captions of training images against their references, the reference side prepared once.

    Args:
        references: per training image id, its reference captions as token ids with the end token last
            (``w1 .. wn <end>``, as ``prepro_ngrams.py`` appends ``<eos>``). Document frequencies and ``N``
            are counted over exactly these images.
        vocab_size: ``V``; token ids lie in ``[0, V)``.
        max_n: the highest n-gram order (4, as in CIDEr-D).
        sigma: the width of the Gaussian length penalty.

    Raises:
        ValueError: an image without references, or a vocabulary too large for int64 n-gram keys.
    """

    def __init__(
        self,
        references: Mapping[int, Sequence[Sequence[int]]],
        *,
        vocab_size: int,
        max_n: int = 4,
        sigma: float = SIGMA,
    ) -> None:
        self.base = vocab_size + 1
        if float(self.base) ** max_n >= 2.0**63:
            raise ValueError(f"a vocabulary of {vocab_size} words is too large for {max_n}-gram int64 keys")
        self.max_n, self.sigma = max_n, sigma
        image_ids = list(references)
        self.row_of = {int(image_id): row for row, image_id in enumerate(image_ids)}
        refs_per_image = np.fromiter((len(references[i]) for i in image_ids), np.int64, len(image_ids))
        if len(refs_per_image) and refs_per_image.min() == 0:
            empty = image_ids[int(np.argmin(refs_per_image))]
            raise ValueError(f"image {empty} has no reference captions")
        sentences = [list(ref) for image_id in image_ids for ref in references[image_id]]
        self.num_images = len(image_ids)
        self.refs_per_image = refs_per_image  # [I]
        self.first_ref = np.cumsum(refs_per_image) - refs_per_image  # [I] first sentence of each image
        grams = _count_grams(sentences, self.base, max_n)
        ref_image = np.repeat(np.arange(self.num_images, dtype=np.int64), refs_per_image)  # [R]
        # Document frequency: the number of images whose references contain the n-gram.
        keys, gram = np.unique(grams.key, return_inverse=True)  # [G] distinct reference n-grams
        pairs = np.unique(ref_image[grams.sentence] * len(keys) + gram)  # distinct (image, n-gram)
        frequency = np.bincount(pairs % max(len(keys), 1), minlength=len(keys)).astype(np.float64)  # [G]
        self.log_num_images = np.log(float(max(self.num_images, 1)))
        self.keys = keys  # [G] sorted
        self.idf = self.log_num_images - np.log(np.maximum(1.0, frequency))  # [G]
        self.ref = grams
        self.ref_weights = grams.count * self.idf[gram]  # [M]
        self.ref_norms = _norms(grams, self.ref_weights, len(sentences), max_n)  # [R, n]
        # Rows of each reference sentence in the (sentence-sorted) gram table.
        bounds = np.searchsorted(grams.sentence, np.arange(len(sentences) + 1))
        self.ref_start, self.ref_stop = bounds[:-1], bounds[1:]  # [R] each

    def __len__(self) -> int:
        return self.num_images

    def rows(self, image_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``[B]`` the reward table's row of each image id; a :class:`KeyError` names an unknown one."""
        try:
            return np.fromiter((self.row_of[int(i)] for i in image_ids), dtype=np.int64, count=len(image_ids))
        except KeyError as error:
            raise KeyError(f"image id {error.args[0]} has no references in the reward's corpus") from None

    def idf_of(self, keys: np.ndarray) -> np.ndarray:
        """The training corpus's IDF of n-gram keys (``log N`` for n-grams it never saw)."""
        position = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        found = self.keys[position] == keys if len(self.keys) else np.zeros(len(keys), dtype=bool)
        return np.where(found, self.idf[position] if len(self.keys) else 0.0, self.log_num_images)

    def __call__(
        self, image_ids: Sequence[int] | np.ndarray, captions: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """``[B]`` CIDEr-D of each caption (token ids, ``<end>`` included when generated) for its image.

        Args:
            image_ids: ``[B]`` the training image of each caption (repeated for several samples of one).
            captions: ``B`` token-id lists.
        """
        if len(image_ids) != len(captions):
            raise ValueError(f"{len(image_ids)} image ids for {len(captions)} captions")
        max_n, images = self.max_n, self.rows(image_ids)  # [B]
        hyp = _count_grams(captions, self.base, max_n)
        hyp_keys, hyp_gram = np.unique(hyp.key, return_inverse=True)  # [Gh]
        hyp_weights = hyp.count * self.idf_of(hyp.key)  # [Mh]
        hyp_norms = _norms(hyp, hyp_weights, len(captions), max_n)  # [B, n]
        hyp_lookup = hyp.sentence * max(len(hyp_keys), 1) + hyp_gram  # [Mh] unique, sorted by sentence
        lookup_order = np.argsort(hyp_lookup, kind="stable")
        hyp_lookup, hyp_sorted_weights = hyp_lookup[lookup_order], hyp_weights[lookup_order]
        # Every (caption, reference of its image) pair, then every n-gram of that reference.
        num_refs = self.refs_per_image[images]  # [B]
        pair_caption = np.repeat(np.arange(len(captions), dtype=np.int64), num_refs)  # [P]
        pair_offset = np.arange(len(pair_caption)) - np.repeat(np.cumsum(num_refs) - num_refs, num_refs)
        pair_ref = self.first_ref[images][pair_caption] + pair_offset  # [P] reference sentence
        sizes = self.ref_stop[pair_ref] - self.ref_start[pair_ref]  # [P]
        entry_pair = np.repeat(np.arange(len(pair_ref), dtype=np.int64), sizes)  # [E]
        entry_offset = np.arange(len(entry_pair)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        entry = self.ref_start[pair_ref][entry_pair] + entry_offset  # [E] rows of the reference table
        ref_key, ref_weight = self.ref.key[entry], self.ref_weights[entry]  # [E] each
        # The caption's weight of the same n-gram (0 when the caption does not contain it).
        position = np.minimum(np.searchsorted(hyp_keys, ref_key), max(len(hyp_keys) - 1, 0))
        in_captions = hyp_keys[position] == ref_key if len(hyp_keys) else np.zeros(len(ref_key), bool)
        wanted = pair_caption[entry_pair] * max(len(hyp_keys), 1) + position  # [E]
        index = np.minimum(np.searchsorted(hyp_lookup, wanted), max(len(hyp_lookup) - 1, 0))
        found = in_captions & (hyp_lookup[index] == wanted) if len(hyp_lookup) else in_captions
        caption_weight = np.where(found, hyp_sorted_weights[index] if len(hyp_lookup) else 0.0, 0.0)
        products = np.where(found, np.minimum(caption_weight, ref_weight) * ref_weight, 0.0)  # [E]
        values = np.bincount(
            entry_pair * max_n + self.ref.order[entry] - 1, weights=products, minlength=len(pair_ref) * max_n
        ).reshape(len(pair_ref), max_n)  # [P, n] clipped dot products
        norms = hyp_norms[pair_caption] * self.ref_norms[pair_ref]  # [P, n]
        values = np.where(norms != 0.0, values / np.where(norms != 0.0, norms, 1.0), values)
        delta = hyp.bigrams[pair_caption] - self.ref.bigrams[pair_ref]  # [P]
        values = values * np.exp(-(delta**2) / (2 * self.sigma**2))[:, None]
        summed = np.bincount(pair_caption, weights=values.sum(axis=1), minlength=len(captions))  # [B]
        return 10.0 * summed / max_n / num_refs
