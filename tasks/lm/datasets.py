"""The language-modelling datasets by ``data.name``: the rest of a ``data:`` section are the DataModule's
arguments."""

from vltk.registry import Registry
from vltk.tasks.lm.data import PythonSourceDataModule, TextFilesDataModule

LM_DATASETS = Registry("text dataset", {"text": TextFilesDataModule, "python_source": PythonSourceDataModule})
