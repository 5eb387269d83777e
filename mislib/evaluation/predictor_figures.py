"""Figures of the privacy predictors against the attack (``mislib.evaluation.predictors``): the agreement of every
predictor, and the utility-controlled curve."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mislib.evaluation.predictors import INDICATOR


def plot_predictor_agreement(summary: pd.DataFrame, over: str | None = None, *, title: str = ""):
    """One figure from ``summarise_agreement``: per predictor (rows), the per-configuration fraction of
    separated pairs ordered alike (left) and Kendall's tau (right), dot = mean, bar = +- one sd across
    configurations, a cross = the pooled fraction; one colour per group of ``over`` (a column of ``summary``)."""
    import matplotlib.pyplot as plt

    groups = [(None, summary)] if over is None else list(summary.groupby(over, sort=True))
    names = list(dict.fromkeys(summary["predictor"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(names) + 1.5), sharey=True)
    width = 0.6 / max(len(groups), 1)
    for k, (label, g) in enumerate(groups):
        g = g.set_index("predictor").reindex(names)
        y = np.arange(len(names)) + (k - (len(groups) - 1) / 2) * width
        colour = f"C{k}"
        axes[0].errorbar(g["fraction_mean"], y, xerr=g["fraction_sd"], fmt="o", color=colour, capsize=2,
                         label=None if label is None else str(label))
        axes[0].plot(g["concordant_fraction"], y, "x", color=colour)
        axes[1].errorbar(g["tau_mean"], y, xerr=g["tau_sd"], fmt="o", color=colour, capsize=2)
    axes[0].set_yticks(np.arange(len(names)), names)
    axes[0].invert_yaxis()
    axes[0].axvline(0.5, color="grey", lw=0.8, ls=":")
    axes[1].axvline(0.0, color="grey", lw=0.8, ls=":")
    axes[0].set_xlabel("separated pairs ordered as the attack (o mean, x pooled)")
    axes[1].set_xlabel("Kendall tau with the attack's privacy")
    top = 1.0
    if over is not None:
        fig.legend(loc="upper center", ncol=len(groups), fontsize=8, bbox_to_anchor=(0.5, 1.0))
        top = 0.93
    if title:
        fig.suptitle(title, y=top)
        top -= 0.05
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig


def plot_utility_controlled(curve: pd.DataFrame, *, predictors: Sequence[str] | None = None, title: str = ""):
    """The curve of ``utility_controlled`` over tolerances: per predictor, the fraction of separated pairs of
    near-equal utility ordered as the attack does; an infinite tolerance (no control) is drawn at the right,
    the number of pairs is written under the axis."""
    import matplotlib.pyplot as plt

    names = predictors or list(dict.fromkeys(curve["predictor"]))
    tolerances = sorted(curve["tolerance"].unique())
    finite = [t for t in tolerances if math.isfinite(t)]
    position = {t: (t if math.isfinite(t) else (max(finite) * 4 if finite else 1.0)) for t in tolerances}
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, name in enumerate(names):
        g = curve[curve["predictor"] == name].sort_values("tolerance")
        style = {"lw": 2.5, "color": "k", "zorder": 5} if name == INDICATOR else {"lw": 1.2, "color": f"C{k}"}
        ax.plot(g["tolerance"].map(position), g["concordant_fraction"], "o-", label=name, **style)
    counts = curve[curve["predictor"] == names[0]].set_index("tolerance")["n_pairs"]
    ax.set_xscale("log")
    ax.set_xticks([position[t] for t in tolerances],
                  [f"{t:g}\n{counts.get(t, 0)} pairs" if math.isfinite(t) else f"all\n{counts.get(t, 0)} pairs"
                   for t in tolerances])
    ax.minorticks_off()
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    unit = "standard errors of the test metric" if bool(curve["in_se"].iloc[0]) else "absolute test metric"
    ax.set_xlabel(f"tolerance on the test-performance difference ({unit})")
    ax.set_ylabel("separated pairs ordered as the attack")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
