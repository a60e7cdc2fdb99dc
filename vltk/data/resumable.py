"""A training order that a resumed run can continue exactly where the interrupted one stopped.

PyTorch's ``RandomSampler`` draws its permutation from the global RNG when the epoch's iterator is created,
so a run resumed in the middle of an epoch would see a different order, and re-see the examples it had
already trained on. :class:`ResumableRandomSampler` draws each epoch's permutation from ``(seed, epoch)``
alone and can start that permutation part-way through (``resume_at``), which is all a resumed run needs:
the step counters, weights, optimiser and RNG states come from the checkpoint
(``vltk.tasks.reliability.ResumeState`` saves and restores the position).

Under DDP, Lightning wraps this sampler in ``DistributedSamplerWrapper``, which forwards ``set_epoch`` and
shards the order by rank; skipping ``batches * batch_size * world_size`` items of the global order then gives
every rank the rest of its shard (the padding of the last, uneven batch may differ).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)

ORDER_CHUNK = 65_536  # items of an epoch's order turned into Python ints at a time


class ResumableRandomSampler(Sampler[int]):
    """A fresh random permutation per epoch, a function of ``(seed, epoch)`` only, resumable mid-epoch.

    Args:
        num_items: size of the dataset.
        seed: base seed; epoch ``e`` uses the permutation of ``torch.Generator().manual_seed(seed + e)``
            (scrambled so that neighbouring seeds do not give related orders).
    """

    def __init__(self, num_items: int, *, seed: int = 0) -> None:
        if num_items < 0:
            raise ValueError(f"num_items must be >= 0, got {num_items}")
        self.num_items = num_items
        self.seed = seed
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, items of that epoch already consumed)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch (directly, or through its DDP wrapper)."""
        self.epoch = epoch

    def resume_at(self, epoch: int, items_done: int) -> None:
        """Start epoch ``epoch`` after its first ``items_done`` items (they were trained on before)."""
        if not 0 <= items_done <= self.num_items:
            raise ValueError(f"items_done must be in [0, {self.num_items}], got {items_done}")
        self.epoch = epoch
        self._resume = (epoch, items_done)
        logger.info("training order resumes at epoch %d after %d items", epoch, items_done)

    def permutation(self, epoch: int) -> list[int]:
        """The full order of ``epoch`` (the same on every call, every process, every run)."""
        return self._order(epoch).tolist()

    def _order(self, epoch: int) -> torch.Tensor:
        """:meth:`permutation` as an int64 tensor ``[num_items]`` (8 bytes an item, where a list of Python
        ints takes 36)."""
        generator = torch.Generator()
        generator.manual_seed((self.seed * 1_000_003 + epoch * 7_919) % (2**63 - 1))
        return torch.randperm(self.num_items, generator=generator)

    def _items_to_skip(self) -> int:
        if self._resume is not None and self._resume[0] == self.epoch:
            return self._resume[1]
        return 0

    def __iter__(self) -> Iterator[int]:
        # Re-iterating the same epoch (Lightning may create the iterator twice on a restart) skips the same
        # items again; the skip only ever applies to the epoch it was recorded for.
        # In chunks: a million-item epoch never becomes a million Python ints at once.
        for chunk in self._order(self.epoch)[self._items_to_skip() :].split(ORDER_CHUNK):
            yield from chunk.tolist()

    def __len__(self) -> int:
        # The full epoch, even when resuming: Lightning counts the batches already done itself and stops the
        # epoch after len(loader) batches in all.
        return self.num_items


class ResumableOrderMixin:
    """What a DataModule needs for exact mid-epoch resume: ``shuffle_seed`` (set by the runner to the run's
    seed), ``train_sampler`` and ``resume_train_order`` (called by ``vltk.tasks.reliability.ResumeState``).
    Call :meth:`training_sampler` when building the training DataLoader."""

    shuffle_seed: int = 0
    train_sampler: ResumableRandomSampler | None = None
    _resume_order: tuple[int, int] | None = None

    def resume_train_order(self, epoch: int, items_done: int) -> None:
        """Continue the training order of ``epoch`` after ``items_done`` items (called on resume)."""
        self._resume_order = (epoch, items_done)
        if self.train_sampler is not None:
            self.train_sampler.resume_at(epoch, items_done)

    def training_sampler(self, num_items: int) -> ResumableRandomSampler:
        """A fresh resumable order over ``num_items`` (positioned where a resume asked)."""
        sampler = ResumableRandomSampler(num_items, seed=self.shuffle_seed)
        if self._resume_order is not None:
            sampler.resume_at(*self._resume_order)
        self.train_sampler = sampler
        return sampler
