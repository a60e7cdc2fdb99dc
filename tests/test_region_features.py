"""Region features: the bottom-up TSV and the per-image directories round-trip into one store (counts, masks,
values, box features), the ``regions`` encoder unpacks them with masks, bad input is one line naming the file
and the id (also through ``vltk data regions``), and a tiny captioner trains on the shapes' object boxes with
zero attention on padded regions."""

from __future__ import annotations

import base64
import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CAPTIONING
from PIL import Image
from test_cli_errors import assert_one_line_error
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.config import to_dict
from vltk.data.region_features import (
    RegionFeatureStore,
    box_features,
    read_region_manifest,
    write_region_store,
)
from vltk.data.region_formats import TSV_FIELDNAMES, read_bottom_up_tsv
from vltk.encoders import IMAGE_ENCODERS, RegionFeatureEncoder
from vltk.errors import ConfigError, DataError
from vltk.registry import build
from vltk.tasks import CaptioningTask
from vltk.tasks.captioning.batch import CaptionBatch
from vltk.tasks.captioning.regions import make_region_store
from vltk.tasks.captioning.shape_regions import (
    build_crop_encoder,
    crop_box,
    ensure_shapes_region_store,
    region_vectors,
)
from vltk.tasks.captioning.shapes import generate_shapes
from vltk.tasks.runner import (
    available_configs,
    build_datamodule,
    load_system,
    load_task_config,
    task_entry,
    train,
)
from vltk.text import Vocabulary

runner = CliRunner()
D = 6
COUNTS = {101: 2, 7: 5, 55: 3}  # image id -> regions, in file order
SIZE = {101: (640, 480), 7: (500, 375), 55: (320, 320)}  # width, height
NO_ENCODER = [value for value in TINY_CAPTIONING if not value.startswith("model.encoder")]


def _regions(image_id: int, count: int, dim: int = D) -> tuple[np.ndarray, np.ndarray]:
    """``[count, dim]`` features and ``[count, 4]`` boxes inside the image, float32."""
    rng = np.random.default_rng(image_id)
    width, height = SIZE.get(image_id, (100, 100))
    corners = np.sort(rng.uniform(0, 1, size=(count, 2, 2)), axis=1)  # [count, (lo, hi), (x, y)]
    boxes = np.concatenate([corners[:, 0], corners[:, 1]], axis=1) * [width, height, width, height]
    return rng.normal(size=(count, dim)).astype(np.float32), boxes.astype(np.float32)


def write_tsv(path: Path, rows: list[dict]) -> Path:
    """Rows exactly as ``generate_tsv.py`` writes them: ``csv.DictWriter`` with a tab delimiter, no header,
    ``boxes`` and ``features`` as the base64 of the float32 arrays' bytes."""
    with open(path, "w", newline="", encoding="ascii") as handle:
        writer = csv.DictWriter(handle, delimiter="\t", fieldnames=TSV_FIELDNAMES)
        for row in rows:
            writer.writerow(row)
    return path


def tsv_row(image_id: int, count: int, dim: int = D) -> dict:
    features, boxes = _regions(image_id, count, dim)
    width, height = SIZE.get(image_id, (100, 100))
    return {
        "image_id": image_id,
        "image_w": width,
        "image_h": height,
        "num_boxes": count,
        "boxes": base64.b64encode(boxes.tobytes()).decode("ascii"),
        "features": base64.b64encode(features.tobytes()).decode("ascii"),
    }


def write_dirs(root: Path, counts: dict[int, int] = COUNTS) -> tuple[Path, Path, Path]:
    """``make_bu_data.py``'s layout: ``att/ID.npz`` (key ``feat``), ``fc/ID.npy``, ``box/ID.npy``."""
    att, fc, box = (root / name for name in ("att", "fc", "box"))
    for directory in (att, fc, box):
        directory.mkdir(parents=True)
    for image_id, count in counts.items():
        features, boxes = _regions(image_id, count)
        np.savez_compressed(att / str(image_id), feat=features)
        np.save(fc / str(image_id), features.mean(0) + 1.0)
        np.save(box / str(image_id), boxes)
    return att, fc, box


@pytest.fixture
def tsv_store(tmp_path: Path) -> Path:
    source = write_tsv(tmp_path / "bu.tsv", [tsv_row(i, n) for i, n in COUNTS.items()])
    make_region_store(tmp_path / "store", tsv=[source])
    return tmp_path / "store"


# ------------------------------------------------------------------------------------ the two layouts


