"""The screenshots of ``vltk serve`` in docs/serve.md: one per tab, taken in headless Chromium.

``python tools/serve_screenshots.py MODEL... --image shapes.png --out docs/images`` serves the models as
``vltk serve`` does, opens the page in Debian's Chromium (the driver the tests use, ``tests/browser.py``),
uses each tab as a person would (upload the image and read the captions; ask a question; start a
conversation and ask two more; play a BabyAI episode and step to its middle; follow an R2R instruction and
step to its middle; sample text) and saves ``serve-<tab>.png`` for each. Any mix of checkpoints and export
directories; the tab of each is chosen by its task (BabyAI and R2R by the model's environment).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the browser helper of the tests
from browser import chromium, css, free_port, upload, wait_for  # noqa: E402

SHOT_NAMES = {  # the demo class of a tab -> the screenshot's name
    "CaptioningDemo": "captioning",
    "VqaDemo": "vqa",
    "DialogDemo": "dialog",
    "NavigationDemo": "babyai",
    "R2RDemo": "r2r",
    "LmDemo": "lm",
}


def type_into(driver, selector: str, text: str) -> None:
    box = css(driver, selector)[0]
    box.clear()
    box.send_keys(text)


def slide(driver, selector: str, where: float) -> None:
    """Set a slider (a range input) to the fraction ``where`` of its range, as dragging it would."""
    slider = wait_for(driver, lambda d: css(d, f"{selector} input[type=range]"), what=selector)[0]
    low, high = (int(float(slider.get_attribute(bound))) for bound in ("min", "max"))
    driver.execute_script(
        "arguments[0].value = arguments[1];"
        "for (const kind of ['input', 'change', 'pointerup'])"
        "  arguments[0].dispatchEvent(new Event(kind, {bubbles: true}));",
        slider,
        low + round(where * (high - low)),
    )


def use_tab(driver, name: str, key: str, args: argparse.Namespace) -> None:
    """What a person would do in the tab before the screenshot."""
    if name == "captioning":
        upload(driver, key, args.image)
        wait_for(driver, lambda d: css(d, f"#{key}-heat img"), what="the attention picture")
        slide(driver, f"#{key}-word", 0.9)  # a word late in the caption: a colour or a shape, usually
    elif name == "vqa":
        upload(driver, key, args.vqa_image or args.image)
        type_into(driver, f"#{key}-question textarea", args.question)
        css(driver, f"#{key}-ask")[0].click()
        wait_for(driver, lambda d: css(d, f"#{key}-glimpses img"), what="the glimpses")
    elif name == "dialog":
        type_into(driver, f"#{key}-caption textarea", args.caption)
        upload(driver, key, args.dialog_image or args.image)
        for question in args.dialog_questions:
            type_into(driver, f"#{key}-question textarea", question)
            css(driver, f"#{key}-ask")[0].click()
            wait_for(
                driver, lambda d, q=question: q in d.find_element("id", f"{key}-chat").text, what=question
            )
        wait_for(
            driver, lambda d: len(css(d, f"#{key}-looked img")) >= len(args.dialog_questions), what="maps"
        )
    elif name in ("babyai", "r2r"):
        css(driver, f"#{key}-{'play' if name == 'babyai' else 'follow'}")[0].click()
        wait_for(driver, lambda d: d.find_element("id", f"{key}-outcome").text, what="the episode")
        slide(driver, f"#{key}-step", 0.5)
    elif name == "lm":
        css(driver, f"#{key}-sample")[0].click()
        wait_for(driver, lambda d: css(d, f"#{key}-cells span"), what="the coloured text")
    time.sleep(args.settle)  # let the last images paint


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path, help="checkpoints or export directories")
    parser.add_argument("--image", type=Path, required=True, help="the picture for captioning, VQA, dialog")
    parser.add_argument("--question", default="what color is the shape?", help="the VQA question")
    parser.add_argument("--vqa-image", type=Path, default=None, help="the VQA picture (or --image)")
    parser.add_argument("--dialog-image", type=Path, default=None, help="the dialog picture (or --image)")
    parser.add_argument("--caption", default="a red square", help="the dialog's caption")
    parser.add_argument(
        "--dialog-questions", nargs="+", default=["how many shapes are there?", "what colour is it?"]
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each screenshot")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from vltk.tasks.serve import build_app, launch, load_served_models, upload_folder

    models = load_served_models(args.models)
    args.out.mkdir(parents=True, exist_ok=True)
    with upload_folder():
        app = build_app(models)
        url = launch(app, port=free_port(), block=False)
        try:
            with chromium() as driver:
                driver.get(url)
                wait_for(driver, lambda d: css(d, "[role=tab]"), what="the page")
                for index, model in enumerate(models):
                    name = SHOT_NAMES[type(model.demo).__name__]
                    css(driver, "[role=tab]")[index].click()
                    use_tab(driver, name, f"tab{index}", args)
                    height = driver.execute_script(
                        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
                    )
                    driver.set_window_size(1300, max(800, min(int(height) + 160, 2400)))
                    time.sleep(0.5)
                    path = args.out / f"serve-{name}.png"
                    driver.save_screenshot(str(path))
                    driver.set_window_size(1300, 1000)
                    print(f"{model.label}: {path}", flush=True)
        finally:
            app.close()


if __name__ == "__main__":
    main()
