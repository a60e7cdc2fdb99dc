"""The instruction-following navigation system on BabyAI: behaviour cloning of the bot, rollout evaluation.

Training is imitation learning (Chevalier-Boisvert et al. 2019, BabyAI, section 5): cross-entropy between the
agent's action distribution and the bot's action at every step of whole demo episodes, run with truncated
backprop through time (the memory is detached every ``loss.tbptt_steps`` steps; one optimiser step per
batch of episodes). Validation and test play fresh episodes on held-out seeds (a batch is a list of seeds;
see ``vltk.tasks.navigation.babyai.datamodule``) and report success rate, mean reward, SPL (against each
episode's shortest solution, searched exactly by ``vltk.tasks.navigation.babyai.shortest_path``) and mean
episode length, gathered over DDP ranks and de-duplicated by seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vltk.config import from_dict, spec_field, to_dict
from vltk.errors import ConfigError
from vltk.metrics.navigation import NAVIGATION_METRIC_NAMES, EpisodeResult, NavigationMetrics
from vltk.tasks.navigation.agent import NAVIGATION_AGENTS, WIRED, build_navigation_agent
from vltk.tasks.navigation.babyai.episodes import NavigationBatch
from vltk.tasks.navigation.datasets import BABYAI_DATASETS
from vltk.tasks.navigation.inference import DEFAULT_TEST_SEED, InstructionFollower
from vltk.tasks.training import (
    EvaluatingSystem,
    OptimConfig,
    TrainerConfig,
    build_optimizer,
    check_num_threads,
)
from vltk.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class NavigationLossConfig:
    """``tbptt_steps``: detach the memory every this many steps (0: full episodes)."""

    tbptt_steps: int = 20
    label_smoothing: float = 0.0


@dataclass
class NavigationConfig:
    """A BabyAI navigation run: ``data`` is a BabyAI dataset spec, ``model`` a navigation agent spec (the R2R
    family has its own config, :class:`vltk.tasks.navigation.r2r.system.R2RConfig`).

    ``num_threads`` sets torch's intra-op threads for the run (``null``: torch's default). The agent's
    per-step operations are tiny (batches of 7x7 grids), so one thread is fastest; several threads on a busy
    machine were measured 15x slower per batch (oversubscribed OpenMP workers spin and wait).
    """

    task: str = "navigation"
    seed: int = 42
    data: dict = spec_field(BABYAI_DATASETS, {"name": "babyai"})
    model: dict = spec_field(NAVIGATION_AGENTS, {"name": "attention_lstm"}, wired=WIRED)
    loss: NavigationLossConfig = field(default_factory=NavigationLossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    monitor: str = "success_rate"
    num_samples: int = 5
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        check_num_threads(self.num_threads)
        if self.task != "navigation":
            raise ConfigError(f"task: this is a navigation config, got task '{self.task}'")
        if self.monitor not in NAVIGATION_METRIC_NAMES:
            raise ConfigError(f"monitor: '{self.monitor}' is not one of {', '.join(NAVIGATION_METRIC_NAMES)}")
        if self.loss.tbptt_steps < 0:
            raise ConfigError(f"loss.tbptt_steps must be >= 0, got {self.loss.tbptt_steps}")

    @property
    def monitor_mode(self) -> str:
        return "min" if self.monitor == "episode_length" else "max"


class NavigationTask(EvaluatingSystem):
    """Lightning system around :class:`vltk.tasks.navigation.agent.NavigationAgent`.

    Args:
        config: the resolved :class:`NavigationConfig` as a plain dict (stored in checkpoints).
        vocab: the instruction vocabulary as ``tokenizer.json`` text (stored in checkpoints).
    """

    def __init__(self, config: dict[str, Any], vocab: str):
        super().__init__()
        self.save_hyperparameters()
        self.config = from_dict(NavigationConfig, config, old_keys=True)
        self.vocab = Vocabulary.from_json(vocab)
        self.model = build_navigation_agent(
            self.config.model,
            vocab_size=len(self.vocab),
            observation=self.config.data["observation"],
            pad_id=self.vocab.pad_id,
        )
        self.metrics = {"val": NavigationMetrics(), "test": NavigationMetrics()}
        self.episodes: list[EpisodeResult] = []
        self.results: dict[str, dict[str, float]] = {}

    @classmethod
    def from_data(cls, cfg: NavigationConfig, datamodule: Any) -> NavigationTask:
        """The system for training on ``datamodule``: the vocabulary of its demo missions goes in."""
        return cls(config=to_dict(cfg), vocab=datamodule.vocab.to_json())

    def attach_data(self, datamodule: Any) -> None:
        """Evaluate with the checkpoint's vocabulary (no demos are needed to play episodes)."""
        datamodule.vocab = self.vocab

    def setup(self, stage: str) -> None:
        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)

    @property
    def level(self) -> str:
        return str(self.config.data["level"])

    def sample_rows(self) -> list[dict[str, str]]:
        return [
            {
                "seed": str(e.seed),
                "mission": e.mission,
                "success": "yes" if e.success else "no",
                "steps": str(e.length),
                "shortest": "-" if e.shortest is None else str(e.shortest),
            }
            for e in self.episodes[: self.config.num_samples]
        ]

    def prediction_rows(self) -> list[dict[str, Any]]:
        """Every episode of the last evaluation, every rank's, one per seed: ``seed``, ``level``, ``mission``,
        ``success``, ``reward``, ``length`` (the agent's steps), ``shortest_length`` (the fewest steps that
        solve it, ``None`` when none within the step budget) and its ``spl``."""
        return [
            {
                "seed": e.seed,
                "level": e.level,
                "mission": e.mission,
                "success": e.success,
                "reward": e.reward,
                "length": e.length,
                "shortest_length": e.shortest,
                "spl": e.spl,
            }
            for e in self.episodes
        ]

    # ----------------------------------------------------------------------------------------------- loss
    def _loss(self, batch: NavigationBatch) -> tuple[Tensor, Tensor]:
        output = self.model.forward_episodes(
            batch.images,
            batch.directions,
            batch.instructions,
            batch.instruction_mask,
            step_mask=batch.step_mask,
            tbptt_steps=self.config.loss.tbptt_steps,
        )  # logits [B, T, 7]
        logits = output.logits[batch.step_mask]  # [S, 7]
        targets = batch.actions[batch.step_mask]  # [S]
        loss = F.cross_entropy(logits, targets, label_smoothing=self.config.loss.label_smoothing)
        accuracy = (logits.argmax(dim=-1) == targets).float().mean()
        return loss, accuracy

    def training_step(self, batch: NavigationBatch, batch_idx: int) -> Tensor:
        loss, accuracy = self._loss(batch)
        steps = int(batch.step_mask.sum())
        self.log("train/loss", loss, prog_bar=True, batch_size=steps)
        self.log("train/accuracy", accuracy, prog_bar=True, batch_size=steps)
        return loss

    # ----------------------------------------------------------------------------------------- evaluation
    def inference(self) -> InstructionFollower:
        """The inference object around this system's network (shared, not copied), its vocabulary and its
        level: what ``vltk.from_pretrained`` gives for its checkpoint."""
        data = self.config.data
        test_seed = int(data.get("test_seed", DEFAULT_TEST_SEED))
        return InstructionFollower(self.model, self.vocab, self.level, data["observation"], test_seed)

    def play(self, seeds: list[int], record: bool = False, level: str | None = None) -> list[EpisodeResult]:
        """Play greedy episodes of ``seeds`` (held-out) with the current weights
        (:meth:`vltk.tasks.navigation.inference.InstructionFollower.play_many`)."""
        return self.inference().play_many(seeds, level=level, record=record)

    def _eval_step(self, seeds: Tensor, stage: str) -> None:
        self.metrics[stage].update(self.play(seeds.tolist()))

    def _start_eval(self, stage: str) -> None:
        self.metrics[stage].reset()
        self.episodes = []

    def _end_eval(self, stage: str) -> None:
        self.episodes = self.metrics[stage].episodes()  # the whole split, gathered over ranks, one per seed
        scores = (
            self.metrics[stage].compute() if self.episodes else dict.fromkeys(NAVIGATION_METRIC_NAMES, 0.0)
        )
        self.results[stage] = scores
        for name, value in scores.items():  # identical on every rank; sync_dist keeps Lightning consistent
            self.log(f"{stage}/{name}", value, prog_bar=stage == "val" and name == self.config.monitor,
                     sync_dist=True)  # fmt: skip

    # ---------------------------------------------------------------------------------------- optimisation
    def make_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self.config.optim, self.model, None)
