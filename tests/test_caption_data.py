"""Caption data: image loading, Karpathy JSON, HF datasets, datasets, collation and the DataModules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from vltk.data.images import load_image
from vltk.errors import ConfigError, DataError
from vltk.registry import build
from vltk.tasks.captioning.batch import CaptionBatch, CaptionItem, collate_captions, truncate_caption
from vltk.tasks.captioning.datamodule import (
    HFCaptionsDataModule,
    KarpathyCaptionsDataModule,
    ShapesCaptionsDataModule,
)
from vltk.tasks.captioning.datasets import CAPTION_DATASETS
from vltk.tasks.captioning.hf_captions import read_hf_captions
from vltk.tasks.captioning.karpathy import CaptionEvalDataset, CaptionTrainDataset, read_karpathy
from vltk.text import Vocabulary

SMALL = transforms.Compose([transforms.Resize((24, 24)), transforms.ToTensor()])


def _image(seed: int, size: int = 12) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)  # [H, W, 3]
    return Image.fromarray(pixels)


# ---- load_image ---------------------------------------------------------------------------------------


def test_load_image_converts_every_mode_to_rgb(tmp_path) -> None:
    rgb = Image.new("RGB", (6, 4), (10, 200, 30))
    rgba = Image.new("RGBA", (6, 4), (255, 0, 0, 0))  # fully transparent red -> white
    palette = Image.new("P", (6, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 1  # the only colour is transparent -> white
    high = Image.fromarray(np.full((4, 6), 65535, dtype=np.uint16))  # 16-bit white
    cases = {
        "rgb.png": (rgb, (10, 200, 30)),
        "gray.png": (Image.new("L", (6, 4), 77), (77, 77, 77)),
        "rgba.png": (rgba, (255, 255, 255)),
        "half.png": (Image.new("RGBA", (6, 4), (0, 0, 0, 128)), (127, 127, 127)),
        "palette.png": (palette, (255, 255, 255)),
        "cmyk.jpg": (Image.new("CMYK", (6, 4), (0, 0, 0, 0)), (255, 255, 255)),
        "deep.png": (high, (255, 255, 255)),
    }
    for name, (image, expected) in cases.items():
        image.save(tmp_path / name)
        loaded = load_image(tmp_path / name)
        assert loaded.mode == "RGB" and loaded.size == (6, 4), name
        assert np.abs(np.asarray(loaded)[1, 1].astype(int) - expected).max() <= 3, name
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")


def test_load_image_errors_name_the_path(tmp_path) -> None:
    missing = tmp_path / "missing.jpg"
    with pytest.raises(DataError, match=f"{missing}: image file not found"):
        load_image(missing)
    with pytest.raises(DataError, match="directory"):
        load_image(tmp_path)
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a picture")
    with pytest.raises(DataError, match=f"{fake}: not an image"):
        load_image(fake)
    truncated = tmp_path / "cut.png"
    _image(0, 64).save(tmp_path / "full.png")
    truncated.write_bytes((tmp_path / "full.png").read_bytes()[:300])
    with pytest.raises(DataError, match=str(truncated)) as error:
        load_image(truncated)
    assert "\n" not in str(error.value)


# ---- Karpathy JSON ------------------------------------------------------------------------------------


def _karpathy(tmp_path: Path, entries: list | None = None) -> Path:
    if entries is None:
        entries = []
        for i, split in enumerate(["train", "train", "restval", "val", "test", "test"]):
            entries.append(
                {
                    "filepath": "imgs",
                    "filename": f"{i}.png",
                    "split": split,
                    "imgid": i,
                    "cocoid": 1000 + i,
                    "sentences": [
                        {"tokens": ["a", "photo", "number", str(i)], "raw": f"A photo, number {i}."},
                        {"tokens": ["picture", str(i), "of", "a", "thing"], "raw": f"Picture {i} of a thing"},
                    ],
                }
            )
        del entries[5]["filepath"]  # Flickr-style entry: the image sits next to the JSON
        del entries[5]["cocoid"]
    (tmp_path / "imgs").mkdir(exist_ok=True)
    for i in range(len(entries)):
        _image(i).save(tmp_path / "imgs" / f"{i}.png")
        _image(i).save(tmp_path / f"{i}.png")
    path = tmp_path / "dataset_test.json"
    path.write_text(json.dumps({"images": entries, "dataset": "test"}))
    return path


def test_read_karpathy_splits_paths_and_ids(tmp_path) -> None:
    path = _karpathy(tmp_path)
    splits = read_karpathy(path)
    assert {name: len(records) for name, records in splits.items()} == {
        "train": 2,
        "restval": 1,
        "val": 1,
        "test": 2,
    }
    first = splits["train"][0]
    assert first.image_id == 1000 and first.path == tmp_path / "imgs" / "0.png"
    assert first.tokens[0] == ["a", "photo", "number", "0"] and first.raws[1] == "Picture 0 of a thing"
    flickr = splits["test"][1]
    assert flickr.image_id == 5 and flickr.path == tmp_path / "5.png"  # imgid, no filepath
    assert read_karpathy(path, image_root="/data", splits=["val"])["val"][0].path == Path("/data/imgs/3.png")
    assert flickr.load_image().size == (12, 12)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"filename": "x.png", "split": "train", "imgid": 9}, r"images\[2\]: key 'sentences'"),
        ({"split": "train", "imgid": 9, "sentences": [{"raw": "x"}]}, r"images\[2\]: missing .* 'filename'"),
        (
            {"filename": "x.png", "split": "val", "sentences": [{"raw": "x"}]},
            r"images\[2\]: needs an integer",
        ),
        (
            {"filename": "x.png", "split": "val", "imgid": 0, "sentences": [{"raw": "x"}]},
            r"duplicate image id 0",
        ),
        (
            {"filename": "x.png", "split": "val", "imgid": 8, "sentences": [{"tokens": "x y", "raw": "x"}]},
            r"tokens",
        ),
        ("not an object", r"images\[2\]: expected an object"),
    ],
)
def test_read_karpathy_malformed_entry(tmp_path, entry, message) -> None:
    good = {"filename": "0.png", "split": "train", "imgid": 0, "sentences": [{"raw": "A cat."}]}
    path = _karpathy(tmp_path, [good, {**good, "imgid": 1}, entry])
    with pytest.raises(DataError, match=message) as error:
        read_karpathy(path)
    assert str(path) in str(error.value)
    # A missing "tokens" list is filled from the raw caption.
    assert read_karpathy(_karpathy(tmp_path, [good]))["train"][0].tokens == [["a", "cat"]]


def test_read_karpathy_bad_files(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_karpathy(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(DataError, match=f"{broken}: not valid JSON"):
        read_karpathy(broken)
    broken.write_text('{"pictures": []}')
    with pytest.raises(DataError, match="'images' list"):
        read_karpathy(broken)


# ---- datasets and collation ---------------------------------------------------------------------------


def test_train_and_eval_datasets_and_collate(tmp_path) -> None:
    torch.manual_seed(0)
    records = read_karpathy(_karpathy(tmp_path))["train"]
    vocab = Vocabulary.build(t for r in records for t in r.tokens)
    train = CaptionTrainDataset(records, vocab, transform=SMALL, max_length=3, in_memory=True)
    assert len(train) == 4  # 2 images x 2 captions
    item = train[1]
    assert item.image.shape == (3, 24, 24) and item.image_id == 1000
    assert item.caption.tolist() == [
        1,
        *vocab.encode(["picture", "0", "of"], add_special=False),
        2,
    ]  # cut at 3
    assert item.references == records[0].raws
    assert train.image(0) is train.image(0)  # cached
    evaluation = CaptionEvalDataset(records, vocab, transform=SMALL, max_length=20)
    assert len(evaluation) == 2 and evaluation[1].caption.tolist() == vocab.encode(records[1].tokens[0])
    assert evaluation.image(0) is not evaluation.image(0)  # not cached without in_memory

    batch = collate_captions([evaluation[0], train[1]], pad_id=vocab.pad_id)
    assert isinstance(batch, CaptionBatch) and len(batch) == 2
    assert batch.images.shape == (2, 3, 24, 24) and batch.captions.shape == (2, 6)
    assert batch.caption_mask.tolist() == [[True] * 6, [True] * 5 + [False]]
    assert batch.captions[1, 5].item() == vocab.pad_id and batch.captions[0, 5].item() == vocab.end_id
    assert batch.image_ids.dtype == torch.long and batch.image_ids.tolist() == [1000, 1000]
    assert batch.references[0] == records[0].raws


def test_truncate_and_collate_errors() -> None:
    assert truncate_caption([1, 5, 6, 7, 2], 2, end_id=2) == [1, 5, 6, 2]
    assert truncate_caption([1, 5, 2], 2, end_id=2) == [1, 5, 2]
    items = [CaptionItem(torch.zeros(3, 4, 4), torch.tensor([1, 2]), 0, ["x"]),
             CaptionItem(torch.zeros(3, 5, 5), torch.tensor([1, 2]), 1, ["y"])]  # fmt: skip
    with pytest.raises(DataError, match="different sizes"):
        collate_captions(items)


# ---- Hugging Face datasets ----------------------------------------------------------------------------


def _hf_saved(tmp_path: Path) -> Path:
    import datasets

    def split(offset: int, count: int) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {
                "img": [_image(offset + i) for i in range(count)],
                "text": [[f"A red thing {offset + i}.", "Another caption"] for i in range(count)],
            }
        ).cast_column("img", datasets.Image())

    path = tmp_path / "saved"
    datasets.DatasetDict({"train": split(0, 6), "validation": split(10, 3)}).save_to_disk(str(path))
    return path


def test_hf_save_to_disk_records(tmp_path) -> None:
    path = _hf_saved(tmp_path)
    splits = read_hf_captions(path, image_column="img", caption_column="text")
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "validation": 3}
    record = splits["validation"][2]
    assert record.image_id == 2 and record.path is None
    assert record.raws == ["A red thing 12.", "Another caption"] and record.tokens[0] == [
        "a",
        "red",
        "thing",
        "12",
    ]
    assert np.array_equal(np.asarray(record.load_image()), np.asarray(_image(12)))
    with pytest.raises(DataError, match="no column 'caption'"):
        read_hf_captions(path, image_column="img")


def test_hf_imagefolder_records(tmp_path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    rows = []
    for i in range(4):
        _image(i).convert("L").save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "caption": f"gray picture {i}", "image_id": 50 + i})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    records = read_hf_captions(folder, cache_dir=tmp_path / "hf-cache")["train"]
    assert sorted(r.image_id for r in records) == [50, 51, 52, 53]
    by_id = {r.image_id: r for r in records}
    assert by_id[52].raws == ["gray picture 2"] and by_id[52].load_image().mode == "RGB"
    with pytest.raises(DataError, match="neither a folder written by save_to_disk"):
        read_hf_captions(tmp_path / "hf-cache", splits=["train"])


# ---- DataModules --------------------------------------------------------------------------------------


def _check_batch(batch: CaptionBatch, size: int, vocab: Vocabulary, max_length: int) -> None:
    assert batch.images.shape[1:] == (3, size, size) and batch.images.dtype == torch.float32
    assert batch.captions.shape == batch.caption_mask.shape and batch.captions.shape[1] <= max_length + 2
    assert torch.all(batch.captions[:, 0] == vocab.start_id)
    lengths = batch.caption_mask.sum(1)  # [B]
    assert torch.all(batch.captions[torch.arange(len(batch)), lengths - 1] == vocab.end_id)
    assert torch.all(batch.captions[~batch.caption_mask] == vocab.pad_id)
    assert len(batch.references) == len(batch) == batch.image_ids.shape[0]


def test_shapes_datamodule_end_to_end(tmp_path) -> None:
    torch.manual_seed(0)
    spec = {
        "name": "shapes",
        "num_images": 40,
        "batch_size": 8,
        "cache_dir": str(tmp_path),
        "max_caption_length": 6,
    }
    dm = build(CAPTION_DATASETS, spec, path="data")
    assert isinstance(dm, ShapesCaptionsDataModule)
    with pytest.raises(DataError, match="setup"):
        _ = dm.vocab
    dm.prepare_data()
    dm.setup("fit")
    assert dm.vocab_size == len(dm.vocab) > 20 and "circle" in dm.vocab
    dm.image_transform = SMALL
    train = list(dm.train_dataloader())
    assert sum(len(b) for b in train) == 32 * 5 and len(train) == 20
    _check_batch(train[0], 24, dm.vocab, 6)
    val = list(dm.val_dataloader())
    assert [len(b) for b in val] == [4] and len(val[0].references[0]) == 5
    test_ids = next(iter(dm.dataloader_for("test"))).image_ids.tolist()
    assert test_ids == [36, 37, 38, 39]
    assert dm.record_for(37).path.name == "000037.png"
    dm.setup("test")  # idempotent
    assert dm.vocab_size == len(dm.vocab)


def test_shapes_datamodule_setup_without_prepare_and_restored_vocab(tmp_path) -> None:
    restored = Vocabulary.from_words(["a", "red", "circle"])
    dm = ShapesCaptionsDataModule(num_images=20, cache_dir=str(tmp_path), batch_size=4, in_memory=False)
    dm.vocab = restored
    dm.setup("validate")  # generates because prepare_data() was not called
    assert dm.vocab is restored and dm.vocab_size == 7
    dm.image_transform = SMALL
    batch = next(iter(dm.val_dataloader()))
    assert set(batch.captions.flatten().tolist()) <= set(range(7))
    state = dm.state_dict()
    other = ShapesCaptionsDataModule(num_images=20, cache_dir=str(tmp_path))
    other.load_state_dict(state)
    assert other.vocab == restored


def test_karpathy_datamodule(tmp_path) -> None:
    path = _karpathy(tmp_path)
    dm = KarpathyCaptionsDataModule(str(path), batch_size=3, max_images=None)
    dm.setup()
    dm.image_transform = SMALL
    assert len(dm.train_dataloader().dataset) == 6  # train + restval images, 2 captions each
    _check_batch(next(iter(dm.train_dataloader())), 24, dm.vocab, 20)
    assert len(dm.dataloader_for("restval").dataset) == 1
    assert next(iter(dm.test_dataloader())).image_ids.tolist() == [1004, 5]
    with pytest.raises(DataError, match="unknown split 'dev'"):
        dm.dataloader_for("dev")
    capped = KarpathyCaptionsDataModule(str(path), train_splits=["train"], max_images=1)
    capped.setup()
    assert len(capped.records("train")) == 1
    wrong_root = KarpathyCaptionsDataModule(str(path), image_root=str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match="data.image_root"):
        wrong_root.setup()
    with pytest.raises(ConfigError, match="batch_size"):
        KarpathyCaptionsDataModule(str(path), batch_size=0)


def test_hf_datamodule(tmp_path) -> None:
    path = _hf_saved(tmp_path)
    spec = {"name": "hf", "path": str(path), "image_column": "img", "caption_column": "text", "batch_size": 4}
    dm = build(CAPTION_DATASETS, spec, path="data")
    assert isinstance(dm, HFCaptionsDataModule)
    dm.setup()
    dm.image_transform = SMALL
    train = list(dm.train_dataloader())
    assert sum(len(b) for b in train) == 12
    _check_batch(train[0], 24, dm.vocab, 20)
    assert [len(b) for b in dm.val_dataloader()] == [3]
    assert len(dm.test_dataloader().dataset) == 0  # no test split in this dataset


def test_registry_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="batch_sise"):
        build(CAPTION_DATASETS, {"name": "shapes", "batch_sise": 3}, path="data")
    with pytest.raises(ConfigError, match="annotations"):
        build(CAPTION_DATASETS, {"name": "karpathy"}, path="data")
