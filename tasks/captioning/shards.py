"""Captions in tar shards (``vltk data shards``) and the streaming DataModule that trains from them
(``data.name: webdataset``), for corpora larger than memory; the shards and their reader are
:mod:`vltk.data.shards` (WebDataset's tar layout; why WebDataset is said there).

One sample per image, in the WebDataset layout (``KEY.EXT`` files grouped by key)::

    391895.jpg     the image file's own bytes, unchanged (PNG for images held in memory, e.g. HF datasets)
    391895.json    {"image_id": 391895, "raws": ["A man with ...", ...], "tokens": [["a", "man", ...], ...]}

The training split is written in an order shuffled by ``--seed`` (a source sorted by anything would give
shards of one kind of image), val and test in their source order. Beside the shards, ``word_counts.json``
holds the counts of the training captions' words (:meth:`vltk.text.vocab.Vocabulary.count_words`): the
DataModule builds its vocabulary from it with ``data.min_word_count``, so no rank reads every caption at
start-up, and every rank builds the same vocabulary as the source DataModule would have.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import random
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from vltk.data.datamodule import ROLES, ImageDataModule, LoaderOptions, check_at_least
from vltk.data.feature_cache import FeatureStore
from vltk.data.images import decode_image
from vltk.data.shards import (
    ShardIndex,
    ShardInfo,
    ShardWriter,
    StreamingShards,
    distributed_world,
    read_index,
    require_webdataset,
    write_index,
)
from vltk.errors import ConfigError, DataError
from vltk.tasks.captioning.batch import CaptionItem, collate_captions, truncate_caption
from vltk.tasks.captioning.karpathy import CaptionRecord
from vltk.text.vocab import Vocabulary

logger = logging.getLogger(__name__)

KIND = "captions"
WORD_COUNTS_FILE = "word_counts.json"


# ------------------------------------------------------------------------------------------------ write
def caption_sample(record: CaptionRecord) -> dict[str, Any]:
    """The tar sample of one record: its image file's bytes (or a PNG of an in-memory image) and a JSON."""
    if record.source is not None:
        buffer = io.BytesIO()
        record.load_image().save(buffer, format="PNG")  # lossless
        image, extension = buffer.getvalue(), "png"
    else:
        if record.path is None or not record.path.is_file():
            raise DataError(f"{record.path}: image file not found (image {record.image_id})")
        image, extension = record.path.read_bytes(), record.path.suffix.lower().lstrip(".") or "img"
    if extension == "json":
        raise DataError(f"{record.path}: an image file may not end in .json")
    meta = {"image_id": record.image_id, "raws": record.raws, "tokens": record.tokens}
    return {"__key__": str(record.image_id), extension: image, "json": json.dumps(meta).encode("utf-8")}


def write_caption_shards(
    datamodule: Any,
    out_dir: str | Path,
    *,
    shard_size: int = 1000,
    seed: int = 0,
    source: str = "",
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> ShardIndex:
    """Write the train / val / test records of a caption DataModule into shards under ``out_dir``.

    Args:
        datamodule: any caption DataModule (``shapes``, ``karpathy``, ``hf``), set up here.
        out_dir: the shard directory (``shards.json`` and ``word_counts.json`` are written last).
        shard_size: images per shard (WebDataset suggests shards of 100 MB to 1 GB: ~1,000 COCO images).
        seed: the shuffled order of the training split.
        source: a description of the data, recorded in the index.
        progress: ``(iterable, total) -> iterable`` wrapper over the records of each split.
    """
    require_webdataset()
    datamodule.prepare_data()
    datamodule.setup("fit")
    out = Path(out_dir)
    splits: dict[str, list[ShardInfo]] = {}
    for role in ROLES:
        records = list(datamodule.records(role))
        if role == "train":
            random.Random(seed).shuffle(records)
        with ShardWriter(out, role, shard_size) as writer:
            for record in progress(records, len(records)) if progress else records:
                writer.write(caption_sample(record), items=len(record.raws))
        splits[role] = writer.shards
    counts = Vocabulary.count_words(t for r in datamodule.records("train") for t in r.tokens)
    ordered = dict(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))
    (out / WORD_COUNTS_FILE).write_text(json.dumps(ordered, indent=0) + "\n", encoding="utf-8")
    index = ShardIndex(out, KIND, splits, {"source": source, "seed": seed, "shard_size": shard_size})
    write_index(index)
    logger.info("wrote %s", ", ".join(f"{role}: {index.samples(role)} images in {len(splits[role])} shards"
                                      for role in ROLES))  # fmt: skip
    return index


