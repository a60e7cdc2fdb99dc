"""The VQA system: every shipped config builds and trains a batch; models; the CLI end to end (tiny fit,
evaluate reproducing the test metrics, predict, score)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.config import from_dict, to_dict
from vltk.errors import ConfigError
from vltk.tasks import VqaConfig, VqaTask
from vltk.tasks.runner import available_configs, load_task_config
from vltk.tasks.vqa.dataset import VqaBatch
from vltk.tasks.vqa.easy_vqa import EasyVqaDataModule
from vltk.tasks.vqa.model import VQA_MODELS, build_vqa_model
from vltk.tasks.vqa.records import VqaExample
from vltk.tasks.vqa.system import resolve_monitor
from vltk.tasks.vqa.vqa_v2 import write_vqa_v2
from vltk.text import Vocabulary

VOCAB = Vocabulary.build([["what", "color", "is", "the", "shape"], ["is", "there", "a", "red", "circle"]])
ANSWERS = ["yes", "no", "red", "blue", "circle"]
TINY = [
    "data.max_questions=120",
    "data.batch_size=4",
    "model.encoder.channels=[4, 8, 8]",
    "model.encoder.image_size=32",
    "model.text.embed_dim=8",
    "model.text.hidden_dim=8",
    "model.head.attention_dim=8",
    "model.head.hidden_dim=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


def _batch(images: int = 2, size: int = 64) -> VqaBatch:
    generator = torch.Generator().manual_seed(0)
    questions = torch.randint(4, len(VOCAB), (5, 6), generator=generator)
    lengths = torch.tensor([6, 4, 1, 0, 3])  # an empty question included
    questions[torch.arange(6)[None, :] >= lengths[:, None]] = 0
    targets = torch.zeros(5, len(ANSWERS))
    targets[0, 0] = targets[1, 2] = targets[2, 1] = targets[3, 4] = 1.0
    targets[4, 3] = 1 / 3  # one question has a partial target
    return VqaBatch(
        images=torch.randn(images, 3, size, size, generator=generator),
        image_index=torch.tensor([0, 0, 1, 1, 1]),
        questions=questions,
        question_lengths=lengths,
        targets=targets,
        question_ids=torch.arange(5),
        answers=[("yes",), ("red",), ("no",), ("circle",), ("blue",) * 3 + ("red",) * 7],
        answer_types=["yes/no", "color", "yes/no", "shape", "color"],
        question_types=["t"] * 5,
        texts=["q"] * 5,
    )


def _system(config: str, extra: list[str] = ()) -> VqaTask:
    overrides = ["model.encoder.weights=null"] if "resnet" in config or "v2" in config else []
    cfg = load_task_config("vqa", config, overrides + list(extra))
    return VqaTask(config=to_dict(cfg), vocab=VOCAB.to_json(), answers=ANSWERS)


@pytest.mark.parametrize("config", available_configs("vqa"))
def test_every_shipped_config_builds_and_trains_one_batch(config: str):
    torch.manual_seed(0)
    system = _system(config)
    size = system.model.encoder.image_size if hasattr(system.model.encoder, "image_size") else 64
    batch = _batch(size=size if size <= 64 else 64)
    loss = system._loss(system(batch), batch.targets)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    parts = [system.model.head, system.model.text_encoder] + (
        [system.model.encoder] if system.model.use_image else []
    )
    trainable = [p for part in parts for p in part.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)


def test_the_question_only_ablation_is_use_image_false_and_old_checkpoints_say_blind():
    system = _system("question_only")
    assert system.model.use_image is False
    features = system.model.encode(torch.randn(2, 3, 64, 64))
    assert torch.count_nonzero(features.grid) == 0 and torch.count_nonzero(features.pooled) == 0
    old = to_dict(system.config)
    old["model"] = {"blind": True, **{k: v for k, v in old["model"].items() if k != "use_image"}}
    assert VqaTask(config=old, vocab=VOCAB.to_json(), answers=ANSWERS).model.use_image is False
    assert to_dict(from_dict(VqaConfig, old, old_keys=True)) == to_dict(system.config)
    with pytest.raises(ConfigError, match=r"'model.blind' is now spelled 'model.use_image'"):
        from_dict(VqaConfig, old)


@pytest.mark.parametrize(("name", "maps"), [("attention", 3), ("stacked_attention", 2), ("cnn_lstm", None)])
def test_every_registered_model_answers_and_reports_attention(name: str, maps: int | None):
    head = {"attention": {"glimpses": 3}, "stacked_attention": {"layers": 2}, "cnn_lstm": {}}[name]
    spec = {"name": name, "encoder": {"name": "small_cnn", "channels": [4, 8]}, "head": head,
            "text": {"name": "rnn", "embed_dim": 8, "hidden_dim": 8}}  # fmt: skip
    model = build_vqa_model(spec, vocab_size=len(VOCAB), num_answers=len(ANSWERS)).eval()
    batch = _batch()
    output = model(batch.images, batch.image_index, batch.questions, batch.question_lengths)
    assert output.logits.shape == (5, len(ANSWERS))
    if maps is None:
        assert output.attention is None
    else:
        assert output.attention.shape == (5, maps, 256)  # 64x64 -> 16x16 grid with two stages
        assert torch.allclose(output.attention.sum(-1), torch.ones(5, maps), atol=1e-5)
    assert set(VQA_MODELS) == {"attention", "cnn_lstm", "stacked_attention"}


def test_question_only_ablation_ignores_the_image():
    system = _system("question_only").eval()
    batch = _batch()
    first = system(batch).logits
    batch.images = torch.randn_like(batch.images)
    assert torch.allclose(first, system(batch).logits)


def test_bce_loss_and_unanswerable_questions():
    system = _system("default", ["loss.name=bce"])
    batch = _batch()
    assert torch.isfinite(system._loss(system(batch), batch.targets))
    soft = _system("default")
    assert soft._loss(soft(batch), torch.zeros_like(batch.targets)) == 0  # no answer in the vocabulary


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.head.glimpse"):
        load_task_config("vqa", None, ["model.head.glimpse=2"])
    with pytest.raises(ConfigError, match="model.head.name"):
        load_task_config("vqa", None, ["model.head.name=cnn_lstm"])


def _example(qid: int, answers: tuple[str, ...], answer_type: str = "color") -> VqaExample:
    return VqaExample(qid, qid, "q", answers, Path("x.png"), answer_type, "what color")


def test_monitor_auto_follows_the_number_of_answers():
    single = [_example(1, ("red",)), _example(2, ("yes",), "yes/no"), _example(3, ())]
    several = [_example(1, ("red",) * 10), _example(2, ("red",))]
    assert resolve_monitor("auto", single) == "exact_match"
    assert resolve_monitor("auto", several) == "accuracy"
    assert resolve_monitor("exact_match/yes/no", single) == "exact_match/yes/no"
    assert resolve_monitor("accuracy/color", several) == "accuracy/color"
    with pytest.raises(ConfigError, match="monitor=exact_match"):
        resolve_monitor("accuracy", single)
    with pytest.raises(ConfigError, match="monitor: 'exact_match'"):
        resolve_monitor("exact_match", several)


def test_metrics_rule_is_a_config_key():
    assert _system("default").metrics["val"].rule == "a013f00"
    system = _system("default", ["metrics.rule=pre-a013f00"])
    assert system.metrics["val"].rule == system.metrics["test"].rule == "pre-a013f00"
    with pytest.raises(ConfigError, match="metrics.rule"):
        load_task_config("vqa", None, ["metrics.rule=c4e6a0e"])


@pytest.fixture(scope="module")
def vqa_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("vqa-run")
    args = ["train", "vqa", "--run-dir", str(run_dir), "--seed", "1"]
    args += [arg for value in TINY for arg in ("--set", value)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return run_dir


def test_cli_train_evaluate_score_round_trip(vqa_run: Path, tmp_path: Path):
    trained = json.loads((vqa_run / "metrics.json").read_text())
    assert trained["split"] == "test"
    # easy-VQA has one answer per question: exact match, never the official formula's zeros.
    names = {"exact_match", "exact_match/yes/no", "exact_match/color", "exact_match/shape"}
    assert names <= set(trained["metrics"]) and not any(n.startswith("accuracy") for n in trained["metrics"])
    assert "monitor: exact_match" in (vqa_run / "config.yaml").read_text()  # `auto`, resolved from the data
    checkpoint = vqa_run / "checkpoints" / "best.ckpt"
    assert checkpoint.is_file()
    out, predictions = tmp_path / "metrics.json", tmp_path / "predictions.json"
    result = CliRunner().invoke(
        app, ["evaluate", str(checkpoint), "--output", str(out), "--predictions", str(predictions)]
    )
    assert result.exit_code == 0, result.output
    evaluated = json.loads(out.read_text())["metrics"]
    assert evaluated == pytest.approx(trained["metrics"])
    rows = json.loads(predictions.read_text())
    assert len(rows) == 120 and set(rows[0]) == {"question_id", "answer"}
    # The official-format scorer on the same questions gives the same exact match.
    dm = EasyVqaDataModule(max_questions=120)
    dm.setup("test")
    questions, annotations = write_vqa_v2(
        dm.examples("test"), tmp_path / "q.json", tmp_path / "a.json", data_subtype="test"
    )
    scored_out = tmp_path / "scored.json"
    result = CliRunner().invoke(
        app, ["score", "vqa", "--predictions", str(predictions), "--questions", str(questions),
              "--annotations", str(annotations), "--output", str(scored_out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads(scored_out.read_text())["metrics"]
    assert scored["exact_match"] == pytest.approx(evaluated["exact_match"])
    assert scored["exact_match/color"] == pytest.approx(evaluated["exact_match/color"])
    # A results file that misses questions is refused, naming it.
    predictions.write_text(json.dumps(rows[:-1]))
    result = CliRunner().invoke(
        app, ["score", "vqa", "--predictions", str(predictions), "--questions", str(questions),
              "--annotations", str(annotations)],
    )  # fmt: skip
    assert result.exit_code == 2 and "have no answer" in result.output


def test_cli_predict_prints_top5_and_writes_attention(vqa_run: Path, tmp_path: Path):
    import easy_vqa

    image = Path(easy_vqa.get_test_image_paths()[0])
    checkpoint = vqa_run / "checkpoints" / "last.ckpt"
    att = tmp_path / "att.png"
    result = CliRunner().invoke(
        app, ["predict", str(checkpoint), str(image), "--question", "what color is the shape?",
              "--attention-map", str(att)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ranked = [
        line for line in result.output.splitlines() if line.strip()[:2] in {f"{i}." for i in range(1, 6)}
    ]
    assert len(ranked) == 5
    assert Image.open(att).size[0] > 100
    for question, message in (("", "question is empty"), ("zebra giraffe", "none of the question's words")):
        result = CliRunner().invoke(app, ["predict", str(checkpoint), str(image), "--question", question])
        assert result.exit_code == 2 and message in result.output
    result = CliRunner().invoke(
        app, ["predict", str(checkpoint), str(image), "--question", "what?", "--beam-size", "2"]
    )
    assert result.exit_code == 2 and "--beam-size" in result.output
