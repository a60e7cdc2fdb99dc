"""METEOR through the COCO caption toolkit's Java scorer, when it is there (Denkowski and Lavie 2014,
Meteor Universal: Language Specific Translation Evaluation for Any Target Language).

METEOR aligns words with exact, stem, synonym and paraphrase matches from Meteor 1.5's English resources;
a Python re-implementation would not give COCO's numbers, so vltk runs the same ``meteor-1.5.jar`` that
``pycocoevalcap`` ships (``java -jar meteor-1.5.jar - - -stdio -l en -norm``), on the same input COCO
gives it: PTB-tokenised captions without punctuation. It needs Java 8+ and the optional ``coco`` extra
(``pip install 'vltk[coco]'``); without them :func:`meteor_unavailable_reason` says why and callers report
"METEOR unavailable: <reason>" instead of failing. One JVM start takes a few seconds, so training computes
METEOR only for the final test metrics, not in every validation epoch.

SPICE (Anderson et al. 2016) is not offered: pycocoevalcap's SPICE downloads Stanford CoreNLP models on
first use, and vltk never downloads anything at run time (:data:`SPICE_NOTE`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from vltk.errors import VltkError

logger = logging.getLogger(__name__)

SPICE_NOTE = (
    "SPICE unavailable: it needs Stanford CoreNLP models that pycocoevalcap downloads on first use, "
    "and vltk never downloads at run time"
)


class MeteorUnavailable(VltkError):
    """METEOR cannot be computed here (no Java, no pycocoevalcap, or the Java scorer failed)."""


def meteor_unavailable_reason() -> str | None:
    """Why METEOR cannot run here, or ``None`` when Java and pycocoevalcap's Meteor jar are present."""
    try:
        import pycocoevalcap.meteor.meteor as meteor_module
    except ImportError:
        return "pycocoevalcap is not installed (pip install 'vltk[coco]')"
    folder = Path(meteor_module.__file__).parent
    jar = folder / meteor_module.METEOR_JAR
    if not jar.is_file():
        return f"pycocoevalcap's {meteor_module.METEOR_JAR} is missing from {folder}"
    if not (folder / "data" / "paraphrase-en.gz").is_file():
        return f"METEOR's paraphrase table is missing from {folder / 'data'}"
    if shutil.which("java") is None:
        return "java is not on PATH (METEOR 1.5 is a Java program; install Java 8 or newer)"
    return None


def meteor_scores(
    hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]
) -> tuple[float, list[float]]:
    """Corpus METEOR and the per-image scores, exactly as ``pycocoevalcap.meteor.Meteor`` computes them.

    Args:
        hypotheses: one token list per image (the output of ``tokenize_caption``).
        references: per image, one token list per reference caption (at least one).

    Raises:
        MeteorUnavailable: Java or the jar is missing, or the Java scorer failed.
    """
    reason = meteor_unavailable_reason()
    if reason is not None:
        raise MeteorUnavailable(f"METEOR unavailable: {reason}")
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError("meteor_scores needs one non-empty list of references per hypothesis")
    from pycocoevalcap.meteor.meteor import Meteor

    res = {index: [" ".join(tokens)] for index, tokens in enumerate(hypotheses)}
    gts = {index: [" ".join(tokens) for tokens in refs] for index, refs in enumerate(references)}
    logger.info("METEOR: scoring %d images with the Java scorer", len(res))
    try:
        scorer = Meteor()
    except OSError as error:
        raise MeteorUnavailable(f"METEOR unavailable: could not start java ({error})") from None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            score, per_image = scorer.compute_score(gts, res)
    except (ValueError, OSError) as error:  # the JVM died: empty or garbled output
        stderr = b""
        with contextlib.suppress(Exception):
            scorer.meteor_p.kill()
            stderr = scorer.meteor_p.stderr.read()[-300:]
        raise MeteorUnavailable(
            f"METEOR unavailable: the Java scorer failed ({error}; {stderr.decode(errors='replace').strip()})"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            scorer.meteor_p.stdin.close()
            scorer.meteor_p.kill()
            scorer.meteor_p.wait(timeout=10)
    return float(score), [float(value) for value in per_image]
