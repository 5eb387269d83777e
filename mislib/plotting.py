"""One paper style for every figure, and saving as PDF and PNG under figures/ (atomically)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

from .experiments import atomic_write_bytes
from .paths import figures_dir

PALETTE = "colorblind"


def use_style() -> None:
    """Apply the companion's figure style (seaborn paper context, colour-blind palette, readable sizes)."""
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.2)
    matplotlib.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 200,
        "savefig.bbox": "tight",
        "axes.titleweight": "bold",
        "legend.frameon": False,
        "pdf.fonttype": 42,
        # Fixed metadata so that re-running gives identical PDF bytes.
        "svg.hashsalt": "mislib",
    })


def savefig(fig, name: str) -> Path:
    """Save ``fig`` as figures/<name>.pdf and figures/<name>.png; return the PNG path."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    directory = figures_dir()
    for ext in ("pdf", "png"):
        buffer = io.BytesIO()
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        fig.savefig(buffer, format=ext, metadata=metadata)
        atomic_write_bytes(directory / f"{name}.{ext}", buffer.getvalue())
    return directory / f"{name}.png"
