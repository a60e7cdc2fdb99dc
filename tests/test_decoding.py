"""Greedy, sampling and beam search over the step protocol: toy transition tables and a real decoder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from vltk.decoders import DECODERS
from vltk.decoding import beam_search, greedy, sample
from vltk.decoding.beam import repeated_trigram_mask
from vltk.errors import ConfigError
from vltk.registry import build
from vltk.types import ImageFeatures

PAD, BOS, EOS = 0, 1, 2
A, B_, C = 3, 4, 5  # ordinary words of the toy vocabulary
N_TOY = 4  # toy "regions": the toy attention is the one-hot of the previous token modulo N_TOY


@dataclass
class ToyState:
    """A first-order Markov model per image: ``image [rows]`` picks the table; attention encodes the input."""

    image: torch.Tensor
    attention: torch.Tensor | None = None

    def expand(self, k: int) -> ToyState:
        return ToyState(self.image.repeat_interleave(k))

    def select(self, rows: torch.Tensor) -> ToyState:
        attention = self.attention[rows] if self.attention is not None else None
        return ToyState(self.image[rows], attention)


def table_step(tables: torch.Tensor):
    """``tables [images, V, V]`` of log-probabilities: the next word depends on the previous one only."""

    def step(tokens: torch.Tensor, state: ToyState) -> tuple[torch.Tensor, ToyState]:
        logprobs = tables[state.image, tokens]  # [rows, V]
        attention = torch.nn.functional.one_hot(tokens % N_TOY, N_TOY).double()  # [rows, N]
        return logprobs, ToyState(state.image, attention)

    return step


def toy_state(images: int) -> ToyState:
    return ToyState(torch.arange(images))


def table(rows: dict[int, dict[int, float]], vocab: int = 6) -> torch.Tensor:
    """Log-probability table from ``{previous: {next: prob}}``; unspecified rows are uniform."""
    probs = torch.full((vocab, vocab), 1.0 / vocab, dtype=torch.float64)
    for prev, row in rows.items():
        probs[prev] = 0.0
        for nxt, p in row.items():
            probs[prev, nxt] = p
    return probs.log()


def random_tables(images: int, vocab: int = 7, eos_bias: float = 0.0, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(images, vocab, vocab, generator=generator, dtype=torch.float64) * 2  # [I, V, V]
    logits[..., PAD] = -math.inf
    logits[..., BOS] = -math.inf
    logits[..., EOS] += eos_bias
    return logits.log_softmax(-1)


def common(batch_size: int, max_length: int = 8) -> dict:
    return dict(batch_size=batch_size, bos_id=BOS, eos_id=EOS, pad_id=PAD, max_length=max_length)


def sequence_logprob(tables: torch.Tensor, image: int, words: list[int], ended: bool) -> float:
    previous, total = BOS, 0.0
    for word in [*words, EOS] if ended else words:
        total += float(tables[image, previous, word])
        previous = word
    return total


def has_repeated_trigram(words: list[int]) -> bool:
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(trigrams) != len(set(trigrams))


# --- greedy ---


def test_greedy_on_a_table() -> None:
    tables = table({BOS: {A: 0.6, B_: 0.4}, A: {EOS: 0.34, A: 0.33, B_: 0.33}, B_: {EOS: 0.9, A: 0.1}})[None]
    result = greedy(table_step(tables), toy_state(1), **common(1))
    assert result.to_lists() == [[A]]
    assert result.lengths.tolist() == [1]
    assert result.scores.item() == pytest.approx(math.log(0.6 * 0.34))
    assert torch.equal(result.attention[0, 0], torch.nn.functional.one_hot(torch.tensor(BOS), N_TOY).double())


def test_greedy_pads_finished_rows_and_stops_early() -> None:
    tables = random_tables(4, eos_bias=2.5)
    calls = []

    def counting_step(tokens, state):
        calls.append(tokens.clone())
        return table_step(tables)(tokens, state)

    result = greedy(counting_step, toy_state(4), **common(4, max_length=30))
    assert (result.lengths < 29).all() and result.lengths.max() > 0
    assert len(calls) == int(result.lengths.max()) + 1  # stopped once every row had finished
    for row, n in zip(result.tokens, result.lengths.tolist(), strict=True):
        assert (row[n:] == PAD).all() and (row[:n] > EOS).all()
    assert result.tokens.shape[1] == int(result.lengths.max())


# --- beam search on tables ---


def test_beam_one_equals_greedy_on_random_tables() -> None:
    tables = random_tables(5, eos_bias=-1.0)
    greedy_result = greedy(table_step(tables), toy_state(5), **common(5))
    beam = beam_search(table_step(tables), toy_state(5), **common(5), beam_size=1).best()
    assert torch.equal(beam.tokens, greedy_result.tokens)
    assert torch.equal(beam.lengths, greedy_result.lengths)
    assert torch.allclose(beam.scores, greedy_result.scores)
    assert torch.equal(beam.attention, greedy_result.attention)


def test_beam_beats_greedy_on_a_table_built_to_fool_it() -> None:
    tables = table({BOS: {A: 0.6, B_: 0.4}, A: {EOS: 0.34, A: 0.33, B_: 0.33}, B_: {EOS: 0.9, A: 0.1}})[None]
    greedy_result = greedy(table_step(tables), toy_state(1), **common(1))
    beam = beam_search(table_step(tables), toy_state(1), **common(1), beam_size=2)
    assert beam.to_lists() == [[[B_]]]
    assert beam.scores.item() == pytest.approx(math.log(0.4 * 0.9))
    assert beam.scores.item() > greedy_result.scores.item()


def test_never_ending_step_still_finishes_every_image_at_max_length() -> None:
    tables = random_tables(3, eos_bias=-math.inf)
    result = beam_search(table_step(tables), toy_state(3), **common(3, max_length=6), beam_size=4, n_best=3)
    assert result.tokens.shape == (3, 3, 6)
    assert (result.lengths == 6).all()
    assert torch.isfinite(result.scores).all()
    for image, hyps in enumerate(result.to_lists()):
        assert len({tuple(h) for h in hyps}) == 3  # distinct hypotheses
        for words, score in zip(hyps, result.scores[image].tolist(), strict=True):
            assert score == pytest.approx(sequence_logprob(tables, image, words, ended=False))


@pytest.mark.parametrize("length_penalty", [0.0, 0.7])
def test_batched_beam_equals_beam_per_image(length_penalty: float) -> None:
    tables = random_tables(4, eos_bias=0.5, seed=3)
    options = dict(beam_size=3, n_best=2, length_penalty=length_penalty, block_trigrams=True, min_length=1)
    batched = beam_search(table_step(tables), toy_state(4), **common(4), **options)
    for image in range(4):
        alone = beam_search(table_step(tables), ToyState(torch.tensor([image])), **common(1), **options)
        assert alone.to_lists()[0] == batched.to_lists()[image]
        assert torch.allclose(alone.scores[0], batched.scores[image])


def test_finished_images_leave_the_computation() -> None:
    # Image 0 ends at once (its <end> is nearly certain); image 1 never ends: after image 0 is done, only
    # image 1's beams are fed to the step function, and both results equal their one-image searches.
    tables = torch.stack(
        [table({BOS: {EOS: 0.99, 4: 0.01}}), table({BOS: {4: 1.0}, 4: {5: 1.0}, 5: {4: 1.0}})]
    )
    rows_per_step: list[int] = []
    base = table_step(tables)

    def counting_step(tokens, state):
        rows_per_step.append(tokens.shape[0])
        return base(tokens, state)

    batched = beam_search(counting_step, toy_state(2), **common(2, max_length=6), beam_size=3)
    assert rows_per_step[0] == 6 and rows_per_step[-1] == 3 and len(rows_per_step) == 6
    for image in range(2):
        alone = beam_search(base, ToyState(torch.tensor([image])), **common(1, max_length=6), beam_size=3)
        assert alone.to_lists()[0] == batched.to_lists()[image]
        assert torch.allclose(alone.scores[0], batched.scores[image])


def test_scores_are_log_probabilities_with_the_length_penalty() -> None:
    tables = random_tables(3, eos_bias=0.5, seed=4)
    alpha = 0.6
    result = beam_search(
        table_step(tables), toy_state(3), **common(3), beam_size=3, n_best=3, length_penalty=alpha
    )
    for image, hyps in enumerate(result.to_lists()):
        for words, score in zip(hyps, result.scores[image].tolist(), strict=True):
            ended = len(words) < 8
            n_tokens = len(words) + 1 if ended else 8
            expected = sequence_logprob(tables, image, words, ended) / ((5 + n_tokens) / 6) ** alpha
            assert score == pytest.approx(expected)


def test_n_best_is_sorted_and_distinct() -> None:
    tables = random_tables(4, eos_bias=0.0, seed=5)
    result = beam_search(table_step(tables), toy_state(4), **common(4), beam_size=5, n_best=4)
    assert result.scores.shape == (4, 4) and result.tokens.shape[:2] == (4, 4)
    assert (result.scores[:, :-1] >= result.scores[:, 1:]).all()
    for hyps in result.to_lists():
        assert len({tuple(h) for h in hyps}) == 4
    best = result.best()
    assert torch.equal(best.scores, result.scores[:, 0])
    assert best.to_lists() == [hyps[0] for hyps in result.to_lists()]


@pytest.mark.parametrize(("n_best", "length_penalty"), [(1, 0.0), (5, 0.0), (1, 1.0), (5, 1.0)])
def test_beam_search_is_exact_when_the_beam_holds_every_candidate(n_best: int, length_penalty: float) -> None:
    """With two words and max_length 3 there are 15 captions and at most 12 candidates per step, so a beam
    of 12 is exhaustive: early stopping and the length penalty must give the brute-force ranking."""
    tables = random_tables(3, vocab=5, eos_bias=0.5, seed=6)
    result = beam_search(
        table_step(tables),
        toy_state(3),
        **common(3, max_length=3),
        beam_size=12,
        n_best=n_best,
        length_penalty=length_penalty,
    )
    words = [A, B_]
    captions = [([], True)] + [([w], True) for w in words] + [([w, v], True) for w in words for v in words]
    captions += [([w, v, u], False) for w in words for v in words for u in words]
    for image in range(3):
        scored = []
        for caption, ended in captions:
            n_tokens = len(caption) + 1 if ended else 3
            score = sequence_logprob(tables, image, caption, ended) / ((5 + n_tokens) / 6) ** length_penalty
            scored.append((score, caption))
        scored.sort(reverse=True)
        assert result.scores[image].tolist() == pytest.approx([score for score, _ in scored[:n_best]])
        assert result.to_lists()[image] == [caption for _, caption in scored[:n_best]]


def test_an_early_finished_hypothesis_does_not_end_the_search_too_soon() -> None:
    # "<end>" (0.3) finishes at the first step, but the live "A" (0.6) still beats it with "A <end>" (0.54).
    tables = table({BOS: {A: 0.6, EOS: 0.3, B_: 0.1}, A: {EOS: 0.9, A: 0.1}, B_: {EOS: 0.5, A: 0.5}})[None]
    result = beam_search(table_step(tables), toy_state(1), **common(1), beam_size=2)
    assert result.to_lists() == [[[A]]]
    assert result.scores.item() == pytest.approx(math.log(0.54))


def test_length_penalty_keeps_searching_for_a_longer_caption() -> None:
    # "<end>" (0.35) finishes first and its log-prob beats every live sum after "A B" (0.325), but with
    # alpha = 1 "A B <end>" (0.32175 over lp(3) = 8/6) ranks higher, so the search must not stop early.
    tables = table({BOS: {A: 0.65, EOS: 0.35}, A: {B_: 0.5, C: 0.3, EOS: 0.2}, B_: {EOS: 0.99, A: 0.01}})[
        None
    ]
    plain = beam_search(table_step(tables), toy_state(1), **common(1), beam_size=2)
    assert plain.to_lists() == [[[]]]
    result = beam_search(table_step(tables), toy_state(1), **common(1), beam_size=2, length_penalty=1.0)
    assert result.to_lists() == [[[A, B_]]]
    assert result.scores.item() == pytest.approx(math.log(0.65 * 0.5 * 0.99) / (8 / 6))


def test_min_length_is_respected() -> None:
    tables = random_tables(3, eos_bias=3.0, seed=7)  # <end> is very likely everywhere
    short = beam_search(table_step(tables), toy_state(3), **common(3), beam_size=3, n_best=3)
    assert (short.lengths < 3).any()
    result = beam_search(table_step(tables), toy_state(3), **common(3), beam_size=3, n_best=3, min_length=3)
    assert (result.lengths >= 3).all()


def test_trigram_blocking() -> None:
    # A -> B -> A -> B ... is by far the most likely path, so without blocking captions repeat "A B A".
    loop = table(
        {
            BOS: {A: 0.9, C: 0.1},
            A: {B_: 0.8, C: 0.1, EOS: 0.1},
            B_: {A: 0.8, C: 0.1, EOS: 0.1},
            C: {A: 0.3, B_: 0.3, C: 0.3, EOS: 0.1},
        }
    )[None]
    options = dict(beam_size=3, n_best=3, min_length=6)
    free = beam_search(table_step(loop), toy_state(1), **common(1), **options)
    assert any(has_repeated_trigram(h) for h in free.to_lists()[0])
    blocked = beam_search(table_step(loop), toy_state(1), **common(1), **options, block_trigrams=True)
    assert not any(has_repeated_trigram(h) for h in blocked.to_lists()[0])
    assert (blocked.lengths >= 6).all()


def test_repeated_trigram_mask() -> None:
    words = torch.tensor([[[3, 4, 5, 3, 4]]])  # the next word 5 would repeat (3, 4, 5)
    banned = repeated_trigram_mask(words, 7)
    assert banned[0, 0].nonzero().flatten().tolist() == [5]
    assert repeated_trigram_mask(words[..., :2], 7) is None


def test_attention_traces_follow_the_back_pointers() -> None:
    tables = random_tables(3, eos_bias=0.0, seed=8)
    result = beam_search(table_step(tables), toy_state(3), **common(3), beam_size=4, n_best=4)
    assert result.attention is not None
    for image in range(3):
        for k in range(4):
            words = result.tokens[image, k, : result.lengths[image, k]].tolist()
            previous = (
                torch.tensor([BOS, *words[:-1]]) % N_TOY if words else torch.tensor([], dtype=torch.long)
            )
            expected = torch.nn.functional.one_hot(previous, N_TOY).double()
            assert torch.equal(result.attention[image, k, : len(words)], expected)
            assert (result.attention[image, k, len(words) :] == 0).all()


def test_invalid_options_are_config_errors() -> None:
    step, state = table_step(random_tables(1)), toy_state(1)
    with pytest.raises(ConfigError, match="n_best"):
        beam_search(step, state, **common(1), beam_size=2, n_best=3)
    with pytest.raises(ConfigError, match="beam_size"):
        beam_search(step, state, **common(1), beam_size=0)
    with pytest.raises(ConfigError, match="temperature"):
        sample(step, state, **common(1), temperature=0.0)
    with pytest.raises(ConfigError, match="max_length"):
        greedy(step, state, **common(1, max_length=0))


# --- sampling ---


def test_sampling_top_k_one_equals_greedy() -> None:
    tables = random_tables(6, eos_bias=0.0, seed=9)
    expected = greedy(table_step(tables), toy_state(6), **common(6))
    got = sample(table_step(tables), toy_state(6), **common(6), top_k=1, temperature=1.7)
    assert torch.equal(got.tokens, expected.tokens) and torch.allclose(got.scores, expected.scores)


def test_sampling_is_reproducible_with_a_generator() -> None:
    tables = random_tables(16, eos_bias=-1.0, seed=10)
    runs = [
        sample(table_step(tables), toy_state(16), **common(16), generator=torch.Generator().manual_seed(s))
        for s in (123, 123, 124)
    ]
    assert torch.equal(runs[0].tokens, runs[1].tokens) and torch.equal(runs[0].scores, runs[1].scores)
    assert not torch.equal(runs[0].tokens, runs[2].tokens)


def test_temperature_changes_the_distribution() -> None:
    first = table({BOS: {A: 0.5, B_: 0.3, C: 0.2}})
    tables = first.expand(4000, -1, -1)
    frequency = {}
    for temperature in (0.5, 1.0, 2.0):
        result = sample(
            table_step(tables),
            toy_state(4000),
            **common(4000, max_length=1),
            temperature=temperature,
            generator=torch.Generator().manual_seed(0),
        )
        frequency[temperature] = (result.tokens[:, 0] == A).double().mean().item()
    assert frequency[1.0] == pytest.approx(0.5, abs=0.04)
    assert frequency[0.5] == pytest.approx(0.25 / 0.38, abs=0.04)  # p ** 2, renormalised
    assert frequency[2.0] == pytest.approx(0.707 / (0.707 + 0.548 + 0.447), abs=0.04)  # p ** 0.5
    assert frequency[0.5] > frequency[1.0] + 0.08 and frequency[1.0] > frequency[2.0] + 0.04


def test_sampled_scores_are_the_models_log_probabilities() -> None:
    tables = random_tables(8, eos_bias=0.0, seed=11)
    result = sample(
        table_step(tables),
        toy_state(8),
        **common(8),
        temperature=0.8,
        generator=torch.Generator().manual_seed(1),
    )
    for image, words in enumerate(result.to_lists()):
        ended = len(words) < 8
        assert result.scores[image].item() == pytest.approx(sequence_logprob(tables, image, words, ended))


# --- a real decoder ---


@pytest.fixture(scope="module")
def real_decoder() -> tuple[torch.nn.Module, ImageFeatures]:
    torch.manual_seed(0)
    decoder = build(
        DECODERS,
        {
            "name": "show_attend_tell",
            "embed_dim": 16,
            "hidden_dim": 24,
            "attention": {"name": "additive", "dim": 12},
        },
        path="model.decoder",
        vocab_size=20,
        feature_dim=10,
    ).eval()
    grid = torch.randn(4, 6, 10)  # [B, N, D]
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[2, 3:] = False
    return decoder, ImageFeatures(grid=grid, pooled=grid.mean(1), mask=mask)


def image(features: ImageFeatures, index: int) -> ImageFeatures:
    return ImageFeatures(
        features.grid[index : index + 1], features.pooled[index : index + 1], features.mask[index : index + 1]
    )


@torch.no_grad()
def test_real_decoder_beam_one_equals_greedy(real_decoder) -> None:
    decoder, features = real_decoder
    expected = greedy(decoder.step, decoder.init_state(features), **common(4, max_length=12))
    got = beam_search(decoder.step, decoder.init_state(features), **common(4, max_length=12), beam_size=1)
    assert torch.equal(got.best().tokens, expected.tokens)
    assert torch.allclose(got.best().scores, expected.scores, atol=1e-5)
    assert torch.allclose(got.best().attention, expected.attention, atol=1e-6)
    assert expected.attention.shape == (4, expected.tokens.shape[1], 6)


@torch.no_grad()
def test_real_decoder_batched_beam_equals_per_image(real_decoder) -> None:
    decoder, features = real_decoder
    options = dict(beam_size=3, n_best=2, length_penalty=0.5, **common(4, max_length=10))
    batched = beam_search(decoder.step, decoder.init_state(features), **options)
    assert batched.attention is not None and batched.attention.shape[:3] == batched.tokens.shape
    assert (batched.attention[2, :, :, 3:] == 0).all()  # padded regions never attended
    for index in range(4):
        options["batch_size"] = 1
        alone = beam_search(decoder.step, decoder.init_state(image(features, index)), **options)
        assert alone.to_lists()[0] == batched.to_lists()[index]
        assert torch.allclose(alone.scores[0], batched.scores[index], atol=1e-5)


@torch.no_grad()
def test_real_decoder_sampling(real_decoder) -> None:
    decoder, features = real_decoder
    expected = greedy(decoder.step, decoder.init_state(features), **common(4))
    top1 = sample(decoder.step, decoder.init_state(features), **common(4), top_k=1)
    assert torch.equal(top1.tokens, expected.tokens)
    draws = [
        sample(
            decoder.step,
            decoder.init_state(features),
            **common(4),
            generator=torch.Generator().manual_seed(7),
        )
        for _ in range(2)
    ]
    assert torch.equal(draws[0].tokens, draws[1].tokens)


def test_sampling_keeps_gradients_for_self_critical_training(real_decoder) -> None:
    decoder, features = real_decoder
    result = sample(
        decoder.step,
        decoder.init_state(features),
        **common(4, max_length=5),
        generator=torch.Generator().manual_seed(3),
    )
    (-result.scores.sum()).backward()
    assert decoder.output.weight.grad is not None and decoder.output.weight.grad.abs().sum() > 0
    decoder.zero_grad()
