"""Language-modelling data: text files cut into contiguous streams, served chunk by chunk, in order.

The text is split once, by position, into train / val / test (the last ``val_fraction + test_fraction`` of
the text is held out). Each split is encoded to symbol ids and laid out as ``B`` parallel streams (rows), as
in Zaremba et al. 2014's ``batchify``: stream ``b`` is the ``b``-th contiguous ``1/B`` of the split. Batch
``k`` holds chunk ``k`` (``seq_len`` symbols) of every stream, so the hidden state left by batch ``k`` is the
right initial state for batch ``k + 1`` (truncated BPTT carries it over and detaches it). With ``B = 1`` this
is min-char-rnn's walk through the text. Under DDP each rank takes its own ``B`` of ``B * world`` streams.

Two DataModules: ``text`` reads the files (or directories, or glob patterns) a user names; ``python_source``
reads the standard library's ``*.py`` files of the running Python (always present, so the default config works
offline from a fresh clone; the exact text depends on the Python version).
"""

from __future__ import annotations

import glob
import logging
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from vltk.data.datamodule import DataModule, LoaderOptions, check_at_least
from vltk.errors import ConfigError, DataError
from vltk.tasks.lm.vocab import Level, SymbolVocabulary

logger = logging.getLogger(__name__)


@dataclass
class LmBatch:
    """One chunk of every stream.

    Attributes:
        inputs: ``[B, T]`` symbol ids.
        targets: ``[B, T]`` the next symbol of every input.
        first: ``True`` for the first chunk of a pass over the split (the carried state restarts at zero).
        index: the chunk's position in the pass.
    """

    inputs: Tensor
    targets: Tensor
    first: bool
    index: int = 0

    def to(self, device: torch.device | str) -> LmBatch:
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device))

    def __len__(self) -> int:
        return self.inputs.shape[0]


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class StreamChunks(IterableDataset):
    """The chunks of one split, in order (see the module docstring).

    Args:
        ids: ``[N]`` the split's symbol ids.
        batch_size: ``B``, streams per rank (fewer when the split is too short for ``B`` full chunks).
        seq_len: ``T``, symbols per chunk (the truncated-BPTT length).
        rank, world: this rank and the number of ranks (read from ``torch.distributed`` when ``None``).
        chunks_to_skip: called at the start of every pass; the pass starts after that many chunks (a run
            resumed in the middle of a pass continues where it stopped; ``None``: never skip).
    """

    def __init__(
        self,
        ids: Tensor,
        batch_size: int,
        seq_len: int,
        rank: int | None = None,
        world: int | None = None,
        chunks_to_skip: Callable[[], int] | None = None,
    ):
        self.ids = ids
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.rank, self.world = rank, world
        self.chunks_to_skip = chunks_to_skip

    def _layout(self) -> tuple[Tensor, Tensor]:
        rank, world = _world() if self.rank is None else (self.rank, self.world or 1)
        n = self.ids.numel() - 1
        streams = max(1, min(self.batch_size, n // (world * self.seq_len)))
        length = n // (streams * world)
        if length < 1:
            raise DataError(f"a text split of {n + 1} symbols is too short for {world} rank(s)")
        rows = slice(rank * streams, (rank + 1) * streams)
        inputs = self.ids[: streams * world * length].view(streams * world, length)[rows]  # [B, L]
        targets = self.ids[1 : streams * world * length + 1].view(streams * world, length)[rows]  # [B, L]
        return inputs, targets

    def __len__(self) -> int:
        length = self._layout()[0].shape[1]
        return -(-length // self.seq_len)

    def __iter__(self) -> Iterator[LmBatch]:
        inputs, targets = self._layout()
        skip = self.chunks_to_skip() if self.chunks_to_skip is not None else 0
        for index, start in enumerate(range(0, inputs.shape[1], self.seq_len)):
            if index < skip:
                continue
            end = start + self.seq_len
            yield LmBatch(inputs[:, start:end], targets[:, start:end], first=index == 0, index=index)


def read_texts(paths: list[Path], encoding: str, max_chars: int | None) -> str:
    """The files' text joined in order (stops once ``max_chars`` are read); undecodable bytes are replaced."""
    parts, total = [], 0
    for path in paths:
        try:
            text = path.read_text(encoding=encoding, errors="replace")
        except OSError as error:
            raise DataError(f"cannot read text file {path}: {error.strerror}") from None
        parts.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    text = "".join(parts)
    return text[:max_chars] if max_chars is not None else text


def expand_paths(patterns: list[str], pattern: str) -> list[Path]:
    """Files, directories (searched recursively for ``pattern``) and glob patterns -> sorted file list."""
    paths: list[Path] = []
    for item in patterns:
        path = Path(item).expanduser()
        if path.is_file():
            paths.append(path)
        elif path.is_dir():
            paths.extend(sorted(p for p in path.glob(f"**/{pattern}") if p.is_file()))
        else:
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not matches:
                raise DataError(
                    f"text file not found: {item} (neither a file, a directory nor a glob pattern)"
                )
            paths.extend(matches)
    return paths


@dataclass(frozen=True)
class TextOptions(LoaderOptions):
    """The ``data:`` keys both text datasets have.

    Attributes:
        level: ``char`` (every character is a symbol) or ``word`` (words, punctuation, newlines).
        seq_len: ``T``, symbols per chunk (the truncated-BPTT length).
        batch_size: ``B``, parallel streams in training.
        eval_batch_size: streams in val/test (``None``: ``batch_size``).
        val_fraction: share of the text held out for validation (taken from the end, before test).
        test_fraction: share of the text held out for test (the very end).
        max_chars: read at most this many characters (``None``: everything).
        vocab_max_size: keep the most frequent symbols only (word level; ``None``: all).
        min_count: keep symbols seen at least this often in the training split.
    """

    level: Level = "char"
    seq_len: int = 100
    eval_batch_size: int | None = None
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    max_chars: int | None = None
    vocab_max_size: int | None = None
    min_count: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(seq_len=(self.seq_len, 1))
        val, test = self.val_fraction, self.test_fraction
        if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
            raise ConfigError(f"data.val_fraction + data.test_fraction must be in [0, 1), got {val}, {test}")


class TextFilesDataModule(DataModule):
    """Character- or word-level language-modelling data from text files.

    A split is the text itself (a ``str``); :meth:`ids` encodes it. The loaders serve the chunks of
    :class:`StreamChunks` in order (no shuffling); a resumed run skips the chunks it already trained on
    (:meth:`resume_train_batches`).

    Args:
        files: text files, directories (searched recursively for ``pattern``) or glob patterns, read in order.
        pattern: file name pattern used inside directories (e.g. ``*.h``).
        encoding: the files' encoding.
        options: the fields of :class:`TextOptions` (``level``, ``seq_len``, ``batch_size``, ...).
    """

    options_type = TextOptions
    options: TextOptions
    vocab_type = SymbolVocabulary
    items_name = "characters"

    def __init__(
        self,
        files: list[str] | None = None,
        *,
        pattern: str = "*",
        encoding: str = "utf-8",
        **options: Any,
    ):
        super().__init__(**options)
        self.files = list(files or [])
        self.pattern = pattern
        self.encoding = encoding
        self._resume_batches: tuple[int, int] | None = None

    def source_paths(self) -> list[Path]:
        if not self.files:
            raise DataError("data.files is empty: name at least one text file, directory or glob pattern")
        return expand_paths(self.files, self.pattern)

    def read_text(self) -> str:
        paths = self.source_paths()
        if not paths:
            raise DataError(f"no files matching '{self.pattern}' in {', '.join(self.files)}")
        return read_texts(paths, self.encoding, self.options.max_chars)

    # ---- the DataModule hooks -------------------------------------------------------------------------

    def read_splits(self) -> dict[str, str]:
        """The text cut by position: train, then the last ``val_fraction + test_fraction`` held out."""
        text = self.read_text()
        n = len(text)
        val_start = round(n * (1 - self.options.val_fraction - self.options.test_fraction))
        test_start = round(n * (1 - self.options.test_fraction))
        return {"train": text[:val_start], "val": text[val_start:test_start], "test": text[test_start:]}

    def check_splits(self, splits: dict[str, str]) -> None:
        wanted = {"train": 1.0, "val": self.options.val_fraction, "test": self.options.test_fraction}
        for split, part in splits.items():
            if len(part) < 2 and wanted[split] > 0:
                raise DataError(
                    f"the {split} split of the text has {len(part)} characters: the text is too short"
                )

    def build_vocab(self, splits: dict[str, str]) -> SymbolVocabulary:
        options = self.options
        return SymbolVocabulary.build(
            splits["train"], options.level, max_size=options.vocab_max_size, min_count=options.min_count
        )

    def describe(self, splits: dict[str, str]) -> str:
        characters = sum(len(part) for part in splits.values())
        return f"{characters} characters, vocabulary of {len(self.vocab)} {self.options.level}s"

    def loader(self, split: str, training: bool) -> DataLoader:
        """The chunks of ``split`` in order; the train split's (also through ``dataloader_for``) are
        ``batch_size`` streams and skip what a resumed run already trained on."""
        ids = self.ids(split)
        if ids.numel() < 2:
            raise DataError(f"the {split} split is empty (val_fraction/test_fraction is 0?)")
        is_train = split == "train"
        batch_size = self.options.batch_size if is_train else self.options.eval_batch_size or self.batch_size
        skip = self._train_chunks_to_skip if is_train else None
        chunks = StreamChunks(ids, batch_size, self.options.seq_len, chunks_to_skip=skip)
        return DataLoader(chunks, batch_size=None, num_workers=0)

    # ---- data facts -----------------------------------------------------------------------------------

    def text(self, split: str) -> str:
        return self.split(split)

    def ids(self, split: str) -> Tensor:
        """``[N]`` the split's symbol ids."""
        if split not in self._datasets:
            self._datasets[split] = torch.tensor(self.vocab.encode(self.text(split)), dtype=torch.long)
        return self._datasets[split]

    def resume_train_batches(self, epoch: int, batches_done: int) -> None:
        """Continue the training pass of ``epoch`` after its first ``batches_done`` chunks (called on resume
        by ``vltk.tasks.reliability.ResumeState``; the system restores the hidden state they left)."""
        self._resume_batches = (epoch, batches_done)
        logger.info("the text streams resume at epoch %d after %d chunks", epoch, batches_done)

    def _train_chunks_to_skip(self) -> int:
        """Chunks of the current pass already trained on: non-zero only in the pass a run resumed in."""
        if self._resume_batches is None or self.trainer is None:
            return 0
        epoch, batches_done = self._resume_batches
        return batches_done if self.trainer.current_epoch == epoch else 0


def python_stdlib_files() -> list[Path]:
    """The running Python's top-level standard-library modules (``<stdlib>/*.py``), sorted by name."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    if not files:
        raise DataError(f"no Python source found in {stdlib}; use data.name=text with data.files=[...]")
    return files


@dataclass(frozen=True)
class PythonSourceOptions(TextOptions):
    """The standard library is large: read its first 1,000,000 characters by default."""

    max_chars: int | None = 1_000_000


class PythonSourceDataModule(TextFilesDataModule):
    """The built-in text: Python's own standard-library source (``<stdlib>/*.py`` in name order), which ships
    with every Python, so ``vltk train lm`` works offline. Code has quotes, line lengths and indentation for
    the diagnostics to find cells for (Karpathy et al. 2016 used the Linux kernel source).

    Args:
        options: the fields of :class:`PythonSourceOptions` (those of :class:`TextOptions`; ``max_chars``
            defaults to 1,000,000 characters).
    """

    options_type = PythonSourceOptions

    def __init__(self, **options: Any):
        super().__init__([], **options)

    def source_paths(self) -> list[Path]:
        return python_stdlib_files()
