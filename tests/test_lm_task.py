"""The lm task: truncated BPTT carries detached state, clipping, the shipped configs, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.config import to_dict
from vltk.errors import ConfigError
from vltk.tasks.lm.data import LmBatch, TextFilesDataModule
from vltk.tasks.lm.system import LmConfig, LmTask
from vltk.tasks.runner import available_configs, load_task_config

CODE = "def f(x):\n    return 'x' + \"y\"\n\nclass A:\n    pass\n" * 40


def tiny_overrides(path: Path) -> list[str]:
    return [
        "data.name=text",
        f"data.files=[{path}]",
        "data.seq_len=16",
        "data.batch_size=4",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
        "model.hidden_dim=16",
        "model.embed_dim=8",
        "trainer.max_epochs=1",
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "sample.length=20",
    ]


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    path = tmp_path / "code.py"
    path.write_text(CODE, encoding="utf-8")
    return path


def _system(code_file: Path, *extra: str) -> tuple[LmTask, TextFilesDataModule]:
    cfg = load_task_config("lm", None, tiny_overrides(code_file) + list(extra))
    dm = TextFilesDataModule([str(code_file)], seq_len=16, batch_size=4)
    dm.setup("fit")
    return LmTask.from_data(cfg, dm), dm


def test_truncated_bptt_carries_detached_state(code_file):
    torch.manual_seed(0)
    system, dm = _system(code_file)
    first, second = list(dm.train_dataloader())[:2]
    system.log = lambda *args, **kwargs: None  # no trainer attached
    system.training_step(first, 0)
    carried = system._states["train"]
    assert not any(s.requires_grad for s in carried)
    loss = system.training_step(second, 1)
    logits, _ = system.model(second.inputs, carried)
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), second.targets.reshape(-1)
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()  # only through this chunk: the carried state is a leaf
    restart = LmBatch(first.inputs, first.targets, first=True)
    system.training_step(restart, 2)  # a new pass starts from zeros again
    assert torch.allclose(system._states["train"][0], system.model(first.inputs)[1][0].detach())


def test_sum_over_time_loss_is_t_times_mean(code_file):
    torch.manual_seed(0)
    system, dm = _system(code_file, "loss.reduction=sum_over_time")
    system.log = lambda *args, **kwargs: None
    batch = next(iter(dm.train_dataloader()))
    summed = system.training_step(batch, 0)
    system.config.loss.reduction = "mean"
    mean = system.training_step(LmBatch(batch.inputs, batch.targets, first=True), 0)
    torch.testing.assert_close(summed, mean * batch.inputs.shape[1])


def test_clipping_by_value_then_norm(code_file):
    system, dm = _system(code_file, "optim.clip_value=0.01", "optim.clip_norm=0.02")
    for p in system.model.parameters():
        p.grad = torch.randn_like(p)
    clipped = []
    system.clip_gradients = lambda opt, gradient_clip_val, gradient_clip_algorithm: clipped.append(
        (gradient_clip_val, gradient_clip_algorithm)
    )
    system.configure_gradient_clipping(None)
    assert clipped == [(0.01, "value"), (0.02, "norm")]


@pytest.mark.parametrize("name", available_configs("lm"))
def test_every_shipped_lm_config_builds(name, code_file):
    cfg = load_task_config("lm", name)
    assert cfg.task == "lm" and cfg.monitor_mode == "min"
    system = LmTask(config=to_dict(cfg), vocab='{"level": "char", "symbols": ["a", "b"]}')
    logits, _ = system.model(torch.zeros(2, 3, dtype=torch.long))
    assert logits.shape == (2, 3, 3)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.hiden_dim"):
        load_task_config("lm", None, ["model.hiden_dim=3"])
    with pytest.raises(ConfigError, match="optim.name"):
        load_task_config("lm", None, ["optim.name=adagrd"])
    with pytest.raises(ConfigError, match="vocab_size"):
        load_task_config("lm", None, ["model.vocab_size=3"])
    assert LmConfig().monitor == "bpc"


def test_cli_train_evaluate_predict(code_file, tmp_path):
    runner = CliRunner()
    run_dir = tmp_path / "run"
    args = ["train", "lm", "--run-dir", str(run_dir), "--seed", "1"]
    args += [a for value in tiny_overrides(code_file) for a in ("--set", value)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and 0 < metrics["metrics"]["bpc"] < 8
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    assert ckpt.is_file()

    result = runner.invoke(
        app, ["evaluate", str(ckpt), "--split", "val", "--output", str(tmp_path / "m.json")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["perplexity"] > 1

    predict = [
        "predict",
        str(ckpt),
        "--prime",
        "def ",
        "--length",
        "40",
        "--temperature",
        "0.8",
        "--seed",
        "5",
    ]
    first = runner.invoke(app, predict)
    again = runner.invoke(app, predict)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("def ") and first.output == again.output  # seeded sampling repeats
    assert len(first.output.rstrip("\n")) >= 40

    unknown = runner.invoke(app, ["predict", str(ckpt), "--prime", "λ"])
    assert unknown.exit_code == 2 and "never saw" in unknown.output
    other = runner.invoke(app, ["predict", str(ckpt), "--question", "why?"])
    assert other.exit_code == 2 and "--question" in other.output

    out = tmp_path / "acts"
    acts = runner.invoke(
        app,
        ["diagnose", "activations", str(ckpt), "--text", str(code_file), "--out", str(out), "--chars", "300"],
    )
    assert acts.exit_code == 0, acts.output
    assert (out / "activations.html").is_file() and list(out.glob("cell-in_quotes-*.png"))
    assert "indentation" in acts.output


def test_word_level_training_reports_perplexity(code_file, tmp_path):
    from vltk.tasks.runner import train

    overrides = tiny_overrides(code_file) + ["data.level=word", "monitor=perplexity", "sample.prime=def "]
    overrides += ["trainer.val_check_interval=1000"]  # longer than a pass over the text: shortened
    result = train(load_task_config("lm", "word", overrides), run_dir=tmp_path / "word")
    assert 1 < result.metrics["perplexity"] < 100
    assert result.samples and result.samples[0]["sample"]


def test_the_default_budget_is_in_updates_whatever_the_text_size(tmp_path):
    """``max_steps`` with ``max_epochs: -1`` (the default config): a short text is read as many times as the
    budget needs, validation counted in updates across the passes, the cosine schedule over the budget."""
    from vltk.tasks.runner import train

    default = load_task_config("lm", None)
    assert (default.trainer.max_epochs, default.trainer.max_steps) == (-1, 600)
    assert default.trainer.check_val_every_n_epoch is None
    code_file = tmp_path / "short.py"
    code_file.write_text(CODE[: len(CODE) // 40 * 5], encoding="utf-8")  # a few updates per pass
    keep = ("trainer.max_epochs", "trainer.max_steps", "trainer.val_check_interval")
    overrides = [o for o in tiny_overrides(code_file) if not o.startswith(keep)]
    overrides += ["trainer.max_steps=15", "trainer.val_check_interval=5"]
    cfg = load_task_config("lm", None, overrides)
    dm = TextFilesDataModule([str(code_file)], seq_len=16, batch_size=4, val_fraction=0.1, test_fraction=0.1)
    dm.setup("fit")
    per_pass = len(dm.train_dataloader().dataset)
    assert per_pass < 5  # the validation interval is longer than a pass, and it stands
    assert LmTask.from_data(cfg, dm).config.trainer.val_check_interval == 5
    train(cfg, run_dir=tmp_path / "run")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 15 and last["epoch"] >= 15 // per_pass
    rows = (tmp_path / "run" / "logs" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    val_steps = [int(r.split(",")[header.index("step")]) for r in rows[1:]
                 if r.split(",")[header.index("val/bpc")]]  # fmt: skip
    assert val_steps == [4, 9, 14]  # after updates 5, 10 and 15 (Lightning logs the step index)


def test_min_char_rnn_adagrad_puts_eps_under_the_square_root():
    from vltk.tasks.lm.system import LmOptimConfig, build_lm_optimizer

    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
    optimizer = build_lm_optimizer(
        LmOptimConfig(name="adagrad", lr=0.1, eps=1e-8, eps_inside_sqrt=True), model
    )
    grads = torch.tensor([[1e-5, 0.5, -2.0]])
    for _ in range(2):
        model.weight.grad = grads.clone()
        optimizer.step()
    expected = 1.0 - 0.1 * grads / (grads**2 + 1e-8).sqrt() - 0.1 * grads / (2 * grads**2 + 1e-8).sqrt()
    torch.testing.assert_close(model.weight.detach(), expected)
    assert model.weight[0, 0] > 0.97  # a tiny gradient, small steps (torch's Adagrad: 0.1 per step)
    with pytest.raises(ConfigError, match="adagrad only"):
        build_lm_optimizer(LmOptimConfig(name="adam", eps_inside_sqrt=True), model)
