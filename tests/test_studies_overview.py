"""Notebook 00's layer: one quantizer of every family, their releases, and the overview figure."""

import matplotlib
import torch

from mislib import quantizers as Q
from mislib.plotting import plot_quantizer_releases
from mislib.studies import overview

matplotlib.use("Agg")


def test_every_family_once_and_reproducible_releases():
    quantizers = overview.overview_quantizers()
    assert {q.name for q in quantizers.values()} == set(Q.available()) and len(quantizers) == 16
    w = 0.02 * torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    first, again = overview.release_all(quantizers, w, seed=5), overview.release_all(quantizers, w, seed=5)
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = overview.release_all(quantizers, w, seed=6)
    assert not torch.equal(first["stochastic rounding, step 0.01"], other["stochastic rounding, step 0.01"])
    assert torch.equal(first["uniform 4-bit absmax"], other["uniform 4-bit absmax"])   # deterministic
    assert torch.equal(first["fixed grid, step 0.01"], torch.round(w / 0.01) * 0.01)


def test_overview_figure_has_one_titled_panel_per_quantizer():
    quantizers = overview.overview_quantizers()
    w = 0.02 * torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    fig = plot_quantizer_releases(w, quantizers, overview.release_all(quantizers, w), sigma=0.02)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == len(quantizers) and titles[0].startswith("identity\n32.00 bits/weight")
    assert "256 Gaussian weights (sd 0.02)" in fig._suptitle.get_text()
