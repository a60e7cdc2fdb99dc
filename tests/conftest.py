"""Shared fixtures: an isolated dataset cache, single-threaded torch, and a tiny captioning config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

TINY_CAPTIONING = [
    "data.num_images=48",
    "data.batch_size=16",
    "model.encoder.channels=[8, 16, 16]",
    "model.decoder.embed_dim=16",
    "model.decoder.hidden_dim=32",
    "model.decoder.attention.dim=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "decoding.max_length=8",
    "metrics.meteor=false",  # a METEOR JVM start per run costs seconds; see test_caption_score
]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Generated datasets go to a per-session temp dir unless VLTK_CACHE is already set (CI sets it)."""
    if "VLTK_CACHE" not in os.environ:
        os.environ["VLTK_CACHE"] = str(tmp_path_factory.mktemp("vltk-cache"))
    yield


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, _isolated_cache) -> Path:
    """A tiny captioning run trained once through the CLI (seed 3), shared by the CLI and README tests."""
    from typer.testing import CliRunner

    from vltk.cli.main import app

    run_dir = tmp_path_factory.mktemp("run")
    args = ["train", "captioning", "--run-dir", str(run_dir), "--seed", "3"]
    args += [arg for value in TINY_CAPTIONING for arg in ("--set", value)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture
def tiny_captioning_overrides() -> list[str]:
    return list(TINY_CAPTIONING)
