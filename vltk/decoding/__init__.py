"""Decoding functions over the step protocol ``step(tokens [B], state) -> (logprobs [B, V], state)``.

They know nothing about decoders, so captioning, generative dialog and any other generator share them::

    state = decoder.init_state(features)
    result = beam_search(decoder.step, state, batch_size=B, bos_id=1, eos_id=2, pad_id=0, beam_size=3,
                         max_length=20)
"""

from vltk.decoding.beam import beam_search, length_penalty_factor, repeated_trigram_mask
from vltk.decoding.greedy import decode_path, greedy
from vltk.decoding.result import BeamResult, DecodeResult, State, StepFn
from vltk.decoding.sampling import sample

__all__ = [
    "BeamResult",
    "DecodeResult",
    "State",
    "StepFn",
    "beam_search",
    "decode_path",
    "greedy",
    "length_penalty_factor",
    "repeated_trigram_mask",
    "sample",
]
