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
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, publish  # noqa: E402

from vltk.encoders.text import RNNTextEncoder  # noqa: E402


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
    add_json_argument(parser)
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
    timed_step(lambda: encoder(tokens, lengths).final)  # warm-up, untimed
    timed_step(lambda: packed_final(encoder, tokens, lengths))
    for round_index in range(args.repeats):  # interleaved (A B, B A, ...), so load changes hit both
        arms = [(vltk_times, lambda: encoder(tokens, lengths).final),
                (packed_times, lambda: packed_final(encoder, tokens, lengths))]  # fmt: skip
        for times, forward in arms if round_index % 2 == 0 else arms[::-1]:
            times.append(timed_step(forward))
    vltk_s, packed_s = statistics.median(vltk_times), statistics.median(packed_times)
    best = min(packed_times) / min(vltk_times)
    table = (
        "| sequences x T | cell | vltk (padded) s/step, median | packed s/step, median | speed-up | same "
        "outputs |\n"
        "|---|---|---|---|---|---|\n"
        f"| {args.batch} x {args.steps} | {args.cell} {args.embed_dim}->{args.hidden_dim} | {vltk_s:.3f} | "
        f"{packed_s:.3f} | **{packed_s / vltk_s:.1f}x** ({best:.1f}x best of {args.repeats}) | {same} |"
    )
    text = (
        "`RNNTextEncoder` (padded batch, state read at each row's last step) vs torch's packed-sequence "
        f"LSTM, same weights, forward + backward, {torch.get_num_threads()} torch thread(s); both in one "
        f"process, one untimed warm-up each, median of {args.repeats} interleaved repeats. No target of its "
        "own.\n"
        "\n"
        f"{table}\n"
    )
    publish(text, {"vltk": vltk_times, "packed": packed_times, "same_outputs": bool(same)}, args.json)


if __name__ == "__main__":
    main()
