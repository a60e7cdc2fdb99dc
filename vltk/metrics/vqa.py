"""VQA accuracy as the official VQA evaluation computes it (Antol et al. 2015, *VQA: Visual Question
Answering*; Goyal et al. 2017, *Making the V in VQA Matter*), without the evaluation toolkit.

Restated from the official code, GT-Vision-Lab/VQA ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``
(``VQAEval.evaluate``, ``processPunctuation``, ``processDigitArticle`` and their tables). Two versions of
its ``evaluate`` loop are offered, named by the commit that separates them (``rule=``):

``"a013f00"`` (the default; the head since 2021-03-11, "Fixed processing answers bug"), per question:

1. the prediction and every human answer have ``\\n`` and ``\\t`` replaced by spaces and are stripped;
2. only if the human answers are not all identical (``len(set(answers)) > 1``, compared as they are after
   step 1) do both sides get :func:`process_punctuation` then :func:`process_digit_article`; otherwise
   neither side is normalised;
3. for each human answer entry, the entries *not equal to it* (whole entries: answer text after step 2
   and every other field, such as ``answer_id`` and ``answer_confidence``) are kept; the ones whose answer
   equals the prediction, **case-sensitively**, are counted, and that entry's accuracy is
   ``min(1, count / 3)``;
4. the question's accuracy is the mean of those; overall, per question type and per answer type are means
   of the per-question accuracies.

``"pre-a013f00"`` (the earlier loop, e.g. at commit c4e6a0e, behind the numbers published before 2021):
the prediction is always cleaned (step 1) and given :func:`process_punctuation` then
:func:`process_digit_article`; the human answers are not cleaned and, only when they disagree, are given
:func:`process_punctuation` alone; steps 3 and 4 are the same.

In VQA v2 every entry of a question has its own ``answer_id`` (1..10), so step 3 leaves exactly one entry
out. Entries that are identical dicts are all left out together (a file without ``answer_id``): pass
``answer_fields`` to reproduce that; plain answer strings count as distinct entries.

Accuracies are fractions in ``[0, 1]``, unrounded (the official tool prints ``100 *`` the value rounded
to 2 decimals).

With one answer per question (easy-VQA) step 3 leaves no entry, so the official formula scores every
question 0. Such a split is scored by **exact match** instead (:func:`exact_match`: both sides given
:func:`normalize_answer`, i.e. cleaned, :func:`process_punctuation` and :func:`process_digit_article`),
reported as ``exact_match`` and ``exact_match/<type>`` rather than ``accuracy``.

:class:`VqaMetrics` is the metric object a Lightning system feeds; it gathers every rank's answers and
drops the repeats that distributed samplers add, by question id, as :class:`~vltk.metrics.CaptionMetrics`
does.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from vltk.errors import DataError, VltkError, unknown_choice_message
from vltk.metrics.gather import first_per_key, gather_parts

logger = logging.getLogger(__name__)

QuestionId = Hashable
VqaRule = Literal["a013f00", "pre-a013f00"]
HEAD_RULE: VqaRule = "a013f00"
EARLIER_RULE: VqaRule = "pre-a013f00"
VQA_RULES: tuple[str, ...] = (HEAD_RULE, EARLIER_RULE)
ACCURACY = "accuracy"
EXACT_MATCH = "exact_match"

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
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(\,)(\d)")
# The official code passes re.UNICODE as ``count`` to ``sub``: at most 32 periods are removed.
_MAX_PERIODS = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """``processPunctuation``: delete or blank punctuation as the official evaluation does.

    For each mark of :data:`PUNCTUATION`: when the *original* text has the mark next to a space, or has a
    digit-comma-digit group anywhere, every occurrence is deleted; otherwise each becomes a space. Then
    periods not followed by a digit are deleted (at most 32, the official ``count`` quirk). Case is kept.
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
    """``processDigitArticle``: lower-case, split on whitespace, number words to digits, drop articles,
    restore contractions, join with single spaces."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def clean_answer(text: str) -> str:
    """``\\n`` and ``\\t`` to spaces, then ``strip()``: what the official code does to every answer."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(text: str) -> str:
    """The full normalisation: :func:`clean_answer`, :func:`process_punctuation`,
    :func:`process_digit_article`.

    Used to build answer vocabularies and for :func:`exact_match`; :func:`vqa_accuracy` applies it only
    where the official rule does.
    """
    return process_digit_article(process_punctuation(clean_answer(text)))


