"""Training step time of vltk's text encoder vs torch's packed-sequence LSTM, side by side in one process.

    python benchmarks/text_encoder_speed.py                      # dialog-history sizes, 5 repeats
    python benchmarks/text_encoder_speed.py --batch 64 --steps 20  # VQA-question sizes

``RNNTextEncoder`` runs a unidirectional RNN over the padded batch and reads each row's state at its last
real step; the reference packs the batch (``pack_padded_sequence``), the textbook way. Both compute the same
outputs (checked here). On CPU, torch's packed RNN backward slices the packed input once per time step and
zero-fills a full-size gradient for every slice, so its cost grows with ``T * sum(lengths)``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _report import invocation, machine, publish
from torch.nn.utils.rnn import pack_padded_sequence

from vltk.encoders.text import RNNTextEncoder


def packed_final(encoder: RNNTextEncoder, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The reference: the same weights run over a packed batch; the last layer's final state ``[B, H]``."""
    embedded = encoder.embedding(tokens)  # [B, T, E]
    packed = pack_padded_sequence(embedded, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    _, hidden = encoder.rnn(packed)
    h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # [layers, B, H]
    return h_n[-1]  # [B, H]


def timed_step(forward) -> float:
    start = time.perf_counter()
    forward().sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=320, help="sequences (32 dialogs x 10 rounds)")
    parser.add_argument("--steps", type=int, default=86, help="padded length T (dialog history)")
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-append", action="store_true", help="print only; do not touch BENCHMARKS.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = RNNTextEncoder(500, embed_dim=args.embed_dim, hidden_dim=args.hidden_dim, cell=args.cell)
    lengths = torch.randint(args.steps // 8, args.steps + 1, (args.batch,))
    lengths[0] = args.steps
    tokens = torch.randint(4, 500, (args.batch, args.steps))
    tokens[torch.arange(args.steps)[None, :] >= lengths[:, None]] = 0
    with torch.no_grad():
        same = torch.allclose(
            encoder(tokens, lengths).final, packed_final(encoder, tokens, lengths), atol=1e-5
        )
    vltk_times, packed_times = [], []
    for _ in range(args.repeats):  # interleaved, so load changes hit both
        vltk_times.append(timed_step(lambda: encoder(tokens, lengths).final))
        packed_times.append(timed_step(lambda: packed_final(encoder, tokens, lengths)))
    vltk_s, packed_s = statistics.median(vltk_times), statistics.median(packed_times)
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    table = (
        "| sequences x T | cell | vltk (padded) s/step | packed s/step | speed-up | same outputs |\n"
        "|---|---|---|---|---|---|\n"
        f"| {args.batch} x {args.steps} | {args.cell} {args.embed_dim}->{args.hidden_dim} | {vltk_s:.3f} | "
        f"{packed_s:.3f} | **{packed_s / vltk_s:.1f}x** | {same} |"
    )
    print(table)
    text = (
        f"\n## Text encoder training step ({time.strftime('%Y-%m-%d')})\n\n"
        f"`{invocation()}` on {machine()}, {torch.get_num_threads()} thread(s), load average {load}; "
        f"forward + backward, median of {args.repeats} interleaved repeats.\n\n{table}\n"
    )
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
