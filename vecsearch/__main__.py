"""``python -m vecsearch ...``: the same entry point as the ``vecsearch`` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
