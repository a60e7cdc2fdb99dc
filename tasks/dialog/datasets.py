"""The visual dialog datasets by ``data.name``: the rest of a ``data:`` section are the DataModule's
arguments."""

from vltk.registry import Registry
from vltk.tasks.dialog.datamodule import ShapesDialogDataModule, VisDialDataModule

DIALOG_DATASETS = Registry(
    "dialog dataset",
    {
        "shapes_dialog": ShapesDialogDataModule,
        "visdial": VisDialDataModule,
    },
)
