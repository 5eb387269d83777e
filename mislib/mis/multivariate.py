"""Exact ``Delta_n`` of a d-dimensional Gaussian mean released on a product grid (THEORY.md §2, last rows).

``Z ~ N(mu, Sigma)`` in ``R^d``, ``theta_hat`` the mean of ``n`` samples, the release ``R = (Q_1(theta_hat_1), ...,
Q_d(theta_hat_d))`` for public grids ``Q_k`` (``FixedGrid``). In standard units ``x_k = (theta_hat_k - mu_k)
sqrt(n) / sigma_k`` and ``u_k = (z_k - mu_k) / sigma_k``, ``x ~ N(0, C)`` and ``x | u ~ N(rho u, s^2 C)`` with
``C`` the correlation matrix, ``rho = n^-1/2`` and ``s^2 = 1 - 1/n``; a cell ``c`` of the product grid is a box
and ``Delta_n = E_u sum_c (g_c(u) - g_c)_+`` with ``g_c(u) = P(x in c | u)``, ``g_c = P(x in c)``.

**Diagonal covariance** (``C = I``, any ``d``): ``g_c(u) = prod_k g_{c_k}(u_k)`` with log-concave factors, and

    I_d(tau) = E (prod_k g_k(u_k) - tau)_+  =  E_{u_1} [ g_1(u_1) I_{d-1}(tau / g_1(u_1)) ]

over the ``u_1`` where ``g_1(u_1) > tau / sup prod_{k>1} g_k`` (an interval, found by bisection): nested
Gauss-Legendre quadrature on intervals where every integrand is smooth (the kinks of ``(.)_+`` are the ends),
``I_1(tau) = int_{g > tau} phi (g - tau)``. Cell tuples with ``prod g_c < CELL_FLOOR`` are skipped (each
contributes less than its probability): the absolute error is about ``1e-14`` per kept tuple, so the result is
meant for ``Delta_n`` above about ``1e-10`` (the 1-d routines of ``mislib.mis`` go to ``1e-300``).

**Correlated, d = 2**: ``u_2 = r u_1 + sqrt(1 - r^2) v`` and ``x_2 | x_1, u``; ``g_c(u)`` by Gauss-Legendre over
``x_1`` in the cell, and ``E_u`` on a composite Gauss-Legendre tensor grid in ``(u_1, v)`` (kinks inside panels:
relative accuracy about ``1e-4``, checked against the diagonal routine at ``r = 0``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from mislib.infra.checks import check_float, check_int
from mislib.quantizers import FixedGrid

CELL_FLOOR = 1e-15
WINDOW = 9.0                 # standard deviations covered by the u integrals (phi(9) ~ 1e-18)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(24)


def _gl(a, b, nodes=_GL_X, weights=_GL_W):
    """Gauss-Legendre nodes and weights on [a, b] (arrays broadcast: a, b [m] -> [m, k])."""
    a, b = np.asarray(a, dtype=float)[..., None], np.asarray(b, dtype=float)[..., None]
    half = (b - a) / 2
    return a + half * (nodes + 1), half * weights


def _phi(u):
    return np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)


class _Factor:
    """One coordinate's cell in standard units ``[a, b]``: ``g(u) = P(x in [a, b] | u)`` and ``G = P(x in [a,b])``."""

    def __init__(self, a, b, rho, s):
        self.a, self.b, self.rho, self.s = a, b, rho, s
        self.G = float(ndtr(b) - ndtr(a))
        centre = 0.0 if math.isinf(a) or math.isinf(b) else (a + b) / 2
        if math.isinf(a) and math.isinf(b):
            self.sup, self.argmax = 1.0, 0.0
        elif math.isinf(a) or math.isinf(b):
            self.sup, self.argmax = 1.0, (math.inf if math.isinf(b) else -math.inf)
        else:
            self.argmax = centre / rho
            self.sup = float(self.g(np.array([self.argmax]))[0])

    def g(self, u):
        m = self.rho * u
        return np.clip(ndtr((self.b - m) / self.s) - ndtr((self.a - m) / self.s), 0.0, 1.0)

    def interval(self, level):
        """[lo, hi] where g(u) > level (log-concave: an interval), within the window; None if empty."""
        level = np.asarray(level, dtype=float)
        lo = np.full(level.shape, -WINDOW)
        hi = np.full(level.shape, WINDOW)
        top = np.clip(self.argmax, -WINDOW, WINDOW)
        ok = self.g(np.full(level.shape, top)) > level
        for side, bound in ((-1, lo), (1, hi)):
            inner, outer = np.full(level.shape, float(top)), bound.copy()
            outer_in = self.g(outer) > level
            for _ in range(60):
                mid = (inner + outer) / 2
                inside = self.g(mid) > level
                inner, outer = np.where(inside, mid, inner), np.where(inside, outer, mid)
            bound[:] = np.where(outer_in, bound, (inner + outer) / 2)
        return lo, hi, ok


