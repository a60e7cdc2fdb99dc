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
  words (``mr.`` ``st.`` ``jan.`` ``calif.`` ``inc.``, ...), ``no.``/``fig.`` one space before a number,
  and any word whose period is followed by ``,`` ``;`` or ``:`` (then it is not a full stop).
* Contractions are split the PTB way: ``man's`` → ``man 's``, ``don't`` → ``do n't``, ``can't`` →
  ``ca n't``, ``i'm`` → ``i 'm``, ``cannot`` → ``can not``, ``gonna`` → ``gon na``, ``'tis`` → ``'t is``;
  ``don'ts`` → ``do n'ts``; a trailing apostrophe (``dogs'``) is split off and dropped. ``'cause``,
  ``'em``, ``'til``, ``'n'``, decades (``'90s``) and two-digit years (``'05``) keep their apostrophe, and
  so do ``o'clock``/``d'arcy``/``l'amour`` and vowel-apostrophe-vowel words (``shi'ite``); any other
  inner apostrophe is a quote of its own (``x'y`` → ``x ' y``).
* Hyphenated words, numbers (``3.5`` ``1,000`` ``5:30`` ``3/4`` ``-5`` ``.3.5``), words with an internal
  period, slash or underscore (``hello.world`` ``and/or`` ``a_b``), ``@handles``, ``#tags``, URLs and
  e-mail addresses stay one token; a decimal number glued to a unit is split (``2.5kg`` → ``2.5 kg``).
* Brackets become ``-lrb-`` ``-rrb-`` ``-lsb-`` ``-rsb-`` ``-lcb-`` ``-rcb-``. COCO's list holds the
  upper-case ``-LRB-``/``-RRB-`` but compares them with lower-cased tokens, so these tokens are **kept**
  in COCO scores; they are kept here too.
* Everything is lower-cased (after the abbreviation rules, which look at case for a few state names).

Also as in Java: characters the lexer cannot tokenize (emoji and other non-BMP characters, control and
zero-width characters; see :mod:`vltk.metrics._ptb_untokenizable`) are deleted and end the token
before them; currency signs are normalised (``£`` -> ``#``, ``€`` -> ``$``, ``¢`` -> ``cents``);
``½`` -> ``1/2``; emoticons stay whole (``:)`` -> ``:-rrb-``); SGML tags (``<b>``) are one token;
``AT&T`` (upper case) is one token; 5 or more hyphens stay one token; ``US$`` is one token; a single
letter keeps its period
unless the next word is a capitalised sentence start ("I. The" -> ``i .``).

