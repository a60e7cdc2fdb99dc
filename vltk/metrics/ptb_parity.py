"""Checking :func:`~vltk.metrics.caption_tokenizer.tokenize_caption` against the COCO toolkit's Java step.

``pycocoevalcap`` tokenises captions with Stanford CoreNLP 3.4.1's PTBTokenizer (a JFlex lexer, Manning et
al. 2014, The Stanford CoreNLP Natural Language Processing Toolkit) run as
``java -cp stanford-corenlp-3.4.1.jar edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase``.
This module holds the two halves of the parity check that the tests and
``benchmarks/ptb_tokenizer_parity.py`` run:

* :func:`stress_captions`: a deterministic generator of varied, ugly captions (contractions, quotes,
  hyphens, numbers, currency, percentages, ellipses, brackets, unicode, URLs, odd spacing, empty strings,
  punctuation only), mixed with plain COCO-like captions;
* :func:`java_ptb_tokenize`: the reference tokens from the Java tool, exactly as ``PTBTokenizer.tokenize``
  of ``pycocoevalcap`` computes them (one JVM start for the whole list).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

from vltk.errors import VltkError

# fmt: off
SUBJECTS = [
    'a man', 'A woman', 'two dogs', 'The kids', 'a young boy', 'Three people', 'an old lady', 'the cat',
    'a group of skiers', 'A BASEBALL PLAYER', 'my friend', 'someone', 'people', 'a giraffe', 'the chef',
]
VERBS = [
    'is riding', 'are eating', 'sitting on', 'holding', 'stands next to', 'playing with', 'looks at',
    'walking down', 'flies', 'throwing', 'is cutting', 'jumps over', 'carrying', 'parked near',
]
OBJECTS = [
    'a red bus', 'the table', 'a surfboard', 'pizza', 'a frisbee', 'an umbrella', 'the street',
    'a plate of food', 'a laptop computer', 'two kites', 'the beach', 'a tennis racket', 'a cake',
]
WORDS = [
    "man's", "dog's", "kids'", "don't", "can't", "won't", "isn't", "it's", "they're", "we'll", "I'd", "I'm",
    "you've", "ain't", "shouldn't", "y'all", "o'clock", "rock'n'roll", "'90s", "'cause", "'em", 'cannot',
    'gonna', 'wanna', 'gotta', 'lemme', 'gimme', "'tis", "James'", 'Mr.', 'Mrs.', 'Dr.', 'St.', 'U.S.',
    'U.S.A.', 'a.m.', 'p.m.', 'e.g.', 'i.e.', 'etc.', 'vs.', 'Inc.', 'Jan.', 'no.', 'No.', 'fig.',
    'black-and-white', 'T-shirt', 'well-known', 'x-ray', 'hot-dog', '-', '--', '---', '3.5', '1,000', '3/4',
    '1/2', '3 1/2', '10,000.50', '-5', '+3', '5:30', '2.5kg', '10am', '3rd', '1990s', "1990's", '$5',
    '$ 20', '$3.99', 'US$5', '50%', '100 %', '#1', '#hashtag', '@user', '&', 'AT&T', 'and/or',
    'http://www.example.com/a?b=c', 'www.coco.org', 'someone@example.com', '...', '..', '....', '. . .',
    '!!!', '?!', '?', '!', '(', ')', '[', ']', '{', '}', '(a)', '[sic]', '<b>', '<', '>', '=', '+', '*',
    '~', '^', '|', '\\', '/', '_', '__init__', ':-)', ':)', ';)', '\u201ccurly\u201d', '\u2018single\u2019',
    '\u2014', '\u2013', '\u2026', 'caf\xe9', 'na\xefve', '\xfcber', '\xbd', '\xb0C', '25\xb0', '\u20ac5',
    '\xa35', '\xa5', '\xa9', '\u2122', '\xe9t\xe9', '\u4e2d\u6587', '\U0001f600', 'ALL-CAPS', 'MiXeD',
    "It's", "DON'T", "CAN'T", "Let's", "'", "''", '``', '"', '`', "'s", "n't", "don'ts", "x'y", "'n'",
    'Calif.', 'Pa.', 'Wash.', 'corp.', 'Ltd.', 'I.', 'A.', 'B.C.', '3.', '1.5.', 'a.b.c', 'hello.world',
    'e-mail', 'co-op', 're-', '-ish', 'pre-1990', '1-2', '10-15', '7-Eleven',
]
PUNCT_ENDINGS = [
    '', '.', ' .', '!', '?', '...', ' ...', '. ', '..', '!!', '?!', ';', ':', ',', '-', '."',
]
SPACES = [
    ' ', ' ', ' ', ' ', '  ', '\t', ' \t ', '   ',
]
FIXED = [
    '', ' ', '\t', '.', '...', '!?', "''", '"', '( )', '- - -', '. , ; :', 'a', 'A.', 'I.', "a man's dog.",
    'He said "hi" and left.', "'Quoted' words in 'single quotes'.", "``already'' in ``ptb'' form",
    "The dogs' bowls cost $5 or 50% of U.S. prices.", 'Mr. Smith walks on Main St. at 5:30 p.m.',
    'He said no. The no. 5 bus.', 'It costs 3 1/2 dollars (approx.) -- cheap!',
    'A sign reads STOP., then a bus', 'Wow!!! really?!',
    '\u201cCurly\u201d quotes \u2014 and \u2026 dashes', "ALL CAPS CAPTION WITH DON'T AND CAN'T",
]
# fmt: on


def _plain(rng: random.Random) -> str:
    """A COCO-like caption: subject, verb, object, optional ending."""
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    if rng.random() < 0.3:
        text = text.capitalize()
    return text + rng.choice(PUNCT_ENDINGS)


def _ugly(rng: random.Random, glue: float) -> str:
    """A caption with one to six odd words inserted into a plain one, odd spacing, odd case."""
    words = _plain(rng).split(" ")
    for _ in range(rng.randint(1, 6)):
        word = rng.choice(WORDS)
        if rng.random() < 0.15:
            word = word.upper()
        elif rng.random() < 0.1:
            word = word.capitalize()
        words.insert(rng.randint(0, len(words)), word)
    if rng.random() < glue:  # glue two words together ("dog's(" , "stop.Then")
        position = rng.randrange(len(words) - 1)
        words[position : position + 2] = [words[position] + words[position + 1]]
    text = ""
    for index, word in enumerate(words):
        text += (rng.choice(SPACES) if index else "") + word
    if rng.random() < 0.1:
        text = rng.choice(SPACES) + text + rng.choice(SPACES)
    return text


def stress_captions(count: int, seed: int = 0, glue: float = 0.2) -> list[str]:
    """``count`` captions: the fixed probes first, then a mix of plain (30%) and ugly (70%) ones.

    Args:
        count: number of captions (at least the number of fixed probes is useful).
        seed: seed of the generator; the same seed gives the same list.
        glue: share of ugly captions in which two neighbouring words are glued together without a space
            ("man'sat", "the10,000.50"): the hardest class for a regular-expression tokenizer.
    """
    rng = random.Random(seed)
    captions = list(FIXED[:count])
    while len(captions) < count:
        captions.append(_plain(rng) if rng.random() < 0.3 else _ugly(rng, glue))
    return captions


def stanford_jar() -> Path:
    """The Stanford CoreNLP 3.4.1 jar shipped with ``pycocoevalcap`` (:class:`VltkError` if unavailable)."""
    try:
        import pycocoevalcap.tokenizer.ptbtokenizer as ptb
    except ImportError as error:
        raise VltkError(f"pycocoevalcap is not installed ({error}); pip install 'vltk[coco]'") from None
    jar = Path(ptb.__file__).parent / ptb.STANFORD_CORENLP_3_4_1_JAR
    if not jar.is_file():
        raise VltkError(f"pycocoevalcap's tokenizer jar is missing: {jar}")
    if shutil.which("java") is None:
        raise VltkError("java is not on PATH (the COCO tokenizer and METEOR need Java 8+)")
    return jar


def java_ptb_tokenize(
    captions: list[str], *, keep_punctuation: bool = False, isolate: bool = False
) -> list[list[str]]:
    """Tokens of every caption from COCO's Java PTBTokenizer, as ``pycocoevalcap`` computes them.

    Like ``PTBTokenizer.tokenize``: newlines inside a caption become spaces, one caption per line, then
    each output line is split on single spaces and COCO's punctuation tokens are dropped.

    Args:
        captions: raw captions.
        keep_punctuation: return the PTB tokens before COCO's punctuation filter.
        isolate: put a neutral line (``x``) after every caption. The Java lexer reads COCO's captions as
            one stream, so the end of a caption can depend on the next one ("... I." keeps its period
            unless the next caption starts with "The", "A", ...); isolated, each caption is tokenised
            as if it were alone.
    """
    from vltk.metrics.caption_tokenizer import PUNCTUATIONS

    jar = stanford_jar()
    lines = [caption.replace("\n", " ") for caption in captions]
    if isolate:
        lines = [line for caption in lines for line in (caption, "x")]
    text = "\n".join(lines)
    command = [
        "java",
        "-cp",
        str(jar),
        "edu.stanford.nlp.process.PTBTokenizer",
        "-preserveLines",
        "-lowerCase",
    ]
    completed = subprocess.run(command, input=text.rstrip().encode(), capture_output=True, timeout=600)
    if completed.returncode != 0:
        raise VltkError(f"the Java PTBTokenizer failed: {completed.stderr.decode(errors='replace')[-500:]}")
    output = completed.stdout.decode().split("\n")
    output += [""] * (len(lines) - len(output))
    output = output[: len(lines)][:: 2 if isolate else 1]
    result = []
    for line in output:
        tokens = line.rstrip().split(" ")
        if keep_punctuation:
            result.append([token for token in tokens if token])
        else:
            # COCO joins the kept tokens with " " and the scorers split again; empty strings vanish there.
            result.append(" ".join(t for t in tokens if t not in PUNCTUATIONS).split())
    return result
