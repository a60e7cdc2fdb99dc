"""``vltk predict CKPT --level L --seed S --gif episode.gif`` for navigation checkpoints: play one episode,
print it step by step, and optionally render it as an animated GIF with the instruction and, per step, the
agent's attention over the instruction's words (each word shaded red by its weight, relative to the step's
most attended word)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vltk.errors import VltkError
from vltk.metrics.navigation import EpisodeResult
from vltk.tasks.navigation.babyai.env import ACTION_NAMES, check_level
from vltk.tasks.navigation.inference import InstructionFollower

PANEL_HEIGHT = 64


@dataclass
class EpisodeRequest:
    """What ``vltk predict`` takes for a navigation agent (its options; the CLI refuses the others).

    Attributes:
        level: the BabyAI level id; ``None``: the level it was trained on.
        seed: the episode's seed; ``None``: the first held-out test episode (``data.test_seed``).
        gif: where to write the episode as an animated GIF.
    """

    level: str | None = None
    seed: int | None = None
    gif: Path | None = None


def predict_navigation_lines(agent: InstructionFollower, request: EpisodeRequest) -> list[str]:
    """Lines for the terminal (Rich markup) describing the episode of ``request.level``/``request.seed``."""
    level = check_level(request.level) if request.level else agent.level
    seed = int(request.seed) if request.seed is not None else agent.test_seed
    episode = agent.play(seed, level=level)
    words = agent.vocab.tokenize(episode.mission)
    outcome = "[green]success[/]" if episode.success else "[red]failure[/]"
    if not episode.searched:
        shortest = "not searched"
    elif episode.shortest is None:
        shortest = "none within the step budget"
    else:
        shortest = str(episode.shortest)
    lines = [
        f'[bold]{level}[/] seed {seed}: "{episode.mission}"',
        f"{outcome} in {episode.length} steps (shortest: {shortest}), reward {episode.reward:.3f}, "
        f"SPL {episode.spl:.3f}",
    ]
    for t, action in enumerate(episode.actions):
        focus = ""
        if t < len(episode.attention) and words:
            weights = episode.attention[t][: len(words)]
            best = int(np.argmax(weights))
            focus = f"  (attends to '{words[best]}' {weights[best]:.2f})"
        lines.append(f"  step {t + 1:3d}: {ACTION_NAMES[action]}{focus}")
    if request.gif is not None:
        path = write_episode_gif(episode, words, Path(request.gif))
        lines.append(f"episode written to {path}")
    return lines


def _panel(width: int, words: list[str], weights: list[float] | None, caption: str) -> Any:
    from PIL import Image, ImageDraw, ImageFont

    panel = Image.new("RGB", (width, PANEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default()
    x, y = 4, 6
    top = max(weights[: len(words)], default=0.0) if weights is not None else 0.0
    for i, word in enumerate(words):
        w = int(draw.textlength(word, font=font)) + 6
        if x + w > width:
            x, y = 4, y + 24
        weight = float(weights[i]) if weights is not None and i < len(weights) else 0.0
        shade = int(255 - 200 * (weight / top if top > 0 else 0.0))  # relative to the step's top word
        draw.rectangle([x - 2, y - 2, x + w - 4, y + 12], fill=(255, shade, shade))
        draw.text((x, y), word, fill=(0, 0, 0), font=font)
        x += w
    draw.text((4, PANEL_HEIGHT - 14), caption, fill=(60, 60, 60), font=font)
    return panel


def write_episode_gif(episode: EpisodeResult, words: list[str], path: Path, *, frame_ms: int = 400) -> Path:
    """Render ``episode`` (recorded with frames and attention) as an animated GIF at ``path``."""
    from PIL import Image

    if not episode.frames:
        raise VltkError("the episode was played without recording frames")
    frames = []
    for t, frame in enumerate(episode.frames):
        grid = Image.fromarray(frame)
        weights = episode.attention[t] if t < len(episode.attention) else None
        if t < len(episode.actions):
            caption = f"step {t + 1}: {ACTION_NAMES[episode.actions[t]]}"
        else:
            caption = f"{'success' if episode.success else 'failure'} after {episode.length} steps"
        panel = _panel(grid.width, words, weights, caption)
        canvas = Image.new("RGB", (grid.width, grid.height + PANEL_HEIGHT), (255, 255, 255))
        canvas.paste(grid, (0, 0))
        canvas.paste(panel, (0, grid.height))
        frames.append(canvas)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    except OSError as error:
        raise VltkError(f"cannot write the GIF {path}: {error}") from None
    return path
