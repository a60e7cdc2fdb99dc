"""shapes_dialog: generation time, what the dialogs hold, loading speed, and two reference points that need
no training: chance, and an answer prior that ranks the options by how often each was the answer to the
*same question text* in training (a question-only model can learn at most about this much; the image and
the history are what the rest takes).

Usage: python benchmarks/shapes_dialog_stats.py [--num-dialogs 4000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, publish  # noqa: E402

from vltk.tasks.dialog.datamodule import ShapesDialogDataModule
from vltk.tasks.dialog.shapes_dialog import ROUND_TYPES, generate_shapes_dialog, split_paths


def _ndcg(ranking: list[int], relevance: list[float]) -> float:
    """VisDial NDCG: DCG of the top k options, k = number of options with non-zero relevance, over the
    ideal DCG at k."""
    k = sum(r > 0 for r in relevance)
    if k == 0:
        return 0.0
    gains = [relevance[i] for i in ranking[:k]]
    ideal = sorted(relevance, reverse=True)[:k]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def _rounds(root: Path, split: str):
    data = json.loads(split_paths(root, split)[0].read_text())["data"]
    dense = {d["image_id"]: d for d in json.loads(split_paths(root, split)[1].read_text())}
    for dialog in data["dialogs"]:
        annotation = dense.get(dialog["image_id"])
        for number, turn in enumerate(dialog["dialog"]):
            options = [data["answers"][o] for o in turn["answer_options"]]
            scores = (
                annotation["gt_relevance"] if annotation and annotation["round_id"] == number + 1 else None
            )
            yield data["questions"][turn["question"]], options, turn["gt_index"], turn["type"], scores, dialog


def _baselines(root: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    prior: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for question, options, gt, _, _, _ in _rounds(root, "train"):
        prior[question][options[gt]] += 1
        overall[options[gt]] += 1
    ranks: dict[str, list[int]] = defaultdict(list)
    ndcgs: list[float] = []
    for question, options, gt, kind, scores, _ in _rounds(root, "test"):
        order = sorted(
            range(len(options)), key=lambda i: (-prior[question][options[i]], -overall[options[i]], i)
        )
        rank = order.index(gt) + 1
        ranks[kind].append(rank)
        ranks["all"].append(rank)
        if scores is not None:
            ndcgs.append(_ndcg(order, scores))
    table = {}
    for kind, values in ranks.items():
        array = np.array(values)
        table[kind] = {
            "r1": float((array <= 1).mean()),
            "r5": float((array <= 5).mean()),
            "r10": float((array <= 10).mean()),
            "mrr": float((1 / array).mean()),
            "mean_rank": float(array.mean()),
            "n": len(values),
        }
    chance = {"mrr": float(np.mean([1 / r for r in range(1, 101)])), "mean_rank": 50.5}
    table["all"]["ndcg"] = float(np.mean(ndcgs))
    return table, chance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-dialogs", type=int, default=4000)
    add_json_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = generate_shapes_dialog(Path(tmp) / "sd", num_dialogs=args.num_dialogs)
        generation_s = time.perf_counter() - start
        types: Counter = Counter()
        history_words = []
        for _, _, _, kind, _, _ in _rounds(root, "train"):
            types[kind] += 1
        train = json.loads(split_paths(root, "train")[0].read_text())["data"]
        for dialog in train["dialogs"]:
            words = len(dialog["caption"].split()) + sum(
                len(train["questions"][t["question"]].split()) + len(train["answers"][t["answer"]].split())
                for t in dialog["dialog"][:9]
            )
            history_words.append(words)
        table, chance = _baselines(root)
        dm = ShapesDialogDataModule(num_dialogs=args.num_dialogs, cache_dir=tmp, batch_size=32)
        dm.setup()
        loader = dm.train_dataloader()
        start = time.perf_counter()
        first_epoch = sum(len(batch) for batch in loader)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        sum(len(batch) for batch in loader)
        second_s = time.perf_counter() - start
    lines = [
        f"- generation of {args.num_dialogs} dialogs (images, JSON, dense annotations): {generation_s:.1f} s",
        "- round types (train): "
        + ", ".join(f"{k} {types[k] / sum(types.values()):.1%}" for k in ROUND_TYPES),
        f"- history before round 10: {np.mean(history_words):.0f} words on average, {max(history_words)} at "
        "most (default `max_history_length` 100)",
        f"- loading ({first_epoch} training dialogs, batch 32, `in_memory`): first epoch {first_s:.1f} s "
        f"(decodes the PNGs), second {second_s:.1f} s",
        "",
        "Test split, the answer prior (question text only, counted on train), and chance:",
        "",
        "| rounds | n | R@1 | R@5 | R@10 | MRR | mean rank |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("all", *ROUND_TYPES):
        row = table.get(kind)
        if row:
            lines.append(
                f"| {kind} | {row['n']} | {row['r1']:.3f} | {row['r5']:.3f} | {row['r10']:.3f} | "
                f"{row['mrr']:.3f} | {row['mean_rank']:.2f} |"
            )
    lines += [
        f"| chance | | 0.010 | 0.050 | 0.100 | {chance['mrr']:.3f} | {chance['mean_rank']:.1f} |",
        "",
        f"NDCG of the answer prior on the annotated test rounds: {table['all']['ndcg']:.3f}. A "
        "question-only model can learn about this prior (the form of the right answer follows the "
        "question's template, and yes/no rounds leave it a coin flip between two options), so it is the "
        "floor the image and the history have to lift the full models above.",
        "",
    ]
    data = {"generation_s": generation_s, "types": dict(types), "baselines": table, "chance": chance,
            "first_epoch_s": first_s, "second_epoch_s": second_s}  # fmt: skip
    publish("\n".join(lines), data, args.json)


if __name__ == "__main__":
    main()
