"""Exact ``Delta_n`` of a released 1-d empirical mean: Gaussian (log-space quadrature) and Bernoulli (exact sums)
(see ``mislib.mis`` for the method)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special, stats

from mislib.infra.checks import check_float, check_int
from mislib.quantizers import FixedGrid, StochasticRounding
from mislib.mis.numerics import (
    ExactMIS, GL_NODES, LOG_GL_WEIGHTS, LOG_HALF, MAX_CELLS, TAIL_LOG, U_WINDOW, check_quantizer,
    describe_quantizer, grid_at, log1mexp, log_interval_prob, log_normal_pdf, log_outside_prob, tent_expectation)


# ----------------------------------------------------------------------------------------------------------
# The Gaussian engine: sum over outcomes c of  integral over S_c of phi(u) (g_c(u) - g_c) du
# ----------------------------------------------------------------------------------------------------------

def _find_boundary(F, start, direction, *, iterations=110):
    """For each outcome, the point where ``F > 0`` changes truth walking from ``start`` along ``direction``.

    ``F(m)`` returns an array over outcomes. Brackets by doubling steps, then bisects (vectorised)."""
    inside0 = F(start) > 0
    previous, step = start.copy(), np.ones_like(start)
    current = start + direction * step
    found = np.zeros(start.shape, dtype=bool)
    for _ in range(80):
        changed = (F(current) > 0) != inside0
        found |= changed
        if found.all():
            break
        previous = np.where(found, previous, current)
        step = np.where(found, step, 2 * step)
        current = np.where(found, current, start + direction * step)
    if not found.all():
        raise ArithmeticError("could not bracket the boundary of S_c (the release does not depend on the data?)")
    low, high = previous, current  # F(low) has the start's truth value, F(high) does not
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        same = (F(middle) > 0) == inside0
        low, high = np.where(same, middle, low), np.where(same, high, middle)
        if np.all(np.abs(high - low) <= 1e-15 * (1 + np.abs(low))):
            break
    return 0.5 * (low + high)


def _integrate_log(lower, upper, log_integrand, panel_width=1.0):
    """``log sum_c integral_{lower_c}^{upper_c} exp(log_integrand(c, u)) du`` by composite 16-point
    Gauss-Legendre (panels at most ``panel_width`` wide), summed with logsumexp."""
    valid = upper > lower
    lengths = np.where(valid, upper - lower, 0.0)
    counts = np.where(valid, np.maximum(1, np.ceil(lengths / panel_width)), 0).astype(np.int64)
    if counts.sum() == 0:
        return -math.inf
    owner = np.repeat(np.arange(lower.size), counts)
    index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    width = (lengths / np.maximum(counts, 1))[owner]
    left = lower[owner] + index * width
    u = left[:, None] + 0.5 * (GL_NODES[None, :] + 1.0) * width[:, None]
    owners = np.broadcast_to(owner[:, None], u.shape)
    values = log_integrand(owners.ravel(), u.ravel()).reshape(u.shape)
    values = values + LOG_GL_WEIGHTS[None, :] + np.log(width)[:, None]
    return float(special.logsumexp(values))


def _effective_range(low, high):
    """Where N(0, 1) restricted to [low, high] lives (relative mass outside below exp(-TAIL_LOG))."""
    reach = np.sqrt(2 * TAIL_LOG)
    xa = np.where(low >= 0, low, np.where(high <= 0, np.maximum(low, -np.sqrt(high ** 2 + 2 * TAIL_LOG)),
                                          np.maximum(low, -reach)))
    xb = np.where(high <= 0, high, np.where(low >= 0, np.minimum(high, np.sqrt(low ** 2 + 2 * TAIL_LOG)),
                                            np.minimum(high, reach)))
    return xa, xb


def _gaussian_grid_log_delta(n: int, mu: float, sigma: float, step: float, offset: float) -> float:
    """log Delta_n for the Gaussian mean rounded to nearest on ``offset + step Z``."""
    scale = math.sqrt(n) / sigma
    position = (mu - offset) / step
    below = offset + (math.floor(position - 0.5) + 0.5) * step          # nearest threshold <= mu
    nearest = min(mu - below, below + step - mu) * scale
    reach = math.sqrt(nearest ** 2 + 2 * TAIL_LOG)
    j_low = math.floor((mu - reach / scale - offset) / step - 0.5) - 1
    j_high = math.ceil((mu + reach / scale - offset) / step - 0.5) + 1
    if j_high - j_low > MAX_CELLS:
        raise ValueError(f"the grid (step {step:g}) is too fine for sigma/sqrt(n) = {sigma / math.sqrt(n):.3g}: "
                         f"{j_high - j_low} cells; the release is practically continuous, use quantizer=None")
    t = (offset + (np.arange(j_low, j_high + 1) + 0.5) * step - mu) * scale
    t = t[np.abs(t) <= reach + 1e-9]
    A = np.concatenate([[-np.inf], t])
    B = np.concatenate([t, [np.inf]])
    log_p = log_interval_prob(A, B)
    if n == 1:  # theta_hat = Z_1: Delta = sum_c p_c (1 - p_c)
        log_q = np.where(log_p > LOG_HALF, log_outside_prob(A, B), log1mexp(log_p))
        return float(special.logsumexp(log_p + log_q))
    rho, s = 1 / math.sqrt(n), math.sqrt(1 - 1 / n)
    bulk = log_p > LOG_HALF
    log_q = np.where(bulk, log_outside_prob(A, B), -np.inf)

    def excess(m, idx=slice(None)):
        """> 0 exactly where g_c(u) > g_c (m = rho u); log-ratio of the small side."""
        a, b = (A[idx] - m) / s, (B[idx] - m) / s
        with np.errstate(invalid="ignore"):
            return np.where(bulk[idx], log_q[idx] - log_outside_prob(a, b), log_interval_prob(a, b) - log_p[idx])

    finite = np.isfinite(A) & np.isfinite(B)
    centre = np.where(finite, 0.5 * (np.where(finite, A, 0) + np.where(finite, B, 0)), np.where(np.isfinite(A), A, B))
    start_inside = excess(centre) > 0
    direction = np.where(finite, np.where(centre >= 0, -1.0, 1.0),
                         np.where(np.isfinite(A), np.where(start_inside, -1.0, 1.0),
                                  np.where(start_inside, 1.0, -1.0)))
    root = _find_boundary(excess, centre, direction)
    other = 2 * centre - root
    s_low = np.where(finite, np.minimum(root, other), np.where(np.isfinite(A), root, -np.inf)) / rho
    s_high = np.where(finite, np.maximum(root, other), np.where(np.isfinite(A), np.inf, root)) / rho
    xa, xb = _effective_range(A, B)
    w_low = np.where(bulk, -U_WINDOW, rho * xa - U_WINDOW)
    w_high = np.where(bulk, U_WINDOW, rho * xb + U_WINDOW)
    lower, upper = np.maximum(s_low, w_low), np.minimum(s_high, w_high)

    def log_integrand(idx, u):
        m = rho * u
        a, b = (A[idx] - m) / s, (B[idx] - m) / s
        with np.errstate(invalid="ignore"):
            small = np.where(bulk[idx], log_outside_prob(a, b), log_interval_prob(a, b))
            gap = np.where(bulk[idx], log_q[idx] + log1mexp(small - log_q[idx]),
                           small + log1mexp(log_p[idx] - small))
        return log_normal_pdf(u) + gap

    return _integrate_log(lower, upper, log_integrand)


def _gaussian_sr_log_delta(n: int, mu: float, sigma: float, step: float, offset: float) -> float:
    """log Delta_n for the Gaussian mean under stochastic rounding to ``offset + step Z``."""
    scale = math.sqrt(n) / sigma
    half_width = step * scale
    reach = math.sqrt(2 * TAIL_LOG)
    j_low = math.floor((mu - (reach + half_width) / scale - offset) / step) - 1
    j_high = math.ceil((mu + (reach + half_width) / scale - offset) / step) + 1
    if j_high - j_low > MAX_CELLS:
        raise ValueError(f"stochastic-rounding grid step {step:g} too fine for sigma/sqrt(n): use quantizer=None")
    levels = (offset + np.arange(j_low, j_high + 1) * step - mu) * scale
    levels = levels[(levels - half_width < reach) & (levels + half_width > -reach)]
    g0 = tent_expectation(0.0, 1.0, levels, half_width)
    keep = g0 > 0
    levels, log_g0 = levels[keep], np.log(g0[keep])
    xa = np.maximum(levels - half_width, -reach)
    xb = np.minimum(levels + half_width, reach)
    if n == 1:  # x = u exactly: S_c = {tent(u) > g_c}, split at the tent's peak (a kink)
        gap = half_width * (1 - np.exp(log_g0))
        lower = np.concatenate([levels - gap, levels])
        upper = np.concatenate([levels, levels + gap])
        owner_level = np.concatenate([np.arange(levels.size)] * 2)

        def log_integrand_1(idx, u):
            lvl = owner_level[idx]
            value = tent_expectation(u, 0.0, levels[lvl], half_width) - np.exp(log_g0[lvl])
            with np.errstate(divide="ignore"):
                return log_normal_pdf(u) + np.log(np.maximum(value, 0.0))

        return _integrate_log(lower, upper, log_integrand_1)
    rho, s = 1 / math.sqrt(n), math.sqrt(1 - 1 / n)

    def excess(m):
        with np.errstate(divide="ignore"):
            return np.log(tent_expectation(m, s, levels, half_width)) - log_g0

    direction = np.where(levels >= 0, -1.0, 1.0)
    root = _find_boundary(excess, levels.copy(), direction)
    other = 2 * levels - root
    lower = np.maximum(np.minimum(root, other) / rho, rho * xa - U_WINDOW)
    upper = np.minimum(np.maximum(root, other) / rho, rho * xb + U_WINDOW)

    def log_integrand(idx, u):
        with np.errstate(divide="ignore"):
            log_g = np.log(tent_expectation(rho * u, s, levels[idx], half_width))
        return log_normal_pdf(u) + log_g + log1mexp(log_g0[idx] - log_g)

    return _integrate_log(lower, upper, log_integrand)


def gaussian_identity_delta(n: int) -> float:
    """Delta_n of the unquantized Gaussian mean: E_u TV(N(rho u, s^2), N(0, 1)). It depends on n only."""
    if n == 1:
        return 1.0
    rho2 = 1.0 / n
    s2 = 1.0 - rho2
    s = math.sqrt(s2)
    c = s2 * math.log1p(-rho2)  # the densities cross where x^2/n - 2 m x + (m^2 + c) = 0
    lower = np.array([-U_WINDOW])
    upper = np.array([U_WINDOW])

    def tv(_, u):
        m = u / math.sqrt(n)
        disc = np.sqrt(np.maximum(m * m * (1 - rho2) - c / n, 0.0))
        sign = np.where(m >= 0, 1.0, -1.0)
        big = n * (m + sign * disc)
        small = n * (m * m + c) / big
        x1, x2 = np.minimum(big, small), np.maximum(big, small)
        inside = special.ndtr((x2 - m) / s) - special.ndtr((x1 - m) / s)
        outside = special.ndtr(x2) - special.ndtr(x1)
        with np.errstate(divide="ignore"):
            return log_normal_pdf(u) + np.log(np.maximum(inside - outside, 0.0))

    total = _integrate_log(lower, upper, tv, panel_width=0.5)
    return math.exp(total)


# ----------------------------------------------------------------------------------------------------------
# Public exact functions
# ----------------------------------------------------------------------------------------------------------

def exact_gaussian_mean(n: int, mu: float, sigma: float, quantizer=None) -> ExactMIS:
    """Exact ``Delta_n = 1 - MIS_n`` of ``Q(mean of n i.i.d. N(mu, sigma^2))``.

    Parameters
    ----------
    n : int
        Sample size (>= 1).
    mu, sigma : float
        Mean and standard deviation (> 0) of each sample.
    quantizer : None, Identity, FixedGrid, SizeAdaptiveGrid or StochasticRounding
        None / Identity: continuous release; a SizeAdaptiveGrid is taken at ``n``.

    Returns
    -------
    ExactMIS
        ``log_delta`` (natural log; finite and accurate far below 1e-308), ``delta``, ``mis``.

    Raises
    ------
    ValueError, TypeError
        On ``n < 1``, ``sigma <= 0`` or an unsupported quantizer.

    Examples
    --------
    >>> from mislib.quantizers import FixedGrid
    >>> res = exact_gaussian_mean(100, 0.2, 1.0, FixedGrid(1.0))
    >>> f"{res.delta:.3e}"
    '3.529e-04'
    >>> exact_gaussian_mean(10 ** 4, 0.2, 1.0, FixedGrid(1.0)).log_delta < -400     # far below double precision
    True
    """
    n = check_int("n", n, minimum=1)
    mu = check_float("mu", mu)
    sigma = check_float("sigma", sigma, low=0.0, low_open=True)
    grid = grid_at(check_quantizer(quantizer), n)
    if grid is None:
        log_delta = math.log(gaussian_identity_delta(n))
    elif isinstance(grid, StochasticRounding):
        log_delta = _gaussian_sr_log_delta(n, mu, sigma, grid.step, grid.offset)
    else:
        log_delta = _gaussian_grid_log_delta(n, mu, sigma, grid.step, grid.offset)
    text = f"Gaussian mean (mu={mu:g}, sigma={sigma:g}), n={n}, {describe_quantizer(quantizer, n)}"
    return ExactMIS(n, float(log_delta), text, "gaussian", describe_quantizer(quantizer, n))


def bernoulli_levels(grid, k: np.ndarray, n: int) -> np.ndarray:
    """The quantizer's own output at theta_hat = k / n (its tie rule included)."""
    return grid(torch.as_tensor(k / n, dtype=torch.float64)).numpy()


