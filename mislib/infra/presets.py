"""The two presets. A notebook states both sets of sizes and nothing else changes between them:

    cfg = preset_config(PRESET, smoke=dict(n_values=[100, 400]), paper=dict(n_values=[100, 400, 1600, 6400]))
"""

from __future__ import annotations

import os

PRESETS = ("smoke", "paper")


def current_preset(default: str = "paper") -> str:
    """The preset asked for by the environment (``MISLIB_PRESET``), as used by nbval and reproduce."""
    return check_preset(os.environ.get("MISLIB_PRESET", default))


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    return preset


def preset_config(preset: str, *, smoke: dict, paper: dict) -> dict:
    """Pick the sizes of one preset; both presets must name the same keys."""
    check_preset(preset)
    if set(smoke) != set(paper):
        raise ValueError(f"smoke and paper presets name different keys: {sorted(set(smoke) ^ set(paper))}")
    return dict(smoke if preset == "smoke" else paper)
