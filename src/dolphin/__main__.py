"""`python -m dolphin` is the `dolphin` command."""

from dolphin.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
