"""The DataModule base (vltk.data.datamodule) and the options dataclasses every task's data section shares."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from vltk.data.datamodule import DataModule, LoaderOptions
from vltk.errors import ConfigError, DataError
from vltk.registry import Registry, check_spec, resolved_spec
from vltk.tasks import TASKS
from vltk.text.vocab import Vocabulary

ALL_DATASETS = [
    (task, name, factory) for task, entry in TASKS.items() for name, factory in entry.datasets.items()
]


@pytest.mark.parametrize(
    ("task", "name", "factory"), ALL_DATASETS, ids=[f"{t}-{n}" for t, n, _ in ALL_DATASETS]
)
def test_a_constructor_never_relists_a_shared_option(task, name, factory):
    """The options dataclass is the one place a shared key is declared: a constructor that takes
    ``**options`` lists none of its fields (else the two defaults could drift apart)."""
    parameters = inspect.signature(factory.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):  # a single source lists its own keys
        return
    fields = {f.name for f in dataclasses.fields(factory.options_type)}
    assert not (set(parameters) - {"self"}) & fields, "a constructor re-lists an option"


def test_an_unknown_option_passed_in_python_is_refused():
    datasets = TASKS["captioning"].datasets
    with pytest.raises(TypeError, match="batch_sise"):
        datasets["shapes"](batch_sise=8)


@pytest.mark.parametrize(
    ("task", "key", "value", "message"),
    [
        ("captioning", "in_memory", "yes", r"data.in_memory = 'yes' has the wrong type: expected bool"),
        ("vqa", "batch_sise", 8, r"unknown config key 'data.batch_sise'; did you mean 'data.batch_size'\?"),
        ("dialog", "eval_batch_size", 1.5, r"expected int \| None"),
        ("lm", "level", "byte", r"expected 'char' \| 'word'"),
        ("navigation", "rollout_batch_sise", 3, r"did you mean 'data.rollout_batch_size'\?"),
    ],
)
def test_option_keys_are_checked_like_any_constructor_argument(task, key, value, message):
    entry = TASKS[task]
    name = next(iter(entry.datasets))
    with pytest.raises(ConfigError, match=message):
        check_spec(entry.datasets, {"name": name, key: value}, "data")


def test_a_dataset_default_that_differs_is_its_own():
    datasets = TASKS["captioning"].datasets
    shapes = resolved_spec(datasets, {"name": "shapes"}, path="data")
    karpathy = resolved_spec(datasets, {"name": "karpathy", "annotations": "a.json"}, path="data")
    assert shapes["in_memory"] is True and karpathy["in_memory"] is False
    vqa = TASKS["vqa"].datasets
    assert resolved_spec(vqa, {"name": "easy_vqa"}, path="data")["top_k_answers"] == 1000
    lm = resolved_spec(TASKS["lm"].datasets, {"name": "python_source", "val_fraction": 0}, path="data")
    assert (
        lm["max_chars"] == 1_000_000 and lm["val_fraction"] == 0.0 and isinstance(lm["val_fraction"], float)
    )


def test_registry_expands_an_options_dataclass_of_any_class():
    @dataclass(frozen=True)
    class Options:
        width: int = 3
        label: str | None = None

    class Widget:
        options_type = Options

        def __init__(self, depth: int, **options) -> None:
            self.depth, self.options = depth, Options(**options)

    class Plain:  # options_type without **options: not expanded
        options_type = Options

        def __init__(self, depth: int) -> None:
            self.depth = depth

    registry = Registry("widget", {"widget": Widget, "plain": Plain})
    assert resolved_spec(registry, {"name": "widget", "depth": 1}, path="w") == {
        "name": "widget",
        "depth": 1,
        "width": 3,
        "label": None,
    }
    with pytest.raises(ConfigError, match="w.width = 'x' has the wrong type: expected int"):
        check_spec(registry, {"name": "widget", "depth": 1, "width": "x"}, "w")
    with pytest.raises(ConfigError, match="unknown config key 'w.width'"):
        check_spec(registry, {"name": "plain", "depth": 1, "width": 2}, "w")


# ---- the base's contract, on a DataModule that reads lists of sentences ---------------------------------


class SentencesDataModule(DataModule):
    """A toy DataModule: splits are lists of sentences; items are token-id tensors."""

    def __init__(self, splits: dict[str, list[str]], **options: Any) -> None:
        super().__init__(**options)
        self.source = splits
        self.reads = 0

    def read_splits(self) -> dict[str, list[str]]:
        self.reads += 1
        return {name: list(sentences) for name, sentences in self.source.items()}

    def build_vocab(self, splits: dict[str, list[str]]) -> Vocabulary:
        if not splits["train"]:
            raise DataError("no training sentences")
        return Vocabulary.build(sentence.split() for sentence in splits["train"])

    def loader(self, split: str, training: bool) -> DataLoader:
        items = [torch.tensor(self.vocab.encode(s.split(), add_special=False)) for s in self.split(split)]
        sampler = self.training_sampler(len(items)) if training else None
        return DataLoader(items, batch_size=self.batch_size, sampler=sampler, collate_fn=list)


SPLITS = {"train": ["a b", "b c", "c a", "a a"], "val": ["a c"], "test": ["b b"], "extra": ["c c"]}


def test_setup_reads_once_and_builds_the_vocabulary_from_train(caplog):
    dm = SentencesDataModule(SPLITS, batch_size=2)
    with pytest.raises(DataError, match="setup"):
        _ = dm.vocab
    dm.setup()
    dm.setup("fit")
    assert dm.reads == 1 and dm.has_vocab and {"a", "b", "c"} <= set(dm.vocab.words)
    assert dm.split("extra") == ["c c"] and len(list(dm.dataloader_for("extra"))) == 1
    with pytest.raises(DataError, match=r"^unknown split 'dev' \(available: extra, test, train, val\)$"):
        dm.dataloader_for("dev")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        dm.split("dev")
    empty = SentencesDataModule({"train": ["a"], "val": [], "test": ["a"]})
    with caplog.at_level("WARNING"):
        empty.setup()
    assert "the val split has no examples" in caplog.text


def test_a_restored_vocabulary_is_kept_and_travels_in_the_state_dict():
    dm = SentencesDataModule(SPLITS)
    assert dm.state_dict() == {}
    dm.setup()
    state = dm.state_dict()
    assert state == {"vocab": dm.vocab.to_json()}
    other = SentencesDataModule({"train": ["x y z"], "val": [], "test": []})
    other.load_state_dict(state)
    other.setup()
    assert other.vocab == dm.vocab and "x" not in other.vocab.words  # restored, not rebuilt
    other.vocab = None  # forget it: the next setup() reads again and builds a new one
    other.setup()
    assert other.reads == 2 and "x" in other.vocab.words


def test_training_order_is_the_resumable_seeded_one():
    dm = SentencesDataModule(SPLITS, batch_size=1)
    dm.shuffle_seed = 7
    first = [batch[0].tolist() for batch in dm.train_dataloader()]
    again = SentencesDataModule(SPLITS, batch_size=1)
    again.shuffle_seed = 7
    again.resume_train_order(0, 2)
    assert [batch[0].tolist() for batch in again.train_dataloader()] == first[2:]
    assert [b[0].tolist() for b in dm.val_dataloader()] == [dm.vocab.encode(["a", "c"], add_special=False)]


def test_options_are_validated_and_unknown_ones_refused():
    with pytest.raises(ConfigError, match=r"data.batch_size must be >= 1, got 0"):
        SentencesDataModule(SPLITS, batch_size=0)
    with pytest.raises(TypeError, match="batch_sise"):
        SentencesDataModule(SPLITS, batch_sise=2)
    assert SentencesDataModule(SPLITS).options == LoaderOptions(batch_size=32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        SentencesDataModule(SPLITS).options.batch_size = 3
