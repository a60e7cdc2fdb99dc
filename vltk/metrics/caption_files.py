"""Reading and checking the files of caption evaluation: predictions and references.

* **Predictions** in the COCO results format (what the COCO evaluation server takes and what
  ``vltk evaluate --predictions`` writes): ``[{"image_id": 391895, "caption": "a man riding a bike"}, ...]``.
* **References** either as a COCO ``captions_*.json`` (``{"images": [...], "annotations": [{"image_id",
  "caption"}, ...]}``; Chen et al. 2015, Microsoft COCO Captions) or as a Karpathy-split JSON
  (``{"images": [{"split", "cocoid" or "imgid", "sentences": [{"raw"}, ...]}, ...]}``; Karpathy and Fei-Fei
  2015) with the split to score.

Nothing is dropped silently: a predictions file with malformed entries, duplicated image ids, ids that
the references do not know, or missing images of the scored set raises one :class:`~vltk.errors.DataError`
that counts each problem and names the first offending ids, so a submission is scored on exactly the
images the user meant.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vltk.errors import DataError

ImageId = Hashable
SHOWN = 5  # offending ids named in an error message


def _shown(ids: Sequence[Any]) -> str:
    named = ", ".join(repr(i) for i in ids[:SHOWN])
    return named + (f", ... ({len(ids) - SHOWN} more)" if len(ids) > SHOWN else "")


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file, with errors that name the file, the line and the column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            f"expected the {what}"
        ) from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason}); expected the {what} as JSON") from None


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


@dataclass
class CaptionReferences:
    """Reference captions of the images to score.

    Attributes:
        captions: ``{image_id: [reference caption, ...]}`` in file order; every list is non-empty.
        source: a short description for messages (file name, format, split).
    """

    captions: dict[ImageId, list[str]]
    source: str


def parse_predictions(data: Any, source: str = "predictions") -> dict[ImageId, str]:
    """Check COCO results (``[{"image_id", "caption"}]``) and return ``{image_id: caption}``.

    Raises:
        DataError: the top level is not a list; entries are malformed; image ids are repeated.
    """
    if not isinstance(data, list):
        hint = ""
        if isinstance(data, dict) and ("annotations" in data or "images" in data):
            hint = " (this looks like a references file; pass it as --references)"
        raise DataError(
            f"{source}: expected a JSON list of {{'image_id', 'caption'}} objects (the COCO results "
            f"format), got {_type_name(data)}{hint}"
        )
    if not data:
        raise DataError(f"{source}: the predictions list is empty")
    malformed: list[str] = []
    seen: dict[ImageId, int] = {}
    duplicated: dict[ImageId, int] = {}
    predictions: dict[ImageId, str] = {}
    for index, entry in enumerate(data):
        problem = None
        if not isinstance(entry, dict):
            problem = f"#{index} is {_type_name(entry)}, not an object"
        elif "image_id" not in entry or "caption" not in entry:
            missing = [key for key in ("image_id", "caption") if key not in entry]
            problem = f"#{index} has no {' or '.join(repr(k) for k in missing)}"
        elif isinstance(entry["image_id"], bool) or not isinstance(entry["image_id"], int | str):
            problem = f"#{index} has image_id {entry['image_id']!r} (expected an integer or a string)"
        elif not isinstance(entry["caption"], str):
            problem = f"#{index} (image {entry['image_id']!r}) has caption {entry['caption']!r}, not a string"
        if problem is not None:
            malformed.append(problem)
            continue
        image_id = entry["image_id"]
        if image_id in seen:
            duplicated[image_id] = duplicated.get(image_id, 1) + 1
            continue
        seen[image_id] = index
        predictions[image_id] = entry["caption"]
    if malformed:
        details = "; ".join(malformed[:SHOWN]) + (
            f"; ... ({len(malformed) - SHOWN} more)" if len(malformed) > SHOWN else ""
        )
        raise DataError(f"{source}: {len(malformed)} of {len(data)} entries are malformed: {details}")
    if duplicated:
        ids = list(duplicated)
        raise DataError(
            f"{source}: {len(ids)} image ids have more than one caption (image ids {_shown(ids)}); "
            "the COCO results format has exactly one caption per image"
        )
    return predictions


def parse_references(data: Any, source: str = "references", split: str | None = None) -> CaptionReferences:
    """Reference captions from a COCO ``captions_*.json`` or a Karpathy-split JSON (which needs ``split``).

    Raises:
        DataError: an unknown layout, a missing or unknown split, malformed entries.
    """
    if not isinstance(data, dict) or not isinstance(data.get("images", data.get("annotations")), list):
        raise DataError(
            f"{source}: expected a COCO captions file ({{'images': [...], 'annotations': [...]}}) or a "
            f"Karpathy-split JSON ({{'images': [{{'split', 'cocoid', 'sentences'}}, ...]}}), got "
            f"{_type_name(data)}" + (f" with keys {sorted(data)[:8]}" if isinstance(data, dict) else "")
        )
    if "annotations" in data:
        if split is not None:
            raise DataError(
                f"{source} is a COCO captions file, which has no splits; "
                "--split applies to Karpathy JSON only"
            )
        return _coco_references(data, source)
    return _karpathy_references(data, source, split)


def _coco_references(data: dict, source: str) -> CaptionReferences:
    annotations = data["annotations"]
    if not isinstance(annotations, list):
        raise DataError(f"{source}: 'annotations' must be a list, got {_type_name(annotations)}")
    captions: dict[ImageId, list[str]] = {}
    for index, annotation in enumerate(annotations):
        if (
            not isinstance(annotation, dict)
            or not isinstance(annotation.get("caption"), str)
            or not isinstance(annotation.get("image_id"), int | str)
        ):
            raise DataError(
                f"{source}: annotations[{index}] must be an object with an 'image_id' and a string "
                f"'caption', got {annotation!r:.200}"
            )
        captions.setdefault(annotation["image_id"], []).append(annotation["caption"])
    if not captions:
        raise DataError(f"{source}: the COCO captions file has no annotations")
    return CaptionReferences(captions, f"{source} (COCO captions)")


def _karpathy_references(data: dict, source: str, split: str | None) -> CaptionReferences:
    images = data["images"]
    counts: dict[str, int] = {}
    for index, entry in enumerate(images):
        if not isinstance(entry, dict) or not isinstance(entry.get("split"), str):
            raise DataError(f"{source}: images[{index}] must be an object with a string 'split'")
        counts[entry["split"]] = counts.get(entry["split"], 0) + 1
    available = ", ".join(f"{name} ({count} images)" for name, count in counts.items())
    if split is None:
        raise DataError(f"{source} is a Karpathy-split JSON: pass --split, one of {available}")
    if split not in counts:
        raise DataError(f"{source}: no split '{split}' (splits: {available})")
    captions: dict[ImageId, list[str]] = {}
    for index, entry in enumerate(images):
        if entry["split"] != split:
            continue
        image_id = entry.get("cocoid", entry.get("imgid"))
        if isinstance(image_id, bool) or not isinstance(image_id, int | str):
            raise DataError(
                f"{source}: images[{index}] needs an integer 'cocoid' or 'imgid', got {image_id!r}"
            )
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise DataError(
                f"{source}: images[{index}] (image {image_id!r}) needs a non-empty 'sentences' list"
            )
        raws = []
        for number, sentence in enumerate(sentences):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if raw is None and isinstance(sentence, dict) and isinstance(sentence.get("tokens"), list):
                raw = " ".join(str(token) for token in sentence["tokens"])
            if not isinstance(raw, str):
                raise DataError(
                    f"{source}: images[{index}].sentences[{number}] needs a string 'raw' (or a 'tokens' list)"
                )
            raws.append(raw)
        if image_id in captions:
            raise DataError(f"{source}: image id {image_id!r} appears twice in split '{split}'")
        captions[image_id] = raws
    return CaptionReferences(captions, f"{source} (Karpathy split '{split}')")


def match_predictions(predictions: dict[ImageId, str], references: CaptionReferences) -> list[ImageId]:
    """The image ids to score, in reference order, after checking that both files cover the same images.

    Raises:
        DataError: predictions for images the references do not have, or images without a prediction.
    """
    refs = references.captions
    unknown = [image_id for image_id in predictions if image_id not in refs]
    missing = [image_id for image_id in refs if image_id not in predictions]
    problems = []
    if unknown:
        problems.append(
            f"{len(unknown)} of {len(predictions)} predicted image ids are not in {references.source} "
            f"(image ids {_shown(unknown)})"
        )
        if all(isinstance(i, str) for i in unknown) and any(isinstance(i, int) for i in refs):
            problems[-1] += "; the predictions use string ids but the references use integers"
    if missing:
        problems.append(
            f"{len(missing)} of {len(refs)} images of {references.source} have no prediction "
            f"(image ids {_shown(missing)})"
        )
    if problems:
        raise DataError(
            "; ".join(problems) + ". Every image of the scored set needs exactly one caption (CIDEr-D's "
            "document frequencies depend on the whole set); to score a subset, use references of that subset"
        )
    return list(refs)


def load_caption_files(
    predictions: str | Path, references: str | Path, split: str | None = None
) -> tuple[dict[ImageId, str], dict[ImageId, list[str]]]:
    """Read and cross-check a predictions file and a references file.

    Args:
        predictions: COCO results JSON (``[{"image_id", "caption"}]``).
        references: COCO ``captions_*.json`` or Karpathy-split JSON.
        split: the Karpathy split to score (required for Karpathy JSON, refused for COCO captions).

    Returns:
        ``(hypotheses, references)`` keyed by image id, in the same (reference file) order.
    """
    predicted = parse_predictions(
        read_json(predictions, "predictions (COCO results format)"), str(predictions)
    )
    refs = parse_references(read_json(references, "references"), str(references), split)
    order = match_predictions(predicted, refs)
    return {i: predicted[i] for i in order}, {i: refs.captions[i] for i in order}
