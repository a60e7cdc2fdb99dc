"""R2R view features (vltk.tasks.navigation.r2r.features): the view convention, the published TSV layout, the
memory-mapped store, features from a vltk CNN over view images, and `vltk data r2r-features`."""

from __future__ import annotations

import base64
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_cli_errors import assert_one_line_error
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.errors import ConfigError, DataError
from vltk.tasks.navigation.r2r.features import (
    ELEVATIONS,
    HEADINGS,
    VIEWS,
    StoreWriter,
    ViewFeatures,
    ViewFeatureStore,
    build_view_encoder,
    convert_tsv,
    encode_views,
    featurise_view_images,
    nearest_view,
    read_feature_tsv,
    view_elevation,
    view_heading,
    write_feature_tsv,
)
from vltk.tasks.navigation.r2r.graph import read_connectivity

runner = CliRunner()
DIM = 8
TINY_CNN = {"name": "small_cnn", "channels": [4, 6], "image_size": 8}


def _rows(scan: str, viewpoints: list[str], seed: int = 0) -> list[ViewFeatures]:
    rng = np.random.default_rng(seed)
    return [
        ViewFeatures(scan, vp, 640, 480, 60, rng.standard_normal((VIEWS, DIM)).astype(np.float32))
        for vp in viewpoints
    ]


def _tsv(path: Path, rows: list[ViewFeatures]) -> Path:
    write_feature_tsv(path, rows)
    return path


# ---------------------------------------------------------------------------------------------- views


def test_the_view_order_is_the_simulators():
    assert (VIEWS, HEADINGS, ELEVATIONS) == (36, 12, 3)
    assert view_heading(0) == 0 and view_elevation(0) == pytest.approx(math.radians(-30))
    assert view_heading(13) == pytest.approx(math.radians(30)) and view_elevation(13) == 0
    assert view_heading(35) == pytest.approx(math.radians(330))
    assert view_elevation(35) == pytest.approx(math.radians(30))
    assert [nearest_view(view_heading(ix), view_elevation(ix)) for ix in range(VIEWS)] == list(range(VIEWS))


def test_nearest_view_wraps_the_heading_and_clamps_the_elevation():
    assert nearest_view(-math.radians(10), 0.0) == 12  # 350 deg: nearest is heading 0, level
    assert nearest_view(2 * math.pi + math.radians(31), 0.0) == 13
    assert nearest_view(math.radians(100), math.radians(80)) == 24 + 3  # clamped to +30 deg
    assert nearest_view(math.radians(100), -math.radians(80)) == 3  # clamped to -30 deg
    assert nearest_view(math.radians(14), math.radians(14)) == 12


# ------------------------------------------------------------------------------------------------ TSV


def test_tsv_round_trip_is_identical(tmp_path):
    rows = _rows("scanA", ["v0", "v1", "v2"])
    path = _tsv(tmp_path / "a.tsv", rows)
    back = list(read_feature_tsv(path))
    assert [(r.scan, r.viewpoint, r.image_w, r.image_h, r.vfov) for r in back] == [
        ("scanA", vp, 640, 480, 60.0) for vp in ("v0", "v1", "v2")
    ]
    for original, read in zip(rows, back):
        assert read.features.dtype == np.float32
        np.testing.assert_array_equal(read.features, original.features)


def test_a_row_in_the_official_layout_is_decoded(tmp_path):
    """One row built as build_tsv writes it: csv tab-separated, base64 of the float32 [36, 2048] bytes."""
    features = np.arange(VIEWS * 2048, dtype=np.float32).reshape(VIEWS, 2048) / 7
    encoded = base64.b64encode(features.tobytes()).decode("ascii")
    line = "\t".join(["17DRP5sb8fy", "5b9b2794954e4694a45fc424a8643081", "640", "480", "60", encoded])
    path = tmp_path / "official.tsv"
    path.write_bytes((line + "\r\n").encode("ascii"))
    (row,) = read_feature_tsv(path)
    assert (row.scan, row.viewpoint, row.image_w, row.image_h, row.vfov) == (
        "17DRP5sb8fy",
        "5b9b2794954e4694a45fc424a8643081",
        640,
        480,
        60.0,
    )
    np.testing.assert_array_equal(row.features, features)
    rewritten = _tsv(tmp_path / "again.tsv", [row])
    assert rewritten.read_bytes() == path.read_bytes()  # byte-compatible both ways


BAD_ROWS = [
    ("s\tv\t640\t480\n", "4 tab-separated fields, expected 6"),
    ("s\tv\twide\t480\t60\tAAAA\n", "image_w, image_h and vfov must be numbers"),
    ("s\tv\t640\t480\t60\tnot base64!\n", "not base64"),
    (f"s\tv\t640\t480\t60\t{base64.b64encode(bytes(36 * 4 + 4)).decode()}\n", "148 bytes"),
]


