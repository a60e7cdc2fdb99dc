"""The visual dialog inference object: a trained dialog model, its vocabulary, its answer bank, the lengths
it was trained with and its checkpoint's decoding.

:class:`DialogAnswerer` opens the conversations (:class:`vltk.tasks.dialog.session.DialogSession`) that
:func:`vltk.from_pretrained`, ``vltk chat`` and ``vltk predict`` hold about an image. Evaluation ranks each
round's 100 candidate answers (``DialogTask``), which needs no free answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from torch import Tensor

from vltk.export import hyper_parameter, load_network
from vltk.tasks.dialog.model import DialogModel, build_dialog_model
from vltk.tasks.dialog.session import DIALOG_DECODING, DialogSession
from vltk.tasks.training import DecodingConfig, override_decoding
from vltk.text import Vocabulary


@dataclass(frozen=True)
class DialogLengths:
    """The lengths a dialog model was trained with (its ``data`` section): questions, answers and history
    are cut to these many tokens."""

    max_question_length: int = 20
    max_answer_length: int = 12
    max_history_length: int = 100

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> DialogLengths:
        """The lengths of a resolved ``data`` section (the defaults where it names none)."""
        return cls(
            int(data.get("max_question_length", cls.max_question_length)),
            int(data.get("max_answer_length", cls.max_answer_length)),
            int(data.get("max_history_length", cls.max_history_length)),
        )


@dataclass
class DialogAnswerer:
    """A visual dialog model ready for conversations (:mod:`vltk.tasks.dialog.model`).

    Attributes:
        model: the network (image encoder, late fusion encoder, answer decoder).
        vocab: its vocabulary.
        answers: the training answers a discriminative model ranks for free questions.
        lengths: the lengths used in training.
        decoding: how a generative model writes answers: the checkpoint's ``decoding`` section.
    """

    task: ClassVar[str] = "dialog"

    model: DialogModel
    vocab: Vocabulary
    answers: list[str]
    lengths: DialogLengths = field(default_factory=DialogLengths)
    decoding: DecodingConfig = field(default_factory=lambda: DIALOG_DECODING)

    @classmethod
    def from_checkpoint(
        cls, config: Any, hyper_parameters: Mapping[str, Any], state_dict: Mapping[str, Tensor], source: Path
    ) -> DialogAnswerer:
        """The answerer of a checkpoint or export: ``config`` is its parsed ``DialogConfig``; the vocabulary
        and the answer bank come from ``hyper_parameters``, the ``model.*`` weights from ``state_dict``."""
        vocab = Vocabulary.from_json(hyper_parameter(hyper_parameters, "vocab", source))
        answers = list(hyper_parameter(hyper_parameters, "answers", source))
        network = build_dialog_model(
            config.model, vocab_size=len(vocab), pad_id=vocab.pad_id, start_id=vocab.start_id,
            end_id=vocab.end_id, length_normalise=config.length_normalise,
        )  # fmt: skip
        network = load_network(network, state_dict, source, cls.task)
        return cls(network, vocab, answers, DialogLengths.of(config.data), config.decoding)

    @property
    def generative(self) -> bool:
        """Whether the model writes its answers (else it ranks its answer bank)."""
        return bool(self.model.generative)

    def chat(self, image: Image.Image, caption: str = "", **overrides: Any) -> DialogSession:
        """A conversation about ``image``: ``session.ask(question)`` answers with the history so far.
        ``overrides`` replace the checkpoint's decoding, e.g. ``beam_size=5``, ``max_length=6`` or
        ``method="greedy"`` (:func:`vltk.tasks.training.override_decoding`)."""
        lengths, decoding = self.lengths, override_decoding(self.decoding, overrides)
        return DialogSession(
            self.model, self.vocab, image, caption, answers=self.answers,
            max_question_length=lengths.max_question_length, max_answer_length=lengths.max_answer_length,
            max_history_length=lengths.max_history_length, decoding=decoding,
        )  # fmt: skip
