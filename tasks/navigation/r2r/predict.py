"""``vltk predict CKPT --episode 4021_0 [--split val_unseen] [--attention-map episode.png]`` for R2R
checkpoints: follow one instruction of the checkpoint's dataset, print it step by step (where the agent went
and which word it attended to most), its R2R metrics, and optionally draw it
(:func:`vltk.tasks.navigation.r2r.picture.save_episode_picture`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vltk.tasks.navigation.r2r.inference import R2RFollower
from vltk.tasks.navigation.r2r.picture import save_episode_picture


@dataclass
class R2REpisodeRequest:
    """What ``vltk predict`` takes for an R2R agent (its options; the CLI refuses the others).

    Attributes:
        episode: the instruction id ``PATHID_K``; ``None``: the split's first instruction.
        split: ``train``, ``val_seen``, ``val_unseen`` or ``test``; ``None``: the config's test split.
        attention_map: where to write the picture (PNG).
    """

    episode: str | None = None
    split: str | None = None
    attention_map: Path | None = None


def predict_r2r_lines(follower: R2RFollower, request: R2REpisodeRequest) -> list[str]:
    """Lines for the terminal (Rich markup) describing the followed instruction."""
    episode = follower.play(request.episode, request.split)
    item = episode.item
    lines = [f'[bold]{item.instr_id}[/] (scan {item.scan}): "{item.instruction}"']
    if episode.scores is not None:
        scores = episode.scores
        outcome = "[green]success[/]" if scores["success_rate"] else "[red]failure[/]"
        lines.append(
            f"{outcome}: stopped {scores['navigation_error']:.2f} m from the goal after "
            f"{scores['trajectory_length']:.1f} m (SPL {scores['SPL']:.2f}, nDTW {scores['nDTW']:.2f}, "
            f"CLS {scores['CLS']:.2f})"
        )
    for t, (viewpoint, heading, elevation) in enumerate(episode.trajectory[1:], start=1):
        focus = ""
        if t - 1 < len(episode.attention) and episode.words:
            weights = episode.attention[t - 1]
            best = int(np.argmax(weights[: len(episode.words)]))
            focus = f"  (attends to '{episode.words[best]}' {weights[best]:.2f})"
        lines.append(
            f"  step {t:2d}: {viewpoint} heading {math.degrees(heading):6.1f} deg, "
            f"elevation {math.degrees(elevation):5.1f} deg{focus}"
        )
    if request.attention_map is not None:
        graph = follower.datamodule().graphs[item.scan]
        path = save_episode_picture(request.attention_map, episode, graph)
        lines.append(f"picture written to {path}")
    return lines