def check_rule(rule: str) -> VqaRule:
    """``rule`` if it names a rule of :data:`VQA_RULES`, else a :class:`~vltk.errors.VltkError`."""
    if rule not in VQA_RULES:
        raise VltkError(unknown_choice_message("VQA accuracy rule", str(rule), VQA_RULES))
    return rule  # type: ignore[return-value]


def compared_answers(prediction: str, answers: Sequence[str], rule: str = HEAD_RULE) -> tuple[str, list[str]]:
    """The prediction and the human answers as ``rule`` compares them (steps 1-2 of the module doc)."""
    check_rule(rule)
    if rule == HEAD_RULE:
        predicted, truth = clean_answer(prediction), [clean_answer(a) for a in answers]
        if len(set(truth)) > 1:
            predicted = _punctuation_digit_article(predicted)
            truth = [_punctuation_digit_article(a) for a in truth]
        return predicted, truth
    predicted = _punctuation_digit_article(clean_answer(prediction))
    truth = list(answers)
    if len(set(truth)) > 1:
        truth = [_punctuation(a) for a in truth]
    return predicted, truth


# Answers repeat a lot (VQA v2 val: 2.1M answers, far fewer distinct strings): memoise the pure steps.
@functools.lru_cache(maxsize=1 << 18)
def _punctuation(text: str) -> str:
    return process_punctuation(text)


@functools.lru_cache(maxsize=1 << 18)
def _punctuation_digit_article(text: str) -> str:
    return process_digit_article(process_punctuation(text))


def vqa_accuracy(
    prediction: str,
    answers: Sequence[str],
    *,
    rule: str = HEAD_RULE,
    answer_fields: Sequence[Hashable] | None = None,
) -> float:
    """Official accuracy of one predicted answer against the human answers of one question, in ``[0, 1]``.

    Args:
        prediction: the predicted answer (raw string).
        answers: the human answers (raw strings; VQA: 10 per question).
        rule: ``"a013f00"`` (the official head, default) or ``"pre-a013f00"`` (the earlier loop).
        answer_fields: per answer, a label of its entry's other fields (``answer_id``,
            ``answer_confidence``...): equal labels mean equal fields. The official leave-one-out drops
            every entry equal to the current one (answer after processing and other fields), so identical
            entries leave together. ``None``: every entry differs, as VQA v2's ``answer_id`` makes them.

    Example: with ``answers = ["2"] * 3 + ["3"] * 7`` the prediction ``"two"`` scores 0.9 (the answers
    disagree, so "two" becomes "2"; 7 entries leave three "2"s, 3 leave two: (7 * 1 + 3 * 2/3) / 10). A
    question with one answer scores 0 (nothing is left once it is left out).
    """
    if not answers:
        raise DataError("vqa_accuracy needs at least one ground-truth answer")
    labels: Sequence[Hashable] = range(len(answers)) if answer_fields is None else answer_fields
    if len(labels) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(labels)} answer_fields labels")
    predicted, truth = compared_answers(prediction, answers, rule)
    entries = list(zip(truth, labels))
    copies = Counter(entries)
    matching = [answer == predicted for answer in truth]
    total = sum(matching)
    accuracies = []
    for entry, matches in zip(entries, matching):
        left_out = copies[entry] if matches else 0  # every entry equal to this one is left out
        accuracies.append(min(1, (total - left_out) / 3))
    return sum(accuracies) / len(accuracies)


