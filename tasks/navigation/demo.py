"""The BabyAI navigation tab of ``vltk serve``: choose a level and a seed, watch the agent's episode step by
step, with the mission's words coloured by the agent's attention at that step (as ``vltk predict --gif``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vltk.errors import VltkError
from vltk.metrics.navigation import EpisodeResult
from vltk.tasks.navigation.babyai.env import ACTION_NAMES, check_level, level_ids
from vltk.tasks.navigation.inference import InstructionFollower
from vltk.tasks.webdemo import shows_errors, weighted_words_html


@dataclass
class PlayedEpisode:
    """An episode as the tab shows it: the result (frames, actions, attention) and the mission's words."""

    episode: EpisodeResult
    words: list[str]

    @property
    def steps(self) -> int:
        """Frames to step through: the start, then one after each action."""
        return len(self.episode.frames)


def outcome_markdown(episode: EpisodeResult) -> str:
    """One line: success or failure, steps, the shortest solution and SPL."""
    outcome = "**success**" if episode.success else "**failure**"
    shortest = episode.shortest if episode.shortest is not None else "none found"
    return (
        f"{outcome} in {episode.length} steps (shortest: {shortest}), reward {episode.reward:.3f}, "
        f"SPL {episode.spl:.3f}"
    )


class NavigationDemo:
    """The tab of one BabyAI agent (:class:`~vltk.tasks.navigation.inference.InstructionFollower`)."""

    title = "Watch an instruction-following agent (BabyAI)"

    def __init__(self, follower: InstructionFollower) -> None:
        self.follower = follower

    def play(self, level: str | None, seed: float | int | None) -> PlayedEpisode:
        """The recorded greedy episode of ``level`` (default: the training level) by ``seed``."""
        if seed is None or int(seed) != seed or seed < 0:
            raise VltkError(f"the seed must be a whole number >= 0, got {seed}")
        episode = self.follower.play(int(seed), level=check_level(level) if level else None)
        return PlayedEpisode(episode, self.follower.vocab.tokenize(episode.mission))

    @staticmethod
    def step(played: PlayedEpisode, step: int) -> tuple[np.ndarray, str, str]:
        """Frame ``step`` (0 = the start), the mission coloured by the attention of the action taken there,
        and what happened."""
        episode = played.episode
        step = min(max(int(step), 0), max(played.steps - 1, 0))
        weights = episode.attention[step] if step < len(episode.attention) else None
        if step < len(episode.actions):
            happened = f"step {step + 1} of {episode.length}: **{ACTION_NAMES[episode.actions[step]]}**"
        else:
            happened = f"end: {outcome_markdown(episode)}"
        return episode.frames[step], weighted_words_html(played.words, weights), happened

    def build(self, gr: Any, key: str) -> None:
        """The tab's components (ids prefixed by ``key``) and their events."""
        errors = shows_errors(gr)
        with gr.Row():
            with gr.Column(scale=1):
                level = gr.Dropdown(
                    level_ids(), value=self.follower.level, label="BabyAI level", elem_id=f"{key}-level"
                )
                seed = gr.Number(
                    value=self.follower.test_seed, precision=0, minimum=0, label="episode seed",
                    elem_id=f"{key}-seed",
                )  # fmt: skip
                play = gr.Button("Play", variant="primary", elem_id=f"{key}-play")
                outcome = gr.Markdown(elem_id=f"{key}-outcome")
            with gr.Column(scale=2):
                step = gr.Slider(0, 1, value=0, step=1, label="step", elem_id=f"{key}-step")
                happened = gr.Markdown(elem_id=f"{key}-happened")
                mission = gr.HTML(elem_id=f"{key}-mission")
                frame = gr.Image(label="the grid", interactive=False, elem_id=f"{key}-frame")
        played = gr.State()

        @errors
        def on_play(chosen_level: str, chosen_seed: float):
            shown = self.play(chosen_level, chosen_seed)
            picture, words, what = self.step(shown, 0)
            header = f'"{shown.episode.mission}"\n\n{outcome_markdown(shown.episode)}'
            steps = gr.update(value=0, maximum=max(shown.steps - 1, 1))
            return shown, header, steps, what, words, picture

        @errors
        def on_step(shown: PlayedEpisode | None, at: int):
            if shown is None:
                return gr.update(), gr.update(), gr.update()
            picture, words, what = self.step(shown, at)
            return what, words, picture

        play.click(on_play, [level, seed], [played, outcome, step, happened, mission, frame])
        step.change(on_step, [played, step], [happened, mission, frame])
