"""Sharded streaming for corpora larger than memory: tar shards, a small index, and a reader that splits them
across DDP ranks and DataLoader workers with a shuffle buffer, so memory stays flat in the dataset size.

Layout of a shard directory (what ``vltk data shards`` writes)::

    shards.json        the index: per split, every shard's file name, samples and items (one entry per
                       shard, never one per sample), plus what the task records (its ``meta``)
    train-000000.tar   plain POSIX tar files in the WebDataset layout: the files of one sample share a
    train-000001.tar   key (``391895.jpg``, ``391895.json``), samples follow each other
    val-000000.tar
    ...                and what the task writes beside them (captioning: ``word_counts.json``)

A *sample* is one tar key (an image with its captions); it expands into *items*, the examples a loader
yields (captioning trains on one item per caption, evaluates on one per image). The index knows how many of
each every shard holds, which is all the reader needs to plan an epoch without reading the shards.

**Why WebDataset.** Of the two established libraries for this, WebDataset (``webdataset``) and LitData
(``litdata``): both read local files offline, but WebDataset's shards are plain tar files that ``tar``,
Python's ``tarfile`` and every WebDataset reader (in PyTorch, JAX or TensorFlow pipelines) read, while LitData
writes its own binary chunk format that only LitData reads; WebDataset pulls in two small packages
(``braceexpand``, ``pyyaml``) where LitData brings ``boto3``, ``requests``, ``obstore``, ``tifffile`` and
its cloud-streaming machinery. LitData balances ranks by itself; here the index does it (below), in a few
lines that make the splitting exact. vltk uses WebDataset's tar writer, its tar-to-sample grouping and its
shuffle buffer; the plan of which reader reads what is vltk's.

**Splitting.** Every epoch the shards are put in an order that depends only on ``(seed, epoch)`` (the same on
every rank), their items are laid end to end, and the ``world x workers`` readers (rank-major: reader
``rank * workers + worker``) take consecutive, equal ranges of it: every item exactly once per epoch, reader
sizes differing by at most one. A range may start or end inside a shard; the reader then reads past the
items before its start (the bytes, without decoding), at most one shard per reader per epoch. Under DDP every
reader is padded to the same size with the first items of the epoch (one at most, like
``DistributedSampler``'s padding), so every rank runs the same number of batches (a rank with fewer would
hang the others at the next gradient all-reduce); metrics de-duplicate by example id. Each reader shuffles
its items through a buffer of ``shuffle_buffer`` *undecoded* items (seeded by seed, epoch and reader) and
decodes them only when they leave it, so memory is the buffer, not the dataset. The order is a function of
the seed and the epoch alone, which lets a resumed run skip the batches it already trained on, in the same
order (:func:`round_robin_resume`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from vltk.errors import DataError

logger = logging.getLogger(__name__)

INDEX_FILE = "shards.json"
FORMAT = "vltk-shards"
FORMAT_VERSION = 1
INSTALL_HINT = "pip install 'vltk[stream]'"


def require_webdataset() -> Any:
    """The ``webdataset`` module, or a :class:`DataError` saying how to install it (one line)."""
    try:
        import webdataset
    except ImportError:
        raise DataError(f"sharded datasets need the webdataset package: {INSTALL_HINT}") from None
    return webdataset


# ------------------------------------------------------------------------------------------------ index
@dataclass(frozen=True)
class ShardInfo:
    """One tar file of a split: its name in the directory, its samples and the items they expand to."""

    file: str
    samples: int
    items: int


@dataclass
class ShardIndex:
    """``shards.json``: the shards of every split and what the task recorded about them.

    Attributes:
        directory: the shard directory.
        kind: what the samples are (``captions``), so a reader refuses another task's shards.
        splits: split name -> its shards, in the order they were written.
        meta: the task's own facts (the source dataset, the seed of the written order, ...).
    """

    directory: Path
    kind: str
    splits: dict[str, list[ShardInfo]]
    meta: dict[str, Any] = field(default_factory=dict)

    def samples(self, split: str) -> int:
        return sum(shard.samples for shard in self.splits.get(split, []))

    def items(self, split: str) -> int:
        return sum(shard.items for shard in self.splits.get(split, []))


def write_index(index: ShardIndex) -> Path:
    """Write ``shards.json`` atomically (written last, so a directory with an index is complete)."""
    path = index.directory / INDEX_FILE
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": index.kind,
        "splits": {name: [asdict(shard) for shard in shards] for name, shards in index.splits.items()},
        "meta": index.meta,
    }
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_index(directory: str | Path, kind: str) -> ShardIndex:
    """Read and check ``DIRECTORY/shards.json``: every listed shard must exist.

    Raises:
        DataError: the directory or its index is missing or malformed, it holds another kind of shards, or
            a shard file is missing (one line naming the path).
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: shard directory not found (write one with `vltk data shards`)")
    path = root / INDEX_FILE
    if not path.is_file():
        raise DataError(f"{root}: not a shard directory ({INDEX_FILE} is missing; write one with "
                        "`vltk data shards`)")  # fmt: skip
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            raise ValueError(f"format is {document.get('format')!r}, expected {FORMAT!r}")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {document.get('version')!r}, this vltk reads {FORMAT_VERSION}")
        splits = {
            str(name): [ShardInfo(str(s["file"]), int(s["samples"]), int(s["items"])) for s in shards]
            for name, shards in document["splits"].items()
        }
        index = ShardIndex(root, str(document["kind"]), splits, dict(document.get("meta", {})))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataError(f"{path}: unreadable shard index ({error})") from None
    if index.kind != kind:
        raise DataError(f"{root}: holds shards of {index.kind}, not {kind}")
    for shards in index.splits.values():
        for shard in shards:
            if not (root / shard.file).is_file():
                raise DataError(f"{root / shard.file}: shard listed in {path} not found")
    return index


