"""Time to quality: how soon vltk (batched streams, fused kernels, Adam) reaches the held-out loss that the
plain-numpy min-char-rnn has after 5,000 updates, in wall time on the same machine.

The reference (``charrnn_reference.py``) trains for ``--updates`` updates on the built-in text; its held-out
loss (nats per character over the validation split, one pass, state carried) is the target. vltk then trains
the recommended model, checking the same held-out text every ``--val-every`` updates, and stops at the first
check at or below the target. Times are of the training loops only (the reference's loop; vltk's
``trainer.fit`` minus its validation passes); the total with validation is shown as well.

    python benchmarks/charrnn_time_to_quality.py --cell lstm --hidden 128 --batch 32 --seq 32 --lr 0.02
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
from charrnn_common import fit, lm_system, python_text  # noqa: E402
from charrnn_reference import heldout_nll, train_reference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=5000, help="reference updates")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chars", type=int, default=400_000)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--embed", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--val-every", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dm = python_text(args.chars)
    train, val = dm.ids("train").numpy(), dm.ids("val").numpy()
    rows, ratios = [], []
    overrides = [
        "model.name=rnn_lm",
        f"model.cell={args.cell}",
        f"model.hidden_dim={args.hidden}",
        f"model.embed_dim={args.embed}",
        f"data.batch_size={args.batch}",
        f"data.seq_len={args.seq}",
        "data.eval_batch_size=16",
        "optim.name=adam",
        f"optim.lr={args.lr}",
        "optim.clip_norm=5.0",
        "optim.scheduler=none",
    ]
    for seed in args.seeds:
        ref = train_reference(train, dm.vocab_size, args.updates, seed=seed)
        target = heldout_nll(ref.params, val)
        system = lm_system("default", overrides, dm, seed)
        record = fit(
            system, dm, max_steps=args.max_steps, val_every=args.val_every, target=target, max_epochs=100
        )
        reached = [c for c in record.checks if c[3] <= target]
        if reached:
            step, train_s, total_s, nll = reached[0]
            ratio = ref.seconds / train_s
            ratios.append(ratio)
            vltk_cell = f"{train_s:.2f} s ({total_s:.2f} s with validation), {step} updates, nll {nll:.3f}"
            ratio_cell = f"{ratio:.1f}x"
        else:
            best = min(record.checks, key=lambda c: c[3]) if record.checks else (0, 0.0, 0.0, float("nan"))
            vltk_cell = f"not reached in {args.max_steps} updates (best nll {best[3]:.3f})"
            ratio_cell = "-"
        rows.append(
            f"| {seed} | {ref.seconds:.1f} s | {target:.3f} ({target / 0.6931:.2f} bpc) "
            f"| {vltk_cell} | {ratio_cell} |"
        )
        print(rows[-1], flush=True)
    load = os.getloadavg()
    summary = (
        f"median speed-up {statistics.median(ratios):.1f}x over {len(ratios)} seed(s)"
        if ratios
        else "the target was not reached"
    )
    text = f"""
### char-RNN time to quality: vltk (batched, fused, Adam) vs numpy min-char-rnn after {args.updates} updates

`{invocation()}` — {datetime.date.today().isoformat()}, {machine()}, torch threads {args.threads},
load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (other engineers' work shared the 2 cores).

Same text as the faithfulness table (`python_source`, first {args.chars:,} characters; held-out = the
validation split, {len(val):,} characters). Target = the numpy reference's held-out loss after {args.updates}
updates (nats per character). vltk: {args.cell.upper()} hidden {args.hidden}, embedding {args.embed},
{args.batch} streams x {args.seq} characters, Adam {args.lr}, clip norm 5, fused kernel; held-out checked
every {args.val_every} updates. Times are training-loop wall times.

| seed | numpy: {args.updates} updates | target held-out nll | vltk: time to target | speed-up |
|---|---|---|---|---|
{chr(10).join(rows)}

Result: {summary} (target: >= 10x).
"""
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
