"""Parity of vltk's caption metrics with pycocoevalcap's Bleu(4), Rouge() and Cider() to 1e-6.

Both sides get the same pre-tokenised strings (COCO's scorers are pure Python; no Java needed). When
Java is installed, the tokenizer and the whole string pipeline are also checked against COCO's
Stanford PTBTokenizer. pycocoevalcap is a test dependency: without it these tests skip, and with
``CI=true`` they fail (``@pytest.mark.needs`` in conftest.py); so does the Java test without Java.
"""

from __future__ import annotations

import contextlib
import io
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from vltk.metrics import (
    bleu_scores,
    cider_d_scores,
    rouge_l_scores,
    rouge_l_text_scores,
    score_captions,
    score_texts,
    tokenize_caption,
)

try:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
except ImportError:  # the needs marker skips (or, in CI, fails) every test
    Bleu = Cider = Rouge = None

pytestmark = pytest.mark.needs("pycocoevalcap")

TOLERANCE = 1e-6


def random_corpus(num_images: int, seed: int) -> tuple[list[list[str]], list[list[list[str]]]]:
    """Random captions: small and large vocabularies, 1-5 references, empty and one-word captions,
    repeated words, and some hypotheses copied from a reference."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(rng.choice([2, 8, 40, 300]))]

    def caption() -> list[str]:
        kind = rng.random()
        if kind < 0.05:
            return []
        if kind < 0.15:
            return [rng.choice(vocab)]
        tokens = [rng.choice(vocab) for _ in range(rng.randint(2, 16))]
        if rng.random() < 0.2:  # a word repeated several times in a row
            position = rng.randrange(len(tokens))
            tokens[position:position] = [tokens[position]] * rng.randint(1, 4)
        return tokens

    references = [[caption() for _ in range(rng.randint(1, 5))] for _ in range(num_images)]
    hypotheses = [rng.choice(refs) if rng.random() < 0.1 else caption() for refs in references]
    return hypotheses, references


def coco_scores(hypotheses: list[list[str]], references: list[list[list[str]]]) -> dict[str, object]:
    res = {i: [" ".join(h)] for i, h in enumerate(hypotheses)}
    gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(references)}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its statistics
        bleu, bleu_per_image = Bleu(4).compute_score(gts, res)
    rouge, rouge_per_image = Rouge().compute_score(gts, res)
    cider, cider_per_image = Cider().compute_score(gts, res)
    return {
        "bleu": (bleu, bleu_per_image),
        "rouge": (rouge, list(rouge_per_image)),
        "cider": (cider, list(cider_per_image)),
    }


def assert_close(ours: list[float], theirs: list[float], what: str) -> None:
    assert len(ours) == len(theirs), what
    worst = max(abs(a - float(b)) for a, b in zip(ours, theirs, strict=True))
    assert worst <= TOLERANCE, f"{what}: max |diff| = {worst}"


@pytest.mark.parametrize(
    ("num_images", "seed"), [(1, 0), (1, 1), (2, 2), (2, 3), (10, 4), (10, 5), (500, 6), (2000, 7)]
)
def test_parity_with_pycocoevalcap(num_images: int, seed: int) -> None:
    hypotheses, references = random_corpus(num_images, seed)
    coco = coco_scores(hypotheses, references)

    bleu, bleu_per_image = bleu_scores(hypotheses, references)
    coco_bleu, coco_bleu_per_image = coco["bleu"]
    assert_close(bleu, coco_bleu, "corpus BLEU")
    for n in range(4):
        assert_close(
            [scores[n] for scores in bleu_per_image], coco_bleu_per_image[n], f"BLEU-{n + 1} per image"
        )

    rouge, rouge_per_image = rouge_l_scores(hypotheses, references)
    assert_close([rouge], [coco["rouge"][0]], "corpus ROUGE-L")
    assert_close(rouge_per_image, coco["rouge"][1], "ROUGE-L per image")

    cider, cider_per_image = cider_d_scores(hypotheses, references)
    assert_close([cider], [coco["cider"][0]], "corpus CIDEr-D")
    assert_close(cider_per_image, coco["cider"][1], "CIDEr-D per image")


@pytest.mark.parametrize(("max_n", "sigma"), [(1, 3.0), (2, 10.0)])
def test_parity_with_other_bleu_orders_and_cider_sigma(max_n: int, sigma: float) -> None:
    # COCO's CiderScorer only works with n = 4 (it always counts 4-grams), so only sigma varies there.
    hypotheses, references = random_corpus(200, seed=max_n)
    res = {i: [" ".join(h)] for i, h in enumerate(hypotheses)}
    gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(references)}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_bleu, _ = Bleu(max_n).compute_score(gts, res)
    coco_cider, coco_cider_per_image = Cider(sigma=sigma).compute_score(gts, res)
    assert_close(bleu_scores(hypotheses, references, max_n=max_n)[0], coco_bleu, "corpus BLEU")
    cider, cider_per_image = cider_d_scores(hypotheses, references, sigma=sigma)
    assert_close([cider], [coco_cider], "corpus CIDEr-D")
    assert_close(cider_per_image, list(coco_cider_per_image), "CIDEr-D per image")


def test_parity_on_corner_cases() -> None:
    # Empty hypotheses and references, a hypothesis of only new words, heavy repetition, ties in length.
    hypotheses = [[], ["a"], ["a", "a", "a", "a", "a"], ["z", "y"], ["a", "b", "c", "d"], []]
    references = [
        [["a", "dog"]],
        [["a"], []],
        [["a", "b"], ["a", "a"]],
        [["a", "b", "c"]],
        [["a", "b", "c"], ["a", "b", "c", "d", "e"]],
        [[]],
    ]
    coco = coco_scores(hypotheses, references)
    bleu, bleu_per_image = bleu_scores(hypotheses, references)
    assert_close(bleu, coco["bleu"][0], "corpus BLEU")
    for n in range(4):
        assert_close([s[n] for s in bleu_per_image], coco["bleu"][1][n], f"BLEU-{n + 1} per image")
    assert_close(rouge_l_scores(hypotheses, references)[1], coco["rouge"][1], "ROUGE-L per image")
    assert_close(cider_d_scores(hypotheses, references)[1], coco["cider"][1], "CIDEr-D per image")


def _check_all_metrics(hypotheses: list[list[str]], references: list[list[list[str]]]) -> None:
    coco = coco_scores(hypotheses, references)
    bleu, bleu_per_image = bleu_scores(hypotheses, references)
    assert_close(bleu, coco["bleu"][0], "corpus BLEU")
    for n in range(4):
        assert_close([s[n] for s in bleu_per_image], coco["bleu"][1][n], f"BLEU-{n + 1} per image")
    rouge, rouge_per_image = rouge_l_scores(hypotheses, references)
    assert_close([rouge], [coco["rouge"][0]], "corpus ROUGE-L")
    assert_close(rouge_per_image, coco["rouge"][1], "ROUGE-L per image")
    cider, cider_per_image = cider_d_scores(hypotheses, references)
    assert_close([cider], [coco["cider"][0]], "corpus CIDEr-D")
    assert_close(cider_per_image, coco["cider"][1], "CIDEr-D per image")


def _special_corpus(kind: str, num_images: int = 60, seed: int = 0):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(30)]

    def sentence(low: int = 2, high: int = 12) -> list[str]:
        return [rng.choice(vocab) for _ in range(rng.randint(low, high))]

    references = [[sentence() for _ in range(rng.randint(1, 5))] for _ in range(num_images)]
    if kind == "empty predictions":
        hypotheses = [[] for _ in references]
    elif kind == "one-word captions":
        hypotheses = [[rng.choice(vocab)] for _ in references]
        references = [[[rng.choice(vocab)] for _ in refs] for refs in references]
    elif kind == "repeated words":
        hypotheses = [[rng.choice(vocab)] * rng.randint(2, 12) for _ in references]
    elif kind == "1 to 20 references":
        references = [[sentence() for _ in range(rng.randint(1, 20))] for _ in range(num_images)]
        hypotheses = [sentence() for _ in references]
    elif kind == "one image":
        references, hypotheses = references[:1], [sentence()]
    else:
        raise ValueError(kind)
    return hypotheses, references


@pytest.mark.parametrize(
    "kind", ["empty predictions", "one-word captions", "repeated words", "1 to 20 references", "one image"]
)
def test_parity_on_special_corpora(kind: str) -> None:
    _check_all_metrics(*_special_corpus(kind))


# ------------------------------------------------- strings: no-break spaces and double spaces, as COCO splits

# COCO's scorers receive strings: BLEU and CIDEr-D split them with str.split() (bleu_scorer.py and
# cider_scorer.py, precook), ROUGE-L with split(" ") (rouge.py, calc_score). A no-break space, as inside the
# Java token "3\u00a01/2", separates tokens for the first two only; two spaces make an empty ROUGE token.
STRING_HYPOTHESES = [
    "a cake with 3\u00a01/2 candles",
    "call 12\u00a0345\u00a06789 now",
    "a  dog on  the grass",
    "",
    "two  cats",
    "3\u00a01/2",
]
STRING_REFERENCES = [
    ["a cake with 3 1/2 candles", "a cake with 3\u00a01/2 candles on a table"],
    ["call 12 345 6789 now", "phone 12\u00a0345\u00a06789"],
    ["a dog on the grass", "a  dog  on grass"],
    ["  ", "a bird"],
    ["two cats", "two  cats  sleeping"],
    ["3 1/2", "1/2"],
]


def _coco_string_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, object]:
    res = {i: [h] for i, h in enumerate(hypotheses)}
    gts = {i: list(refs) for i, refs in enumerate(references)}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    rouge, rouge_per_image = Rouge().compute_score(gts, res)
    cider, cider_per_image = Cider().compute_score(gts, res)
    return {"bleu": bleu, "rouge": (rouge, list(rouge_per_image)), "cider": (cider, list(cider_per_image))}


def test_no_break_spaces_and_double_spaces_split_as_coco_does() -> None:
    coco = _coco_string_scores(STRING_HYPOTHESES, STRING_REFERENCES)
    metrics, per_image = score_texts(STRING_HYPOTHESES, STRING_REFERENCES)
    assert_close([metrics[f"BLEU-{n + 1}"] for n in range(4)], coco["bleu"], "corpus BLEU")
    assert_close([metrics["ROUGE-L"]], [coco["rouge"][0]], "corpus ROUGE-L")
    assert_close([image["ROUGE-L"] for image in per_image], coco["rouge"][1], "ROUGE-L per image")
    assert_close([metrics["CIDEr"]], [coco["cider"][0]], "corpus CIDEr-D")
    assert_close([image["CIDEr"] for image in per_image], coco["cider"][1], "CIDEr-D per image")
    rouge, rouge_per_image = rouge_l_text_scores(STRING_HYPOTHESES, STRING_REFERENCES)
    assert_close(rouge_per_image, coco["rouge"][1], "rouge_l_text_scores per image")
    # The cases differ from a whitespace split: "3\u00a01/2" is one ROUGE token against "3", "1/2", and
    # the empty tokens of "a  dog" count. (With str.split() for ROUGE, images 0, 2 and 4 would score 1.)
    whitespace = rouge_l_scores(
        [h.split() for h in STRING_HYPOTHESES], [[r.split() for r in refs] for refs in STRING_REFERENCES]
    )
    assert whitespace[1][0] == pytest.approx(1.0) and coco["rouge"][1][0] < 1.0
    assert whitespace[1][2] == pytest.approx(1.0) and coco["rouge"][1][2] < 1.0
    assert coco["rouge"][1][3] > 0.0  # "" is one empty token, and "  " holds three
    # BLEU and CIDEr-D see "3\u00a01/2" as "3" "1/2": image 0 matches its first reference exactly.
    assert per_image[0]["BLEU-4"] == pytest.approx(1.0)


def test_pipeline_gives_rouge_the_java_tokens_whole() -> None:
    # Raw captions: vltk's tokenizer writes "3 1/2" as Java does ("3\u00a01/2"), so ROUGE-L differs from
    # the whitespace-split tokens exactly as in COCO, and BLEU/CIDEr-D do not.
    hypotheses = {1: "A cake with 3 1/2 candles.", 2: "Call 12 345 6789 now!"}
    references = {1: ["a cake with 3 candles, 1/2 eaten"], 2: ["call 12 345 6789 today", "a phone"]}
    coco = _coco_string_scores(
        ["a cake with 3\u00a01/2 candles", "call 12\u00a0345\u00a06789 now"],
        [["a cake with 3 candles 1/2 eaten"], ["call 12\u00a0345\u00a06789 today", "a phone"]],
    )
    ours = score_captions(hypotheses, references)
    assert ours["ROUGE-L"] == pytest.approx(coco["rouge"][0], abs=TOLERANCE)
    assert ours["CIDEr"] == pytest.approx(coco["cider"][0], abs=TOLERANCE)
    assert [ours[f"BLEU-{n + 1}"] for n in range(4)] == pytest.approx(coco["bleu"], abs=TOLERANCE)


# --------------------------------------------------------------------------- Java tokenizer (optional)

CAPTIONS = [
    "A man's dog is sitting on the couch.",
    "Two people riding bikes down a street, next to a bus.",
    "A black-and-white photo of a cat sitting in a sink.",
    "A woman holding an umbrella (it's raining).",
    'A sign that says "STOP" at an intersection.',
    "The kids' toys are all over the floor!",
    "A plate of food: rice, beans and a 3.5 oz steak.",
    "Mr. Smith's car on Main St. at 5:30 p.m.",
    "Someone can't find the U.S. flag -- it's gone.",
    "A giraffe standing next to a tree; it is tall.",
    "I'm looking at a T-shirt that costs $20 or 50% off...",
    "A tennis player swings his racket at the ball?",
    "they're eating pizza and won't share",
    "A BASEBALL PLAYER THROWING A PITCH",
    "  a bowl of fruit with apples , bananas and oranges .  ",
    "Two zebras grazing in a field of tall grass.",
    "The no. 5 bus on 5th Ave. near the building.",
    "A cat laying on top of a laptop computer/keyboard.",
    "An old-fashioned clock tower in the 1990's.",
    "A group of people flying kites at the beach ...",
]


def _java_tokenize(lines: list[str]) -> list[list[str]] | None:
    """COCO's tokenisation through the Stanford jar shipped with pycocoevalcap (None if unavailable)."""
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    jar = Path(ptb.__file__).parent / ptb.STANFORD_CORENLP_3_4_1_JAR
    if shutil.which("java") is None or not jar.exists():
        return None
    command = [
        "java",
        "-cp",
        str(jar),
        "edu.stanford.nlp.process.PTBTokenizer",
        "-preserveLines",
        "-lowerCase",
    ]
    output = subprocess.run(
        command, input="\n".join(lines).encode(), capture_output=True, timeout=60, check=True
    )
    return [
        [token for token in line.rstrip().split(" ") if token and token not in ptb.PUNCTUATIONS]
        for line in output.stdout.decode().split("\n")[: len(lines)]
    ]