# ------------------------------------------------------------------------------------------------- read
@dataclass(frozen=True)
class ShardCaptionOptions(LoaderOptions):
    """The ``data:`` keys of the sharded caption dataset.

    Attributes:
        batch_size: images (train: image-caption pairs) per batch.
        num_workers: dataloader worker processes; the shards are split between them.
        min_word_count: words seen fewer times in the training captions map to ``<unk>``.
        max_caption_length: captions are cut to this many words (``<end>`` kept).
        shuffle_buffer: training items (image-caption pairs, undecoded) each reader shuffles through;
            memory grows with it, not with the dataset.
        on_bad_sample: ``raise`` stops at an unreadable image, naming its shard and key; ``skip`` drops it
            from its batch with a warning and counts it (``train/skipped_samples``).
    """

    batch_size: int = 64
    num_workers: int = 0
    min_word_count: int = 1
    max_caption_length: int = 20
    shuffle_buffer: int = 1000
    on_bad_sample: str = "raise"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(num_workers=(self.num_workers, 0), min_word_count=(self.min_word_count, 1),
                       max_caption_length=(self.max_caption_length, 1),
                       shuffle_buffer=(self.shuffle_buffer, 0))  # fmt: skip
        if self.on_bad_sample not in ("raise", "skip"):
            raise ConfigError(f"data.on_bad_sample must be 'raise' or 'skip', got '{self.on_bad_sample}'")


@dataclass(frozen=True)
class ShardSplit:
    """A split of the shards: what ``setup()`` holds instead of records (one entry per shard)."""

    name: str
    shards: tuple[ShardInfo, ...]

    def __len__(self) -> int:
        return sum(shard.samples for shard in self.shards)

    @property
    def items(self) -> int:
        return sum(shard.items for shard in self.shards)


@dataclass(frozen=True)
class _Pair:
    """An undecoded item: one image's bytes and metadata with the index of one of its captions."""

    where: str
    image: bytes
    meta: dict[str, Any]
    caption: int


class CaptionSamples:
    """Turns caption samples into items (:meth:`expand`) and items into :class:`CaptionItem` s
    (:meth:`decode`); picklable, for worker processes.

    Args:
        vocab: encodes the captions.
        transform: the encoder's preprocessing, or a :class:`FeatureStore` whose rows replace the images.
        max_length: captions are cut to this many words.
        training: one item per caption (else one per image, with its first caption).
        on_bad_sample: ``raise`` or ``skip`` (an unreadable image decodes to ``None``).
    """

    def __init__(self, vocab: Vocabulary, transform: Any, *, max_length: int, training: bool,
                 on_bad_sample: str) -> None:  # fmt: skip
        self.vocab, self.transform, self.max_length = vocab, transform, max_length
        self.training, self.on_bad_sample = training, on_bad_sample

    def expand(self, sample: dict[str, Any]) -> list[_Pair]:
        where = f"{sample.get('__url__')}: sample '{sample.get('__key__')}'"
        images = [key for key in sample if not key.startswith("__") and key != "json"]
        if "json" not in sample or len(images) != 1:
            found = ", ".join(sorted(key for key in sample if not key.startswith("__"))) or "nothing"
            raise DataError(f"{where}: incomplete sample, expected one image file and one .json, found "
                            f"{found} (a truncated shard?)")  # fmt: skip
        try:
            meta = json.loads(sample["json"])
            captions = len(meta["raws"])
            if not captions or len(meta["tokens"]) != captions or not isinstance(meta["image_id"], int):
                raise ValueError("needs an integer image_id and as many token lists as raws (at least one)")
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"{where}.json: malformed caption record ({error})") from None
        pairs = [_Pair(where, sample[images[0]], meta, caption) for caption in range(captions)]
        return pairs if self.training else pairs[:1]

    def decode(self, pair: _Pair) -> CaptionItem | None:
        image_id = pair.meta["image_id"]
        try:
            if isinstance(self.transform, FeatureStore):  # cached grids replace decoding + the CNN
                image = self.transform.lookup(image_id)  # [N, D]
            else:
                image = self.transform(decode_image(pair.image, pair.where))  # [3, H, W]
        except DataError as error:
            if self.on_bad_sample != "skip":
                raise DataError(f"{error} (data.on_bad_sample=skip skips unreadable samples)") from None
            logger.warning("skipping an unreadable sample (data.on_bad_sample=skip): %s", error)
            return None
        ids = self.vocab.encode(pair.meta["tokens"][pair.caption], add_special=True)
        caption = truncate_caption(ids, self.max_length, self.vocab.end_id)
        return CaptionItem(image=image, caption=torch.tensor(caption, dtype=torch.long), image_id=image_id,
                           references=list(pair.meta["raws"]))  # fmt: skip


