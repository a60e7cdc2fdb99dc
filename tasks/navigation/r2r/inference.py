"""The R2R inference object: a trained agent, its vocabulary and the houses it moves in.

:func:`play_greedy` is the one place R2R episodes are decoded (argmax at every step): evaluation
(``R2RNavigationTask``), :func:`vltk.from_pretrained` and ``vltk predict`` all call it.
:class:`R2RFollower` is what ``vltk.from_pretrained`` returns for an R2R checkpoint: it reopens the
checkpoint's dataset (``config.data``: the R2R folders, or the built-in houses, regenerated from their
options when the cache was cleared) to follow an instruction of a split, or a new instruction from any
viewpoint of those houses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from vltk.errors import DataError
from vltk.export import evaluating, hyper_parameter, load_network
from vltk.metrics.r2r import R2RRecord, score_episode
from vltk.registry import build
from vltk.tasks.navigation.r2r.agents import build_r2r_agent
from vltk.tasks.navigation.r2r.datamodule import R2RBatch, R2RItem
from vltk.tasks.navigation.r2r.env import EnvEpisode
from vltk.tasks.navigation.r2r.rollout import run_episodes
from vltk.text import Vocabulary


@dataclass
class FollowedEpisode:
    """One instruction followed greedily.

    Attributes:
        item: the instruction, its scan, start, heading and reference path (just the start when unknown).
        trajectory: the EvalAI layout ``[[viewpoint, heading, elevation], ...]``, start included.
        attention: per agent decision, the weights over the instruction's tokens ``[L]``.
        words: the instruction's tokens as the agent read them.
        scores: the R2R metrics of this episode (``None`` without a reference path).
    """

    item: R2RItem
    trajectory: list[list[Any]]
    attention: list[np.ndarray] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    scores: dict[str, float] | None = None

    @property
    def viewpoints(self) -> list[str]:
        return [step[0] for step in self.trajectory]


def play_greedy(
    model: nn.Module,
    env: Any,
    batch: R2RBatch,
    max_steps: int,
    record: bool = False,
    avoid_revisits: bool = False,
):
    """Decode ``batch`` greedily in ``env``: ``(rollout, trajectories)`` (the rollout carries the word
    attention when ``record``; ``avoid_revisits``: the config key of that name)."""
    env.reset([env_episode(item) for item in batch.items])
    with torch.no_grad(), evaluating(model):
        rollout = run_episodes(
            model,
            env,
            batch.tokens,
            batch.mask,
            feedback="argmax",
            max_steps=max_steps,
            teacher_loss=False,
            record=record,
            avoid_revisits=avoid_revisits,
        )
    return rollout, env.trajectories()


def env_episode(item: R2RItem) -> EnvEpisode:
    return EnvEpisode(item.instr_id, item.scan, item.path[0], item.heading, tuple(item.path))


@dataclass
class R2RFollower:
    """An R2R agent ready to follow instructions in the houses of its dataset.

    Attributes:
        model: the network (:mod:`vltk.tasks.navigation.r2r.agents`).
        vocab: the instruction vocabulary.
        config: the checkpoint's parsed :class:`~vltk.tasks.navigation.r2r.system.R2RConfig`.
    """

    task: ClassVar[str] = "navigation"

    model: nn.Module
    vocab: Vocabulary
    config: Any
    _datamodule: Any = field(default=None, repr=False)

    @classmethod
    def from_checkpoint(
        cls, config: Any, hyper_parameters: Mapping[str, Any], state_dict: Mapping[str, Tensor], source: Path
    ) -> R2RFollower:
        """The agent of a checkpoint or export: the vocabulary and the feature size come from
        ``hyper_parameters``, the ``model.*`` weights from ``state_dict``."""
        vocab = Vocabulary.from_json(hyper_parameter(hyper_parameters, "vocab", source))
        feature_dim = int(hyper_parameter(hyper_parameters, "feature_dim", source))
        network = build_r2r_agent(
            config.model, vocab_size=len(vocab), feature_dim=feature_dim, pad_id=vocab.pad_id
        )
        return cls(load_network(network, state_dict, source, cls.task), vocab, config)

    def datamodule(self) -> Any:
        """The checkpoint's dataset, set up with this vocabulary (built once)."""
        if self._datamodule is None:
            from vltk.tasks.navigation.r2r.datasets import R2R_DATASETS

            datamodule = build(R2R_DATASETS, self.config.data, path="data")
            datamodule.vocab = self.vocab
            datamodule.setup("test")
            self._datamodule = datamodule
        return self._datamodule

    def item(self, instr_id: str | None = None, split: str | None = None) -> R2RItem:
        """The instruction ``instr_id`` of ``split`` (default: the config's test split; its first
        instruction when ``instr_id`` is ``None``), or a DataError naming the split."""
        datamodule = self.datamodule()
        split = split or datamodule.options.test_split
        items = datamodule.split(split)
        if not items:
            raise DataError(f"the {split} split has no instructions")
        if instr_id is None:
            return items[0]
        for item in items:
            if item.instr_id == instr_id:
                return item
        raise DataError(f"no instruction {instr_id} in the {split} split (ids look like {items[0].instr_id})")

    def play_many(self, items: Sequence[R2RItem]) -> list[FollowedEpisode]:
        """Follow each instruction greedily, recording the word attention; episodes with a reference path
        are scored."""
        datamodule = self.datamodule()
        device = next(self.model.parameters()).device
        batch = datamodule.collate(list(items)).to(device)
        env = datamodule.environment(self.config.max_steps)
        rollout, trajectories = play_greedy(
            self.model, env, batch, self.config.max_steps, record=True,
            avoid_revisits=self.config.avoid_revisits,
        )  # fmt: skip
        episodes = []
        for b, item in enumerate(items):
            words = self.vocab.tokenize(item.instruction)[: datamodule.options.max_instruction_length]
            episode = FollowedEpisode(item, trajectories[b], rollout.attention[b], words)
            if item.has_goal:
                record = R2RRecord(item.instr_id, item.scan, list(item.path), episode.viewpoints)
                episode.scores = score_episode(record, env.graphs[item.scan].distance)
            episodes.append(episode)
        return episodes

    def play(self, instr_id: str | None = None, split: str | None = None) -> FollowedEpisode:
        """Follow one instruction of a split (:meth:`item`)."""
        (episode,) = self.play_many([self.item(instr_id, split)])
        return episode

    def follow(self, instruction: str, scan: str, start: str, heading: float = 0.0) -> FollowedEpisode:
        """Follow a new ``instruction`` from viewpoint ``start`` of house ``scan`` (no reference path)."""
        graphs = self.datamodule().graphs
        if scan not in graphs:
            raise DataError(f"unknown scan {scan} (this dataset has {', '.join(sorted(graphs)[:5])}, ...)")
        if start not in graphs[scan]:
            raise DataError(f"viewpoint {start} is not in scan {scan}")
        (episode,) = self.play_many([R2RItem("new_0", scan, (start,), float(heading), instruction)])
        return episode
