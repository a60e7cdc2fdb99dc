"""``vltk score navigation``: the R2R metrics of a submission file, without a model.

The submission is the EvalAI layout of the R2R challenge, ``[{"instr_id": "PATHID_K", "trajectory":
[[viewpoint, heading, elevation], ...]}, ...]``, one entry per instruction (``K`` indexes the episode's three
instructions); the references are the published ``R2R_<split>.json`` and the graphs the Matterport
``connectivity/<scan>_connectivity.json`` files. As the official evaluation (Matterport3DSimulator
``tasks/R2R/eval.py``) every instruction of the references must have a trajectory, and a trajectory starts at
its episode's start; moves go along edges of the graph (turning in place repeats a viewpoint). Anything
else is refused with one line naming the file and the entry. The metrics: :mod:`vltk.metrics.r2r`.
"""

from __future__ import annotations

from pathlib import Path

from vltk.data.json_file import read_json, shown_entry
from vltk.errors import DataError, VltkError
from vltk.metrics.r2r import R2RRecord, score_r2r
from vltk.tasks.navigation.r2r.files import R2REpisode, read_r2r
from vltk.tasks.navigation.r2r.graph import ScanGraph, load_graphs
from vltk.tasks.training import ScoreRequest, ScoreResult


def read_submission(path: Path) -> dict[str, list[str]]:
    """``{instr_id: [viewpoint, ...]}`` of an EvalAI submission; malformed or repeated entries are errors."""
    rows = read_json(path, "predictions")
    if not isinstance(rows, list):
        raise DataError(f'{path}: expected a JSON list of {{"instr_id", "trajectory"}} objects')
    trajectories: dict[str, list[str]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("instr_id"), str):
            raise DataError(f'{path}: entry {index} has no string "instr_id": {shown_entry(row)}')
        instr_id, steps = row["instr_id"], row.get("trajectory")
        if instr_id in trajectories:
            raise DataError(f"{path}: entry {index}: instr_id {instr_id!r} appears twice")
        if not isinstance(steps, list) or not steps:
            raise DataError(f'{path}: entry {index} ({instr_id}): "trajectory" must be a non-empty list')
        viewpoints = []
        for step_index, step in enumerate(steps):
            if not isinstance(step, list) or not step or not isinstance(step[0], str):
                raise DataError(
                    f"{path}: entry {index} ({instr_id}), step {step_index}: expected [viewpoint, heading, "
                    f"elevation], got {shown_entry(step)}"
                )
            viewpoints.append(step[0])
        trajectories[instr_id] = viewpoints
    return trajectories


def references_by_instruction(episodes: list[R2REpisode]) -> dict[str, R2REpisode]:
    """``{"PATHID_K": episode}`` for every instruction ``K`` of every episode."""
    return {f"{e.path_id}_{k}": e for e in episodes for k in range(len(e.instructions))}


def check_trajectory(
    path: Path, instr_id: str, viewpoints: list[str], episode: R2REpisode, graph: ScanGraph
) -> None:
    """A trajectory starts at the episode's start, stays in its scan and moves along edges only."""
    if viewpoints[0] != episode.path[0]:
        raise DataError(
            f"{path}: {instr_id}: the trajectory starts at {viewpoints[0]}, not at the episode's start "
            f"{episode.path[0]}"
        )
    for step, (a, b) in enumerate(zip(viewpoints, viewpoints[1:]), start=1):
        if b not in graph.positions:
            raise DataError(f"{path}: {instr_id}, step {step}: viewpoint {b} is not in scan {episode.scan}")
        if a != b and not graph.has_edge(a, b):
            raise DataError(
                f"{path}: {instr_id}, step {step}: {a} -> {b} is not an edge of scan {episode.scan}'s graph"
            )


def score_navigation(request: ScoreRequest) -> ScoreResult:
    """R2R metrics of ``request.predictions`` against ``request.references`` on ``request.connectivity``."""
    if request.references is None or request.connectivity is None:
        raise VltkError(
            "`vltk score navigation` needs --references R2R_<split>.json and --connectivity DIR "
            "(the Matterport connectivity folder)"
        )
    episodes = read_r2r(request.references)
    references = references_by_instruction(episodes)
    if any(e.goal is None for e in episodes):
        raise DataError(
            f"{request.references}: its episodes have no goal (the test split): it cannot be scored"
        )
    submission = read_submission(request.predictions)
    unknown = sorted(set(submission) - set(references))
    if unknown:
        raise DataError(
            f"{request.predictions}: instr_id {unknown[0]} is not an instruction of {request.references}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
        )
    missing = sorted(set(references) - set(submission))
    if missing:
        raise DataError(
            f"{request.predictions}: no trajectory for {len(missing)} instruction(s) of "
            f"{request.references}, e.g. {missing[0]} (the official evaluation needs every one)"
        )
    graphs = load_graphs(request.connectivity, sorted({e.scan for e in episodes}))
    records = []
    for instr_id, viewpoints in submission.items():
        episode = references[instr_id]
        check_trajectory(request.predictions, instr_id, viewpoints, episode, graphs[episode.scan])
        records.append(R2RRecord(instr_id, episode.scan, list(episode.path), viewpoints))
    metrics = score_r2r(records, {scan: graph.distance for scan, graph in graphs.items()})
    return ScoreResult(metrics)
