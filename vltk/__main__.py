"""``python -m vltk ...``: the ``vltk`` command (so ``torchrun ... -m vltk train ...`` works too)."""

from vltk.cli.main import run

if __name__ == "__main__":
    run()
