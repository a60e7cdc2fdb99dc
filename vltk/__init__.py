"""vltk: a vision-language toolkit in the CNN + RNN + attention lineage.

The library (this package) is plain PyTorch: image/text encoders (``vltk.encoders``), attention
(``vltk.attention``), caption decoders (``vltk.decoders``), decoding (``vltk.decoding``), assembled models
(``vltk.models``), vocabularies (``vltk.text``), datasets (``vltk.data``) and metrics (``vltk.metrics``).
The Lightning systems live in ``vltk.tasks`` and the command line in ``vltk.cli``.
"""

__version__ = "0.1.0"
