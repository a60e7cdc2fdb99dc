"""The README's Python examples run as written (the checkpoint path and image are swapped for real ones)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_the_library_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int, trained_run: Path, tmp_path: Path, capsys):
    code = BLOCKS[index]
    image = tmp_path / "image.png"
    Image.new("RGB", (64, 64), "white").save(image)
    code = code.replace(
        "runs/captioning/RUN/checkpoints/best.ckpt", str(trained_run / "checkpoints/best.ckpt")
    )
    code = code.replace('"image.png"', repr(str(image)))
    if "runs/captioning/RUN/exported" in code:
        from vltk.export import export_checkpoint

        exported = export_checkpoint(trained_run / "checkpoints/best.ckpt", tmp_path / "exported")
        code = code.replace('"runs/captioning/RUN/exported"', repr(str(exported)))
    exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip(), "every README example prints something"