def bernoulli_grid_boundaries(n: int, p: float, grid: FixedGrid) -> np.ndarray:
    """Boundary points e in [0, n-1] (Q(e/n) != Q((e+1)/n)) nearest to the mode of Binomial(n-1, p) on each side:
    by unimodality the max of P(K' = e) over all boundaries is at one of them."""
    mode = min(max(math.floor(n * p), 0), n - 1)
    j_star = math.floor((mode / n - grid.offset) / grid.step - 0.5)
    candidates = []
    for j in range(j_star - 2, j_star + 4):
        threshold = grid.offset + (j + 0.5) * grid.step
        base = math.floor(n * threshold)
        candidates.extend(range(base - 2, base + 2))
    k = np.unique(np.clip(np.array(candidates), 0, n - 1))
    changes = bernoulli_levels(grid, k, n) != bernoulli_levels(grid, k + 1, n)
    return k[changes]


def _bernoulli_sr_delta(n: int, p: float, grid: StochasticRounding) -> float:
    sd = math.sqrt(max((n - 1) * p * (1 - p), 1e-300))
    centre = (n - 1) * p
    k = np.arange(max(0, math.floor(centre - 13 * sd) - 2), min(n - 1, math.ceil(centre + 13 * sd) + 2) + 1)
    weight = stats.binom.pmf(k, n - 1, p)

    def law(shift):
        position = ((k + shift) / n - grid.offset) / grid.step
        j = np.floor(position)
        frac = position - j
        return j.astype(np.int64), frac

    j1, f1 = law(1)
    j0, f0 = law(0)
    base = min(j0.min(), j1.min())
    size = int(max(j0.max(), j1.max()) - base + 2)
    diff = (np.bincount(j1 - base, weight * (1 - f1), size) + np.bincount(j1 - base + 1, weight * f1, size)
            - np.bincount(j0 - base, weight * (1 - f0), size) - np.bincount(j0 - base + 1, weight * f0, size))
    return p * (1 - p) * float(np.abs(diff).sum())


