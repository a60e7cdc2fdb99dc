"""The caption table (records as flat memory-mapped arrays), the streamed JSON reader and the other pieces
that keep training from cached features flat in memory as the data grows."""

from __future__ import annotations

import json
import os
import pickle
import random

import numpy as np
import pytest

from vltk.data import json_file
from vltk.data.json_file import iter_json_array
from vltk.data.resumable import ResumableRandomSampler
from vltk.errors import DataError
from vltk.tasks.captioning import caption_table
from vltk.tasks.captioning.batch import truncate_caption
from vltk.tasks.captioning.caption_table import CaptionEncoder, CaptionTable, write_table
from vltk.tasks.captioning.karpathy import (
    CaptionEvalDataset,
    CaptionRecord,
    CaptionTrainDataset,
    read_karpathy_table,
)
from vltk.text.vocab import Vocabulary

WORDS = ["a", "red", "Circle.", "square", "..", "big", "two words", "é", "blue"]


def _items(count: int, seed: int = 0) -> list[tuple]:
    """``count`` table items with 1-5 captions of 0-8 words each, ids shuffled, three splits."""
    rng = random.Random(seed)
    ids = rng.sample(range(10 * count), count)
    items = []
    for row, image_id in enumerate(ids):
        tokens = [[rng.choice(WORDS) for _ in range(rng.randrange(9))] for _ in range(rng.randrange(1, 6))]
        raws = [" ".join(words).capitalize() + f" ({row})" for words in tokens]
        items.append((("train", "val", "test")[row % 3], image_id, f"imgs/{image_id}.png", tokens, raws))
    return items


@pytest.fixture
def table(tmp_path) -> CaptionTable:
    folder = tmp_path / "table"
    folder.mkdir()
    write_table(folder, _items(50), {"source": "test"})
    return CaptionTable(folder, image_root=tmp_path)


def test_a_table_gives_back_every_record_and_its_parts(table, tmp_path) -> None:
    items = _items(50)
    assert len(table) == 50 and table.split_names == ["train", "val", "test"]
    for index, (_, image_id, path, tokens, raws) in enumerate(items):
        record = table[index]
        assert (record.image_id, record.path, record.tokens, record.raws) == (
            image_id,
            tmp_path / path,
            tokens,
            raws,
        )
        assert table.image_id(index) == image_id and table.raws(index) == raws
        assert [
            table.lexicon[w] for w in table.word_ids(table.caption_row(index, len(tokens) - 1))
        ] == tokens[-1]
    assert table.caption_counts().tolist() == [len(item[3]) for item in items]
    assert table.image_ids().tolist() == [item[1] for item in items]


def test_splits_slices_and_joins_are_views_of_the_rows(table) -> None:
    items = _items(50)
    train, test = table.split("train"), table.split("test")
    assert [r.image_id for r in train] == [i[1] for i in items if i[0] == "train"]
    assert len(table.split("restval")) == 0 and list(table.splits()) == ["train", "val", "test"]
    assert [r.image_id for r in train[2:5]] == [i[1] for i in items if i[0] == "train"][2:5]
    joined = CaptionTable.concat([test, train])
    assert joined.image_ids().tolist() == test.image_ids().tolist() + train.image_ids().tolist()
    assert joined[len(test)].raws == train[0].raws


def test_a_pickled_table_maps_its_files_again(table) -> None:
    before = table.raws(3)
    assert table._arrays  # mapped by the read
    clone = pickle.loads(pickle.dumps(table.split("val")))
    assert clone._arrays == {} and len(pickle.dumps(table)) < 2_000
    assert clone.raws(1) == table.split("val").raws(1) and table.raws(3) == before


def test_word_counts_equal_the_vocabularys_own_counting(table, monkeypatch) -> None:
    monkeypatch.setattr(caption_table, "ROWS_PER_PASS", 4)  # several passes, consecutive rows or not
    for part in (table, table.split("train"), table[7:30], CaptionTable.concat([table[20:25], table[:3]])):
        expected = Vocabulary.count_words(words for record in part for words in record.tokens)
        assert part.word_counts() == expected


@pytest.mark.parametrize("max_length", [1, 3, 20])
def test_the_encoder_equals_encoding_each_caption_and_cutting_it(table, max_length) -> None:
    vocab = Vocabulary.build([["a", "red", "square"], ["circle", "big", "two"]])  # some words unknown
    encoder = CaptionEncoder(table.lexicon, vocab, max_length)
    assert not encoder.single  # "two words" is two ids, ".." none
    for index in range(len(table)):
        for number, words in enumerate(table[index].tokens):
            expected = truncate_caption(vocab.encode(words), max_length, vocab.end_id)
            assert encoder(table.word_ids(table.caption_row(index, number))).tolist() == expected


