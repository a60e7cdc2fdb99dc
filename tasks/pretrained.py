"""Trained models ready for inference in plain PyTorch (no Lightning): one class per task, and the loaders
that rebuild them from a checkpoint's or an export's ``hyper_parameters`` and state dict.

:func:`vltk.from_pretrained` reads a ``vltk export`` directory or a ``vltk train`` checkpoint and calls the
loader of its task in :data:`PRETRAINED_LOADERS`. A loader takes the system's constructor arguments
(``config``, ``vocab`` and, for VQA, ``answers``), the system's state dict (the network's weights under
``model.``) and the source path (for error messages), builds the network with the same builder the task's
Lightning system uses, loads the weights and returns the inference object in eval mode. Adding a task is one
entry in that dict.

* captioning: :class:`PretrainedCaptioner` -- ``.caption(images)``;
* vqa: :class:`PretrainedVqa` -- ``.answer(images, question, top_k=5)``;
* lm: :class:`PretrainedLanguageModel` -- ``.sample(prime, length, temperature, seed)``;
* navigation: :class:`PretrainedAgent` -- ``.play(seed, level=None)`` runs one BabyAI episode;
* dialog: :class:`PretrainedDialog` -- ``.chat(image, caption).ask(question)``.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

import vltk
from vltk.decoding import BeamResult
from vltk.errors import VltkError
from vltk.export import read_model
from vltk.tasks.captioning.model import Captioner, build_captioner
from vltk.text import Vocabulary

logger = logging.getLogger(__name__)

STATE_PREFIX = "model."

Loader = Callable[[Mapping[str, Any], Mapping[str, torch.Tensor], Path], Any]


_KEYS = re.compile(r'(Missing|Unexpected) key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)')
_SHAPE = r"torch\.Size\(\[[^\]]*\]\)"
_SIZE_MISMATCH = re.compile(
    rf"size mismatch for ([^:]+): copying a param with shape ({_SHAPE}) from checkpoint, "
    rf"the shape in current model is ({_SHAPE})"
)


def weights_summary(error: Exception) -> str:
    """One line out of ``load_state_dict``'s multi-line error: the counts and first names of the missing
    and unexpected keys, and the first size mismatch."""
    text = str(error)
    parts = []
    for kind, names in _KEYS.findall(text):
        keys = re.findall(r'"([^"]*)"', names)
        shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        parts.append(f"{len(keys)} {kind.lower()} ({shown})")
    mismatch = _SIZE_MISMATCH.search(text)
    if mismatch:
        name, stored, expected = mismatch.groups()
        parts.append(f"{name} has shape {stored} in the file, {expected} in the model")
    return "; ".join(parts) or " ".join(text.split())[:300]


def load_network(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | Path) -> nn.Module:
    """Load the ``model.*`` weights of a system state dict into ``model`` (strictly); eval mode."""
    state = {k[len(STATE_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(STATE_PREFIX)}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise VltkError(
            f"{source}: the weights do not fit the configured model ({weights_summary(error)})"
        ) from None
    return model.eval()


def _hyper_parameter(hyper_parameters: Mapping[str, Any], key: str, source: str | Path) -> Any:
    if key not in hyper_parameters:
        raise VltkError(
            f"{source} is not a complete vltk model: '{key}' is missing from its hyper-parameters"
        )
    return hyper_parameters[key]


# ------------------------------------------------------------------------------------------------ captioning
@dataclass
class PretrainedCaptioner:
    """A captioner ready for inference: the model, its vocabulary and its image preprocessing."""

    model: Captioner
    vocab: Vocabulary

    @torch.no_grad()
    def caption(
        self, images: Sequence[Image.Image], *, beam_size: int = 3, max_length: int = 20
    ) -> list[str]:
        """Captions for PIL images (any size/mode is converted by the encoder's transforms)."""
        transform = self.model.encoder.transforms()
        batch = torch.stack([transform(image.convert("RGB")) for image in images])  # [B, 3, H, W]
        result = self.model.generate(
            self.model.encode(batch), method="beam", beam_size=beam_size, max_length=max_length
        )
        best = result.best() if isinstance(result, BeamResult) else result
        return [self.vocab.decode(row[:n]) for row, n in zip(best.tokens.tolist(), best.lengths.tolist())]


def captioner_from_parts(
    config: dict, vocab_json: str, state_dict: Mapping[str, torch.Tensor], source: str | Path
) -> tuple[Captioner, Vocabulary]:
    """Build the captioner a config describes and load the ``model.*`` weights of a system state dict."""
    vocab = Vocabulary.from_json(vocab_json)
    model = build_captioner(
        config["model"],
        vocab_size=len(vocab),
        start_id=vocab.start_id,
        end_id=vocab.end_id,
        pad_id=vocab.pad_id,
    )
    return load_network(model, state_dict, source), vocab


def _load_captioner(hp: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], source: Path) -> Any:
    config, vocab = _hyper_parameter(hp, "config", source), _hyper_parameter(hp, "vocab", source)
    return PretrainedCaptioner(*captioner_from_parts(config, vocab, state_dict, source))


