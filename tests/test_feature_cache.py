"""Cached CNN features: written once (resumably), read lazily per process, trained from, refused when they
come from another encoder or miss images."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CAPTIONING
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.data.feature_cache import FeatureStore, cache_features, read_manifest, resolve_device
from vltk.encoders import IMAGE_ENCODERS, CachedFeatureEncoder
from vltk.errors import ConfigError, DataError
from vltk.registry import build
from vltk.tasks.captioning.feature_cache import cache_caption_features
from vltk.tasks.captioning.shapes import generate_shapes

runner = CliRunner()
FROZEN = ["model.encoder.trainable=false"]
NO_ENCODER = [value for value in TINY_CAPTIONING if not value.startswith("model.encoder")]


def _set(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, _isolated_cache) -> Path:
    out = tmp_path_factory.mktemp("cache") / "features"
    result = runner.invoke(
        app, ["data", "cache-features", "--out", str(out), *_set(TINY_CAPTIONING + FROZEN)]
    )
    assert result.exit_code == 0, result.output
    assert "model.encoder.name=cached" in result.output
    return out


def test_the_cache_holds_every_image_as_float16_with_a_complete_manifest(cache_dir: Path):
    manifest = read_manifest(cache_dir)
    assert manifest.complete and manifest.rows_done == manifest.num_images == 48
    assert manifest.encoder["name"] == "small_cnn" and manifest.encoder["trainable"] is False
    features = np.load(cache_dir / "features.npy", mmap_mode="r")
    assert features.dtype == np.float16 and features.shape == (48, 64, 16)  # 8x8 grid of 16 channels
    assert manifest.grid_size == [8, 8]


def test_training_and_evaluating_from_the_cache(cache_dir: Path, tmp_path: Path):
    cached = ["model.encoder.name=cached", f"model.encoder.path={cache_dir}"]
    source = "model.encoder.source={name: small_cnn, channels: [8, 16, 16], trainable: false}"
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "captioning", "--run-dir", str(run_dir), *_set(NO_ENCODER + cached + [source])]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(run_dir / "checkpoints" / "best.ckpt")])
    assert result.exit_code == 0 and "CIDEr" in result.output


def test_a_cache_from_another_encoder_is_refused(cache_dir: Path):
    with pytest.raises(ConfigError, match="was made by"):
        CachedFeatureEncoder(path=str(cache_dir), source={"name": "small_cnn", "channels": [8, 16, 32]})


def test_images_missing_from_the_cache_are_named(cache_dir: Path, tmp_path: Path):
    cached = ["model.encoder.name=cached", f"model.encoder.path={cache_dir}", "data.num_images=60"]
    result = runner.invoke(
        app, ["train", "captioning", "--run-dir", str(tmp_path), *_set(NO_ENCODER + cached)]
    )
    assert result.exit_code == 2 and "not in the feature cache" in " ".join(result.output.split())


def test_store_reads_rows_lazily_and_pickles_without_the_map(cache_dir: Path):
    store = FeatureStore(cache_dir, verify=True)
    assert store._features is None
    row = store.lookup(store.image_ids[0])
    assert row.shape == (64, 16) and row.dtype == torch.float32 and store._features is not None
    clone = pickle.loads(pickle.dumps(store))
    assert clone._features is None and torch.equal(clone.lookup(store.image_ids[0]), row)
    with pytest.raises(DataError, match="image id 123456 is not in the feature cache"):
        store.lookup(123456)


def _encoder_and_images(count: int = 10):
    torch.manual_seed(0)
    encoder = build(IMAGE_ENCODERS, {"name": "small_cnn", "channels": [8, 16], "trainable": False})
    images = {image_id: torch.randn(3, 64, 64) for image_id in range(100, 100 + count)}
    return encoder, images


class _FailingImages:
    """A dataset of images whose ``fail_at``-th read raises KeyboardInterrupt (a Ctrl-C mid-cache)."""

    def __init__(self, images: list, fail_at: int) -> None:
        self.images, self.fail_at, self.reads = images, fail_at, 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, row: int):
        self.reads += 1
        if self.reads == self.fail_at:
            raise KeyboardInterrupt
        return self.images[row]


def test_cached_rows_equal_the_encoder_output_and_an_interrupted_cache_resumes(tmp_path: Path):
    encoder, images = _encoder_and_images()
    spec = {"name": "small_cnn", "channels": [8, 16], "trainable": False}
    rows = list(images.values())  # [3, 64, 64] each, in id order

    whole = cache_features(encoder, spec, list(images), rows, tmp_path / "whole", dataset="d", transform="t",
                           batch_size=3)  # fmt: skip
    failing = _FailingImages(rows, fail_at=5)  # the probe, one batch of 3, then the "crash"
    with pytest.raises(KeyboardInterrupt):
        cache_features(encoder, spec, list(images), failing, tmp_path / "part", dataset="d",
                       transform="t", batch_size=3)  # fmt: skip
    assert read_manifest(tmp_path / "part").rows_done == 3
    resumed = cache_features(encoder, spec, list(images), rows, tmp_path / "part", dataset="d", transform="t",
                             batch_size=3)  # fmt: skip
    assert resumed.checksum == whole.checksum  # the same bytes as the uninterrupted cache
    store = FeatureStore(tmp_path / "part")
    with torch.no_grad():
        expected = encoder(images[104].unsqueeze(0)).grid[0]  # [N, D]
    assert torch.allclose(store.lookup(104), expected, rtol=1e-3, atol=1e-3)  # float16 storage
    with pytest.raises(DataError, match="another encoder or dataset"):
        cache_features(encoder, spec, list(images), rows, tmp_path / "part", dataset="other", transform="t")


# ---- cache-features with DataLoader workers, on a chosen device ---------------------------------------


def _tiny_config():
    from vltk.tasks.runner import load_task_config

    torch.manual_seed(0)  # weights: null: the same random encoder in every call
    return load_task_config("captioning", None, TINY_CAPTIONING + FROZEN)


def test_workers_give_the_bits_of_in_process_caching_and_an_interrupted_cache_resumes(tmp_path: Path):
    cfg = _tiny_config()
    alone = cache_caption_features(cfg, tmp_path / "alone", batch_size=8, num_workers=0, device="cpu")
    cfg = _tiny_config()
    workers = cache_caption_features(cfg, tmp_path / "workers", batch_size=8, num_workers=2, device="cpu")
    assert workers.checksum == alone.checksum  # the same bytes: workers only load
    assert (workers.device, workers.precision, workers.num_images) == ("cpu", "32", 48)

    def interrupted(batches, total):
        for number, batch in enumerate(batches):
            if number == 2:  # a Ctrl-C after two batches
                raise KeyboardInterrupt
            yield batch

    cfg = _tiny_config()
    with pytest.raises(KeyboardInterrupt):
        cache_caption_features(cfg, tmp_path / "resumed", batch_size=8, num_workers=2, device="cpu",
                               progress=interrupted)  # fmt: skip
    assert read_manifest(tmp_path / "resumed").rows_done == 16
    totals = []

    def counting(batches, total):
        totals.append(total)
        yield from batches

    cfg = _tiny_config()
    resumed = cache_caption_features(cfg, tmp_path / "resumed", batch_size=8, num_workers=2, device="cpu",
                                     progress=counting)  # fmt: skip
    assert resumed.checksum == alone.checksum and totals == [4]  # 6 batches of 8, the first 2 not re-read


@pytest.mark.parametrize(
    "flag, value, expected",
    [("--device", "tpu", "unknown device 'tpu' (choices: auto, cpu, cuda, cuda:N, mps)"),
     ("--device", "cuda:99", "device 'cuda:99': "),
     ("--precision", "64", "unknown precision '64' (choices: 32, 16-mixed, bf16-mixed)")],
)  # fmt: skip
def test_an_unknown_device_or_precision_is_one_line_and_exit_2(tmp_path: Path, flag, value, expected):
    out = tmp_path / "cache"
    result = runner.invoke(app, ["data", "cache-features", "--out", str(out), flag, value,
                                 *_set(TINY_CAPTIONING + FROZEN)])  # fmt: skip
    assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
    assert expected in " ".join(result.output.split()) and not out.exists()


def test_devices_by_name():
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda" and resolve_device("cuda:0") == torch.device("cuda:0")
    else:
        with pytest.raises(ConfigError, match="device 'cuda': no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device 'cuda:x'"):
        resolve_device("cuda:x")


def test_a_corrupt_image_read_by_a_worker_is_one_line_naming_it(tmp_path: Path):
    annotations = generate_shapes(tmp_path / "data", num_images=12, image_size=16, seed=0)
    entry = json.loads(annotations.read_text())["images"][7]
    corrupt = annotations.parent / entry["filepath"] / entry["filename"]
    corrupt.write_bytes(b"\x89PNG truncated")
    data = ["data.name=karpathy", f"data.annotations={annotations}", "data.train_splits=[train]"]
    command = ["data", "cache-features", "--out", str(tmp_path / "cache"), "--num-workers", "2"]
    result = runner.invoke(app, [*command, "--batch-size", "4", *_set(NO_ENCODER[1:] + FROZEN + data)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(corrupt) in errors[0] and "Traceback" not in result.output
