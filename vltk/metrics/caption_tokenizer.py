"""Caption tokenisation as the COCO caption toolkit does it, in pure Python (no Java).

``pycocoevalcap`` tokenises every hypothesis and reference with Stanford CoreNLP 3.4.1's PTBTokenizer
(``-preserveLines -lowerCase``; Marcus et al. 1993, the Penn Treebank conventions), then drops the
tokens of its ``PUNCTUATIONS`` list. :func:`tokenize_caption` reproduces that pipeline with regular
expressions:

* Unicode quotes, dashes and ellipses are mapped to their ASCII forms first (PTB: "—" → "--").
* Punctuation is split off words: ``,`` ``;`` ``:`` ``!`` ``?`` quotes, brackets, ``$ # % & * + =``.
  Runs such as ``!!!`` or ``?!`` stay one token (and, not being in COCO's list, are kept).
* A final period is split off (and then dropped) except after abbreviations that keep it: single
  letters and acronyms (``b.`` ``u.s.`` ``a.m.`` ``e.g.``), titles, months, days, states and company
  words (``mr.`` ``st.`` ``jan.`` ``calif.`` ``inc.``, ...), ``no.``/``fig.`` before a number, and any
  word whose period is followed by ``,`` ``;`` or ``:`` (then it is not a full stop).
* Contractions are split the PTB way: ``man's`` → ``man 's``, ``don't`` → ``do n't``, ``can't`` →
  ``ca n't``, ``i'm`` → ``i 'm``, ``cannot`` → ``can not``, ``gonna`` → ``gon na``, ``'tis`` → ``'t is``;
  a trailing apostrophe (``dogs'``) is split off and dropped. ``'cause``, ``'em``, ``'til``, ``'n'``,
  decades (``'90s``) and two-digit years (``'05``) keep their apostrophe.
* Hyphenated words, numbers (``3.5`` ``1,000`` ``5:30`` ``3/4`` ``-5``), words with an internal period,
  slash or apostrophe (``o'clock`` ``hello.world`` ``and/or``), ``@handles``, ``#tags``, URLs and e-mail
  addresses stay one token; a decimal number glued to a unit is split (``2.5kg`` → ``2.5 kg``).
* Brackets become ``-lrb-`` ``-rrb-`` ``-lsb-`` ``-rsb-`` ``-lcb-`` ``-rcb-``. COCO's list holds the
  upper-case ``-LRB-``/``-RRB-`` but compares them with lower-cased tokens, so these tokens are **kept**
  in COCO scores; they are kept here too.
* Everything is lower-cased (after the abbreviation rules, which look at case for a few state names).

Agreement, measured against the Java tool on about 3,500 sentences (templated captions with
abbreviations, contractions, quotes, brackets, numbers and mixed case, plus hand-written probes of the
rules above): all but 5 give identical tokens after punctuation removal.
Known differences (rare in captions): emoticons (Java keeps ``:)`` as ``:-rrb-``; here ``-rrb-``),
SGML-like ``<b>`` tags (one token in Java), a few apostrophe forms (Java: ``x'y`` → ``x ' y``,
``don'ts`` → ``do n'ts``, ``kids''s`` → ``kids s``; here one token or ``'s``), fused words followed
by a contraction (Java: ``cannot's`` → ``cannot 's``), runs of three or more hyphens, the pronoun
``I.`` at the end of a caption (Java drops the period), and a punctuation mark glued between two
words (Java keeps ``fish!a`` whole; here ``fish ! a``). Java also appends a period after some
sentence-final abbreviations; the punctuation filter drops it, so it never shows.
"""

from __future__ import annotations

import re

# pycocoevalcap/tokenizer/ptbtokenizer.py: tokens removed after tokenisation.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

