"""The two presets, and how a notebook chooses one.

A notebook states both sets of sizes and nothing else changes between them:

    cfg = preset_config(PRESET, smoke=dict(n_values=[100, 400]), paper=dict(n_values=[100, 400, 1600, 6400]))

Choosing the preset (JupyterLab, papermill, student copies alike): set ``MISLIB_PRESET=smoke`` (or ``paper``) in the
environment before starting JupyterLab or papermill (``PRESET=smoke make lab``), or edit the notebook's first code
cell, ``PRESET = notebook_preset("02")``, into ``PRESET = "smoke"``. The first call of ``preset_config`` in a notebook
prints the preset it runs, roughly how long the notebook takes and where its figures and tables go.
"""

from __future__ import annotations

import os

PRESETS = ("smoke", "paper")
PRESET_VARIABLE = "MISLIB_PRESET"

# Rough wall time of each notebook on this project's 2-core machine (seconds): smoke with a warm cache of
# embeddings; paper from scratch (no cached table) by `python -m mislib.reproduce --preset paper --workers 2`
# (measured on 2026-11-29; 06 is mostly its 16-configuration molecular grid, about 20 minutes).
NOTEBOOK_SECONDS = {
    "00": {"smoke": 10, "paper": 19},
    "01": {"smoke": 15, "paper": 37},
    "02": {"smoke": 15, "paper": 18},
    "03": {"smoke": 10, "paper": 15},
    "04": {"smoke": 20, "paper": 140},
    "05": {"smoke": 30, "paper": 330},
    "06": {"smoke": 30, "paper": 1500},
}

_current = {"notebook": None, "announced": set()}


def current_preset(default: str = "paper") -> str:
    """The preset asked for by the environment (``MISLIB_PRESET``), as used by nbval and reproduce."""
    return check_preset(os.environ.get(PRESET_VARIABLE, default))


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    return preset


def notebook_preset(notebook: str, default: str = "paper") -> str:
    """The preset of notebook ``notebook`` ("00", "01", ...): ``MISLIB_PRESET`` or ``default``.

    Called by the first code cell of every notebook; it also registers the notebook so that ``preset_config``
    can say how long it takes (after papermill's ``-p PRESET ...`` has had its say)."""
    if notebook not in NOTEBOOK_SECONDS:
        raise ValueError(f"notebook must be one of {sorted(NOTEBOOK_SECONDS)}, got {notebook!r}")
    _current["notebook"] = notebook
    _current["announced"] = set()
    return current_preset(default)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def describe(preset: str, notebook: str | None = None) -> str:
    """One paragraph: the preset a notebook runs, roughly how long it takes, how to change it, and where its
    figures and tables go."""
    from mislib.infra.paths import display_path, output_root, publishing

    check_preset(preset)
    other = "paper" if preset == "smoke" else "smoke"
    text = f"Preset {preset!r}"
    if notebook in NOTEBOOK_SECONDS:
        times = NOTEBOOK_SECONDS[notebook]
        text += (f": notebook {notebook} takes about {_duration(times[preset])} "
                 f"({other}: about {_duration(times[other])}; less when its tables are cached)")
    text += (f". To change it, set {PRESET_VARIABLE}={other} before starting JupyterLab or papermill, or write "
             f'PRESET = "{other}" in the first code cell.')
    root = output_root()
    where = "the published figures/ and data/results/" if publishing() else f"{display_path(root)}/"
    text += f" Figures and tables go to {where}."
    return text


def preset_config(preset: str, *, smoke: dict, paper: dict) -> dict:
    """Pick the sizes of one preset; both presets must name the same keys.

    In a notebook (after ``notebook_preset``), the first call for a preset prints ``describe(preset)``."""
    check_preset(preset)
    if set(smoke) != set(paper):
        raise ValueError(f"smoke and paper presets name different keys: {sorted(set(smoke) ^ set(paper))}")
    if _current["notebook"] is not None and preset not in _current["announced"]:
        _current["announced"].add(preset)
        print(describe(preset, _current["notebook"]))
    return dict(smoke if preset == "smoke" else paper)
