"""The language-modelling datasets by ``data.name``: the rest of a ``data:`` section are the DataModule's
arguments."""

from vltk.tasks.lm.data import PythonSourceDataModule, TextFilesDataModule

LM_DATASETS = {"text": TextFilesDataModule, "python_source": PythonSourceDataModule}
