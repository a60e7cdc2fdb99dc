"""vltk's pure-Python caption tokenizer against COCO's Java PTBTokenizer on generated ugly captions.

Generates captions with :func:`vltk.metrics.ptb_parity.stress_captions` (contractions, quotes, hyphens,
numbers, currency, unicode, URLs, emoticons, odd spacing, empty and punctuation-only captions), tokenises
them with both tools (Java once per corpus, each caption isolated from the next), and prints how many
differ, with examples. Two corpora: without glued words, and with two words glued together in a fifth of
the ugly captions (``man'sat``, ``the10,000.50``), the known weak spot.

    python benchmarks/ptb_tokenizer_parity.py                       # 20,000 captions per corpus
    python benchmarks/ptb_tokenizer_parity.py --captions 2000 --show 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, publish  # noqa: E402

from vltk.metrics import tokenize_caption
from vltk.metrics.ptb_parity import java_ptb_tokenize, stress_captions


def compare(captions: list[str]) -> list[tuple[str, list[str], list[str]]]:
    java = java_ptb_tokenize(captions, isolate=True)
    ours = [tokenize_caption(caption) for caption in captions]
    return [(c, j, o) for c, j, o in zip(captions, java, ours, strict=True) if j != o]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=20000, help="captions per corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=5, help="mismatches to print per corpus")
    add_json_argument(parser)
    args = parser.parse_args()

    rows, examples, counts = [], [], {}
    for glue in (0.0, 0.2):
        captions = stress_captions(args.captions, seed=args.seed, glue=glue)
        mismatches = compare(captions)
        share = 100.0 * len(mismatches) / len(captions)
        counts[f"{glue:.0%}"] = {"captions": len(captions), "differ": len(mismatches)}
        rows.append(f"| {glue:.0%} of ugly captions | {len(captions)} | {len(mismatches)} ({share:.2f}%) |")
        for caption, java, ours in mismatches[: args.show]:
            examples.append(f"- `{caption!r}`: Java `{' '.join(java)}`, vltk `{' '.join(ours)}`")
    lines = [
        f"Captions from `stress_captions(seed={args.seed})`, Java = pycocoevalcap's Stanford PTBTokenizer "
        "3.4.1 (`-preserveLines -lowerCase`, COCO's punctuation filter), each caption isolated from the "
        "next. Not timed.\n",
        "| glued words | captions | captions whose tokens differ |",
        "|---|---|---|",
        *rows,
        "",
        *(["Differences (first few):", "", *examples, ""] if examples else []),
    ]
    publish("\n".join(lines), counts, args.json)


if __name__ == "__main__":
    main()
