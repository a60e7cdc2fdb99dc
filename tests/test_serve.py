"""``vltk serve``: every tab computes what ``vltk predict`` / ``from_pretrained`` give for the same input,
bad uploads become one message in the page, the server binds to 127.0.0.1 with no share option and removes
its uploads at exit, and a real headless Chromium drives the page: it uploads an image, asks a question,
reads the answers from the page and takes a screenshot (``@pytest.mark.needs("chromium")``: skipped without
Debian's chromium + chromium-driver, failed when ``CI=true``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import chromium, css, free_port, toasts, upload, wait_for
from conftest import TINY_CAPTIONING
from PIL import Image
from test_cli_errors import assert_one_line_error
from test_dialog_task import TINY_DIALOG
from test_lm_task import CODE
from test_lm_task import tiny_overrides as tiny_lm_overrides
from test_navigation_task import TINY_NAVIGATION
from test_r2r_task import PANORAMIC
from test_r2r_task import TINY as TINY_R2R
from test_vqa_task import TINY as TINY_VQA
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.errors import VltkError
from vltk.export import export_checkpoint
from vltk.tasks.runner import load_task_config, train
from vltk.tasks.serve import ServedModel, build_app, launch, load_served_models, pick_device, upload_folder
from vltk.tasks.webdemo import PageError, read_upload, require_gradio, shows_errors, weighted_words_html

gradio = pytest.importorskip("gradio", reason="gradio is a test dependency (pip install -e '.[test]')")

TASK_RUNS = {
    "captioning": ("captioning", None, TINY_CAPTIONING),
    "vqa": ("vqa", None, [*TINY_VQA, "data.max_questions=40"]),
    "dialog": ("dialog", None, TINY_DIALOG),
    "navigation": ("navigation", None, [*TINY_NAVIGATION, "data.episodes=16"]),
    "r2r": ("navigation", "r2r_houses", [*TINY_R2R, *PANORAMIC]),
    "lm": ("lm", None, None),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny trained model of every task (the task tests' own tiny configs), by tab name."""
    root = tmp_path_factory.mktemp("serve-models")
    text = root / "code.py"
    text.write_text(CODE, encoding="utf-8")
    found = {}
    for name, (task, config, overrides) in TASK_RUNS.items():
        overrides = tiny_lm_overrides(text) if overrides is None else overrides
        train(load_task_config(task, config, [*overrides, "seed=2"]), run_dir=root / name)
        found[name] = root / name / "checkpoints" / "last.ckpt"
    return found


