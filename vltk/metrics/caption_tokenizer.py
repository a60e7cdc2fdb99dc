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
fractions and phone numbers written with spaces are one token holding no-break spaces (``3 1/2`` ->
``3\u00a01/2``, ``(800) 555-1212`` -> ``-lrb-800-rrb-\u00a0555-1212``: :func:`coco_caption_text` keeps them,
:func:`tokenize_caption` splits them as COCO's BLEU and CIDEr-D do);
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
from collections.abc import Iterator

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
# Fractions and phone numbers are single tokens in Java, spaces included (they become no-break spaces):
# "3 1/2" -> "3\u00a01/2", "12 345 6789", "(800) 555-1212" -> "-lrb-800-rrb-\u00a0555-1212". The rules are
# FRAC and PHONE of PTBLexer.flex (CoreNLP 3.4.1), restated here with the no-break space written \xa0:
#   FRAC  = ([0-9]{1,4}[- \xa0])? [0-9]{1,4} (\\?/ | \u2044) [0-9]{1,4}
#   PHONE = ( \([0-9]{2,3}\)[ \xa0]? | (\+\+?)? ([0-9]{2,4}[- \xa0])? [0-9]{2,4}[- \xa0] )
#           [0-9]{3,4} [- \xa0]? [0-9]{3,5}
# They are found in the raw caption where the lexer starts a token (not inside "-3", "a3", "3.5", "x/3"),
# only where another rule could not match more (a plain "1/2" or "3-1/2" is left to the word rules),
# and each is replaced by a placeholder until the rest of the caption is tokenised around it.
_PHONE = (
    r"(?:\([0-9]{2,3}\)[ \xa0]?|(?:\+\+?)?(?:[0-9]{2,4}[- \xa0])?[0-9]{2,4}[- \xa0])"
    r"[0-9]{3,4}[- \xa0]?[0-9]{3,5}"
)
_FRACTION = (
    r"[0-9]{1,4}[ \xa0][0-9]{1,4}(?:\\?/|\u2044)[0-9]{1,4}"  # with a space: "3 1/2"
    r"|(?:[0-9]{1,4}-)?[0-9]{1,4}(?:\\/|\u2044)[0-9]{1,4}"  # with a fraction slash: "1\u20442", "1\\/2"
)
_NUMBER_SPANS = re.compile(rf"(?<![\w\-+.,:/\\])(?:{_PHONE}|{_FRACTION})|(?=\()(?:{_PHONE})")
# Non-characters, deleted by the lexer like spaces, so never part of a caption's text: one for the spans
# that start with a digit ("no. 3 1/2" keeps its period like "no. 3"), one for the others ("(800) ...").
_NUMBER_SPAN, _OTHER_SPAN = "\uffff", "\ufffe"
_SPACES = re.compile(r"([ \t\n\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]+)")

# One token at a position inside a whitespace-free chunk; alternatives are tried in order.
_TOKEN = re.compile(
    r"""
    (?P<sgml></?[A-Za-z!][^>="]*>)
  | (?P<span>[\ufffe\uffff])
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
_DIGIT_START = re.compile(r"^[\d\uffff]")  # a number, or a number span (_NUMBER_SPAN)
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


def _tokenize_chunk(chunk: str, next_chunk: str, single_space: bool, spans: Iterator[str]) -> list[str]:
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
        elif kind == "span":
            tokens.append(next(spans))
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


_SPACED_DIGITS = re.compile(r"[0-9] [0-9]")  # cheap test before _NUMBER_SPANS on the fast path
# Most captions: ASCII letters and digits separated by single spaces, maybe a final period (" ." too).
_PLAIN = re.compile(r"([A-Za-z0-9]+(?: [A-Za-z0-9]+)*) ?\.?")


def _protect_sgml(match: re.Match) -> str:
    return match.group().replace(" ", "\u00a0")


def _cut_number_spans(text: str) -> tuple[str, list[str]]:
    """``text`` with every fraction or phone number written with spaces replaced by :data:`_NUMBER_SPAN`,
    and those tokens in order (spaces turned into no-break spaces, brackets in PTB form)."""
    spans: list[str] = []

    def cut(match: re.Match) -> str:
        token = match.group()
        if (
            token[0].isdigit()
            and " " not in token
            and "\xa0" not in token
            and text[match.end() :][:1].isalnum()
        ):
            return token  # "12-345-6789x" is a word, longer than the phone number
        spans.append(token.replace(" ", "\xa0").replace("(", "-LRB-").replace(")", "-RRB-"))
        return _NUMBER_SPAN if token[0].isdigit() else _OTHER_SPAN

    return _NUMBER_SPANS.sub(cut, text), spans


_CHAR_MAP_KEEPING_SPANS = {
    point: value for point, value in _CHAR_MAP.items() if chr(point) not in (_NUMBER_SPAN, _OTHER_SPAN)
}


def ptb_tokenize(text: str) -> list[str]:
    """PTB tokens of one caption, lower-cased, punctuation kept (what COCO's Java step outputs).

    A token may hold a no-break space, as in Java's output: a fraction or phone number written with spaces
    (``"3 1/2"`` -> ``"3\\u00a01/2"``, ``"12 345 6789"``) and an SGML tag (``"<a href>"``).
    """
    spans: list[str] = []
    if any("0" <= character <= "9" for character in text):
        text, spans = _cut_number_spans(text.replace(_NUMBER_SPAN, " ").replace(_OTHER_SPAN, " "))
    text = text.translate(_CHAR_MAP_KEEPING_SPANS if spans else _CHAR_MAP)
    text = _NON_BMP.sub(" ", text)
    if "<" in text:
        text = _SGML.sub(_protect_sgml, text)
    parts = _SPACES.split(text.strip(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"))
    chunks, gaps = parts[::2], parts[1::2]  # words and the whitespace between them
    tokens: list[str] = []
    span_tokens = iter(spans)
    for index, chunk in enumerate(chunks):
        next_chunk = chunks[index + 1] if index + 1 < len(chunks) else ""
        single_space = index < len(gaps) and len(gaps[index]) == 1
        tokens.extend(_tokenize_chunk(chunk, next_chunk, single_space, span_tokens))
    return [token.lower() for token in tokens]


def _plain_words(text: str) -> list[str] | None:
    """The lower-cased words of a caption that needs no tokenizer (ASCII words and single spaces, at most a
    final full stop that is not an abbreviation's), or ``None``."""
    plain = _PLAIN.fullmatch(text)
    if plain is None:
        return None
    words = plain.group(1).split(" ")
    last = words[-1]
    if any(word.lower() in _SPLIT_WORDS for word in words) or (
        text.endswith(".") and (last.isalpha() and _keeps_period(last, "", "", False))
    ):
        return None
    if _SPACED_DIGITS.search(text) and _NUMBER_SPANS.search(text):
        return None  # a phone number written with spaces is one token
    return [word.lower() for word in words]


def coco_caption_text(text: str) -> str:
    """One caption as ``pycocoevalcap``'s ``PTBTokenizer.tokenize`` returns it: the PTB tokens (lower-cased)
    minus COCO's punctuation, joined by single spaces.

    Each scorer splits this string its own way: BLEU and CIDEr-D with ``str.split()`` (what
    :func:`tokenize_caption` returns), ROUGE-L with ``split(" ")``, which keeps a no-break space inside its
    token (``"3\\u00a01/2"``; :func:`vltk.metrics.rouge.rouge_tokens`).

    Args:
        text: a caption (hypothesis or reference), any case, possibly with punctuation.
    """
    words = _plain_words(text)  # fast path: most captions
    if words is not None:
        return " ".join(words)
    return " ".join(token for token in ptb_tokenize(text) if token not in PUNCTUATIONS)


def tokenize_caption(text: str) -> list[str]:
    """Tokens of one caption as COCO's BLEU and CIDEr-D see them: PTB-tokenised, lower-cased, punctuation
    dropped, split with ``str.split()`` (which also splits at the no-break space of ``"3\\u00a01/2"``).

    Example: ``tokenize_caption("A man's dog.") == ["a", "man", "'s", "dog"]``.

    Args:
        text: a caption (hypothesis or reference), any case, possibly with punctuation.
    """
    words = _plain_words(text)
    return words if words is not None else coco_caption_text(text).split()