@pytest.mark.parametrize(("text", "message"), BAD_ROWS)
def test_bad_rows_are_named_by_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    good = _tsv(tmp_path / "good.tsv", _rows("s", ["v0"])).read_text()
    path.write_text(good + good + text)
    with pytest.raises(DataError, match=message) as error:
        list(read_feature_tsv(path))
    assert f"{path} line 3" in str(error.value) and "\n" not in str(error.value)
    path.write_text(text + good)
    with pytest.raises(DataError, match=message):
        list(read_feature_tsv(path))


def test_a_row_of_another_dimension_is_refused(tmp_path):
    rows = _rows("s", ["v0"]) + [ViewFeatures("s", "v1", 640, 480, 60, np.zeros((VIEWS, 4), np.float32))]
    path = _tsv(tmp_path / "mixed.tsv", rows)
    with pytest.raises(DataError, match=r"line 2: the features hold 576 bytes, expected 36 views x 8"):
        list(read_feature_tsv(path))


# ---------------------------------------------------------------------------------------------- store


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_convert_tsv_stores_every_row(tmp_path, dtype):
    first, second = _rows("scanA", ["v0", "v1"]), _rows("scanB", ["w0"], seed=1)
    paths = [_tsv(tmp_path / "a.tsv", first), _tsv(tmp_path / "b.tsv", second)]
    store = convert_tsv(paths, tmp_path / "store", dtype=dtype, progress=False)
    assert len(store) == 3 and store.dim == DIM
    assert store.keys() == [("scanA", "v0"), ("scanA", "v1"), ("scanB", "w0")]
    assert ("scanB", "w0") in store and ("scanB", "v0") not in store
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("dim", "dtype", "image_w", "image_h", "vfov", "count")} == {
        "dim": DIM, "dtype": dtype, "image_w": 640, "image_h": 480, "vfov": 60.0, "count": 3,
    }  # fmt: skip
    views = np.load(tmp_path / "store" / "views.npy", mmap_mode="r")
    assert views.shape == (3, VIEWS, DIM) and views.dtype == np.dtype(dtype)
    reopened = pickle.loads(pickle.dumps(ViewFeatureStore.open(tmp_path / "store")))
    for row in first + second:
        got = reopened.features(row.scan, row.viewpoint)
        assert got.dtype == np.float32 and got.shape == (VIEWS, DIM)
        np.testing.assert_array_equal(got, row.features.astype(dtype).astype(np.float32))
    both = reopened.rows([("scanB", "w0"), ("scanA", "v0")])
    np.testing.assert_array_equal(both[1], reopened.features("scanA", "v0"))
    assert both.shape == (2, VIEWS, DIM)


def test_a_missing_viewpoint_is_named(tmp_path):
    store = convert_tsv([_tsv(tmp_path / "a.tsv", _rows("scanA", ["v0"]))], tmp_path / "s", progress=False)
    message = f"view features: viewpoint v9 of scan scanA is missing from {tmp_path / 's'}"
    with pytest.raises(DataError, match=message):
        store.features("scanA", "v9")
    with pytest.raises(DataError, match=message):
        store.rows([("scanA", "v0"), ("scanA", "v9")])


def test_a_viewpoint_repeated_across_files_is_refused(tmp_path):
    paths = [_tsv(tmp_path / "a.tsv", _rows("s", ["v0", "v1"])), _tsv(tmp_path / "b.tsv", _rows("s", ["v1"]))]
    with pytest.raises(DataError, match=r"b.tsv row 1: viewpoint v1 of scan s appears a second time"):
        convert_tsv(paths, tmp_path / "store", progress=False)


def test_an_existing_store_and_a_bad_dtype_are_refused(tmp_path):
    path = _tsv(tmp_path / "a.tsv", _rows("s", ["v0"]))
    convert_tsv([path], tmp_path / "store", progress=False)
    with pytest.raises(DataError, match="already holds a view-feature store"):
        convert_tsv([path], tmp_path / "store", progress=False)
    with pytest.raises(ConfigError, match="unknown view-feature dtype 'float8'"):
        convert_tsv([path], tmp_path / "other", dtype="float8", progress=False)
    with pytest.raises(DataError, match="has no rows"):
        convert_tsv([_tsv(tmp_path / "empty.tsv", [])], tmp_path / "other", progress=False)


