"""The navigation datasets by ``data.name`` (one per environment family): the rest of a ``data:`` section are
the DataModule's arguments."""

from vltk.registry import Registry
from vltk.tasks.navigation.babyai.datamodule import BabyAIDataModule

NAVIGATION_DATASETS = Registry("navigation dataset", {"babyai": BabyAIDataModule})
