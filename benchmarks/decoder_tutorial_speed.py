"""The Show, Attend and Tell training step at sgrvinod's tutorial sizes: vltk vs the tutorial's algorithm.

The reference is sgrvinod/a-PyTorch-Tutorial-to-Image-Captioning (``models.py`` ``DecoderWithAttention``
and ``Attention``, ``train.py`` ``train``), restated here step by step: captions sorted by length, at step
``t`` only the ``batch_size_t`` captions still running, the image projection ``encoder_att(encoder_out)``
recomputed at every step, ReLU attention, a gate ``sigmoid(f_beta(h))`` of size ``D``, ``LSTMCell``,
``fc(dropout(h))`` inside the loop into a preallocated ``predictions`` tensor, ``pack_padded_sequence`` of
scores and targets, cross-entropy plus ``alpha_c * ((1 - alphas.sum(1)) ** 2).mean()``, backward, gradients
clamped to [-5, 5] (its ``clip_gradient``), ``Adam`` step, ``loss.item()``. Its top-5 accuracy bookkeeping is
left out (monitoring, not training).

The vltk arm is one training step of :class:`vltk.decoders.ShowAttendTellDecoder` as the captioning system
runs it: teacher forcing, cross-entropy over the real tokens, the doubly stochastic regulariser, backward,
gradient-norm clipping at 5, ``Adam``. The models are the papers' variants each code base implements (vltk:
tanh attention, a scalar gate, the deep output layer of Xu et al. eq. 7; the tutorial: ReLU attention, a
``D``-sized gate, ``fc(h)``); their matmul FLOPs per token are reported beside the speeds.

Sizes (the issue's reading of the tutorial): batch 32, 21 decoded tokens per caption (``max_len`` 20 + the
end token), vocabulary 5,000, embedding, attention, decoder and feature sizes 512, dropout 0.5, Adam at 4e-4,
``alpha_c`` 1; image grids 7x7 and 14x14 given as features (the encoder is not part of the step).

GEMM rate: one vltk step runs under the PyTorch profiler to list its matrix products (``mm``, ``addmm``,
``bmm``, with their shapes); each distinct shape is then timed alone with the same threads (contiguous
operands), and the step's *GEMM time* is the sum over its products of the time each takes alone. The
fraction of the matmul rate is that GEMM time over the measured step time (1.0 = the step is nothing but its
matrix products, each at the speed this machine reaches at that shape).

Both arms run in this process, interleaved; the rates are of the median repeat (the best repeats' ratio in
brackets).

    python benchmarks/decoder_tutorial_speed.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, interleaved, publish, verdict  # noqa: E402

from vltk.decoders import ShowAttendTellDecoder  # noqa: E402
from vltk.types import ImageFeatures  # noqa: E402

BATCH, DECODED, VOCAB, SIZE = 32, 21, 5000, 512
DROPOUT, LR, ALPHA_C, CLIP = 0.5, 4e-4, 1.0, 5.0
TARGETS = {7: 3.0, 14: 4.0}  # issue 19: speed-up over the tutorial's algorithm


class TutorialAttention(nn.Module):
    """The tutorial's ``Attention``: ``full_att(relu(encoder_att(a) + decoder_att(h)))``, softmax, weighted
    sum."""

    def __init__(self):
        super().__init__()
        self.encoder_att = nn.Linear(SIZE, SIZE)
        self.decoder_att = nn.Linear(SIZE, SIZE)
        self.full_att = nn.Linear(SIZE, 1)

    def forward(self, encoder_out: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        keys = self.encoder_att(encoder_out)  # [b, N, A]  (at every step, as the tutorial does)
        scores = self.full_att(torch.relu(keys + self.decoder_att(hidden).unsqueeze(1))).squeeze(2)  # [b, N]
        alpha = torch.softmax(scores, dim=1)  # [b, N]
        return (encoder_out * alpha.unsqueeze(2)).sum(dim=1), alpha  # [b, D], [b, N]


class TutorialDecoder(nn.Module):
    """The tutorial's ``DecoderWithAttention`` at one layer, with its initialisation of ``embedding`` and
    ``fc``."""

    def __init__(self):
        super().__init__()
        self.attention = TutorialAttention()
        self.embedding = nn.Embedding(VOCAB, SIZE)
        self.dropout = nn.Dropout(DROPOUT)
        self.decode_step = nn.LSTMCell(2 * SIZE, SIZE)
        self.init_h, self.init_c = nn.Linear(SIZE, SIZE), nn.Linear(SIZE, SIZE)
        self.f_beta = nn.Linear(SIZE, SIZE)
        self.fc = nn.Linear(SIZE, VOCAB)
        self.embedding.weight.data.uniform_(-0.1, 0.1)
        self.fc.weight.data.uniform_(-0.1, 0.1)
        self.fc.bias.data.zero_()

    def forward(self, encoder_out: Tensor, captions: Tensor, lengths: Tensor):
        """``encoder_out [B, N, D]``, ``captions [B, L]`` (start token first), ``lengths [B]`` with the start
        and end tokens."""
        lengths, order = lengths.sort(descending=True)
        encoder_out, captions = encoder_out[order], captions[order]  # [B, N, D], [B, L]
        embeddings = self.embedding(captions)  # [B, L, E]
        mean = encoder_out.mean(dim=1)  # [B, D]
        h, c = self.init_h(mean), self.init_c(mean)  # [B, H]
        decode_lengths = (lengths - 1).tolist()
        steps = max(decode_lengths)
        predictions = encoder_out.new_zeros(len(decode_lengths), steps, VOCAB)  # [B, T, V]
        alphas = encoder_out.new_zeros(len(decode_lengths), steps, encoder_out.shape[1])  # [B, T, N]
        for t in range(steps):
            running = sum(length > t for length in decode_lengths)
            context, alpha = self.attention(encoder_out[:running], h[:running])  # [b, D], [b, N]
            context = torch.sigmoid(self.f_beta(h[:running])) * context  # [b, D]
            h, c = self.decode_step(
                torch.cat([embeddings[:running, t], context], dim=1), (h[:running], c[:running])
            )  # [b, H]
            predictions[:running, t] = self.fc(self.dropout(h))  # [b, V]
            alphas[:running, t] = alpha
        return predictions, captions, decode_lengths, alphas


def tutorial_step(
    model: TutorialDecoder, optimizer, grid: Tensor, captions: Tensor, lengths: Tensor
) -> float:
    """``train.py``'s body for one batch (without the top-5 accuracy)."""
    scores, sorted_captions, decode_lengths, alphas = model(grid, captions, lengths)
    targets = sorted_captions[:, 1:]  # [B, T]
    scores = pack_padded_sequence(scores, decode_lengths, batch_first=True).data  # [tokens, V]
    targets = pack_padded_sequence(targets, decode_lengths, batch_first=True).data  # [tokens]
    loss = F.cross_entropy(scores, targets) + ALPHA_C * ((1.0 - alphas.sum(dim=1)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    for group in optimizer.param_groups:  # the tutorial's clip_gradient: clamp every gradient element
        for parameter in group["params"]:
            if parameter.grad is not None:
                parameter.grad.data.clamp_(-CLIP, CLIP)
    optimizer.step()
    return loss.item()


def vltk_decoder() -> ShowAttendTellDecoder:
    return ShowAttendTellDecoder(VOCAB, SIZE, embed_dim=SIZE, hidden_dim=SIZE, dropout=DROPOUT,
                                 attention={"name": "additive", "dim": SIZE})  # fmt: skip


def vltk_step(
    decoder: ShowAttendTellDecoder, optimizer, grid: Tensor, captions: Tensor, mask: Tensor
) -> float:
    """One step as ``tasks/captioning/system.py`` trains: teacher forcing, masked cross-entropy, the
    doubly stochastic regulariser, gradient-norm clipping, Adam."""
    features = ImageFeatures(grid=grid, pooled=grid.mean(1), mask=None, grid_size=None)
    output = decoder.teacher_forcing(features, captions[:, :-1])  # logits [B, T, V]
    targets, target_mask = captions[:, 1:], mask[:, 1:]  # [B, T]
    loss = F.cross_entropy(output.logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=0)
    attention = output.attention * target_mask.unsqueeze(-1)  # [B, T, N]
    loss = loss + ALPHA_C * ((1.0 - attention.sum(dim=1)) ** 2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(decoder.parameters(), CLIP)
    optimizer.step()
    return loss.item()


def matmul_products(step) -> Counter:
    """The ``mm``/``addmm``/``bmm`` calls of one run of ``step()``: ``{(op, shapes): count}``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    products: Counter = Counter()
    for event in prof.events():
        if event.name in ("aten::mm", "aten::addmm", "aten::bmm"):
            shapes = tuple(tuple(s) for s in event.input_shapes if s)
            products[(event.name, shapes)] += 1
    return products


def product_shapes(op: str, shapes: tuple) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The two matrix operands of a recorded product (``addmm``'s first input is the bias)."""
    return (shapes[1], shapes[2]) if op == "aten::addmm" else (shapes[0], shapes[1])


def product_flops(op: str, shapes: tuple) -> int:
    left, right = product_shapes(op, shapes)
    batch = left[0] if op == "aten::bmm" else 1
    return 2 * batch * left[-2] * left[-1] * right[-1]


def time_product(op: str, shapes: tuple, repeats: int = 20) -> float:
    """Median seconds of one product of these shapes, alone, contiguous operands."""
    left, right = (torch.randn(*s) for s in product_shapes(op, shapes))
    multiply = torch.bmm if op == "aten::bmm" else torch.mm
    for _ in range(3):
        multiply(left, right)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        multiply(left, right)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_time(products: Counter) -> tuple[float, float]:
    """``(seconds, FLOPs)`` of the step's matrix products, each at its own shape's speed alone."""
    seconds = sum(count * time_product(op, shapes) for (op, shapes), count in products.items())
    flops = sum(count * product_flops(op, shapes) for (op, shapes), count in products.items())
    return seconds, flops


def make_batch(side: int, generator: torch.Generator):
    grid = torch.randn(BATCH, side * side, SIZE, generator=generator)  # [B, N, D]
    captions = torch.randint(4, VOCAB, (BATCH, DECODED + 1), generator=generator)  # [B, L]
    lengths = torch.full((BATCH,), DECODED + 1)  # every caption at max_len: 21 decoded tokens
    mask = torch.ones(BATCH, DECODED + 1)  # [B, L]
    return grid, captions, lengths, mask


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    add_json_argument(parser)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows, data = [], {}
    for side in (7, 14):
        grid, captions, lengths, mask = make_batch(side, torch.Generator().manual_seed(side))
        tutorial, vltk = TutorialDecoder(), vltk_decoder()
        tutorial_optimizer = torch.optim.Adam(tutorial.parameters(), lr=LR)
        vltk_optimizer = torch.optim.Adam(vltk.parameters(), lr=LR)
        arms = {
            "vltk": partial(vltk_step, vltk, vltk_optimizer, grid, captions, mask),
            "tutorial": partial(tutorial_step, tutorial, tutorial_optimizer, grid, captions, lengths),
        }
        times = interleaved(arms, args.repeats, warmup=2)  # machine noise hits both alike
        vltk_products, tutorial_products = matmul_products(arms["vltk"]), matmul_products(arms["tutorial"])
        gemm_seconds, gemm_flops = gemm_time(vltk_products)
        tutorial_flops = sum(c * product_flops(op, s) for (op, s), c in tutorial_products.items())
        vltk_median, tutorial_median = statistics.median(times["vltk"]), statistics.median(times["tutorial"])
        row = {
            "side": side,
            "vltk_s": vltk_median,
            "tutorial_s": tutorial_median,
            "speedup": tutorial_median / vltk_median,
            "best_speedup": min(times["tutorial"]) / min(times["vltk"]),
            "gemm_s": gemm_seconds,
            "gemm_fraction": gemm_seconds / vltk_median,
            "vltk_gflop_per_token": gemm_flops / (BATCH * DECODED) / 1e9,
            "tutorial_gflop_per_token": tutorial_flops / (BATCH * DECODED) / 1e9,
            "vltk_gflops": gemm_flops / vltk_median / 1e9,
            "gemm_gflops": gemm_flops / gemm_seconds / 1e9,
            "products": len(vltk_products),
        }
        rows.append(row)
        data[f"{side}x{side}"] = {"times": times, **row}
        print(f"{side}x{side}: vltk {vltk_median * 1e3:.0f} ms, tutorial {tutorial_median * 1e3:.0f} ms, "
              f"{row['speedup']:.2f}x; GEMM time {gemm_seconds * 1e3:.0f} ms = "
              f"{row['gemm_fraction']:.0%} of the step", flush=True)  # fmt: skip
    table = "\n".join(
        f"| {r['side']}x{r['side']} | {r['tutorial_s'] * 1e3:.0f} | {r['vltk_s'] * 1e3:.0f} | "
        f"**{r['speedup']:.2f}x** ({r['best_speedup']:.2f}x) | "
        f"{verdict(r['speedup'], TARGETS[r['side']], fmt='.2f', unit='x')} | "
        f"{r['tutorial_gflop_per_token'] * 1e3:.1f} / {r['vltk_gflop_per_token'] * 1e3:.1f} | "
        f"{r['gemm_s'] * 1e3:.0f} ({r['gemm_gflops']:.0f} GFLOP/s) | {r['vltk_gflops']:.0f} | "
        f"**{r['gemm_fraction']:.0%}** |"
        for r in rows
    )
    text = (
        f"sgrvinod's tutorial sizes: batch {BATCH} x {DECODED} decoded tokens, vocabulary {VOCAB:,}, every "
        f"size {SIZE}, dropout {DROPOUT}, Adam {LR}, alpha_c {ALPHA_C}; one training step of the decoder "
        f"(features given), {torch.get_num_threads()} torch thread(s); median of {args.repeats} interleaved "
        "repeats (the best repeats' ratio in brackets). GEMM time: the step's own matrix products (from the "
        "profiler), each timed alone at its shape; of the rate: GEMM time / step time.\n"
        "\n"
        "| grid | tutorial ms/step | vltk ms/step | speed-up | target (issue 19) "
        "| MFLOP/token tutorial / vltk "
        "| vltk's GEMMs alone, ms | vltk GFLOP/s in the step | of the GEMM rate |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + table + "\n"
    )
    publish(text, data, args.json)


if __name__ == "__main__":
    main()
