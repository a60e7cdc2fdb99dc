"""``vltk score dialog``: VisDial metrics of a ranks file, without a model.

Inputs are the official formats: the EvalAI submission layout ``[{"image_id", "round_id", "ranks": [100
ints]}]`` (``ranks[i]`` is the rank of option ``i``, 1 = best; ``round_id`` is 1-based), the VisDial v1.0
dialogs JSON (``--references``) and, for NDCG, its dense annotations (``--annotations``). As on EvalAI:
every round with a ground-truth answer must be ranked when the file ranks all rounds (val); a file with one
round per dialog (test-std style: the last round) is scored on those rounds. A round that is not in the
references is an error, since it usually means the wrong references file.

Malformed dialogs in the references are not scored, so the metrics would describe a subset: that is an
error (exit status 2) naming how many and the first ``image_id``s, unless ``--allow-partial`` asks for the
partial score, which is then labelled as such (table title, notes, ``"partial"`` in ``metrics.json``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from vltk.data.json_file import read_json
from vltk.errors import DataError, VltkError
from vltk.metrics.retrieval import DialogScores, RoundRanking, check_ranks, ndcg, score_rankings
from vltk.tasks.dialog.visdial import VisDialSplit, read_visdial
from vltk.tasks.training import ScoreRequest, ScoreResult

SHOW_IDS = 5  # image ids named in an error message


def read_ranks(path: Path, num_options: int) -> dict[tuple[int, int], list[int]]:
    """``{(image_id, round_id): ranks}`` of a ranks file; duplicates and malformed rows are errors."""
    rows = read_json(path, "predictions (ranks)")
    if not isinstance(rows, list):
        raise DataError(f'{path}: expected a JSON list of {{"image_id", "round_id", "ranks"}} objects')
    if not rows:
        raise DataError(f"{path}: the ranks list is empty")
    ranks: dict[tuple[int, int], list[int]] = {}
    for number, row in enumerate(rows):
        where = f"{path}: entry {number}"
        if not isinstance(row, dict) or not {"image_id", "round_id", "ranks"} <= row.keys():
            raise DataError(f'{where} needs "image_id", "round_id" and "ranks": {str(row)[:120]}')
        for name in ("image_id", "round_id"):
            if not isinstance(row[name], int) or isinstance(row[name], bool):
                bad = sum(
                    1
                    for other in rows
                    if isinstance(other, dict) and not _is_int(other.get("image_id"), other.get("round_id"))
                )
                raise DataError(
                    f"{where}: {name} must be an integer (as in VisDial and EvalAI), got {row[name]!r}"
                    f" ({bad} of {len(rows)} entries have a non-integer image_id or round_id)"
                )
        key = (row["image_id"], row["round_id"])
        try:
            values = check_ranks(row["ranks"], num_options, f"{where} (image_id {key[0]}, round {key[1]})")
        except ValueError as error:
            raise DataError(str(error)) from None
        if key in ranks:
            raise DataError(f"{path}: image_id {key[0]} round {key[1]} is ranked twice")
        ranks[key] = values
    return ranks


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Only errors from ``logger`` meanwhile (read_visdial warns once per bad dialog; here they are
    summed up in one error line, or in the notes of a partial score)."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _is_int(*values: Any) -> bool:
    return all(isinstance(value, int) and not isinstance(value, bool) for value in values)


def _skipped_dialogs_message(references: Path, split: VisDialSplit) -> str:
    """``REFS: 2 of 6 dialogs are malformed and cannot be scored (image_id 'x', 7; first: ...)``."""
    total = split.skipped + len(split.dialogs)
    shown = ", ".join(repr(image_id) for image_id in split.skipped_ids[:SHOW_IDS])
    more = f", ... ({split.skipped - SHOW_IDS} more)" if split.skipped > SHOW_IDS else ""
    first = split.problems[0].removeprefix(f"{references}: ") if split.problems else "malformed"
    return (
        f"{references}: {split.skipped} of {total} dialogs are malformed and cannot be scored "
        f"(image_id {shown}{more}; the first: {first})"
    )


def score_dialog_files(
    predictions: Path, references: Path, annotations: Path | None = None, *, allow_partial: bool = False
) -> tuple[DialogScores, list[str], dict[str, Any] | None]:
    """VisDial metrics of ``predictions`` against a VisDial v1.0 dialogs file (+ dense annotations), notes
    for the user, and what was left out when the score is partial.

    Raises:
        DataError: the references hold malformed dialogs (which cannot be scored) and ``allow_partial``
            is false; the message counts them and names the first ``image_id``s.
    """
    with _quiet(logging.getLogger(read_visdial.__module__)):  # the problems come back in `split`
        split = read_visdial(references, annotations, on_bad_dialog="skip", min_rounds=1)
    partial = None
    if split.skipped:
        message = _skipped_dialogs_message(references, split)
        if not allow_partial:
            raise DataError(
                f"{message}; fix them, or pass --allow-partial to score the {len(split.dialogs)} others"
            )
        partial = {
            "scored_dialogs": len(split.dialogs),
            "skipped_dialogs": split.skipped,
            "skipped_image_ids": split.skipped_ids,
            "references": str(references),
        }
    if not split.dialogs:
        raise DataError(f"{references}: no dialogs to score")
    notes = [f"partial score (--allow-partial): {message}"] if partial else []
    notes += (
        [f"  {problem}" for problem in split.problems[1 : split.skipped][: SHOW_IDS - 1]] if partial else []
    )
    notes += [f"ignored: {problem}" for problem in split.problems[split.skipped :]]
    num_options = len(split.dialogs[0].rounds[0].options) if split.dialogs else 100
    ranks = read_ranks(predictions, num_options)
    records, missing, known = [], [], set()
    for dialog in split.dialogs:
        for index, round_ in enumerate(dialog.rounds):
            key = (dialog.image_id, index + 1)
            known.add(key)
            if key not in ranks:
                if round_.gt_index >= 0:
                    missing.append(key)
                continue
            relevance = dialog.relevance.get(index)
            records.append(
                RoundRanking(
                    image_id=key[0],
                    round_id=key[1],
                    gt_rank=ranks[key][round_.gt_index] if round_.gt_index >= 0 else None,
                    ndcg=ndcg(torch.tensor(ranks[key]), torch.tensor(relevance)) if relevance else None,
                    round_type=round_.type,
                )
            )
    unknown = sorted(set(ranks) - known)
    if unknown and partial:
        notes.append(f"{len(unknown)} ranked rounds that may belong to the skipped dialogs are not scored")
    elif unknown:
        raise DataError(
            f"{predictions}: {len(unknown)} ranked rounds are not in {references} (e.g. image_id/round "
            f"{unknown[:3]}); is it the right references file?"
        )
    one_per_dialog = len({image_id for image_id, _ in ranks}) == len(ranks)
    if missing and not one_per_dialog:
        raise DataError(
            f"{predictions}: {len(missing)} rounds with a ground-truth answer are not ranked (e.g. image_id/"
            f"round {sorted(missing)[:3]}); rank every round, or exactly one round per dialog"
        )
    if not records:
        raise DataError(f"{predictions}: none of its ranked rounds is a round of {references}")
    return score_rankings(records), notes, partial


def score_dialog(request: ScoreRequest) -> ScoreResult:
    """``vltk score dialog --predictions ranks.json --references visdial_val.json [--annotations dense]``."""
    if request.references is None:
        raise VltkError(
            "score dialog needs --references (the VisDial v1.0 dialogs JSON with the ground truth); "
            "add --annotations (dense annotations JSON) for NDCG"
        )
    scores, notes, partial = score_dialog_files(
        request.predictions, request.references, request.annotations, allow_partial=request.allow_partial
    )
    notes.append(f"{scores.rounds} rounds ranked, {scores.annotated_rounds} with dense relevance (NDCG)")
    if request.annotations is None:
        notes.append("no --annotations: NDCG needs the dense annotations file")
    return ScoreResult(scores.metrics(types=True), notes, partial)
