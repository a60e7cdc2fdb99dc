"""vltk: a vision-language toolkit in the CNN + RNN + attention lineage.

The library (this package) is plain PyTorch: image/text encoders (``vltk.encoders``), attention
(``vltk.attention``), caption decoders (``vltk.decoders``), decoding (``vltk.decoding``), assembled models
(``vltk.models``), vocabularies (``vltk.text``), datasets (``vltk.data``) and metrics (``vltk.metrics``).
The Lightning systems live in ``vltk.tasks`` and the command line in ``vltk.cli``.
"""

__version__ = "0.1.0"


def from_pretrained(directory):
    """A model ready for inference from a ``vltk export`` directory or a ``vltk train`` checkpoint, for every
    task: captioning, vqa, lm, navigation (:func:`vltk.export.from_pretrained`)."""
    from vltk.export import from_pretrained as load

    return load(directory)
