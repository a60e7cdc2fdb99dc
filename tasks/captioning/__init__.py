"""Image captioning (Vinyals et al. 2015, Show and Tell; Xu et al. 2015, Show, Attend and Tell).

``karpathy`` / ``shapes`` / ``hf_captions``: the data formats and the built-in generator; ``batch``: the
batch and its collation; ``datamodule`` / ``datasets``: the DataModules by ``data.name``; ``model``: the
captioner assembly; ``system``: the Lightning system; ``predict``: ``vltk predict``; ``score``: ``vltk score
captioning``; ``feature_cache``: ``vltk data cache-features``.
"""
