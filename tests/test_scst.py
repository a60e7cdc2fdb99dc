"""Self-critical sequence training: the CIDEr-D reward against COCO's scorer, the SCST loss and its two
baselines, scheduled sampling, and SCST runs from a cross-entropy checkpoint (CLI, errors, exact resume)."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from conftest import TINY_CAPTIONING
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.config import to_dict
from vltk.decoding import DecodeResult
from vltk.errors import ConfigError
from vltk.metrics.cider import cider_d_scores
from vltk.metrics.cider_reward import CiderDReward
from vltk.tasks import CaptioningTask
from vltk.tasks.captioning.scst import SelfCriticalConfig, reward_tokens, self_critical_step
from vltk.tasks.captioning.system import ScheduledSamplingConfig
from vltk.tasks.reliability import TrainingInterrupted
from vltk.tasks.runner import load_task_config, train
from vltk.text import Vocabulary

V = 12


def _corpus(seed: int, images: int = 40) -> dict[int, list[list[int]]]:
    rng = np.random.default_rng(seed)
    return {
        100 + 3 * i: [list(rng.integers(0, V, rng.integers(1, 9))) for _ in range(rng.integers(1, 6))]
        for i in range(images)
    }


def _words(ids) -> str:
    return " ".join(str(int(i)) for i in ids)


def _coco_cider_with_one_caption_per_image(refs: dict, captions: dict[int, list[int]]) -> dict[int, float]:
    """pycocoevalcap's CIDEr-D over the whole reference corpus (its document frequencies are then the
    corpus's, as the reward's are), every image with the caption given (others: an empty caption)."""
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [_words(r) for r in rs] for i, rs in refs.items()}
    res = {i: [_words(captions.get(i, []))] for i in refs}
    _, scores = Cider().compute_score(gts, res)
    return dict(zip(gts, scores, strict=True))


def test_the_reward_equals_coco_cider_d_with_the_training_document_frequencies():
    refs = _corpus(0)
    rng = np.random.default_rng(1)
    images = list(refs)
    # Three samples of each of 10 images, some empty, some equal to a reference, some with repeats.
    batch = [i for i in images[:10] for _ in range(3)]
    captions = [list(rng.integers(0, V, rng.integers(0, 10))) for _ in batch]
    captions[3], captions[4], captions[7] = list(refs[batch[4]][0]), list(refs[batch[4]][0]), [5, 5, 5, 5, 5]
    reward = CiderDReward(refs, vocab_size=V)(batch, captions)
    for sample in range(3):  # one COCO run per sample index: each image's score depends on its caption only
        chosen = {batch[row]: captions[row] for row in range(sample, len(batch), 3)}
        expected = _coco_cider_with_one_caption_per_image(refs, chosen)
        for row in range(sample, len(batch), 3):
            assert reward[row] == pytest.approx(expected[batch[row]], abs=1e-12)
    assert reward[3] == reward[4] > reward[5]  # rows 3-5: three samples of one image


def test_the_reward_over_the_whole_corpus_equals_vltk_cider_d():
    refs = _corpus(2, images=150)
    rng = np.random.default_rng(3)
    captions = [list(rng.integers(0, V, rng.integers(0, 12))) for _ in refs]
    reward = CiderDReward(refs, vocab_size=V)(list(refs), captions)
    _, expected = cider_d_scores([_words(c).split() for c in captions],
                                 [[_words(r).split() for r in rs] for rs in refs.values()])  # fmt: skip
    np.testing.assert_allclose(reward, expected, rtol=0, atol=1e-12)


def test_the_reward_refuses_unknown_images_and_tokens_and_empty_references():
    reward = CiderDReward(_corpus(0), vocab_size=V)
    with pytest.raises(KeyError, match="image id 7 has no references"):
        reward([7], [[1, 2]])
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 11\]"):
        reward([100], [[1, V]])
    with pytest.raises(ValueError, match="image 5 has no reference captions"):
        CiderDReward({4: [[1]], 5: []}, vocab_size=V)


def test_reward_tokens_end_with_end_only_when_it_was_generated():
    result = DecodeResult(tokens=torch.tensor([[4, 5, 0], [4, 5, 6]]), lengths=torch.tensor([2, 3]),
                          scores=torch.zeros(2))  # fmt: skip
    assert reward_tokens(result, end_id=2, max_length=3) == [[4, 5, 2], [4, 5, 6]]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("baseline", "best", "scst.baseline must be one of greedy, mean"),
     ("num_samples", 0, "scst.num_samples must be >= 1"),
     ("max_length", 0, "scst.max_length must be >= 1"),
     ("temperature", 0.0, "scst.temperature must be > 0")],
)  # fmt: skip
def test_scst_options_are_checked(key, value, message):
    with pytest.raises(ConfigError, match=message):
        SelfCriticalConfig(**{key: value})
    with pytest.raises(ConfigError, match="'mean' averages the other samples"):
        SelfCriticalConfig(baseline="mean", num_samples=1)


def test_the_scheduled_sampling_probability_follows_the_peers_schedule():
    schedule = ScheduledSamplingConfig(start_epoch=2, increase_every=3, increase_by=0.1, max_probability=0.25)
    assert [schedule.probability(e) for e in range(12)] == pytest.approx(
        [0, 0, 0, 0, 0, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.25]
    )
    assert ScheduledSamplingConfig().probability(50) == 0.0  # start_epoch null: off
    with pytest.raises(ConfigError, match="scheduled_sampling.max_probability must lie in"):
        ScheduledSamplingConfig(max_probability=1.5)


VOCAB = Vocabulary.build([["a", "red", "circle"], ["a", "blue", "square", "left", "of"]])


def _system(extra: list[str] = ()) -> CaptioningTask:
    cfg = load_task_config("captioning", None, [*TINY_CAPTIONING, "model.decoder.dropout=0.0", *extra])
    return CaptioningTask(config=to_dict(cfg), vocab=VOCAB.to_json())


@pytest.mark.parametrize("decoder", ["show_attend_tell", "show_tell"])
def test_scheduled_sampling_at_zero_is_teacher_forcing_and_at_one_feeds_samples(decoder: str):
    torch.manual_seed(0)
    extra = [f"model.name={decoder}"] + (["model.decoder={}"] if decoder == "show_tell" else [])
    model = _system(extra).model.eval()
    features = model.encode(torch.randn(3, 3, 64, 64))
    captions = torch.randint(4, len(VOCAB), (3, 6))
    captions[:, 0] = VOCAB.start_id
    forced = model.teacher_forcing(features, captions).logits  # [B, T-1, V]
    decoder_module = model.decoder
    zero = decoder_module.scheduled_sampling(features, captions[:, :-1], 0.0).logits
    torch.testing.assert_close(zero, forced, atol=1e-5, rtol=1e-5)
    generator = torch.Generator().manual_seed(1)
    one = decoder_module.scheduled_sampling(features, captions[:, :-1], 1.0, generator=generator).logits
    torch.testing.assert_close(one[:, 0], forced[:, 0])  # the first input is always <start>
    assert not torch.allclose(one[:, 1:], forced[:, 1:])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        decoder_module.scheduled_sampling(features, captions[:, :-1], 1.5)


def test_a_scheduled_sampling_run_logs_its_probability(tmp_path: Path, tiny_captioning_overrides):
    overrides = [*tiny_captioning_overrides, "trainer.max_epochs=2", "trainer.log_every_n_steps=1",
                 "scheduled_sampling.start_epoch=0", "scheduled_sampling.increase_every=1",
                 "scheduled_sampling.increase_by=0.2"]  # fmt: skip
    train(load_task_config("captioning", None, overrides), run_dir=tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    logged = sorted({float(r["train/sample_probability"]) for r in rows if r.get("train/sample_probability")})
    assert logged == [pytest.approx(0.2)]  # epoch 0: 0 (not logged), epoch 1: 0.2


@pytest.mark.parametrize("baseline", ["greedy", "mean"])
def test_the_scst_loss_has_gradients_and_its_baseline(baseline: str):
    torch.manual_seed(0)
    system = _system().train()
    refs = {i: [[4, 5, VOCAB.end_id], [4, 6, 7, VOCAB.end_id]] for i in range(3)}
    reward = CiderDReward(refs, vocab_size=len(VOCAB))
    config = SelfCriticalConfig(baseline=baseline, num_samples=4, max_length=5)
    step = self_critical_step(system.model, torch.randn(3, 3, 64, 64), [0, 1, 2], reward, config)
    assert torch.isfinite(step.loss) and system.model.training  # the greedy pass restored training mode
    step.loss.backward()
    assert all(p.grad is not None for p in system.model.decoder.parameters() if p.requires_grad)
    if baseline == "mean":  # the leave-one-out mean: baseline and reward have the same mean
        assert step.baseline == pytest.approx(step.reward)


@pytest.mark.parametrize("baseline", ["greedy", "mean"])
def test_scst_steps_raise_the_reward(baseline: str):
    """A few dozen SCST steps from a random model on four images make its greedy captions score higher."""
    torch.manual_seed(0)
    model = _system().model.train()
    words = [VOCAB.token_to_id(w) for w in ("red", "circle", "blue", "square")]
    refs = {i: [[words[i], words[(i + 1) % 4], VOCAB.end_id]] for i in range(4)}
    reward = CiderDReward(refs, vocab_size=len(VOCAB))
    images, ids = torch.randn(4, 3, 64, 64), [0, 1, 2, 3]
    config = SelfCriticalConfig(baseline=baseline, num_samples=6, max_length=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def greedy_reward() -> float:
        from vltk.tasks.captioning.scst import greedy_rewards

        return float(greedy_rewards(model, images, ids, reward, config.max_length)[0].mean())

    before = greedy_reward()
    for _ in range(40):
        optimizer.zero_grad()
        self_critical_step(model, images, ids, reward, config).loss.backward()
        optimizer.step()
    assert greedy_reward() > before + 0.7  # measured: 0.72 -> 2.27 (greedy), 1.76 (mean)


def _scst_args(run_dir: Path, checkpoint: Path, extra: list[str] = ()) -> list[str]:
    overrides = [*TINY_CAPTIONING, f"model.init_from={checkpoint}", "scst.num_samples=2", "scst.max_length=8",
                 "trainer.log_every_n_steps=1", *extra]  # fmt: skip
    args = ["train", "captioning", "--config", "scst", "--run-dir", str(run_dir)]
    return args + [arg for value in overrides for arg in ("--set", value)]


def test_scst_trains_from_a_cross_entropy_checkpoint_through_the_cli(trained_run: Path, tmp_path: Path):
    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    result = CliRunner().invoke(app, _scst_args(tmp_path / "scst", checkpoint))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "scst" / "logs" / "metrics.csv")))
    assert any(r.get("train/reward") for r in rows) and any(r.get("train/baseline_reward") for r in rows)
    share = [float(r["train/reward_time_share"]) for r in rows if r.get("train/reward_time_share")]
    assert share and 0 < share[0] < 1
    config = yaml.safe_load((tmp_path / "scst" / "config.yaml").read_text())
    trained = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["model"] == {**trained["model"], "init_from": str(checkpoint)}  # the checkpoint's network
    assert (tmp_path / "scst" / "metrics.json").is_file()


def test_scst_errors_are_one_line(trained_run: Path, tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, _scst_args(tmp_path / "a", trained_run / "nope.ckpt"))
    assert result.exit_code == 2 and "model.init_from" in result.output and "nope.ckpt" in result.output
    assert "Traceback" not in result.output
    args = ["train", "captioning", "--config", "scst", "--run-dir", str(tmp_path / "b")]
    result = runner.invoke(app, [*args, *[a for v in TINY_CAPTIONING for a in ("--set", v)]])
    assert result.exit_code == 2 and "set model.init_from to its checkpoint" in result.output


class SignalAtStep(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_scst_resumes_bitwise_like_cross_entropy(trained_run: Path, tmp_path: Path):
    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    overrides = [*TINY_CAPTIONING, f"model.init_from={checkpoint}", "scst.num_samples=2", "scst.max_length=6",
                 "trainer.max_epochs=2", "data.num_images=80", "seed=7"]  # fmt: skip
    cfg = load_task_config("captioning", "scst", overrides)
    train(cfg, run_dir=tmp_path / "whole")
    cfg = load_task_config("captioning", "scst", overrides)
    with pytest.raises(TrainingInterrupted):
        train(cfg, run_dir=tmp_path / "parts", extra_callbacks=[SignalAtStep(3)])
    train(load_task_config("captioning", "scst", overrides), run_dir=tmp_path / "parts", resume="last")
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    parts = torch.load(tmp_path / "parts" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert whole.keys() == parts.keys()
    assert all(torch.equal(whole[k], parts[k]) for k in whole)
