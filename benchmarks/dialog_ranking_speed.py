"""Ranking 100 candidate answers with the generative dialog decoder: the chunked, length-sorted
``GenerativeDecoder.score_options`` vs the naive computation (every round x option sequence teacher-forced
at the batch's padded width in one go, ``[M*O, Ta, V]`` logits).

Random weights and random tokens: speed and memory do not depend on what the model learnt. Two sizes:
``shapes`` (the built-in shapes_dialog sizes: V=100, E=64, H=256) and ``visdial`` (VisDial v1.0: V=11319,
E=300, H=512); answer lengths follow VisDial's (mostly 1-4 words, a few up to 20), padded to the longest.
The naive computation is only run where its logits fit in memory.

    python benchmarks/dialog_ranking_speed.py [--rounds 320] [--visdial-rounds 32] [--no-append]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import invocation, machine, publish  # noqa: E402

from vltk.models.dialog_decoders import GenerativeDecoder  # noqa: E402

START, END, PAD = 1, 2, 0
SIZES = {
    "shapes": {"vocab": 100, "embed": 64, "hidden": 256, "fused": 256},
    "visdial": {"vocab": 11319, "embed": 300, "hidden": 512, "fused": 512},
}


def candidates(rounds: int, options: int, unique: int, vocab: int, g: torch.Generator):
    words = torch.distributions.Geometric(probs=torch.tensor(1 / 3)).sample((unique,)).long() + 1  # [U]
    words = words.clamp(max=20)
    lengths = words + 2  # [U] <start> .. <end>
    tokens = torch.randint(3, vocab, (unique, int(lengths.max())), generator=g)  # [U, Ta]
    tokens[:, 0] = START
    for u, n in enumerate(lengths.tolist()):
        tokens[u, n - 1] = END
        tokens[u, n:] = PAD
    return tokens, lengths, torch.randint(0, unique, (rounds, options), generator=g)  # [M, O]


def naive(decoder: GenerativeDecoder, fused, tokens, lengths, options):
    M, n_options = options.shape
    rows = options.reshape(-1)  # [M*O]
    answers = tokens[rows]  # [M*O, Ta]
    logits = decoder.answer_logits(fused.repeat_interleave(n_options, dim=0), answers)  # [M*O, Ta-1, V]
    logprobs = torch.log_softmax(logits, dim=-1).gather(2, answers[:, 1:, None]).squeeze(-1)  # [M*O, Ta-1]
    mask = torch.arange(1, answers.shape[1])[None, :] < lengths[rows][:, None]  # [M*O, Ta-1]
    return (logprobs * mask).sum(1).view(M, n_options)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@torch.no_grad()
def measure(name: str, rounds: int, method: str, options: int = 100) -> str:
    """One row of the table; run in a fresh process so that the peak RSS is this method's own."""
    size = SIZES[name]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    decoder = GenerativeDecoder(
        size["vocab"], size["fused"], embed_dim=size["embed"], hidden_dim=size["hidden"]
    ).eval()
    unique = rounds * options // 2 + 1
    tokens, lengths, option_rows = candidates(rounds, options, unique, size["vocab"], g)
    fused = torch.randn(rounds, size["fused"], generator=g)  # [M, F]
    head = f"| {name} | {rounds} x {options} | {tokens.shape[1]} |"
    if method == "naive" and name == "visdial":
        elements = rounds * options * (tokens.shape[1] - 1) * size["vocab"]
        return f"{head} naive, one pass | not run: {elements * 4 / 2**30:.1f} GiB of logits | | |"
    base = current_mib()
    start = time.perf_counter()
    if method == "naive":
        scores = naive(decoder, fused, tokens, lengths, option_rows)
        label = "naive, one pass"
    else:
        scores = decoder.score_options(fused, tokens, lengths, option_rows)
        label = "vltk `score_options`"
    seconds = time.perf_counter() - start
    growth = max(0.0, peak_mib() - base)
    if method == "naive":
        # The two ways must agree (the ranking test checks this against brute force too).
        assert torch.allclose(scores, decoder.score_options(fused, tokens, lengths, option_rows), atol=1e-3)
    return f"{head} {label} | {seconds:.2f} | {rounds / seconds:.1f} | {growth:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=320, help="rounds M = B * R at shapes sizes")
    parser.add_argument("--visdial-rounds", type=int, default=32, help="rounds M at VisDial sizes")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    # Each size in a fresh process, so that its peak RSS is its own.
    jobs = [
        ("shapes", args.rounds, "vltk"),
        ("shapes", args.rounds, "naive"),
        ("visdial", args.visdial_rounds, "vltk"),
        ("visdial", args.rounds, "vltk"),
        ("visdial", args.rounds, "naive"),
    ]
    rows = []
    for job in jobs:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            rows.append(pool.apply(measure, job))
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"\n### Generative dialog decoder: ranking 100 options ({date}, {machine()})\n\n"
        f"`{invocation()}`; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work "
        "shared the machine). Random weights and tokens; the results of both ways agree to 1e-3.\n\n"
        "| sizes | rounds x options | Ta | method | seconds | rounds/s | peak RSS growth (MiB) |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
