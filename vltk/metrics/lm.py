"""Language-model metrics: bits per character (symbol) and perplexity, summed exactly over a split.

Both come from the total negative log-likelihood (in nats) of the predicted symbols and their count:
``bpc = nll / count / ln 2`` and ``perplexity = exp(nll / count)``. At char level a symbol is a character,
so ``bpc`` is the usual bits per character (Graves 2013; Karpathy et al. 2016); at word level it is bits per
word and ``perplexity`` is the usual word perplexity (Zaremba et al. 2014). Under DDP the sums are reduced
over ranks; every rank holds disjoint streams of the split, so nothing is counted twice.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

METRIC_NAMES = ("bpc", "perplexity", "nll")


def bits_per_symbol(nll_nats: float, count: int) -> float:
    """Mean bits per symbol from a total negative log-likelihood in nats."""
    return nll_nats / max(count, 1) / math.log(2)


def perplexity(nll_nats: float, count: int) -> float:
    """``exp`` of the mean negative log-likelihood (nats) per symbol."""
    return math.exp(min(nll_nats / max(count, 1), 700.0))


class LanguageModelMetrics:
    """Accumulates the negative log-likelihood of every predicted symbol of a split."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.nll = 0.0
        self.count = 0

    def update(self, nll_sum: Tensor | float, count: int) -> None:
        """Add a batch: ``nll_sum`` is the summed negative log-likelihood (nats) of ``count`` symbols."""
        self.nll += float(nll_sum)
        self.count += int(count)

    def totals(self) -> tuple[float, int]:
        """``(nll, count)`` summed over every rank."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            backend = torch.distributed.get_backend()
            device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"
            sums = torch.tensor([self.nll, float(self.count)], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(sums)
            return float(sums[0]), int(sums[1])
        return self.nll, self.count

    def compute(self) -> dict[str, float]:
        nll, count = self.totals()
        return {
            "bpc": bits_per_symbol(nll, count),
            "perplexity": perplexity(nll, count),
            "nll": nll / max(count, 1),
        }