Agreement, measured against the Java tool with ``benchmarks/ptb_tokenizer_parity.py`` on the captions of
:func:`vltk.metrics.ptb_parity.stress_captions` (contractions, quotes, hyphens, numbers, currency, unicode,
URLs, emoticons, odd spacing, empty and punctuation-only captions): identical tokens on every one of
20,000 captions without glued words. Known differences, all from two words glued without a space
(``the10,000.50``, ``man'sat``, ``pizza?e-mail``, ``3 1/2beach``): about 0.5% of captions when a fifth of the
ugly captions contain such a glue. Not reproducible from one caption alone: Java reads all of COCO's
captions as one stream, so a caption ending in a single letter or ``No.`` may keep or lose that period
depending on the first word of the *next* caption; the punctuation filter never hides this.
"""

from __future__ import annotations

import re

from vltk.metrics._ptb_untokenizable import untokenizable_code_points

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

_CHAR_MAP: dict[int, str] = {
    **{point: " " for point in untokenizable_code_points()},  # deleted by the Java lexer: ends a token
    0x00A0: " ",
    0x3000: " ",
    **{point: " " for point in range(0x2000, 0x200B)},
    0x00AD: "",  # soft hyphen: removed inside words
    # Quotes, dashes and the ellipsis in their ASCII/PTB forms (also the CP1252 code points).
    **dict.fromkeys([0x2018, 0x2019, 0x201A, 0x201B, 0x2039, 0x203A, 0x91, 0x92], "'"),
    **dict.fromkeys([0x201C, 0x201D, 0x201E, 0x00AB, 0x00BB, 0x93, 0x94], '"'),
    **dict.fromkeys([0x2013, 0x2014, 0x2015, 0x96, 0x97], " -- "),
    0x2026: " ... ",
    # PTB's lossy currency and fraction normalisation; each becomes a token of its own.
    0x00A2: " cents ",
    0x00A3: " # ",
    **dict.fromkeys([0x80, 0x00A4, 0x20A0, 0x20AC], " $ "),
    0x00BC: " 1/4 ",
    0x00BD: " 1/2 ",
    0x00BE: " 3/4 ",
    0x2153: " 1/3 ",
    0x2154: " 2/3 ",
}
_NON_BMP = re.compile("[\U00010000-\U0010ffff]")
# SGML-like tags stay one token, spaces included (they become no-break spaces, which COCO splits on).
_SGML = re.compile(r"</?[A-Za-z!][^>=\"]*>")
_SPACES = re.compile(r"([ \t\n\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]+)")

# One token at a position inside a whitespace-free chunk; alternatives are tried in order.
_TOKEN = re.compile(
    r"""
    (?P<sgml></?[A-Za-z!][^>="]*>)
  | (?P<url>(?i:https?://|www\.)[^\s"'()\[\]{}<>]*[^\s"'()\[\]{}<>.,;:!?]
        | [\w.+-]+@[\w-]+(?:\.[\w-]+)+)
  | (?P<emoticon>[:;=]'?-?[()DPp\]](?![^\W_]) | \^_\^)
  | (?P<handle>[@#][^\W\d_]\w*)
  | (?P<quoted>'(?i:cause|em|till?|n'|t(?=is|was)) | '(?i:s|re|ve|m|ll|d)(?![A-Za-z])
        | '[2-9]0[sS] | '\d\d\Z | (?i:n't)(?![^\W_]))
  | (?P<amp>[A-Z]+(?:&[A-Z]+)+)
  | (?P<dollar>[A-Z]*\$)
  | (?P<number>[-+]?\d+(?:,\d{3})+(?:\.\d+)? | [-+]?\.\d+(?:[.:,]\d+)* | [-+]\d+(?:[.:/]\d+)*)
  | (?P<word>[^\W_]+(?:(?:[-./@_]|'(?=[^\W_])|[:,](?=\d))[^\W_]+)*)
  | (?P<dots>\.\.\.)
  | (?P<marks>[!?]+)
  | (?P<dashes>-{2,})
  | (?P<repeats>_+|\#+|@+)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'re|'ve|'m|'ll|'d)$", re.IGNORECASE)
_N_INFIX = re.compile(r"^(\w+)('n')(\w+)$", re.IGNORECASE)  # rock'n'roll -> rock 'n' roll
_Y_APOSTROPHE = re.compile(r"^(y')([^\W\d_]+)$", re.IGNORECASE)  # y'all -> y' all
_N_T_PREFIX = re.compile(r"^([^\W\d_]*[^\W\d_nN])(n't[^\W\d_]+)$", re.IGNORECASE)  # don'ts -> do n'ts
# Words that keep an inner apostrophe: o'clock, d'Arcy, l'amour, Shi'ite (vowel ' vowel).
_APOSTROPHE_WORD = re.compile(r"^(?:[dDoOlL]'[^\W_]+|[^\W\d_]*[aeiouyAEIOUY]'[aeiouA-Z][^\W\d_]*)$")
_QUOTED_WORDS = frozenset(["'em", "'cause", "'til", "'till"])
_NUMBER_UNIT = re.compile(r"^(\d+(?:[.,:]\d+)+)([^\W\d_]\w*)$")
_NUMBER_DOT_WORD = re.compile(r"^(\d+(?:[.,:]\d+)*)\.([^\W\d_].*)$")
_ACRONYM = re.compile(r"^[^\W\d_](?:\.[^\W\d_])*$")
_DIGIT_START = re.compile(r"^\d")
# After a single letter and a period, one of these words (capitalised, then a space or the end) or an
# SGML tag makes the period a full stop: "I. The dog" -> "i ." but "I. the dog" -> "i."
_SENTENCE_STARTS = re.compile(
    r"(?:A(?i:bout|ccording|dditionally|fter|n|s|t)?|B(?i:ut)|E(?i:arlier)|H(?i:e|er|ere|owever)"
    r"|I(?i:f|n|t)|L(?i:ast)|M(?i:any|ore|r\.|s\.)|N(?i:ow)|O(?i:nce|ne|ther|ur)"
    r"|S(?i:he|ince|o|ome|uch)|T(?i:hat|he|hen|here|hese|hey|his)|W(?i:e|hen|hile|hat)|Y(?i:et|ou))"
)


def _keeps_period(word: str, after: str, next_chunk: str, single_space: bool) -> bool:
    """Whether ``word`` followed by ``.`` (then ``after`` in the chunk) is an abbreviation that keeps it."""
    lower = word.lower()
    following = after or next_chunk
    if (
        len(word) == 1
        and word.isalpha()
        and not after
        and (_SENTENCE_STARTS.fullmatch(next_chunk) or _SGML.match(next_chunk))
    ):
        return False
    if (
        _ACRONYM.match(word)
        or lower in _ABBREVIATIONS
        or (word[0].isupper() and word.capitalize() in _CAPITALISED_ABBREVIATIONS)
    ):
        return True
    # "no. 5", "fig. 3" but "said no.", "a fig.", and "no.  5" (two spaces end a sentence)
    return lower in _ABBREVIATIONS_BEFORE_NUMBERS and bool(_DIGIT_START.match(following)) and single_space


def _split_word(word: str) -> list[str]:
    """Contractions, fused words and inner apostrophes, the PTB way."""
    lower = word.lower()
    if lower in _SPLIT_WORDS:
        first, second = _SPLIT_WORDS[lower]
        return [word[: len(first)], word[len(first) :]] if len(first) + len(second) == len(word) else [word]
    number_unit = _NUMBER_UNIT.match(word)
    if number_unit:  # "2.5kg" -> "2.5 kg" (but "10am", "3rd" stay whole)
        return [number_unit.group(1), *_split_word(number_unit.group(2))]
    number_word = _NUMBER_DOT_WORD.match(word)
    if number_word:  # "3.street" -> "3 . street"
        return [number_word.group(1), ".", *_split_word(number_word.group(2))]
    if "'" not in word:
        return [word]
    for pattern in (_N_INFIX, _Y_APOSTROPHE, _N_T_PREFIX):
        parts = pattern.match(word)
        if parts:
            return list(parts.groups())
    contraction = _CONTRACTION.match(word)
    if contraction and contraction.group(1)[-1].isalnum():  # "can't's" -> "ca n't 's"
        return [*_split_word(contraction.group(1)), contraction.group(2)]
    if _APOSTROPHE_WORD.match(word):
        return [word]
    # Any other apostrophe is a quote of its own: "x'y" -> "x ' y", "man'sat" -> "man ` sat".
    left, _, right = word.partition("'")
    if "'" + right.lower() in _QUOTED_WORDS:  # "near'em" -> "near 'em"
        return [*_split_word(left), "'" + right]
    return [*_split_word(left), "`" if len(right) > 1 else "'", *_split_word(right)]


def _tokenize_chunk(chunk: str, next_chunk: str, single_space: bool) -> list[str]:
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
                _keeps_period(text, after, next_chunk, single_space or bool(after))
                or after[:1] in (",", ";", ":")
            ):
                tokens.append(text + ".")
                position += 1
            else:
                tokens.extend(_split_word(text))
        elif kind == "emoticon":
            tokens.append(text.replace("(", "-LRB-").replace(")", "-RRB-"))
        elif kind == "dashes":
            tokens.append("--" if len(text) <= 4 else text)  # PTB: 2-4 hyphens are a dash
        elif kind == "other":
            if text in "\"'":  # an opening quote starts a chunk; it becomes `` or ` as in PTB
                opening = position == 1
                tokens.append(("``" if opening else "''") if text == '"' else ("`" if opening else "'"))
            else:
                tokens.append(_BRACKETS.get(text, text))
        else:
            tokens.append(text)
    return tokens


# Most captions: ASCII letters and digits separated by single spaces, maybe a final period (" ." too).
_PLAIN = re.compile(r"([A-Za-z0-9]+(?: [A-Za-z0-9]+)*) ?\.?")


def _protect_sgml(match: re.Match) -> str:
    return match.group().replace(" ", "\u00a0")


def ptb_tokenize(text: str) -> list[str]:
    """PTB tokens of one caption, lower-cased, punctuation kept (what COCO's Java step outputs).

    A token may hold a no-break space (``"3 1/2"`` -> ``"3\\u00a01/2"``), as in Java's output.
    """
    text = _NON_BMP.sub(" ", text.translate(_CHAR_MAP))
    if "<" in text:
        text = _SGML.sub(_protect_sgml, text)
    parts = _SPACES.split(text.strip(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"))
    chunks, gaps = parts[::2], parts[1::2]  # words and the whitespace between them
    tokens: list[str] = []
    for index, chunk in enumerate(chunks):
        next_chunk = chunks[index + 1] if index + 1 < len(chunks) else ""
        single_space = index < len(gaps) and len(gaps[index]) == 1
        tokens.extend(_tokenize_chunk(chunk, next_chunk, single_space))
    return [token.lower() for token in tokens]


def tokenize_caption(text: str) -> list[str]:
    """Tokens of one caption as COCO scores them: PTB-tokenised, lower-cased, punctuation dropped.

    Example: ``tokenize_caption("A man's dog.") == ["a", "man", "'s", "dog"]``.

    Args:
        text: a caption (hypothesis or reference), any case, possibly with punctuation.
    """
    plain = _PLAIN.fullmatch(text)
    if plain is not None:  # fast path: ASCII words and single spaces, at most a final full stop
        words = plain.group(1).split(" ")
        last = words[-1]
        if not any(word.lower() in _SPLIT_WORDS for word in words) and not (
            text.endswith(".") and (last.isalpha() and _keeps_period(last, "", "", False))
        ):
            return [word.lower() for word in words]
    # COCO joins the kept tokens with spaces and its scorers split them again with str.split(), which
    # also splits at the no-break spaces of tokens such as "3\u00a01/2".
    return " ".join(token for token in ptb_tokenize(text) if token not in PUNCTUATIONS).split()
