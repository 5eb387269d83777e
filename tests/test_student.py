"""Student copies (issue 8, item 4): every notebook ends with two or three exercises whose solutions sit in cells
tagged ``solution``; ``make student`` (``mislib.infra.student.write_student_copies``) writes copies without them, and the
copies run on their own at the smoke preset."""

from __future__ import annotations

import re
import os
import time

import nbformat
import pytest

from mislib.infra.paths import PROJECT_ROOT
from mislib.infra.reproduce import run_notebook
from mislib.infra.student import CHECK_TAG, SOLUTION_TAG, canonical, check, digest, write_student_copies

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def _is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _numbered_items(markdown: str) -> int:
    return len(re.findall(r"^\s{0,3}\d+\.\s", markdown, flags=re.MULTILINE))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_ends_with_exercises_and_tagged_solutions(path):
    cells = nbformat.read(path, as_version=4).cells
    solutions = [i for i, cell in enumerate(cells) if _is_solution(cell)]
    assert 2 <= len(solutions) <= 3, f"{path.name}: {len(solutions)} solution cells"
    assert all(cells[i].cell_type == "code" for i in solutions), f"{path.name}: a solution cell is not code"
    assert all(cells[i].source.strip() for i in solutions), f"{path.name}: an empty solution cell"
    # The exercises: the last "Exercises" heading before the first solution, one numbered item per solution.
    headings = [i for i, cell in enumerate(cells[:solutions[0]])
                if cell.cell_type == "markdown" and re.search(r"^#+\s*Exercises", cell.source, flags=re.MULTILINE)]
    assert headings, f"{path.name}: no '## Exercises' heading before the solutions"
    exercises = cells[headings[-1]].source.split("Exercises", 1)[1]
    assert _numbered_items(exercises) == len(solutions), f"{path.name}: exercises and solutions differ in number"
    # Solutions come last: no ordinary code cell after the first solution. The student copy's code is then a
    # prefix of the notebook's, so it cannot depend on a solution (what executing the copies checks below).
    later_code = [i for i, cell in enumerate(cells) if i > solutions[0] and cell.cell_type == "code"
                  and not _is_solution(cell)]
    assert not later_code, f"{path.name}: code cells {later_code} come after a solution"


@pytest.fixture(scope="module")
def student_copies(tmp_path_factory):
    destination = tmp_path_factory.mktemp("student")
    return write_student_copies(NOTEBOOK_DIR, destination, execute=False)


def test_student_copies_keep_everything_but_the_solutions(student_copies):
    assert [p.name for p in student_copies] == [p.name for p in NOTEBOOKS]
    for original_path, copy_path in zip(NOTEBOOKS, student_copies):
        original = nbformat.read(original_path, as_version=4).cells
        copy = nbformat.read(copy_path, as_version=4).cells
        assert not any(_is_solution(cell) for cell in copy), copy_path.name
        added = [c for c in copy if c.metadata.get("tags") in (["answer"], ["check"])
                 or c.source.endswith(": your answer")]
        assert [c.source for c in copy if c not in added] == [c.source for c in original if not _is_solution(c)]
        solutions = sum(_is_solution(c) for c in original)
        assert len(added) == 3 * solutions, copy_path.name
        checks = [c for c in copy if CHECK_TAG in c.metadata.get("tags", [])]
        assert [f'check("{copy_path.name[:2]}-{i + 1}", answer' in c.source for i, c in enumerate(checks)] == \
            [True] * solutions
        assert not any(c.get("outputs") for c in copy[copy.index(added[0]) - 1:]), "exercise outputs not cleared"
        nbformat.validate(nbformat.read(copy_path, as_version=4))


def test_check_tells_right_from_wrong_without_storing_the_answer(capsys):
    stored = digest(138)
    assert "138" not in stored and stored != digest(138)   # salted: two copies store different digests
    assert check("02-2", 138, stored) and not check("02-2", 139, stored)
    assert check("02-1", 0.0127248, digest(0.01272485, 3), digits=3)
    assert not check("02-1", 0.0128, digest(0.01272485, 3), digits=3)
    assert not check("02-3", ..., stored) and not check("02-3", 1.0)
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["Exercise 02-2: right.", "Exercise 02-2: not yet; try again."]
    assert "write your answer" in printed[4] and "no automatic check" in printed[5]
    assert canonical([1, 2.5, "a "]) == "[1,2.5,a]"
    with pytest.raises(TypeError, match="answer must be"):
        canonical(object())


def test_copy_time_execution_stores_the_solutions_answer(tmp_path):
    """A solution that declares its answer is executed when the copy is made; the copy's check accepts that
    answer (to the declared digits) and refuses another, and its source does not show it."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "mislib", "display_name": "Python 3 (mislib)", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("import math", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("## Exercises\n\n1. Compute 1 - exp(-1/2).\n2. Discuss."),
        nbformat.v4.new_code_cell("share = 1 - math.exp(-0.5)\nprint(share)",
                                  metadata={"tags": ["solution"], "mislib": {"answer": "share", "digits": 3}}),
        nbformat.v4.new_code_cell("print('discussion')", metadata={"tags": ["solution"]}),
    ]
    (tmp_path / "source").mkdir()
    nbformat.write(notebook, tmp_path / "source" / "00_demo.ipynb")
    [copy_path] = write_student_copies(tmp_path / "source", tmp_path / "copies", execute=True)
    copy = nbformat.read(copy_path, as_version=4)
    first, second = [c for c in copy.cells if CHECK_TAG in c.metadata.get("tags", [])]
    expected, digits = re.search(r'check\("00-1", answer, "(sha256:[0-9a-f]+:[0-9a-f]+)", digits=(\d+)\)',
                                 first.source).groups()
    assert check("00-1", 0.3934693, expected, int(digits))
    assert not check("00-1", 0.5, expected, int(digits))
    assert "0.393" not in first.source
    assert second.source.endswith('check("00-2", answer)')   # no declared answer: no automatic check


@pytest.mark.slow
def test_student_copies_execute_at_the_smoke_preset(student_copies, tmp_path, monkeypatch):
    """Each copy runs from a fresh kernel (papermill, as in class). Outputs go to make test's smoke folder
    (MISLIB_OUTPUT_DIR, build/smoke) or else a temporary one, never to the committed figures and tables; caches
    and smoke tables are shared with the nbval run of the notebooks, which then reads them instead of recomputing."""
    from mislib.infra.paths import output_root, publishing

    monkeypatch.setenv("MISLIB_PRESET", "smoke")
    if publishing() or "MISLIB_OUTPUT_DIR" not in os.environ:
        monkeypatch.setenv("MISLIB_OUTPUT_DIR", str(tmp_path / "outputs"))
    outputs = output_root()
    start_figures = time.time()
    monkeypatch.delenv("MISLIB_DASK_ADDRESS", raising=False)
    failures, seconds = [], {}
    start = time.perf_counter()
    for path in student_copies:
        run = run_notebook(path, "smoke", "cpu", tmp_path / "executed")
        seconds[path.stem] = round(run.seconds, 1)
        if not run.ok:
            failures.append(f"{path.name}: {run.error}")
    total = time.perf_counter() - start
    print(f"student copies executed in {total:.0f} s: {seconds}")
    assert not failures, failures
    executed = sorted(p.name for p in (tmp_path / "executed").glob("*.ipynb"))
    assert executed == [p.name for p in student_copies]
    drawn = [p for p in (outputs / "figures").glob("*.png") if p.stat().st_mtime >= start_figures - 1]
    assert drawn, "the copies drew no figure"