def test_broken_stores_get_one_line(tmp_path):
    with pytest.raises(DataError, match="not a view-feature store"):
        ViewFeatureStore.open(tmp_path / "nowhere")
    store = tmp_path / "store"
    convert_tsv([_tsv(tmp_path / "a.tsv", _rows("s", ["v0", "v1"]))], store, progress=False)
    index = json.loads((store / "index.json").read_text())
    (store / "index.json").write_text(json.dumps(index[:1]))
    with pytest.raises(DataError, match=r"views.npy has shape \[2, 36, 8\] but index.json"):
        ViewFeatureStore.open(store)
    manifest = (store / "manifest.json").read_text()
    (store / "manifest.json").write_text("[]")
    with pytest.raises(DataError, match="manifest.json: expected a JSON object"):
        ViewFeatureStore.open(store)
    (store / "manifest.json").write_text(manifest)
    (store / "index.json").unlink()
    with pytest.raises(DataError, match="view-feature index file not found"):
        ViewFeatureStore.open(store)


def test_the_writer_refuses_wrong_shapes_repeats_and_float16_overflow(tmp_path):
    with StoreWriter(tmp_path / "w", DIM, "float16", {"source": "test"}) as writer:
        writer.add("s", "v0", np.zeros((VIEWS, DIM), np.float32))
        with pytest.raises(DataError, match="given twice"):
            writer.add("s", "v0", np.zeros((VIEWS, DIM), np.float32))
        with pytest.raises(DataError, match=r"expected \[36, 8\], got \[35, 8\]"):
            writer.add("s", "v1", np.zeros((VIEWS - 1, DIM), np.float32))
        with pytest.raises(DataError, match="overflow float16"):
            writer.add("s", "v1", np.full((VIEWS, DIM), 1e6, np.float32))
        store = writer.close()
    assert len(store) == 1 and store.manifest["source"] == "test"


def _pose(x: float, y: float) -> list[float]:
    return [1.0, 0.0, 0.0, x, 0.0, 1.0, 0.0, y, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_check_covers_names_the_first_missing_included_viewpoint(tmp_path):
    names = ["a", "b", "c", "x"]
    items = [
        {"image_id": name, "pose": _pose(i, 0), "included": name != "x", "visible": [True] * 4,
         "unobstructed": [abs(i - j) == 1 for j in range(4)], "height": 1.5}
        for i, name in enumerate(names)
    ]  # fmt: skip
    (tmp_path / "house_connectivity.json").write_text(json.dumps(items))
    graphs = {"house": read_connectivity(tmp_path, "house")}
    full = convert_tsv(
        [_tsv(tmp_path / "full.tsv", _rows("house", ["a", "b", "c"]))], tmp_path / "full", progress=False
    )
    full.check_covers(graphs)  # "x" is not included: not needed
    part = convert_tsv(
        [_tsv(tmp_path / "part.tsv", _rows("house", ["a", "c"]))], tmp_path / "part", progress=False
    )
    with pytest.raises(DataError, match=f"viewpoint b of scan house is missing from {tmp_path / 'part'}"):
        part.check_covers(graphs)


# ------------------------------------------------------------------------------------------ images


def test_encode_views_gives_one_vector_per_view():
    torch.manual_seed(0)
    encoder, _ = build_view_encoder(TINY_CNN)
    images = np.random.default_rng(0).integers(0, 256, (2, VIEWS, 12, 10, 3), dtype=np.uint8)
    features = encode_views(images, encoder, batch_size=16)
    assert features.shape == (2, VIEWS, 6) and features.dtype == np.float32
    single = encode_views(images[1:], encoder, batch_size=VIEWS)
    np.testing.assert_allclose(single[0], features[1], rtol=1e-5, atol=1e-6)  # batching does not matter
    with pytest.raises(ValueError, match=r"uint8 images \[N, 36, H, W, 3\]"):
        encode_views(images[:, :4], encoder)


def test_encode_views_pool_grid_keeps_where_things_are():
    """pool_grid 2: four cell means, row-major, whose mean is the global mean; the dimension is 4 x C."""
    from vltk.tasks.navigation.r2r.features import _pool

    grid = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)  # [B, 4x4 regions, C]
    cells = _pool(grid, 2)  # [B, 4 * 3]
    assert cells.shape == (2, 12)
    square = grid[0].reshape(4, 4, 3)  # row-major regions
    torch.testing.assert_close(cells[0, :3], square[:2, :2].reshape(-1, 3).mean(dim=0))  # top-left cell
    torch.testing.assert_close(cells[0, 9:], square[2:, 2:].reshape(-1, 3).mean(dim=0))  # bottom-right
    torch.testing.assert_close(cells.reshape(2, 4, 3).mean(dim=1), _pool(grid, 1))
    with pytest.raises(ValueError, match="square grid"):
        _pool(grid[:, :15], 2)


