"""`vltk train navigation` end to end on a tiny config; `vltk evaluate --episodes`; `vltk predict --gif`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.tasks.navigation.babyai.env import BabyAIEnv
from vltk.tasks.navigation.babyai.shortest_path import shortest_path
from vltk.tasks.runner import available_configs, load_task_config

TINY_NAVIGATION = [
    "data.episodes=40",
    "data.batch_size=16",
    "data.val_episodes=3",
    "data.test_episodes=4",
    "data.workers=1",
    "data.progress=false",
    "model.embed_dim=8",
    "model.text_hidden_dim=8",
    "model.channels=8",
    "model.memory_dim=16",
    "model.attention_dim=8",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("nav-run")
    args = ["train", "navigation", "--run-dir", str(run_dir), "--seed", "1"]
    args += [arg for value in TINY_NAVIGATION for arg in ("--set", value)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "success_rate" in result.output and "SPL" in result.output
    return run_dir


def test_every_shipped_navigation_config_builds():
    names = available_configs("navigation")
    assert {"default", "gotolocal"} <= set(names)
    for name in names:
        cfg = load_task_config("navigation", name)
        assert cfg.task == "navigation" and cfg.monitor == "success_rate"
    assert load_task_config("navigation").data["level"] == "BabyAI-GoToRedBall-v0"
    assert load_task_config("navigation").data["episodes"] == 5000


def test_training_writes_test_metrics_on_held_out_seeds(nav_run):
    metrics = json.loads((nav_run / "metrics.json").read_text())
    assert metrics["split"] == "test"
    assert set(metrics["metrics"]) == {"success_rate", "mean_reward", "SPL", "episode_length"}
    assert 0.0 <= metrics["metrics"]["SPL"] <= metrics["metrics"]["success_rate"] <= 1.0
    assert 1.0 <= metrics["metrics"]["episode_length"] <= 64.0
    assert (nav_run / "checkpoints" / "best.ckpt").is_file()


def test_evaluate_plays_the_requested_number_of_fresh_episodes(nav_run, tmp_path):
    out, preds = tmp_path / "m.json", tmp_path / "episodes.json"
    ckpt = str(nav_run / "checkpoints" / "last.ckpt")
    args = ["evaluate", ckpt, "--episodes", "5", "--output", str(out), "--predictions", str(preds)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(preds.read_text())
    assert [row["seed"] for row in rows] == list(range(2_000_000_000, 2_000_000_005))
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["success_rate"] == sum(r["success"] for r in rows) / 5
    env = BabyAIEnv("BabyAI-GoToRedBall-v0")
    for row in rows:  # one record per episode, its shortest path searched again here
        assert {"seed", "level", "success", "length", "shortest_length", "spl"} <= set(row)
        assert row["level"] == "BabyAI-GoToRedBall-v0" and 1 <= row["length"] <= 64
        env.reset(row["seed"])
        shortest, length = row["shortest_length"], row["length"]
        assert shortest is not None and shortest == shortest_path(env).length
        assert row["spl"] == pytest.approx(shortest / max(length, shortest) if row["success"] else 0.0)
    assert metrics["SPL"] == pytest.approx(sum(r["spl"] for r in rows) / 5)


def test_predict_renders_a_gif_with_word_attention(nav_run, tmp_path, caplog):
    from PIL import Image

    gif = tmp_path / "episode.gif"
    ckpt = str(nav_run / "checkpoints" / "last.ckpt")
    args = ["predict", ckpt, "--level", "BabyAI-GoToRedBall-v0", "--seed", "123", "--gif", str(gif)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "seed 123" in result.output and "step   1:" in result.output
    env = BabyAIEnv("BabyAI-GoToRedBall-v0")
    env.reset(123)
    assert f"(shortest: {shortest_path(env).length})" in result.output and "SPL" in result.output
    with Image.open(gif) as image:
        assert image.n_frames >= 2
    result = CliRunner().invoke(app, ["predict", ckpt, "--level", "BabyAI-GoToRedBal-v0"])
    assert result.exit_code == 2 and "BabyAI-GoToRedBall-v0" in result.output
    with caplog.at_level(logging.WARNING, logger="vltk.tasks.navigation.babyai.rollout"):
        result = CliRunner().invoke(app, ["predict", ckpt, "--level", "BabyAI-KeyInBox-v0", "--seed", "0"])
    assert result.exit_code == 0, result.output  # a level SPL's search refuses still plays
    assert "(shortest: not searched)" in result.output
    assert "SPL is not computed" in caplog.text and "does not model a box holding a key" in caplog.text
    result = CliRunner().invoke(app, ["predict", ckpt, "--beam-size", "3"])
    assert result.exit_code == 2 and "--beam-size" in result.output


def test_episodes_option_is_refused_for_other_tasks(trained_run):
    result = CliRunner().invoke(
        app, ["evaluate", str(trained_run / "checkpoints" / "last.ckpt"), "--episodes", "5"]
    )
    assert result.exit_code == 2
    assert "--episodes applies to navigation checkpoints" in result.output
