"""Student copies of the notebooks, and the check a student runs on an answer.

    python -m mislib.infra.student notebooks student      # (or: make student)

A copy keeps every cell but the solutions (cells tagged ``solution``). After the exercises, each exercise gets a
heading, an empty answer cell (``answer = ...``) and a check cell::

    check("02-2", answer, "sha256:1f0c...:9a4e...", digits=3)

``check`` says whether the answer is right without revealing it: the copy stores a salted SHA-256 of the solution's
answer in canonical form (a number to ``digits`` significant digits, an integer or a string exactly), computed at
copy time by executing the solution. A solution declares its answer in its cell metadata,
``{"mislib": {"answer": "<expression>", "digits": 3}}`` (the expression is evaluated after the solution ran); an
exercise without one gets a check cell that says there is no automatic check. Outputs of the exercise cells are
cleared, so the copy does not show the teacher's results.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import secrets
import sys
from pathlib import Path

import nbformat

SOLUTION_TAG = "solution"
ANSWER_TAG = "answer"
CHECK_TAG = "check"
_MARK = "__mislib_answer__"


def _is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def canonical(value, digits: int | None = None) -> str:
    """The canonical text of an answer: integers exactly, other numbers to ``digits`` significant digits (default
    4), strings stripped; a sequence element by element."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            return repr(value)
        return f"{value:.{digits or 4}g}"
    if isinstance(value, str):
        return value.strip()
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical(v, digits) for v in value) + "]"
    raise TypeError(f"answer must be a number, a string or a sequence of them, got {type(value).__name__}")


def digest(value, digits: int | None = None, salt: str | None = None) -> str:
    """``sha256:<salt>:<hex>`` of the canonical answer (a fresh random salt unless given)."""
    salt = secrets.token_hex(8) if salt is None else salt
    return f"sha256:{salt}:{hashlib.sha256((salt + canonical(value, digits)).encode()).hexdigest()}"


def check(exercise: str, answer, expected: str | None = None, digits: int | None = None) -> bool:
    """Tell a student whether ``answer`` is right (prints one line; returns True when it is).

    ``expected`` is the stored ``digest`` of the solution's answer; None when the exercise has no automatic check."""
    if answer is Ellipsis:
        print(f"Exercise {exercise}: write your answer in the cell above (answer = ...), then run this cell.")
        return False
    if expected is None:
        print(f"Exercise {exercise}: no automatic check for this one; compare your reasoning with the solutions.")
        return False
    try:
        _, salt, _ = expected.split(":")
        right = digest(answer, digits, salt) == expected
    except (TypeError, ValueError) as exc:
        print(f"Exercise {exercise}: cannot check this answer ({exc}).")
        return False
    precision = f" (to {digits} significant digits)" if digits else ""
    print(f"Exercise {exercise}: " + ("right" + precision + "." if right else "not yet" + precision + "; try again."))
    return right


def _answers(notebook, path: Path) -> dict[int, str]:
    """Execute ``notebook`` (smoke preset) and return the digest of each solution that declares an answer, by the
    solution's index among the solutions."""
    from nbclient import NotebookClient

    declared = {}
    executed = nbformat.from_dict(notebook)
    cells = []
    for cell in executed.cells:
        cells.append(cell)
        if _is_solution(cell):
            index = sum(_is_solution(c) for c in cells) - 1
            spec = cell.get("metadata", {}).get("mislib", {})
            if "answer" in spec:
                declared[index] = spec
                cells.append(nbformat.v4.new_code_cell(
                    f"from mislib.infra.student import canonical as _canonical\n"
                    f"print({_MARK!r}, {index}, _canonical(({spec['answer']}), {spec.get('digits')!r}))"))
    if not declared:
        return {}
    executed.cells = cells
    NotebookClient(executed, timeout=600, resources={"metadata": {"path": str(path.parent)}}).execute()
    found = {}
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(_MARK):
                    _, index, text = line.split(" ", 2)
                    salt = secrets.token_hex(8)
                    found[int(index)] = f"sha256:{salt}:{hashlib.sha256((salt + text).encode()).hexdigest()}"
    missing = set(declared) - set(found)
    if missing:
        raise RuntimeError(f"{path.name}: the answers of solutions {sorted(missing)} were not computed")
    return {i: (found[i], declared[i].get("digits")) for i in found}


def student_copy(notebook: nbformat.NotebookNode, number: str = "00",
                 answers: dict | None = None) -> nbformat.NotebookNode:
    """The notebook without its solution cells, with an answer cell and a check cell per exercise and the outputs
    of the exercise part cleared (a new object; the input is not modified). ``answers`` maps a solution's index to
    (digest, digits), as computed by executing the solutions."""
    answers = answers or {}
    copy = nbformat.from_dict(notebook)
    solutions = sum(_is_solution(c) for c in copy.cells)
    cells = [cell for cell in copy.cells if not _is_solution(cell)]
    first = next((i for i, cell in enumerate(copy.cells) if _is_solution(cell)), None)
    if first is not None:
        kept_before = sum(not _is_solution(c) for c in copy.cells[:first])
        head, tail = cells[:kept_before], cells[kept_before:]
        exercise_cells = []
        for index in range(solutions):
            name = f"{number}-{index + 1}"
            expected, digits = answers.get(index, (None, None))
            arguments = f'"{name}", answer' + (f', "{expected}"' if expected else "") + (
                f", digits={digits}" if digits else "")
            exercise_cells += [
                nbformat.v4.new_markdown_cell(f"### Exercise {index + 1}: your answer"),
                nbformat.v4.new_code_cell(f"# Exercise {index + 1}: your work here; then put the value asked for "
                                          f"in `answer`.\nanswer = ...", metadata={"tags": [ANSWER_TAG]}),
                nbformat.v4.new_code_cell(f"from mislib.infra.student import check\n\ncheck({arguments})",
                                          metadata={"tags": [CHECK_TAG]}),
            ]
        cells = head + exercise_cells + tail
        for cell in head[-1:] + exercise_cells:   # the exercises' own outputs: cleared
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    copy.cells = cells
    return copy


def write_student_copies(source: Path, destination: Path, *, execute: bool = True) -> list[Path]:
    """Write a student copy of every NN_name.ipynb of ``source`` into ``destination``. ``execute``: run the
    notebooks whose solutions declare an answer (smoke preset) to store the salted digests of the answers."""
    import os

    source, destination = Path(source), Path(destination)
    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks NN_name.ipynb in {source}")
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        answers = {}
        if execute:
            previous = os.environ.get("MISLIB_PRESET")
            os.environ["MISLIB_PRESET"] = "smoke"
            try:
                answers = _answers(notebook, path)
            finally:
                if previous is None:
                    os.environ.pop("MISLIB_PRESET", None)
                else:
                    os.environ["MISLIB_PRESET"] = previous
        target = destination / path.name
        nbformat.write(student_copy(notebook, path.name[:2], answers), target)
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
