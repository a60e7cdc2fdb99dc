"""The R2R navigation system: imitation of the shortest-path teacher, greedy evaluation with the R2R metrics.

Training (Anderson et al. 2018, section 5.1; Fried et al. 2018, section 3.3): each batch of instructions is
played out in the graph environment; at every step the loss is the cross-entropy between the agent's
choice distribution and the teacher's action *in the state the agent is in*, and the action taken is the
teacher's (``loss.feedback: teacher``) or sampled from the agent (``student``: student forcing, the
default). Evaluation decodes greedily (argmax) and scores the trajectories with :mod:`vltk.metrics.r2r`
(success rate, oracle success, SPL, navigation error, trajectory length, nDTW, SDTW, CLS), gathered over DDP
ranks and de-duplicated by ``instr_id``. A split without reference paths (R2R's test) is played and its
trajectories kept for ``vltk evaluate --predictions``, with no metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from vltk.config import from_dict, spec_field, to_dict
from vltk.errors import ConfigError
from vltk.metrics.r2r import R2R_METRIC_NAMES, R2RMetrics, R2RRecord, mean_scores
from vltk.tasks.navigation.r2r.agents import R2R_AGENTS, R2R_WIRED, build_r2r_agent
from vltk.tasks.navigation.r2r.datamodule import R2RBatch
from vltk.tasks.navigation.r2r.datasets import R2R_DATASETS
from vltk.tasks.navigation.r2r.inference import FollowedEpisode, R2RFollower, env_episode, play_greedy
from vltk.tasks.navigation.r2r.rollout import check_avoid_revisits, check_feedback, run_episodes
from vltk.tasks.training import (
    EvaluatingSystem,
    OptimConfig,
    TrainerConfig,
    build_optimizer,
    check_num_threads,
)
from vltk.text import Vocabulary

logger = logging.getLogger(__name__)

LOWER_IS_BETTER = ("navigation_error", "trajectory_length")


@dataclass
class R2RLossConfig:
    """``feedback``: the action taken while training, ``teacher`` or ``student`` (sampled; the default)."""

    feedback: str = "student"

    def __post_init__(self) -> None:
        if check_feedback(self.feedback) == "argmax":
            raise ConfigError("loss.feedback: 'argmax' is for evaluation; train with 'teacher' or 'student'")


@dataclass
class R2RConfig:
    """An R2R navigation run: ``data`` an R2R-layout dataset, ``model`` an R2R agent.

    ``max_steps`` caps an episode's actions (panoramic moves, or low-level actions for seq2seq; R2R's paths
    have 4-6 edges, and Anderson et al. 2018 allow 20 low-level actions). ``avoid_revisits`` (panoramic
    agents, evaluation only): the greedy decoder never moves back to a viewpoint the episode has been at, the
    cycle avoidance of Tan et al. 2019's submission mode (``rollout.mask_visited``); training is unchanged,
    so ``vltk evaluate CKPT --set avoid_revisits=true`` applies it to any checkpoint. ``num_threads`` sets
    torch's intra-op threads (the per-step operations are small; ``null``: torch's default).
    """

    task: str = "navigation"
    seed: int = 42
    data: dict = spec_field(R2R_DATASETS, {"name": "r2r_houses"})
    model: dict = spec_field(R2R_AGENTS, {"name": "panoramic"}, wired=R2R_WIRED)
    loss: R2RLossConfig = field(default_factory=R2RLossConfig)
    max_steps: int = 15
    avoid_revisits: bool = False
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    monitor: str = "success_rate"
    num_samples: int = 5
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.task != "navigation":
            raise ConfigError(f"task: this is a navigation config, got task '{self.task}'")
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        check_num_threads(self.num_threads)
        agent = self.model.get("name")
        if agent in R2R_AGENTS:  # an unknown name is the registry's error, at build time
            check_avoid_revisits(self.avoid_revisits, R2R_AGENTS[agent].action_space, agent)
        if self.monitor not in R2R_METRIC_NAMES:
            raise ConfigError(f"monitor: '{self.monitor}' is not one of {', '.join(R2R_METRIC_NAMES)}")

    @property
    def monitor_mode(self) -> str:
        return "min" if self.monitor in LOWER_IS_BETTER else "max"


class R2RNavigationTask(EvaluatingSystem):
    """Lightning system around an R2R agent (:mod:`vltk.tasks.navigation.r2r.agents`).

    Args:
        config: the resolved :class:`R2RConfig` as a plain dict (stored in checkpoints).
        vocab: the instruction vocabulary as ``tokenizer.json`` text (stored in checkpoints).
        feature_dim: the view feature size the agent was built for (stored in checkpoints).
    """

    def __init__(self, config: dict[str, Any], vocab: str, feature_dim: int):
        super().__init__()
        self.save_hyperparameters()
        self.config = from_dict(R2RConfig, config, old_keys=True)
        self.vocab = Vocabulary.from_json(vocab)
        self.model = build_r2r_agent(
            self.config.model, vocab_size=len(self.vocab), feature_dim=feature_dim, pad_id=self.vocab.pad_id
        )
        self.datamodule: Any = None
        self.metrics: dict[str, R2RMetrics] = {}
        self.played: list[FollowedEpisode] = []
        self.results: dict[str, dict[str, float]] = {}

    @classmethod
    def from_data(cls, cfg: R2RConfig, datamodule: Any) -> R2RNavigationTask:
        """The system for training on ``datamodule``: its vocabulary and feature size go in."""
        system = cls(
            config=to_dict(cfg), vocab=datamodule.vocab.to_json(), feature_dim=datamodule.feature_dim
        )
        system.datamodule = datamodule
        return system

    def attach_data(self, datamodule: Any) -> None:
        """Evaluate with the checkpoint's vocabulary, in ``datamodule``'s environment."""
        datamodule.vocab = self.vocab
        if datamodule.feature_dim != self.hparams.feature_dim:
            raise ConfigError(
                f"data.features: the store has {datamodule.feature_dim}-dimensional view features; the "
                f"checkpoint's agent was trained on {self.hparams.feature_dim}"
            )
        self.datamodule = datamodule

    def setup(self, stage: str) -> None:
        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)
        if self.datamodule is None and self.trainer is not None:
            self.datamodule = self.trainer.datamodule

    # ---------------------------------------------------------------------------------------------- play
    def training_step(self, batch: R2RBatch, batch_idx: int) -> Tensor:
        env = self.datamodule.environment(self.config.max_steps)
        env.reset([env_episode(item) for item in batch.items])
        rollout = run_episodes(
            self.model,
            env,
            batch.tokens,
            batch.mask,
            feedback=self.config.loss.feedback,
            max_steps=self.config.max_steps,
        )
        self.log("train/loss", rollout.loss, prog_bar=True, batch_size=max(rollout.steps, 1))
        self.log("train/accuracy", rollout.accuracy, prog_bar=True, batch_size=max(rollout.steps, 1))
        return rollout.loss

    # ----------------------------------------------------------------------------------------- evaluation
    def _start_eval(self, stage: str) -> None:
        env = self.datamodule.environment(self.config.max_steps)
        self.metrics[stage] = R2RMetrics({scan: graph.distance for scan, graph in env.graphs.items()})
        self.played = []

    def _eval_step(self, batch: R2RBatch, stage: str) -> None:
        env = self.datamodule.environment(self.config.max_steps)
        _, trajectories = play_greedy(
            self.model, env, batch, self.config.max_steps, avoid_revisits=self.config.avoid_revisits
        )
        records = []
        for item, trajectory in zip(batch.items, trajectories):
            self.played.append(FollowedEpisode(item, trajectory))
            if item.has_goal:
                nodes = [step[0] for step in trajectory]
                records.append(R2RRecord(item.instr_id, item.scan, list(item.path), nodes))
        self.metrics[stage].update(records)

    def _end_eval(self, stage: str) -> None:
        metrics = self.metrics[stage]
        episodes = metrics.episode_scores()  # a collective under DDP: every rank calls it
        by_id = {episode.instr_id: episode.scores for episode in episodes}
        for played in self.played:
            played.scores = by_id.get(played.item.instr_id)
        if episodes:
            scores = mean_scores([episode.scores for episode in episodes])
        else:
            if self.played:
                logger.warning("this split has no reference paths: its trajectories are kept, not scored")
            scores = {}
        self.results[stage] = scores
        for name, value in scores.items():  # identical on every rank; sync_dist keeps Lightning consistent
            self.log(f"{stage}/{name}", value, prog_bar=stage == "val" and name == self.config.monitor,
                     sync_dist=True)  # fmt: skip

    def sample_rows(self) -> list[dict[str, str]]:
        rows = []
        for played in self.played[: self.config.num_samples]:
            scores = played.scores or {}
            rows.append(
                {
                    "instr_id": played.item.instr_id,
                    "instruction": played.item.instruction,
                    "success": "-" if not scores else ("yes" if scores["success_rate"] else "no"),
                    "error (m)": "-" if not scores else f"{scores['navigation_error']:.1f}",
                    "steps": str(len(played.trajectory) - 1),
                }
            )
        return rows

    def prediction_rows(self) -> list[dict[str, Any]]:
        """The last evaluation's trajectories in the EvalAI submission layout (this rank's episodes, one
        per ``instr_id``): ``{"instr_id": "PATHID_K", "trajectory": [[viewpoint, heading, elevation], ...]}``
        (``vltk score navigation`` reads it back)."""
        seen: set[str] = set()
        rows = []
        for played in self.played:
            if played.item.instr_id not in seen:
                seen.add(played.item.instr_id)
                rows.append({"instr_id": played.item.instr_id, "trajectory": played.trajectory})
        return rows

    def inference(self) -> R2RFollower:
        """The inference object around this system's network (shared, not copied) and vocabulary, in this
        system's dataset: what ``vltk.from_pretrained`` gives for its checkpoint."""
        return R2RFollower(self.model, self.vocab, self.config, self.datamodule)

    # ---------------------------------------------------------------------------------------- optimisation
    def make_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self.config.optim, self.model, None)
