"""Every registry in vltk, in the order ``vltk list`` shows them.

A registry (:class:`vltk.registry.Registry`) is defined in the subpackage of its components; this module only
gathers them (it lives on the task side because the library under ``vltk/`` never imports ``vltk.tasks``).
A new registry is added to :func:`all_registries`; ``tests/test_registries.py`` fails while one is missing.
"""

from __future__ import annotations

from vltk.attention import ATTENTIONS
from vltk.decoders import DECODERS
from vltk.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
from vltk.registry import Registry
from vltk.rnn import CELLS
from vltk.tasks import R2R_NAVIGATION, TASKS
from vltk.tasks.dialog.model import DIALOG_DECODERS, DIALOG_ENCODERS
from vltk.tasks.lm.model import LANGUAGE_MODELS
from vltk.tasks.navigation.agent import NAVIGATION_AGENTS
from vltk.tasks.navigation.babyai.observation_encoder import OBSERVATION_ENCODERS
from vltk.tasks.navigation.r2r.agents import R2R_AGENTS
from vltk.tasks.validate import VALIDATORS
from vltk.tasks.vqa.model import VQA_MODELS


def all_registries() -> tuple[Registry, ...]:
    """Tasks, each task's datasets, the library's components, each task's model parts, the data formats."""
    datasets = (*(entry.datasets for entry in TASKS.values()), R2R_NAVIGATION.datasets)
    library = (IMAGE_ENCODERS, TEXT_ENCODERS, ATTENTIONS, DECODERS, CELLS)
    models = (VQA_MODELS, DIALOG_ENCODERS, DIALOG_DECODERS, LANGUAGE_MODELS, NAVIGATION_AGENTS, R2R_AGENTS)
    return (TASKS, *datasets, *library, *models, OBSERVATION_ENCODERS, VALIDATORS)