def load_captioner(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> PretrainedCaptioner:
    """Rebuild the captioner stored in a ``vltk train captioning`` checkpoint (or export), in eval mode."""

    exported = read_model(checkpoint, map_location=map_location)
    if exported.task != "captioning":
        raise VltkError(f"{checkpoint} holds a '{exported.task}' model, not a captioner")
    return _load_captioner(exported.hyper_parameters, exported.state_dict, Path(checkpoint))


# ------------------------------------------------------------------------------------------------------- vqa
@dataclass
class PretrainedVqa:
    """A VQA model ready for inference (:mod:`vltk.tasks.vqa.model`).

    Attributes:
        model: the network (image encoder, question encoder, answer head).
        vocab: the question vocabulary.
        answers: the answer vocabulary, in class order.
        max_question_length: questions are cut to this many words, as in training.
    """

    model: Any
    vocab: Vocabulary
    answers: list[str]
    max_question_length: int = 20

    def question_ids(self, question: str) -> tuple[list[int], list[str]]:
        """The question's token ids (cut to ``max_question_length``) and its words outside the vocabulary
        (read as ``<unk>``). An empty question, or one without a known word, is an error."""
        words = self.vocab.tokenize(question)
        if not words:
            raise VltkError(
                "the question is empty: ask something, e.g. --question 'what color is the shape?'"
            )
        unknown = [w for w in words if w not in self.vocab]
        if len(unknown) == len(words):
            raise VltkError(
                f"none of the question's words ({', '.join(words)}) is in the model's vocabulary of "
                f"{len(self.vocab)} words; rephrase it with words seen in training"
            )
        return self.vocab.encode(words, add_special=False)[: self.max_question_length], unknown

    @torch.no_grad()
    def forward(self, image: Image.Image, ids: Sequence[int]) -> Any:
        """The model's :class:`~vltk.tasks.vqa.model.VqaOutput` for one image and one encoded question."""
        batch = self.model.encoder.transforms()(image.convert("RGB")).unsqueeze(0)  # [1, 3, H, W]
        tokens = torch.tensor([list(ids)], dtype=torch.long)  # [1, T]
        lengths = torch.tensor([len(ids)])  # [1]
        return self.model(batch, torch.zeros(1, dtype=torch.long), tokens, lengths)

    def rank(self, logits: torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` answers of one question's ``[A]`` logits with their probabilities, best first."""
        probabilities = logits.softmax(dim=-1)  # [A]
        top = probabilities.topk(min(top_k, len(probabilities)))
        return [(self.answers[int(i)], float(p)) for p, i in zip(top.values, top.indices)]

    def answer(
        self, images: Sequence[Image.Image], question: str, *, top_k: int = 5
    ) -> list[list[tuple[str, float]]]:
        """The ``top_k`` answers (with probabilities) to ``question`` about each PIL image."""
        ids, _ = self.question_ids(question)
        return [self.rank(self.forward(image, ids).logits[0], top_k) for image in images]


def _load_vqa(hp: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], source: Path) -> PretrainedVqa:
    from vltk.tasks.vqa.model import build_vqa_model

    config = _hyper_parameter(hp, "config", source)
    vocab = Vocabulary.from_json(_hyper_parameter(hp, "vocab", source))
    answers = list(_hyper_parameter(hp, "answers", source))
    model = build_vqa_model(
        config["model"], vocab_size=len(vocab), num_answers=len(answers), pad_id=vocab.pad_id
    )
    max_length = int(config.get("data", {}).get("max_question_length", 20))
    return PretrainedVqa(load_network(model, state_dict, source), vocab, answers, max_length)


# -------------------------------------------------------------------------------------------------------- lm
@dataclass
class PretrainedLanguageModel:
    """A language model ready for sampling (:class:`vltk.tasks.lm.model.RNNLanguageModel`).

    Attributes:
        model: the network.
        vocab: its :class:`vltk.tasks.lm.vocab.SymbolVocabulary` (characters or words).
        defaults: the run's ``sample`` section (``prime``, ``length``, ``temperature``).
    """

    model: Any
    vocab: Any
    defaults: dict[str, Any]

    def sample(
        self,
        prime: str | None = None,
        length: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> str:
        """``length`` symbols sampled after ``prime`` at ``temperature`` (the prime is not included).

        Args:
            prime: text fed to the model first; every symbol must be in the vocabulary. Empty: the sample
                starts after a newline (or the first symbol of the vocabulary). ``None``: the run's default.
            length: number of symbols to sample (characters or words); ``None``: the run's default.
            temperature: > 0; lower is more conservative, 1 samples the model's own distribution.
            seed: seed of the sampler (``None``: torch's global generator).
        """
        prime = self.defaults.get("prime", "\n") if prime is None else prime
        length = int(self.defaults.get("length", 300)) if length is None else length
        temperature = float(self.defaults.get("temperature", 1.0)) if temperature is None else temperature
        if length < 0:
            raise VltkError(f"--length must be >= 0, got {length}")
        if temperature <= 0:
            raise VltkError(f"--temperature must be > 0, got {temperature}")
        unknown = self.vocab.unknown(prime)
        if unknown:
            shown = ", ".join(repr(s) for s in unknown[:10])
            raise VltkError(f"--prime contains symbols the model never saw in training: {shown}")
        ids = self.vocab.encode(prime) or self.vocab.encode("\n") or [1]
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        model = self.model
        if model.output.weight.device.type != "cpu":
            model = copy.deepcopy(model).cpu()  # sampling is sequential and small: the CPU is fine
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                prime_ids = torch.tensor(ids, dtype=torch.long)  # [P]
                sampled = model.generate(prime_ids, length, temperature=temperature, generator=generator)
        finally:
            model.train(was_training)
        return self.vocab.decode(sampled.tolist())


def _load_lm(
    hp: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], source: Path
) -> PretrainedLanguageModel:
    from vltk.registry import build
    from vltk.tasks.lm.model import LANGUAGE_MODELS
    from vltk.tasks.lm.vocab import SymbolVocabulary

    config = _hyper_parameter(hp, "config", source)
    vocab = SymbolVocabulary.from_json(_hyper_parameter(hp, "vocab", source))
    model = build(LANGUAGE_MODELS, config["model"], path="model", vocab_size=len(vocab))
    return PretrainedLanguageModel(
        load_network(model, state_dict, source), vocab, dict(config.get("sample", {}))
    )


# ------------------------------------------------------------------------------------------------ navigation
@dataclass
class PretrainedAgent:
    """A BabyAI instruction-following agent ready to play
    (:class:`vltk.tasks.navigation.agent.NavigationAgent`).

    Attributes:
        model: the network.
        vocab: the instruction vocabulary.
        level: the BabyAI level it was trained on (the default level to play).
        observation: ``symbolic`` or ``rgb``, as it was trained.
    """

    model: Any
    vocab: Vocabulary
    level: str
    observation: str = "symbolic"

    def play_many(
        self,
        seeds: Sequence[int],
        *,
        level: str | None = None,
        record: bool = False,
        shortest_paths: bool = True,
    ) -> list[Any]:
        """One greedy episode per seed (:func:`vltk.tasks.navigation.babyai.rollout`), played together.

        Args:
            seeds: episode seeds.
            level: a BabyAI level id (default: the training level).
            record: keep each step's action, word attention and frame (without it, only the outcome).
            shortest_paths: also search each episode's shortest solution, its ``shortest`` (SPL).
        """
        from vltk.tasks.navigation.agent import AgentPolicy
        from vltk.tasks.navigation.babyai.env import check_level
        from vltk.tasks.navigation.babyai.rollout import rollout

        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            return rollout(
                AgentPolicy(self.model, self.vocab, device),
                check_level(level) if level else self.level,
                [int(s) for s in seeds],
                observation=self.observation,
                batch_size=max(len(seeds), 1),
                record=record,
                shortest_paths=shortest_paths,
            )
        finally:
            self.model.train(was_training)

    def play(self, seed: int, *, level: str | None = None) -> Any:
        """One episode of ``level`` (default: the training level) by ``seed``: a
        :class:`vltk.metrics.navigation.EpisodeResult` with the mission, ``success``, ``reward``,
        ``length``, the ``shortest`` length and, per step, the ``actions``, the word ``attention`` and the
        ``frames``."""
        (episode,) = self.play_many([seed], level=level, record=True)
        return episode


def _load_agent(
    hp: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], source: Path
) -> PretrainedAgent:
    from vltk.tasks.navigation.agent import build_navigation_agent

    config = _hyper_parameter(hp, "config", source)
    vocab = Vocabulary.from_json(_hyper_parameter(hp, "vocab", source))
    data = config.get("data", {})
    observation = data.get("observation", "symbolic")
    model = build_navigation_agent(config["model"], vocab_size=len(vocab), observation=observation,
                                   pad_id=vocab.pad_id)  # fmt: skip
    return PretrainedAgent(
        load_network(model, state_dict, source), vocab, str(data.get("level")), observation
    )


# ---------------------------------------------------------------------------------------------------- dialog
@dataclass
class PretrainedDialog:
    """A visual dialog model ready for conversations (:mod:`vltk.tasks.dialog.model`).

    Attributes:
        model: the network (image encoder, late fusion encoder, answer decoder).
        vocab: its vocabulary.
        answers: the training answers a discriminative model ranks for free questions.
        config: the run's resolved config (the lengths used in training, the decoding options).
    """

    model: Any
    vocab: Vocabulary
    answers: list[str]
    config: Mapping[str, Any]

    def chat(self, image: Image.Image, caption: str = "", **options: Any) -> Any:
        """A :class:`~vltk.tasks.dialog.session.DialogSession` about ``image``: ``session.ask(question)``
        answers with the history so far. ``options`` override the trained lengths and the decoding
        (``beam_size``, ``max_length``...)."""
        from vltk.tasks.dialog.session import DialogSession, session_settings

        settings = {**session_settings(self.config), **options}
        return DialogSession(self.model, self.vocab, image, caption, answers=self.answers, **settings)


def _load_dialog(
    hp: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], source: Path
) -> PretrainedDialog:
    from vltk.tasks.dialog.model import build_dialog_model

    config = _hyper_parameter(hp, "config", source)
    vocab = Vocabulary.from_json(_hyper_parameter(hp, "vocab", source))
    model = build_dialog_model(
        config["model"], vocab_size=len(vocab), pad_id=vocab.pad_id, start_id=vocab.start_id,
        end_id=vocab.end_id, length_normalise=bool(config.get("length_normalise", False)),
    )  # fmt: skip
    answers = list(_hyper_parameter(hp, "answers", source))
    return PretrainedDialog(load_network(model, state_dict, source), vocab, answers, config)


PRETRAINED_LOADERS: dict[str, Loader] = {
    "captioning": _load_captioner,
    "vqa": _load_vqa,
    "lm": _load_lm,
    "navigation": _load_agent,
    "dialog": _load_dialog,
}
"""Task name -> loader ``(hyper_parameters, state_dict, source) -> inference object``."""


def build_pretrained(
    task: str, hyper_parameters: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], source: str | Path
) -> Any:
    """The inference object of ``task`` (see :data:`PRETRAINED_LOADERS`)."""
    loader = PRETRAINED_LOADERS.get(task)
    if loader is None:
        known = ", ".join(sorted(PRETRAINED_LOADERS))
        raise VltkError(
            f"{source} holds a '{task}' model; vltk.from_pretrained knows {known}. "
            "Load any task's Lightning system with vltk.tasks.runner.load_system(PATH)."
        )
    return loader(hyper_parameters, state_dict, Path(source))


def from_pretrained(path: str | Path) -> Any:
    """A model ready for inference (eval mode, CPU) from an export directory or a ``.ckpt`` file.

    Captioning gives a :class:`~vltk.tasks.pretrained.PretrainedCaptioner` (``.caption(images)``), vqa a
    :class:`~vltk.tasks.pretrained.PretrainedVqa` (``.answer(images, question)``), lm a
    :class:`~vltk.tasks.pretrained.PretrainedLanguageModel` (``.sample(prime, length, temperature, seed)``)
    and navigation a :class:`~vltk.tasks.pretrained.PretrainedAgent` (``.play(seed)``); see
    :data:`~vltk.tasks.pretrained.PRETRAINED_LOADERS`.
    """
    model = read_model(path)
    written_by = (model.provenance or {}).get("vltk")
    if written_by is not None and written_by != vltk.__version__:
        logger.warning("%s was written by vltk %s; this is vltk %s: results may differ",
                       path, written_by, vltk.__version__)  # fmt: skip
    return build_pretrained(model.task, model.hyper_parameters, model.state_dict, path)
