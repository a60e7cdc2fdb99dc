"""Decoder training throughput: vltk's Show, Attend and Tell decoder vs a straightforward per-step version.

The straightforward version is the same model with the same weights written the way many tutorials write
it: at every time step it projects the image grid for the attention again, and runs the vocabulary layer and
the loss inside the loop. vltk's decoder projects the keys once per image (``attention.precompute``) and runs
the vocabulary layer and the loss once on all steps after the loop. Both compute the same loss (checked).

Also reports the throughput as a fraction of the machine's matmul FLOP/s, measured in the same run, counting
the decoder's FLOPs per token (multiply-adds x 2, training = 3 x forward).

Both versions run in this process, interleaved (vltk, per-step, matmul peak, per-step, vltk, ...); the rates
are of the median repeat (the best repeat's speed-up is shown too).

    python benchmarks/decoder_throughput.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, publish, verdict  # noqa: E402

from vltk.decoders import ShowAttendTellDecoder  # noqa: E402
from vltk.decoders.base import cell_step  # noqa: E402
from vltk.decoders.show_attend_tell import masked_mean  # noqa: E402
from vltk.types import ImageFeatures  # noqa: E402

VOCAB, FEATURE, EMBED, HIDDEN, ATTENTION = 10_000, 512, 512, 512, 512
BATCH, STEPS = 64, 16


def per_step_loss(decoder: ShowAttendTellDecoder, grid, tokens, targets):
    """The same model, step by step: key projection, vocabulary layer and loss inside the loop."""
    mean = masked_mean(grid, None)  # [B, D]
    h, c = torch.tanh(decoder.init_h(mean)), torch.tanh(decoder.init_c(mean))  # [B, H]
    attention = decoder.attention
    total = grid.new_zeros(())
    for t in range(tokens.shape[1]):
        embedded = decoder.embedding(tokens[:, t])  # [B, E]
        projected = attention.key_proj(grid)  # [B, N, A]  (recomputed at every step)
        scores = attention.score(torch.tanh(projected + attention.query_proj(h).unsqueeze(1))).squeeze(-1)
        weights = torch.softmax(scores, dim=-1)  # [B, N]
        context = torch.bmm(weights.unsqueeze(1), grid).squeeze(1)  # [B, D]
        gate = torch.sigmoid(decoder.f_beta(h))  # [B, 1]
        context = gate * context  # [B, D]
        h, c = cell_step(decoder.rnn, torch.cat([embedded, context], dim=-1), h, c)  # [B, H]
        deep = torch.tanh(
            embedded + decoder.hidden_to_output(h) + decoder.context_to_output(context)
        )  # [B, E]
        logits = decoder.output(deep)  # [B, V]  (inside the loop)
        total = total + F.cross_entropy(logits, targets[:, t], reduction="sum")
    return total / targets.numel()


def vltk_loss(decoder: ShowAttendTellDecoder, grid, tokens, targets):
    features = ImageFeatures(grid=grid, pooled=grid.mean(1), mask=None, grid_size=None)
    logits = decoder.teacher_forcing(features, tokens).logits  # [B, T, V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def training_flops_per_token(regions: int) -> float:
    """Forward multiply-adds per token x 2 FLOPs x 3 (forward + backward)."""
    attention = (
        HIDDEN * ATTENTION + regions * ATTENTION + regions * FEATURE + regions * FEATURE * ATTENTION / STEPS
    )
    cell = 4 * HIDDEN * (EMBED + FEATURE + HIDDEN)
    output = HIDDEN * EMBED + FEATURE * EMBED + EMBED * VOCAB
    init = 2 * FEATURE * HIDDEN / STEPS
    return 3 * 2 * (attention + HIDDEN + cell + output + init)


def matmul_flops(size: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def time_training_step(loss_fn, decoder, grid, tokens, targets) -> float:
    start = time.perf_counter()
    loss = loss_fn(decoder, grid, tokens, targets)
    loss.backward()
    decoder.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    add_json_argument(parser)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows, data = [], {}
    for side in (7, 14):
        regions = side * side
        decoder = ShowAttendTellDecoder(VOCAB, FEATURE, embed_dim=EMBED, hidden_dim=HIDDEN, dropout=0.0,
                                        attention={"name": "additive", "dim": ATTENTION})  # fmt: skip
        grid = torch.randn(BATCH, regions, FEATURE)  # [B, N, D]
        tokens = torch.randint(4, VOCAB, (BATCH, STEPS))  # [B, T]
        targets = torch.randint(4, VOCAB, (BATCH, STEPS))  # [B, T]
        with torch.no_grad():
            same = torch.allclose(
                per_step_loss(decoder, grid, tokens, targets),
                vltk_loss(decoder, grid, tokens, targets),
                atol=1e-5,
            )  # noqa: E501
        assert same, "the two implementations must compute the same loss"
        times = {"vltk": [], "per-step": []}
        peaks = []
        time_training_step(vltk_loss, decoder, grid, tokens, targets)  # warm-up, untimed
        time_training_step(per_step_loss, decoder, grid, tokens, targets)
        for round_index in range(args.repeats):  # interleaved, so machine noise hits all three alike
            order = ("vltk", "per-step") if round_index % 2 == 0 else ("per-step", "vltk")
            for arm in order:
                loss_fn = vltk_loss if arm == "vltk" else per_step_loss
                times[arm].append(time_training_step(loss_fn, decoder, grid, tokens, targets))
            peaks.append(matmul_flops())
        tokens_per_step = BATCH * STEPS
        vltk_rate = tokens_per_step / statistics.median(times["vltk"])
        naive_rate = tokens_per_step / statistics.median(times["per-step"])
        peak = statistics.median(peaks)
        fraction = vltk_rate * training_flops_per_token(regions) / peak
        best = min(times["per-step"]) / min(times["vltk"])
        rows.append((side, vltk_rate, naive_rate, peak, fraction, best))
        data[f"{side}x{side}"] = {"times": times, "peaks": peaks}
        print(f"{side}x{side}: vltk {vltk_rate:.0f} tok/s, per-step {naive_rate:.0f} tok/s, "
              f"peak {peak / 1e9:.1f} GFLOP/s, {fraction:.0%} of peak")  # fmt: skip
    targets = {7: 2.0, 14: 3.0}
    table = "\n".join(
        f"| {s}x{s} | {v:,.0f} | {n:,.0f} | **{v / n:.2f}x** ({b:.2f}x) | {p / 1e9:.1f} | "
        f"{v * training_flops_per_token(s * s) / 1e9:.1f} | **{f:.0%}** | >= {targets[s]:.0f}x: "
        f"{verdict(v / n, targets[s], fmt='.2f', unit='x')}; >= 40% of peak: "
        f"{verdict(f * 100, 40.0, fmt='.0f', unit='%')} |"
        for s, v, n, p, f, b in rows
    )
    text = (
        f"Show, Attend and Tell decoder, V={VOCAB:,}, D={FEATURE}, E={EMBED}, H={HIDDEN}, A={ATTENTION}, "
        f"batch {BATCH} x {STEPS} tokens, forward + backward, {torch.get_num_threads()} torch thread(s); "
        f"median of {args.repeats} interleaved repeats (the best repeats' speed-up in brackets); the matmul "
        "peak is the median of the best 1024^3 fp32 `torch.mm` of each repeat.\n"
        "\n"
        "| grid | vltk tokens/s | per-step tokens/s | speed-up | matmul GFLOP/s | vltk GFLOP/s | of peak | "
        "targets (issue 7) |\n|---|---|---|---|---|---|---|---|\n" + table + "\n"
    )
    publish(text, data, args.json)


if __name__ == "__main__":
    main()
