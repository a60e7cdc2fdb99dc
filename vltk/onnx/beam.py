"""Batched beam search in numpy over a numpy step function (an ONNX Runtime decoder step, see
:class:`vltk.onnx.runtime.OnnxStep`): the algorithm of :func:`vltk.decoding.beam.beam_search`, restated
step for step without torch, so that an exported captioner decodes the same captions as vltk does.

The numbered steps are those of :mod:`vltk.decoding.beam`: the state is expanded to ``B * K`` rows (``K``
beams per image, rows of an image consecutive) and each image keeps ``K`` live hypotheses and a pool of
its ``n_best`` finished ones:

1. the live sums plus the step's log-probabilities give ``K * V`` candidates per image; the best ``2K`` are
   taken (at most ``K`` of them end in ``<end>``, so at least ``K`` continue);
2. a candidate ending in ``<end>`` that ranks among the first ``K`` is finished: it enters the pool;
3. the best ``K`` candidates not ending in ``<end>`` become the live beams; the state follows their
   back-pointers;
4. an image is done when its pool is full and no live beam can still beat the pool's worst entry; images
   that are done leave the state; at ``max_length`` every live beam is finalised.

Ranking uses the GNMT length penalty (Wu et al. 2016, eq. 14): ``sum of log-probs / ((5 + n) / 6) **
alpha``. Sums are kept in the log-probabilities' dtype (float32), as in vltk. The one difference in kind:
``torch.topk`` does not specify the order of exactly equal candidates and this search takes the lower
index first (a stable sort); equal sums other than ``-inf`` (impossible continuations) are vanishingly
rare with real log-probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vltk.errors import ConfigError

NEG_INF = float("-inf")

State = dict[str, np.ndarray]
NumpyStep = Callable[[np.ndarray, State], tuple[np.ndarray, State]]


@dataclass
class NumpyBeamResult:
    """The ``n_best`` finished hypotheses per image, best first (the fields of
    :class:`vltk.decoding.BeamResult`, as numpy arrays).

    Attributes:
        tokens: ``[B, n_best, L]`` int64 words without ``<start>``/``<end>``, padded with ``pad_id``.
        lengths: ``[B, n_best]`` int64.
        scores: ``[B, n_best]`` ranking scores, descending along ``n_best``.
        attention: ``[B, n_best, L, N]`` the attention that produced each word, or ``None``.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    scores: np.ndarray
    attention: np.ndarray | None = None

    def to_lists(self) -> list[list[list[int]]]:
        """Per image, its ``n_best`` captions as lists of token ids, padding removed."""
        return [
            [row[:n].tolist() for row, n in zip(hyps, lens.tolist(), strict=True)]
            for hyps, lens in zip(self.tokens, self.lengths, strict=True)
        ]

    def best(self) -> list[list[int]]:
        """The top caption of every image as a list of token ids."""
        return [hyps[0] for hyps in self.to_lists()]


def length_penalty_factor(n_tokens: int, alpha: float) -> float:
    """GNMT's ``lp(n) = ((5 + n) / 6) ** alpha`` (:func:`vltk.decoding.length_penalty_factor`, restated
    without torch)."""
    return ((5.0 + n_tokens) / 6.0) ** alpha


def expand(state: State, k: int) -> State:
    """Every row repeated ``k`` times consecutively: ``B`` -> ``B * k`` rows."""
    return {name: np.repeat(value, k, axis=0) for name, value in state.items()}  # [B * k, ...]


