"""The VisDial v1.0 reader (Das et al. 2017, *Visual Dialog*): one typed record per dialog, checked.

A split file holds ``{"version", "split", "data": {"questions": [str], "answers": [str], "dialogs":
[{"image_id", "caption", "dialog": [{"question", "answer", "answer_options", "gt_index"}]}]}}``; the
rounds index ``questions`` and ``answers``. Test files leave ``answer`` and ``gt_index`` out of the last
round (and stop at a random round): read them with ``min_rounds=1``. A dense annotation file (NDCG) is
``[{"image_id", "round_id" (1-based), "gt_relevance": [100 floats]}]``. The built-in ``shapes_dialog``
(:mod:`vltk.tasks.dialog.shapes_dialog`) writes the same layout plus a per-round ``"type"``.

Every dialog is checked on its own: too few rounds, a ``gt_index`` outside the options, not exactly
``num_options`` options, a question or answer index outside its list, a missing image. A bad dialog is
explained in a warning (the file, its ``image_id``, what is wrong), skipped and counted, and the rest of
the split still loads; ``on_bad_dialog="raise"`` stops at the first one instead. A file that is not JSON
or lacks a top-level key raises :class:`~vltk.errors.DataError` naming the file and the key.

Images are found by id in one or more directories: VisDial names them
``VisualDialog_val2018_000000000001.jpg`` (the id zero-padded at the end of the stem) and a plain
``<image_id>.png`` works too.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vltk.data.json_file import read_json
from vltk.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

NUM_OPTIONS = 100
NUM_ROUNDS = 10
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif"})
_TRAILING_ID = re.compile(r"(\d+)$")


@dataclass
class DialogRound:
    """One question with its candidate answers.

    Attributes:
        question: the question text.
        answer: the right answer's text (``None`` when unknown: VisDial test).
        options: indices of the candidate answers in the split's ``answers`` list.
        gt_index: position of the right answer among ``options`` (``-1`` when unknown).
        type: the question's type when the data gives one (``shapes_dialog``), else ``""``.
    """

    question: str
    answer: str | None
    options: list[int]
    gt_index: int
    type: str = ""


@dataclass
class DialogRecord:
    """One image's dialog.

    Attributes:
        image_id: VisDial ``image_id``.
        caption: the image's caption.
        rounds: the rounds in order.
        image_path: the image file (``None`` when no image directory was given, e.g. with a feature cache).
        relevance: dense relevance of the options, ``{round index (0-based): [num_options floats]}``.
    """

    image_id: int
    caption: str
    rounds: list[DialogRound]
    image_path: Path | None = None
    relevance: dict[int, list[float]] = field(default_factory=dict)


@dataclass
class VisDialSplit:
    """A read split.

    Attributes:
        source: the dialogs JSON.
        split: the file's ``split`` field.
        answers: the answer strings the rounds' ``options`` index.
        dialogs: the good dialogs.
        skipped: dialogs dropped as bad.
        problems: one message per dropped dialog (first, in file order) or ignored dense annotation.
        skipped_ids: the ``image_id`` of each dropped dialog as the file gives it (``None`` if it has none).
    """

    source: Path
    split: str
    answers: list[str]
    dialogs: list[DialogRecord]
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    skipped_ids: list[Any] = field(default_factory=list)


class _BadDialog(Exception):
    pass


def image_id_of(path: str | Path) -> int | None:
    """The id at the end of an image file's stem (``VisualDialog_val2018_000000000001.jpg`` -> 1)."""
    match = _TRAILING_ID.search(Path(path).stem)
    return int(match.group(1)) if match else None


def index_images(directories: Sequence[str | Path]) -> dict[int, Path]:
    """``{image id: path}`` of the image files directly in ``directories`` (the first directory wins)."""
    found: dict[int, Path] = {}
    for directory in directories:
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            raise DataError(f"{directory}: image directory not found")
        with os.scandir(directory) as entries:
            names = sorted(e.name for e in entries if e.is_file())
        for name in names:
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                image_id = image_id_of(name)
                if image_id is not None:
                    found.setdefault(image_id, directory / name)
    return found