def exact_bernoulli_mean(n: int, p: float, quantizer=None) -> ExactMIS:
    """Exact ``Delta_n = 1 - MIS_n`` of ``Q(K / n)``, ``K ~ Binomial(n, p)`` (the mean of n Bernoulli(p)).

    Without quantization the release ``K`` is discrete already. Deterministic grids use the closed form
    ``2 p (1 - p) max_e P(K' = e)`` over boundary points (module docstring); the quantizer's own tie rule decides
    on which side ``k / n`` exactly on a threshold falls.

    Parameters
    ----------
    n : int
        Sample size (>= 1).
    p : float
        Success probability, in (0, 1).
    quantizer : None, Identity, FixedGrid, SizeAdaptiveGrid or StochasticRounding

    Returns
    -------
    ExactMIS

    Examples
    --------
    >>> from mislib.quantizers import FixedGrid
    >>> none = exact_bernoulli_mean(1000, 0.1)
    >>> grid = exact_bernoulli_mean(1000, 0.1, FixedGrid(0.5))
    >>> grid.log_delta < none.log_delta        # quantization can only help (data processing)
    True
    """
    n = check_int("n", n, minimum=1)
    p = check_float("p", p, low=0.0, high=1.0, low_open=True, high_open=True)
    grid = grid_at(check_quantizer(quantizer), n)
    log_2pq = math.log(2 * p * (1 - p))
    if grid is None:
        mode = min(max(math.floor(n * p), 0), n - 1)
        k = np.array([max(mode - 1, 0), mode, min(mode + 1, n - 1)])
        log_delta = log_2pq + float(np.max(stats.binom.logpmf(k, n - 1, p)))
    elif isinstance(grid, StochasticRounding):
        if n > 10 ** 10:
            raise ValueError(f"n = {n}: stochastic rounding of a Bernoulli mean is summed over the binomial's bulk, "
                             f"which needs n <= 1e10 (Delta_n ~ 2 p (1-p) / (n step) beyond)")
        delta = _bernoulli_sr_delta(n, p, grid)
        log_delta = math.log(delta) if delta > 0 else -math.inf
    else:
        boundaries = bernoulli_grid_boundaries(n, p, grid)
        if boundaries.size == 0:
            log_delta = -math.inf  # the release is constant: nothing leaks
        else:
            log_delta = log_2pq + float(np.max(stats.binom.logpmf(boundaries, n - 1, p)))
    text = f"Bernoulli mean (p={p:g}), n={n}, {describe_quantizer(quantizer, n)}"
    return ExactMIS(n, float(log_delta), text, "bernoulli", describe_quantizer(quantizer, n))