@pytest.mark.needs("ptb-jar")
def test_tokenizer_and_string_pipeline_match_java() -> None:
    lower = [caption.lower() for caption in CAPTIONS]
    java_tokens = _java_tokenize(CAPTIONS + lower)
    assert java_tokens is not None
    assert [tokenize_caption(caption) for caption in CAPTIONS + lower] == java_tokens

    # Whole pipeline: vltk on raw strings == COCO scorers on the Java-tokenised strings.
    count = len(CAPTIONS)
    hypotheses = dict(enumerate(CAPTIONS))
    references = {i: [CAPTIONS[(i + 1) % count], lower[i]] for i in range(count)}
    java_hyps = java_tokens[:count]
    java_refs = [[java_tokens[(i + 1) % count], java_tokens[count + i]] for i in range(count)]
    coco = coco_scores(java_hyps, java_refs)
    expected = {f"BLEU-{n + 1}": coco["bleu"][0][n] for n in range(4)}
    expected |= {"ROUGE-L": coco["rouge"][0], "CIDEr": coco["cider"][0]}
    assert score_captions(hypotheses, references) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_scorers_equal_the_per_image_definitions(seed: int) -> None:
    from vltk.metrics.bleu import BleuStats, corpus_stats, image_stats
    from vltk.metrics.cider import reference_cider_d
    from vltk.metrics.ngram_table import corpus_tables

    hypotheses, references = random_corpus(300, seed)
    tables = corpus_tables(hypotheses, references)
    fast: list[BleuStats] = corpus_stats(tables)
    assert fast == [image_stats(h, r) for h, r in zip(hypotheses, references, strict=True)]
    cider, per_image = cider_d_scores(hypotheses, references, tables=tables)
    slow, slow_per_image = reference_cider_d(hypotheses, references)
    assert_close([cider], [slow], "corpus CIDEr-D")
    assert_close(per_image, slow_per_image, "CIDEr-D per image")
