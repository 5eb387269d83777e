"""One paper style for every figure, and saving as PDF and PNG under figures/ (atomically)."""

from __future__ import annotations

import io

import matplotlib

from mislib.infra.tables import atomic_write_bytes
from mislib.infra.paths import figures_dir

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


def savefig(fig, name: str) -> None:
    """Save ``fig`` as <figures>/<name>.pdf and .png and print where, relative to the project (never an absolute
    path). <figures> is figures/ inside ``make reproduce`` and build/outputs/figures/ elsewhere
    (``mislib.infra.paths.figures_dir``). Returns None, so that a figure cell shows only the figure."""
    from mislib.infra.paths import display_path

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    directory = figures_dir()
    for ext in ("pdf", "png"):
        buffer = io.BytesIO()
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        fig.savefig(buffer, format=ext, metadata=metadata)
        atomic_write_bytes(directory / f"{name}.{ext}", buffer.getvalue())
    print(f"saved {display_path(directory / name)}.png and .pdf")


def quantizer_release_panel(ax, w, released, quantizer, bins):
    """Histogram of the weights ``w`` (grey), the values the quantizer releases (stems: share of weights at each
    level; an outline histogram when there are many distinct values) and, for deterministic quantizers, the
    cell borders as computed at ``w`` (dotted). Returns the twin axis that carries the shares."""
    import numpy as np
    import torch

    flat, values = w.flatten().cpu().numpy(), released.flatten().cpu().numpy()
    ax.hist(flat, bins=bins, density=True, color="0.8", linewidth=0)
    ax.grid(False)
    share_axis = ax.twinx()
    share_axis.grid(False)
    levels, counts = np.unique(values, return_counts=True)
    if len(levels) > 64:  # many distinct values: outline histogram of the nonzero ones, zeros as one stem
        nonzero = values[values != 0]
        ax.hist(nonzero, bins=bins, weights=np.full(nonzero.size, 1 / values.size / np.diff(bins)[0]),
                histtype="step", color="C0", lw=1.4)
        levels, counts = levels[levels == 0], counts[levels == 0]
    share_axis.vlines(levels, 0, counts / values.size, color="C0", lw=2)
    share_axis.plot(levels, counts / values.size, "o", color="C0", ms=3)
    share_axis.set_ylim(0, 1.1 * max([0.1, *(counts / values.size)]))
    if quantizer.deterministic:
        low, high = quantizer.cell_bounds(w)
        proper = low < high  # point cells (values released exactly) have no borders to draw
        borders = torch.unique(torch.cat([low[proper], high[proper]]))
        borders = borders[torch.isfinite(borders) & (borders > bins[0]) & (borders < bins[-1])].cpu().numpy()
        if len(borders) <= 40:  # per-row grids have too many borders to draw
            for border in borders:
                ax.axvline(border, color="0.25", lw=0.8, ls=":")
    return share_axis


def plot_quantizer_releases(w, quantizers: dict, released: dict, *, sigma: float, columns: int = 4):
    """One ``quantizer_release_panel`` per quantizer on the same weights ``w`` (Gaussian, standard deviation
    ``sigma``), titled with its bits per weight, share of zeros and what it stores (``q.describe(w)``).
    ``released``: ``{label: q(w)}`` for the labels of ``quantizers``. Returns the figure."""
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np

    limit = 4.2 * sigma
    bins = np.linspace(-limit, limit, 85)
    rows = -(-len(quantizers) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 4 * rows), sharex=True)
    for index, (ax, (label, q)) in enumerate(zip(axes.flat, quantizers.items())):
        row = q.describe(w)
        share_axis = quantizer_release_panel(ax, w, released[label], q, bins)
        ax.set_title(f"{label}\n{row['bits_per_weight']:.2f} bits/weight, {row['sparsity']:.0%} zeros\n"
                     + textwrap.fill(f"stores: {row['stored']}", 46), fontsize=9.5)
        ax.set_yticks([])
        share_axis.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        share_axis.tick_params(labelsize=8)
        if index % columns == columns - 1:
            share_axis.set_ylabel("share of weights at level")
        if index % columns == 0:
            ax.set_ylabel("density of weights w")
        if index >= (rows - 1) * columns:
            ax.set_xlabel("weight value")
    fig.suptitle(f"{w.numel()} Gaussian weights (sd {sigma}) and what each quantizer releases", y=1.0, fontsize=14)
    fig.tight_layout()
    return fig
