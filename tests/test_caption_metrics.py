"""Caption metrics on hand-made cases whose values are derived by hand, the DDP merge, the tokenizer."""

from __future__ import annotations

import logging
import math
import random

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vltk.errors import DataError
from vltk.metrics import (
    METRIC_NAMES,
    CaptionMetrics,
    CaptionRecord,
    bleu_scores,
    cider_d_scores,
    coco_caption_text,
    corpus_bleu,
    corpus_cider_d,
    corpus_rouge_l,
    lcs_length,
    merge_records,
    ptb_tokenize,
    rouge_l,
    score_captions,
    score_captions_detailed,
    tokenize_caption,
)


def words(text: str) -> list[str]:
    return text.split()


# ---------------------------------------------------------------------------------------------- BLEU


def test_bleu_of_a_perfect_hypothesis_is_one() -> None:
    hyp = words("a man rides a horse on the beach")
    scores = corpus_bleu([hyp], [[hyp, words("someone on a horse")]])
    assert scores == pytest.approx([1.0] * 4, abs=1e-9)


def test_bleu_brevity_penalty() -> None:
    # 3 of 6 reference words: every n-gram precision is 1 (4-grams: none, so tiny/small = 1e-6),
    # and BP = exp(1 - r / c) = exp(1 - 6 / 3) = exp(-1).
    scores = corpus_bleu([words("a b c")], [[words("a b c d e f")]])
    assert scores[:3] == pytest.approx([math.exp(-1)] * 3, rel=1e-8)
    assert scores[3] == pytest.approx(math.exp(-1) * (1e-6) ** 0.25, rel=1e-6)


def test_bleu_closest_reference_length_tie_goes_to_the_shorter_reference() -> None:
    # Hypothesis length 4, references of length 3 and 5: both are 1 away; COCO picks 3, so no penalty.
    scores = corpus_bleu([words("a b c d")], [[words("a b c"), words("a b c d e")]])
    assert scores[0] == pytest.approx(1.0, abs=1e-9)
    # With only the longer reference the brevity penalty exp(1 - 5/4) applies.
    longer = corpus_bleu([words("a b c d")], [[words("a b c d e")]])
    assert longer[0] == pytest.approx(math.exp(1 - 5 / 4), rel=1e-8)


def test_bleu_clips_repeated_words() -> None:
    # "the" occurs once in the reference, so only 1 of the 4 hypothesis unigrams counts.
    scores = corpus_bleu([words("the the the the")], [[words("the cat")]])
    assert scores[0] == pytest.approx(0.25, rel=1e-8)


def test_bleu_is_corpus_level_not_a_mean_of_sentences() -> None:
    hyps = [words("a b"), words("c d e f")]
    refs = [[words("a b")], [words("w x y z")]]
    corpus, per_image = bleu_scores(hyps, refs)
    assert corpus[0] == pytest.approx(2 / 6, rel=1e-8)  # (2 + 0) matches over (2 + 4) unigrams
    assert per_image[0][0] == pytest.approx(1.0, abs=1e-9)
    assert per_image[1][0] == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------------------------------- ROUGE-L


def test_rouge_l_of_a_known_lcs() -> None:
    # LCS("a b c d e", "a x c y e") = "a c e" = 3: P = R = 3/5, so F = 3/5.
    assert rouge_l(words("a b c d e"), [words("a x c y e")]) == pytest.approx(0.6)
    # LCS 3, P = 1, R = 1/2: F = (1 + 1.2^2) * 1 * 0.5 / (0.5 + 1.2^2 * 1).
    expected = 2.44 * 0.5 / (0.5 + 1.44)
    assert rouge_l(words("a b c"), [words("a b c d e f")]) == pytest.approx(expected)


def test_rouge_l_takes_max_precision_and_max_recall_separately() -> None:
    # Reference 1 gives P = 1/2, R = 1; reference 2 gives P = 1, R = 1/2: COCO combines P = 1, R = 1.
    assert rouge_l(words("a b c d"), [words("a b"), words("a b c d e f g h")]) == pytest.approx(1.0)


def test_rouge_l_empty_sentences() -> None:
    assert rouge_l([], [words("a dog")]) == 0.0
    assert rouge_l([], [[]]) == 1.0  # COCO: "".split(" ") == [""] matches itself
    assert rouge_l(words("a dog"), [[], words("a cat")]) == pytest.approx(
        rouge_l(words("a dog"), [words("a cat")])
    )
    assert corpus_rouge_l([words("a b"), words("c")], [[words("a b")], [words("d")]]) == pytest.approx(0.5)


