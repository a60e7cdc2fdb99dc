"""Visual dialog (Das et al. 2017, *Visual Dialog*): late fusion with discriminative or generative decoders.

``visdial`` / ``shapes_dialog`` / ``shapes_dialog_words``: the data format and the built-in generator;
``history``: dialog history as one token sequence; ``batch`` / ``dataset``: the batch and its collation;
``datamodule`` / ``datasets``: the DataModules by ``data.name``; ``encoders`` / ``decoders`` / ``model``:
the model; ``session``: a conversation about one image; ``system``: the Lightning system; ``predict``
(``vltk chat`` / ``vltk predict``); ``score``: ``vltk score dialog``.
"""
