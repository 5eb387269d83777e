"""Student copies of the notebooks: cells tagged ``solution`` are removed, everything else is kept.

    python -m mislib.infra.student notebooks student      # (or: make student)
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

SOLUTION_TAG = "solution"


def student_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without its solution cells (a new object; the input is not modified)."""
    copy = nbformat.from_dict(notebook)
    copy.cells = [cell for cell in copy.cells if SOLUTION_TAG not in cell.get("metadata", {}).get("tags", [])]
    return copy


def write_student_copies(source: Path, destination: Path) -> list[Path]:
    source, destination = Path(source), Path(destination)
    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks NN_name.ipynb in {source}")
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        target = destination / path.name
        nbformat.write(student_copy(notebook), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m mislib.infra.student SOURCE_DIR DESTINATION_DIR", file=sys.stderr)
        return 2
    for path in write_student_copies(Path(argv[0]), Path(argv[1])):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
