"""Beam search over the step protocol, batched across images.

One call decodes the whole batch: the state is expanded to ``B * K`` rows (``K`` beams per image, rows of an
image consecutive) and every time step is one ``[B * K]`` call of ``step``. Each image keeps ``K`` *live*
hypotheses and a pool of its ``n_best`` best *finished* ones:

1. the live sums plus the step's log-probabilities give ``K * V`` candidates per image; the best ``2K`` are
   taken (at most ``K`` of them end in ``<end>``, so at least ``K`` continue);
2. a candidate ending in ``<end>`` that ranks among the first ``K`` is finished: it enters the image's pool
   (keeping the ``n_best`` best) and is never extended again;
3. the best ``K`` candidates not ending in ``<end>`` become the live beams; the state follows their
   back-pointers with ``state.select(rows)`` where every row stays inside its image's group (the invariant
   :class:`vltk.decoders.state.DecoderState` relies on to skip copying per-image constants);
4. an image is done when its pool is full and no live beam can still beat the pool's worst entry; the loop
   stops when every image is done; at ``max_length`` every live beam is finalised, so every image always gets
   ``n_best`` finished hypotheses.

Ranking uses the GNMT length penalty (Wu et al. 2016, "Google's Neural Machine Translation System", eq. 14):
``score = sum of log-probs / ((5 + n) / 6) ** alpha`` with ``alpha = length_penalty`` and ``n`` the number of
scored tokens (the words plus ``<end>``; ``max_length`` for a caption cut at the limit). ``alpha = 0`` ranks
by the plain sum of log-probabilities, and then ``beam_size=1`` gives exactly greedy decoding.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from vltk.decoding.greedy import check_positive
from vltk.decoding.result import BeamResult, StepFn, infer_device, trim
from vltk.errors import ConfigError

logger = logging.getLogger(__name__)

NEG_INF = float("-inf")


def length_penalty_factor(n_tokens: int, alpha: float) -> float:
    """GNMT's ``lp(n) = ((5 + n) / 6) ** alpha``; a score is the log-prob sum divided by it."""
    return ((5.0 + n_tokens) / 6.0) ** alpha


def repeated_trigram_mask(words: Tensor, vocab_size: int) -> Tensor | None:
    """Which next words would repeat a trigram already in each hypothesis.

    Args:
        words: ``[B, K, t]`` the hypotheses' words so far.
        vocab_size: ``V``.

    Returns:
        ``[B, K, V]`` bool, ``True`` = forbidden; ``None`` when no hypothesis holds a full trigram yet.
    """
    t = words.shape[-1]
    if t < 3:
        return None
    first, second, third = words[..., : t - 2], words[..., 1 : t - 1], words[..., 2:]  # [B, K, t-2] each
    matches = (first == words[..., t - 2 : t - 1]) & (second == words[..., t - 1 :])  # [B, K, t-2]
    shape = (*words.shape[:-1], vocab_size)
    counts = torch.zeros(shape, dtype=torch.float32, device=words.device)  # [B, K, V]
    counts.scatter_add_(-1, third, matches.float())  # [B, K, V]
    return counts > 0  # [B, K, V]


def _gather_beams(values: Tensor, beams: Tensor) -> Tensor:
    """``values[b, beams[b, j]]`` for ``values [B, K, ...]`` and ``beams [B, J]`` -> ``[B, J, ...]``."""
    index = beams.view(*beams.shape, *([1] * (values.dim() - 2)))  # [B, J, 1, ...]
    return values.gather(1, index.expand(*beams.shape, *values.shape[2:]))  # [B, J, ...]


