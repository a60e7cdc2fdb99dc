"""The dialog task end to end: shipped configs build, train/evaluate/score agree, chat and predict answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.errors import ConfigError
from vltk.tasks.dialog.model import build_dialog_model
from vltk.tasks.dialog.predict import chat_rounds, open_session
from vltk.tasks.dialog.shapes_dialog import split_paths
from vltk.tasks.runner import available_configs, load_system, load_task_config, train

TINY_DIALOG = [
    "data.num_dialogs=48",
    "data.image_size=32",
    "data.batch_size=4",
    "model.encoder.channels=[4, 8, 8]",
    "model.encoder.image_size=32",
    "model.text.embed_dim=8",
    "model.text.hidden_dim=8",
    "model.attention.dim=8",
    "model.fusion.dim=8",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


@pytest.mark.parametrize("name", available_configs("dialog"))
def test_every_shipped_dialog_config_builds(name: str):
    cfg = load_task_config("dialog", name)
    assert cfg.task == "dialog" and cfg.monitor == "MRR"
    model = build_dialog_model(cfg.model, vocab_size=50)
    assert model.generative == (name == "generative")
    assert model.encoder.use_image == (name != "question_only")
    assert model.encoder.use_history == (name in ("default", "generative"))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.fusion.dimm"):
        load_task_config("dialog", None, ["model.fusion.dimm=3"])
    with pytest.raises(ConfigError, match="decoder"):
        load_task_config("dialog", None, ["model.decoder=generatve"])
    with pytest.raises(ConfigError, match="answer_bank_size"):
        load_task_config("dialog", None, ["answer_bank_size=0"])


@pytest.fixture(scope="module")
def dialog_run(tmp_path_factory, _isolated_cache) -> Path:
    run_dir = tmp_path_factory.mktemp("dialog") / "run"
    args = ["train", "dialog", "--run-dir", str(run_dir), "--seed", "3"]
    args += [arg for value in TINY_DIALOG for arg in ("--set", value)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return run_dir


def test_train_evaluate_and_score_agree(dialog_run: Path, tmp_path: Path):
    trained = json.loads((dialog_run / "metrics.json").read_text())
    assert trained["split"] == "test"
    assert {"R@1", "R@5", "R@10", "MRR", "mean_rank", "NDCG"} <= set(trained["metrics"])
    assert any(name.endswith("/coreference") for name in trained["metrics"])
    checkpoint = dialog_run / "checkpoints" / "best.ckpt"
    out, ranks = tmp_path / "metrics.json", tmp_path / "ranks.json"
    result = CliRunner().invoke(
        app, ["evaluate", str(checkpoint), "--output", str(out), "--predictions", str(ranks)]
    )
    assert result.exit_code == 0, result.output
    evaluated = json.loads(out.read_text())["metrics"]
    rows = json.loads(ranks.read_text())
    assert len(rows) == 10 * 6  # 6 test dialogs of 10 rounds (48 * 0.125)
    assert all(sorted(row["ranks"]) == list(range(1, 101)) for row in rows)
    # The ranks file, scored by `vltk score dialog` against the generated files, gives the same numbers.
    dialogs, dense = _generated_test_files(None)
    scored = tmp_path / "scored.json"
    args = ["score", "dialog", "--predictions", str(ranks), "--references", str(dialogs)]
    result = CliRunner().invoke(app, [*args, "--annotations", str(dense), "--output", str(scored)])
    assert result.exit_code == 0, result.output
    rescored = json.loads(scored.read_text())["metrics"]
    for name in ("R@1", "R@5", "R@10", "MRR", "mean_rank", "NDCG"):
        assert rescored[name] == pytest.approx(evaluated[name], abs=1e-12), name


def _generated_test_files(cache_dir: Path | None) -> tuple[Path, Path]:
    import os

    root = cache_dir or Path(os.environ["VLTK_CACHE"]) / "datasets"
    for folder in sorted(root.glob("shapes_dialog-*")):
        params = json.loads((folder / "params.json").read_text())
        if params.get("num_dialogs") == 48 and params.get("image_size") == 32:
            return split_paths(folder, "test")
    raise AssertionError(f"no generated shapes_dialog with 48 dialogs under {root}")


def test_score_refuses_a_malformed_ranks_file(dialog_run: Path, tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "round_id": 1, "ranks": [1, 1] + list(range(3, 101))}]))
    dialogs, _ = _generated_test_files(None)
    result = CliRunner().invoke(
        app, ["score", "dialog", "--predictions", str(bad), "--references", str(dialogs)]
    )
    assert result.exit_code == 2
    assert "permutation" in result.output


def test_chat_keeps_the_history_and_answers_each_question(dialog_run: Path):
    system = load_system(dialog_run / "checkpoints" / "best.ckpt")
    image = _an_image()
    session = open_session(system.inference(), image, "there is a red circle")
    replies = list(
        chat_rounds(session, ["how many shapes are there?", "", "what colour is it?", "quit", "x"])
    )
    assert len(replies) == 2 and all(reply.answer in system.answers for reply in replies)  # discriminative
    assert len(session.turns) == 2
    history = system.vocab.decode(session.history())
    assert history.startswith("there is a red circle how many shapes are there")
    assert list(chat_rounds(session, ["/reset"])) == ["history cleared (the caption stays)"]
    assert session.turns == []


def test_chat_and_predict_from_the_cli(dialog_run: Path):
    checkpoint = str(dialog_run / "checkpoints" / "best.ckpt")
    image = str(_an_image())
    result = CliRunner().invoke(
        app, ["chat", checkpoint, image, "--caption", "a red circle"],
        input="how many shapes are there?\nis it large?\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("A:") == 2 and "Q: is it large?" in result.output
    result = CliRunner().invoke(
        app, ["predict", checkpoint, image, "--question", "what colour is it?", "--caption", "a circle"]
    )
    assert result.exit_code == 0, result.output
    assert "A:" in result.output
    result = CliRunner().invoke(app, ["predict", checkpoint, image, "--prime", "x", "--question", "q"])
    assert result.exit_code == 2 and "--prime" in result.output


def test_generative_model_generates_free_answers(tmp_path: Path, _isolated_cache):
    overrides = [*TINY_DIALOG, "model.decoder.hidden_dim=8", "trainer.check_val_every_n_epoch=1", "seed=2"]
    cfg = load_task_config("dialog", "generative", overrides)
    result = train(cfg, run_dir=tmp_path / "generative")
    assert {"MRR", "NDCG"} <= set(result.metrics)
    system = load_system(tmp_path / "generative" / "checkpoints" / "best.ckpt")
    assert system.model.generative
    session = open_session(system.inference(), _an_image(), "a blue square", beam_size=2, max_length=4)
    answer = session.ask("what colour is it?")
    assert isinstance(answer.answer, str) and len(answer.answer.split()) <= 4
    assert answer.unknown_words == []


def _an_image() -> Path:
    import os

    root = Path(os.environ["VLTK_CACHE"]) / "datasets"
    return next(iter(sorted(root.glob("shapes_dialog-*/images/*"))))


def test_from_pretrained_chats_like_the_system(dialog_run: Path, tmp_path: Path):
    import vltk
    from vltk.data.images import load_image
    from vltk.export import export_checkpoint

    checkpoint = dialog_run / "checkpoints" / "best.ckpt"
    export_checkpoint(checkpoint, tmp_path / "export")
    pretrained = vltk.from_pretrained(tmp_path / "export")
    questions = ["how many shapes are there?", "what colour is it?", "is it large?"]
    session = pretrained.chat(load_image(_an_image()), "a red circle")
    reference = open_session(load_system(checkpoint).inference(), _an_image(), "a red circle")
    assert [session.ask(q).answer for q in questions] == [reference.ask(q).answer for q in questions]
    assert session.history() == reference.history()


def test_evaluate_on_visdial_files_skips_bad_dialogs_by_name_and_scores_the_rest(
    dialog_run: Path, tmp_path: Path, caplog
):
    """The issue's bad inputs (fewer than 10 rounds, gt_index out of range, not 100 options, a missing image),
    one dialog each, in a VisDial v1.0 file: each is named by its image_id; the other dialogs evaluate."""
    import logging
    import shutil

    from vltk.tasks.runner import evaluate

    dialogs_path, dense_path = _generated_test_files(None)
    document = json.loads(dialogs_path.read_text())
    dialogs = document["data"]["dialogs"]
    bad = {dialog["image_id"]: kind for dialog, kind in zip(dialogs, ["rounds", "gt", "options", "image"])}
    kinds = {kind: image_id for image_id, kind in bad.items()}
    dialogs[0]["dialog"] = dialogs[0]["dialog"][:9]
    dialogs[1]["dialog"][3]["gt_index"] = 100
    dialogs[2]["dialog"][5]["answer_options"] = dialogs[2]["dialog"][5]["answer_options"][:99]
    images = tmp_path / "images"
    shutil.copytree(dialogs_path.parent / "images", images)
    (missing,) = [path for path in images.iterdir() if path.stem.endswith(f"_{kinds['image']:012d}")]
    missing.unlink()
    broken = tmp_path / "visdial_1.0_test.json"
    broken.write_text(json.dumps(document))
    overrides = [
        "data.name=visdial", f"data.train_json={broken}", f"data.test_json={broken}",
        f"data.test_dense={dense_path}", f"data.image_dir={images}", "data.test_min_rounds=10",
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        result = evaluate(dialog_run / "checkpoints" / "best.ckpt", overrides=overrides)
    warnings = caplog.text
    for image_id in bad:
        assert f"image_id={image_id}" in warnings or f"image_id {image_id}" in warnings, (image_id, warnings)
    ranked = {row["image_id"] for row in result.predictions}
    assert ranked == {d["image_id"] for d in dialogs} - set(bad)
    assert 0.0 < result.metrics["MRR"] <= 1.0