def test_a_tsv_round_trips_with_counts_boxes_sizes_and_masks(tsv_store: Path):
    manifest = read_region_manifest(tsv_store)
    assert (manifest.format, manifest.num_images, manifest.num_regions) == ("bottom-up-tsv", 3, 10)
    assert (manifest.min_regions, manifest.max_regions, manifest.dim) == (2, 5, D)
    assert manifest.has_boxes and not manifest.has_fc and manifest.sizes_from == "tsv"
    assert json.loads((tsv_store / "image_ids.json").read_text()) == [101, 7, 55]  # the file's order
    assert np.load(tsv_store / "offsets.npy").tolist() == [0, 2, 7, 10]
    assert np.load(tsv_store / "features.npy").dtype == np.float16
    store = RegionFeatureStore(tsv_store, verify=True)
    for image_id, count in COUNTS.items():
        features, boxes = _regions(image_id, count)
        stored = store.regions(image_id)
        np.testing.assert_allclose(stored.features, features, atol=2e-3, rtol=1e-3)  # float16
        np.testing.assert_array_equal(stored.boxes, boxes)
        assert stored.size == SIZE[image_id]
        packed = store.lookup(image_id)  # [1 + N_max, D + 1]
        assert packed.shape == (6, D + 1) and packed.dtype == torch.float32
        assert packed[1:, -1].tolist() == [1.0] * count + [0.0] * (5 - count)
        assert torch.count_nonzero(packed[1 + count :]) == 0  # padding rows are zero
        torch.testing.assert_close(packed[0, :-1], packed[1 : 1 + count, :-1].mean(0))  # no fc: the mean


def test_directories_round_trip_with_fc_and_sizes_from_a_json_or_the_largest_corner(tmp_path: Path):
    att, fc, box = write_dirs(tmp_path)
    sizes = tmp_path / "sizes.json"
    images = [{"id": i, "width": w, "height": h, "file_name": "x"} for i, (w, h) in SIZE.items()]
    sizes.write_text(json.dumps({"images": images}))
    manifest = make_region_store(tmp_path / "store", att_dir=att, fc_dir=fc, box_dir=box, sizes=[sizes])
    assert manifest.format == "directories" and manifest.has_fc and manifest.has_boxes
    assert manifest.sizes_from == str(sizes)
    store = RegionFeatureStore(tmp_path / "store", box_features=True)
    assert list(store) == [7, 55, 101] and store.dim == D + 5  # id order
    for image_id, count in COUNTS.items():
        features, boxes = _regions(image_id, count)
        packed = store.lookup(image_id)  # [1 + 5, D + 5 + 1]
        np.testing.assert_allclose(packed[1 : 1 + count, :D], features, atol=2e-3, rtol=1e-3)
        expected = box_features(boxes, *SIZE[image_id])
        np.testing.assert_allclose(packed[1 : 1 + count, D:-1], expected, rtol=1e-6)
        fc_vector = np.load(fc / f"{image_id}.npy")
        np.testing.assert_allclose(packed[0, :D], fc_vector, atol=2e-3, rtol=1e-3)  # pooled = the fc file
        assert packed[0, D:-1].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # the fc's box: the whole image
    make_region_store(tmp_path / "corner", att_dir=att, box_dir=box)
    cornered = RegionFeatureStore(tmp_path / "corner", box_features=True)
    assert cornered.manifest.sizes_from == "largest box corner" and not cornered.manifest.has_fc
    x2_over_w = cornered.lookup(7)[1:6, D + 2]  # [5]
    assert float(x2_over_w.max()) == pytest.approx(1.0)


def test_box_features_are_the_five_numbers():
    boxes = np.array([[10.0, 20.0, 110.0, 70.0], [0.0, 0.0, 200.0, 100.0]], dtype=np.float32)
    features = box_features(boxes, 200.0, 100.0)  # x1/w, y1/h, x2/w, y2/h, area / (w h)
    np.testing.assert_allclose(features, [[0.05, 0.2, 0.55, 0.7, 0.25], [0.0, 0.0, 1.0, 1.0, 1.0]])


# --------------------------------------------------------------------------------------- the encoder


