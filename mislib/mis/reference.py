"""Brute-force mpmath references for the exact routines (slow; for checks)."""

from __future__ import annotations

import math

import numpy as np

from mislib.infra.checks import check_int
from mislib.quantizers import StochasticRounding
from mislib.mis.exact import bernoulli_levels
from mislib.mis.numerics import check_quantizer, grid_at


# ----------------------------------------------------------------------------------------------------------
# Brute-force references (slow; for checks)
# ----------------------------------------------------------------------------------------------------------

def reference_gaussian_log_delta(n: int, mu: float, sigma: float, quantizer=None, *, dps: int = 30,
                                 u_range: float = 20.0, scan_points: int = 400) -> float:
    """``log Delta_n`` for the Gaussian mean by brute force in ``dps``-digit arithmetic (mpmath): the integrand
    ``phi(u) 1/2 sum_c |g_c(u) - g_c|`` is computed directly (differences of CDFs near 1 keep their digits at
    this precision), its kinks are located by scanning a grid and refined with a root finder, and mpmath's
    tanh-sinh quadrature integrates between them. Independent of the fast engine above; seconds per value."""
    import mpmath as mp

    n = check_int("n", n, minimum=2)
    grid = grid_at(check_quantizer(quantizer), n)
    with mp.workdps(dps):
        scale = mp.sqrt(n) / sigma
        rho, s = 1 / mp.sqrt(n), mp.sqrt(1 - mp.mpf(1) / n)
        if grid is None:
            def tv(u):
                m = rho * u
                # densities of N(m, s^2) and N(0, 1) cross at the roots of x^2/n - 2 m x + m^2 + s^2 log s^2
                a, b, c = mp.mpf(1) / n, -2 * m, m * m + s * s * mp.log(s * s)
                d = mp.sqrt(b * b - 4 * a * c)
                x1, x2 = sorted([(-b - d) / (2 * a), (-b + d) / (2 * a)])
                return (mp.ncdf((x2 - m) / s) - mp.ncdf((x1 - m) / s)) - (mp.ncdf(x2) - mp.ncdf(x1))

            value = mp.quad(lambda u: mp.npdf(u) * tv(u), [-u_range, 0, u_range])
            return float(mp.log(value))
        if isinstance(grid, StochasticRounding):
            width = grid.step * scale
            position = (mu - grid.offset) / grid.step
            js = range(math.floor(position - 12 * sigma / (grid.step * math.sqrt(n))) - 1,
                       math.ceil(position + 12 * sigma / (grid.step * math.sqrt(n))) + 2)
            knots = [(grid.offset + j * grid.step - mu) * scale for j in js]

            def law(m, sd):
                psi = [d * mp.ncdf(d) + mp.npdf(d) for d in ((m - c) / sd for c in knots)]
                # tent of half-width `width` at knot j = second difference of E(X - c)_+ over the knots
                return [(sd / width) * (psi[j - 1] - 2 * psi[j] + psi[j + 1]) for j in range(1, len(knots) - 1)]
        else:
            position = (mu - grid.offset) / grid.step
            nearest = min(position - (math.floor(position - 0.5) + 0.5),
                          math.floor(position - 0.5) + 1.5 - position) * grid.step * math.sqrt(n) / sigma
            reach = math.sqrt(nearest ** 2 + 120)
            js = range(math.floor(position - reach * sigma / (grid.step * math.sqrt(n))) - 2,
                       math.ceil(position + reach * sigma / (grid.step * math.sqrt(n))) + 2)
            edges = [(grid.offset + (j + mp.mpf(1) / 2) * grid.step - mu) * scale for j in js]

            def law(m, sd):
                cdf = [mp.mpf(0)] + [mp.ncdf((e - m) / sd) for e in edges] + [mp.mpf(1)]
                return [b - a for a, b in zip(cdf[:-1], cdf[1:])]

        marginal = law(mp.mpf(0), mp.mpf(1))

        def differences(u):
            return [c - m for c, m in zip(law(rho * u, s), marginal)]

        def integrand(u):
            return mp.npdf(u) * sum(abs(d) for d in differences(u)) / 2

        grid_u = [mp.mpf(-u_range) + i * mp.mpf(2 * u_range) / scan_points for i in range(scan_points + 1)]
        signs = [[mp.sign(d) for d in differences(u)] for u in grid_u]
        kinks = []
        for i in range(len(grid_u) - 1):
            for c in range(len(marginal)):
                if signs[i][c] * signs[i + 1][c] < 0:
                    low, high = grid_u[i], grid_u[i + 1]
                    for _ in range(dps * 4):  # bisection on the sign of cell c's difference
                        middle = (low + high) / 2
                        if mp.sign(differences(middle)[c]) == signs[i][c]:
                            low = middle
                        else:
                            high = middle
                    kinks.append((low + high) / 2)
        points = [mp.mpf(-u_range)] + sorted(kinks) + [mp.mpf(u_range)]
        value = mp.quad(integrand, points)
        return float(mp.log(value))


def reference_bernoulli_log_delta(n: int, p: float, quantizer=None, *, dps: int = 40) -> float:
    """``log Delta_n`` for the Bernoulli mean by enumeration in ``dps``-digit arithmetic: the laws of ``R`` given
    ``Z_1 = 0``, ``Z_1 = 1`` and marginally, then ``sum_z P(z) TV``. Independent of the closed form above."""
    import mpmath as mp

    n = check_int("n", n, minimum=1)
    grid = grid_at(check_quantizer(quantizer), n)
    k = np.arange(n + 1)
    with mp.workdps(dps):
        p_ = mp.mpf(p)

        def pmf(kk, m):
            return mp.binomial(m, kk) * p_ ** kk * (1 - p_) ** (m - kk) if 0 <= kk <= m else mp.mpf(0)

        if grid is None:
            outcome = {int(i): {int(i): mp.mpf(1)} for i in k}
        elif isinstance(grid, StochasticRounding):
            outcome = {}
            for i in k:
                position = mp.mpf(int(i)) / n
                rel = (position - mp.mpf(grid.offset)) / grid.step
                j = int(mp.floor(rel))
                frac = rel - j
                outcome[int(i)] = {j: 1 - frac, j + 1: frac}
        else:
            levels = bernoulli_levels(grid, k, n)
            outcome = {int(i): {float(levels[i]): mp.mpf(1)} for i in k}

        def law(weights):
            total = {}
            for i, w in weights.items():
                for r, q in outcome[i].items():
                    total[r] = total.get(r, mp.mpf(0)) + w * q
            return total

        given1 = law({int(i): pmf(int(i) - 1, n - 1) for i in k})
        given0 = law({int(i): pmf(int(i), n - 1) for i in k})
        marginal = law({int(i): pmf(int(i), n) for i in k})
        keys = set(marginal) | set(given0) | set(given1)
        tv = lambda cond: sum(abs(cond.get(r, 0) - marginal.get(r, 0)) for r in keys) / 2  # noqa: E731
        value = p_ * tv(given1) + (1 - p_) * tv(given0)
        return float(mp.log(value)) if value > 0 else -math.inf
