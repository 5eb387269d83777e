"""``python -m mislib.reproduce``: the papermill runner (``mislib.infra.reproduce``) under its public name."""

from mislib.infra.reproduce import main

if __name__ == "__main__":
    raise SystemExit(main())