def test_the_encoder_unpacks_masks_and_pools_the_fc_or_the_masked_mean(tsv_store: Path, tmp_path: Path):
    encoder = build(IMAGE_ENCODERS, {"name": "regions", "path": str(tsv_store), "box_features": True})
    assert isinstance(encoder, RegionFeatureEncoder) and encoder.out_dim == D + 5
    store = encoder.transforms()
    assert isinstance(store, RegionFeatureStore) and store.box_features
    packed = torch.stack([store.lookup(101), store.lookup(55)])  # [2, 6, D + 6]: 2 and 3 regions
    features = encoder(packed)
    assert features.grid.shape == (2, 3, D + 5)  # cut to the batch's largest count
    assert features.mask.tolist() == [[True, True, False], [True, True, True]]
    mean = (features.grid * features.mask.unsqueeze(-1)).sum(1) / features.mask.sum(
        1, keepdim=True
    )  # [2, D']
    torch.testing.assert_close(features.pooled, mean)
    with pytest.raises(ValueError, match="reads a region store, not images"):
        encoder(torch.zeros(2, 3, 64, 64))
    att, fc, _ = write_dirs(tmp_path / "dirs")
    make_region_store(tmp_path / "fc_store", att_dir=att, fc_dir=fc)
    with_fc = RegionFeatureEncoder(path=str(tmp_path / "fc_store"))
    pooled = with_fc(with_fc.transforms().lookup(7).unsqueeze(0)).pooled  # [1, D]
    np.testing.assert_allclose(pooled[0], np.load(fc / "7.npy"), atol=2e-3, rtol=1e-3)
    with pytest.raises(ConfigError, match="model.encoder.box_features: the region store .* has no boxes"):
        RegionFeatureEncoder(path=str(tmp_path / "fc_store"), box_features=True)


def test_the_store_pickles_without_its_maps(tsv_store: Path):
    store = RegionFeatureStore(tsv_store)
    row = store.lookup(7)
    assert store._maps
    clone = pickle.loads(pickle.dumps(store))
    assert clone._maps == {} and torch.equal(clone.lookup(7), row)
    assert store.missing([7, 8]) == [8]
    with pytest.raises(DataError, match="image id 8 is not in the region store"):
        store.lookup(8)


# --------------------------------------------------------------------------------------- bad input


def _bad_tsv(tmp_path: Path, kind: str) -> tuple[Path, list[str]]:
    rows = [tsv_row(101, 2), tsv_row(7, 3)]
    if kind == "zero regions":
        rows[1].update(num_boxes=0, boxes="", features="")
    elif kind == "feature size":
        rows[1] = tsv_row(7, 3, dim=D + 2)
    elif kind == "base64":
        rows[1]["features"] = rows[1]["features"][:-8] + "!!!!!!!!"
    elif kind == "truncated":
        rows[1]["boxes"] = base64.b64encode(np.zeros((2, 4), np.float32).tobytes()).decode()  # of 3
    elif kind == "repeated id":
        rows[1] = tsv_row(101, 2)
    path = write_tsv(tmp_path / "bad.tsv", rows)
    needles = {
        "zero regions": ["line 2", "image id 7 has 0 regions"],
        "feature size": ["line 2", "image id 7 has 8-dimensional", "line 1) has 6"],
        "base64": ["line 2 (image id 7)", "features field is not base64"],
        "truncated": ["line 2 (image id 7)", "boxes field holds 32 bytes, expected 3 x 4 float32 = 48"],
        "repeated id": ["line 2: image id 101 was already read from", "bad.tsv line 1"],
    }[kind]
    return path, [str(path), *needles]


@pytest.mark.parametrize("kind", ["zero regions", "feature size", "base64", "truncated", "repeated id"])
def test_a_bad_tsv_is_one_line_naming_the_file_the_line_and_the_id(tmp_path: Path, kind: str):
    path, needles = _bad_tsv(tmp_path, kind)
    with pytest.raises(DataError) as error:
        make_region_store(tmp_path / "store", tsv=[path])
    assert "\n" not in str(error.value) and all(needle in str(error.value) for needle in needles)
    assert not (tmp_path / "store" / "manifest.json").exists()
    assert not (tmp_path / "store" / "features.npy").exists()  # what was written is removed
    result = runner.invoke(app, ["data", "regions", "--tsv", str(path), "--out", str(tmp_path / "cli")])
    assert_one_line_error(result, *needles)