# ----------------------------------------------------------------------------------------------- writer
class ShardWriter:
    """Write the samples of one split into tar shards of at most ``shard_size`` samples.

    Each shard is written under a temporary name and renamed when complete; tar headers carry a fixed
    time, so the same samples give byte-identical shards. Use as a context manager; :attr:`shards` lists
    what was written.

    Args:
        directory: the shard directory.
        split: the split name (shards are ``SPLIT-000000.tar``, ...).
        shard_size: samples per shard.
    """

    def __init__(self, directory: str | Path, split: str, shard_size: int) -> None:
        if shard_size < 1:
            raise DataError(f"shard size must be >= 1, got {shard_size}")
        self.wds = require_webdataset()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.shard_size = shard_size
        self.shards: list[ShardInfo] = []
        self._writer: Any = None
        self._samples = 0
        self._items = 0

    def write(self, sample: dict[str, Any], items: int) -> None:
        """Add one sample (``{"__key__": KEY, EXT: bytes or str, ...}``) that expands to ``items`` items."""
        if self._writer is None:
            name = f"{self.split}-{len(self.shards):06d}.tar"
            self._path = self.directory / name
            self._temporary = self.directory / f".{name}.tmp"
            self._writer = self.wds.TarWriter(str(self._temporary), encoder=False, mtime=0.0)
        self._writer.write(sample)
        self._samples += 1
        self._items += items
        if self._samples == self.shard_size:
            self._finish()

    def _finish(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        os.replace(self._temporary, self._path)
        self.shards.append(ShardInfo(self._path.name, self._samples, self._items))
        self._writer, self._samples, self._items = None, 0, 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if exc_info[0] is None:
            self._finish()
        elif self._writer is not None:  # an error: leave no half-written shard behind
            self._writer.close()
            self._temporary.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------- reader
@dataclass(frozen=True)
class Segment:
    """Items ``[start, stop)`` of one shard (item positions within the shard)."""

    shard: ShardInfo
    start: int
    stop: int


def _segments(shards: list[ShardInfo], units: list[int], start: int, stop: int) -> list[Segment]:
    """The pieces of shards that hold positions ``[start, stop)`` of the shards' items laid end to end."""
    pieces, offset = [], 0
    for shard, count in zip(shards, units):
        low, high = max(start, offset), min(stop, offset + count)
        if low < high:
            pieces.append(Segment(shard, low - offset, high - offset))
        offset += count
    return pieces


def reader_plan(
    shards: list[ShardInfo], units: list[int], reader: int, readers: int, *, pad: bool
) -> list[Segment]:
    """What reader ``reader`` of ``readers`` reads: its equal, consecutive range of the items of ``shards``
    (in this order, ``units[i]`` items in shard ``i``), plus, when ``pad``, the first items of the order
    it needs to reach ``ceil(total / readers)``."""
    total = sum(units)
    start, stop = total * reader // readers, total * (reader + 1) // readers
    plan = _segments(shards, units, start, stop)
    short = math.ceil(total / readers) - (stop - start) if pad and total else 0
    return plan + _segments(shards, units, 0, short)


def reader_size(total: int, reader: int, readers: int, *, pad: bool) -> int:
    """Items reader ``reader`` yields (see :func:`reader_plan`)."""
    if pad and total:
        return math.ceil(total / readers)
    return total * (reader + 1) // readers - total * reader // readers


def round_robin_resume(batches: list[int], done: int) -> tuple[list[int], list[int]]:
    """How a DataLoader's workers continue an epoch after its first ``done`` batches, in the same order.

    A DataLoader takes one batch from each worker in turn, starting at worker 0 and passing over workers
    that have finished (``batches[w]``: the batches of reader ``w``). Returns ``(skips, readers)``: reader
    ``w`` skips its first ``skips[w]`` batches, and DataLoader worker ``j`` reads for reader ``readers[j]``
    (the unfinished readers from the one whose turn is next, then the finished ones), so the resumed loader
    yields exactly the rest of the uninterrupted sequence.
    """
    skips, turn = [0] * len(batches), 0
    while done > 0 and any(s < b for s, b in zip(skips, batches)):
        if skips[turn] < batches[turn]:
            skips[turn] += 1
            done -= 1
        turn = (turn + 1) % len(batches)
    cyclic = [(turn + k) % len(batches) for k in range(len(batches))]
    unfinished = [w for w in cyclic if skips[w] < batches[w]]
    return skips, unfinished + [w for w in cyclic if w not in unfinished]


def _seed(*parts: int) -> int:
    value = 0
    for part in parts:
        value = (value * 1_000_003 + part * 7_919 + 1) % (2**61 - 1)
    return value


class StreamingShards(IterableDataset):
    """Batches streamed from the shards of one split, split across DDP ranks and DataLoader workers.

    Yields collated batches (use ``DataLoader(dataset, batch_size=None, num_workers=...)``); ``len()`` is the
    exact number of batches this rank yields in an epoch. See the module docstring for the plan.

    Args:
        directory: the shard directory.
        shards: the split's shards (from :func:`read_index`).
        expand: ``sample -> items``: a sample (``{"__key__", "__url__", EXT: bytes, ...}``) to its items,
            undecoded (cheap: they wait in the shuffle buffer).
        decode: ``item -> example`` (the image decoded and transformed, the caption encoded, ...), called
            once an item leaves the shuffle buffer.
        collate: ``examples -> batch``.
        batch_size: examples per batch.
        training: count ``ShardInfo.items`` (else one item per sample: ``ShardInfo.samples``), shuffle the
            shard order every epoch and the items through the buffer.
        shuffle_buffer: items held for shuffling, per reader (``0``: no buffer).
        seed: the base of every random order.
        rank, world: this DDP rank and the number of ranks.
        num_workers: the DataLoader's workers (``0``: the main process reads).
        epoch: the epoch whose order is read; ``epoch_source`` (called when iterating, or when the dataset
            is sent to worker processes) overrides it, e.g. ``lambda: trainer.current_epoch``.
        batches_to_skip: ``() -> batches`` of this epoch already trained on (a resumed run), read like
            ``epoch_source``.
    """

    def __init__(
        self,
        directory: str | Path,
        shards: list[ShardInfo],
        *,
        expand: Callable[[dict[str, Any]], list[Any]],
        decode: Callable[[Any], Any],
        collate: Callable[[list[Any]], Any],
        batch_size: int,
        training: bool,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 0,
        epoch: int = 0,
        epoch_source: Callable[[], int] | None = None,
        batches_to_skip: Callable[[], int] | None = None,
    ) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in [0, {world})")
        self.directory = Path(directory)
        self.shards = list(shards)
        self.expand, self.decode, self.collate = expand, decode, collate
        self.batch_size = batch_size
        self.training = training
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank, self.world = rank, world
        self.num_workers = num_workers
        self.epoch = epoch
        self.epoch_source = epoch_source
        self.batches_to_skip = batches_to_skip
        self._skip = 0

    def __getstate__(self) -> dict[str, Any]:
        # Sent to worker processes (spawn): resolve the callables into numbers here, in the main process.
        state = self.__dict__.copy()
        state["epoch"], state["_skip"] = self.current_epoch(), self._batches_to_skip()
        state["epoch_source"] = state["batches_to_skip"] = None
        return state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def current_epoch(self) -> int:
        return self.epoch_source() if self.epoch_source is not None else self.epoch

    def _batches_to_skip(self) -> int:
        return self.batches_to_skip() if self.batches_to_skip is not None else self._skip

    # ---- the plan -------------------------------------------------------------------------------------

    @property
    def readers_per_rank(self) -> int:
        return max(1, self.num_workers)

    def _units(self, shards: list[ShardInfo]) -> list[int]:
        return [shard.items if self.training else shard.samples for shard in shards]

    def epoch_order(self, epoch: int) -> list[ShardInfo]:
        """The shards in the order of ``epoch`` (training: shuffled by ``(seed, epoch)``; else as written)."""
        order = list(self.shards)
        if self.training:
            random.Random(_seed(self.seed, epoch)).shuffle(order)
        return order

    def worker_batches(self) -> list[int]:
        """Batches each of this rank's readers yields in an epoch."""
        total = sum(self._units(self.shards))
        readers = self.world * self.readers_per_rank
        first = self.rank * self.readers_per_rank
        sizes = [reader_size(total, first + w, readers, pad=self.world > 1)
                 for w in range(self.readers_per_rank)]  # fmt: skip
        return [math.ceil(size / self.batch_size) for size in sizes]

    def __len__(self) -> int:
        return sum(self.worker_batches())

    # ---- reading --------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        if (info.num_workers if info is not None else 1) != self.readers_per_rank:
            raise RuntimeError(f"StreamingShards planned for {self.num_workers} workers, iterated by "
                               f"{info.num_workers if info else 0}")  # fmt: skip
        skips, readers_of_workers = round_robin_resume(self.worker_batches(), self._batches_to_skip())
        local = readers_of_workers[info.id if info is not None else 0]  # this worker's reader on this rank
        epoch = self.current_epoch()
        order = self.epoch_order(epoch)
        reader = self.rank * self.readers_per_rank + local
        readers = self.world * self.readers_per_rank
        plan = reader_plan(order, self._units(order), reader, readers, pad=self.world > 1)
        items: Iterable[Any] = (item for segment in plan for item in self._read(segment))
        if self.training and self.shuffle_buffer > 1:
            wds = require_webdataset()
            rng = random.Random(_seed(self.seed, epoch, reader))
            items = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng)(iter(items))
        items = islice(items, skips[local] * self.batch_size, None)  # undecoded: skipping decodes nothing
        while batch := list(islice(items, self.batch_size)):
            yield self.collate([self.decode(item) for item in batch])

    def _read(self, segment: Segment) -> Iterator[Any]:
        """The items ``[start, stop)`` of one shard; a shard that does not hold what the index says, or
        cannot be read, is a :class:`DataError` naming it."""
        path = self.directory / segment.shard.file
        offset = 0
        for sample in self._samples(path):
            if offset >= segment.stop:
                return
            items = self.expand(sample)
            if not self.training and len(items) != 1:
                raise RuntimeError("expand() must give one item per sample for evaluation")
            yield from items[max(0, segment.start - offset) : max(0, segment.stop - offset)]
            offset += len(items)
        expected = segment.shard.items if self.training else segment.shard.samples
        if offset != expected:
            raise DataError(f"{path}: holds {offset} items where {INDEX_FILE} lists {expected} (the shard "
                            "was changed or truncated; write the shards again)")  # fmt: skip

    @staticmethod
    def _samples(path: Path) -> Iterator[dict[str, Any]]:
        wds = require_webdataset()
        samples = wds.tarfile_samples([{"url": str(path)}])
        while True:
            try:
                sample = next(samples)
            except StopIteration:
                return
            except (tarfile.TarError, OSError, EOFError, ValueError) as error:
                text = str(error.args[0] if error.args else error).split(" @ ")[0]  # wds appends the file
                message = " ".join(text.split()) or type(error).__name__
                raise DataError(f"{path}: unreadable shard ({message})") from None
            yield sample


def distributed_world() -> tuple[int, int]:
    """``(rank, world size)`` of ``torch.distributed`` when it is initialised, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
