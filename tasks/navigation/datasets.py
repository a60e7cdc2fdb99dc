"""The navigation datasets by ``data.name``, one registry per family of environments: the rest of a ``data:``
section are the DataModule's arguments. ``BABYAI_DATASETS`` play BabyAI grid worlds
(:class:`~vltk.tasks.navigation.system.NavigationConfig`); ``R2R_DATASETS``
(:mod:`vltk.tasks.navigation.r2r.datasets`) move on R2R navigation graphs
(:class:`~vltk.tasks.navigation.r2r.system.R2RConfig`). ``vltk train navigation`` picks the family's config
by ``data.name`` (``vltk.tasks.TaskEntry.for_config``)."""

from vltk.registry import Registry
from vltk.tasks.navigation.babyai.datamodule import BabyAIDataModule

BABYAI_DATASETS = Registry("navigation dataset (BabyAI)", {"babyai": BabyAIDataModule})
