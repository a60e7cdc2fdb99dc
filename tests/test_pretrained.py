"""``vltk.from_pretrained`` for every task: a tiny trained model of each, exported, loaded back without
Lightning, gives exactly the outputs of the Lightning system it came from (and ``vltk predict`` prints the
same for the checkpoint and the export directory)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_lm_task import CODE
from test_lm_task import tiny_overrides as tiny_lm_overrides
from test_navigation_task import TINY_NAVIGATION
from test_vqa_task import TINY as TINY_VQA
from typer.testing import CliRunner

import vltk
from vltk.cli.main import app
from vltk.errors import VltkError
from vltk.export import export_checkpoint
from vltk.tasks.pretrained import PRETRAINED_LOADERS, PretrainedAgent, PretrainedLanguageModel, PretrainedVqa
from vltk.tasks.runner import load_system, load_task_config, train


def _train_and_export(task: str, overrides: list[str], tmp_path: Path) -> tuple[Path, Path]:
    run_dir = tmp_path / "run"
    train(load_task_config(task, None, [*overrides, "seed=2"]), run_dir=run_dir)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    return checkpoint, export_checkpoint(checkpoint, tmp_path / "export")


def _predict(args: list[str]) -> str:
    result = CliRunner().invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_vqa_round_trip(tmp_path: Path):
    from vltk.tasks.vqa.predict import answer_questions

    checkpoint, out = _train_and_export("vqa", [*TINY_VQA, "data.max_questions=40"], tmp_path)
    system = load_system(checkpoint)
    exported, from_checkpoint = vltk.from_pretrained(out), vltk.from_pretrained(checkpoint)
    assert isinstance(exported, PretrainedVqa) and isinstance(from_checkpoint, PretrainedVqa)
    assert exported.answers == system.answer_vocab.answers
    paths = []
    for color in ("red", "navy", "white"):
        paths.append(tmp_path / f"{color}.png")
        Image.new("RGB", (40, 30), color).save(paths[-1])
    images = [Image.open(path) for path in paths]
    question = "what color is the shape?"
    expected = [p.answers for p in answer_questions(system, paths, question, top_k=3)]
    assert exported.answer(images, question, top_k=3) == expected
    assert from_checkpoint.answer(images, question, top_k=3) == expected
    assert (
        len(expected[0]) == 3
        and abs(sum(p for _, p in exported.answer(images, question, top_k=999)[0]) - 1) < 1e-5
    )
    ids, _ = exported.question_ids(question)
    tokens = torch.tensor([ids])
    transform = system.model.encoder.transforms()
    with torch.no_grad():
        logits = system.model(transform(images[1]).unsqueeze(0), torch.zeros(1, dtype=torch.long), tokens,
                              torch.tensor([len(ids)])).logits  # fmt: skip
    assert torch.equal(exported.forward(images[1], ids).logits, logits)
    with pytest.raises(VltkError, match="question is empty"):
        exported.answer(images, "  ")
    command = [str(paths[0]), "--question", question]
    assert _predict([str(checkpoint), *command]) == _predict([str(out), *command])


def test_lm_round_trip(tmp_path: Path, caplog):
    from vltk.tasks.lm.predict import sample_text

    text = tmp_path / "code.py"
    text.write_text(CODE, encoding="utf-8")
    checkpoint, out = _train_and_export("lm", tiny_lm_overrides(text), tmp_path)
    assert (out / "vocab.json").is_file() and not (out / "tokenizer_config.json").exists()
    system = load_system(checkpoint)
    exported = vltk.from_pretrained(out)
    assert isinstance(exported, PretrainedLanguageModel)
    expected = sample_text(system, "def ", 60, 0.8, seed=7)
    assert exported.sample("def ", 60, 0.8, seed=7) == expected
    assert vltk.from_pretrained(checkpoint).sample("def ", 60, 0.8, seed=7) == expected
    assert exported.sample("def ", 60, 0.8, seed=8) != expected  # the seed matters
    assert len(exported.sample(seed=1)) == system.config.sample.length  # the run's defaults
    with pytest.raises(VltkError, match="never saw"):
        exported.sample("\u00e9", 5)
    command = ["--prime", "class ", "--length", "40", "--seed", "3"]
    assert _predict([str(checkpoint), *command]) == _predict([str(out), *command])
    config = json.loads((out / "config.json").read_text())
    config["provenance"] = {**(config["provenance"] or {}), "vltk": "0.0.1"}
    (out / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="vltk.export"):
        vltk.from_pretrained(out)
    assert "written by vltk 0.0.1" in caplog.text


def test_navigation_round_trip(tmp_path: Path):
    checkpoint, out = _train_and_export("navigation", [*TINY_NAVIGATION, "data.episodes=16"], tmp_path)
    system = load_system(checkpoint)
    agent = vltk.from_pretrained(out)
    assert isinstance(agent, PretrainedAgent) and agent.level == system.level
    seeds = [1_000_003, 1_000_004]
    for seed in seeds:  # one episode at a time, as `vltk predict` plays it
        (expected,) = system.play([seed], record=True)
        mine = agent.play(seed)
        assert mine.actions == expected.actions and mine.actions
        assert (mine.mission, mine.success, mine.reward, mine.length, mine.shortest) == (
            expected.mission, expected.success, expected.reward, expected.length, expected.shortest,
        )  # fmt: skip
        assert mine.attention == expected.attention and len(mine.frames) == len(expected.frames)
    together = vltk.from_pretrained(checkpoint).play_many(seeds, record=True)  # batched, as evaluation does
    assert [(e.actions, e.attention) for e in together] == [
        (e.actions, e.attention) for e in system.play(seeds, record=True)
    ]
    command = ["--seed", str(seeds[0])]
    assert _predict([str(checkpoint), *command]) == _predict([str(out), *command])


def test_unknown_tasks_name_the_loaders(tmp_path: Path):
    from vltk.tasks.pretrained import build_pretrained

    assert {"captioning", "vqa", "lm", "navigation", "dialog"} <= set(PRETRAINED_LOADERS)
    with pytest.raises(VltkError, match="'chess' model; vltk.from_pretrained knows captioning, dialog, lm"):
        build_pretrained("chess", {}, {}, tmp_path)
    with pytest.raises(VltkError, match="'vocab' is missing"):
        build_pretrained("vqa", {"config": {}}, {}, tmp_path)
