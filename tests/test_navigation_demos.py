"""Demo generation with the BabyAI bot, the Arrow demo folder, and damaged-file errors that name the path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.errors import ConfigError, DataError
from vltk.tasks.navigation.babyai.datamodule import BabyAIDataModule
from vltk.tasks.navigation.babyai.demos import ensure_demos, generate_demos
from vltk.tasks.navigation.babyai.episodes import DemoEpisodes, collate_episodes, load_demos
from vltk.text import Vocabulary

LEVEL = "BabyAI-GoToRedBall-v0"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "redball"
    stats = generate_demos(out, level=LEVEL, episodes=24, seed=100, workers=1, progress=False)
    assert stats.episodes == 24 and stats.steps > 24 and stats.demos_per_second > 0
    return out


def test_demos_are_stored_per_episode_and_batch_into_padded_episodes(demo_dir):
    demos = load_demos(demo_dir)
    assert len(demos.dataset) == 24 and demos.level == LEVEL and demos.observation == "symbolic"
    assert min(demos.seeds()) >= 100
    vocab = Vocabulary.build([m.split() for m in demos.dataset["mission"]])
    episodes = DemoEpisodes(demos, vocab)
    item = episodes[3]
    assert item["images"].shape == (len(item["actions"]), 7, 7, 3)
    batch = collate_episodes([episodes[i] for i in range(4)])
    lengths = [len(episodes[i]["actions"]) for i in range(4)]
    assert batch.images.shape == (4, max(lengths), 7, 7, 3)
    assert batch.step_mask.sum(dim=1).tolist() == lengths
    assert np.array_equal(batch.actions[3, : lengths[3]].numpy(), item["actions"])


def test_cache_is_reused(tmp_path):
    first = ensure_demos(tmp_path, level=LEVEL, episodes=5, seed=7, workers=1, progress=False)
    stamp = (first / "vltk_demos.json").stat().st_mtime_ns
    assert ensure_demos(tmp_path, level=LEVEL, episodes=5, seed=7, workers=1, progress=False) == first
    assert (first / "vltk_demos.json").stat().st_mtime_ns == stamp


def test_truncated_or_corrupt_demo_files_are_reported_by_path(demo_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(demo_dir, broken)
    arrow = next(broken.glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    with pytest.raises(DataError, match=str(broken)):
        load_demos(broken)
    garbage = tmp_path / "garbage"
    shutil.copytree(demo_dir, garbage)
    (garbage / "vltk_demos.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="vltk_demos.json"):
        load_demos(garbage)
    with pytest.raises(DataError, match="not a vltk demo folder"):
        load_demos(tmp_path / "nowhere")


def test_datamodule_refuses_evaluation_seeds_that_overlap_demo_seeds(demo_dir):
    with pytest.raises(ConfigError, match="overlap"):
        BabyAIDataModule(level=LEVEL, episodes=24, seed=100, val_seed=110)
    datamodule = BabyAIDataModule(level=LEVEL, episodes=24, seed=100, demos_dir=str(demo_dir), val_episodes=3)
    datamodule.setup("fit")
    assert "red" in datamodule.vocab and len(datamodule.train_set) == 24
    assert next(iter(datamodule.dataloader_for("val"))).tolist() == [
        1_000_000_000,
        1_000_000_001,
        1_000_000_002,
    ]
    with pytest.raises(DataError, match=r"unknown split 'train' \(available: test, val\)"):
        datamodule.dataloader_for("train")


def test_cli_generates_demos_and_unknown_levels_list_close_matches(tmp_path):
    out = tmp_path / "cli-demos"
    result = CliRunner().invoke(app, ["data", "demos", "--level", LEVEL, "--episodes", "6", "--seed", "3",
                                      "--out", str(out), "--workers", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "demos/s" in result.output
    assert json.loads((out / "vltk_demos.json").read_text())["episodes"] == 6
    result = CliRunner().invoke(app, ["data", "demos", "--level", "BabyAI-GoToLokal-v0", "--out", str(out)])
    assert result.exit_code == 2
    assert "BabyAI-GoToLocal-v0" in result.output


def test_parallel_generation_gives_the_same_episodes(demo_dir, tmp_path):
    out = tmp_path / "parallel"
    generate_demos(out, level=LEVEL, episodes=24, seed=100, workers=2, progress=False)
    serial, parallel = load_demos(demo_dir).dataset, load_demos(out).dataset
    assert parallel["seed"] == serial["seed"] and parallel["actions"] == serial["actions"]
    assert parallel["images"] == serial["images"]
