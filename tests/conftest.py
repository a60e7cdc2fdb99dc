"""Shared fixtures: an isolated dataset cache, single-threaded torch, a tiny captioning config, and the gate
of the parity tests (``@pytest.mark.needs("java", ...)``: skipped where a reference tool is missing, failed
when ``CI=true``, so parity evidence never vanishes from a CI run)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
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


REFERENCE_TOOLS = ("pycocoevalcap", "java", "ptb-jar", "meteor", "chromium")


def running_in_ci() -> bool:
    """``CI`` set to true (GitHub Actions, GitLab CI and most CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_tool(name: str) -> str | None:
    """Why the reference tool ``name`` (one of :data:`REFERENCE_TOOLS`) cannot run here, or ``None``."""
    if name == "pycocoevalcap":
        try:
            import pycocoevalcap.bleu.bleu  # noqa: F401
        except ImportError as error:
            return (
                f"pycocoevalcap is not installed ({error}; it is a test dependency: pip install -e '.[test]')"
            )
        return None
    if name == "java":
        return None if shutil.which("java") else "java is not on PATH"
    if name == "ptb-jar":  # COCO's Stanford CoreNLP PTBTokenizer: pycocoevalcap's jar and Java
        from vltk.errors import VltkError
        from vltk.metrics.ptb_parity import stanford_jar

        try:
            stanford_jar()
        except VltkError as error:
            return str(error)
        return None
    if name == "meteor":  # COCO's Meteor 1.5 jar, its paraphrase table and Java
        from vltk.metrics.meteor import meteor_unavailable_reason

        return meteor_unavailable_reason()
    if name == "chromium":  # Debian's chromium + chromium-driver, driven by Selenium (`vltk serve`'s page)
        from browser import browser_unavailable_reason

        return browser_unavailable_reason()
    raise ValueError(f"unknown reference tool {name!r} (choices: {', '.join(REFERENCE_TOOLS)})")


def require_tools(*names: str) -> None:
    """Skip the running test when a reference tool is missing, with the reason; fail it instead when
    ``CI=true``."""
    for name in names:
        reason = missing_tool(name)
        if reason is None:
            continue
        if running_in_ci():
            pytest.fail(
                f"CI=true and {name} is unavailable, so this parity test cannot run: {reason}", pytrace=False
            )
        pytest.skip(f"{name} unavailable: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*tools): reference tools the test needs (pycocoevalcap, java, ptb-jar, meteor, chromium); "
        "skipped without them, failed when CI=true",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("needs"):
        require_tools(*marker.args)


@pytest.fixture
def needs() -> Callable[..., None]:
    """:func:`require_tools` for a test that decides at run time what it needs."""
    return require_tools


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