def select(state: State, rows: np.ndarray) -> State:
    """Row ``i`` of the result is row ``rows[i]`` of ``state``."""
    return {name: value[rows] for name, value in state.items()}  # [R', ...]


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest of each row, largest first (ties: lower index first)."""
    return np.argsort(-values, axis=1, kind="stable")[:, :k]  # [A, k]


def gather_beams(values: np.ndarray, beams: np.ndarray) -> np.ndarray:
    """``values[a, beams[a, j]]`` for ``values [A, K, ...]`` and ``beams [A, J]`` -> ``[A, J, ...]``."""
    return values[np.arange(values.shape[0])[:, None], beams]  # [A, J, ...]


def repeated_trigram_mask(words: np.ndarray, vocab_size: int) -> np.ndarray | None:
    """``[A, K, V]`` bool: the next words that would repeat a trigram of ``words [A, K, t]``; ``None``
    before the first full trigram (:func:`vltk.decoding.repeated_trigram_mask`)."""
    t = words.shape[-1]
    if t < 3:
        return None
    first, second, third = words[..., : t - 2], words[..., 1 : t - 1], words[..., 2:]  # [A, K, t-2] each
    matches = (first == words[..., t - 2 : t - 1]) & (second == words[..., t - 1 :])  # [A, K, t-2]
    hits = (third[..., None] == np.arange(vocab_size)) & matches[..., None]  # [A, K, t-2, V]
    return hits.any(axis=-2)  # [A, K, V]


def check_options(
    beam_size: int, max_length: int, min_length: int, length_penalty: float, n_best: int
) -> None:
    """The option checks of :func:`vltk.decoding.beam_search`, with its wording: restated, because
    ``vltk.onnx`` imports without torch (``tests/test_onnx_export.py`` checks both give the same errors)."""
    for name, value in (("beam_size", beam_size), ("max_length", max_length), ("n_best", n_best)):
        if value < 1:
            raise ConfigError(f"decoding option {name} must be >= 1, got {value}")
    if n_best > beam_size:
        raise ConfigError(f"decoding option n_best ({n_best}) cannot exceed beam_size ({beam_size})")
    if length_penalty < 0:
        raise ConfigError(f"decoding option length_penalty must be >= 0, got {length_penalty}")
    if min_length < 0:
        raise ConfigError(f"decoding option min_length must be >= 0, got {min_length}")


def beam_search(
    step: NumpyStep,
    state: State,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    beam_size: int,
    max_length: int,
    min_length: int = 0,
    length_penalty: float = 0.0,
    n_best: int = 1,
    block_trigrams: bool = False,
) -> NumpyBeamResult:
    """Batched beam search (the module docstring); the options are those of
    :func:`vltk.decoding.beam_search`.

    Args:
        step: ``step(tokens [R], state) -> (logprobs [R, V], state)``; the state may hold
            ``attention [R, N]`` after a step (then attention traces are returned).
        state: arrays with ``batch_size`` rows (the encoder graph's outputs).
    """
    check_options(beam_size, max_length, min_length, length_penalty, n_best)
    B, K, L = batch_size, beam_size, max_length
    best_possible_lp = length_penalty_factor(L, length_penalty)
    state = expand(state, K)
    tokens = np.full(B * K, bos_id, dtype=np.int64)  # [A*K]
    live_words = np.full((B, K, L), pad_id, dtype=np.int64)  # [B, K, L]
    pool_words = np.full((B, n_best, L), pad_id, dtype=np.int64)  # [B, n_best, L]
    pool_lengths = np.zeros((B, n_best), dtype=np.int64)  # [B, n_best]
    live_attention = pool_attention = None  # [B, K, L, N], [B, n_best, L, N]
    live_sums = pool_scores = np.empty(0)
    done = np.zeros(B, dtype=bool)  # [B]
    active = np.arange(B)  # [A]: the images still searching
    finished_all = False

    for t in range(L):
        logprobs, state = step(tokens, state)  # [A*K, V]
        A, V = active.size, logprobs.shape[-1]
        logprobs = logprobs.reshape(A, K, V)  # [A, K, V]
        attention = state.get("attention")  # [A*K, N] or None
        if t == 0:  # only the first copy of each image starts live
            live_sums = np.zeros((B, K), dtype=logprobs.dtype)  # [B, K]
            live_sums[:, 1:] = NEG_INF
            pool_scores = np.full((B, n_best), NEG_INF, dtype=logprobs.dtype)  # [B, n_best]
            if attention is not None:
                live_attention = np.zeros((B, K, L, attention.shape[-1]), dtype=attention.dtype)
                pool_attention = np.zeros((B, n_best, L, attention.shape[-1]), dtype=attention.dtype)
        words_so_far = live_words[active]  # [A, K, L]
        if t < min_length:
            logprobs = logprobs.copy()
            logprobs[..., eos_id] = NEG_INF  # [A, K, V]
        if block_trigrams:
            banned = repeated_trigram_mask(words_so_far[..., :t], V)  # [A, K, V]
            if banned is not None:
                logprobs = np.where(banned, np.asarray(NEG_INF, logprobs.dtype), logprobs)  # [A, K, V]

        # 1. the best 2K of the K*V continuations.
        candidates = (live_sums[active][..., None] + logprobs).reshape(A, K * V)  # [A, K*V]
        C = min(2 * K, K * V)
        top_index = top_indices(candidates, C)  # [A, C]
        top_sums = np.take_along_axis(candidates, top_index, axis=1)  # [A, C]
        parents, words = top_index // V, top_index % V  # [A, C], [A, C]
        is_eos = words == eos_id  # [A, C]

        # 2. finish the <end> candidates ranked among the first K.
        finishing = is_eos[:, :K] & (top_sums[:, :K] > NEG_INF)  # [A, K]
        finish_scores = top_sums[:, :K] / length_penalty_factor(t + 1, length_penalty)  # [A, K]
        finish_scores = np.where(finishing, finish_scores, np.asarray(NEG_INF, finish_scores.dtype))
        merged = np.concatenate([pool_scores[active], finish_scores], axis=1)  # [A, n_best + K]
        keep = top_indices(merged, n_best)  # [A, n_best]
        pool_scores[active] = np.take_along_axis(merged, keep, axis=1)
        new_words = gather_beams(words_so_far, parents[:, :K])  # [A, K, L]
        pool_words[active] = gather_beams(np.concatenate([pool_words[active], new_words], axis=1), keep)
        new_lengths = np.full((A, K), t, dtype=np.int64)  # [A, K]
        merged_lengths = np.concatenate([pool_lengths[active], new_lengths], axis=1)  # [A, n_best + K]
        pool_lengths[active] = np.take_along_axis(merged_lengths, keep, axis=1)
        if live_attention is not None and pool_attention is not None:
            new_attention = gather_beams(live_attention[active], parents[:, :K])  # [A, K, L, N]
            merged_attention = np.concatenate([pool_attention[active], new_attention], axis=1)
            pool_attention[active] = gather_beams(merged_attention, keep)  # [A, n_best, L, N]

        # 3. the best K candidates that do not end in <end> stay live (stable order by rank).
        rank = np.arange(C)[None, :] + is_eos.astype(np.int64) * C  # [A, C]
        chosen = np.argsort(rank, axis=1, kind="stable")[:, :K]  # [A, K]
        parents = np.take_along_axis(parents, chosen, axis=1)  # [A, K]
        words = np.take_along_axis(words, chosen, axis=1)  # [A, K]
        sums = np.take_along_axis(top_sums, chosen, axis=1)  # [A, K]
        live_sums[active] = np.where(words == eos_id, np.asarray(NEG_INF, sums.dtype), sums)
        words_so_far = gather_beams(words_so_far, parents)  # [A, K, L]
        words_so_far[:, :, t] = words
        live_words[active] = words_so_far
        if live_attention is not None and attention is not None:
            traces = gather_beams(live_attention[active], parents)  # [A, K, L, N]
            traces[:, :, t] = gather_beams(attention.reshape(A, K, -1), parents)  # [A, K, N]
            live_attention[active] = traces
        state = select(state, (np.arange(A)[:, None] * K + parents).reshape(-1))  # rows stay in group
        tokens = words.reshape(-1)  # [A*K]

        # 4. an image is done when no live beam can reach its pool's worst score; done images leave.
        if t + 1 < L:
            bound = live_sums[active].max(axis=1) / best_possible_lp  # [A]
            worst = pool_scores[active, -1]  # [A]
            finished = (worst > NEG_INF) & (worst >= bound)  # [A]
            if finished.any():
                done[active[finished]] = True
                if finished.all():
                    finished_all = True
                    break
                still = np.flatnonzero(~finished)  # [A']
                rows = (still[:, None] * K + np.arange(K)).reshape(-1)  # [A'*K]
                state, tokens, active = select(state, rows), tokens[rows], active[still]

    if not finished_all:  # max_length reached: finalise every live beam of the images still searching
        final_scores = np.where(done[:, None], NEG_INF, live_sums / best_possible_lp).astype(live_sums.dtype)
        merged = np.concatenate([pool_scores, final_scores], axis=1)  # [B, n_best + K]
        keep = top_indices(merged, n_best)  # [B, n_best]
        pool_scores = np.take_along_axis(merged, keep, axis=1)  # [B, n_best]
        pool_words = gather_beams(np.concatenate([pool_words, live_words], axis=1), keep)  # [B, n_best, L]
        live_lengths = np.full((B, K), L, dtype=np.int64)  # [B, K]
        pool_lengths = np.take_along_axis(np.concatenate([pool_lengths, live_lengths], axis=1), keep, axis=1)
        if live_attention is not None and pool_attention is not None:
            merged_attention = np.concatenate([pool_attention, live_attention], axis=1)  # [B, n+K, L, N]
            pool_attention = gather_beams(merged_attention, keep)  # [B, n_best, L, N]

    width = int(pool_lengths.max()) if pool_lengths.size else 0
    attention_out = None if pool_attention is None else pool_attention[:, :, :width]  # [B, n, L', N]
    return NumpyBeamResult(pool_words[..., :width], pool_lengths, pool_scores, attention_out)