def _integral(factors, tau):
    """E (prod_k g_k(u_k) - tau)_+ over independent standard normal u_k, for each entry of ``tau`` [m]."""
    first, rest = factors[0], factors[1:]
    sup_rest = math.prod(f.sup for f in rest) if rest else 1.0
    lo, hi, ok = first.interval(tau / sup_rest)
    u, w = _gl(lo, hi)                                              # [m, k]
    g = first.g(u)
    if not rest:
        values = (w * _phi(u) * (g - tau[:, None])).sum(-1)
    else:
        inner = _integral(rest, (tau[:, None] / np.maximum(g, 1e-300)).reshape(-1)).reshape(g.shape)
        values = (w * _phi(u) * g * inner).sum(-1)
    return np.where(ok & (hi > lo), values, 0.0)


def _cells(grid: FixedGrid, mu: float, sigma: float, n: int, span: float):
    """Cells of ``grid`` that meet ``mu +- span`` standard errors, as [a, b] in standard units."""
    se = sigma / math.sqrt(n)
    first = math.floor((mu - span * se - grid.offset) / grid.step + 0.5)
    last = math.floor((mu + span * se - grid.offset) / grid.step + 0.5)
    edges = [(grid.offset + (k - 0.5) * grid.step, grid.offset + (k + 0.5) * grid.step)
             for k in range(first, last + 1)]
    if len(edges) > 4000:
        raise ValueError(f"the grid has {len(edges)} cells within {span} standard errors: too fine for the "
                         "exact product computation (use a coarser grid or the unquantized rate)")
    return [((lo - mu) / se, (hi - mu) / se) for lo, hi in edges]


def _checked(n, mus, sigmas, grids):
    n = check_int("n", n, minimum=2)
    mus = [check_float("mu", float(m)) for m in np.atleast_1d(mus)]
    sigmas = [check_float("sigma", float(s), low=0.0, low_open=True) for s in np.atleast_1d(sigmas)]
    grids = list(grids) if isinstance(grids, (list, tuple)) else [grids] * len(mus)
    if not (len(mus) == len(sigmas) == len(grids)):
        raise ValueError(f"mus, sigmas and grids must have one entry per coordinate ({len(mus)}, {len(sigmas)}, "
                         f"{len(grids)})")
    for g in grids:
        if not isinstance(g, FixedGrid):
            raise TypeError(f"grids must be mislib.quantizers.FixedGrid (public grids), got {type(g).__name__}")
    return n, mus, sigmas, grids


