"""VQA accuracy as the official VQA evaluation computes it (Antol et al. 2015, *VQA: Visual Question
Answering*; Goyal et al. 2017, *Making the V in VQA Matter*), without the evaluation toolkit.

The rules, reimplemented from the published description and behaviour of the official ``vqaEval.py``:

* every answer (predicted and ground truth) has ``\\n`` and ``\\t`` replaced by spaces and is stripped;
* **only when the ground-truth answers of a question disagree** (more than one distinct string) are the
  answers normalised: punctuation (:func:`process_punctuation`), then number words to digits, articles
  dropped and contractions restored (:func:`process_digit_article`); unanimous ground truth is compared
  with the prediction as it is (case-insensitively);
* accuracy of a prediction = the mean, over the 10 leave-one-out subsets of 9 human answers, of
  ``min(1, #matches / 3)`` (matches compared case-insensitively);
* the split's accuracy is the mean over questions; per answer type and per question type likewise.

Accuracies are fractions in ``[0, 1]`` (the toolkit prints ``100 *`` the value rounded to 2 decimals).
A question with a single ground-truth answer (easy-VQA) is scored by exact match after normalisation:
with one answer there is no leave-one-out subset to average over.

:class:`VqaMetrics` is the metric object a Lightning system feeds; it gathers every rank's answers and
drops the repeats that distributed samplers add, by question id, as :class:`~vltk.metrics.CaptionMetrics`
does.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vltk.errors import DataError

logger = logging.getLogger(__name__)

QuestionId = Hashable

# Contractions written without the apostrophe -> with it (the table of the official evaluation code,
# entries with capitals included although lower-cased text never matches them).
_CONTRACTION_PAIRS = """
aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've
couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've
hadn'tve hadn't've|hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's
howd how'd|howll how'll|hows how's|Id've I'd've|I'dve I'd've|Im I'm|Ive I've|isnt isn't|itd it'd
itd've it'd've|it'dve it'd've|itll it'll|let's let's|maam ma'am|mightnt mightn't|mightnt've mightn't've
mightn'tve mightn't've|mightve might've|mustnt mustn't|mustve must've|neednt needn't|notve not've
oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at|'ow'sat 'ow's'at|shant shan't
shed've she'd've|she'dve she'd've|she's she's|shouldve should've|shouldnt shouldn't
shouldnt've shouldn't've|shouldn'tve shouldn't've|somebody'd somebodyd|somebodyd've somebody'd've
somebody'dve somebody'd've|somebodyll somebody'll|somebodys somebody's|someoned someone'd
someoned've someone'd've|someone'dve someone'd've|someonell someone'll|someones someone's
somethingd something'd|somethingd've something'd've|something'dve something'd've
somethingll something'll|thats that's|thered there'd|thered've there'd've|there'dve there'd've
therere there're|theres there's|theyd they'd|theyd've they'd've|they'dve they'd've|theyll they'll
theyre they're|theyve they've|twas 'twas|wasnt wasn't|wed've we'd've|we'dve we'd've|weve we've
werent weren't|whatll what'll|whatre what're|whats what's|whatve what've|whens when's|whered where'd
wheres where's|whereve where've|whod who'd|whod've who'd've|who'dve who'd've|wholl who'll|whos who's
whove who've|whyll why'll|whyre why're|whys why's|wont won't|wouldve would've|wouldnt wouldn't
wouldnt've wouldn't've|wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll
yall'd've y'all'd've|y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've
you'dve you'd've|youll you'll|youre you're|youve you've
"""
CONTRACTIONS: dict[str, str] = dict(
    pair.split(" ") for pair in _CONTRACTION_PAIRS.replace("\n", "|").split("|") if pair.strip()
)
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
               ",", "?", "!")  # fmt: skip
# A period not followed by a digit (the official lookbehind is written ``(?!<=\d)``, a no-op lookahead,
# so "1.5" keeps its period only because of the ``(?!\d)`` after it).
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
# The official code passes re.UNICODE as ``count`` to ``sub``: at most 32 periods are removed.
_MAX_PERIODS = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """Delete or blank punctuation as the official evaluation does.

    A punctuation mark next to a space, or any mark when the text has a digit-comma-digit group, is
    deleted; otherwise it becomes a space. Periods not followed by a digit are deleted.
    """
    out = text
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in PUNCTUATION:
        if (mark + " " in text or " " + mark in text) or has_digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_MAX_PERIODS)


def process_digit_article(text: str) -> str:
    """Lower-case, number words to digits, drop articles, restore contractions, single spaces."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(text: str) -> str:
    """The full normalisation (whitespace, punctuation, digits/articles/contractions) of one answer.

    Used to build answer vocabularies; the accuracy applies it only when ground truth disagrees.
    """
    return process_digit_article(process_punctuation(_clean(text)))


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Accuracy of one predicted answer against the human answers of one question, in ``[0, 1]``.

    Args:
        prediction: the predicted answer (raw string).
        answers: the ground-truth answers (VQA: 10 per question; one for easy-VQA).

    Example: with ``answers = ["2"] * 3 + ["3"] * 7`` the prediction ``"two"`` scores 0.9 (9 of the 10
    leave-one-out subsets hold three "2"s; the 3 subsets that drop a "2" hold two: 7 * 1 + 3 * 2/3 = 9).
    """
    if not answers:
        raise DataError("vqa_accuracy needs at least one ground-truth answer")
    truth = [_clean(a) for a in answers]
    predicted = _clean(prediction)
    if len(set(truth)) > 1:
        truth = [process_digit_article(process_punctuation(a)) for a in truth]
        predicted = process_digit_article(process_punctuation(predicted))
    predicted = predicted.lower()
    matches = [a.lower() == predicted for a in truth]
    if len(truth) == 1:
        return float(matches[0])
    total = sum(matches)
    # Leaving out answer i leaves total - matches[i] matching answers among the other n - 1.
    return sum(min(1.0, (total - m) / 3.0) for m in matches) / len(truth)


@dataclass(frozen=True)
class VqaRecord:
    """One evaluated question: its id, the predicted answer, the human answers and their types."""

    question_id: QuestionId
    prediction: str
    answers: tuple[str, ...]
    answer_type: str = "other"
    question_type: str = "other"


@dataclass
class VqaScores:
    """Accuracy overall, per answer type, per question type and per question (fractions in ``[0, 1]``)."""

    accuracy: float
    per_answer_type: dict[str, float]
    per_question_type: dict[str, float]
    per_question: dict[QuestionId, float]

    def metrics(self, *, question_types: bool = False) -> dict[str, float]:
        """``{"accuracy": ..., "accuracy/<answer type>": ...}`` (and ``accuracy/question_type/<type>``)."""
        out = {"accuracy": self.accuracy}
        out.update({f"accuracy/{name}": value for name, value in sorted(self.per_answer_type.items())})
        if question_types:
            out.update(
                {f"accuracy/question_type/{name}": v for name, v in sorted(self.per_question_type.items())}
            )
        return out


def score_vqa_records(records: Iterable[VqaRecord]) -> VqaScores:
    """Official accuracy of every record, averaged overall, per answer type and per question type."""
    per_question: dict[QuestionId, float] = {}
    by_answer_type: dict[str, list[float]] = defaultdict(list)
    by_question_type: dict[str, list[float]] = defaultdict(list)
    for record in records:
        accuracy = vqa_accuracy(record.prediction, record.answers)
        per_question[record.question_id] = accuracy
        by_answer_type[record.answer_type].append(accuracy)
        by_question_type[record.question_type].append(accuracy)
    if not per_question:
        return VqaScores(0.0, {}, {}, {})
    values = list(per_question.values())
    return VqaScores(
        accuracy=sum(values) / len(values),
        per_answer_type={k: sum(v) / len(v) for k, v in by_answer_type.items()},
        per_question_type={k: sum(v) / len(v) for k, v in by_question_type.items()},
        per_question=per_question,
    )


def merge_vqa_records(parts: Iterable[Iterable[VqaRecord]]) -> list[VqaRecord]:
    """Concatenate several ranks' records, keeping the first record of each question id."""
    merged: dict[QuestionId, VqaRecord] = {}
    for part in parts:
        for record in part:
            merged.setdefault(record.question_id, record)
    return list(merged.values())


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class VqaMetrics:
    """VQA accuracy over a whole evaluation split, correct under DDP.

    Usage in a LightningModule::

        self.val_vqa = VqaMetrics()
        # validation_step:
        self.val_vqa.update(batch.question_ids, answers, batch.answers, batch.answer_types,
                            batch.question_types)
        # on_validation_epoch_end (every rank must call compute: it is a collective under DDP):
        self.log_dict(self.val_vqa.compute()); self.val_vqa.reset()

    Args:
        sync_across_ranks: gather answers from every process when ``torch.distributed`` is initialised
            with more than one process.
    """

    def __init__(self, *, sync_across_ranks: bool = True) -> None:
        self.sync_across_ranks = sync_across_ranks
        self._records: dict[QuestionId, VqaRecord] = {}

    def update(
        self,
        question_ids: Sequence[QuestionId] | torch.Tensor,
        predictions: Sequence[str],
        answers: Sequence[Sequence[str]],
        answer_types: Sequence[str] | None = None,
        question_types: Sequence[str] | None = None,
    ) -> None:
        """Add a batch; a question id seen before (a padded repeat) is ignored.

        Args:
            question_ids: ``[B]`` question ids (a list or a tensor).
            predictions: ``B`` predicted answers.
            answers: ``B`` lists of ground-truth answers.
            answer_types: ``B`` answer types (``yes/no``, ``number``, ``other``; easy-VQA: ``color``...).
            question_types: ``B`` question types (VQA v2: the question's prefix, e.g. ``what color is``).
        """
        if isinstance(question_ids, torch.Tensor):
            question_ids = question_ids.tolist()  # [B] -> python ints
        count = len(question_ids)
        answer_types = list(answer_types) if answer_types is not None else ["other"] * count
        question_types = list(question_types) if question_types is not None else ["other"] * count
        if not count == len(predictions) == len(answers) == len(answer_types) == len(question_types):
            raise ValueError(
                f"update() got {count} question ids, {len(predictions)} predictions, {len(answers)} answer "
                f"lists, {len(answer_types)} answer types and {len(question_types)} question types"
            )
        for qid, prediction, truth, a_type, q_type in zip(
            question_ids, predictions, answers, answer_types, question_types
        ):
            if isinstance(truth, str) or len(truth) == 0:
                raise DataError(f"question {qid!r} needs a non-empty list of ground-truth answers: {truth!r}")
            if qid not in self._records:
                self._records[qid] = VqaRecord(qid, str(prediction), tuple(truth), a_type, q_type)

    def reset(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[VqaRecord]:
        """Every question of the split, gathered from all ranks (a collective under DDP), de-duplicated."""
        local = list(self._records.values())
        if not (self.sync_across_ranks and _distributed()):
            return local
        gathered: list[list[VqaRecord] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, local)
        return merge_vqa_records(part or [] for part in gathered)

    def compute_detailed(self) -> VqaScores:
        records = self.records()
        if not records:
            logger.warning("VqaMetrics.compute() called before any update(); returning zeros")
        return score_vqa_records(records)

    def compute(self) -> dict[str, float]:
        """``{"accuracy", "accuracy/<answer type>"...}`` over the whole split; equal on every rank."""
        return self.compute_detailed().metrics()
