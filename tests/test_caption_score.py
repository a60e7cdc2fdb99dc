"""`vltk score captioning` through the CLI: COCO and Karpathy references, METEOR or its note, bad input.

The scores are compared with pycocoevalcap itself (its scorers without Java; with Java, its whole pipeline,
PTBTokenizer and METEOR included); with ``CI=true`` a missing Java or pycocoevalcap fails those tests.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vltk.metrics.meteor as meteor_module
from vltk.cli.main import app
from vltk.errors import DataError
from vltk.metrics import coco_caption_text
from vltk.metrics.caption_files import (
    load_caption_files,
    match_predictions,
    parse_predictions,
    parse_references,
)

runner = CliRunner()

REFERENCES = {
    1: ["A man riding a horse on a beach.", "Someone rides a brown horse."],
    2: ["Two dogs play in the snow.", "Dogs running through snow!", "Two puppies in the snow."],
    3: ["A red bus parked on the street.", "A double-decker bus by the road."],
    4: ["A plate of food: rice, beans and a 3.5 oz steak."],
    5: ["A cat laying on top of a laptop computer.", "The cat's on the keyboard."],
}
PREDICTIONS = {
    1: "a man riding a horse",
    2: "two dogs in the snow",
    3: "a bus on a street",
    4: "",
    5: "a cat on a laptop",
}


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def coco_references(tmp_path: Path, references: dict = REFERENCES) -> Path:
    annotations = [
        {"image_id": image_id, "id": 100 * image_id + n, "caption": caption}
        for image_id, captions in references.items()
        for n, caption in enumerate(captions)
    ]
    images = [{"id": image_id, "file_name": f"{image_id}.jpg"} for image_id in references]
    return write(tmp_path / "captions_val.json", {"images": images, "annotations": annotations})


def karpathy_references(tmp_path: Path) -> Path:
    images = [
        {
            "filename": f"{image_id}.jpg",
            "split": "test" if image_id <= 3 else "val",
            "cocoid": image_id,
            "sentences": [{"raw": caption, "tokens": caption.lower().split()} for caption in captions],
        }
        for image_id, captions in REFERENCES.items()
    ]
    return write(tmp_path / "dataset_coco.json", {"images": images, "dataset": "coco"})


def results(predictions: dict) -> list[dict]:
    return [{"image_id": image_id, "caption": caption} for image_id, caption in predictions.items()]


@pytest.fixture
def no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meteor_module.shutil, "which", lambda name: None)


def score(*args: str):
    return runner.invoke(app, ["score", "captioning", *args])


def _coco_scorers(gts: dict, res: dict) -> dict[str, float]:
    """pycocoevalcap's Bleu(4), Rouge and Cider on tokenised strings, under vltk's metric names."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    expected = {f"BLEU-{n + 1}": bleu[n] for n in range(4)}
    expected["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
    expected["CIDEr"] = Cider().compute_score(gts, res)[0]
    return expected


@pytest.mark.needs("pycocoevalcap")
def test_score_equals_the_coco_scorers_without_java(tmp_path: Path, no_java: None) -> None:
    # pycocoevalcap's scorers on the tokenised strings (its tokenizer needs Java: that step is compared with
    # Java in test_caption_ptb_parity.py and, whole, in the next test).
    predictions = write(tmp_path / "results.json", results(PREDICTIONS))
    output = tmp_path / "out" / "metrics.json"
    args = ["--predictions", str(predictions), "--references", str(coco_references(tmp_path))]
    result = score(*args, "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "METEOR unavailable" in result.output and "SPICE unavailable" in result.output
    gts = {i: [coco_caption_text(c) for c in refs] for i, refs in REFERENCES.items()}
    res = {i: [coco_caption_text(c)] for i, c in PREDICTIONS.items()}
    expected = _coco_scorers(gts, res)
    written = json.loads(output.read_text())["metrics"]
    assert set(written) == set(expected)
    for name, value in expected.items():
        assert abs(written[name] - value) <= 1e-6, name


@pytest.mark.needs("ptb-jar", "meteor")
def test_score_coco_references_equals_the_coco_toolkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictions = write(tmp_path / "results.json", results(PREDICTIONS))
    output = tmp_path / "out" / "metrics.json"
    args = ["--predictions", str(predictions), "--references", str(coco_references(tmp_path))]
    # The whole COCO pipeline: Java PTBTokenizer, then Bleu(4), Meteor, Rouge, Cider.
    import pycocoevalcap.meteor.meteor as coco_meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in refs] for i, refs in REFERENCES.items()})
    res = tokenizer.tokenize({i: [{"caption": c}] for i, c in PREDICTIONS.items()})
    expected = _coco_scorers(gts, res)
    shared = coco_meteor.Meteor()  # one JVM start (15 s on a busy machine) serves both sides
    expected["METEOR"] = shared.compute_score(gts, res)[0]
    monkeypatch.setattr(coco_meteor, "Meteor", lambda: shared)

    result = score(*args, "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "CIDEr" in result.output and "SPICE unavailable" in result.output
    written = json.loads(output.read_text())
    assert written["split"] == "scored"
    assert set(written["metrics"]) == set(expected)
    for name, value in expected.items():
        assert abs(written["metrics"][name] - value) <= 1e-6, name


def test_score_karpathy_split_and_meteor_note(tmp_path: Path, no_java: None) -> None:
    references = karpathy_references(tmp_path)
    subset = {i: PREDICTIONS[i] for i in (1, 2, 3)}
    predictions = write(tmp_path / "results.json", results(subset))
    result = score("--predictions", str(predictions), "--references", str(references), "--split", "test")
    assert result.exit_code == 0, result.output
    assert "METEOR unavailable: java is not on PATH" in result.output
    assert "│ METEOR" not in result.output and "│ CIDEr" in result.output
    hypotheses, refs = load_caption_files(predictions, references, "test")
    assert list(hypotheses) == [1, 2, 3] and refs[2] == REFERENCES[2]

    result = score("--predictions", str(predictions), "--references", str(references))
    assert result.exit_code == 2
    assert "pass --split, one of test (3 images), val (2 images)" in result.output
    result = score("--predictions", str(predictions), "--references", str(references), "--split", "tst")
    assert result.exit_code == 2 and "no split 'tst'" in result.output


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            results(PREDICTIONS) + [{"image_id": 9, "caption": "x"}, {"image_id": 11, "caption": "y"}],
            "2 of 7 predicted image ids are not in",
        ),
        (results({i: PREDICTIONS[i] for i in (1, 2)}), "3 of 5 images of"),
        (
            results(PREDICTIONS) + [{"image_id": 2, "caption": "again"}],
            "1 image ids have more than one caption",
        ),
        (
            results(PREDICTIONS) + [{"image_id": 6}, ["x"], {"image_id": 7, "caption": 3}],
            "3 of 8 entries are malformed: #5 has no 'caption'; #6 is a list, not an object; #7 (image 7)",
        ),
        ({"annotations": []}, "looks like a references file"),
        ("a string", "got a string"),
        ([], "the predictions list is empty"),
    ],
)
def test_bad_predictions_are_one_clear_line(tmp_path: Path, entries: object, message: str) -> None:
    predictions = write(tmp_path / "results.json", entries)
    result = score("--predictions", str(predictions), "--references", str(coco_references(tmp_path)))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