class ShardedCaptionsDataModule(ImageDataModule):
    """Captions streamed from tar shards written by ``vltk data shards`` (see the module docstring).

    Nothing per image is held in memory: ``setup()`` reads the index (one entry per shard) and the word
    counts, and the loaders stream the shards, split across DDP ranks and DataLoader workers, the training
    split in a new shard order every epoch and through a shuffle buffer (:mod:`vltk.data.shards`). The
    batches are the :class:`~vltk.tasks.captioning.batch.CaptionBatch` es of the other caption datasets:
    training yields one item per (image, caption), evaluation one per image with all its references.

    Args:
        path: the shard directory.
        options: the fields of :class:`ShardCaptionOptions` (``batch_size``, ``num_workers``,
            ``shuffle_buffer``, ...).
    """

    options_type = ShardCaptionOptions
    options: ShardCaptionOptions  # type: ignore[assignment]
    items_name = "images"

    def __init__(self, path: str, **options: Any) -> None:
        super().__init__(**options)
        self.path = path
        self.index: ShardIndex | None = None
        self._resume_batches: tuple[int, int] | None = None

    def read_splits(self) -> dict[str, ShardSplit]:
        require_webdataset()
        self.index = read_index(self.path, KIND)
        return {name: ShardSplit(name, tuple(self.index.splits.get(name, ())))
                for name in {*ROLES, *self.index.splits}}  # fmt: skip

    def build_vocab(self, splits: dict[str, ShardSplit]) -> Vocabulary:
        if not len(splits["train"]):
            raise DataError(f"{self.path}: the train split has no images: cannot build a vocabulary")
        path = Path(self.path).expanduser() / WORD_COUNTS_FILE
        try:
            counts = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(counts, dict) or not all(isinstance(c, int) for c in counts.values()):
                raise ValueError("expected an object of word counts")
        except FileNotFoundError:
            raise DataError(f"{path}: not found (write the shards again with `vltk data shards`)") from None
        except ValueError as error:
            raise DataError(f"{path}: unreadable word counts ({error})") from None
        return Vocabulary.from_counts(counts, min_count=self.options.min_word_count)

    def describe(self, splits: dict[str, ShardSplit]) -> str:
        shards = ", ".join(f"{role}={len(splits[role].shards)}" for role in ROLES)
        return f"{super().describe(splits)} in shards ({shards}); vocabulary of {len(self.vocab)} tokens"

    def loader(self, split: str, training: bool) -> DataLoader:
        part: ShardSplit = self.split(split)
        options = self.options
        trainer = self._trainer_or_none()
        rank, world = distributed_world() if trainer is None else (trainer.global_rank, trainer.world_size)
        samples = CaptionSamples(self.vocab, self.transform(), max_length=options.max_caption_length,
                                 training=training, on_bad_sample=options.on_bad_sample)  # fmt: skip
        stream = StreamingShards(
            Path(self.path).expanduser(),
            list(part.shards),
            expand=samples.expand,
            decode=samples.decode,
            collate=functools.partial(collate_captions, pad_id=self.vocab.pad_id),
            batch_size=options.batch_size,
            training=training,
            shuffle_buffer=options.shuffle_buffer,
            seed=self.shuffle_seed,
            rank=rank,
            world=world,
            num_workers=options.num_workers,
            epoch_source=self._current_epoch if training else None,
            batches_to_skip=self._train_batches_to_skip if training else None,
        )
        # len(stream) is exact (the index says what every worker reads); Lightning warns it might not be
        warnings.filterwarnings("ignore", message=".*IterableDataset.* has `__len__` defined.*")
        return DataLoader(
            stream,
            batch_size=None,  # the stream yields batches: each worker batches what it reads
            num_workers=options.num_workers,
            pin_memory=torch.cuda.is_available(),
            # not persistent: each epoch's workers get the epoch's order (the dataset is copied at start)
            persistent_workers=False,
        )

    # ---- the epoch and a resumed run ------------------------------------------------------------------

    def _trainer_or_none(self) -> Any:
        return getattr(self, "trainer", None)

    def _current_epoch(self) -> int:
        trainer = self._trainer_or_none()
        return trainer.current_epoch if trainer is not None else 0

    def resume_train_batches(self, epoch: int, batches_done: int) -> None:
        """Continue the training order of ``epoch`` after its first ``batches_done`` batches (called on
        resume by ``vltk.tasks.reliability.ResumeState``): the order is a function of seed and epoch."""
        self._resume_batches = (epoch, batches_done)
        logger.info("the shard stream resumes at epoch %d after %d batches", epoch, batches_done)

    def _train_batches_to_skip(self) -> int:
        if self._resume_batches is None:
            return 0
        epoch, batches_done = self._resume_batches
        return batches_done if self._current_epoch() == epoch else 0