def test_bad_directories_name_the_file_and_the_id(tmp_path: Path):
    att, fc, box = write_dirs(tmp_path)  # ids 7, 55, 101 are read in this order
    np.savez(att / "7.npz", x=np.zeros((3, D), np.float32))  # the key is not 'feat'
    with pytest.raises(DataError, match=r"att/7\.npz: image id 7: no 'feat' array \(keys: x\)"):
        make_region_store(tmp_path / "a", att_dir=att)
    np.savez(att / "7.npz", feat=np.zeros((0, D), np.float32))
    with pytest.raises(DataError, match=r"att/7\.npz: image id 7 has no regions"):
        make_region_store(tmp_path / "b", att_dir=att)
    np.savez(att / "7.npz", feat=np.zeros((4, D), np.float32))  # box/7.npy holds 5 boxes
    with pytest.raises(DataError, match=r"box/7\.npy: image id 7: boxes of shape \[5, 4\] for 4 regions"):
        make_region_store(tmp_path / "c", att_dir=att, box_dir=box)
    np.savez(att / "55.npz", feat=np.zeros((3, D + 1), np.float32))
    with pytest.raises(
        DataError, match=r"att/55\.npz: image id 55 has 7-dimensional .* \(.*att/7\.npz\) has 6"
    ):
        make_region_store(tmp_path / "d", att_dir=att)
    (att / "55.npz").unlink()
    np.save(att / "55.npy", np.zeros((3, D), np.float32))  # an .npy att file is read too
    np.save(fc / "55.npy", np.zeros(D + 2, np.float32))
    result = runner.invoke(
        app, ["data", "regions", "--att-dir", str(att), "--out", str(tmp_path / "e"), "--fc-dir", str(fc)]
    )
    assert_one_line_error(result, f"{fc / '55.npy'}: image id 55: an fc vector of 8 numbers for 6-dim")


def test_ids_that_do_not_match_the_annotations_are_named(tmp_path: Path, tsv_store: Path):
    shapes = ["--set", "data.num_images=20"]  # image ids 0..19
    source = write_tsv(tmp_path / "bu.tsv", [tsv_row(3, 2), tsv_row(101, 2)])
    result = runner.invoke(
        app, ["data", "regions", "--tsv", str(source), "--out", str(tmp_path / "a"), *shapes]
    )
    assert_one_line_error(result, f"{source} line 2: image id 101 is not in the annotations")
    att, _, _ = write_dirs(tmp_path / "dirs")
    result = runner.invoke(
        app, ["data", "regions", "--att-dir", str(att), "--out", str(tmp_path / "b"), *shapes]
    )
    assert_one_line_error(result, f"{att}: 2 image id(s) are not in the annotations", "e.g. 55, 101")
    partial = write_tsv(tmp_path / "partial.tsv", [tsv_row(3, 2)])
    ids = {"expected_ids": range(20), "expected_from": "the annotations X"}
    with pytest.raises(
        DataError, match=r"partial\.tsv: 19 image id\(s\) of the annotations X have no region "
    ):
        write_region_store(
            read_bottom_up_tsv(partial), tmp_path / "c", format="t", dataset=str(partial), **ids
        )


def test_the_command_refuses_two_sources_and_options_of_another(tmp_path: Path, tsv_store: Path):
    args = ["data", "regions", "--out", str(tmp_path / "x")]
    assert_one_line_error(runner.invoke(app, args), "give one source")
    assert_one_line_error(
        runner.invoke(app, [*args, "--tsv", "a.tsv", "--att-dir", "d"]), "--tsv and --att-dir"
    )
    assert_one_line_error(
        runner.invoke(app, [*args, "--tsv", "a.tsv", "--box-dir", "d"]), "go with --att-dir"
    )
    assert_one_line_error(runner.invoke(app, [*args, "--tsv", str(tmp_path / "none.tsv")]), "TSV not found")
    result = runner.invoke(
        app, ["data", "regions", "--out", str(tsv_store), "--tsv", str(tmp_path / "bu.tsv")]
    )
    assert_one_line_error(result, "already holds a region-feature store")


# ------------------------------------------------------------------------------- the shapes' boxes


def test_from_boxes_makes_one_region_per_object_at_its_box(tmp_path: Path):
    out = tmp_path / "store"
    args = ["data", "regions", "--from-boxes", "--set", "data.num_images=20", "--device", "cpu", "--out"]
    result = runner.invoke(app, [*args, str(out)])
    assert result.exit_code == 0, result.output
    assert "model.encoder.name=regions" in result.output
    store = RegionFeatureStore(out)  # the default config's CNN: 128 channels, 2x2 cells
    assert store.manifest.dim == 128 * 4 and store.manifest.has_fc and store.manifest.sizes_from == "image"
    entries = json.loads(Path(store.manifest.dataset).read_text())["images"]
    assert len(store) == 20 and store.manifest.num_regions == sum(len(e["scene"]["objects"]) for e in entries)
    for entry in entries[:5]:
        stored = store.regions(entry["imgid"])
        objects = entry["scene"]["objects"]
        boxes = [[o["x"] - o["r"], o["y"] - o["r"], o["x"] + o["r"], o["y"] + o["r"]] for o in objects]
        np.testing.assert_allclose(stored.boxes, boxes, rtol=1e-6)
        assert stored.size == (64.0, 64.0)
    encoder, _ = build_crop_encoder(load_task_config("captioning").model.encoder)  # seeded as the command's
    entry = entries[0]
    image = Image.open(Path(store.manifest.dataset).parent / entry["filepath"] / entry["filename"]).convert(
        "RGB"
    )
    crop = image.crop(crop_box(store.regions(entry["imgid"]).boxes[0], 0.25, 64, 64))
    with torch.no_grad():
        expected = region_vectors(encoder(encoder.transforms()(crop).unsqueeze(0)), cells=2)[0]  # [512]
    np.testing.assert_allclose(store.regions(entry["imgid"]).features[0], expected, atol=2e-3, rtol=2e-3)
    result = runner.invoke(app, [*args, str(tmp_path / "mean"), "--cells", "1"])
    assert result.exit_code == 0 and RegionFeatureStore(tmp_path / "mean").manifest.dim == 128


