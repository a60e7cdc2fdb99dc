"""Time to quality: how soon vltk (batched streams, fused kernels, Adam) reaches the held-out loss that the
plain-numpy min-char-rnn has after 5,000 updates, in wall time from process start, set-up included.

Both sides run in a fresh process each, one after the other (reference then vltk, per seed), and both are
timed the same way, by this parent, from just before the process is started:

- the reference (``charrnn_reference.py``, numpy only, no torch) starts Python, imports numpy, reads the
  text and builds its vocabulary (as min-char-rnn reads ``input.txt``), and trains ``--updates`` updates;
  its time to quality is process start to the end of the last update. Its held-out loss after that (nats
  per character over the validation split, one pass, state carried) is the target; computing it is not
  counted.
- vltk starts Python, imports torch and Lightning, reads the same text through its data module, builds the
  model and the Trainer, and trains the recommended model, checking the held-out text every ``--val-every``
  updates and stopping at the first check at or below the target; its time to quality is process start to
  the end of that check (the held-out checks are counted: vltk needs them to know it is there). The time
  without the checks is shown as well, and so are the training loops alone (the old measure).

Both read the same symbols (the children report a hash of their training and held-out ids; the run stops if
they differ).

    python benchmarks/charrnn_time_to_quality.py --cell lstm --hidden 128 --batch 32 --seq 32 --lr 0.02
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, fmt_spread, machine, publish, verdict  # noqa: E402
from charrnn_reference import heldout_nll, reference_text, train_reference  # noqa: E402


def digest(*arrays) -> str:
    sha = hashlib.sha256()
    for array in arrays:
        sha.update(np.ascontiguousarray(np.asarray(array, dtype=np.int64)).tobytes())
    return sha.hexdigest()[:16]


def child_reference(args) -> dict:
    train, val, vocab_size = reference_text(args.chars)
    setup_done = time.monotonic()
    ref = train_reference(train, vocab_size, args.updates, seed=args.seed)
    trained = time.monotonic()
    return {
        "setup_done_at": setup_done,
        "reached_at": trained,
        "loop_s": ref.seconds,
        "target": heldout_nll(ref.params, val),
        "ids": digest(train, val),
        "vocab_size": vocab_size,
    }


def child_vltk(args) -> dict:
    import torch
    from charrnn_common import fit, lm_system, python_text

    torch.set_num_threads(args.threads)
    dm = python_text(args.chars)
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
    system = lm_system("default", overrides, dm, args.seed)
    record = fit(
        system, dm, max_steps=args.max_steps, val_every=args.val_every, target=args.target, max_epochs=100
    )
    ids = digest(
        dm.ids("train").numpy(), dm.ids("val").numpy()
    )  # after the run: not timed, as the reference's
    out = {"ids": ids, "started_at": record.started_at, "reached": False,
           "best_nll": min((c[3] for c in record.checks), default=float("nan"))}  # fmt: skip
    for (step, train_s, total_s, nll), at in zip(record.checks, record.check_times):
        if nll <= args.target:
            out.update(reached=True, reached_at=at, step=step, nll=nll, loop_s=train_s,
                       eval_s=total_s - train_s)  # fmt: skip
            break
    return out


def spawn(kind: str, args, extra: list[str]) -> dict:
    """Run this script as a child of ``kind``; the child's result with ``spawned_at`` (monotonic)."""
    command = [sys.executable, __file__, "--child", kind, "--seed", str(args.seed), *extra]
    spawned = time.monotonic()
    result = subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ, VLTK_LOG_LEVEL="ERROR")
    )
    if result.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{result.stdout}\n{result.stderr}")
    return {"spawned_at": spawned, **json.loads(result.stdout.strip().splitlines()[-1])}


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
    parser.add_argument("--child", choices=["reference", "vltk"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, default=None, help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_reference(args) if args.child == "reference" else child_vltk(args)))
        return

    shared = ["--chars", str(args.chars)]
    vltk_args = shared + [f"--{k}={getattr(args, k.replace('-', '_'))}"
                          for k in ("cell", "hidden", "embed", "batch", "seq", "lr", "val-every", "max-steps",
                                    "threads")]  # fmt: skip
    rows, records = [], []
    for seed in args.seeds:
        args.seed = seed
        ref = spawn("reference", args, shared + ["--updates", str(args.updates)])
        ours = spawn("vltk", args, vltk_args + ["--target", repr(ref["target"])])
        if ours["ids"] != ref["ids"]:
            raise SystemExit(f"the two sides read different text (ids {ref['ids']} vs {ours['ids']})")
        ref_s = ref["reached_at"] - ref["spawned_at"]
        record = {
            "seed": seed,
            "target": ref["target"],
            "reference_s": ref_s,
            "reference_loop_s": ref["loop_s"],
            "reference_setup_s": ref["setup_done_at"] - ref["spawned_at"],
            "vltk": ours,
        }
        if ours["reached"]:
            vltk_s = ours["reached_at"] - ours["spawned_at"]
            record.update(vltk_s=vltk_s, vltk_setup_s=ours["started_at"] - ours["spawned_at"],
                          ratio=ref_s / vltk_s, ratio_without_checks=ref_s / (vltk_s - ours["eval_s"]),
                          ratio_loops=ref["loop_s"] / ours["loop_s"])  # fmt: skip
            vltk_cell = (f"{vltk_s:.2f} s (set-up {record['vltk_setup_s']:.2f} s, training loop "
                         f"{ours['loop_s']:.2f} s, held-out checks {ours['eval_s']:.2f} s); {ours['step']} "
                         f"updates, nll {ours['nll']:.3f}")  # fmt: skip
            ratio_cell = (f"**{record['ratio']:.1f}x** ({record['ratio_without_checks']:.1f}x without the "
                          f"checks; loops only {record['ratio_loops']:.1f}x)")  # fmt: skip
        else:
            vltk_cell = f"not reached in {args.max_steps} updates (best nll {ours['best_nll']:.3f})"
            ratio_cell = "-"
        records.append(record)
        rows.append(
            f"| {seed} | {ref_s:.1f} s (set-up {record['reference_setup_s']:.2f} s, loop "
            f"{ref['loop_s']:.1f} s) | {ref['target']:.3f} ({ref['target'] / 0.6931:.2f} bpc) | {vltk_cell} "
            f"| {ratio_cell} |"
        )
        print(rows[-1], flush=True)
    ratios = [r["ratio"] for r in records if "ratio" in r]
    median = statistics.median(ratios) if ratios else float("nan")
    lines = "\n".join(rows)
    text = f"""Text: `python_source`, the first {args.chars:,} characters of this Python's stdlib source (held-out = the
validation split). Target = the numpy reference's held-out loss after {args.updates} updates (nats per
character). vltk: {args.cell.upper()} hidden {args.hidden}, embedding {args.embed}, {args.batch} streams x {args.seq}
characters, Adam {args.lr}, clip norm 5, fused kernel, torch threads {args.threads}; held-out checked every
{args.val_every} updates. **Times are wall times from process start, set-up included** (interpreter start, imports,
reading the text, for vltk also the model and the Trainer); each side in a fresh process, one after the other,
reference first; {machine()}.

| seed | numpy: {args.updates} updates from process start | target held-out nll | vltk: time to target from process start | speed-up |
|---|---|---|---|---|
{lines}

Speed-up from process start: {fmt_spread(ratios, ".1f", unit="x")} over {len(ratios)} seed(s) (mean ± sd
(min-max)); median {median:.1f}x. Target (issue 8): >= 10x sooner: {verdict(median, 10.0, fmt=".1f", unit="x")}.
"""  # noqa: E501
    publish(text, {"results": records, "median_ratio": median}, args.json)


if __name__ == "__main__":
    main()