def exact_gaussian_product_delta(n: int, mus, sigmas, grids) -> float:
    """Exact ``Delta_n`` of the mean of ``n`` draws of ``N(mu, diag(sigma^2))`` released on a product of public
    grids (one ``FixedGrid`` per coordinate, or one for all).

    Examples
    --------
    >>> from mislib.mis import exact_gaussian_mean
    >>> from mislib.quantizers import FixedGrid
    >>> one = exact_gaussian_product_delta(40, [0.2], [1.0], FixedGrid(0.5))
    >>> abs(one / exact_gaussian_mean(40, 0.2, 1.0, FixedGrid(0.5)).delta - 1) < 1e-8
    True
    """
    n, mus, sigmas, grids = _checked(n, mus, sigmas, grids)
    rho, s = 1 / math.sqrt(n), math.sqrt(1 - 1 / n)
    per_coordinate = [[_Factor(a, b, rho, s) for a, b in _cells(g, m, sd, n, WINDOW + 3)]
                      for g, m, sd in zip(grids, mus, sigmas)]
    per_coordinate = [[f for f in cells if f.G > 1e-300] for cells in per_coordinate]
    total = 0.0
    for combo in np.ndindex(*[len(c) for c in per_coordinate]):
        factors = [per_coordinate[k][i] for k, i in enumerate(combo)]
        tau = math.prod(f.G for f in factors)
        if tau < CELL_FLOOR:
            continue
        total += float(_integral(factors, np.array([tau]))[0])
    return total


def exact_gaussian_pair_delta(n: int, mus, sigmas, correlation: float, grids, *, panels: int = 8,
                              x_nodes: int = 16) -> float:
    """Exact ``Delta_n`` (quadrature) for a 2-d Gaussian mean with correlation ``correlation`` between the
    coordinates, released on a product of two public grids. Relative accuracy about 1e-4 (see the module)."""
    n, mus, sigmas, grids = _checked(n, mus, sigmas, grids)
    if len(mus) != 2:
        raise ValueError(f"exact_gaussian_pair_delta is for d = 2, got {len(mus)} coordinates")
    r = check_float("correlation", correlation, low=-1.0, high=1.0, low_open=True, high_open=True)
    rho, s = 1 / math.sqrt(n), math.sqrt(1 - 1 / n)
    cells = [_cells(g, m, sd, n, WINDOW + 3) for g, m, sd in zip(grids, mus, sigmas)]
    edges = np.linspace(-WINDOW, WINDOW, panels + 1)
    u, w = _gl(edges[:-1], edges[1:])
    u, w = u.reshape(-1), w.reshape(-1)
    U1, V = np.meshgrid(u, u, indexing="ij")
    weight = np.outer(w * _phi(u), w * _phi(u))
    root = math.sqrt(1 - r * r)
    gx, gw = np.polynomial.legendre.leggauss(x_nodes)

    def box(a1, b1, a2, b2, mean1, mean2_shift, sd):
        """P(x_1 in [a1, b1], x_2 in [a2, b2]) with x_1 ~ N(mean1, sd^2), x_2 | x_1 ~ N(r x_1 + shift, sd^2 (1-r^2))."""
        lo = np.maximum(a1, mean1 - 12 * sd)
        hi = np.minimum(b1, mean1 + 12 * sd)
        half = np.clip(hi - lo, 0, None) / 2
        x1 = lo[..., None] + half[..., None] * (gx + 1)
        dens = np.exp(-0.5 * ((x1 - mean1[..., None]) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        m2 = r * x1 + mean2_shift[..., None]
        inner = ndtr((b2 - m2) / (sd * root)) - ndtr((a2 - m2) / (sd * root))
        return np.clip((half[..., None] * gw * dens * inner).sum(-1), 0.0, 1.0)

    total = 0.0
    zeros = np.zeros(1)
    for a1, b1 in cells[0]:
        for a2, b2 in cells[1]:
            G = float(box(np.array([a1]), np.array([b1]), a2, b2, zeros, zeros, 1.0)[0])
            if G < CELL_FLOOR:
                continue
            U2 = r * U1 + root * V
            shift = rho * U2 - r * rho * U1
            g = box(np.full(U1.shape, a1), np.full(U1.shape, b1), a2, b2, rho * U1, shift, s)
            total += float((weight * np.clip(g - G, 0, None)).sum())
    return total