def test_a_built_in_store_is_made_once_and_refused_for_other_images(tmp_path: Path):
    small = generate_shapes(tmp_path / "small", num_images=12)
    store = str(tmp_path / "regions")
    path = ensure_shapes_region_store(small, store)
    written = (path / "features.npy").stat().st_mtime_ns
    assert (
        ensure_shapes_region_store(small, store) == path
        and (path / "features.npy").stat().st_mtime_ns == written
    )
    larger = generate_shapes(tmp_path / "larger", num_images=14)
    with pytest.raises(DataError, match=r"has 12 images, not images 12, 13 of .*; delete .* or name another"):
        ensure_shapes_region_store(larger, store)
    other = generate_shapes(tmp_path / "other", num_images=12, seed=1)
    with pytest.raises(DataError, match=r"holds region features of other images or crop settings"):
        ensure_shapes_region_store(other, store)


# ------------------------------------------------------------------------------------------ training


def _packed_batch(store: RegionFeatureStore, vocab: Vocabulary) -> CaptionBatch:
    images = torch.stack([store.lookup(i) for i in store])  # [B, 1 + N_max, D' + 1]
    captions = torch.tensor([[vocab.start_id, 4, 5, vocab.end_id]] * len(images))  # [B, T]
    return CaptionBatch(
        images=images,
        captions=captions,
        caption_mask=captions != vocab.pad_id,
        image_ids=torch.arange(len(images)),
        references=[["a"]] * len(images),
    )


REGION_CONFIGS = [
    name
    for name in available_configs("captioning")
    if load_task_config("captioning", name).model.encoder["name"] == "regions"
]


@pytest.mark.parametrize("config", REGION_CONFIGS)
def test_every_shipped_regions_config_builds_and_trains_one_batch(tsv_store: Path, config: str):
    assert "regions" in REGION_CONFIGS
    vocab = Vocabulary.build([["a", "red", "circle"]])
    cfg = load_task_config("captioning", config, [f"model.encoder.path={tsv_store}"])
    if cfg.data["name"] == "shapes":  # the built-in store (the COCO recipes read one of `vltk data regions`)
        assert cfg.model.encoder["box_features"] and cfg.data["region_store"] == "cache:shapes-boxes"
    system = CaptioningTask(config=to_dict(cfg), vocab=vocab.to_json())
    loss, cross_entropy, _ = system._loss(_packed_batch(system.model.encoder.transforms(), vocab))
    assert torch.isfinite(loss) and cross_entropy > 0
    loss.backward()
    trainable = [p for p in system.model.decoder.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)


def test_a_tiny_captioner_trains_on_shapes_boxes_and_never_attends_to_padding(tmp_path: Path):
    store = tmp_path / "shapes-boxes"  # made on first use by data.region_store
    overrides = [*NO_ENCODER, f"data.region_store={store}", f"model.encoder.path={store}"]
    cfg = load_task_config("captioning", "regions", overrides)
    result = train(cfg, run_dir=tmp_path / "run")
    assert "CIDEr" in result.metrics and read_region_manifest(store).num_images == 48
    system = load_system(tmp_path / "run" / "checkpoints" / "best.ckpt").eval()
    datamodule = build_datamodule(task_entry("captioning"), system.config)
    system.attach_data(datamodule)
    datamodule.setup("test")
    batch = next(iter(datamodule.dataloader_for("val")))
    with torch.no_grad():
        features = system.model.encode(batch.images)  # grid [B, N, D + 5], mask [B, N]
        attention = system.model.teacher_forcing(features, batch.captions).attention  # [B, T-1, N]
    mask = features.mask.unsqueeze(1).expand_as(attention)  # [B, T-1, N]
    assert not features.mask.all() and features.grid.shape[-1] == 128 * 4 + 5
    assert torch.count_nonzero(attention[~mask]) == 0
    torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:2]))