def test_the_datasets_serve_what_the_records_hold(table) -> None:
    records = list(table)
    vocab = Vocabulary.build(words for record in records for words in record.tokens)
    train = CaptionTrainDataset(table, vocab, transform=lambda image: image, max_length=4)
    from_list = CaptionTrainDataset(records, vocab, transform=lambda image: image, max_length=4)
    pairs = [(r, words) for r in records for words in r.tokens]
    assert len(train) == len(from_list) == len(pairs)
    for index in (0, 1, len(pairs) // 2, len(pairs) - 1):
        record, words = pairs[index]
        expected = truncate_caption(vocab.encode(words), 4, vocab.end_id)
        assert train._locate(index) == from_list._locate(index)
        assert train.records.image_id(train._locate(index)[0]) == record.image_id
        assert train._encoder(train.records.word_ids(train._locate(index)[1])).tolist() == expected
    evaluation = CaptionEvalDataset(table, vocab, transform=lambda image: image)
    assert len(evaluation) == len(records) and evaluation._locate(5) == (5, table.caption_row(5, 0))
    with pytest.raises(IndexError):
        train._locate(len(pairs))


def test_a_repeated_image_id_names_its_first_repeat_in_file_order(tmp_path) -> None:
    items = _items(6)
    ids = [7, 3, 9, 3, 7, 1]
    with pytest.raises(DataError, match=r"^F: images\[3\]: duplicate image id 3 \(also images\[1\]\)$"):
        write_table(tmp_path, [(*item[:1], i, *item[2:]) for item, i in zip(items, ids)], {"source": "F"})
    records = [CaptionRecord(image_id=1, path=None, tokens=[["a"]], raws=["a"], source=lambda: None)] * 2
    with pytest.raises(DataError, match="duplicate image id 1"):
        CaptionTable.from_records(records)


def _karpathy_file(path, count: int) -> None:
    images = [
        {"filename": f"{i}.png", "split": "train", "imgid": i, "sentences": [{"raw": f"A cat {i}."}]}
        for i in range(count)
    ]
    path.write_text(json.dumps({"dataset": "t", "images": images}))


def test_a_karpathy_table_is_made_once_and_again_when_the_file_changes(tmp_path) -> None:
    annotations = tmp_path / "dataset_t.json"
    _karpathy_file(annotations, 4)
    cache = tmp_path / "cache"
    first = read_karpathy_table(annotations, cache_dir=cache)
    assert first[2].tokens == [["a", "cat", "2"]] and first[2].path == tmp_path / "2.png"
    marker = first.folder / "table.json"
    made = marker.stat().st_mtime_ns
    again = read_karpathy_table(annotations, image_root=tmp_path / "elsewhere", cache_dir=cache)
    assert again.folder == first.folder and marker.stat().st_mtime_ns == made
    assert again[0].path == tmp_path / "elsewhere" / "0.png"
    stat = annotations.stat()
    annotations.write_text(annotations.read_text().replace("A cat 3.", "A dog 3."))  # same size
    os.utime(annotations, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
    changed = read_karpathy_table(annotations, cache_dir=cache)
    assert changed.folder != first.folder and changed[3].raws == ["A dog 3."]


def test_a_malformed_karpathy_entry_leaves_no_table(tmp_path) -> None:
    annotations = tmp_path / "dataset_t.json"
    annotations.write_text(json.dumps({"images": [{"filename": "0.png", "split": "train", "imgid": 0}]}))
    with pytest.raises(DataError, match=r"images\[0\]: key 'sentences' must be a non-empty list"):
        read_karpathy_table(annotations, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache" / "caption-tables").glob("*/table.json"))


def test_the_streamed_reader_equals_json_loads_items_and_error_positions(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(json_file._StreamedJson, "CHUNK", 7)  # values cross the window's edge
    document = {"dataset": "x", "images": [{"a": i, "s": "é\n" * (i % 4), "f": 1.5e3 * i, "n": None,
                                            "l": [True, False]} for i in range(30)], "z": 12345}  # fmt: skip
    path = tmp_path / "a.json"
    for indent in (None, 2):
        path.write_text(json.dumps(document, indent=indent, ensure_ascii=False), encoding="utf-8")
        assert list(iter_json_array(path, "images")) == document["images"]
    text, rng, errors = json.dumps(document, indent=2), random.Random(0), 0
    for _ in range(150):
        cut = rng.randrange(len(text))
        broken = text[:cut] + rng.choice(["", "}", ",", "x", "]", '"']) + text[cut + 1 :]
        if not broken.startswith("{"):
            continue  # not an object: the shape error of the next test, where json.loads says "Extra data"
        path.write_text(broken, encoding="utf-8")
        try:
            json.loads(broken)
            continue
        except json.JSONDecodeError as error:
            expected = f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        errors += 1
        with pytest.raises(DataError) as raised:
            list(iter_json_array(path, "images"))
        assert str(raised.value) == expected
    assert errors > 100


@pytest.mark.parametrize("text", ["[1]", '{"x": 1}', '{"images": 3}', '"images"'])
def test_the_streamed_reader_names_a_document_of_the_wrong_shape(tmp_path, text) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(DataError, match=rf"^{path}: expected a JSON object whose 'images' is a list$"):
        list(iter_json_array(path, "images"))
    path.write_text('{"images": []}')
    assert list(iter_json_array(path, "images")) == []
    path.write_text('{"images": [], }')
    with pytest.raises(DataError, match="line 1, column 16: Expecting property name"):
        list(iter_json_array(path, "images"))


def test_the_training_order_is_the_same_when_made_in_chunks(monkeypatch) -> None:
    sampler = ResumableRandomSampler(20, seed=3)
    whole = sampler.permutation(0)
    monkeypatch.setattr("vltk.data.resumable.ORDER_CHUNK", 3)
    assert list(sampler) == whole
    sampler.resume_at(0, 7)
    assert list(sampler) == whole[7:]


def test_the_feature_store_index_finds_rows_by_id(tmp_path) -> None:
    from vltk.data.feature_cache import IDS_FILE, FeatureStore

    store = FeatureStore.__new__(FeatureStore)
    (tmp_path / IDS_FILE).write_text(json.dumps([40, 7, 19, 3]))
    store.directory = tmp_path
    store._index_ids()
    assert [store.row(i) for i in (40, 7, 19, 3, 5, 100)] == [0, 1, 2, 3, None, None]
    assert list(store) == [40, 7, 19, 3] and len(store) == 4 and 19 in store and 20 not in store
    assert store.missing([3, 4, 40, 41, np.int64(7)]) == [4, 41]
