"""Ranking 100 candidate answers with the generative dialog decoder: the chunked, length-sorted
``GenerativeDecoder.score_options`` vs the naive computation (every round x option sequence teacher-forced
at the batch's padded width in one go, ``[M*O, Ta, V]`` logits).

Random weights and random tokens: speed and memory do not depend on what the model learnt. Two sizes:
``shapes`` (the built-in shapes_dialog sizes: V=100, E=64, H=256) and ``visdial`` (VisDial v1.0: V=11319,
E=300, H=512); answer lengths follow VisDial's (mostly 1-4 words, a few up to 20), padded to the longest.
The naive computation is only run where its logits fit in memory.

Times: both ways in this process, interleaved (vltk, naive, naive, vltk, ...), best and median of
``--repeats``. Memory: the peak RSS growth of one call, each way in a fresh process (a per-process figure).

    python benchmarks/dialog_ranking_speed.py [--rounds 320] [--visdial-rounds 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, best_median, interleaved, peak_rss_mib, publish  # noqa: E402

from vltk.tasks.dialog.decoders import GenerativeDecoder  # noqa: E402

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
    return peak_rss_mib()


def current_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def setup(name: str, rounds: int, options: int = 100):
    """A random decoder of the ``name`` sizes and ``rounds`` rounds x ``options`` candidate answers."""
    size = SIZES[name]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    decoder = GenerativeDecoder(
        size["vocab"], size["fused"], embed_dim=size["embed"], hidden_dim=size["hidden"]
    ).eval()
    unique = rounds * options // 2 + 1
    tokens, lengths, option_rows = candidates(rounds, options, unique, size["vocab"], g)
    fused = torch.randn(rounds, size["fused"], generator=g)  # [M, F]
    return decoder, fused, tokens, lengths, option_rows


def naive_fits(name: str, rounds: int, width: int, options: int = 100) -> tuple[bool, float]:
    """Whether the naive pass's float32 logits fit (under 4 GiB here), and their GiB."""
    gib = rounds * options * (width - 1) * SIZES[name]["vocab"] * 4 / 2**30
    return gib < 4.0, gib


@torch.no_grad()
def memory(name: str, rounds: int, method: str) -> float:
    """Peak RSS growth (MiB) of one call of ``method``; run in a fresh process so that the peak is its own."""
    decoder, fused, tokens, lengths, option_rows = setup(name, rounds)
    base = current_mib()
    if method == "naive":
        naive(decoder, fused, tokens, lengths, option_rows)
    else:
        decoder.score_options(fused, tokens, lengths, option_rows)
    return max(0.0, peak_mib() - base)


@torch.no_grad()
def timings(name: str, rounds: int, repeats: int) -> dict:
    """Both ways side by side in this process (the naive one only where its logits fit)."""
    decoder, fused, tokens, lengths, option_rows = setup(name, rounds)
    fits, gib = naive_fits(name, rounds, tokens.shape[1])
    arms = {"vltk": lambda: decoder.score_options(fused, tokens, lengths, option_rows)}
    if fits:
        arms["naive"] = lambda: naive(decoder, fused, tokens, lengths, option_rows)
        # The two ways must agree (the ranking test checks this against brute force too).
        assert torch.allclose(arms["naive"](), arms["vltk"](), atol=1e-3)
    times = interleaved(arms, repeats)
    return {"Ta": int(tokens.shape[1]), "naive_gib": gib, **{arm: best_median(t) for arm, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=320, help="rounds M = B * R")
    parser.add_argument("--visdial-rounds", type=int, default=32, help="a smaller batch at VisDial sizes")
    parser.add_argument("--repeats", type=int, default=3)
    add_json_argument(parser)
    args = parser.parse_args()
    jobs = [("shapes", args.rounds), ("visdial", args.visdial_rounds), ("visdial", args.rounds)]
    rows, data = [], {}
    for name, rounds in jobs:
        result = timings(name, rounds, args.repeats)
        for method in ("vltk", "naive"):
            if method in result:
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    result[method]["peak_rss_growth_mib"] = pool.apply(memory, (name, rounds, method))
        data[f"{name} {rounds}"] = result
        head = f"| {name} | {rounds} x 100 | {result['Ta']} |"
        for method, label in (("vltk", "vltk `score_options`"), ("naive", "naive, one pass")):
            if method not in result:
                rows.append(f"{head} {label} | not run: {result['naive_gib']:.1f} GiB of logits | | | |")
                continue
            r = result[method]
            rows.append(
                f"{head} {label} | {r['best']:.2f} / {r['median']:.2f} | {rounds / r['median']:.1f} | "
                f"{r['peak_rss_growth_mib']:.0f} |"
            )
        if "naive" in result:
            ratio = result["naive"]["median"] / result["vltk"]["median"]
            rows[-1] += f" {ratio:.1f}x |"
            rows[-2] += " |"
        else:
            rows[-2] += " |"
        print("\n".join(rows[-2:]), flush=True)
    text = (
        "Random weights and tokens (speed and memory do not depend on what the model learnt); answer "
        "lengths follow VisDial's (mostly 1-4 words, a few up to 20), padded to the batch's longest. Both "
        f"ways in one process, {args.repeats} interleaved repeats; peak RSS growth of one call, each way in "
        "a fresh process; the results of both ways agree to 1e-3. No target of its own (issue 4: keep "
        "memory flat).\n"
        "\n"
        "| sizes | rounds x options | Ta | method | seconds, best / median | rounds/s (median) | peak RSS "
        "growth (MiB) | naive / vltk (medians) |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    publish(text, data, args.json)


if __name__ == "__main__":
    main()
