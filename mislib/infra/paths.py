"""Where things live: the project root, figures/, data/results/ and caches.

``MISLIB_OUTPUT_DIR`` redirects figures and result tables (the test suite sends smoke outputs to build/smoke so
that the committed paper figures are never overwritten by a test run).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("MISLIB_ROOT", Path(__file__).resolve().parents[2]))


def output_root() -> Path:
    """Root under which figures/ and data/results/ are written."""
    override = os.environ.get("MISLIB_OUTPUT_DIR")
    if not override:
        return PROJECT_ROOT
    path = Path(override)
    return path if path.is_absolute() else PROJECT_ROOT / path


def figures_dir() -> Path:
    path = output_root() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    path = output_root() / "data" / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Caches (embeddings, intermediate arrays): always under the project, shared by presets, gitignored."""
    path = Path(os.environ.get("MISLIB_CACHE_DIR", PROJECT_ROOT / "data" / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Committed inputs and provenance records."""
    return PROJECT_ROOT / "data"
