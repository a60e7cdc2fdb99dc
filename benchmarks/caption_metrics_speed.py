"""Speed of vltk's caption metrics against pycocoevalcap's, side by side in one run (-> BENCHMARKS.md).

Two comparisons on a COCO-sized split (default 5,000 images x 5 references, synthetic captions with a
Zipfian vocabulary and COCO-like lengths):

* **scoring**: BLEU-1..4 + ROUGE-L + CIDEr-D on the same tokenised captions, vltk's
  ``bleu_scores``/``rouge_l_scores``/``cider_d_scores`` against pycocoevalcap's ``Bleu(4)``/``Rouge()``/
  ``Cider()`` (target: vltk at least 3x faster); the scores are checked to agree to 1e-6;
* **tokenisation** of every raw caption: vltk's pure-Python ``tokenize_caption`` against pycocoevalcap's
  ``PTBTokenizer`` (Java, JVM start-up included; target: vltk at least as fast).

    python benchmarks/caption_metrics_speed.py                 # 5,000 images, best of 3, appends a table
    python benchmarks/caption_metrics_speed.py --images 1000 --no-append

Run it under ``flock /tmp/vltk-bench.lock`` on a shared machine; the load average is recorded with the table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import time
from datetime import date

from _report import invocation, machine, publish

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


def best_of(repeats: int, function) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


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
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = parser.parse_args()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    raw_hyps, raw_refs = raw_corpus(args.images, args.refs, args.seed)
    load_before = os.getloadavg()

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

    java_seconds, (gts, res) = best_of(args.repeats, java_tokenize)
    python_seconds, (hyps, refs) = best_of(args.repeats, python_tokenize)
    same_tokens = all(" ".join(h) == res[i][0] for i, h in enumerate(hyps)) and all(
        [" ".join(r) for r in image_refs] == gts[i] for i, image_refs in enumerate(refs)
    )

    # Scoring on the same tokenised input (the Java tokens, as COCO would score them).
    coco_hyps = [res[i][0].split() for i in range(len(raw_hyps))]
    coco_refs = [[ref.split() for ref in gts[i]] for i in range(len(raw_refs))]
    coco_seconds, coco = best_of(args.repeats, lambda: coco_scores(gts, res))
    vltk_seconds, ours = best_of(args.repeats, lambda: vltk_scores(coco_hyps, coco_refs))
    worst = max(abs(ours[name] - coco[name]) for name in coco)
    load_after = os.getloadavg()

    n_captions = len(raw_hyps) + sum(len(r) for r in raw_refs)
    lines = [
        f"\n### Caption metric speed ({date.today().isoformat()}, {machine()})\n",
        f"`{invocation()}`; {args.images} images x {args.refs} references ({n_captions} captions), "
        f"best of {args.repeats}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(1-minute; the machine is shared with other work).\n",
        "| step | pycocoevalcap | vltk | speed-up | target |",
        "|---|---|---|---|---|",
        f"| BLEU-1..4 + ROUGE-L + CIDEr-D, same tokens | {coco_seconds:.2f} s | {vltk_seconds:.2f} s | "
        f"{coco_seconds / vltk_seconds:.1f}x | >= 3x |",
        f"| tokenisation (Java PTBTokenizer incl. JVM start vs pure Python) | {java_seconds:.2f} s | "
        f"{python_seconds:.2f} s | {java_seconds / python_seconds:.1f}x | >= 1x |",
        "",
        f"Largest |vltk - pycocoevalcap| over the six metrics: {worst:.1e}; "
        f"tokens identical to Java on every caption: {'yes' if same_tokens else 'NO'}.\n",
    ]
    publish("\n".join(lines), append=not args.no_append)


if __name__ == "__main__":
    main()
