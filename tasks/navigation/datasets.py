"""The navigation datasets by ``data.name`` (one per environment family): the rest of a ``data:`` section are
the DataModule's arguments."""

from vltk.tasks.navigation.babyai.datamodule import BabyAIDataModule

NAVIGATION_DATASETS = {"babyai": BabyAIDataModule}
