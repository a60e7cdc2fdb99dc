"""The pure-Python caption tokenizer against COCO's Java PTBTokenizer, on generated ugly captions.

One JVM start for the whole corpus (about a second). Skipped, with the reason, where Java or pycocoevalcap
is missing.
"""

from __future__ import annotations

import pytest

from vltk.errors import VltkError
from vltk.metrics import tokenize_caption
from vltk.metrics.ptb_parity import FIXED, java_ptb_tokenize, stanford_jar, stress_captions


def _java_available() -> str | None:
    try:
        stanford_jar()
    except VltkError as error:
        return str(error)
    return None


pytestmark = pytest.mark.skipif(_java_available() is not None, reason=f"{_java_available()}")


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


def test_tokenizer_matches_java_on_generated_captions() -> None:
    captions = stress_captions(2500, seed=11, glue=0.0) + [c.lower() for c in FIXED]
    java = java_ptb_tokenize(captions, isolate=True)
    ours = [tokenize_caption(caption) for caption in captions]
    mismatches = [(c, j, o) for c, j, o in zip(captions, java, ours, strict=True) if j != o]
    assert not mismatches, f"{len(mismatches)} of {len(captions)} differ, first: {mismatches[:3]}"


def test_java_isolation_only_changes_caption_ends() -> None:
    # In one stream, "I." before a caption starting with "The" loses its period; isolated it keeps it.
    captions = ["a dog and I.", "The cat"]
    assert java_ptb_tokenize(captions, keep_punctuation=True)[0] == ["a", "dog", "and", "i", "."]
    assert java_ptb_tokenize(captions, keep_punctuation=True, isolate=True)[0] == ["a", "dog", "and", "i."]
    assert tokenize_caption(captions[0]) == ["a", "dog", "and", "i."]