@pytest.fixture(scope="module")
def served(checkpoints: dict[str, Path]) -> dict[str, ServedModel]:
    names = list(checkpoints)
    return dict(zip(names, load_served_models([checkpoints[name] for name in names])))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 224 px RGB image, a grey one, a palette one, a transparent one and a file that is no image."""
    root = tmp_path_factory.mktemp("uploads")
    rgb = Image.new("RGB", (224, 224), "white")
    for x in range(40, 140):
        for y in range(60, 160):
            rgb.putpixel((x, y), (220, 30, 30))
    paths = {"rgb": root / "shapes.png", "grey": root / "grey.png", "palette": root / "palette.gif"}
    rgb.save(paths["rgb"])
    rgb.convert("L").save(paths["grey"])
    rgb.convert("P").save(paths["palette"])
    paths["rgba"] = root / "transparent.png"
    Image.new("RGBA", (60, 40), (0, 0, 255, 0)).save(paths["rgba"])
    paths["text"] = root / "notes.png"
    paths["text"].write_text("this is not a picture\n", encoding="utf-8")
    return paths


# --------------------------------------------------------------------------------- what each tab computes
def test_the_caption_tab_shows_the_beam_that_predict_decodes(served, pictures):
    model = served["captioning"]
    demo, captioner = model.demo, model.inference
    view = demo.describe(pictures["rgb"], beam_size=3)
    assert len(view.captions) == 3
    scores = [caption.score for caption in view.captions]
    assert scores == sorted(scores, reverse=True)
    image = read_upload(pictures["rgb"])
    assert view.best.text == captioner.caption([image], beam_size=3)[0]  # vltk predict's caption
    assert [c.text for c in demo.describe(pictures["rgb"], beam_size=1).captions] == captioner.caption(
        [image], beam_size=1
    )
    picture, words = demo.word_frame(view, 2)
    assert picture.shape == (*view.picture.size[::-1], 3) and picture.dtype == np.uint8
    assert words.count('class="vltk-word"') == len(view.best.words)
    assert demo.word_frame(view, 99)[1] == demo.word_frame(view, len(view.best.words))[1]  # clamped
    html = demo.captions_html(view)
    assert html.count('class="vltk-caption"') == 3 and view.best.text in html


def test_the_word_slider_accepts_captions_of_one_word_or_none():
    import gradio as gr

    from vltk.tasks.captioning.demo import CaptioningDemo

    for count in (0, 1, 2, 7):
        steps = CaptioningDemo.word_steps(count)
        gr.Slider(1, **steps)  # Gradio refuses minimum >= maximum
        assert steps["maximum"] >= count and steps["interactive"] == (count > 1)


def test_the_vqa_tab_gives_the_top_five_answers_and_a_map_per_glimpse(served, pictures):
    model = served["vqa"]
    view = model.demo.ask(pictures["rgb"], "what color is the shape?")
    image = read_upload(pictures["rgb"])
    assert view.answers == model.inference.answer([image], "what color is the shape?", top_k=5)[0]
    glimpses = model.inference.forward(image, model.inference.question_ids("what color")[0]).attention.shape[
        1
    ]
    assert len(view.glimpses) == glimpses >= 1
    assert all(picture.ndim == 3 for picture, _ in view.glimpses)
    with pytest.raises(VltkError, match="type a question"):
        model.demo.ask(pictures["rgb"], "  ")
    with pytest.raises(PageError, match="upload an image first"):
        model.demo.ask(None, "what color is the shape?")


def test_the_dialog_tab_reads_the_history_and_shows_where_each_answer_looked(served, pictures):
    model = served["dialog"]
    conversation = model.demo.start(pictures["rgb"], "a red square")
    questions = ["how many shapes are there?", "what colour is it?"]
    answers = [model.demo.reply(conversation, q).answer for q in questions]
    direct = model.inference.chat(read_upload(pictures["rgb"]), "a red square")
    assert answers == [direct.ask(q).answer for q in questions]  # the same history, the same answers
    assert [m["content"] for m in conversation.messages()] == [
        "caption: a red square",
        questions[0],
        answers[0],
        questions[1],
        answers[1],
    ]
    for answer in conversation.rounds:
        assert answer.attention is not None and abs(float(answer.attention.sum()) - 1) < 1e-5
    assert len(conversation.gallery()) == 2
    with pytest.raises(PageError, match="upload an image first"):
        model.demo.reply(None, "how many?")


def test_the_navigation_tab_plays_the_predict_episode_step_by_step(served):
    model = served["navigation"]
    follower = model.inference
    played = model.demo.play(None, follower.test_seed)
    expected = follower.play(follower.test_seed)
    assert played.episode.actions == expected.actions and played.steps == len(expected.frames)
    frame, words, happened = model.demo.step(played, 0)
    assert frame.shape == expected.frames[0].shape and words.count('class="vltk-word"') == len(played.words)
    assert "step 1" in happened
    assert "end:" in model.demo.step(played, played.steps - 1)[2]
    with pytest.raises(VltkError, match="unknown BabyAI level"):
        model.demo.play("BabyAI-GoToRedBal-v0", 1)
    with pytest.raises(VltkError, match="whole number"):
        model.demo.play(None, 1.5)


def test_the_r2r_tab_follows_an_instruction_of_the_dataset(served):
    model = served["r2r"]
    splits = model.demo.splits()
    assert splits and "train" == splits[-1]
    instr_id = model.demo.instruction_ids(splits[0])[1]
    episode = model.demo.follow(splits[0], instr_id)
    assert episode.trajectory == model.inference.play(instr_id, splits[0]).trajectory
    picture, words, happened = model.demo.step(episode, 1)
    assert picture.ndim == 3 and picture.shape[2] == 3 and "vltk-word" in words
    with pytest.raises(VltkError, match="no instruction"):
        model.demo.follow(splits[0], "no_such_id")


def test_the_lm_tab_samples_as_predict_does_and_colours_a_cell(served):
    model = served["lm"]
    sampler = model.inference
    text = model.demo.sample("def ", 40, 0.8, seed=3)
    assert text.sample == sampler.sample("def ", 40, 0.8, seed=3)
    assert len(text.symbols) == len("def ") + len(text.sample) == text.activations.shape[0]
    html = model.demo.coloured(text, 1)
    assert html.count("<span") == len(text.symbols)
    with pytest.raises(VltkError, match="the cell must be between 0 and"):
        model.demo.coloured(text, text.units)
    with pytest.raises(VltkError, match="never saw"):
        model.demo.sample("\u00e9", 5, 0.8, seed=1)


# ------------------------------------------------------------------------------------ uploads and errors
def test_uploads_of_any_mode_are_read_as_rgb_and_bad_ones_are_one_line(pictures, monkeypatch):
    for kind in ("rgb", "grey", "palette", "rgba"):
        assert read_upload(pictures[kind]).mode == "RGB"
    with pytest.raises(PageError) as error:
        read_upload(pictures["text"])
    assert str(error.value) == "notes.png: not an image file (or an unsupported format)"  # no temp path
    with pytest.raises(PageError, match="upload an image first"):
        read_upload(None)
    with pytest.raises(PageError, match=r"shapes.png is 0.0 MB; the demo takes images up to 1e-05 MB"):
        read_upload(pictures["rgb"], max_mb=1e-5)
    monkeypatch.setattr("vltk.tasks.webdemo.MAX_UPLOAD_PIXELS", 1000)
    with pytest.raises(PageError, match="224 x 224 pixels; the demo takes images up to 0.001 megapixels"):
        read_upload(pictures["rgb"])


def test_handlers_turn_every_failure_into_one_message_in_the_page():
    @shows_errors(gradio)
    def user_mistake():
        raise PageError("upload an image first")

    @shows_errors(gradio)
    def bug():
        raise RuntimeError("shapes\ndo not match")

    with pytest.raises(gradio.Error) as shown:
        user_mistake()
    assert shown.value.message == "upload an image first"
    with pytest.raises(gradio.Error) as shown:
        bug()
    assert shown.value.message.startswith("internal error (RuntimeError: shapes do not match)")


def test_weighted_words_are_shaded_relative_to_the_top_word():
    html = weighted_words_html(["go", "<b>", "left"], [0.1, 0.0, 0.4])
    assert "&lt;b&gt;" in html and "rgb(255,55,55)" in html and "rgb(255,255,255)" in html
    assert weighted_words_html(["a"], None).count('class="vltk-word"') == 1


def test_without_gradio_serve_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    with pytest.raises(VltkError, match=r"pip install 'vltk\[demo\]'"):
        require_gradio()
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "model.ckpt")])
    assert_one_line_error(result, "vltk[demo]")


def test_the_cli_refuses_bad_models_devices_and_a_share_flag(tmp_path, checkpoints):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "missing.ckpt")])
    assert_one_line_error(result, "missing.ckpt")
    if not torch.cuda.is_available():
        result = CliRunner().invoke(app, ["serve", str(checkpoints["vqa"]), "--device", "cuda"])
        assert_one_line_error(result, "no CUDA GPU")
        with pytest.raises(VltkError, match="no CUDA GPU"):
            pick_device("cuda:1")
    assert pick_device("auto").type in ("cpu", "cuda")
    result = CliRunner().invoke(app, ["serve", str(checkpoints["vqa"]), "--share"])
    assert result.exit_code == 2 and "No such option" in result.output
    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    assert "Example:" in help_text and "127.0.0.1" in help_text and "vltk[demo]" in help_text


def test_a_port_in_use_is_one_line_naming_it(served):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = build_app([served["vqa"]])
        try:
            with pytest.raises(VltkError, match=f"cannot serve on 127.0.0.1:{port}"):
                launch(demo, port=port, block=False)
        finally:
            demo.close()


def test_tabs_are_labelled_by_task_and_run(served, checkpoints):
    assert served["captioning"].label == "captioning: captioning/last.ckpt"
    assert served["r2r"].label == "navigation: r2r/last.ckpt"
    exported = export_checkpoint(checkpoints["vqa"], checkpoints["vqa"].parents[2] / "vqa-export")
    (model,) = load_served_models([exported])
    assert model.label == "vqa: vqa-export" and model.task == "vqa"


# ------------------------------------------------------------------------------------- the real browser
def _open_tab(driver, index: int) -> None:
    css(driver, "[role=tab]")[index].click()


@pytest.mark.needs("chromium")
def test_a_browser_uploads_asks_and_reads_the_answers(served, pictures, tmp_path):
    order = ["captioning", "vqa", "dialog", "navigation", "r2r", "lm"]
    models = [served[name] for name in order]
    port = free_port()
    with upload_folder() as folder:
        demo = build_app(models)
        url = launch(demo, port=port, block=False)
        assert url == f"http://127.0.0.1:{port}/"
        try:
            with chromium() as driver:
                driver.get(url)
                wait_for(driver, lambda d: css(d, "#tab0-upload input[type=file]"), what="the page")
                _check_captioning(driver, served["captioning"], pictures)
                _check_vqa(driver, served["vqa"], pictures, tmp_path)
                _check_dialog(driver, served["dialog"], pictures)
                _check_navigation(driver, served["navigation"])
                _check_r2r(driver, served["r2r"])
                _check_lm(driver, served["lm"])
                fetched = driver.execute_script(
                    "return performance.getEntriesByType('resource').map(entry => entry.name)"
                )
                elsewhere = [name for name in fetched if not name.startswith((url, "data:", "blob:"))]
                assert fetched and not elsewhere  # the page loads nothing from the internet
            assert any(path.name == "shapes.png" for path in folder.rglob("*"))  # uploads land here
        finally:
            demo.close()
    assert not folder.exists()  # and are removed at exit


def _check_captioning(driver, model, pictures) -> None:
    expected = model.demo.describe(pictures["rgb"], model.demo.default_beam_size)
    upload(driver, "tab0", pictures["rgb"])
    cells = wait_for(driver, lambda d: css(d, "#tab0-captions .vltk-caption"), what="the captions")
    assert [cell.text for cell in cells] == [caption.text for caption in expected.captions]
    assert css(driver, "#tab0-heat img")  # the first word's attention over the picture
    upload(driver, "tab0", pictures["text"])  # not an image: a message in the page, no stack trace
    message = wait_for(driver, lambda d: [t for t in toasts(d) if "notes.png" in t], what="the error")
    assert "not an image file" in message[0] and "Traceback" not in driver.page_source
    upload(driver, "tab0", pictures["palette"])  # a palette image is captioned like any other
    wanted = model.demo.describe(pictures["palette"], model.demo.default_beam_size).best.text
    wait_for(driver, lambda d: [c for c in css(d, "#tab0-captions .vltk-caption") if c.text == wanted],
             what="the palette image's caption")  # fmt: skip


def _check_vqa(driver, model, pictures, tmp_path: Path) -> None:
    _open_tab(driver, 1)
    question = "what color is the shape?"
    best, probability = model.demo.ask(pictures["rgb"], question).answers[0]
    upload(driver, "tab1", pictures["rgb"])
    css(driver, "#tab1-question textarea")[0].send_keys(question)
    css(driver, "#tab1-ask")[0].click()
    shown = wait_for(
        driver, lambda d: css(d, "#tab1-answers h2, #tab1-answers .output-class"), what="answers"
    )
    assert shown[0].text.strip() == best
    assert f"{round(probability * 100)}%" in driver.find_element("id", "tab1-answers").text
    wait_for(driver, lambda d: css(d, "#tab1-glimpses img"), what="the glimpses")
    screenshot = tmp_path / "vqa.png"
    assert driver.save_screenshot(str(screenshot))
    with Image.open(screenshot) as shot:
        assert shot.size[0] >= 1000 and len(shot.getcolors(2**24) or []) > 50  # a page, not a blank


def _check_dialog(driver, model, pictures) -> None:
    _open_tab(driver, 2)
    css(driver, "#tab2-caption textarea")[0].send_keys("a red square")
    upload(driver, "tab2", pictures["rgb"])
    wait_for(
        driver, lambda d: "caption: a red square" in d.find_element("id", "tab2-chat").text, what="start"
    )
    conversation = model.demo.start(pictures["rgb"], "a red square")
    for question in ("how many shapes are there?", "what colour is it?"):
        answer = model.demo.reply(conversation, question).answer
        css(driver, "#tab2-question textarea")[0].send_keys(question)
        css(driver, "#tab2-ask")[0].click()
        wait_for(driver, lambda d, q=question: q in d.find_element("id", "tab2-chat").text, what=question)
        assert driver.find_element("id", "tab2-chat").text.strip().endswith(answer)
    wait_for(driver, lambda d: len(css(d, "#tab2-looked img")) >= 2, what="the attention per answer")


def _check_navigation(driver, model) -> None:
    _open_tab(driver, 3)
    expected = model.inference.play(model.inference.test_seed)
    css(driver, "#tab3-play")[0].click()
    outcome = wait_for(driver, lambda d: d.find_element("id", "tab3-outcome").text, what="the episode")
    assert expected.mission in outcome and f"in {expected.length} steps" in outcome
    assert css(driver, "#tab3-frame img") and css(driver, "#tab3-mission .vltk-word")


def _check_r2r(driver, model) -> None:
    _open_tab(driver, 4)
    css(driver, "#tab4-follow")[0].click()
    outcome = wait_for(driver, lambda d: d.find_element("id", "tab4-outcome").text, what="the followed route")
    split = model.demo.splits()[0]
    assert model.demo.follow(split, model.demo.instruction_ids(split)[0]).item.instruction in outcome
    wait_for(driver, lambda d: css(d, "#tab4-plan img"), what="the plan")


def _check_lm(driver, model) -> None:
    _open_tab(driver, 5)
    sampler = model.inference
    expected = sampler.sample(sampler.prime, int(sampler.length), float(sampler.temperature), seed=0)
    css(driver, "#tab5-sample")[0].click()
    box = css(driver, "#tab5-text textarea")[0]
    wait_for(driver, lambda d: box.get_attribute("value"), what="the sample")
    assert box.get_attribute("value") == expected
    assert css(driver, "#tab5-cells span")
