"""Speed of vltk's caption metrics against pycocoevalcap's, side by side in one run (-> BENCHMARKS.md).

Two comparisons on a COCO-sized split (default 5,000 images x 5 references, synthetic captions with a
Zipfian vocabulary and COCO-like lengths):

* **scoring**: BLEU-1..4 + ROUGE-L + CIDEr-D on the same tokenised captions, vltk's
  ``bleu_scores``/``rouge_l_scores``/``cider_d_scores`` against pycocoevalcap's ``Bleu(4)``/``Rouge()``/
  ``Cider()`` (target: vltk at least 3x faster); the scores are checked to agree to 1e-6;
* **tokenisation** of every raw caption: vltk's pure-Python ``tokenize_caption`` against pycocoevalcap's
  ``PTBTokenizer`` (Java, JVM start-up included; target: vltk at least as fast).

    python benchmarks/caption_metrics_speed.py                 # 5,000 images, 3 interleaved rounds
    python benchmarks/caption_metrics_speed.py --images 1000 --repeats 5

Both sides of each comparison run in this process, interleaved (A B, B A, ...); best and median of the
rounds are reported, the speed-ups from both.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, best_median, publish, verdict  # noqa: E402

from vltk.metrics import score_tokenized, tokenize_caption

SUBJECTS = ["man", "woman", "dog", "cat", "boy", "girl", "giraffe", "bus", "train", "plate", "pizza", "bird"]
SCENES = ["street", "beach", "field", "kitchen", "table", "park", "snow", "water", "room", "grass", "city"]


def zipf_vocabulary(rng: random.Random, size: int = 3000) -> tuple[list[str], list[float]]:
    words = [f"{rng.choice('bcdfghklmnprstvw')}{rng.choice('aeiou')}{i}" for i in range(size)]
    weights = [1.0 / (rank + 1) for rank in range(size)]
    return words, weights


def raw_corpus(num_images: int, num_refs: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Raw captions: per image a subject and a scene shared by its references, plus Zipfian filler."""
    rng = random.Random(seed)
    words, weights = zipf_vocabulary(rng)

    def caption(subject: str, scene: str) -> str:
        filler = rng.choices(words, weights, k=rng.randint(3, 9))
        half = len(filler) // 2
        text = f"A {subject} {' '.join(filler[:half])} in the {scene} {' '.join(filler[half:])}"
        return text + rng.choice([".", "", " .", "!"])

    hypotheses, references = [], []
    for _ in range(num_images):
        subject, scene = rng.choice(SUBJECTS), rng.choice(SCENES)
        references.append([caption(subject, scene) for _ in range(num_refs)])
        hypotheses.append(caption(subject, scene) if rng.random() < 0.9 else "")
    return hypotheses, references


def side_by_side(repeats: int, first, second) -> tuple[dict, dict, object, object]:
    """Both functions ``repeats`` times, interleaved (A B, B A, ...): their timings and last results."""
    times: dict[int, list[float]] = {0: [], 1: []}
    results: dict[int, object] = {}
    for round_index in range(repeats):
        for arm in (0, 1) if round_index % 2 == 0 else (1, 0):
            start = time.perf_counter()
            results[arm] = (first, second)[arm]()
            times[arm].append(time.perf_counter() - start)
    return best_median(times[0]), best_median(times[1]), results[0], results[1]


def vltk_scores(hyps: list[list[str]], refs: list[list[list[str]]]) -> dict[str, float]:
    return score_tokenized(hyps, refs)[0]  # BLEU + ROUGE-L + CIDEr-D, n-grams counted once


def coco_scores(gts: dict, res: dict) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {**{f"BLEU-{n + 1}": bleu[n] for n in range(4)}, "ROUGE-L": rouge, "CIDEr": cider}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--refs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of each comparison")
    parser.add_argument("--seed", type=int, default=0)
    add_json_argument(parser)
    args = parser.parse_args()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    raw_hyps, raw_refs = raw_corpus(args.images, args.refs, args.seed)

    # Tokenisation of every caption: Java (one JVM start, as pycocoevalcap does it) vs Python.
    def java_tokenize() -> tuple[dict, dict]:
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({i: [{"caption": c} for c in refs] for i, refs in enumerate(raw_refs)})
        res = tokenizer.tokenize({i: [{"caption": c}] for i, c in enumerate(raw_hyps)})
        return gts, res

    def python_tokenize() -> tuple[list, list]:
        hyps = [tokenize_caption(c) for c in raw_hyps]
        refs = [[tokenize_caption(c) for c in image_refs] for image_refs in raw_refs]
        return hyps, refs

    java_t, python_t, (gts, res), (hyps, refs) = side_by_side(args.repeats, java_tokenize, python_tokenize)
    same_tokens = all(" ".join(h) == res[i][0] for i, h in enumerate(hyps)) and all(
        [" ".join(r) for r in image_refs] == gts[i] for i, image_refs in enumerate(refs)
    )

    # Scoring on the same tokenised input (the Java tokens, as COCO would score them).
    coco_hyps = [res[i][0].split() for i in range(len(raw_hyps))]
    coco_refs = [[ref.split() for ref in gts[i]] for i in range(len(raw_refs))]
    coco_t, vltk_t, coco, ours = side_by_side(
        args.repeats, lambda: coco_scores(gts, res), lambda: vltk_scores(coco_hyps, coco_refs)
    )
    worst = max(abs(ours[name] - coco[name]) for name in coco)

    n_captions = len(raw_hyps) + sum(len(r) for r in raw_refs)
    scoring = coco_t["median"] / vltk_t["median"]
    tokenising = java_t["median"] / python_t["median"]
    lines = [
        f"{args.images} images x {args.refs} references ({n_captions} captions, synthetic, Zipfian "
        f"vocabulary); each comparison side by side in one process, {args.repeats} interleaved rounds; "
        "speed-up = ratio of the medians (of the best rounds in brackets).\n",
        "| step | pycocoevalcap best / median | vltk best / median | speed-up | target (issue 3) |",
        "|---|---|---|---|---|",
        f"| BLEU-1..4 + ROUGE-L + CIDEr-D, same tokens | {coco_t['best']:.2f} / {coco_t['median']:.2f} s | "
        f"{vltk_t['best']:.2f} / {vltk_t['median']:.2f} s | **{scoring:.1f}x** "
        f"({coco_t['best'] / vltk_t['best']:.1f}x) | >= 3x: {verdict(scoring, 3.0, fmt='.1f', unit='x')} |",
        f"| tokenisation (Java PTBTokenizer incl. JVM start vs pure Python) | {java_t['best']:.2f} / "
        f"{java_t['median']:.2f} s | {python_t['best']:.2f} / {python_t['median']:.2f} s | "
        f"**{tokenising:.1f}x** ({java_t['best'] / python_t['best']:.1f}x) | >= 1x: "
        f"{verdict(tokenising, 1.0, fmt='.1f', unit='x')} |",
        "",
        f"Largest |vltk - pycocoevalcap| over the six metrics: {worst:.1e}; tokens identical to Java on "
        f"every caption: {'yes' if same_tokens else 'NO'}.\n",
    ]
    data = {
        "scoring": {"pycocoevalcap": coco_t, "vltk": vltk_t},
        "tokenising": {"java": java_t, "python": python_t},
        "largest_difference": worst,
        "same_tokens": same_tokens,
    }
    publish("\n".join(lines), data, args.json)


if __name__ == "__main__":
    main()
