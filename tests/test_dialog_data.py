"""Visual dialog data: the shapes_dialog generator, the VisDial v1.0 reader, collation and the DataModule."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from vltk.data.feature_cache import FeatureStore, cache_features
from vltk.data.images import default_image_transform
from vltk.errors import DataError
from vltk.tasks.dialog.batch import DialogBatch
from vltk.tasks.dialog.datamodule import ShapesDialogDataModule, VisDialDataModule
from vltk.tasks.dialog.dataset import DialogDataset, collate_dialogs, history_ids
from vltk.tasks.dialog.datasets import DIALOG_DATASETS
from vltk.tasks.dialog.shapes_dialog import (
    ROUND_TYPES,
    answer_universe,
    ensure_shapes_dialog,
    generate_shapes_dialog,
    relevance,
    split_paths,
    surface_forms,
)
from vltk.tasks.dialog.visdial import image_id_of, read_visdial
from vltk.text.vocab import Vocabulary, tokenize
from vltk.types import ImageFeatures


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_shapes_dialog(tmp_path_factory.mktemp("sd"), num_dialogs=40, seed=1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- the generator ------------------------------------------------------------------------------------


def test_same_parameters_give_byte_identical_files(generated: Path, tmp_path: Path):
    again = generate_shapes_dialog(tmp_path / "again", num_dialogs=40, seed=1)
    assert _files(again) == _files(generated)
    other = generate_shapes_dialog(tmp_path / "other", num_dialogs=40, seed=2)
    assert _files(other)["visdial_1.0_train.json"] != _files(generated)["visdial_1.0_train.json"]


def test_layout_rounds_options_types_and_dense_annotations(generated: Path):
    universe = answer_universe()
    types, partial = set(), 0
    for split, size in (("train", 30), ("val", 5), ("test", 5)):
        dialogs_path, dense_path = split_paths(generated, split)
        document = json.loads(dialogs_path.read_text())
        assert document["version"] == "1.0" and document["split"] == split
        data = document["data"]
        answers = data["answers"]
        assert len(data["dialogs"]) == size
        for dialog in data["dialogs"]:
            assert (generated / "images" / f"ShapesDialog_{split}_{dialog['image_id']:012d}.png").is_file()
            assert len(dialog["dialog"]) == 10
            for turn in dialog["dialog"]:
                options = turn["answer_options"]
                assert len(options) == 100 and len(set(options)) == 100
                assert answers[options[turn["gt_index"]]] == answers[turn["answer"]]
                assert turn["type"] in ROUND_TYPES
                types.add(turn["type"])
        dense = json.loads(dense_path.read_text())
        assert [d["image_id"] for d in dense] == [d["image_id"] for d in data["dialogs"]]  # one round each
        for entry, dialog in zip(dense, data["dialogs"], strict=True):
            turn = dialog["dialog"][entry["round_id"] - 1]
            scores = entry["gt_relevance"]
            assert len(scores) == 100 and all(0.0 <= s <= 1.0 for s in scores)
            assert scores[turn["gt_index"]] == 1.0
            right = universe[answers[turn["answer"]]]
            for option, score in zip(turn["answer_options"], scores, strict=True):
                assert score == relevance(right, universe[answers[option]])
            partial += sum(s == 0.5 for s in scores)
    assert types == set(ROUND_TYPES)
    assert partial > 0


def test_coreference_rounds_refer_to_an_object_named_before(generated: Path):
    data = json.loads(split_paths(generated, "train")[0].read_text())["data"]
    questions = data["questions"]
    coreference = [
        (questions[t["question"]], number)
        for d in data["dialogs"]
        for number, t in enumerate(d["dialog"])
        if t["type"] == "coreference"
    ]
    assert len(coreference) >= 30
    assert all(" it" in q for q, _ in coreference)
    assert any(q.startswith(("and the one", "what is")) for q, _ in coreference)
    assert any(number == 0 for _, number in coreference)  # round 1 refers to the caption


def test_relevance_and_paraphrases():
    assert relevance(("count", 2), ("count", 2)) == 1.0 and "two" in surface_forms(("count", 2))
    assert relevance(("object", "small", "red", "circle"), ("object", "large", "red", "circle")) == 0.5
    assert relevance(("object", "small", "red", "circle"), ("object", "large", "blue", "circle")) == 0.0
    assert relevance(("position", "top", "left"), ("position", None, "left")) == 0.5
    assert relevance(("colour", "red"), ("colour", "blue")) == 0.0
    assert surface_forms(("yesno", True))[0] == "yes" and len(answer_universe()) >= 100


def test_ensure_generates_once_into_the_cache(tmp_path: Path):
    first = ensure_shapes_dialog(tmp_path, num_dialogs=8)
    stamp = (first / "visdial_1.0_train.json").stat().st_mtime_ns
    assert ensure_shapes_dialog(tmp_path, num_dialogs=8) == first
    assert (first / "visdial_1.0_train.json").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary folder left


def test_cli_synth_writes_the_dataset(tmp_path: Path):
    from vltk.cli.main import app

    result = CliRunner().invoke(
        app, ["data", "synth", "shapes_dialog", "--out", str(tmp_path), "--num-dialogs", "8"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(split_paths(tmp_path, "train")[0].read_text())["data"]["dialogs"]) == 6


# ---- the reader ---------------------------------------------------------------------------------------

ANSWERS = [f"answer {i}" for i in range(120)]


def _round(q: int, a: int) -> dict:
    options = [(a + k) % len(ANSWERS) for k in range(100)]  # the answer is option 0 ... then shifted
    options = options[1:] + options[:1]
    return {"question": q, "answer": a, "answer_options": options, "gt_index": 99}


def _dialog(image_id: int, rounds: int = 10) -> dict:
    return {
        "image_id": image_id,
        "caption": f"caption {image_id}",
        "dialog": [_round(r, r) for r in range(rounds)],
    }


def _write_fixture(root: Path, dialogs: list[dict], images: list[str]) -> tuple[Path, Path]:
    (root / "images").mkdir(exist_ok=True)
    for name in images:
        Image.new("RGB", (8, 8), (200, 0, 0)).save(root / "images" / name)
    path = root / "visdial_1.0_val.json"
    document = {
        "version": "1.0",
        "split": "val",
        "data": {"questions": [f"question {i}?" for i in range(12)], "answers": ANSWERS, "dialogs": dialogs},
    }
    path.write_text(json.dumps(document))
    return path, root / "images"


GOOD_IMAGES = ["VisualDialog_val2018_000000000001.jpg", "2.png", "VisualDialog_val2018_000000000003.jpg"]


def test_reader_reads_a_good_split_and_finds_images_by_id(tmp_path: Path):
    path, images = _write_fixture(tmp_path, [_dialog(1), _dialog(2), _dialog(3)], GOOD_IMAGES)
    dense = tmp_path / "dense.json"
    dense.write_text(json.dumps([{"image_id": 2, "round_id": 4, "gt_relevance": [0.5] * 100}]))
    split = read_visdial(path, dense, images)
    assert split.skipped == 0 and [d.image_id for d in split.dialogs] == [1, 2, 3]
    assert split.dialogs[1].image_path == images / "2.png"
    assert split.dialogs[1].relevance == {3: [0.5] * 100}
    turn = split.dialogs[0].rounds[2]
    assert (turn.question, turn.answer, turn.gt_index) == ("question 2?", "answer 2", 99)
    assert split.answers[turn.options[turn.gt_index]] == "answer 2"
    assert image_id_of("VisualDialog_test2018_000000000042.jpg") == 42


def _short(d):
    d["dialog"] = d["dialog"][:7]


def _gt_out_of_range(d):
    d["dialog"][3]["gt_index"] = 100


def _99_options(d):
    d["dialog"][5]["answer_options"] = d["dialog"][5]["answer_options"][:98] + [d["dialog"][5]["answer"]]
    d["dialog"][5]["gt_index"] = 98


def _question_index(d):
    d["dialog"][2]["question"] = 500


def _option_index(d):
    d["dialog"][8]["answer_options"][0] = -1


BAD = {
    "fewer than 10 rounds": (_short, "7 rounds, expected at least 10"),
    "gt_index out of range": (_gt_out_of_range, "round 4: gt_index 100 is out of range [0, 100)"),
    "99 options": (_99_options, "round 6 has 99 answer options, expected 100"),
    "question index": (_question_index, "round 3: question index 500 is out of range"),
    "answer option index": (_option_index, "round 9: answer option -1 is out of range"),
    "missing image": (None, "image not found in"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_dialog_is_named_skipped_and_counted_and_the_rest_loads(case, tmp_path: Path, caplog):
    spoil, expected = BAD[case]
    dialogs = [_dialog(1), _dialog(2), _dialog(3)]
    images = list(GOOD_IMAGES)
    if spoil is None:
        images.remove("2.png")
    else:
        spoil(dialogs[1])
    path, image_dir = _write_fixture(tmp_path, dialogs, images)
    with caplog.at_level(logging.WARNING, logger="vltk.tasks.dialog.visdial"):
        split = read_visdial(path, image_dir=image_dir)
    assert [d.image_id for d in split.dialogs] == [1, 3]
    assert split.skipped == 1 and len(split.problems) == 1
    message = split.problems[0]
    assert str(path) in message and "image_id=2" in message and expected in message, message
    assert message in caplog.text
    with pytest.raises(DataError, match="image_id=2"):
        read_visdial(path, image_dir=image_dir, on_bad_dialog="raise")


def test_malformed_files_raise_a_data_error_naming_the_file_and_key(tmp_path: Path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="broken.json: not valid JSON"):
        read_visdial(broken)
    keyless = tmp_path / "keyless.json"
    keyless.write_text(json.dumps({"version": "1.0", "data": {"questions": [], "answers": []}}))
    with pytest.raises(DataError, match=r"keyless.json: missing key 'data.dialogs'"):
        read_visdial(keyless)
    with pytest.raises(DataError, match="nowhere: image directory not found"):
        read_visdial(_write_fixture(tmp_path, [_dialog(1)], [])[0], image_dir=tmp_path / "nowhere")


def test_test_style_dialogs_stop_early_without_an_answer(tmp_path: Path):
    last = _dialog(1, rounds=4)
    del last["dialog"][-1]["answer"], last["dialog"][-1]["gt_index"]
    path, _ = _write_fixture(tmp_path, [last, _dialog(2)], [])
    assert read_visdial(path).skipped == 1  # min_rounds defaults to 10
    split = read_visdial(path, min_rounds=1)
    rounds = split.dialogs[0].rounds
    assert len(rounds) == 4 and rounds[-1].gt_index == -1 and rounds[-1].answer is None
    middle = copy.deepcopy(last)
    del middle["dialog"][1]["answer"], middle["dialog"][1]["gt_index"]
    assert read_visdial(_write_fixture(tmp_path, [middle], [])[0], min_rounds=1).skipped == 1


# ---- collation ----------------------------------------------------------------------------------------


def _dataset(tmp_path: Path, **options) -> DialogDataset:
    short = _dialog(3, rounds=4)
    del short["dialog"][-1]["answer"], short["dialog"][-1]["gt_index"]
    path, images = _write_fixture(tmp_path, [_dialog(1), _dialog(2), short], GOOD_IMAGES)
    dense = tmp_path / "dense.json"
    dense.write_text(json.dumps([{"image_id": 1, "round_id": 2, "gt_relevance": [0.25] * 100}]))
    split = read_visdial(path, dense, images, min_rounds=1)
    words = [
        w
        for text in (*ANSWERS, *(f"question {i}" for i in range(12)), "caption 1 2 3")
        for w in tokenize(text)
    ]
    vocab = Vocabulary.from_words(sorted(set(words)))
    return DialogDataset(
        split.dialogs, split.answers, vocab, transform=default_image_transform(16), **options
    )


def test_collate_pads_rounds_and_stores_each_candidate_answer_once(tmp_path: Path):
    dataset = _dataset(tmp_path)
    batch = collate_dialogs([dataset[0], dataset[1], dataset[2]], pad_id=dataset.vocab.pad_id)
    assert isinstance(batch, DialogBatch) and len(batch) == 3
    assert batch.images.shape == (3, 3, 16, 16) and batch.image_ids.tolist() == [1, 2, 3]
    assert batch.options.shape == (3, 10, 100) and batch.num_rounds == 10 and batch.num_options == 100
    assert batch.round_mask.sum(dim=1).tolist() == [10, 10, 4]
    assert batch.gt_index[2, 3:].tolist() == [-1] * 7 and batch.question_lengths[2, 4:].eq(0).all()
    assert len(set(batch.option_texts)) == len(batch.option_texts) == batch.option_tokens.shape[0]
    assert batch.option_tokens.shape[0] < 3 * 10 * 100  # the same answers repeat across rounds and dialogs
    vocab = dataset.vocab
    for b in range(2):
        for r in range(10):
            row = int(batch.options[b, r, batch.gt_index[b, r]])
            assert vocab.decode(batch.option_tokens[row].tolist()) == f"answer {r}"
            assert batch.option_tokens[row, 0] == vocab.start_id
            assert batch.option_tokens[row, batch.option_lengths[row] - 1] == vocab.end_id
            length = int(batch.question_lengths[b, r])
            assert vocab.decode(batch.questions[b, r, :length].tolist()) == f"question {r}"
    assert batch.relevance_mask.nonzero().tolist() == [[0, 1]]
    assert batch.relevance[0, 1].eq(0.25).all() and batch.relevance[1].eq(0).all()
    assert batch.question_texts[2][4:] == [""] * 6 and batch.round_types[0] == [""] * 10
    assert batch.captions == ["caption 1", "caption 2", "caption 3"]
    moved = batch.to("cpu")
    assert torch.equal(moved.options, batch.options)


def test_history_is_caption_then_earlier_rounds_truncated_on_the_left(tmp_path: Path):
    assert history_ids([1, 2], [[3, 4], [5], [6, 7, 8]], max_length=4) == [[1, 2], [1, 2, 3, 4], [2, 3, 4, 5]]
    dataset = _dataset(tmp_path, max_history_length=6)
    batch = collate_dialogs([dataset[0]])
    vocab = dataset.vocab
    histories = [vocab.decode(batch.history[0, r, : batch.history_lengths[0, r]].tolist()) for r in range(4)]
    assert histories[0] == "caption 1"
    assert histories[1] == "caption 1 question 0 answer 0"
    assert histories[3] == "answer 1 question 2 answer 2"  # the last 6 words
    assert batch.history_lengths[0].max() == 6


# ---- the DataModule -----------------------------------------------------------------------------------


def test_shapes_dialog_datamodule_end_to_end(tmp_path: Path):
    dm = DIALOG_DATASETS["shapes_dialog"](
        num_dialogs=40, cache_dir=str(tmp_path), batch_size=8, eval_batch_size=5, max_history_length=30
    )
    assert isinstance(dm, ShapesDialogDataModule)
    dm.setup()
    assert dm.skipped == {"train": 0, "val": 0, "test": 0}
    assert {"circle", "red", "how", "yes", "two", "it"} <= set(dm.vocab.words)
    batch = next(iter(dm.train_dataloader()))
    assert batch.images.shape == (8, 3, 64, 64) and batch.options.shape == (8, 10, 100)
    assert batch.history_lengths.max() <= 30 and batch.relevance_mask.sum() == 8
    assert set(t for types in batch.round_types for t in types) <= set(ROUND_TYPES)
    rows = batch.options.gather(2, batch.gt_index.unsqueeze(-1)).squeeze(-1)  # [B, R]
    assert (
        batch.relevance[batch.relevance_mask]
        .gather(1, batch.gt_index[batch.relevance_mask].unsqueeze(-1))
        .eq(1.0)
        .all()
    )
    for b, r in ((0, 0), (3, 7)):
        decoded = dm.vocab.decode(batch.option_tokens[rows[b, r]].tolist())
        assert decoded == " ".join(tokenize(batch.option_texts[rows[b, r]]))
    val = list(dm.val_dataloader())
    assert [len(b) for b in val] == [5] and len(list(dm.dataloader_for("test"))) == 1
    with pytest.raises(DataError, match=r"^unknown split 'dev' \(available: test, train, val\)$"):
        dm.dataloader_for("dev")
    dm.image_transform = default_image_transform(32)  # what the task assigns
    assert next(iter(dm.val_dataloader())).images.shape[-1] == 32
    restored = ShapesDialogDataModule(num_dialogs=40, cache_dir=str(tmp_path))
    restored.load_state_dict(dm.state_dict())
    assert restored.vocab == dm.vocab


class _TinyGrid(nn.Module):
    def forward(self, images):
        grid = images.flatten(2).transpose(1, 2)[:, :4]  # [B, 4, 3]
        return ImageFeatures(grid=grid, pooled=grid.mean(1), mask=None, grid_size=(2, 2))


def test_visdial_datamodule_reads_a_feature_cache_and_skips_uncached_dialogs(tmp_path: Path):
    path, _ = _write_fixture(tmp_path, [_dialog(1), _dialog(2), _dialog(3)], [])
    store_dir = tmp_path / "cache"
    cache_features(
        _TinyGrid(),
        {"name": "tiny"},
        [1, 3],
        [torch.rand(3, 4, 4), torch.rand(3, 4, 4)],  # the images of ids 1 and 3
        store_dir,
        dataset="fixture",
        transform="none",
    )
    dm = VisDialDataModule(train_json=str(path), val_json=str(path), batch_size=4)
    dm.setup()
    dm.image_transform = FeatureStore(store_dir)
    batch = next(iter(dm.val_dataloader()))
    assert batch.images.shape == (2, 4, 3) and batch.image_ids.tolist() == [1, 3]
    assert dm.skipped["val"] == 1 and "image_id=2" in dm.split("val").problems[0]
    assert len(dm.dataset("test")) == 0  # no test file given: an empty split


def test_validate_lists_every_bad_dialog_of_a_visdial_file(tmp_path: Path):
    from vltk.cli.main import app

    dialogs = [_dialog(1), _dialog(2), _dialog(3)]
    _short(dialogs[0])
    _gt_out_of_range(dialogs[2])
    path, images = _write_fixture(tmp_path, dialogs, GOOD_IMAGES)
    (images / "2.png").write_bytes(b"not a png")
    result = CliRunner().invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "2 malformed entries" in output and "1 unreadable images" in output
    for expected in ("image_id=1", "7 rounds", "image_id=3", "gt_index 100", "image_id=2"):
        assert expected in output, output


def test_bad_dense_annotations_are_named_and_ignored(tmp_path: Path):
    path, _ = _write_fixture(tmp_path, [_dialog(1), _dialog(2), _dialog(3)], [])
    dense = tmp_path / "dense.json"
    entries = [
        {"image_id": 1, "round_id": 1, "gt_relevance": [1.0] * 99},
        {"image_id": 2, "round_id": 11, "gt_relevance": [1.0] * 100},
        {"image_id": 3, "round_id": 10, "relevance": [0.5] * 100},  # the key of VisDial's train sample
    ]
    dense.write_text(json.dumps(entries))
    split = read_visdial(path, dense)
    assert [d.relevance for d in split.dialogs[:2]] == [{}, {}]
    assert split.dialogs[2].relevance == {9: [0.5] * 100}
    assert split.skipped == 0 and len(split.problems) == 2
    assert "entry [0] (image_id=1): gt_relevance must be a list of 100 numbers" in split.problems[0]
    assert "entry [1] (image_id=2): round_id 11 is not in 1..10" in split.problems[1]
