"""A picture of one followed R2R instruction: the house graph seen from above with the reference path and
the agent's, beside the instruction's words coloured by the agent's attention at each step.

Left: every edge of the scan's navigation graph (grey), the reference path (green, start to goal), the
agent's path (red; a turn in place adds nothing), the start (square) and where the agent stopped (cross),
and a 3 m circle around the goal (R2R's success radius). Viewpoints on other floors than the start's are
drawn lighter. Right: one row per agent decision, one column per instruction token; the cell's shade is the
decision's attention weight on that token (each row sums to 1). Drawn with matplotlib's Agg canvas (no
display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from vltk.errors import VltkError, check_output_path
from vltk.metrics.r2r import SUCCESS_DISTANCE
from vltk.tasks.navigation.r2r.graph import ScanGraph
from vltk.tasks.navigation.r2r.inference import FollowedEpisode

FLOOR_HEIGHT = 2.0  # metres of height difference that count as another floor


def _xy(graph: ScanGraph, viewpoints: list[str]) -> np.ndarray:
    return np.array([graph.positions[v][:2] for v in viewpoints]).reshape(-1, 2)  # [N, 2]


def _draw_graph(axes, graph: ScanGraph, start_z: float) -> None:
    for a in graph.viewpoints:
        for b in graph.neighbours(a):
            if a < b:
                (x0, y0, z0), (x1, y1, z1) = graph.positions[a], graph.positions[b]
                same_floor = max(abs(z0 - start_z), abs(z1 - start_z)) < FLOOR_HEIGHT
                axes.plot([x0, x1], [y0, y1], color="0.6" if same_floor else "0.88", lw=0.8, zorder=1)
    points = _xy(graph, list(graph.viewpoints))
    heights = np.array([graph.positions[v][2] for v in graph.viewpoints])
    near = np.abs(heights - start_z) < FLOOR_HEIGHT
    axes.scatter(points[near, 0], points[near, 1], s=8, color="0.4", zorder=2)
    axes.scatter(points[~near, 0], points[~near, 1], s=8, color="0.8", zorder=2)


def _draw_paths(axes, graph: ScanGraph, episode: FollowedEpisode, steps: int | None = None) -> None:
    item = episode.item
    if item.has_goal:
        reference = _xy(graph, list(item.path))
        axes.plot(
            reference[:, 0], reference[:, 1], color="tab:green", lw=3, alpha=0.7, label="reference", zorder=3
        )
        goal = reference[-1]
        axes.add_patch(Circle(goal, SUCCESS_DISTANCE, fill=False, ls="--", color="tab:green", zorder=3))
        axes.scatter([goal[0]], [goal[1]], marker="*", s=160, color="tab:green", zorder=5, label="goal")
    walked = episode.viewpoints if steps is None else episode.viewpoints[: steps + 1]
    agent = _xy(graph, walked)
    axes.plot(agent[:, 0], agent[:, 1], color="tab:red", lw=2, label="agent", zorder=4)
    axes.scatter([agent[0, 0]], [agent[0, 1]], marker="s", s=70, color="black", zorder=6, label="start")
    last = "stop" if steps is None or steps + 1 >= len(episode.viewpoints) else f"after step {steps}"
    axes.scatter([agent[-1, 0]], [agent[-1, 1]], marker="X", s=90, color="tab:red", zorder=6, label=last)


def _title(episode: FollowedEpisode) -> str:
    scores = episode.scores
    if not scores:
        return f"{episode.item.instr_id} (scan {episode.item.scan}): no reference path"
    outcome = "success" if scores["success_rate"] else "failure"
    return (
        f"{episode.item.instr_id}: {outcome}, error {scores['navigation_error']:.1f} m, "
        f"SPL {scores['SPL']:.2f}, nDTW {scores['nDTW']:.2f}"
    )


def _draw_attention(axes, episode: FollowedEpisode) -> None:
    words = episode.words or ["(no words)"]
    rows = np.zeros((max(len(episode.attention), 1), len(words)))  # [steps, words]
    for t, weights in enumerate(episode.attention):
        rows[t, : min(len(weights), len(words))] = weights[: len(words)]
    axes.imshow(rows, cmap="Reds", vmin=0.0, vmax=max(float(rows.max()), 1e-6), aspect="auto")
    axes.set_xticks(range(len(words)), words, rotation=90, fontsize=7)
    axes.set_yticks(range(rows.shape[0]), [f"step {t + 1}" for t in range(rows.shape[0])], fontsize=7)
    axes.set_title("attention over the instruction, per step", fontsize=9)


def episode_figure(episode: FollowedEpisode, graph: ScanGraph, steps: int | None = None) -> Figure:
    """The picture of ``episode`` in the house ``graph`` as a matplotlib figure (Agg canvas); ``steps``:
    the agent's path drawn up to that many moves only (``None``: all of it)."""
    figure = Figure(figsize=(13, 6), dpi=100)
    FigureCanvasAgg(figure)
    plan, words = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    _draw_graph(plan, graph, float(graph.positions[episode.item.path[0]][2]))
    _draw_paths(plan, graph, episode, steps)
    plan.set_aspect("equal")
    plan.set_xlabel("x (m)")
    plan.set_ylabel("y (m)")
    plan.legend(loc="best", fontsize=7)
    plan.set_title(_title(episode), fontsize=9)
    _draw_attention(words, episode)
    figure.suptitle(_wrapped(episode.item.instruction), fontsize=9)
    figure.tight_layout()
    return figure


def episode_picture(episode: FollowedEpisode, graph: ScanGraph, steps: int | None = None) -> np.ndarray:
    """:func:`episode_figure` rendered as an RGB array ``[H, W, 3]`` (uint8)."""
    figure = episode_figure(episode, graph, steps)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()  # [H, W, 3]


def save_episode_picture(path: str | Path, episode: FollowedEpisode, graph: ScanGraph) -> Path:
    """Write the picture of ``episode`` (in the house ``graph``) to ``path`` (PNG)."""
    path = Path(path)
    check_output_path(path, "--attention-map")
    figure = episode_figure(episode, graph)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    except OSError as error:
        raise VltkError(f"cannot write the picture {path}: {error}") from None
    return path


def _wrapped(text: str, width: int = 150) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