def _lcs_dynamic_programming(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            same = a[i - 1] == b[j - 1]
            table[i][j] = table[i - 1][j - 1] + 1 if same else max(table[i - 1][j], table[i][j - 1])
    return table[len(a)][len(b)]


def test_bit_parallel_lcs_equals_dynamic_programming() -> None:
    rng = random.Random(0)
    for _ in range(300):
        vocab = [str(i) for i in range(rng.randint(1, 6))]
        a = [rng.choice(vocab) for _ in range(rng.randint(0, 70))]
        b = [rng.choice(vocab) for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == _lcs_dynamic_programming(a, b)


# -------------------------------------------------------------------------------------------- CIDEr-D


def test_cider_d_of_an_identical_corpus_is_ten() -> None:
    # Every n-gram occurs in one image only, so its idf is log(N) and every cosine is 1: 10 * mean = 10.
    captions = [words("a man riding a wave"), words("two dogs play in snow"), words("red bus on the street")]
    corpus, per_image = cider_d_scores(captions, [[c] for c in captions])
    assert corpus == pytest.approx(10.0)
    assert per_image == pytest.approx([10.0] * 3)


def test_cider_d_of_a_single_image_is_zero() -> None:
    # log(N) = log(1) = 0 makes every tf-idf weight 0 (as in COCO).
    assert corpus_cider_d([words("a b c d")], [[words("a b c d")]]) == 0.0


def test_cider_d_clips_repeated_words_by_hand() -> None:
    # N = 2, L = log 2; every reference n-gram has df = 1, so idf = L for all of them.
    # Image 1: unigrams h = {a: 2L}, r = {a: L, b: L}: clipped dot = min(2L, L) * L = L^2,
    #   cosine = L^2 / (2L * sqrt(2) L) = 1 / (2 sqrt 2); bigrams (a a) vs (a b): 0; no 3-, 4-grams.
    #   Lengths are equal, so no penalty: 10 * (1 / (2 sqrt 2)) / 4.
    # Image 2: identical two-word caption: unigram and bigram cosines are 1: 10 * 2 / 4 = 5.
    corpus, per_image = cider_d_scores([words("a a"), words("c d")], [[words("a b")], [words("c d")]])
    first = 10 * (1 / (2 * math.sqrt(2))) / 4
    assert per_image == pytest.approx([first, 5.0])
    assert corpus == pytest.approx((first + 5.0) / 2)


def test_cider_d_length_penalty() -> None:
    # Image 1 appends "x y" to its 4-word reference (image 2 only makes N = 2, so every idf is log 2):
    # the hypothesis has 2 more words, so exp(-2^2 / (2 * 6^2)) multiplies the cosine of every order.
    base = [words("a b c d"), words("e f g h")]
    refs = [[base[0]], [base[1]]]
    longer = cider_d_scores([words("a b c d x y"), base[1]], refs)[1][0]
    # Build the expected value from the unpenalised cosines: with "x y" only the hypothesis norm grows.
    # unigrams: 4 L^2 / (sqrt(6) L * 2 L); bigrams: 3 L^2 / (sqrt(5) L * sqrt(3) L);
    # trigrams: 2 / (2 * sqrt 2); 4-grams: 1 / (1 * sqrt 3).
    cosines = [
        4 / (math.sqrt(6) * 2),
        3 / (math.sqrt(5) * math.sqrt(3)),
        2 / (2 * math.sqrt(2)),
        1 / math.sqrt(3),
    ]
    expected = 10 * sum(cosines) / 4 * math.exp(-(2**2) / (2 * 6.0**2))
    assert longer == pytest.approx(expected)


def test_scorers_reject_missing_references() -> None:
    with pytest.raises(DataError, match="no reference"):
        corpus_bleu([words("a")], [[]])
    with pytest.raises(DataError, match="one list of references per hypothesis"):
        cider_d_scores([words("a")], [])
    with pytest.raises(DataError, match="empty corpus"):
        corpus_rouge_l([], [])


# ------------------------------------------------------------------------------------ CaptionMetrics


def test_caption_metrics_keys_and_duplicate_ids_are_dropped() -> None:
    metrics = CaptionMetrics()
    metrics.update([1, 2], ["A dog runs.", "A cat sleeps."], [["A dog runs."], ["A cat is asleep."]])
    # A padded repeat of image 1 with a different caption must be ignored (first one is kept).
    metrics.update(torch.tensor([1, 3]), ["garbage", "Two birds."], [["A dog runs."], ["Two birds fly."]])
    metrics.update([torch.tensor(3)], ["again"], [["Two birds fly."]])
    assert len(metrics) == 3
    result = metrics.compute()
    assert tuple(result) == METRIC_NAMES
    expected = score_captions(
        {1: "A dog runs.", 2: "A cat sleeps.", 3: "Two birds."},
        {1: ["A dog runs."], 2: ["A cat is asleep."], 3: ["Two birds fly."]},
    )
    assert result == pytest.approx(expected)
    metrics.reset()
    assert len(metrics) == 0


def test_caption_metrics_empty_hypothesis_does_not_crash() -> None:
    metrics = CaptionMetrics()
    metrics.update([7, 8], ["", "a red bus"], [["a dog on a couch", "a dog"], ["a red bus on a road"]])
    detailed = metrics.compute_detailed()
    assert all(math.isfinite(value) for value in detailed.metrics.values())
    assert detailed.per_image[7] == pytest.approx({name: 0.0 for name in METRIC_NAMES}, abs=1e-9)
    assert detailed.per_image[8]["CIDEr"] > 0.0
    assert detailed.ranked("CIDEr") == [7, 8]


def test_caption_metrics_compute_before_update_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert CaptionMetrics().compute() == {name: 0.0 for name in METRIC_NAMES}
    assert "before any update" in caplog.text


def test_caption_metrics_rejects_bad_batches() -> None:
    metrics = CaptionMetrics()
    with pytest.raises(ValueError, match="same length"):
        metrics.update([1, 2], ["a"], [["a"], ["b"]])
    with pytest.raises(DataError, match="non-empty list of reference"):
        metrics.update([1], ["a"], [[]])


def test_merge_records_keeps_the_first_record_of_each_id() -> None:
    rank0 = [CaptionRecord(0, "a", ("r0",)), CaptionRecord(2, "c", ("r2",)), CaptionRecord(0, "pad", ("r0",))]
    rank1 = [CaptionRecord(1, "b", ("r1",)), CaptionRecord(0, "pad again", ("r0",))]
    merged = merge_records([rank0, rank1])
    assert [(r.image_id, r.hypothesis) for r in merged] == [(0, "a"), (2, "c"), (1, "b")]


def test_caption_metrics_gathers_across_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated world of 2: this rank holds images 1 and 2, the other rank holds 3 and a padded 1.
    other_rank = [CaptionRecord(3, "two birds", ("two birds fly",)), CaptionRecord(1, "pad", ("a dog",))]

    def all_gather_object(output: list, obj: object) -> None:
        output[0], output[1] = obj, other_rank

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    metrics = CaptionMetrics()
    metrics.update([1, 2], ["a dog", "a cat"], [["a dog"], ["a cat sleeps"]])
    assert [r.image_id for r in metrics.records()] == [1, 2, 3]
    expected = score_captions(
        {1: "a dog", 2: "a cat", 3: "two birds"}, {1: ["a dog"], 2: ["a cat sleeps"], 3: ["two birds fly"]}
    )
    assert metrics.compute() == pytest.approx(expected)
    assert CaptionMetrics(sync_across_ranks=False).records() == []


# A split of 5 images over 2 ranks, as DistributedSampler deals it: rank 0 gets 0, 2, 4 and rank 1 gets
# 1, 3 and a padded repeat of image 0 (with a different caption, as a second decode of it might give).
DDP_REFERENCES = {
    0: ["a dog runs on the grass", "a brown dog running"],
    1: ["a cat naps on a sofa"],
    2: ["a red bus on the street", "a bus parked by the road", "a red double decker bus"],
    3: ["two birds fly over the sea"],
    4: ["a man rides a horse", "someone riding a brown horse"],
}
DDP_SHARDS = {
    0: ([0, 2, 4], ["a dog runs", "a red bus", "a man on a horse"]),
    1: ([1, 3, 0], ["a cat", "two birds fly", "padded repeat"]),
}


def _ddp_worker(rank: int, world_size: int, init_file: str, results: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        ids, hyps = DDP_SHARDS[rank]
        metrics = CaptionMetrics()
        for start in range(0, len(ids), 2):  # two batches per rank
            batch = ids[start : start + 2]
            metrics.update(batch, hyps[start : start + 2], [DDP_REFERENCES[i] for i in batch])
        records = metrics.records()
        results[rank] = (metrics.compute(), sorted((r.image_id, r.hypothesis) for r in records))
    finally:
        dist.destroy_process_group()


def test_caption_metrics_under_a_real_gloo_process_group(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # spawned ranks inherit it: 2 cores, no oversubscription
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), results), nprocs=2, join=True)
        results = dict(results)
    single = CaptionMetrics()
    for rank in (0, 1):  # the same shards fed to one process, padded repeat included
        ids, hyps = DDP_SHARDS[rank]
        single.update(ids, hyps, [DDP_REFERENCES[i] for i in ids])
    expected = single.compute()
    assert len(single) == 5
    metrics0, records0 = results[0]
    assert metrics0 == pytest.approx(expected, abs=1e-12)
    assert metrics0["CIDEr"] > 0  # a real corpus score, not the 0 of a one-image corpus
    assert results[1] == results[0]  # every rank holds the whole split's numbers
    assert [image_id for image_id, _ in records0] == [0, 1, 2, 3, 4]
    assert dict(records0)[0] == "a dog runs"  # the padded repeat was dropped, not scored


def test_score_captions_checks_ids(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(DataError, match="have no references"):
        score_captions({1: "a dog", 2: "a cat"}, {1: ["a dog"]})
    with caplog.at_level(logging.WARNING):
        scores = score_captions_detailed({1: "a dog"}, {1: ["a dog"], 2: ["a cat"]})
    assert list(scores.per_image) == [1]
    assert "not scored" in caplog.text
    with pytest.raises(DataError, match="list of strings"):
        score_captions({1: "a dog"}, {1: "a dog"})


# ---------------------------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("A man's dog.", ["a", "man", "'s", "dog"]),
        (
            "I don't know, can't say; won't go!",
            ["i", "do", "n't", "know", "ca", "n't", "say", "wo", "n't", "go"],
        ),
        ("They're here and I'm sure.", ["they", "'re", "here", "and", "i", "'m", "sure"]),
        ('"Hello," she said (quietly).', ["hello", "she", "said", "-lrb-", "quietly", "-rrb-"]),
        (
            "A black-and-white photo of a 3.5 inch cat...",
            ["a", "black-and-white", "photo", "of", "a", "3.5", "inch", "cat"],
        ),
        (
            "The dogs' bowls cost $5 or 50% of U.S. prices.",
            ["the", "dogs", "bowls", "cost", "$", "5", "or", "50", "%", "of", "u.s.", "prices"],
        ),
        (
            "Mr. Smith walks on Main St. at 5:30 p.m.",
            ["mr.", "smith", "walks", "on", "main", "st.", "at", "5:30", "p.m."],
        ),
        ("A DOG RUNNING -- fast - slow.", ["a", "dog", "running", "fast", "slow"]),
        ("He said no. The no. 5 bus.", ["he", "said", "no", "the", "no.", "5", "bus"]),
        ("cannot gonna 'cause 'tis", ["can", "not", "gon", "na", "'cause", "'t", "is"]),
        ("A sign reads STOP., then a bus", ["a", "sign", "reads", "stop.", "then", "a", "bus"]),
        ("Wow!!! really?!", ["wow", "!!!", "really", "?!"]),
        ("“Curly” quotes — and … dashes", ["curly", "quotes", "and", "dashes"]),
        ("  ", []),
    ],
)
def test_tokenize_caption(text: str, tokens: list[str]) -> None:
    assert tokenize_caption(text) == tokens


