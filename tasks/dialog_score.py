"""``vltk score dialog``: VisDial metrics of a ranks file, without a model.

Inputs are the official formats: the EvalAI submission layout ``[{"image_id", "round_id", "ranks": [100
ints]}]`` (``ranks[i]`` is the rank of option ``i``, 1 = best; ``round_id`` is 1-based), the VisDial v1.0
dialogs JSON (``--references``) and, for NDCG, its dense annotations (``--annotations``). As on EvalAI:
every round with a ground-truth answer must be ranked when the file ranks all rounds (val); a file with one
round per dialog (test-std style: the last round) is scored on those rounds. A round that is not in the
references is an error, since it usually means the wrong references file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vltk.data.json_file import read_json
from vltk.data.visdial import read_visdial
from vltk.errors import DataError, VltkError
from vltk.metrics.retrieval import DialogScores, RoundRanking, check_ranks, ndcg, score_rankings
from vltk.tasks.common import ScoreRequest, ScoreResult


def read_ranks(path: Path, num_options: int) -> dict[tuple[int, int], list[int]]:
    """``{(image_id, round_id): ranks}`` of a ranks file; duplicates and malformed rows are errors."""
    rows = read_json(path, "predictions (ranks)")
    if not isinstance(rows, list):
        raise DataError(f'{path}: expected a JSON list of {{"image_id", "round_id", "ranks"}} objects')
    ranks: dict[tuple[int, int], list[int]] = {}
    for number, row in enumerate(rows):
        where = f"{path}: entry {number}"
        if not isinstance(row, dict) or not {"image_id", "round_id", "ranks"} <= row.keys():
            raise DataError(f'{where} needs "image_id", "round_id" and "ranks": {str(row)[:120]}')
        key = (int(row["image_id"]), int(row["round_id"]))
        try:
            values = check_ranks(row["ranks"], num_options, f"{where} (image_id {key[0]}, round {key[1]})")
        except ValueError as error:
            raise DataError(str(error)) from None
        if key in ranks:
            raise DataError(f"{path}: image_id {key[0]} round {key[1]} is ranked twice")
        ranks[key] = values
    return ranks


def score_dialog_files(
    predictions: Path, references: Path, annotations: Path | None = None
) -> tuple[DialogScores, list[str]]:
    """VisDial metrics of ``predictions`` against a VisDial v1.0 dialogs file (+ dense annotations), and
    notes for the user. Bad dialogs of the references are skipped (each is named in a warning); the rest
    is scored."""
    split = read_visdial(references, annotations, on_bad_dialog="skip", min_rounds=1)
    notes = []
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
    if unknown and split.skipped:
        notes.append(
            f"{split.skipped} dialogs of {references} are malformed and were skipped (see the warnings); "
            f"{len(unknown)} ranked rounds that may belong to them are not scored"
        )
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
    return score_rankings(records), notes


def score_dialog(request: ScoreRequest) -> ScoreResult:
    """``vltk score dialog --predictions ranks.json --references visdial_val.json [--annotations dense]``."""
    if request.references is None:
        raise VltkError(
            "score dialog needs --references (the VisDial v1.0 dialogs JSON with the ground truth); "
            "add --annotations (dense annotations JSON) for NDCG"
        )
    scores, notes = score_dialog_files(request.predictions, request.references, request.annotations)
    notes.append(f"{scores.rounds} rounds ranked, {scores.annotated_rounds} with dense relevance (NDCG)")
    if request.annotations is None:
        notes.append("no --annotations: NDCG needs the dense annotations file")
    return ScoreResult(scores.metrics(types=True), notes)