def _view_images(root: Path, scan: str, viewpoint: str, size=(10, 8), suffix=".png") -> None:
    (root / scan).mkdir(parents=True, exist_ok=True)
    for ix in range(VIEWS):
        Image.new("RGB", size, (ix * 7, 100, 255 - ix * 7)).save(
            root / scan / f"{viewpoint}_{ix:02d}{suffix}"
        )


def test_featurise_view_images_makes_a_store(tmp_path):
    images = tmp_path / "views"
    _view_images(images, "scanA", "v0")
    _view_images(images, "scanA", "v1", suffix=".jpg")
    _view_images(images, "scanB", "w0")
    torch.manual_seed(0)
    store = featurise_view_images(images, tmp_path / "store", TINY_CNN, batch_size=40, progress=False)
    assert store.keys() == [("scanA", "v0"), ("scanA", "v1"), ("scanB", "w0")]
    assert store.dim == 6 and store.manifest["image_w"] == 10 and store.manifest["image_h"] == 8
    assert store.manifest["vfov"] == 60 and store.manifest["encoder"]["name"] == "small_cnn"
    torch.manual_seed(0)
    encoder, _ = build_view_encoder(TINY_CNN)
    pixels = np.stack([np.asarray(Image.open(images / "scanB" / f"w0_{ix:02d}.png")) for ix in range(VIEWS)])
    expected = encode_views(pixels[None], encoder)[0]
    np.testing.assert_allclose(store.features("scanB", "w0"), expected, rtol=1e-5, atol=1e-6)


def test_missing_corrupt_and_odd_sized_view_images_are_named(tmp_path):
    images = tmp_path / "views"
    _view_images(images, "s", "v0")
    (images / "s" / "v0_17.png").unlink()
    with pytest.raises(DataError, match=r"s/v0_17.png\|jpg: view image missing"):
        featurise_view_images(images, tmp_path / "a", TINY_CNN, progress=False)
    (images / "s" / "v0_17.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"v0_17.png: not an image file"):
        featurise_view_images(images, tmp_path / "b", TINY_CNN, progress=False)
    Image.new("RGB", (11, 8)).save(images / "s" / "v0_17.png")
    with pytest.raises(DataError, match=r"v0_17.png: image is 11x8, the first view image is 10x8"):
        featurise_view_images(images, tmp_path / "c", TINY_CNN, progress=False)
    with pytest.raises(DataError, match="view-image directory not found"):
        featurise_view_images(tmp_path / "a", tmp_path / "d", TINY_CNN, progress=False)
    (tmp_path / "empty" / "scan").mkdir(parents=True)
    with pytest.raises(DataError, match="no view images"):
        featurise_view_images(tmp_path / "empty", tmp_path / "d", TINY_CNN, progress=False)


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_converts_a_tsv(tmp_path):
    path = _tsv(tmp_path / "a.tsv", _rows("s", ["v0", "v1"]))
    out = tmp_path / "store"
    result = runner.invoke(
        app, ["data", "r2r-features", "--tsv", str(path), "--out", str(out), "--dtype", "float16"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 2 viewpoints x 36 views x 8 (float16)" in result.output
    assert ViewFeatureStore.open(out).manifest["dtype"] == "float16"


def test_cli_featurises_view_images(tmp_path):
    _view_images(tmp_path / "views", "s", "v0")
    out = tmp_path / "store"
    args = ["data", "r2r-features", "--images", str(tmp_path / "views"), "--encoder", "small_cnn"]
    result = runner.invoke(app, [*args, "--out", str(out), "--batch-size", "36"])
    assert result.exit_code == 0, result.output
    assert "1 viewpoints x 36 views x 128 (float32)" in result.output


def test_cli_help_has_an_example():
    result = runner.invoke(app, ["data", "r2r-features", "--help"])
    assert result.exit_code == 0 and "vltk data r2r-features --tsv" in result.output


CLI_ERRORS = [
    ([], "give either --tsv FILE (repeatable) or --images DIR --encoder NAME"),
    (["--tsv", "a.tsv", "--images", "views"], "not both or neither"),
    (["--tsv", "a.tsv", "--encoder", "small_cnn"], "--encoder and --weights go with --images"),
    (["--images", "views"], "--images needs --encoder NAME"),
    (["--images", "views", "--encoder", "resnet15"], "did you mean 'resnet152'?"),
    (["--tsv", "a.tsv", "--dtype", "float64"], "unknown view-feature dtype 'float64'"),
    (["--tsv", "missing.tsv"], "missing.tsv: view-feature TSV not found"),
]


@pytest.mark.parametrize(("args", "message"), CLI_ERRORS)
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    _tsv(tmp_path / "a.tsv", _rows("s", ["v0"]))
    _view_images(tmp_path / "views", "s", "v0")
    assert_one_line_error(runner.invoke(app, ["data", "r2r-features", *args, "--out", "store"]), message)
