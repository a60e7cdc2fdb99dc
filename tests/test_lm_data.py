"""Language-model data: contiguous streams served in order, held-out splits, vocabularies, metrics."""

from __future__ import annotations

import math

import pytest
import torch

from vltk.errors import DataError
from vltk.metrics.lm import LanguageModelMetrics, bits_per_symbol, perplexity
from vltk.tasks.lm.data import PythonSourceDataModule, StreamChunks, TextFilesDataModule
from vltk.tasks.lm.vocab import SymbolVocabulary


def test_chunks_continue_each_stream_in_order():
    ids = torch.arange(103)
    chunks = list(StreamChunks(ids, batch_size=3, seq_len=10, rank=0, world=1))
    assert [c.first for c in chunks] == [True, False, False, False]
    assert len(StreamChunks(ids, 3, 10, rank=0, world=1)) == len(chunks)
    inputs = torch.cat([c.inputs for c in chunks], dim=1)  # [3, 34]
    targets = torch.cat([c.targets for c in chunks], dim=1)
    assert inputs.shape == (3, 34)
    for row in range(3):  # each stream is one contiguous third of the text, targets shifted by one
        start = row * 34
        assert inputs[row].tolist() == list(range(start, start + 34))
        assert targets[row].tolist() == list(range(start + 1, start + 35))
    assert chunks[-1].inputs.shape == (3, 4)  # the last chunk is shorter, not dropped


def test_ranks_take_disjoint_streams():
    ids = torch.arange(201)
    rows = [torch.cat([c.inputs for c in StreamChunks(ids, 2, 5, rank=r, world=2)], dim=1) for r in (0, 1)]
    assert rows[0].shape == rows[1].shape == (2, 50)
    seen = torch.cat([rows[0].flatten(), rows[1].flatten()])
    assert sorted(seen.tolist()) == list(range(200))


def test_short_split_uses_fewer_streams():
    chunks = list(StreamChunks(torch.arange(25), batch_size=8, seq_len=10, rank=0, world=1))
    assert chunks[0].inputs.shape[0] == 2


def test_char_vocabulary_roundtrip_and_unknowns():
    vocab = SymbolVocabulary.build("def f(x):\n\treturn 'x'\n")
    text = "def f(x):\n\treturn x"
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.unknown("déf") == ["é"]
    assert vocab.encode("é") == [vocab.unk_id]
    assert SymbolVocabulary.from_json(vocab.to_json()) == vocab


def test_word_vocabulary_keeps_newlines_and_limits_size():
    vocab = SymbolVocabulary.build("the cat sat.\nthe dog sat.\n", "word", max_size=4)
    assert len(vocab) == 5 and vocab.level == "word"
    assert vocab.decode(vocab.encode("the sat.\nthe")) == "the sat .\nthe"
    assert vocab.encode("cat")[0] in (vocab.unk_id, vocab.index.get("cat"))


def test_text_datamodule_splits_by_position(tmp_path):
    (tmp_path / "a.txt").write_text("a" * 80, encoding="utf-8")
    (tmp_path / "b.txt").write_text("b" * 20, encoding="utf-8")
    dm = TextFilesDataModule([str(tmp_path)], pattern="*.txt", seq_len=4, batch_size=2, val_fraction=0.05)
    dm.setup("fit")
    assert dm.text("train") == "a" * 80 + "b" * 10
    assert dm.text("val") == "b" * 5 and dm.text("test") == "b" * 5
    assert dm.vocab_size == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs.shape == (2, 4) and batch.first
    assert next(iter(dm.dataloader_for("val"))).inputs.shape == (1, 4)  # eval_batch_size: batch_size
    with pytest.raises(DataError, match=r"^unknown split 'dev' \(available: test, train, val\)$"):
        dm.dataloader_for("dev")
    assert dm.state_dict() == {"vocab": dm.vocab.to_json()}
    restored = TextFilesDataModule([str(tmp_path)], pattern="*.txt")
    restored.load_state_dict(dm.state_dict())
    assert restored.vocab == dm.vocab and type(restored.vocab) is type(dm.vocab)


def test_text_datamodule_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.txt"):
        TextFilesDataModule([str(tmp_path / "nope.txt")]).setup()
    with pytest.raises(DataError, match="files is empty"):
        TextFilesDataModule([]).setup()


def test_python_source_is_found_offline():
    dm = PythonSourceDataModule(max_chars=5000, seq_len=10, batch_size=2)
    dm.setup("fit")
    assert len(dm.text("train")) == 4500 and "import" in dm.text("train") + dm.text("val") + dm.text("test")


def test_metrics_from_summed_nll():
    metrics = LanguageModelMetrics()
    metrics.update(torch.tensor(4.0 * math.log(2)), 2)
    metrics.update(1.0 * math.log(2) * 2, 2)
    result = metrics.compute()
    assert result["bpc"] == pytest.approx(1.5)
    assert result["perplexity"] == pytest.approx(2**1.5)
    assert bits_per_symbol(math.log(2) * 10, 10) == pytest.approx(1.0)
    assert perplexity(0.0, 5) == 1.0
