"""Keep the published notebooks in one normal form (``python -m mislib.infra.notebooks normalise``).

The normal form is what lets a notebook be opened, run and saved without changing a tracked file by accident:

- the kernel is the project's own, ``mislib`` (installed into the virtual environment by ``make setup``), declared
  with the exact display name that kernel reports, so JupyterLab has nothing to rewrite when it opens the file;
- the first code cell (tagged ``parameters``) reads the preset from ``MISLIB_PRESET`` through
  ``notebook_preset("NN")``, and no papermill-injected cell is stored (it would override the environment);
- no absolute path of the author's machine: papermill's input and output paths are stored relative to the
  project and the project root is removed from text outputs.

``normalise`` rewrites only what differs (with nbformat's own layout, indent 1), so it can be re-run after merging
other edits; ``check`` lists the notebooks that are not normalised (tests/test_notebooks_normalised.py runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from mislib.infra.paths import PROJECT_ROOT

KERNEL_NAME = "mislib"
KERNEL_DISPLAY_NAME = "Python 3 (mislib)"
KERNELSPEC = {"display_name": KERNEL_DISPLAY_NAME, "language": "python", "name": KERNEL_NAME}
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
PRESET_LINE = ('PRESET = notebook_preset("{number}")  # MISLIB_PRESET, else "paper"; for a quick run write '
               'PRESET = "smoke"')
IMPORT_LINE = "from mislib.infra.presets import notebook_preset"
INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"


def _tags(cell) -> list:
    return cell.get("metadata", {}).get("tags", [])


def parameters_source(source: str, number: str) -> str:
    """The parameters cell's source with the preset read through ``notebook_preset(number)`` (other lines kept)."""
    lines = [line for line in source.splitlines() if line.strip() != IMPORT_LINE]
    preset = [i for i, line in enumerate(lines) if re.match(r"\s*PRESET\s*=", line)]
    if len(preset) != 1:
        raise ValueError(f"the parameters cell must assign PRESET exactly once, found {len(preset)} assignments")
    lines[preset[0]] = PRESET_LINE.format(number=number)
    imports = [i for i, line in enumerate(lines) if line.startswith(("import ", "from "))]
    lines.insert(imports[-1] + 1 if imports else 0, IMPORT_LINE)
    return "\n".join(lines)


def _author_roots(notebook) -> set[str]:
    """Project roots recorded by papermill (the machine that executed the notebook), plus this one."""
    roots = {str(PROJECT_ROOT)}
    for key in ("input_path", "output_path"):
        recorded = notebook.metadata.get("papermill", {}).get(key) or ""
        parts = Path(recorded).parts
        if Path(recorded).is_absolute():
            for anchor in ("notebooks", "build"):
                if anchor in parts:
                    roots.add(str(Path(*parts[:parts.index(anchor)])))
                    break
    return {root for root in roots if root not in ("/", "")}


def _relativise(text: str, roots: set[str]) -> str:
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root.rstrip("/") + "/", "")
    return text


def normalise(notebook: nbformat.NotebookNode, number: str, relative_path: str) -> nbformat.NotebookNode:
    """The normal form of ``notebook`` (modified in place and returned); ``relative_path`` is its path from the
    project root, recorded as papermill's input and output path."""
    roots = _author_roots(notebook)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.cells = [cell for cell in notebook.cells if INJECTED_TAG not in _tags(cell)]
    parameters = [cell for cell in notebook.cells if PARAMETERS_TAG in _tags(cell)]
    if len(parameters) != 1:
        raise ValueError(f"{relative_path}: expected one cell tagged {PARAMETERS_TAG!r}, found {len(parameters)}")
    parameters[0].source = parameters_source(parameters[0].source, number)
    papermill = notebook.metadata.get("papermill")
    if papermill is not None:
        papermill["input_path"] = papermill["output_path"] = relative_path
        papermill["parameters"] = {}   # the preset came from MISLIB_PRESET, not from an injected cell
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _relativise(output["text"], roots)
            for mime, value in output.get("data", {}).items():
                if mime == "text/plain" and isinstance(value, str):
                    output["data"][mime] = _relativise(value, roots)
    return notebook


def notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(Path(directory).glob("[0-9][0-9]_*.ipynb"))


def _normal_text(path: Path) -> tuple[str, str]:
    original = path.read_text()
    notebook = nbformat.reads(original, as_version=4)
    relative = path.resolve().relative_to(PROJECT_ROOT.resolve()).as_posix() if path.resolve().is_relative_to(
        PROJECT_ROOT.resolve()) else path.name
    normalise(notebook, path.name[:2], relative)
    return original, nbformat.writes(notebook) + "\n"


def check(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebooks under ``directory`` that ``normalise`` would change."""
    return [path for path in notebooks(directory) if len(set(_normal_text(path))) == 2]


def normalise_files(paths) -> list[Path]:
    """Normalise the notebooks at ``paths`` in place; return those that changed."""
    changed = []
    for path in map(Path, paths):
        original, text = _normal_text(path)
        if text != original:
            path.write_text(text)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("normalise", "check"):
        print("usage: python -m mislib.infra.notebooks normalise|check [NOTEBOOK ...]", file=sys.stderr)
        return 2
    paths = [Path(p) for p in argv[1:]] or notebooks()
    if argv[0] == "check":
        stale = [p for p in paths if len(set(_normal_text(p))) == 2]
        for path in stale:
            print(f"not normalised: {path} (run python -m mislib.infra.notebooks normalise)")
        return 1 if stale else 0
    for path in normalise_files(paths):
        print(f"normalised {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
