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

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from vltk.errors import DataError
from vltk.tasks.lm.vocab import Level, SymbolVocabulary

logger = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


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


class TextFilesDataModule(pl.LightningDataModule):
    """Character- or word-level language-modelling data from text files.

    Args:
        files: text files, directories (searched recursively for ``pattern``) or glob patterns, read in order.
        pattern: file name pattern used inside directories (e.g. ``*.h``).
        level: ``char`` (every character is a symbol) or ``word`` (words, punctuation, newlines).
        seq_len: ``T``, symbols per chunk (the truncated-BPTT length).
        batch_size: ``B``, parallel streams in training.
        eval_batch_size: streams in val/test (``None``: ``batch_size``).
        val_fraction: share of the text held out for validation (taken from the end, before test).
        test_fraction: share of the text held out for test (the very end).
        max_chars: read at most this many characters (``None``: everything).
        vocab_max_size: keep the most frequent symbols only (word level; ``None``: all).
        min_count: keep symbols seen at least this often in the training split.
        encoding: the files' encoding.
    """

    def __init__(
        self,
        files: list[str] | None = None,
        *,
        pattern: str = "*",
        level: Level = "char",
        seq_len: int = 100,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        max_chars: int | None = None,
        vocab_max_size: int | None = None,
        min_count: int = 1,
        encoding: str = "utf-8",
    ):
        super().__init__()
        if seq_len < 1 or batch_size < 1:
            raise DataError(f"seq_len and batch_size must be >= 1, got {seq_len} and {batch_size}")
        if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise DataError(
                f"val_fraction + test_fraction must be in [0, 1), got {val_fraction}, {test_fraction}"
            )
        self.files = list(files or [])
        self.pattern = pattern
        self.level = level
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_chars = max_chars
        self.vocab_max_size = vocab_max_size
        self.min_count = min_count
        self.encoding = encoding
        self._vocab: SymbolVocabulary | None = None
        self._texts: dict[str, str] | None = None
        self._ids: dict[str, Tensor] = {}
        self._resume_batches: tuple[int, int] | None = None

    def source_paths(self) -> list[Path]:
        if not self.files:
            raise DataError("data.files is empty: name at least one text file, directory or glob pattern")
        return expand_paths(self.files, self.pattern)

    def read_text(self) -> str:
        paths = self.source_paths()
        if not paths:
            raise DataError(f"no files matching '{self.pattern}' in {', '.join(self.files)}")
        return read_texts(paths, self.encoding, self.max_chars)

    def setup(self, stage: str | None = None) -> None:
        """Read and split the text, build the vocabulary from the training split (once)."""
        if self._texts is not None:
            return
        text = self.read_text()
        n = len(text)
        val_start = round(n * (1 - self.val_fraction - self.test_fraction))
        test_start = round(n * (1 - self.test_fraction))
        self._texts = {
            "train": text[:val_start],
            "val": text[val_start:test_start],
            "test": text[test_start:],
        }
        for split, part in self._texts.items():
            needed = 0.0 if split == "train" else getattr(self, f"{split}_fraction")
            if len(part) < 2 and (split == "train" or needed > 0):
                raise DataError(
                    f"the {split} split of the text has {len(part)} characters: the text is too short"
                )
        if self._vocab is None:
            self._vocab = SymbolVocabulary.build(
                self._texts["train"], self.level, max_size=self.vocab_max_size, min_count=self.min_count
            )
        logger.info("text: %d characters, vocabulary of %d %ss", n, len(self._vocab), self.level)

    @property
    def vocab(self) -> SymbolVocabulary:
        if self._vocab is None:
            raise DataError("the text vocabulary is not available yet: call setup() first")
        return self._vocab

    @vocab.setter
    def vocab(self, vocab: SymbolVocabulary) -> None:
        self._vocab = vocab
        self._ids.clear()

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def text(self, split: str) -> str:
        if self._texts is None:
            self.setup()
        if split not in SPLITS:
            raise DataError(f"unknown split '{split}' (choices: {', '.join(SPLITS)})")
        return self._texts[split]  # type: ignore[index]

    def ids(self, split: str) -> Tensor:
        """``[N]`` the split's symbol ids."""
        if split not in self._ids:
            self._ids[split] = torch.tensor(self.vocab.encode(self.text(split)), dtype=torch.long)
        return self._ids[split]

    def dataloader_for(self, split: str) -> DataLoader:
        ids = self.ids(split)
        if ids.numel() < 2:
            raise DataError(f"the {split} split is empty (val_fraction/test_fraction is 0?)")
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        skip = self._train_chunks_to_skip if split == "train" else None
        chunks = StreamChunks(ids, batch_size, self.seq_len, chunks_to_skip=skip)
        return DataLoader(chunks, batch_size=None, num_workers=0)

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

    def train_dataloader(self) -> DataLoader:
        return self.dataloader_for("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader_for("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader_for("test")

    def state_dict(self) -> dict[str, Any]:
        return {} if self._vocab is None else {"vocab": self._vocab.to_json()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "vocab" in state_dict:
            self.vocab = SymbolVocabulary.from_json(state_dict["vocab"])


def python_stdlib_files() -> list[Path]:
    """The running Python's top-level standard-library modules (``<stdlib>/*.py``), sorted by name."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    if not files:
        raise DataError(f"no Python source found in {stdlib}; use data.name=text with data.files=[...]")
    return files


class PythonSourceDataModule(TextFilesDataModule):
    """The built-in text: Python's own standard-library source (``<stdlib>/*.py`` in name order), which ships
    with every Python, so ``vltk train lm`` works offline. Code has quotes, line lengths and indentation for
    the diagnostics to find cells for (Karpathy et al. 2016 used the Linux kernel source).

    Args are those of :class:`TextFilesDataModule` without ``files``/``pattern``; ``max_chars`` defaults
    to 1,000,000 characters.
    """

    def __init__(
        self,
        *,
        level: Level = "char",
        seq_len: int = 100,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        max_chars: int | None = 1_000_000,
        vocab_max_size: int | None = None,
        min_count: int = 1,
    ):
        super().__init__(
            [],
            level=level,
            seq_len=seq_len,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            max_chars=max_chars,
            vocab_max_size=vocab_max_size,
            min_count=min_count,
        )

    def source_paths(self) -> list[Path]:
        return python_stdlib_files()
