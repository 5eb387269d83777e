"""Exact Delta_n of a d-dimensional Gaussian mean on a product grid: against the 1-d routine, the correlated
routine at zero correlation, the crossing bound, and "the nearest face wins" by a joint computation."""

import math

import numpy as np
import pytest
import torch

from mislib import mis
from mislib.crossing import log_exit_probabilities
from mislib.mis.multivariate import exact_gaussian_pair_delta, exact_gaussian_product_delta
from mislib.quantizers import FixedGrid
from mislib.studies import theory


@pytest.mark.parametrize("n, mu, step", [(2, 0.1, 1.0), (40, 0.2, 0.5), (100, 0.0, 0.05), (1000, 0.01, 0.1)])
def test_one_coordinate_equals_the_one_dimensional_exact_value(n, mu, step):
    joint = exact_gaussian_product_delta(n, [mu], [1.0], FixedGrid(step))
    assert joint == pytest.approx(mis.exact_gaussian_mean(n, mu, 1.0, FixedGrid(step)).delta, rel=1e-10)


def _exit_probabilities(n, mus, sigmas, grids):
    t = torch.tensor(mus, dtype=torch.float64)
    s = torch.tensor(sigmas, dtype=torch.float64) / math.sqrt(n)
    bounds = [g.cell_bounds(t[k:k + 1]) for k, g in enumerate(grids)]
    low = torch.cat([b[0] for b in bounds])
    high = torch.cat([b[1] for b in bounds])
    return log_exit_probabilities(t, s, low, high).exp().numpy()


@pytest.mark.parametrize("n, mus, sigmas, steps", [
    (100, [0.02, 0.13], [1.0, 2.0], [0.2, 0.5]),
    (30, [0.24, -0.1], [1.0, 1.0], [0.5, 0.5]),       # both near a threshold
    (500, [0.0, 0.04, 0.3], [1.0, 0.5, 2.0], [0.1, 0.1, 1.0]),
    (10, [0.1, 0.2, 0.3], [1.0, 1.0, 1.0], [1.0, 0.3, 2.0]),
])
def test_the_crossing_bound_holds_jointly_on_product_grids(n, mus, sigmas, steps):
    grids = [FixedGrid(s) for s in steps]
    joint = exact_gaussian_product_delta(n, mus, sigmas, grids)
    q = _exit_probabilities(n, mus, sigmas, grids)
    p_exit = 1 - np.prod(1 - q)                      # independent coordinates: exact
    assert 0 < joint <= min(1.0, 2 * p_exit)
    # and above the largest one-coordinate value (data processing: a coordinate is part of the release)
    singles = [mis.exact_gaussian_mean(n, m, s, g).delta for m, s, g in zip(mus, sigmas, grids)]
    assert joint >= max(singles) * (1 - 1e-8)


def test_correlated_pair_reduces_to_the_diagonal_and_respects_the_union_bound():
    n, mus, sigmas, grids = 100, [0.02, 0.13], [1.0, 2.0], [FixedGrid(0.2), FixedGrid(0.5)]
    diagonal = exact_gaussian_product_delta(n, mus, sigmas, grids)
    assert exact_gaussian_pair_delta(n, mus, sigmas, 0.0, grids) == pytest.approx(diagonal, rel=1e-4)
    correlated = exact_gaussian_pair_delta(n, mus, sigmas, 0.6, grids)
    q = _exit_probabilities(n, mus, sigmas, grids)
    assert correlated <= min(1.0, 2 * q.sum())        # any correlation: the union bound on the exit
    assert abs(correlated / diagonal - 1) > 0.02      # the correlation changes the answer


def test_several_coordinates_nearest_face_in_standard_units_wins_jointly():
    """Joint Delta_n of three coordinates lies between the largest and the sum of the one-coordinate values,
    and its fitted exponent is the smallest per-coordinate rate (the nearest face in standard units)."""
    margins, sigmas = [0.3, 0.4, 0.2], [1.0, 2.0, 0.5]
    mus = [-0.5 + m for m in margins]
    rates = [mis.gaussian_rate(m, s) for m, s in zip(margins, sigmas)]
    ns = np.array([150, 250, 400])
    joint = np.array([math.log(exact_gaussian_product_delta(int(n), mus, sigmas, FixedGrid(1.0))) for n in ns])
    bounds = [mis.gaussian_product_bounds(int(n), mus, sigmas, FixedGrid(1.0)) for n in ns]
    for value, b in zip(joint, bounds):
        assert b.log_lower - 1e-5 <= value <= b.log_upper + 1e-5
    assert joint[0] - bounds[0].log_lower > 1e-4        # at n = 150 the other faces still add measurably
    assert theory.fit_rate(ns, joint, "exponential") == pytest.approx(min(rates), rel=0.05)
    assert np.argmin(rates) == 1 and np.argmin(margins) == 2   # the widest raw margin is the nearest face
