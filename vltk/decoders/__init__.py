"""Caption decoders: one base (:class:`CaptionDecoder`) that owns the loops, small recurrent cores.

``vocab_size`` and ``feature_dim`` are wired by the builder (from the vocabulary and the encoder's
``out_dim``) and never appear in configs::

    build(DECODERS, {"name": "show_attend_tell", "hidden_dim": 512}, path="model.decoder",
          vocab_size=len(vocab), feature_dim=encoder.out_dim)
"""

from vltk.decoders.adaptive import AdaptiveAttentionDecoder, AdaptiveState
from vltk.decoders.base import CaptionDecoder, DecoderOutput
from vltk.decoders.show_attend_tell import ShowAttendTellDecoder
from vltk.decoders.show_tell import ShowTellDecoder
from vltk.decoders.state import DecoderState
from vltk.decoders.updown import UpDownDecoder, UpDownState
from vltk.registry import Registry

DECODERS = Registry(
    "caption decoder",
    {
        "show_tell": ShowTellDecoder,
        "show_attend_tell": ShowAttendTellDecoder,
        "updown": UpDownDecoder,
        "adaptive": AdaptiveAttentionDecoder,
    },
)

__all__ = [
    "DECODERS",
    "AdaptiveAttentionDecoder",
    "AdaptiveState",
    "CaptionDecoder",
    "DecoderOutput",
    "DecoderState",
    "ShowAttendTellDecoder",
    "ShowTellDecoder",
    "UpDownDecoder",
    "UpDownState",
]
