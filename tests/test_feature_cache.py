"""Cached CNN features: written once (resumably), read lazily per process, trained from, refused when they
come from another encoder or miss images."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CAPTIONING
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.data.feature_cache import FeatureStore, cache_features, read_manifest
from vltk.encoders import IMAGE_ENCODERS, CachedFeatureEncoder
from vltk.errors import ConfigError, DataError
from vltk.registry import build

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
    row = store.lookup(next(iter(store.row_of)))
    assert row.shape == (64, 16) and row.dtype == torch.float32 and store._features is not None
    clone = pickle.loads(pickle.dumps(store))
    assert clone._features is None and torch.equal(clone.lookup(next(iter(store.row_of))), row)
    with pytest.raises(DataError, match="image id 123456 is not in the feature cache"):
        store.lookup(123456)


def _encoder_and_images(count: int = 10):
    torch.manual_seed(0)
    encoder = build(IMAGE_ENCODERS, {"name": "small_cnn", "channels": [8, 16], "trainable": False})
    images = {image_id: torch.randn(3, 64, 64) for image_id in range(100, 100 + count)}
    return encoder, images


def test_cached_rows_equal_the_encoder_output_and_an_interrupted_cache_resumes(tmp_path: Path):
    encoder, images = _encoder_and_images()
    spec = {"name": "small_cnn", "channels": [8, 16], "trainable": False}

    def load(ids):
        return torch.stack([images[i] for i in ids])  # [B, 3, 64, 64]

    whole = cache_features(encoder, spec, list(images), load, tmp_path / "whole", dataset="d", transform="t",
                           batch_size=3)  # fmt: skip
    calls = {"n": 0}

    def failing_load(ids):
        calls["n"] += 1
        if calls["n"] == 3:  # the probe, one batch, then the "crash"
            raise KeyboardInterrupt
        return load(ids)

    with pytest.raises(KeyboardInterrupt):
        cache_features(encoder, spec, list(images), failing_load, tmp_path / "part", dataset="d",
                       transform="t", batch_size=3)  # fmt: skip
    assert read_manifest(tmp_path / "part").rows_done == 3
    resumed = cache_features(encoder, spec, list(images), load, tmp_path / "part", dataset="d", transform="t",
                             batch_size=3)  # fmt: skip
    assert resumed.checksum == whole.checksum  # the same bytes as the uninterrupted cache
    store = FeatureStore(tmp_path / "part")
    with torch.no_grad():
        expected = encoder(load([104])).grid[0]  # [N, D]
    assert torch.allclose(store.lookup(104), expected, rtol=1e-3, atol=1e-3)  # float16 storage
    with pytest.raises(DataError, match="another encoder or dataset"):
        cache_features(encoder, spec, list(images), load, tmp_path / "part", dataset="other", transform="t")
