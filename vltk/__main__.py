"""``python -m vltk ...``: the ``vltk`` command (so ``torchrun ... -m vltk train ...`` works too)."""

from vltk.cli.main import main

if __name__ == "__main__":
    main()