def test_errors_name_the_offending_ids(tmp_path: Path) -> None:
    many = {i: ["a caption"] for i in range(20)}
    refs = parse_references({"annotations": [{"image_id": i, "caption": "c"} for i in many]}, "refs.json")
    shown = r"\(image ids 8, 9, 10, 11, 12, \.\.\. \(7 more\)\)"
    with pytest.raises(DataError, match=r"12 of 20 images .* have no prediction " + shown):
        match_predictions({i: "x" for i in range(8)}, refs)
    with pytest.raises(DataError, match="string ids but the references use integers"):
        match_predictions({str(i): "x" for i in range(20)}, refs)
    with pytest.raises(DataError, match=r"image ids 4, 5"):
        parse_predictions(results({1: "a", 4: "b", 5: "c"}) + results({4: "d", 5: "e"}), "p.json")


def test_unreadable_files_and_wrong_options(tmp_path: Path) -> None:
    references = coco_references(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": 1, "caption": "a"}', encoding="utf-8")
    result = score("--predictions", str(broken), "--references", str(references))
    assert result.exit_code == 2 and "broken.json: not valid JSON" in result.output
    predictions = write(tmp_path / "results.json", results(PREDICTIONS))
    result = score("--predictions", str(tmp_path / "nope.json"), "--references", str(references))
    assert result.exit_code == 2 and "not found" in result.output
    result = score("--predictions", str(predictions), "--references", str(references), "--split", "test")
    assert result.exit_code == 2 and "--split applies to Karpathy JSON only" in result.output
    result = score("--predictions", str(predictions))
    assert result.exit_code == 2 and "needs --references" in result.output
    result = score("--predictions", str(predictions), "--references", str(predictions))
    assert result.exit_code == 2 and "expected a COCO captions file" in result.output
    result = score("--predictions", str(predictions), "--references", str(references), "--questions", "q")
    assert result.exit_code == 2 and "--questions do(es) not apply" in result.output


def test_final_test_metrics_get_meteor_or_a_warning(no_java: None, caplog: pytest.LogCaptureFixture) -> None:
    from vltk.metrics.caption import CaptionRecord
    from vltk.tasks.captioning.system import CaptioningConfig, CaptioningTask

    assert CaptioningConfig().metrics.meteor == "auto"
    records = [CaptionRecord(i, PREDICTIONS[i], tuple(REFERENCES[i])) for i in REFERENCES]
    task = CaptioningTask.__new__(CaptioningTask)  # only the scoring helpers, no model
    with caplog.at_level("WARNING"):
        metrics = task._score(records, meteor=True)
    assert "METEOR" not in metrics and metrics["CIDEr"] > 0
    assert "METEOR unavailable: java is not on PATH" in caplog.text
    assert task._score(records, meteor=False) == metrics


def test_evaluate_predictions_rescore_to_the_same_metrics(
    trained_run: Path, tmp_path: Path, no_java: None
) -> None:
    # `vltk evaluate --predictions` writes COCO results; `vltk score` on them gives the evaluation's numbers.
    import yaml

    from vltk.tasks.captioning.shapes import ensure_shapes

    data = yaml.safe_load((trained_run / "config.yaml").read_text())["data"]
    params = ("num_images", "image_size", "seed", "val_fraction", "test_fraction")
    references = ensure_shapes(data["cache_dir"], **{key: data[key] for key in params})
    predictions, output = tmp_path / "results.json", tmp_path / "m.json"
    checkpoint = str(trained_run / "checkpoints/best.ckpt")
    result = runner.invoke(
        app, ["evaluate", checkpoint, "--split", "test", "--predictions", str(predictions)]
    )
    assert result.exit_code == 0, result.output
    result = score("--predictions", str(predictions), "--references", str(references), "--split", "test",
                   "--output", str(output))  # fmt: skip
    assert result.exit_code == 0, result.output
    rescored = json.loads(output.read_text())["metrics"]
    expected = json.loads((trained_run / "metrics.json").read_text())["metrics"]
    assert {name: rescored[name] for name in expected} == pytest.approx(expected, abs=1e-9)
