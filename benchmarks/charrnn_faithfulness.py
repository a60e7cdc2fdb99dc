"""Faithfulness: vltk's `min_char_rnn` config vs a plain-numpy min-char-rnn, same text, same updates.

Both train a vanilla RNN (hidden 100, one-hot input, N(0, 0.01^2) init) on the built-in text (the first
``--chars`` characters of the running Python's standard-library source; training split = the first 90%),
one stream, 25 characters per update, state carried, summed loss, gradients clipped to [-5, 5], Adagrad 0.1
(with the epsilon under the square root, as min-char-rnn: ``optim.eps_inside_sqrt: true``).
The table gives min-char-rnn's smoothed loss (nats per 25 characters) after the same numbers of updates, for
a few seeds of each; "within noise" means the two means differ by less than about two standard deviations
of the seed-to-seed spread.

    python benchmarks/charrnn_faithfulness.py --updates 5000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import invocation, machine, publish  # noqa: E402
from charrnn_common import fit, lm_system, python_text, smooth  # noqa: E402
from charrnn_reference import load_into_vltk, train_reference  # noqa: E402


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chars", type=int, default=400_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="32-true", help="vltk's precision (64-true: float64 as numpy)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dm = python_text(args.chars)
    data = dm.ids("train").numpy()
    vocab = dm.vocab_size
    marks = [m for m in (500, 1000, 2000, 3000, 4000, 5000, 10000) if m <= args.updates]
    if args.updates not in marks:
        marks.append(args.updates)
    # The same start: numpy's initial parameters copied into vltk, both in float64, a few updates.
    start = {k: v.copy() for k, v in train_reference(data, vocab, 0, seed=0).params.items()}
    same_ref = train_reference(data, vocab, 3, init=start)
    system = lm_system("min_char_rnn", [], dm, 0)
    load_into_vltk(start, system.model)
    same_vltk = fit(system, dm, max_steps=3, precision="64-true")
    same = [abs(a - b) for a, b in zip(same_ref.losses, same_vltk.losses)]

    ref_curves, vltk_curves, ref_seconds, vltk_seconds = [], [], [], []
    for seed in args.seeds:
        ref = train_reference(data, vocab, args.updates, seed=seed)
        ref_curves.append(ref.smooth_losses)
        ref_seconds.append(ref.seconds)
        system = lm_system("min_char_rnn", [], dm, seed)
        record = fit(system, dm, max_steps=args.updates, precision=args.precision)
        vltk_curves.append(smooth(record.losses, vocab, 25))
        vltk_seconds.append(record.train_seconds)
        print(
            f"seed {seed}: numpy {ref.smooth_losses[-1]:.2f} ({ref.seconds:.1f} s), "
            f"vltk {vltk_curves[-1][-1]:.2f} ({record.train_seconds:.1f} s)",
            flush=True,
        )

    rows = []
    for mark in marks:
        r = [c[mark - 1] for c in ref_curves]
        v = [c[mark - 1] for c in vltk_curves]
        spread = max(statistics.stdev(r) if len(r) > 1 else 0, statistics.stdev(v) if len(v) > 1 else 0)
        diff = statistics.mean(v) - statistics.mean(r)
        verdict = "yes" if abs(diff) <= 2 * max(spread, 1e-9) else f"no ({diff:+.2f})"
        rows.append(f"| {mark} | {_mean_std(r)} | {_mean_std(v)} | {diff:+.2f} | {verdict} |")
    load = os.getloadavg()
    text = f"""
### char-RNN faithfulness: vltk `min_char_rnn` vs plain-numpy min-char-rnn

`{invocation()}` — {datetime.date.today().isoformat()}, {machine()}, torch threads {args.threads},
load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (other engineers' work shared the 2 cores).

Text: the first {args.chars:,} characters of this Python's stdlib source (`python_source`, vocabulary
{vocab} symbols), training split {len(data):,} characters. Both sides: vanilla RNN, hidden 100, one-hot
input, seq 25, batch 1, summed loss, clip [-5, 5], Adagrad 0.1; seeds {args.seeds}; vltk precision
{args.precision}. Smoothed loss =
min-char-rnn's `0.999 * smooth + 0.001 * loss` in nats per 25 characters (mean ± sd over seeds).

| updates | numpy min-char-rnn | vltk (`--config min_char_rnn`) | vltk - numpy | within 2 sd |
|---|---|---|---|---|
{chr(10).join(rows)}

Same start (numpy's initial parameters copied into vltk, float64): |loss difference| at updates 1, 2, 3 =
{", ".join(f"{d:.1e}" for d in same)} (the algorithms agree to rounding). Beyond that, the first updates of
Adagrad at 0.1 amplify rounding differences about 100x per update, so single runs separate and the comparison
is over seeds.

Wall time of {args.updates} updates: numpy {statistics.mean(ref_seconds):.1f} s, vltk (Lightning, fused
`nn.RNN`, batch 1) {statistics.mean(vltk_seconds):.1f} s (mean over seeds).
"""
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
