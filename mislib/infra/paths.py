"""Where things live: the project root, the published figures/ and data/results/, the scratch build/ and caches.

Published artefacts are written by one path only. ``figures/`` and ``data/results/`` are written when
``MISLIB_PUBLISH=1``, which ``make reproduce`` (``python -m mislib.reproduce --publish``, paper preset) sets and
nothing else does. Every other run (JupyterLab, papermill by hand from any directory, the smoke preset, the tests,
a student's copy) writes its figures and tables under ``build/outputs/`` (or under ``MISLIB_OUTPUT_DIR``) and
reads the published tables, never overwriting them.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("MISLIB_ROOT", Path(__file__).resolve().parents[2]))
PUBLISH_VARIABLE = "MISLIB_PUBLISH"
DEFAULT_OUTPUT_DIR = Path("build") / "outputs"


def publishing() -> bool:
    """True only inside ``make reproduce`` at the paper preset (``MISLIB_PUBLISH=1``)."""
    value = os.environ.get(PUBLISH_VARIABLE, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{PUBLISH_VARIABLE} must be 0 or 1, got {value!r}")
    return value == "1"


def output_root() -> Path:
    """Root under which figures/ and data/results/ are written: the project when publishing, else
    ``MISLIB_OUTPUT_DIR`` (relative paths are taken from the project root) or build/outputs."""
    override = os.environ.get("MISLIB_OUTPUT_DIR")
    if override:
        path = Path(override)
        return path if path.is_absolute() else PROJECT_ROOT / path
    return PROJECT_ROOT if publishing() else PROJECT_ROOT / DEFAULT_OUTPUT_DIR


def published_results_dir() -> Path:
    """The committed result tables (read by every run; written only when publishing)."""
    return PROJECT_ROOT / "data" / "results"


def figures_dir() -> Path:
    path = output_root() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    path = output_root() / "data" / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def display_path(path: Path) -> str:
    """``path`` relative to the project root when it lies inside it (what notebooks print: never the author's
    absolute paths), else as given."""
    path = Path(path)
    try:
        return path.resolve().relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        return str(path)


def cache_dir() -> Path:
    """Caches (embeddings, intermediate arrays): always under the project, shared by presets, gitignored."""
    path = Path(os.environ.get("MISLIB_CACHE_DIR", PROJECT_ROOT / "data" / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Committed inputs and provenance records."""
    return PROJECT_ROOT / "data"
