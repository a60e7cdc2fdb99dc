"""The R2R-layout datasets by ``data.name``: the published R2R files, and the built-in houses written in the
same layout."""

from vltk.registry import Registry
from vltk.tasks.navigation.r2r.datamodule import R2RDataModule, R2RHousesDataModule

R2R_DATASETS = Registry("navigation dataset (R2R)", {"r2r": R2RDataModule, "r2r_houses": R2RHousesDataModule})
