"""Sharded streaming (``vltk data shards``, ``data.name: webdataset``): shards hold the source records, the
readers of every rank and worker share an epoch exactly, a resumed epoch skips what was done, training runs
from shards through the CLI, and bad shards or a missing library are one line with exit 2."""

from __future__ import annotations

import json
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from conftest import TINY_CAPTIONING
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.data.shards import (
    ShardInfo,
    StreamingShards,
    read_index,
    reader_plan,
    reader_size,
    require_webdataset,
    round_robin_resume,
)
from vltk.errors import DataError
from vltk.tasks.captioning.datamodule import ShapesCaptionsDataModule
from vltk.tasks.captioning.shards import ShardedCaptionsDataModule, write_caption_shards

runner = CliRunner()
SHAPES = {"num_images": 30, "image_size": 16, "seed": 5}
STREAMED = [value for value in TINY_CAPTIONING if not value.startswith("data.num_images")]


def _set(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


@pytest.fixture(scope="module")
def source(tmp_path_factory, _isolated_cache) -> ShapesCaptionsDataModule:
    datamodule = ShapesCaptionsDataModule(**SHAPES, cache_dir=str(tmp_path_factory.mktemp("shapes")))
    datamodule.setup()
    return datamodule


@pytest.fixture(scope="module")
def shards(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "shapes"
    write_caption_shards(source, out, shard_size=7, seed=1, source="test")
    return out


def _pair_stream(shards: Path, *, training: bool, rank: int = 0, world: int = 1, workers: int = 0,
                 epoch: int = 0, skip: int = 0, batch_size: int = 4) -> StreamingShards:  # fmt: skip
    """A stream of ``(image_id, caption index)`` per item: the splitting without any decoding."""
    index = read_index(shards, "captions")

    def expand(sample):
        meta = json.loads(sample["json"])
        pairs = [(meta["image_id"], caption) for caption in range(len(meta["raws"]))]
        return pairs if training else pairs[:1]

    return StreamingShards(shards, index.splits["train"], expand=expand, decode=lambda pair: pair,
                           collate=list, batch_size=batch_size, training=training, shuffle_buffer=10, seed=3,
                           rank=rank, world=world, num_workers=workers, epoch=epoch,
                           batches_to_skip=lambda: skip)  # fmt: skip


def _as_is(batch: list) -> list:
    return batch


def _batches(stream: StreamingShards) -> list[list]:
    return list(DataLoader(stream, batch_size=None, num_workers=stream.num_workers, collate_fn=_as_is))


def test_shards_are_plain_tar_files_holding_the_source_records(source, shards: Path):
    index = read_index(shards, "captions")
    for role in ("train", "val", "test"):
        records = {record.image_id: record for record in source.records(role)}
        found = {}
        for shard in index.splits[role]:
            with tarfile.open(shards / shard.file) as tar:  # Python's tarfile, not WebDataset
                members = {member.name: tar.extractfile(member).read() for member in tar}
            assert len(members) == 2 * shard.samples
            for name, data in members.items():
                key, extension = name.split(".", 1)
                found.setdefault(int(key), {})[extension] = data
        assert sorted(found) == sorted(records)
        for image_id, files in found.items():
            meta = json.loads(files["json"])
            assert meta == {"image_id": image_id, "raws": records[image_id].raws,
                            "tokens": records[image_id].tokens}  # fmt: skip
            assert files["png"] == records[image_id].path.read_bytes()  # the file's own bytes
        assert index.items(role) == sum(len(r.raws) for r in records.values())
    assert [shard.samples for shard in index.splits["train"]][:-1] == [7] * (len(index.splits["train"]) - 1)
    sharded = ShardedCaptionsDataModule(path=str(shards))
    sharded.setup()
    assert sharded.vocab == source.vocab  # from word_counts.json, the same as from the records


def test_streamed_batches_equal_the_records(source, shards: Path):
    sharded = ShardedCaptionsDataModule(path=str(shards), batch_size=4)
    sharded.setup()
    references = {record.image_id: record.raws for record in source.records("test")}
    seen = {}
    for batch in sharded.test_dataloader():
        assert batch.images.shape[1:] == (3, 224, 224) and batch.captions[:, 0].eq(1).all()
        seen.update(zip(batch.image_ids.tolist(), batch.references))
    assert seen == references  # one item per image with every reference: what the metrics read
    pairs = sum(len(batch) for batch in sharded.train_dataloader())
    assert pairs == sum(len(record.raws) for record in source.records("train"))


@pytest.mark.parametrize("world, workers", [(1, 0), (1, 2), (2, 2), (3, 1)])
def test_ranks_and_workers_read_every_item_exactly_once_per_epoch(shards: Path, world: int, workers: int):
    index = read_index(shards, "captions")
    total = index.items("train")
    for epoch in (0, 1):
        per_rank = [_batches(_pair_stream(shards, training=True, rank=rank, world=world, workers=workers,
                                          epoch=epoch)) for rank in range(world)]  # fmt: skip
        lengths = {len(_pair_stream(shards, training=True, rank=r, world=world, workers=workers))
                   for r in range(world)}  # fmt: skip
        assert {len(batches) for batches in per_rank} == lengths and len(lengths) == 1  # equal steps
        counts = Counter(pair for batches in per_rank for batch in batches for pair in batch)
        assert len(counts) == total  # every (image, caption) pair
        readers = world * max(1, workers)
        padding = -(-total // readers) * readers - total if world > 1 else 0  # DDP: equal reader sizes
        assert sum(counts.values()) == total + padding and max(counts.values()) <= 2
    first = [pair for batch in _batches(_pair_stream(shards, training=True)) for pair in batch]
    again = [pair for batch in _batches(_pair_stream(shards, training=True)) for pair in batch]
    later = [pair for batch in _batches(_pair_stream(shards, training=True, epoch=1)) for pair in batch]
    assert first == again and first != later and sorted(first) == sorted(later)  # (seed, epoch) decide


def test_evaluation_splits_are_one_item_per_image_in_order_and_padded_only_under_ddp(shards: Path):
    index = read_index(shards, "captions")
    alone = [pair for batch in _batches(_pair_stream(shards, training=False)) for pair in batch]
    assert len(alone) == index.samples("train") and all(caption == 0 for _, caption in alone)
    ranks = [_batches(_pair_stream(shards, training=False, rank=r, world=4)) for r in range(4)]
    assert len({len(batches) for batches in ranks}) == 1
    assert {pair for batches in ranks for batch in batches for pair in batch} == set(alone)


def test_reader_plans_cover_each_item_once_and_pad_to_equal_sizes():
    shards = [ShardInfo(f"{i}.tar", samples=1, items=count) for i, count in enumerate([5, 0, 3, 9, 1])]
    units = [shard.items for shard in shards]
    for readers in range(1, 23):
        positions = []
        for reader in range(readers):
            plan = reader_plan(shards, units, reader, readers, pad=False)
            starts = {shard.file: sum(units[:i]) for i, shard in enumerate(shards)}
            positions += [starts[s.shard.file] + i for s in plan for i in range(s.start, s.stop)]
            assert sum(s.stop - s.start for s in plan) == reader_size(18, reader, readers, pad=False)
            padded = reader_plan(shards, units, reader, readers, pad=True)
            assert sum(s.stop - s.start for s in padded) == reader_size(18, reader, readers, pad=True)
        assert sorted(positions) == list(range(18))


def test_a_resumed_epoch_skips_exactly_the_batches_already_done(shards: Path):
    for batch_size in (4, 7):  # 60 pairs per worker: 15 full batches each, or 8 and 9 with partial ones
        full = _batches(_pair_stream(shards, training=True, workers=2, batch_size=batch_size))
        for done in (0, 3, 7, 16):
            rest = _batches(_pair_stream(shards, training=True, workers=2, skip=done, batch_size=batch_size))
            assert rest == full[done:]
    assert round_robin_resume([2, 5, 1], 6) == ([2, 3, 1], [1, 2, 0])  # reader 1 alone has batches left


def test_training_from_shards_through_the_cli(tmp_path: Path):
    out = tmp_path / "shards"
    result = runner.invoke(app, ["data", "shards", "--out", str(out), "--shard-size", "8",
                                 *_set(TINY_CAPTIONING)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "data.name=webdataset" in result.output
    streamed = ["data.name=webdataset", f"data.path={out}", "data.num_workers=2", "data.shuffle_buffer=20"]
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "captioning", "--run-dir", str(run_dir),
                                 *_set(STREAMED + streamed)])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert set(metrics) >= {"BLEU-4", "CIDEr"}


def _train_from(path: Path, tmp_path: Path, workers: int = 2):
    streamed = ["data.name=webdataset", f"data.path={path}", f"data.num_workers={workers}"]
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    return runner.invoke(app, ["train", "captioning", "--run-dir", str(run_dir),
                               *_set(STREAMED + streamed)])  # fmt: skip


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_a_missing_or_corrupt_shard_is_one_line_and_exit_2(shards: Path, tmp_path: Path):
    result = _train_from(tmp_path / "nowhere", tmp_path)
    assert result.exit_code == 2 and "shard directory not found" in _one_line(result.output)
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in shards.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    second = read_index(broken, "captions").splits["train"][1].file
    (broken / second).write_bytes((shards / second).read_bytes()[:3000])  # truncated mid-sample
    result = _train_from(broken, tmp_path)  # read in a worker process
    assert result.exit_code == 2 and _one_line(result.output).startswith(f"error: {broken / second}: ")
    (broken / second).write_bytes(bytes(range(256)) * 12)  # not a tar file
    result = _train_from(broken, tmp_path)
    assert result.exit_code == 2 and f"{broken / second}: unreadable shard" in _one_line(result.output)
    (broken / second).unlink()
    with pytest.raises(DataError, match=f"{broken / second}: shard listed in .* not found"):
        read_index(broken, "captions")
    (broken / "shards.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable shard index"):
        read_index(broken, "captions")


def test_without_webdataset_the_data_source_says_how_to_install_it(shards: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "webdataset", None)  # an import of it now fails
    with pytest.raises(DataError, match=r"pip install 'vltk\[stream\]'"):
        require_webdataset()
    result = _train_from(shards, tmp_path, workers=0)
    assert result.exit_code == 2 and "pip install 'vltk[stream]'" in _one_line(result.output)


def test_an_undecodable_image_in_a_shard_names_its_sample_or_is_skipped(tmp_path: Path):
    from PIL import Image

    from vltk.data.shards import ShardIndex, ShardWriter, write_index

    png = tmp_path / "good.png"
    Image.new("RGB", (8, 8), "red").save(png)
    out = tmp_path / "bad"
    with ShardWriter(out, "train", shard_size=10) as writer:
        for image_id, image in enumerate([png.read_bytes(), b"\x89PNG truncated", png.read_bytes()]):
            meta = {"image_id": image_id, "raws": ["A thing."], "tokens": [["a", "thing"]]}
            writer.write({"__key__": str(image_id), "png": image, "json": json.dumps(meta).encode()}, items=1)
    (out / "word_counts.json").write_text('{"a": 3, "thing": 3}')
    write_index(ShardIndex(out, "captions", {"train": writer.shards}))
    strict = ShardedCaptionsDataModule(path=str(out), batch_size=3)
    strict.setup()
    with pytest.raises(DataError, match=r"train-000000.tar: sample '1': not an image file .*on_bad_sample"):
        list(strict.train_dataloader())
    lenient = ShardedCaptionsDataModule(path=str(out), batch_size=3, on_bad_sample="skip")
    lenient.setup()
    batches = list(lenient.train_dataloader())
    assert [(len(batch), batch.skipped) for batch in batches] == [(2, 1)]
