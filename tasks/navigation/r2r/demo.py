"""The R2R tab of ``vltk serve``: choose a split and an instruction of the checkpoint's dataset, watch the
agent follow it move by move on the house's graph seen from above (the reference path, the agent's so far),
with the instruction's words coloured by the agent's attention at that move
(:mod:`vltk.tasks.navigation.r2r.picture`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vltk.tasks.navigation.r2r.inference import FollowedEpisode, R2RFollower
from vltk.tasks.navigation.r2r.picture import episode_picture
from vltk.tasks.webdemo import shows_errors, weighted_words_html

MAX_LISTED = 500  # instruction ids offered per split (any other id can be typed)


def scores_markdown(episode: FollowedEpisode) -> str:
    """The episode's R2R metrics in one line (or why there are none)."""
    scores = episode.scores
    if scores is None:
        return "no reference path (a test instruction): nothing to score"
    outcome = "**success**" if scores["success_rate"] else "**failure**"
    return (
        f"{outcome}: stopped {scores['navigation_error']:.2f} m from the goal after "
        f"{scores['trajectory_length']:.1f} m (SPL {scores['SPL']:.2f}, nDTW {scores['nDTW']:.2f}, "
        f"CLS {scores['CLS']:.2f})"
    )


class R2RDemo:
    """The tab of one R2R agent (:class:`~vltk.tasks.navigation.r2r.inference.R2RFollower`)."""

    title = "Watch an agent follow a route description (R2R)"

    def __init__(self, follower: R2RFollower) -> None:
        self.follower = follower

    def splits(self) -> list[str]:
        """The dataset's splits with instructions, the evaluation ones first."""
        datamodule = self.follower.datamodule()
        return [name for name in datamodule.evaluation_splits() if datamodule.split(name)]

    def instruction_ids(self, split: str) -> list[str]:
        return [item.instr_id for item in self.follower.datamodule().split(split)[:MAX_LISTED]]

    def follow(self, split: str | None, instr_id: str | None) -> FollowedEpisode:
        """The greedy episode of instruction ``instr_id`` of ``split`` (a DataError names an unknown one)."""
        return self.follower.play(instr_id or None, split or None)

    def step(self, episode: FollowedEpisode, step: int) -> tuple[np.ndarray, str, str]:
        """The plan with the agent's first ``step`` moves, the instruction coloured by the attention of
        decision ``step + 1``, and what happened."""
        moves = len(episode.trajectory) - 1
        step = min(max(int(step), 0), moves)
        graph = self.follower.datamodule().graphs[episode.item.scan]
        weights = episode.attention[step] if step < len(episode.attention) else None
        if step < moves:
            viewpoint = episode.trajectory[step + 1][0]
            happened = f"decision {step + 1}: move to viewpoint `{viewpoint}`"
        else:
            happened = f"stopped after {moves} moves: {scores_markdown(episode)}"
        return episode_picture(episode, graph, step), weighted_words_html(episode.words, weights), happened

    def build(self, gr: Any, key: str) -> None:
        """The tab's components (ids prefixed by ``key``) and their events."""
        errors = shows_errors(gr)
        splits = self.splits()
        first = splits[0] if splits else None
        with gr.Row():
            with gr.Column(scale=1):
                split = gr.Dropdown(splits, value=first, label="split", elem_id=f"{key}-split")
                ids = self.instruction_ids(first) if first else []
                instruction = gr.Dropdown(
                    ids, value=ids[0] if ids else None, allow_custom_value=True,
                    label="instruction id (PATHID_K)", elem_id=f"{key}-episode",
                )  # fmt: skip
                follow = gr.Button("Follow", variant="primary", elem_id=f"{key}-follow")
                outcome = gr.Markdown(elem_id=f"{key}-outcome")
            with gr.Column(scale=3):
                step = gr.Slider(0, 1, value=0, step=1, label="move", elem_id=f"{key}-step")
                happened = gr.Markdown(elem_id=f"{key}-happened")
                words = gr.HTML(elem_id=f"{key}-words")
                plan = gr.Image(label="the house from above", interactive=False, elem_id=f"{key}-plan")
        followed = gr.State()

        @errors
        def on_split(chosen: str):
            listed = self.instruction_ids(chosen)
            return gr.update(choices=listed, value=listed[0] if listed else None)

        @errors
        def on_follow(chosen_split: str, chosen_id: str):
            episode = self.follow(chosen_split, chosen_id)
            picture, coloured, what = self.step(episode, 0)
            header = f'"{episode.item.instruction}"\n\n{scores_markdown(episode)}'
            moves = gr.update(value=0, maximum=max(len(episode.trajectory) - 1, 1))
            return episode, header, moves, what, coloured, picture

        @errors
        def on_step(episode: FollowedEpisode | None, at: int):
            if episode is None:
                return gr.update(), gr.update(), gr.update()
            picture, coloured, what = self.step(episode, at)
            return what, coloured, picture

        split.change(on_split, [split], [instruction])
        follow.click(on_follow, [split, instruction], [followed, outcome, step, happened, words, plan])
        step.release(on_step, [followed, step], [happened, words, plan])
