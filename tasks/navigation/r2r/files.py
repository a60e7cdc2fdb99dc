"""The R2R instruction files ``R2R_{train,val_seen,val_unseen,test}.json`` and the EvalAI instruction ids.

Layout (peteanderson80/Matterport3DSimulator, ``tasks/R2R/utils.py`` ``load_datasets`` reads the files
as they are): a JSON list of episodes, each ``{"distance": metres, "scan": scan id, "path_id": int,
"path": [viewpoint ids, start first, goal last], "heading": radians, "instructions": [strings]}``. The
test split gives only the start viewpoint in ``path``. Keys other than these (some released copies add
tokenised instructions) are ignored.

A submission names each instruction ``"{path_id}_{k}"``, ``k`` its index in ``instructions``
(``tasks/R2R/eval.py`` ``Evaluation.__init__`` builds them with ``k`` in ``range(3)``, the three
instructions every R2R path has; :func:`instruction_ids` uses the number the file gives).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vltk.data.json_file import read_json
from vltk.errors import DataError


@dataclass(frozen=True)
class R2REpisode:
    """One R2R path with its instructions; ``path`` is the start alone in the test split."""

    path_id: int
    scan: str
    path: tuple[str, ...]
    heading: float
    distance: float
    instructions: tuple[str, ...]

    @property
    def start(self) -> str:
        return self.path[0]

    @property
    def goal(self) -> str | None:
        """The last viewpoint of the reference path, ``None`` when the file gives only the start (test)."""
        return self.path[-1] if len(self.path) > 1 else None


def read_r2r(path: str | Path) -> list[R2REpisode]:
    """The episodes of an ``R2R_{split}.json`` file, in file order.

    Raises:
        DataError: one line naming the file and the entry (index and ``path_id`` where known) when the
            file is missing, is not JSON, is not a list, or an entry lacks a key or has a wrong type; or
            when two entries share a ``path_id``.
    """
    path = Path(path)
    data = read_json(path, "R2R instructions")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of R2R episodes, got {type(data).__name__}")
    episodes = [_episode(path, index, entry) for index, entry in enumerate(data)]
    seen: dict[int, int] = {}
    for index, episode in enumerate(episodes):
        if episode.path_id in seen:
            raise DataError(
                f"{path}: entry {index}: path_id {episode.path_id} repeats entry {seen[episode.path_id]}"
            )
        seen[episode.path_id] = index
    return episodes


def instruction_ids(episodes: Iterable[R2REpisode]) -> list[str]:
    """The EvalAI ids ``"{path_id}_{k}"`` of every instruction, episode by episode."""
    return [f"{episode.path_id}_{k}" for episode in episodes for k in range(len(episode.instructions))]


def _episode(path: Path, index: int, entry: Any) -> R2REpisode:
    where = f"{path}: entry {index}"
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object, got {type(entry).__name__}")
    if isinstance(entry.get("path_id"), int) and not isinstance(entry["path_id"], bool):
        where += f" (path_id {entry['path_id']})"
    missing = [
        key for key in ("distance", "scan", "path_id", "path", "heading", "instructions") if key not in entry
    ]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}")
    path_id = entry["path_id"]
    if not isinstance(path_id, int) or isinstance(path_id, bool):
        raise DataError(f"{where}: path_id must be an integer, got {path_id!r}")
    return R2REpisode(
        path_id=path_id,
        scan=_string(where, "scan", entry["scan"]),
        path=_strings(where, "path", entry["path"]),
        heading=_number(where, "heading", entry["heading"]),
        distance=_number(where, "distance", entry["distance"]),
        instructions=_strings(where, "instructions", entry["instructions"]),
    )


def _string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise DataError(f"{where}: {key} must be a non-empty list of strings, got {value!r:.80}")
    return tuple(value)


def _number(where: str, key: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise DataError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)