def beam_search(
    step: StepFn,
    state: Any,
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
    device: torch.device | str | None = None,
) -> BeamResult:
    """Batched beam search; returns the ``n_best`` finished hypotheses of every image, best first.

    Args:
        step: ``step(tokens [B*K], state) -> (logprobs [B*K, V], state)``.
        state: the decoder state for ``batch_size`` rows; it must offer ``expand(k)`` and ``select(rows)``
            and may expose ``attention [rows, N]`` (then attention traces are returned).
        batch_size: ``B``, the number of images.
        bos_id: the ``<start>`` token fed at the first step.
        eos_id: the ``<end>`` token; it finishes a hypothesis and is not part of the returned words.
        pad_id: the padding of ``tokens`` after a caption ends.
        beam_size: ``K``, live hypotheses per image.
        max_length: the most words per caption; live hypotheses are finalised there.
        min_length: ``<end>`` is forbidden before this many words.
        length_penalty: GNMT ``alpha >= 0`` (see the module docstring); ``0`` = plain sum of log-probs.
        n_best: finished hypotheses returned per image (``1 <= n_best <= beam_size``).
        block_trigrams: forbid any word that would repeat a trigram already in the hypothesis.
        device: where to create the token tensors; by default the device of the state's first tensor.

    Returns:
        :class:`BeamResult` (``tokens [B, n_best, L]``, ``lengths``, ranking ``scores``, ``attention``).
        Call under ``torch.no_grad()``.
    """
    check_positive("beam_size", beam_size)
    check_positive("max_length", max_length)
    check_positive("n_best", n_best)
    if n_best > beam_size:
        raise ConfigError(f"decoding option n_best ({n_best}) cannot exceed beam_size ({beam_size})")
    if length_penalty < 0:
        raise ConfigError(f"decoding option length_penalty must be >= 0, got {length_penalty}")
    if min_length < 0:
        raise ConfigError(f"decoding option min_length must be >= 0, got {min_length}")
    B, K, L = batch_size, beam_size, max_length
    device = infer_device(state, device)
    best_possible_lp = length_penalty_factor(L, length_penalty)

    state = state.expand(K)
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)  # [A*K]
    live_words = torch.full((B, K, L), pad_id, dtype=torch.long, device=device)  # [B, K, L]
    live_attention: Tensor | None = None  # [B, K, L, N]
    pool_words = torch.full((B, n_best, L), pad_id, dtype=torch.long, device=device)  # [B, n_best, L]
    pool_lengths = torch.zeros(B, n_best, dtype=torch.long, device=device)  # [B, n_best]
    pool_attention: Tensor | None = None  # [B, n_best, L, N]
    done = torch.zeros(B, dtype=torch.bool, device=device)  # [B]
    # The images still searching (A of them): only their K beams are fed to ``step``. A finished image
    # leaves the decoder state, so its beams are never computed again.
    active = torch.arange(B, device=device)  # [A]
    live_sums = pool_scores = torch.empty(0)
    finished_all = False

    for t in range(L):
        logprobs, state = step(tokens, state)  # [A*K, V]
        A, V = active.numel(), logprobs.shape[-1]
        logprobs = logprobs.reshape(A, K, V)  # [A, K, V]
        attention = getattr(state, "attention", None)  # [A*K, N] or None
        if t == 0:
            # Only the first copy of each image starts live, so the first step expands one hypothesis.
            live_sums = torch.zeros(B, K, dtype=logprobs.dtype, device=device)  # [B, K]
            live_sums[:, 1:] = NEG_INF
            pool_scores = torch.full((B, n_best), NEG_INF, dtype=logprobs.dtype, device=device)  # [B, n_best]
            if attention is not None:
                N = attention.shape[-1]
                live_attention = attention.new_zeros(B, K, L, N)  # [B, K, L, N]
                pool_attention = attention.new_zeros(B, n_best, L, N)  # [B, n_best, L, N]
        words_so_far = live_words[active]  # [A, K, L]
        if t < min_length:
            logprobs = logprobs.index_fill(-1, torch.tensor([eos_id], device=device), NEG_INF)  # [A, K, V]
        if block_trigrams:
            banned = repeated_trigram_mask(words_so_far[..., :t], V)  # [A, K, V]
            if banned is not None:
                logprobs = logprobs.masked_fill(banned, NEG_INF)  # [A, K, V]

        # 1. the best 2K of the K*V continuations (a beam contributes at most one <end>).
        sums = live_sums[active]  # [A, K]
        candidates = (sums.unsqueeze(-1) + logprobs).reshape(A, K * V)  # [A, K*V]
        C = min(2 * K, K * V)
        top_sums, top_index = candidates.topk(C, dim=1)  # [A, C], [A, C]
        parents = torch.div(top_index, V, rounding_mode="floor")  # [A, C]
        words = top_index % V  # [A, C]
        is_eos = words == eos_id  # [A, C]

        # 2. finish the <end> candidates ranked among the first K (the history excludes <end>).
        first = slice(0, K)  # C >= K always
        finishing = is_eos[:, first] & (top_sums[:, first] > NEG_INF)  # [A, K]
        finish_scores = top_sums[:, first] / length_penalty_factor(t + 1, length_penalty)  # [A, K]
        finish_scores = finish_scores.masked_fill(~finishing, NEG_INF)  # [A, K]
        merged = torch.cat([pool_scores[active], finish_scores], dim=1)  # [A, n_best + K]
        active_pool_scores, keep = merged.topk(n_best, dim=1)  # [A, n_best], [A, n_best]
        pool_scores[active] = active_pool_scores
        new_words = _gather_beams(words_so_far, parents[:, first])  # [A, K, L]
        merged_words = torch.cat([pool_words[active], new_words], dim=1)  # [A, n_best + K, L]
        pool_words[active] = _gather_beams(merged_words, keep)  # [A, n_best, L]
        new_lengths = torch.full_like(finish_scores, t, dtype=torch.long)  # [A, K]
        pool_lengths[active] = torch.cat([pool_lengths[active], new_lengths], dim=1).gather(1, keep)
        if live_attention is not None and pool_attention is not None:
            new_attention = _gather_beams(live_attention[active], parents[:, first])  # [A, K, L, N]
            merged_attention = torch.cat(
                [pool_attention[active], new_attention], dim=1
            )  # [A, n_best + K, L, N]
            pool_attention[active] = _gather_beams(merged_attention, keep)  # [A, n_best, L, N]

        # 3. the best K candidates that do not end in <end> stay live (stable order by rank).
        rank = torch.arange(C, device=device).unsqueeze(0) + is_eos.long() * C  # [A, C]
        chosen = rank.argsort(dim=1)[:, :K]  # [A, K]
        parents = parents.gather(1, chosen)  # [A, K]
        words = words.gather(1, chosen)  # [A, K]
        live_sums[active] = top_sums.gather(1, chosen).masked_fill(words == eos_id, NEG_INF)  # [A, K]
        words_so_far = _gather_beams(words_so_far, parents)  # [A, K, L]
        words_so_far[:, :, t] = words  # [A, K]
        live_words[active] = words_so_far
        if live_attention is not None and attention is not None:
            traces = _gather_beams(live_attention[active], parents)  # [A, K, L, N]
            traces[:, :, t] = _gather_beams(attention.reshape(A, K, -1), parents)  # [A, K, N]
            live_attention[active] = traces
        offsets = torch.arange(A, device=device).unsqueeze(1) * K  # [A, 1]
        state = state.select((offsets + parents).view(-1))  # rows stay within their image's group
        tokens = words.view(-1)  # [A*K]

        # 4. an image is done when no live beam can reach its pool's worst score (log-probs only decrease,
        # and with alpha >= 0 the most favourable penalty is the one at max_length); done images leave.
        if t + 1 < L:
            bound = live_sums[active].max(dim=1).values / best_possible_lp  # [A]
            worst = pool_scores[active, -1]  # [A]
            finished = (worst > NEG_INF) & (worst >= bound)  # [A]
            if bool(finished.any()):
                done[active[finished]] = True
                if bool(finished.all()):
                    finished_all = True
                    break
                still = (~finished).nonzero().squeeze(1)  # [A']
                rows = (still.unsqueeze(1) * K + torch.arange(K, device=device)).view(-1)  # [A'*K]
                state = state.select(rows)
                tokens = tokens[rows]  # [A'*K]
                active = active[still]  # [A']

    if not finished_all:
        # max_length reached: finalise every live beam of the images still searching.
        final_scores = (live_sums / best_possible_lp).masked_fill(done.unsqueeze(1), NEG_INF)  # [B, K]
        pool_scores, keep = torch.cat([pool_scores, final_scores], dim=1).topk(n_best, dim=1)  # [B, n_best]
        pool_words = _gather_beams(torch.cat([pool_words, live_words], dim=1), keep)  # [B, n_best, L]
        live_lengths = torch.full_like(live_words[..., 0], L)  # [B, K]
        pool_lengths = torch.cat([pool_lengths, live_lengths], dim=1).gather(1, keep)  # [B, n_best]
        if live_attention is not None and pool_attention is not None:
            merged_attention = torch.cat([pool_attention, live_attention], dim=1)  # [B, n_best + K, L, N]
            pool_attention = _gather_beams(merged_attention, keep)  # [B, n_best, L, N]

    out_words, out_attention = trim(pool_words, pool_lengths, pool_attention)  # [B, n, L'], [B, n, L', N]
    return BeamResult(tokens=out_words, lengths=pool_lengths, scores=pool_scores, attention=out_attention)
