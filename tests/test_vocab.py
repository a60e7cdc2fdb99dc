"""Vocabulary: special ids, deterministic build, encode/decode, tokenizer.json round trips, errors."""

from __future__ import annotations

import json
import random

import pytest
from tokenizers import Tokenizer

from vltk.errors import DataError
from vltk.text import SPECIAL_TOKENS, Vocabulary, tokenize

CAPTIONS = [
    ["a", "dog", "runs", "on", "the", "grass"],
    ["a", "cat", "sleeps", "on", "a", "sofa"],
    ["the", "dog", "and", "the", "cat"],
    ["a", "red", "ball"],
]


def test_special_ids_are_fixed() -> None:
    vocab = Vocabulary.build(CAPTIONS)
    assert (vocab.pad_id, vocab.start_id, vocab.end_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.words[:4] == list(SPECIAL_TOKENS) == ["<pad>", "<start>", "<end>", "<unk>"]
    distinct = {w for c in CAPTIONS for w in c}
    assert len(vocab) == 4 + len(distinct)


def test_build_order_is_count_then_alphabetical_and_input_order_free() -> None:
    vocab = Vocabulary.build(CAPTIONS)
    # a: 5, the: 4, cat/dog/on: 2 (alphabetical), then the singletons alphabetically.
    assert vocab.words[4:9] == ["a", "the", "cat", "dog", "on"]
    assert vocab.words[9:] == sorted(vocab.words[9:])
    shuffled = [list(c) for c in CAPTIONS]
    random.Random(3).shuffle(shuffled)
    for caption in shuffled:
        random.Random(4).shuffle(caption)
    rebuilt = Vocabulary.build(shuffled)
    assert rebuilt.words == vocab.words
    assert rebuilt.to_json() == vocab.to_json()


def test_min_count_and_max_size() -> None:
    frequent = Vocabulary.build(CAPTIONS, min_count=2)
    assert frequent.words[4:] == ["a", "the", "cat", "dog", "on"]
    capped = Vocabulary.build(CAPTIONS, max_size=2)
    assert capped.words == [*SPECIAL_TOKENS, "a", "the"]
    with pytest.raises(DataError, match="min_count"):
        Vocabulary.build(CAPTIONS, min_count=0)


def test_build_normalises_tokens() -> None:
    vocab = Vocabulary.build([["A", "Dog."], ["a", "dog"]])
    assert vocab.words[4:] == ["a", "dog"]


def test_tokenize_lowercases_and_removes_punctuation() -> None:
    assert tokenize("A Man's T-shirt, on the BEACH!") == ["a", "mans", "tshirt", "on", "the", "beach"]
    vocab = Vocabulary.build(CAPTIONS)
    assert vocab.tokenize("  Two   dogs... ") == ["two", "dogs"]


def test_encode_decode_with_unknown_words() -> None:
    vocab = Vocabulary.build(CAPTIONS)
    ids = vocab.encode("A dog chases the zebra.")
    dog, the = vocab.token_to_id("dog"), vocab.token_to_id("the")
    assert ids == [vocab.start_id, vocab.token_to_id("a"), dog, vocab.unk_id, the, vocab.unk_id, vocab.end_id]
    assert vocab.decode(ids) == "a dog <unk> the <unk>"
    assert vocab.encode(["A", "dog"], add_special=False) == [vocab.token_to_id("a"), dog]
    assert vocab.encode("") == [vocab.start_id, vocab.end_id]
    batch = vocab.encode_batch(["the dog", ["a", "cat"]])
    assert batch == [vocab.encode("the dog"), vocab.encode(["a", "cat"])]


def test_decode_stops_at_end_and_skips_padding() -> None:
    vocab = Vocabulary.build(CAPTIONS)
    cat = vocab.token_to_id("cat")
    ids = [vocab.start_id, cat, vocab.end_id, cat, vocab.pad_id]
    assert vocab.decode(ids) == "cat"
    assert vocab.decode([vocab.pad_id, cat, vocab.pad_id]) == "cat"
    assert vocab.decode(ids, skip_special=False) == "<start> cat <end> cat <pad>"
    with pytest.raises(IndexError):
        vocab.decode([len(vocab)])


def test_json_round_trip_and_standard_format() -> None:
    vocab = Vocabulary.build(CAPTIONS)
    text = vocab.to_json()
    assert json.loads(text)["model"]["type"] == "WordLevel"
    restored = Vocabulary.from_json(text)
    assert restored == vocab
    assert restored.words == vocab.words
    assert restored.encode("the cat, the dog") == vocab.encode("the cat, the dog")
    # The string is a plain tokenizer.json that the tokenizers library loads by itself.
    assert Tokenizer.from_str(text).encode("a cat").ids == vocab.encode("a cat")


def test_save_and_load(tmp_path) -> None:
    vocab = Vocabulary.build(CAPTIONS)
    path = vocab.save(tmp_path / "tokenizer.json")
    assert path.is_file()
    assert Vocabulary.load(path) == vocab
    assert Tokenizer.from_file(str(path)).get_vocab_size() == len(vocab)
    assert vocab.save(tmp_path) == tmp_path / "tokenizer.json"


def test_load_errors_name_the_path(tmp_path) -> None:
    missing = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(DataError, match=str(missing)):
        Vocabulary.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match=str(broken)):
        Vocabulary.load(broken)


def test_from_json_rejects_wrong_special_ids() -> None:
    words = ["<start>", "<pad>", "<end>", "<unk>", "a"]
    tokenizer_json = json.loads(Vocabulary.build(CAPTIONS).to_json())
    tokenizer_json["model"]["vocab"] = {w: i for i, w in enumerate(words)}
    tokenizer_json["added_tokens"] = []
    with pytest.raises(DataError, match="<pad>"):
        Vocabulary.from_json(json.dumps(tokenizer_json))
