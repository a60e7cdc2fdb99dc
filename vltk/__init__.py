"""vltk: a vision-language toolkit in the CNN + RNN + attention lineage.

The shared library is plain PyTorch, by layer: image/text encoders (``vltk.encoders``), recurrent cells
(``vltk.rnn``), attention (``vltk.attention``), caption decoders (``vltk.decoders``), decoding
(``vltk.decoding``), vocabularies (``vltk.text``), data base classes (``vltk.data``), metrics
(``vltk.metrics``) and pictures (``vltk.viz``). Everything specific to one task (its data formats, batch,
model, Lightning system, inference, scoring) lives under that task's name in ``vltk.tasks.<task>``; the
command line is ``vltk.cli``. The map: ``docs/architecture.md``.
"""

__version__ = "0.1.0"


def from_pretrained(directory):
    """A model ready for inference from a ``vltk export`` directory or a ``vltk train`` checkpoint, for every
    task: captioning, vqa, lm, navigation, dialog (:func:`vltk.tasks.pretrained.from_pretrained`)."""
    from vltk.tasks.pretrained import from_pretrained as load  # the one import of tasks from vltk: the facade

    return load(directory)
