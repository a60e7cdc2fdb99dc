"""Attention over image regions: additive (Bahdanau et al. 2015) and dot/general (Luong et al. 2015).

Build one from a config spec with :func:`vltk.registry.build`; ``query_dim`` and ``key_dim`` are wired by
the caller (the decoder's hidden size and the encoder's ``out_dim``) and never appear in configs::

    build(ATTENTIONS, {"name": "additive", "dim": 256}, path="model.decoder.attention",
          query_dim=512, key_dim=2048)
"""

from vltk.attention.additive import AdditiveAttention
from vltk.attention.luong import DotAttention, GeneralAttention
from vltk.attention.masked import masked_softmax, weighted_sum
from vltk.registry import Registry

ATTENTIONS = Registry(
    "attention",
    {
        "additive": AdditiveAttention,
        "dot": DotAttention,
        "general": GeneralAttention,
    },
)

__all__ = [
    "ATTENTIONS",
    "AdditiveAttention",
    "DotAttention",
    "GeneralAttention",
    "masked_softmax",
    "weighted_sum",
]
