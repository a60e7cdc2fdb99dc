"""The R2R DataModule: instructions from ``R2R_{split}.json``, graphs from ``connectivity/``, view features
from a store converted by ``vltk data r2r-features``; batches are instructions the system plays out.

A batch (:class:`R2RBatch`) is a list of instructions (:class:`R2RItem`: one of an episode's three, with its
scan, start, heading and reference path) and their token ids. The system resets the graph environment
(:meth:`R2RDataModule.environment`, built once per process) to the batch and runs the agent, for training
(imitation of the shortest-path teacher) and for evaluation alike, so Lightning's loops, distributed samplers
and DDP work unchanged. The instruction vocabulary travels in the system's hyper-parameters.

The vocabulary is the training instructions' words seen at least ``min_word_count`` times (5 in Anderson et
al. 2018's ``tasks/R2R/utils.py`` ``build_vocab``); instructions are cut at ``max_instruction_length`` tokens
(80 there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from vltk.data.datamodule import DataModule, LoaderOptions, check_at_least
from vltk.errors import ConfigError, DataError
from vltk.tasks.navigation.r2r.env import R2REnv
from vltk.tasks.navigation.r2r.files import R2REpisode, read_r2r
from vltk.tasks.navigation.r2r.graph import ScanGraph, load_graphs
from vltk.tasks.navigation.r2r.houses import HousesOptions, ensure_houses
from vltk.text import Vocabulary
from vltk.text.vocab import tokenize

logger = logging.getLogger(__name__)

R2R_SPLITS = ("train", "val_seen", "val_unseen", "test")


@dataclass(frozen=True)
class R2RItem:
    """One instruction of an R2R episode: what the environment is reset to, and the words."""

    instr_id: str
    scan: str
    path: tuple[str, ...]
    heading: float
    instruction: str

    @property
    def has_goal(self) -> bool:
        return len(self.path) > 1


def instruction_items(episodes: Sequence[R2REpisode]) -> list[R2RItem]:
    """Every instruction of ``episodes`` as an item ``{path_id}_{k}`` (the EvalAI ids)."""
    return [
        R2RItem(f"{e.path_id}_{k}", e.scan, e.path, e.heading, text)
        for e in episodes
        for k, text in enumerate(e.instructions)
    ]


@dataclass
class R2RBatch:
    """Instructions and their right-padded token ids ``tokens [B, L]``, ``mask [B, L]`` (``True`` = real)."""

    items: list[R2RItem]
    tokens: Tensor
    mask: Tensor

    def to(self, device: torch.device | str) -> R2RBatch:
        return R2RBatch(self.items, self.tokens.to(device), self.mask.to(device))

    def __len__(self) -> int:
        return len(self.items)


def encode_instructions(vocab: Vocabulary, texts: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    """Token ids ``[B, L]`` (no start/end tokens, cut at ``max_length``) and their mask ``[B, L]``."""
    ids = [row[:max_length] for row in vocab.encode_batch(list(texts), add_special=False)]
    width = max([len(row) for row in ids] + [1])
    tokens = torch.full((len(ids), width), vocab.pad_id, dtype=torch.long)  # [B, L]
    for b, row in enumerate(ids):
        tokens[b, : len(row)] = torch.tensor(row, dtype=torch.long)
    lengths = torch.tensor([len(row) for row in ids])  # [B]
    return tokens, torch.arange(width)[None, :] < lengths[:, None]  # [B, L], [B, L]


@dataclass(frozen=True)
class R2ROptions(LoaderOptions):
    """The ``data:`` keys of every R2R-layout dataset.

    Attributes:
        batch_size: instructions per training batch (Anderson et al. 2018: 100; EnvDrop: 64).
        eval_batch_size: instructions per evaluation batch (episodes run together).
        val_split: the split validated on after every epoch (and monitored).
        test_split: the split ``vltk train`` tests the best checkpoint on.
        max_instruction_length: tokens kept per instruction.
        min_word_count: training-instruction words seen fewer times become ``<unk>``.
    """

    batch_size: int = 64
    eval_batch_size: int = 128
    val_split: str = "val_unseen"
    test_split: str = "val_unseen"
    max_instruction_length: int = 80
    min_word_count: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(
            eval_batch_size=(self.eval_batch_size, 1),
            max_instruction_length=(self.max_instruction_length, 1),
            min_word_count=(self.min_word_count, 1),
        )
        for key in ("val_split", "test_split"):
            if getattr(self, key) not in R2R_SPLITS:
                raise ConfigError(
                    f"data.{key}: '{getattr(self, key)}' is not an R2R split ({', '.join(R2R_SPLITS)})"
                )


class R2RDataModule(DataModule):
    """Vision-and-language navigation data in the R2R layout (the published files, unchanged).

    Args:
        instructions: the folder of ``R2R_{train,val_seen,val_unseen,test}.json`` (the splits read are
            ``train``, ``val_split``, ``test_split`` and any other present).
        connectivity: the folder of ``{scan}_connectivity.json`` files.
        features: a view-feature store (``vltk data r2r-features --out``).
        test_references: an R2R-layout file whose full paths replace the ``test`` split's start-only ones
            (the built-in houses write one; the real R2R test split has none, so it can only be predicted).
        options: :class:`R2ROptions`.
    """

    options_type: ClassVar[type[LoaderOptions]] = R2ROptions
    options: R2ROptions
    items_name: ClassVar[str] = "instructions"

    def __init__(
        self,
        *,
        instructions: str | None = None,
        connectivity: str | None = None,
        features: str | None = None,
        test_references: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.paths = {"instructions": instructions, "connectivity": connectivity, "features": features}
        self.test_references = test_references
        self.graphs: dict[str, ScanGraph] = {}
        self._store: Any = None
        self._env: R2REnv | None = None

    # ---------------------------------------------------------------------------------------------- files
    def data_paths(self) -> dict[str, Path]:
        """The three folders, each checked to exist (a ConfigError naming the key when not given)."""
        missing = [key for key, value in self.paths.items() if value is None]
        if missing:
            raise ConfigError(
                f"data.{missing[0]} is not set: the R2R dataset needs data.instructions (the R2R_*.json "
                "folder), data.connectivity and data.features (a `vltk data r2r-features` store)"
            )
        paths = {key: Path(str(value)).expanduser() for key, value in self.paths.items()}
        for key, path in paths.items():
            if not path.is_dir():
                raise DataError(f"data.{key}: {path} is not a directory")
        return paths

    def split_file(self, split: str) -> Path:
        return self.data_paths()["instructions"] / f"R2R_{split}.json"

    def read_splits(self) -> dict[str, list[R2RItem]]:
        wanted = {"train", self.options.val_split, self.options.test_split}
        splits: dict[str, list[R2RItem]] = {}
        for split in R2R_SPLITS:
            path = self.split_file(split)
            if not path.is_file():
                if split in wanted:
                    raise DataError(f"data.instructions: {path} does not exist (the {split} split)")
                continue
            episodes = read_r2r(path)
            if split == "test" and self.test_references is not None:
                episodes = self._with_test_references(episodes)
            splits[split] = instruction_items(episodes)
        scans = sorted({item.scan for items in splits.values() for item in items})
        self.graphs = load_graphs(self.data_paths()["connectivity"], scans)
        self.feature_store().check_covers(self.graphs)
        for split, items in splits.items():
            _check_on_graphs(self.split_file(split), items, self.graphs)
        return splits

    def _with_test_references(self, episodes: list[R2REpisode]) -> list[R2REpisode]:
        references = {e.path_id: e for e in read_r2r(str(self.test_references))}
        missing = [e.path_id for e in episodes if e.path_id not in references]
        if missing:
            raise DataError(f"data.test_references: {self.test_references} has no path_id {missing[0]}")
        return [references[e.path_id] for e in episodes]

    def feature_store(self) -> Any:
        """The view-feature store (opened once per process, memory-mapped)."""
        if self._store is None:
            from vltk.tasks.navigation.r2r.features import ViewFeatureStore

            self._store = ViewFeatureStore.open(self.data_paths()["features"])
        return self._store

    @property
    def feature_dim(self) -> int:
        return int(self.feature_store().dim)

    def environment(self, max_steps: int) -> R2REnv:
        """The batched graph environment over every scan read, episodes ending after ``max_steps`` actions
        (built once per process and ``max_steps``)."""
        if self._env is None or self._env.max_steps != max_steps:
            self.setup()
            self._env = R2REnv(self.graphs, self.feature_store(), max_steps=max_steps)
        return self._env

    # ------------------------------------------------------------------------------------ DataModule hooks
    def check_splits(self, splits: dict[str, list[R2RItem]]) -> None:
        if not splits["train"]:
            raise DataError(f"{self.split_file('train')}: the training split has no episodes")
        validation = splits[self.options.val_split]
        if validation and not any(item.has_goal for item in validation):
            raise DataError(
                f"data.val_split: the {self.options.val_split} split has no reference paths to validate on "
                "(choose val_seen or val_unseen)"
            )

    def build_vocab(self, splits: dict[str, list[R2RItem]]) -> Vocabulary:
        return Vocabulary.build(
            (tokenize(item.instruction) for item in splits["train"]), min_count=self.options.min_word_count
        )

    def describe(self, splits: dict[str, list[R2RItem]]) -> str:
        sizes = ", ".join(f"{name}={len(items)}" for name, items in splits.items())
        return f"R2R instructions {sizes}; {len(self.graphs)} scans; {len(self.vocab)} words"

    def evaluation_splits(self) -> list[str]:
        self.setup()
        assert self._splits is not None
        return [split for split in self._splits if split != "train"] + ["train"]

    def state_dict(self) -> dict[str, Any]:
        return {}  # the vocabulary is in the system's hyper-parameters

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.options.val_split, training=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.options.test_split, training=False)

    def loader(self, split: str, training: bool) -> DataLoader:
        """Training: the training instructions in the resumable shuffled order; evaluation: a split's
        instructions in file order, ``eval_batch_size`` at a time."""
        items = self.split(split)
        return DataLoader(
            items,
            batch_size=self.options.batch_size if training else self.options.eval_batch_size,
            sampler=self.training_sampler(len(items)) if training else None,
            generator=torch.Generator().manual_seed(self.shuffle_seed),
            collate_fn=self.collate,
        )

    def collate(self, items: list[R2RItem]) -> R2RBatch:
        tokens, mask = encode_instructions(
            self.vocab, [item.instruction for item in items], self.options.max_instruction_length
        )
        return R2RBatch(list(items), tokens, mask)


def _check_on_graphs(path: Path, items: list[R2RItem], graphs: dict[str, ScanGraph]) -> None:
    """Every viewpoint of every path is a viewpoint of its scan (one line naming the first that is not)."""
    for item in items:
        graph = graphs[item.scan]
        for viewpoint in item.path:
            if viewpoint not in graph:
                raise DataError(
                    f"{path}: {item.instr_id}: viewpoint {viewpoint} is not in scan {item.scan}'s "
                    "connectivity graph"
                )


@dataclass(frozen=True)
class R2RHousesOptions(R2ROptions, HousesOptions):
    """The built-in houses' ``data:`` keys: the loader's (:class:`R2ROptions`; the test split is ``test``,
    whose reference paths the generator keeps) and the generator's (:class:`HousesOptions`: ``seed``,
    ``train_houses``, ``train_paths``, ``image_size``, ...)."""

    test_split: str = "test"

    def __post_init__(self) -> None:
        R2ROptions.__post_init__(self)
        HousesOptions.__post_init__(self)

    def generator_options(self) -> HousesOptions:
        return HousesOptions(**{f.name: getattr(self, f.name) for f in fields(HousesOptions)})


class R2RHousesDataModule(R2RDataModule):
    """The built-in R2R-houses dataset (:mod:`vltk.tasks.navigation.r2r.houses`), generated on first use
    into ``$VLTK_CACHE/datasets`` (or ``cache_dir``) and then read exactly as the published R2R files are.

    Args:
        cache_dir: where the generated houses go (``None``: vltk's cache).
        progress: show progress bars while generating.
        options: :class:`R2RHousesOptions`.
    """

    options_type: ClassVar[type[LoaderOptions]] = R2RHousesOptions
    options: R2RHousesOptions

    def __init__(self, *, cache_dir: str | None = None, progress: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.cache_dir, self.progress = cache_dir, progress

    def data_paths(self) -> dict[str, Path]:
        if self.paths["instructions"] is None:
            root = ensure_houses(self.options.generator_options(), self.cache_dir, progress=self.progress)
            self.paths = {
                "instructions": root,
                "connectivity": root / "connectivity",
                "features": root / "features",
            }
            self.test_references = str(root / "test_references.json")
        return super().data_paths()

    def prepare_data(self) -> None:
        """Generate the houses (once, atomically into the cache: concurrent DDP ranks are safe)."""
        self.data_paths()
