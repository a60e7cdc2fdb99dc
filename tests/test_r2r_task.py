"""`vltk train navigation` on R2R-layout data end to end (tiny built-in houses): the family's config by
data.name, training both agents, `vltk evaluate --predictions` in the EvalAI layout that `vltk score
navigation` scores to the same numbers, `vltk predict --episode --attention-map`, `vltk.from_pretrained`,
and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_cli_errors import assert_one_line_error
from vltk.cli.main import app
from vltk.errors import ConfigError
from vltk.metrics.r2r import R2R_METRIC_NAMES
from vltk.tasks import NavigationConfig, R2RConfig
from vltk.tasks.navigation.r2r.datamodule import R2RHousesDataModule
from vltk.tasks.navigation.r2r.inference import R2RFollower
from vltk.tasks.runner import load_task_config

HOUSES = [
    "data.train_houses=3",
    "data.val_unseen_houses=2",
    "data.test_houses=2",
    "data.train_paths=40",
    "data.val_seen_paths=8",
    "data.val_unseen_paths=10",
    "data.test_paths=10",
    "data.image_size=16",
    "data.progress=false",
]
TINY = [
    *HOUSES,
    "data.batch_size=16",
    "model.embed_dim=8",
    "model.hidden_dim=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]
PANORAMIC = ["model.text_hidden_dim=8", "model.action_dim=8", "model.angle_repeat=2"]


def sets(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("r2r-cache")


def train(run_dir: Path, cache: Path, extra: list[str]) -> Path:
    args = ["train", "navigation", "--config", "r2r_houses", "--run-dir", str(run_dir), "--seed", "1"]
    result = CliRunner().invoke(app, args + sets([*TINY, f"data.cache_dir={cache}", *extra]))
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def panoramic_run(tmp_path_factory, cache) -> Path:
    return train(tmp_path_factory.mktemp("r2r-pan"), cache, PANORAMIC)


def houses_dir(cache: Path) -> Path:
    (root,) = cache.glob("r2r_houses-*")
    return root


def test_navigation_picks_the_family_config_by_data_name():
    assert isinstance(load_task_config("navigation"), NavigationConfig)
    cfg = load_task_config("navigation", "r2r_houses")
    assert isinstance(cfg, R2RConfig) and cfg.model["name"] == "panoramic" and cfg.monitor == "success_rate"
    with pytest.raises(ConfigError, match="babyai, r2r, r2r_houses"):
        load_task_config("navigation", overrides=["data.name=habitat"])
    with pytest.raises(ConfigError, match="seq2seq"):  # a BabyAI agent on R2R data
        load_task_config("navigation", "r2r_houses", ["model.name=attention_lstm"])
    with pytest.raises(ConfigError, match="monitor"):
        load_task_config("navigation", "r2r_houses", ["monitor=mean_reward"])


def test_training_writes_the_r2r_metrics_of_the_test_houses(panoramic_run):
    metrics = json.loads((panoramic_run / "metrics.json").read_text())
    assert metrics["split"] == "test" and set(metrics["metrics"]) == set(R2R_METRIC_NAMES)
    m = metrics["metrics"]
    assert 0.0 <= m["SPL"] <= m["success_rate"] <= m["oracle_success_rate"] <= 1.0
    assert 0.0 <= m["SDTW"] <= m["nDTW"] <= 1.0


def test_seq2seq_trains_on_the_low_level_action_space(tmp_path, cache):
    options = ["model.name=seq2seq", "model.action_dim=4", "max_steps=20", "avoid_revisits=false"]
    run = train(tmp_path / "s2s", cache, options)
    assert set(json.loads((run / "metrics.json").read_text())["metrics"]) == set(R2R_METRIC_NAMES)


def test_evaluate_predictions_are_a_submission_that_scores_the_same(panoramic_run, cache, tmp_path):
    out, submission = tmp_path / "m.json", tmp_path / "submit.json"
    ckpt = str(panoramic_run / "checkpoints" / "best.ckpt")
    args = ["evaluate", ckpt, "--split", "val_seen", "--output", str(out), "--predictions", str(submission)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(submission.read_text())
    assert len(rows) == 24 and all(set(row) == {"instr_id", "trajectory"} for row in rows)
    assert all(len(step) == 3 for row in rows for step in row["trajectory"])
    root = houses_dir(cache)
    scored = tmp_path / "scored.json"
    args = ["score", "navigation", "--predictions", str(submission), "--references"]
    args += [
        str(root / "R2R_val_seen.json"),
        "--connectivity",
        str(root / "connectivity"),
        "--output",
        str(scored),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    evaluated, rescored = json.loads(out.read_text())["metrics"], json.loads(scored.read_text())["metrics"]
    assert rescored == pytest.approx(evaluated, abs=1e-9)


def test_the_test_split_of_real_r2r_has_no_goal_and_is_predicted_only(panoramic_run, cache, tmp_path):
    """Pointing test_references away makes the test split start-only, as R2R's: trajectories, no metrics."""
    root = houses_dir(cache)
    submission = tmp_path / "test.json"
    ckpt = str(panoramic_run / "checkpoints" / "best.ckpt")
    overrides = sets(
        [
            "data.name=r2r",
            f"data.instructions={root}",
            f"data.connectivity={root / 'connectivity'}",
            f"data.features={root / 'features'}",
        ]
    )
    result = CliRunner().invoke(
        app, ["evaluate", ckpt, "--split", "test", "--predictions", str(submission)] + overrides
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(submission.read_text())
    assert len(rows) == 30 and all(row["trajectory"] for row in rows)


def test_predict_follows_one_instruction_and_draws_it(panoramic_run, tmp_path):
    picture = tmp_path / "episode.png"
    ckpt = str(panoramic_run / "checkpoints" / "best.ckpt")
    args = ["predict", ckpt, "--split", "val_unseen", "--attention-map", str(picture)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "step  1" in result.output and "from the goal" in result.output
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = CliRunner().invoke(app, ["predict", ckpt, "--episode", "nope_0", "--split", "val_unseen"])
    assert_one_line_error(result, "no instruction nope_0 in the val_unseen split")
    assert_one_line_error(
        CliRunner().invoke(app, ["predict", ckpt, "--level", "BabyAI-GoToRedBall-v0"]), "--level"
    )


def test_from_pretrained_follows_a_new_instruction(panoramic_run):
    import vltk

    follower = vltk.from_pretrained(panoramic_run / "checkpoints" / "best.ckpt")
    assert isinstance(follower, R2RFollower)
    item = follower.item(split="val_seen")
    episode = follower.follow("walk into the kitchen and stop by the fridge", item.scan, item.path[0])
    assert episode.trajectory[0][0] == item.path[0] and episode.scores is None
    assert len(episode.attention) >= 1


def test_missing_r2r_folders_and_features_are_one_line(tmp_path, cache):
    args = ["train", "navigation", "--config", "r2r_houses", "--run-dir", str(tmp_path / "x")]
    result = CliRunner().invoke(app, args + sets(["data.name=r2r"]))
    assert_one_line_error(result, "data.instructions is not set")
    root = houses_dir(cache)
    result = CliRunner().invoke(
        app,
        args
        + sets(
            [
                "data.name=r2r",
                f"data.instructions={root}",
                f"data.connectivity={root}",
                f"data.features={root / 'features'}",
            ]
        ),
    )
    assert_one_line_error(result, "no connectivity file for scan")


def test_houses_datamodule_reads_the_generated_layout(cache):
    datamodule = R2RHousesDataModule(
        cache_dir=str(cache), **{k.split("=")[0][5:]: _value(k.split("=")[1]) for k in HOUSES}
    )
    datamodule.setup()
    assert datamodule.feature_dim == 64
    assert len(datamodule.split("train")) == 120 and len(datamodule.split("test")) == 30
    assert all(item.has_goal for item in datamodule.split("test"))  # from test_references.json
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.tokens.shape[0] == 64 and batch.mask.sum(dim=1).min() >= 1


def _value(text: str):
    return {"false": False, "true": True}.get(text, int(text) if text.isdigit() else text)


def test_episodes_option_is_refused_for_r2r_checkpoints(panoramic_run):
    ckpt = str(panoramic_run / "checkpoints" / "best.ckpt")
    result = CliRunner().invoke(app, ["evaluate", ckpt, "--episodes", "5"])
    assert_one_line_error(result, "--episodes applies to BabyAI checkpoints", "--split")


def test_validating_on_a_split_without_goals_is_one_line(tmp_path, cache):
    root = houses_dir(cache)
    args = ["train", "navigation", "--config", "r2r_houses", "--run-dir", str(tmp_path / "x")]
    data = [f"data.instructions={root}", f"data.connectivity={root / 'connectivity'}"]
    data += [f"data.features={root / 'features'}", "data.val_split=test"]
    result = CliRunner().invoke(app, args + sets(["data.name=r2r", *data]))
    assert_one_line_error(result, "data.val_split: the test split has no reference paths")


def test_a_config_of_another_task_is_named_before_the_family_is_picked(tmp_path):
    config = tmp_path / "captions.yaml"
    config.write_text("task: captioning\ndata: {name: shapes}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="task is 'captioning' but you asked to train 'navigation'"):
        load_task_config("navigation", config)


@pytest.mark.parametrize("config", ["default", "r2r_houses"])  # BabyAI's and R2R's configs share the check
def test_num_threads_below_one_is_refused(config):
    with pytest.raises(ConfigError, match="num_threads must be >= 1 or null, got 0"):
        load_task_config("navigation", config, ["num_threads=0"])