def exact_match(prediction: str, answer: str) -> float:
    """1.0 when prediction and answer agree after :func:`normalize_answer` of both, else 0.0 (the score of
    questions with a single human answer, where the official formula gives 0)."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


@dataclass(frozen=True)
class VqaRecord:
    """One evaluated question: its id, the predicted answer, the human answers and their types.

    ``answer_fields``: see :func:`vqa_accuracy` (``None``: the answers are distinct entries).
    """

    question_id: QuestionId
    prediction: str
    answers: tuple[str, ...]
    answer_type: str = "other"
    question_type: str = "other"
    answer_fields: tuple[Hashable, ...] | None = None


@dataclass
class VqaScores:
    """A split's score overall, per answer type, per question type and per question (fractions in
    ``[0, 1]``, unrounded).

    ``name`` is ``"accuracy"`` (the official VQA accuracy under ``rule``) or ``"exact_match"`` (every
    question has one human answer: :func:`exact_match`).
    """

    overall: float
    per_answer_type: dict[str, float]
    per_question_type: dict[str, float]
    per_question: dict[QuestionId, float]
    name: str = ACCURACY
    rule: str = HEAD_RULE

    def metrics(self, *, question_types: bool = False) -> dict[str, float]:
        """``{name: ..., "<name>/<answer type>": ...}`` (and ``<name>/question_type/<type>``)."""
        out = {self.name: self.overall}
        out.update({f"{self.name}/{kind}": value for kind, value in sorted(self.per_answer_type.items())})
        if question_types:
            out.update(
                {f"{self.name}/question_type/{kind}": v for kind, v in sorted(self.per_question_type.items())}
            )
        return out

    def describe(self) -> str:
        """One line saying how the numbers were computed (for the CLI and logs)."""
        count = len(self.per_question)
        if self.name == EXACT_MATCH:
            return (
                f"{count} questions, one human answer each: exact match after the official normalisation "
                "(the official VQA accuracy would score each 0)"
            )
        return f"{count} questions scored with the official VQA accuracy, rule {self.rule} (vqaEval.py)"


def metric_name(records: Sequence[VqaRecord]) -> str:
    """``exact_match`` when every record has exactly one human answer, else ``accuracy``."""
    return EXACT_MATCH if records and all(len(r.answers) == 1 for r in records) else ACCURACY


def score_vqa_records(records: Iterable[VqaRecord], *, rule: str = HEAD_RULE) -> VqaScores:
    """Every record scored and averaged overall, per answer type and per question type.

    The official VQA accuracy under ``rule``; exact match when every question has a single answer (a
    split mixing single and several answers keeps the official accuracy, which scores the single-answer
    questions 0, and logs a warning).
    """
    check_rule(rule)
    records = list(records)
    name = metric_name(records)
    if name == ACCURACY:
        single = sum(len(r.answers) == 1 for r in records)
        if single:
            logger.warning(
                "%d of %d questions have one human answer: the official VQA accuracy scores them 0",
                single, len(records),
            )  # fmt: skip
    per_question: dict[QuestionId, float] = {}
    by_answer_type: dict[str, list[float]] = defaultdict(list)
    by_question_type: dict[str, list[float]] = defaultdict(list)
    values: list[float] = []
    for record in records:
        if record.question_id in per_question:
            raise DataError(f"question {record.question_id!r} is scored twice")
        if name == EXACT_MATCH:
            score = exact_match(record.prediction, record.answers[0])
        else:
            score = vqa_accuracy(
                record.prediction, record.answers, rule=rule, answer_fields=record.answer_fields
            )
        per_question[record.question_id] = score
        values.append(score)
        by_answer_type[record.answer_type].append(score)
        by_question_type[record.question_type].append(score)
    if not values:
        return VqaScores(0.0, {}, {}, {}, name, rule)
    return VqaScores(
        overall=sum(values) / len(values),
        per_answer_type={k: sum(v) / len(v) for k, v in by_answer_type.items()},
        per_question_type={k: sum(v) / len(v) for k, v in by_question_type.items()},
        per_question=per_question,
        name=name,
        rule=rule,
    )


def merge_vqa_records(parts: Iterable[Iterable[VqaRecord]]) -> list[VqaRecord]:
    """Concatenate several ranks' records, keeping the first record of each question id."""
    return first_per_key(parts, lambda record: record.question_id)


class VqaMetrics:
    """VQA accuracy (or exact match, one answer per question) over a whole evaluation split, correct
    under DDP.

    Usage in a LightningModule::

        self.val_vqa = VqaMetrics()
        # validation_step:
        self.val_vqa.update(batch.question_ids, answers, batch.answers, batch.answer_types,
                            batch.question_types)
        # on_validation_epoch_end (every rank must call compute: it is a collective under DDP):
        self.log_dict(self.val_vqa.compute()); self.val_vqa.reset()

    Args:
        rule: the official rule (:data:`VQA_RULES`): ``"a013f00"`` (default) or ``"pre-a013f00"``.
        sync_across_ranks: gather answers from every process when ``torch.distributed`` is initialised
            with more than one process.
    """

    def __init__(self, *, rule: str = HEAD_RULE, sync_across_ranks: bool = True) -> None:
        self.rule = check_rule(rule)
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
            answers: ``B`` lists of ground-truth answers (distinct entries, as VQA v2's ``answer_id``
                makes them).
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
        return merge_vqa_records(gather_parts(list(self._records.values()), self.sync_across_ranks))

    def compute_detailed(self) -> VqaScores:
        records = self.records()
        if not records:
            logger.warning("VqaMetrics.compute() called before any update(); returning zeros")
        return score_vqa_records(records, rule=self.rule)

    def compute(self) -> dict[str, float]:
        """``{"accuracy", "accuracy/<answer type>"...}`` (or ``exact_match...``) over the whole split;
        equal on every rank."""
        return self.compute_detailed().metrics()
