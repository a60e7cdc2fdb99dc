"""The navigation inference object: a trained instruction-following agent and the BabyAI level it plays.

:class:`InstructionFollower` is the one place episodes are played: evaluation (``NavigationTask.play``, on
held-out seeds), :func:`vltk.from_pretrained` and ``vltk predict`` call :meth:`InstructionFollower.play_many`
(a vectorised greedy rollout, :func:`vltk.tasks.navigation.babyai.rollout.rollout`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor

from vltk.export import evaluating, hyper_parameter, load_network
from vltk.metrics.navigation import EpisodeResult
from vltk.tasks.navigation.agent import AgentPolicy, NavigationAgent, build_navigation_agent
from vltk.tasks.navigation.babyai.env import check_level
from vltk.tasks.navigation.babyai.rollout import rollout
from vltk.text import Vocabulary

DEFAULT_TEST_SEED = 2_000_000_000  # data.test_seed's default: the first held-out episode


@dataclass
class InstructionFollower:
    """A BabyAI instruction-following agent ready to play
    (:class:`vltk.tasks.navigation.agent.NavigationAgent`).

    Attributes:
        model: the network.
        vocab: the instruction vocabulary.
        level: the BabyAI level it was trained on (the default level to play).
        observation: ``symbolic`` or ``rgb``, as it was trained.
        test_seed: the first held-out test episode (``vltk predict``'s default seed).
    """

    task: ClassVar[str] = "navigation"

    model: NavigationAgent
    vocab: Vocabulary
    level: str
    observation: str = "symbolic"
    test_seed: int = DEFAULT_TEST_SEED

    @classmethod
    def from_checkpoint(
        cls, config: Any, hyper_parameters: Mapping[str, Any], state_dict: Mapping[str, Tensor], source: Path
    ) -> InstructionFollower:
        """The agent of a checkpoint or export: ``config`` is its parsed ``NavigationConfig``, the vocabulary
        comes from ``hyper_parameters``, the ``model.*`` weights from ``state_dict``."""
        vocab = Vocabulary.from_json(hyper_parameter(hyper_parameters, "vocab", source))
        data = config.data
        network = build_navigation_agent(
            config.model, vocab_size=len(vocab), observation=data["observation"], pad_id=vocab.pad_id
        )
        network = load_network(network, state_dict, source, cls.task)
        test_seed = int(data.get("test_seed", DEFAULT_TEST_SEED))
        return cls(network, vocab, str(data["level"]), data["observation"], test_seed)

    def play_many(
        self,
        seeds: Sequence[int],
        *,
        level: str | None = None,
        record: bool = False,
        shortest_paths: bool = True,
    ) -> list[EpisodeResult]:
        """One greedy episode per seed, played together (what evaluation does on its held-out seeds).

        Args:
            seeds: episode seeds.
            level: a BabyAI level id (default: the training level).
            record: keep each step's action, word attention and frame (without it, only the outcome).
            shortest_paths: also search each episode's shortest solution, its ``shortest`` (SPL).
        """
        device = next(self.model.parameters()).device
        with evaluating(self.model):
            return rollout(
                AgentPolicy(self.model, self.vocab, device),
                check_level(level) if level else self.level,
                [int(s) for s in seeds],
                observation=self.observation,
                batch_size=max(len(seeds), 1),
                record=record,
                shortest_paths=shortest_paths,
            )

    def play(self, seed: int, *, level: str | None = None) -> EpisodeResult:
        """One recorded episode of ``level`` (default: the training level) by ``seed``: the mission,
        ``success``, ``reward``, ``length``, the ``shortest`` length and, per step, the ``actions``, the word
        ``attention`` and the ``frames``."""
        (episode,) = self.play_many([seed], level=level, record=True)
        return episode