def exact_gaussian_vector_mean(n: int, d: int) -> ExactMIS:
    """Exact Delta_n of the unquantized mean of n i.i.d. Gaussian vectors in dimension d (any non-degenerate
    covariance: Delta is invariant under invertible linear maps of the data, so it depends on (n, d) only).

    In standard coordinates (U, X) = (Z_1, theta_hat) has correlation ``rho = n^-1/2`` in each coordinate. Rotating
    each pair to ``(U + X, U - X)/sqrt 2`` makes both laws diagonal; the likelihood ratio depends only on
    ``A = sum_k a_k^2`` and ``B = sum_k b_k^2``, chi-square with d degrees of freedom under the product law and
    scaled by ``1 + rho`` and ``1 - rho`` under the joint law. So ``Delta_n = P(L > 1) - Q(L > 1)``, two 1-d
    integrals of chi-square tails."""
    from scipy import integrate

    n = check_int("n", n, minimum=1)
    d = check_int("d", d, minimum=1)
    if n == 1:
        return ExactMIS(n, 0.0, f"Gaussian mean in dimension {d}, n={n}, no quantization", "gaussian",
                        "no quantization")
    rho = 1 / math.sqrt(n)
    alpha, beta = rho / (2 * (1 + rho)), rho / (2 * (1 - rho))
    gamma = 0.5 * d * math.log1p(-rho * rho)  # log L = alpha A - beta B - gamma ... > 0

    def prob(slope, cut):
        """P(A0 - slope B0 > cut) for independent chi-square(d) A0, B0."""
        def integrand(b):
            return stats.chi2.pdf(b, d) * stats.chi2.sf(cut + slope * b, d)

        kink = -cut / slope if cut < 0 else None
        points = [0.0] + ([kink] if kink is not None else []) + [d + 40 * math.sqrt(2 * d) + 200]
        total = 0.0
        for low, high in zip(points[:-1], points[1:]):
            total += integrate.quad(integrand, low, high, epsabs=1e-15, epsrel=1e-13, limit=400)[0]
        return total

    joint = prob(1.0, 2 * gamma / rho)                  # A = (1+rho) A0, B = (1-rho) B0
    product = prob(beta / alpha, gamma / alpha)
    delta = joint - product
    return ExactMIS(n, math.log(delta), f"Gaussian mean in dimension {d}, n={n}, no quantization", "gaussian",
                    "no quantization")


def mean_abs_product_sum(d: int) -> float:
    """``E|sum_{k<=d} U_k X_k|`` for independent standard normals: ``(2/pi) int_0^inf (1 - (1+t^2)^(-d/2)) / t^2
    dt``; ``Delta_n ~ rho E|S_d| / 2`` for the unquantized d-dim mean (2/pi at d = 1, ~ sqrt(2 d / pi))."""
    from scipy import integrate

    d = check_int("d", d, minimum=1)
    value = integrate.quad(lambda t: -math.expm1(-0.5 * d * math.log1p(t * t)) / (t * t), 0, np.inf, limit=400)[0]
    return 2 / math.pi * value