# Words that keep a following period, whatever their case (PTB lexer's ABBREV classes).
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms messrs dr drs prof profs sen sens rep reps atty attys gov govs gen col lt maj sgt cpl pvt
    capt adm rev hon pres lieut brig cmdr comdr pfc spc supt det mme mlle st ste ave blvd rd mt ft rt ct
    jr sr bros esq ph.d ed.d vs v etc al seq cf est sq tel ext inc co cos corp ltd plc pty ptys pte
    bancorp bhd assn univ intl sys invt elec natl mfg mtg dept bldg md
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri
    ala ariz calif colo conn dak fla ga ind kan kans ky mich minn mo mont neb nev okla penn tenn va vt
    wis wisc wyo
    """.split()
)
# State abbreviations that are also common words: abbreviations only when capitalised ("Pa." not "pa.").
_CAPITALISED_ABBREVIATIONS = frozenset("Ark Az Del Ill La Mass Miss Ore Pa Tex Wash".split())

# Words that keep a following period only when a number follows ("no. 5", "fig. 3").
_ABBREVIATIONS_BEFORE_NUMBERS = frozenset("no nos fig figs pp op art".split())

# Whole words the PTB lexer splits in two.
_SPLIT_WORDS = {
    "cannot": ("can", "not"),
    "gimme": ("gim", "me"),
    "gonna": ("gon", "na"),
    "gotta": ("got", "ta"),
    "lemme": ("lem", "me"),
    "wanna": ("wan", "na"),
    "more'n": ("more", "'n"),
    "'tis": ("'t", "is"),
    "'twas": ("'t", "was"),
}

_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}

_UNICODE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": " -- ",
        "\u2014": " -- ",
        "\u2015": " -- ",
        "\u2026": " ... ",
        "\u00a0": " ",
    }
)

# One token at a position inside a whitespace-free chunk; alternatives are tried in order.
_TOKEN = re.compile(
    r"""
    (?P<url>(?:https?://|www\.)[^\s"'()\[\]{}<>]*[^\s"'()\[\]{}<>.,;:!?]
        | [\w.+-]+@[\w-]+(?:\.[\w-]+)+)
  | (?P<handle>[@#][^\W\d_]\w*)
  | (?P<quoted>'(?:cause|em|til|n'|s|re|ve|m|ll|d|tis|twas)(?!\w) | '[2-9]0s(?!\w) | '\d\d\Z)
  | (?P<number>[-+]?\d+(?:,\d{3})+(?:\.\d+)? | [-+]?\.\d+ | [-+]\d+(?:[.:/]\d+)*(?!\w))
  | (?P<word>\w+(?:(?:[-./&@]|'(?=\w)|[:,](?=\d))\w+)*)
  | (?P<dots>\.\.\.)
  | (?P<marks>[!?]+)
  | (?P<dashes>--)
  | (?P<other>.)
    """,
    re.VERBOSE | re.IGNORECASE | re.DOTALL,
)
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'re|'ve|'m|'ll|'d)$", re.IGNORECASE)
_N_INFIX = re.compile(r"^(\w+)('n')(\w+)$", re.IGNORECASE)  # rock'n'roll -> rock 'n' roll
_Y_APOSTROPHE = re.compile(r"^(y')([^\W\d_]+)$", re.IGNORECASE)  # y'all -> y' all
_NUMBER_UNIT = re.compile(r"^(\d+(?:[.,:]\d+)+)([^\W\d_]\w*)$")
_ACRONYM = re.compile(r"^[^\W\d_](?:\.[^\W\d_])*$")
_DIGIT_START = re.compile(r"^[$#]?\.?\d")


def _keeps_period(word: str, next_chunk: str) -> bool:
    """Whether ``word`` followed by ``.`` is an abbreviation that keeps the period."""
    lower = word.lower()
    if _ACRONYM.match(word) or lower in _ABBREVIATIONS or word in _CAPITALISED_ABBREVIATIONS:
        return True
    # "no. 5", "fig. 3" but "said no.", "a fig."
    return lower in _ABBREVIATIONS_BEFORE_NUMBERS and bool(_DIGIT_START.match(next_chunk))


def _split_word(word: str) -> list[str]:
    """Contractions and fused words, the PTB way."""
    lower = word.lower()
    if lower in _SPLIT_WORDS:
        first, second = _SPLIT_WORDS[lower]
        return [word[: len(first)], word[len(first) :]] if len(first) + len(second) == len(word) else [word]
    number_unit = _NUMBER_UNIT.match(word)
    if number_unit:  # "2.5kg" -> "2.5 kg" (but "10am", "3rd" stay whole)
        return [number_unit.group(1), number_unit.group(2)]
    for pattern in (_N_INFIX, _Y_APOSTROPHE):
        parts = pattern.match(word)
        if parts:
            return list(parts.groups())
    contraction = _CONTRACTION.match(word)
    if contraction and contraction.group(1)[-1].isalnum():  # "can't's" -> "ca n't 's"
        return [*_split_word(contraction.group(1)), contraction.group(2)]
    return [word]


def _tokenize_chunk(chunk: str, next_chunk: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(chunk):
        match = _TOKEN.match(chunk, position)
        if match is None:  # unreachable: the last alternative matches any character
            raise RuntimeError(f"caption tokenizer stuck at {chunk[position:]!r}")
        kind, text = match.lastgroup, match.group()
        position = match.end()
        if kind == "quoted" and text.lower() in _SPLIT_WORDS:
            tokens.extend(_split_word(text))
        elif kind == "word":
            after = chunk[position + 1 :]
            # A period before , ; : is not a full stop, so it stays ("reads stop., then" -> "stop.").
            if chunk.startswith(".", position) and (
                _keeps_period(text, after or next_chunk) or after[:1] in (",", ";", ":")
            ):
                tokens.append(text + ".")
                position += 1
            else:
                tokens.extend(_split_word(text))
        elif kind == "other":
            if text in "\"'":  # an opening quote starts a chunk; it becomes `` or ` as in PTB
                opening = position == 1
                tokens.append(("``" if opening else "''") if text == '"' else ("`" if opening else "'"))
            else:
                tokens.append(_BRACKETS.get(text, text))
        else:
            tokens.append(text)
    return tokens


def ptb_tokenize(text: str) -> list[str]:
    """PTB tokens of one caption, lower-cased, punctuation kept (what COCO's Java step outputs)."""
    chunks = text.translate(_UNICODE).split()
    tokens: list[str] = []
    for index, chunk in enumerate(chunks):
        next_chunk = chunks[index + 1] if index + 1 < len(chunks) else ""
        tokens.extend(_tokenize_chunk(chunk, next_chunk))
    return [token.lower() for token in tokens]


def tokenize_caption(text: str) -> list[str]:
    """Tokens of one caption as COCO scores them: PTB-tokenised, lower-cased, punctuation dropped.

    Example: ``tokenize_caption("A man's dog.") == ["a", "man", "'s", "dog"]``.

    Args:
        text: a caption (hypothesis or reference), any case, possibly with punctuation.
    """
    return [token for token in ptb_tokenize(text) if token not in PUNCTUATIONS]
