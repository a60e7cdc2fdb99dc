"""vltk's pure-Python caption tokenizer against COCO's Java PTBTokenizer on generated ugly captions.

Generates captions with :func:`vltk.metrics.ptb_parity.stress_captions` (contractions, quotes, hyphens,
numbers, currency, unicode, URLs, emoticons, odd spacing, empty and punctuation-only captions), tokenises
them with both tools (Java once per corpus, each caption isolated from the next), and prints how many
differ, with examples. Two corpora: without glued words, and with two words glued together in a fifth of
the ugly captions (``man'sat``, ``the10,000.50``), the known weak spot.

    python benchmarks/ptb_tokenizer_parity.py                       # 20,000 captions per corpus, appends
    python benchmarks/ptb_tokenizer_parity.py --captions 2000 --no-append --show 20
"""

from __future__ import annotations

import argparse
import os
from datetime import date

from _report import invocation, machine, publish

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
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = parser.parse_args()

    rows, examples = [], []
    for glue in (0.0, 0.2):
        captions = stress_captions(args.captions, seed=args.seed, glue=glue)
        mismatches = compare(captions)
        share = 100.0 * len(mismatches) / len(captions)
        rows.append(f"| {glue:.0%} of ugly captions | {len(captions)} | {len(mismatches)} ({share:.2f}%) |")
        for caption, java, ours in mismatches[: args.show]:
            examples.append(f"- `{caption!r}`: Java `{' '.join(java)}`, vltk `{' '.join(ours)}`")
    load = os.getloadavg()[0]
    lines = [
        f"\n### PTB tokenizer parity ({date.today().isoformat()}, {machine()})\n",
        f"`{invocation()}`; captions from `stress_captions(seed={args.seed})`, Java = pycocoevalcap's "
        f"Stanford PTBTokenizer 3.4.1 (`-preserveLines -lowerCase`, COCO's punctuation filter), each caption "
        f"isolated from the next; load average {load:.2f}.\n",
        "| glued words | captions | captions whose tokens differ |",
        "|---|---|---|",
        *rows,
        "",
        *(["Differences (first few):", "", *examples, ""] if examples else []),
    ]
    publish("\n".join(lines), append=not args.no_append)


if __name__ == "__main__":
    main()
