"""``vltk.from_pretrained`` for every task: a tiny trained model of each, exported, loaded back without
Lightning, gives exactly the outputs of the Lightning system it came from (and ``vltk predict`` prints the
same for the checkpoint and the export directory); the checkpoint's decoding config is what inference
decodes with, and explicit options override it."""

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
from vltk.tasks.lm.inference import TextSampler
from vltk.tasks.navigation.inference import InstructionFollower
from vltk.tasks.pretrained import PRETRAINED_LOADERS
from vltk.tasks.runner import load_system, load_task_config, train
from vltk.tasks.vqa.inference import QuestionAnswerer


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
    assert isinstance(exported, QuestionAnswerer) and isinstance(from_checkpoint, QuestionAnswerer)
    assert exported.answers == system.answer_vocab.answers
    paths = []
    for color in ("red", "navy", "white"):
        paths.append(tmp_path / f"{color}.png")
        Image.new("RGB", (40, 30), color).save(paths[-1])
    images = [Image.open(path) for path in paths]
    question = "what color is the shape?"
    expected = [p.answers for p in answer_questions(system.inference(), paths, question, top_k=3)]
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
    assert system.answer(exported.forward(images[1], ids)) == [expected[1][0][0]]  # evaluation's arg-max
    with pytest.raises(VltkError, match="question is empty"):
        exported.answer(images, "  ")
    command = [str(paths[0]), "--question", question]
    assert _predict([str(checkpoint), *command]) == _predict([str(out), *command])


def test_lm_round_trip(tmp_path: Path, caplog):
    text = tmp_path / "code.py"
    text.write_text(CODE, encoding="utf-8")
    checkpoint, out = _train_and_export("lm", tiny_lm_overrides(text), tmp_path)
    assert (out / "vocab.json").is_file() and not (out / "tokenizer_config.json").exists()
    system = load_system(checkpoint)
    exported = vltk.from_pretrained(out)
    assert isinstance(exported, TextSampler)
    expected = system.inference().sample("def ", 60, 0.8, seed=7)
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
    assert isinstance(agent, InstructionFollower) and agent.level == system.level
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
    with pytest.raises(VltkError, match=r"'chess' model: unknown task 'chess' \(choices: captioning, dialog"):
        build_pretrained("chess", {}, {}, tmp_path)
    with pytest.raises(VltkError, match="'vocab' is missing"):
        build_pretrained("vqa", {"config": {}}, {}, tmp_path)
    with pytest.raises(VltkError, match="'config' is missing"):
        build_pretrained("vqa", {}, {}, tmp_path)


def test_every_predict_option_is_a_cli_option_of_vltk_predict():
    """Each task declares its ``vltk predict`` options once (``TaskEntry.predict_request``); the CLI
    command must offer every one of them (and nothing a task does not read)."""
    import dataclasses

    import typer

    from vltk.tasks import R2R_NAVIGATION, TASKS
    from vltk.tasks.pretrained import option_flag

    command = typer.main.get_command(app).commands["predict"]
    cli = {param.name for param in command.params} - {"checkpoint"}
    declared = set()
    for name, entry in [*TASKS.items(), ("navigation", R2R_NAVIGATION)]:  # and navigation's R2R family
        assert entry.inference is not None and entry.inference.task == name
        declared |= {field.name for field in dataclasses.fields(entry.predict_request)}
    assert declared == cli
    assert option_flag("beam_size") == "--beam-size" and option_flag("inputs") == "INPUT arguments"


# ------------------------------------------------------------------------- captioning: the decoding config
def _with_decoding(checkpoint: Path, path: Path, **decoding) -> Path:
    """``checkpoint`` as if trained with these ``decoding`` settings (the config a checkpoint stores)."""
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    payload["hyper_parameters"]["config"]["decoding"].update(decoding)
    torch.save(payload, path)
    return path


@pytest.fixture
def generate_calls(monkeypatch) -> list[dict]:
    """The keyword arguments of every ``Captioner.generate`` call made during the test."""
    from vltk.tasks.captioning.model import Captioner

    calls: list[dict] = []
    original = Captioner.generate

    def spy(self, features, **options):
        calls.append(options)
        return original(self, features, **options)

    monkeypatch.setattr(Captioner, "generate", spy)
    return calls


def test_a_greedy_checkpoint_predicts_greedily_unless_told_otherwise(
    trained_run: Path, tmp_path: Path, generate_calls: list[dict]
):
    from vltk.data.images import load_image

    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    greedy = _with_decoding(checkpoint, tmp_path / "greedy.ckpt", method="greedy", max_length=6)
    image = tmp_path / "image.png"
    Image.new("RGB", (40, 30), (30, 200, 30)).save(image)
    printed = _predict([str(greedy), str(image)])
    assert (generate_calls[-1]["method"], generate_calls[-1]["max_length"]) == ("greedy", 6)
    captioner = vltk.from_pretrained(greedy)
    assert captioner.decoding.method == "greedy"
    (caption,) = captioner.caption([load_image(image)])
    assert generate_calls[-1]["method"] == "greedy"
    assert f"{image}: {caption}" in " ".join(printed.split())  # the console wraps long lines
    _predict([str(greedy), str(image), "--beam-size", "2"])  # an explicit beam size asks for beam search
    assert (generate_calls[-1]["method"], generate_calls[-1]["beam_size"]) == ("beam", 2)
    assert generate_calls[-1]["max_length"] == 6  # the rest of the checkpoint's decoding stays
    _predict([str(greedy), str(image), "--max-length", "3"])
    assert (generate_calls[-1]["method"], generate_calls[-1]["max_length"]) == ("greedy", 3)


def test_from_pretrained_and_evaluation_decode_with_the_checkpoint_beam_size(
    trained_run: Path, tmp_path: Path, generate_calls: list[dict]
):
    settings = {"method": "beam", "beam_size": 5, "max_length": 7, "length_penalty": 0.5}
    trained = trained_run / "checkpoints" / "best.ckpt"
    checkpoint = _with_decoding(trained, tmp_path / "beam5.ckpt", **settings)
    export = export_checkpoint(checkpoint, tmp_path / "export")
    images = [Image.new("RGB", (40, 30), color) for color in ("red", "navy")]
    captions = vltk.from_pretrained(export).caption(images)
    from_export = generate_calls[-1]
    assert {key: from_export[key] for key in settings} == settings
    assert vltk.from_pretrained(checkpoint).caption(images) == captions
    system = load_system(checkpoint)  # evaluation decodes its batches with the very same call
    batch = system.inference().preprocess(images)
    with torch.no_grad():
        assert system.caption(batch) == captions
    assert generate_calls[-1] == from_export
    vltk.from_pretrained(export).caption(images, beam_size=1, max_length=2)
    assert (generate_calls[-1]["beam_size"], generate_calls[-1]["max_length"]) == (1, 2)


def test_decoding_overrides_are_checked(trained_run: Path):
    captioner = vltk.from_pretrained(trained_run / "checkpoints" / "best.ckpt")
    image = [Image.new("RGB", (40, 30))]
    with pytest.raises(VltkError, match=r"--beam-size must be >= 1 \(1 = greedy\), got 0"):
        captioner.caption(image, beam_size=0)
    with pytest.raises(VltkError, match="unknown decoding method 'nucleus'"):
        captioner.caption(image, method="nucleus")
    with pytest.raises(VltkError, match="unknown decoding option 'beam'"):
        captioner.caption(image, beam=3)
    assert captioner.settings(method="greedy", beam_size=4).method == "greedy"  # an explicit method wins