def _key(mapping: Any, key: str, path: Path, where: str, kind: type) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise DataError(f"{path}: missing key '{where}{key}' (not a VisDial v1.0 file?)")
    value = mapping[key]
    if not isinstance(value, kind):
        raise DataError(f"{path}: '{where}{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _index(value: Any, size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadDialog(f"{what} must be an integer, got {value!r}")
    if not 0 <= value < size:
        raise _BadDialog(f"{what} {value} is out of range [0, {size})")
    return value


def _parse_round(
    entry: Any, number: int, questions: list[str], answers: list[str], num_options: int, last: bool
) -> DialogRound:
    where = f"round {number + 1}"
    if not isinstance(entry, dict):
        raise _BadDialog(f"{where} is not an object")
    if "question" not in entry:
        raise _BadDialog(f"{where} has no 'question'")
    question = questions[_index(entry["question"], len(questions), f"{where}: question index")]
    options = entry.get("answer_options")
    if not isinstance(options, list):
        raise _BadDialog(f"{where} has no 'answer_options' list")
    if len(options) != num_options:
        raise _BadDialog(f"{where} has {len(options)} answer options, expected {num_options}")
    options = [_index(o, len(answers), f"{where}: answer option") for o in options]
    answer, gt_index = None, -1
    if "answer" in entry or "gt_index" in entry:
        if "answer" not in entry or "gt_index" not in entry:
            raise _BadDialog(f"{where} has only one of 'answer' and 'gt_index'")
        answer = answers[_index(entry["answer"], len(answers), f"{where}: answer index")]
        gt_index = _index(entry["gt_index"], num_options, f"{where}: gt_index")
        if answers[options[gt_index]] != answer:
            raise _BadDialog(
                f"{where}: gt_index {gt_index} points at option '{answers[options[gt_index]]}', "
                f"not at the answer '{answer}'"
            )
    elif not last:
        raise _BadDialog(
            f"{where} has no 'answer'/'gt_index' (only the last round of test data may omit them)"
        )
    kind = entry.get("type", "")
    return DialogRound(
        question=question,
        answer=answer,
        options=options,
        gt_index=gt_index,
        type=kind if isinstance(kind, str) else str(kind),
    )


def read_visdial(
    json_path: str | Path,
    dense_path: str | Path | None = None,
    image_dir: str | Path | Sequence[str | Path] | None = None,
    *,
    num_options: int = NUM_OPTIONS,
    min_rounds: int = NUM_ROUNDS,
    on_bad_dialog: str = "skip",
    images: dict[int, Path] | None = None,
) -> VisDialSplit:
    """Read one VisDial v1.0 split, checking every dialog (see the module docstring).

    Args:
        json_path: the dialogs file (``visdial_1.0_val.json``).
        dense_path: the dense annotations for NDCG (``visdial_1.0_val_dense_annotations.json``), if any.
        image_dir: directory (or directories) holding the images; ``None``: images are not looked for
            (a feature cache provides them).
        num_options: candidate answers every round must have.
        min_rounds: dialogs with fewer rounds are bad (VisDial test dialogs stop early: use 1).
        on_bad_dialog: ``skip`` (warn, count, go on) or ``raise`` (:class:`DataError` at the first).
        images: an already built :func:`index_images` of the image directories (saves rescanning).
    """
    if on_bad_dialog not in ("skip", "raise"):
        raise ConfigError(f"on_bad_dialog must be 'skip' or 'raise', got '{on_bad_dialog}'")
    if min_rounds < 1:
        raise ConfigError(f"min_rounds must be >= 1, got {min_rounds}")
    path = Path(json_path).expanduser()
    document = read_json(path)
    data = _key(document, "data", path, "", dict)
    questions = _key(data, "questions", path, "data.", list)
    answers = _key(data, "answers", path, "data.", list)
    dialogs = _key(data, "dialogs", path, "data.", list)
    split = str(document.get("split", path.stem))
    directories: list[Path] = []
    if image_dir is not None:
        directories = [Path(image_dir)] if isinstance(image_dir, str | Path) else [Path(d) for d in image_dir]
        if images is None:
            images = index_images(directories)
    result = VisDialSplit(source=path, split=split, answers=[str(a) for a in answers], dialogs=[])
    seen: dict[int, int] = {}
    for index, entry in enumerate(dialogs):
        image_id = entry.get("image_id") if isinstance(entry, dict) else None
        try:
            record = _parse_dialog(entry, index, questions, result.answers, num_options, min_rounds)
            if record.image_id in seen:
                raise _BadDialog(f"duplicate image_id (also data.dialogs[{seen[record.image_id]}])")
            if images is not None:
                record.image_path = images.get(record.image_id)
                if record.image_path is None:
                    raise _BadDialog(
                        f"image not found in {', '.join(map(str, directories))} (looked for a file whose "
                        f"name ends with the id, e.g. *_{record.image_id:012d}.jpg or {record.image_id}.png)"
                    )
        except _BadDialog as error:
            message = f"{path}: dialog image_id={image_id} (data.dialogs[{index}]): {error}"
            if on_bad_dialog == "raise":
                raise DataError(message + " (on_bad_dialog=skip skips bad dialogs)") from None
            logger.warning("skipping a bad dialog: %s", message)
            result.problems.append(message)
            result.skipped += 1
            result.skipped_ids.append(image_id)
            continue
        seen[record.image_id] = index
        result.dialogs.append(record)
    if dense_path is not None:
        _attach_dense(result, Path(dense_path).expanduser(), num_options)
    logger.info(
        "read %s: %d dialogs%s",
        path,
        len(result.dialogs),
        f", {result.skipped} bad ones skipped" if result.skipped else "",
    )
    if result.skipped:
        logger.warning(
            "%s: skipped %d of %d dialogs (see the warnings above)", path, result.skipped, len(dialogs)
        )
    return result


def _parse_dialog(
    entry: Any, index: int, questions: list, answers: list[str], num_options: int, min_rounds: int
) -> DialogRecord:
    if not isinstance(entry, dict):
        raise _BadDialog("not an object")
    for key in ("image_id", "caption", "dialog"):
        if key not in entry:
            raise _BadDialog(f"missing key '{key}'")
    image_id = entry["image_id"]
    if isinstance(image_id, bool) or not isinstance(image_id, int):
        raise _BadDialog(f"image_id must be an integer, got {image_id!r}")
    rounds = entry["dialog"]
    if not isinstance(rounds, list):
        raise _BadDialog("'dialog' must be a list of rounds")
    if len(rounds) < min_rounds:
        raise _BadDialog(f"{len(rounds)} rounds, expected at least {min_rounds}")
    parsed = [
        _parse_round(r, number, questions, answers, num_options, last=number == len(rounds) - 1)
        for number, r in enumerate(rounds)
    ]
    return DialogRecord(image_id=image_id, caption=str(entry["caption"]), rounds=parsed)


def _attach_dense(result: VisDialSplit, path: Path, num_options: int) -> None:
    entries = read_json(path)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a list of {{image_id, round_id, gt_relevance}} entries")
    by_id = {record.image_id: record for record in result.dialogs}
    attached = 0
    for index, entry in enumerate(entries):
        problem = None
        if isinstance(entry, dict) and "gt_relevance" not in entry and "relevance" in entry:
            entry = {**entry, "gt_relevance": entry["relevance"]}  # the name in VisDial's train dense sample
        if not isinstance(entry, dict) or not {"image_id", "round_id", "gt_relevance"} <= set(entry):
            problem = "needs image_id, round_id and gt_relevance"
        else:
            record = by_id.get(entry["image_id"])
            scores = entry["gt_relevance"]
            if record is None:
                continue  # a dialog that was skipped (or is not in this split)
            if not isinstance(entry["round_id"], int) or not 1 <= entry["round_id"] <= len(record.rounds):
                problem = f"round_id {entry['round_id']!r} is not in 1..{len(record.rounds)}"
            elif not isinstance(scores, list) or len(scores) != num_options:
                problem = f"gt_relevance must be a list of {num_options} numbers"
            elif not all(isinstance(s, int | float) and not isinstance(s, bool) for s in scores):
                problem = "gt_relevance holds a value that is not a number"
            else:
                record.relevance[entry["round_id"] - 1] = [float(s) for s in scores]
                attached += 1
        if problem is not None:
            image_id = entry.get("image_id") if isinstance(entry, dict) else None
            message = f"{path}: entry [{index}] (image_id={image_id}): {problem}; annotation ignored"
            logger.warning(message)
            result.problems.append(message)
    logger.info("%s: dense relevance for %d rounds", path, attached)