@pytest.mark.parametrize(
    ("text", "coco", "tokens"),
    [  # Java's PTBTokenizer (CoreNLP 3.4.1) output, checked against the jar in test_caption_ptb_parity.py
        ("It costs 3 1/2 dollars.", "it costs 3\u00a01/2 dollars", ["it", "costs", "3", "1/2", "dollars"]),
        ("call 12 345 6789", "call 12\u00a0345\u00a06789", ["call", "12", "345", "6789"]),
        ("(800) 555-1212", "-lrb-800-rrb-\u00a0555-1212", ["-lrb-800-rrb-", "555-1212"]),
        ("-3 1/2 and a3 1/2", "-3 1/2 and a3 1/2", ["-3", "1/2", "and", "a3", "1/2"]),
        ("3  1/2, 555 1234", "3 1/2 555 1234", ["3", "1/2", "555", "1234"]),
    ],
)
def test_spaced_fractions_and_phones_are_one_java_token(text: str, coco: str, tokens: list[str]) -> None:
    assert coco_caption_text(text) == coco  # what ROUGE-L splits on " "
    assert tokenize_caption(text) == tokens  # what BLEU and CIDEr-D see (str.split())


def test_ptb_tokenize_keeps_punctuation_in_ptb_form() -> None:
    assert ptb_tokenize('A "big" (red) dog.') == ["a", "``", "big", "''", "-lrb-", "red", "-rrb-", "dog", "."]


def test_tokenizer_fast_path_equals_the_full_tokenizer() -> None:
    from vltk.metrics.caption_tokenizer import PUNCTUATIONS
    from vltk.metrics.ptb_parity import stress_captions

    plain = "A man riding a horse.|a cat .|two dogs|I.|a dog Inc.|He went to Pa.|x.|cannot go.|We gonna"
    plain += "|10 am.|a  b| a|a |Calif.|No.|A.|etc.|3 1/2|12 345 6789|call 100 200 300 now|555 1234"
    for caption in plain.split("|") + stress_captions(3000, seed=4):
        full = " ".join(t for t in ptb_tokenize(caption) if t not in PUNCTUATIONS).split()
        assert tokenize_caption(caption) == full, caption
