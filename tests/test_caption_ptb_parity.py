"""The pure-Python caption tokenizer against COCO's Java PTBTokenizer, on generated ugly captions.

One JVM start per test (about a second). Without Java or pycocoevalcap's jar the tests skip with the
reason, except with ``CI=true``, where they fail (``@pytest.mark.needs`` in conftest.py).
"""

from __future__ import annotations

import shutil
import sys

import pytest

from vltk.metrics import PUNCTUATIONS, coco_caption_text, ptb_tokenize, tokenize_caption
from vltk.metrics.ptb_parity import FIXED, java_ptb_tokenize, stress_captions


def test_parity_gate_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, needs) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    for tool in ("java", "ptb-jar", "meteor"):
        with pytest.raises(pytest.fail.Exception, match=f"CI=true and {tool} is unavailable.*java"):
            needs(tool)
    monkeypatch.setitem(sys.modules, "pycocoevalcap.bleu.bleu", None)  # import fails as if not installed
    with pytest.raises(pytest.fail.Exception, match="pycocoevalcap is not installed"):
        needs("pycocoevalcap")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="java unavailable: java is not on PATH"):
        needs("java")
    with pytest.raises(pytest.skip.Exception, match="pycocoevalcap unavailable"):
        needs("pycocoevalcap")


def test_stress_captions_are_deterministic_and_ugly() -> None:
    captions = stress_captions(800, seed=3)
    assert captions == stress_captions(800, seed=3)
    assert captions[: len(FIXED)] == FIXED
    text = "\n".join(captions)
    for needle in (
        "n't",
        "'s",
        '"',
        "``",
        "-",
        "3.5",
        "1,000",
        "3/4",
        "$",
        "%",
        "...",
        "(",
        "\t",
        "  ",
        "://",
    ):
        assert needle in text, needle
    assert "" in captions and any(not any(c.isalnum() for c in caption) for caption in captions if caption)


@pytest.mark.needs("ptb-jar")
def test_tokenizer_matches_java_on_generated_captions() -> None:
    captions = stress_captions(2500, seed=11, glue=0.0) + [c.lower() for c in FIXED]
    java = java_ptb_tokenize(captions, isolate=True)
    ours = [tokenize_caption(caption) for caption in captions]
    mismatches = [(c, j, o) for c, j, o in zip(captions, java, ours, strict=True) if j != o]
    assert not mismatches, f"{len(mismatches)} of {len(captions)} differ, first: {mismatches[:3]}"


@pytest.mark.needs("ptb-jar")
def test_java_isolation_only_changes_caption_ends() -> None:
    # In one stream, "I." before a caption starting with "The" loses its period; isolated it keeps it.
    captions = ["a dog and I.", "The cat"]
    assert java_ptb_tokenize(captions, keep_punctuation=True)[0] == ["a", "dog", "and", "i", "."]
    assert java_ptb_tokenize(captions, keep_punctuation=True, isolate=True)[0] == ["a", "dog", "and", "i."]
    assert tokenize_caption(captions[0]) == ["a", "dog", "and", "i."]


# Spaced fractions and phone numbers: Java keeps each as one token with no-break spaces inside, which only
# COCO's ROUGE-L sees (it splits on single spaces); the cases around them check where the lexer starts.
NUMBER_PROBES = [
    "it costs 3 1/2 dollars", "$3 1/2 x", "(3 1/2) x", '"3 1/2"', "3 1/2.", "3 1/2's", "3 1/23456 z",
    "10 1/2 1/4", "1 2/3/4", "no. 3 1/2 bus", "in 2014 1/2 of", "1\u20442 cup", "3 1\u20442 c",
    "3\u00a01/2 d", "a3 1/2", "-3 1/2", "3.5 1/2", "x/3 1/2", "12345 1/2 x", "3\t1/2 a", "3  1/2 b",
    "3\u20091/2",
    "12 345 6789", "call 555 1234 now", "5 555 555 1234", "+44 20 7946 0958", "(800) 555-1212",
    "a(800) 555 1212", "(800)555-1212x", "+1 (800) 555-1212", "x 12 345 6789x", "100 200 300 people",
    "-12 345 6789", "12-345-6789x", "+44-20-7946-0958s", "1990-2000-2010s", "800.555.1212",
]  # fmt: skip


@pytest.mark.needs("ptb-jar")
def test_coco_strings_match_java_with_no_break_spaces() -> None:
    # The string COCO's scorers receive, before BLEU/CIDEr-D (split()) and ROUGE-L (split(" ")) split it.
    captions = NUMBER_PROBES + stress_captions(1500, seed=5, glue=0.0)
    java = java_ptb_tokenize(captions, keep_punctuation=True, isolate=True)
    expected = [" ".join(token for token in tokens if token not in PUNCTUATIONS) for tokens in java]
    assert (
        "3\u00a01/2" in expected[0]
        and "12\u00a0345\u00a06789" in expected[NUMBER_PROBES.index("12 345 6789")]
    )
    ours = [coco_caption_text(caption) for caption in captions]
    mismatches = [(c, j, o) for c, j, o in zip(captions, expected, ours, strict=True) if j != o]
    assert not mismatches, f"{len(mismatches)} of {len(captions)} differ, first: {mismatches[:3]}"
    assert [ptb_tokenize(c) for c in NUMBER_PROBES] == java[: len(NUMBER_PROBES)]
