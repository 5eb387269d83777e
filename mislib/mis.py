"""Exact membership-inference security (MIS) of a released empirical mean, and the rates of THEORY.md §2.

The exact cases (THEORY.md §4): ``n`` i.i.d. samples, ``theta_hat`` their mean, the release ``R = Q(theta_hat)``
for a 1-d quantizer ``Q`` (none, a fixed grid, a size-adaptive grid at ``n``, stochastic rounding). The game's
optimal advantage is ``Delta_n = E_z TV(law(R | Z_1 = z), law(R))`` and ``MIS_n = 1 - Delta_n``.

**Gaussian mean** (``Z ~ N(mu, sigma^2)``). In standard units ``x = (theta_hat - mu) sqrt(n) / sigma`` and
``u = (z - mu) / sigma``, ``x ~ N(0, 1)`` and ``x | u ~ N(rho u, s^2)`` with ``rho = n^-1/2``, ``s^2 = 1 - 1/n``.
For a release with outcomes ``c`` (cells of a grid, levels of stochastic rounding), with ``g_c(u) = P(R = c | u)``
and ``g_c = P(R = c)``:

    Delta_n = sum_c  integral over S_c of phi(u) (g_c(u) - g_c) du,     S_c = {u : g_c(u) > g_c}.

``g_c(u)`` is a Gaussian convolution of a log-concave kernel (the cell's indicator, or the tent of stochastic
rounding), hence log-concave and symmetric about its centre: ``S_c`` is an interval (a half-line for the two
outer cells) whose ends are found by bisection. Inside ``S_c`` the integrand is smooth (no kink: the kinks of
``(.)_+`` are the ends of the interval), so composite Gauss-Legendre converges fast. Everything is in log
space: ``log g_c(u)`` from the tail on the correct side (``log_ndtr``, log-diff-exp), the integrand as
``log phi(u) + log g_c(u) + log(1 - exp(log g_c - log g_c(u)))``, and for the one cell with ``g_c > 1/2`` (the
bulk cell) the difference ``g_c(u) - g_c = q_c - q_c(u)`` of the complements ``q = 1 - g``, which are the small
numbers. Each integral is restricted to the window where the joint density of ``(u, R = c)`` lives
(``u | x ~ N(rho x, s^2)``), with a relative truncation error below ``exp(-60)``. The result agrees with 25-35
digit mpmath quadrature (``reference_gaussian_log_delta``) to about 1e-14 in ``log_delta`` and stays finite far
below the smallest double (``log_delta`` of -2000 is routine). Without quantization the release is continuous and
``Delta_n = E_u TV(N(rho u, s^2), N(0, 1))`` (the two densities cross at two points, found in closed form).

**Bernoulli mean** (``Z ~ Bernoulli(p)``, ``theta_hat = K / n``). With ``K' ~ Binomial(n - 1, p)`` and
``P(K = k) = p P(K' = k - 1) + (1 - p) P(K' = k)``:

    Delta_n = 2 p (1 - p) TV( law(R(K' + 1)), law(R(K')) ).

For a deterministic quantizer the cells are runs of consecutive ``k`` and this telescopes to
``Delta_n = 2 p (1 - p) max_e P(K' = e)`` over the boundary points ``e`` (``Q(e/n) != Q((e+1)/n)``): one
binomial log-pmf (every ``k`` is a boundary without quantization). Stochastic rounding is summed exactly.

Rates: ``gaussian_rate``, ``bernoulli_rate`` (binary KL), ``chernoff_rate`` (any convex loss, discrete law), and
the refined predictions with their second-order terms used in the figures. ``theory_rates_table`` computes the
table ``data/results/theory_rates.csv`` shared by notebooks 01-03.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import optimize, special, stats

from mislib.infra.checks import check_choice, check_float, check_int
from mislib.quantizers import FixedGrid, Identity, SizeAdaptiveGrid, StochasticRounding

LOG_HALF = math.log(0.5)
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# Relative mass neglected when a cell's integral is restricted to its window: exp(-TAIL_LOG) (about 1e-26).
TAIL_LOG = 60.0
# Half-width, in standard deviations of u given x (at most 1), of the window around the cell's x-range.
U_WINDOW = 12.0
MAX_CELLS = 200_000
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
_LOG_GL_WEIGHTS = np.log(_GL_WEIGHTS / 2.0)


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExactMIS:
    """Exact ``Delta_n = 1 - MIS_n`` of one release. ``log_delta`` (natural log) is finite even when ``delta``
    underflows to 0."""

    n: int
    log_delta: float
    description: str
    model: str = ""
    quantizer: str = ""

    @property
    def delta(self) -> float:
        return math.exp(self.log_delta)

    @property
    def mis(self) -> float:
        return -math.expm1(self.log_delta)

    @property
    def log10_delta(self) -> float:
        return self.log_delta / math.log(10.0)

    @property
    def bayes_accuracy(self) -> float:
        """Accuracy of the optimal attack in the balanced game: (1 + Delta_n) / 2."""
        return 0.5 + 0.5 * self.delta


@dataclass(frozen=True)
class DeltaBounds:
    """``log_lower <= log Delta_n <= log_upper`` (natural logs), with the pieces that made them."""

    n: int
    log_lower: float
    log_upper: float
    description: str
    parts: dict = field(default_factory=dict)

    @property
    def log_delta(self) -> float:
        """Geometric middle of the bracket (the bracket is at most a factor d wide)."""
        if not math.isfinite(self.log_lower):
            return self.log_upper
        return 0.5 * (self.log_lower + self.log_upper)


# ----------------------------------------------------------------------------------------------------------
# Log-space helpers
# ----------------------------------------------------------------------------------------------------------

def log1mexp(x):
    """``log(1 - exp(x))`` for ``x <= 0``, accurate at both ends (``x = 0`` gives ``-inf``)."""
    x = np.minimum(np.asarray(x, dtype=float), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def log_interval_prob(a, b):
    """``log P(a <= N(0, 1) <= b)`` computed from the tail on the correct side (``a <= b``, may be infinite)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    out = np.empty(a.shape)
    right, left = a >= 0, b <= 0
    mid = ~(right | left)
    with np.errstate(divide="ignore", invalid="ignore"):
        upper_a, upper_b = special.log_ndtr(-a[right]), special.log_ndtr(-b[right])
        out[right] = upper_a + log1mexp(upper_b - upper_a)
        lower_b, lower_a = special.log_ndtr(b[left]), special.log_ndtr(a[left])
        out[left] = lower_b + log1mexp(lower_a - lower_b)
        out[mid] = log1mexp(np.logaddexp(special.log_ndtr(a[mid]), special.log_ndtr(-b[mid])))
    return out


def log_outside_prob(a, b):
    """``log P(N(0, 1) outside [a, b])``, the small complement of a bulk cell."""
    return np.logaddexp(special.log_ndtr(np.asarray(a, float)), special.log_ndtr(-np.asarray(b, float)))


def _psi(d):
    """``E (Y + d)_+`` for ``Y ~ N(0, 1)``, i.e. ``d Phi(d) + phi(d)``; the left tail through the Mills ratio
    (``phi(d) (1 - |d| Phi(d) / phi(d))``) so that it does not cancel."""
    d = np.asarray(d, dtype=float)
    out = np.empty(d.shape)
    pos = d >= 0
    out[pos] = d[pos] * special.ndtr(d[pos]) + np.exp(_log_normal_pdf(d[pos]))
    t = -d[~pos]
    mills = math.sqrt(math.pi / 2) * special.erfcx(t / math.sqrt(2))  # Phi(-t) / phi(t)
    out[~pos] = np.exp(_log_normal_pdf(t)) * np.maximum(1.0 - t * mills, 0.0)
    return out


def tent_expectation(m, s, level, half_width):
    """``E tent((X - level) / half_width)`` for ``X ~ N(m, s^2)``, ``tent(y) = (1 - |y|)_+``: the probability
    that stochastic rounding outputs ``level`` (levels ``half_width`` apart). ``s = 0`` gives the tent itself."""
    m, level = np.broadcast_arrays(np.asarray(m, float), np.asarray(level, float))
    y = m - level
    if s == 0:
        return np.maximum(1.0 - np.abs(y) / half_width, 0.0)
    k = half_width / s
    d = y / s
    value = (s / half_width) * (_psi(d + k) - 2.0 * _psi(d) + _psi(d - k))
    return np.clip(value, 0.0, 1.0)


def _log_normal_pdf(u):
    return -0.5 * np.square(u) - LOG_SQRT_2PI


# ----------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------

def _check_quantizer(quantizer):
    supported = (Identity, FixedGrid, SizeAdaptiveGrid, StochasticRounding)
    if quantizer is None or isinstance(quantizer, supported):
        return quantizer
    raise TypeError(
        f"quantizer must be None, Identity, FixedGrid, SizeAdaptiveGrid or StochasticRounding for the exact 1-d "
        f"computation, got {type(quantizer).__name__}")


def _grid_at(quantizer, n):
    """The deterministic grid used at sample size n (FixedGrid), None for no quantization, or the SR object."""
    if quantizer is None or isinstance(quantizer, Identity):
        return None
    if isinstance(quantizer, SizeAdaptiveGrid):
        return quantizer.at(n)
    return quantizer


def describe_quantizer(quantizer, n: int | None = None) -> str:
    if quantizer is None or isinstance(quantizer, Identity):
        return "no quantization"
    if isinstance(quantizer, SizeAdaptiveGrid):
        text = f"size-adaptive grid h0={quantizer.h0:g}, alpha={quantizer.alpha:g}, offset={quantizer.offset:g}"
        return text + (f" (step {quantizer.step_at(n):.4g} at n={n})" if n is not None else "")
    if isinstance(quantizer, StochasticRounding):
        return f"stochastic rounding step={quantizer.step:g}, offset={quantizer.offset:g}"
    return f"fixed grid step={quantizer.step:g}, offset={quantizer.offset:g}"


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
    u = left[:, None] + 0.5 * (_GL_NODES[None, :] + 1.0) * width[:, None]
    owners = np.broadcast_to(owner[:, None], u.shape)
    values = log_integrand(owners.ravel(), u.ravel()).reshape(u.shape)
    values = values + _LOG_GL_WEIGHTS[None, :] + np.log(width)[:, None]
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
        return _log_normal_pdf(u) + gap

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
                return _log_normal_pdf(u) + np.log(np.maximum(value, 0.0))

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
        return _log_normal_pdf(u) + log_g + log1mexp(log_g0[idx] - log_g)

    return _integrate_log(lower, upper, log_integrand)


def _gaussian_identity_delta(n: int) -> float:
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
            return _log_normal_pdf(u) + np.log(np.maximum(inside - outside, 0.0))

    total = _integrate_log(lower, upper, tv, panel_width=0.5)
    return math.exp(total)


# ----------------------------------------------------------------------------------------------------------
# Public exact functions
# ----------------------------------------------------------------------------------------------------------

def exact_gaussian_mean(n: int, mu: float, sigma: float, quantizer=None) -> ExactMIS:
    """Exact ``Delta_n = 1 - MIS_n`` of ``Q(mean of n i.i.d. N(mu, sigma^2))``.

    ``quantizer``: None / Identity (continuous release), FixedGrid, SizeAdaptiveGrid (its grid at ``n``) or
    StochasticRounding. See the module docstring for the method; ``log_delta`` stays finite and accurate far
    below 1e-308."""
    n = check_int("n", n, minimum=1)
    mu = check_float("mu", mu)
    sigma = check_float("sigma", sigma, low=0.0, low_open=True)
    grid = _grid_at(_check_quantizer(quantizer), n)
    if grid is None:
        log_delta = math.log(_gaussian_identity_delta(n))
    elif isinstance(grid, StochasticRounding):
        log_delta = _gaussian_sr_log_delta(n, mu, sigma, grid.step, grid.offset)
    else:
        log_delta = _gaussian_grid_log_delta(n, mu, sigma, grid.step, grid.offset)
    text = f"Gaussian mean (mu={mu:g}, sigma={sigma:g}), n={n}, {describe_quantizer(quantizer, n)}"
    return ExactMIS(n, float(log_delta), text, "gaussian", describe_quantizer(quantizer, n))


def _bernoulli_levels(grid, k: np.ndarray, n: int) -> np.ndarray:
    """The quantizer's own output at theta_hat = k / n (its tie rule included)."""
    return grid(torch.as_tensor(k / n, dtype=torch.float64)).numpy()


def _bernoulli_grid_boundaries(n: int, p: float, grid: FixedGrid) -> np.ndarray:
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
    changes = _bernoulli_levels(grid, k, n) != _bernoulli_levels(grid, k + 1, n)
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
    on which side ``k / n`` exactly on a threshold falls."""
    n = check_int("n", n, minimum=1)
    p = check_float("p", p, low=0.0, high=1.0, low_open=True, high_open=True)
    grid = _grid_at(_check_quantizer(quantizer), n)
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
        boundaries = _bernoulli_grid_boundaries(n, p, grid)
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


# ----------------------------------------------------------------------------------------------------------
# Rates and refined predictions
# ----------------------------------------------------------------------------------------------------------

def gaussian_rate(delta, sigma):
    """Large-deviation rate of a Gaussian mean crossing a threshold at distance ``delta``: delta^2/(2 sigma^2)."""
    sigma = np.asarray(sigma, dtype=float)
    if np.any(~np.isfinite(sigma)) or np.any(sigma <= 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma}")
    delta = np.asarray(delta, dtype=float)
    if np.any(~np.isfinite(delta)):
        raise ValueError("delta must be finite")
    out = np.square(delta) / (2 * np.square(sigma))
    return float(out) if out.ndim == 0 else out


def bernoulli_rate(t, p):
    """Chernoff rate of a Bernoulli(p) mean reaching ``t``: the binary KL divergence KL(t || p)."""
    p = check_float("p", p, low=0.0, high=1.0, low_open=True, high_open=True)
    t = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(t)) or np.any((t < 0) | (t > 1)):
        raise ValueError(f"t must lie in [0, 1], got {t}")
    out = special.rel_entr(t, p) + special.rel_entr(1 - t, 1 - p)
    return float(out) if out.ndim == 0 else out


def chernoff_rate(loss_derivative, t: float, z, weights=None) -> float:
    """Cramer/Chernoff rate of the M-estimator of a convex 1-d loss crossing ``t``:
    ``I = -inf_lambda log E exp(lambda loss'(t, Z))`` (THEORY.md §2), for ``Z`` with the discrete law ``(z,
    weights)`` (``weights=None``: the empirical law of the samples ``z``).

    ``{theta_hat > t} = {mean loss'(t, Z_i) < 0}``, so ``P(theta_hat crosses t) = exp(-n I + o(n))``; the
    infimum over all real ``lambda`` covers both sides of ``theta*``. ``loss_derivative(t, z)`` must be
    vectorised over ``z``."""
    t = check_float("t", t)
    z = np.asarray(z, dtype=float)
    if z.ndim != 1 or z.size == 0 or not np.all(np.isfinite(z)):
        raise ValueError("z must be a non-empty 1-d array of finite values")
    if weights is None:
        log_w = np.full(z.size, -math.log(z.size))
    else:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != z.shape or np.any(weights < 0) or not np.isfinite(weights).all() or weights.sum() <= 0:
            raise ValueError("weights must be non-negative, finite, not all zero and shaped like z")
        with np.errstate(divide="ignore"):
            log_w = np.log(weights / weights.sum())
    v = np.asarray(loss_derivative(t, z), dtype=float)
    support = np.isfinite(log_w)
    v, log_w = v[support], log_w[support]
    if v.size and (v.min() >= 0 or v.max() <= 0):
        # All mass on one side: the infimum is reached as lambda -> -/+ infinity.
        at_zero = log_w[v == 0]
        return math.inf if at_zero.size == 0 else -float(special.logsumexp(at_zero))
    scale = float(np.max(np.abs(v)))

    def log_mgf(lam):
        return float(special.logsumexp(log_w + lam * v))

    mean = float(np.sum(np.exp(log_w) * v))
    sign = -1.0 if mean > 0 else 1.0
    bound = 1.0 / scale
    while log_mgf(sign * bound) < log_mgf(sign * bound / 2) and bound < 1e12:
        bound *= 2
    lo, hi = sorted((0.0, sign * bound))
    result = optimize.minimize_scalar(log_mgf, bounds=(lo, hi), method="bounded",
                                      options={"xatol": 1e-12 * bound})
    return max(0.0, -float(result.fun))


def log_normal_tail(x):
    """Exact ``log Phi_bar(x)`` (finite for any real x)."""
    return special.log_ndtr(-np.asarray(x, dtype=float))


def second_order_log_tail(x):
    """``-(x^2/2 + log x + log sqrt(2 pi))``: ``log Phi_bar(x)`` to second order (x > 0)."""
    x = np.asarray(x, dtype=float)
    return -(0.5 * x * x + np.log(x) + LOG_SQRT_2PI)


def grid_margins_around(mu: float, grid: FixedGrid) -> tuple[float, float]:
    """Distances from ``mu`` to the threshold below and the threshold above on ``grid``."""
    low, high = grid.thresholds_around(mu)
    return mu - low, high - mu


def refined_log_delta_gaussian(n, margins, sigma):
    """Asymptotic ``log Delta_n`` for a Gaussian mean inside a deterministic cell, from the thresholds at
    distances ``margins`` (below and above ``mu``):

        Delta_n ~ sum_j p_j (2 Phi(b_j / 2) - 1) + E_U [ sum_j p_j (1 - exp(+-b_j U - b_j^2 / 2)) ]_+ ,

    ``p_j = Phi_bar(a_j)``, ``a_j = delta_j sqrt(n) / sigma``, ``b_j = h(a_j) / sqrt(n)`` with the normal hazard
    ``h(a) = phi(a) / Phi_bar(a) = a + 1/a + ...`` (``+`` for the threshold above, ``-`` below).

    Derivation: given the target ``u``, a tail cell's probability is ``p_j(u) = Phi_bar((a_j - rho u)/s)``, and
    ``p_j(u) / p_j -> exp(b_j u - b_j^2/2)`` (log-linear in ``u``; the slope is the hazard, not ``a_j``, which
    matters when ``b_j`` is small, i.e. for size-adaptive grids). Each tail cell contributes
    ``E(p_j(u) - p_j)_+ = p_j TV(N(b_j, 1), N(0, 1))``; the bulk cell loses what the tails gain. With one dominant
    threshold this is ``Delta_n ~ 2 Phi_bar(a) (2 Phi(b/2) - 1)``: the bound ``2 P(flip)`` times a TV factor."""
    n_array = np.atleast_1d(np.asarray(n, dtype=float))
    margins = np.atleast_1d(np.asarray(margins, dtype=float))
    u = np.linspace(-14, 14, 4001)
    weight_u = np.exp(_log_normal_pdf(u)) * (u[1] - u[0])
    out = []
    for size in n_array:
        a = margins * math.sqrt(size) / sigma
        log_p = log_normal_tail(a)
        b = np.exp(_log_normal_pdf(a) - log_p) / math.sqrt(size)
        signs = np.where(np.arange(margins.size) == 0, -1.0, 1.0) if margins.size == 2 else np.ones(margins.size)
        top = log_p.max()
        w = np.exp(log_p - top)
        tails = float(np.sum(w * (2 * special.ndtr(b / 2) - 1)))
        shortfall = np.sum(w[:, None] * -np.expm1(signs[:, None] * b[:, None] * u[None, :]
                                                  - 0.5 * b[:, None] ** 2), axis=0)
        bulk = float(np.sum(weight_u * np.maximum(shortfall, 0.0)))
        out.append(top + math.log(tails + bulk))
    out = np.array(out)
    return float(out[0]) if np.ndim(n) == 0 else out


def second_order_log_delta_gaussian(n, margin, sigma):
    """The expansion of ``refined_log_delta_gaussian`` for one dominant threshold at distance ``margin``:
    ``log Delta_n = -n r - log a - log sqrt(2 pi) + log 2 + log(2 Phi(b/2) - 1) + o(1)`` with ``r = margin^2 /
    (2 sigma^2)``, ``a = sqrt(2 n r)``, ``b = margin / sigma``: ``-log Delta_n = n r + (1/2) log n + O(1)``."""
    n = np.asarray(n, dtype=float)
    a = margin * np.sqrt(n) / sigma
    b = margin / sigma
    return second_order_log_tail(a) + math.log(2.0) + math.log(2 * special.ndtr(b / 2) - 1)


def refined_log_delta_bernoulli(n: int, p: float, quantizer) -> float:
    """Second-order prediction for a Bernoulli mean on a deterministic grid: Stirling's
    ``P(K' = e) ~ exp(-(n-1) KL(tau || p)) / sqrt(2 pi (n-1) tau (1 - tau))``, ``tau = e / (n - 1)``, at the
    boundary points ``e`` next to each threshold, so ``log Delta_n ~ log(2 p (1-p)) - (n-1) KL(tau || p) -
    (1/2) log(2 pi (n-1) tau (1-tau))``. Using the lattice point ``e`` rather than the threshold ``t`` itself
    matters: ``(n-1)(KL(tau) - KL(t))`` is O(1) and oscillates with n."""
    n = check_int("n", n, minimum=3)
    p = check_float("p", p, low=0.0, high=1.0, low_open=True, high_open=True)
    grid = _grid_at(_check_quantizer(quantizer), n)
    if not isinstance(grid, FixedGrid):
        raise TypeError("refined_log_delta_bernoulli needs a deterministic grid (FixedGrid or SizeAdaptiveGrid)")
    e = _bernoulli_grid_boundaries(n, p, grid)
    e = e[(e > 0) & (e < n - 1)]
    if e.size == 0:
        return -math.inf
    tau = e / (n - 1)
    values = (math.log(2 * p * (1 - p)) - (n - 1) * bernoulli_rate(tau, p)
              - 0.5 * np.log(2 * math.pi * (n - 1) * tau * (1 - tau)))
    return float(np.max(values))


def unquantized_delta_asymptotic(n, model: str = "gaussian", p: float = 0.5):
    """Leading term of Delta_n without quantization: ``1/(pi sqrt n)`` (Gaussian: ``TV ~ rho E|XY| / 2``) and
    ``sqrt(2 p (1-p) / (pi n))`` (Bernoulli: ``2 p (1 - p)`` times the binomial's largest pmf)."""
    n = np.asarray(n, dtype=float)
    check_choice("model", model, {"gaussian", "bernoulli"})
    if model == "gaussian":
        return 1 / (math.pi * np.sqrt(n))
    return np.sqrt(2 * p * (1 - p) / (math.pi * n))


def stochastic_rounding_delta_asymptotic(n, step: float, mean_absolute_deviation: float):
    """``Delta_n ~ E|Z - theta*| / (n step)`` for stochastic rounding once theta_hat stays between two levels:
    P(up) is linear in theta_hat there, so the law of R only sees the conditional mean, which Z_1 = z shifts by
    ``(z - theta*) / n``. ``E|Z - theta*|`` is ``sigma sqrt(2/pi)`` (Gaussian) or ``2 p (1 - p)`` (Bernoulli)."""
    return mean_absolute_deviation / (np.asarray(n, dtype=float) * step)


def sr_deterministic_crossover(mu: float, sigma: float, step: float, n_max: int = 10_000) -> int | None:
    """First sample size from which round-to-nearest on ``step Z`` leaks less than stochastic rounding on the same
    grid (Gaussian mean), assuming one crossing: scanned on a geometric grid, then bisected on the integers.
    None if stochastic rounding still leaks less at ``n_max``; 1 if it never leaks less."""
    n_max = check_int("n_max", n_max, minimum=2)

    def sr_wins(n):
        n = int(n)
        return (exact_gaussian_mean(n, mu, sigma, StochasticRounding(step)).log_delta
                < exact_gaussian_mean(n, mu, sigma, FixedGrid(step)).log_delta)

    if sr_wins(n_max):
        return None
    scan = np.unique(np.round(np.geomspace(1, n_max, 40)).astype(int))
    wins = [sr_wins(n) for n in scan]
    if not any(wins):
        return 1
    last = max(i for i, w in enumerate(wins) if w)
    low, high = int(scan[last]), int(scan[last + 1])  # SR wins at low, loses at high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if sr_wins(middle) else (low, middle)
    return high


# ----------------------------------------------------------------------------------------------------------
# Several coordinates and data-dependent scales
# ----------------------------------------------------------------------------------------------------------

def gaussian_product_bounds(n: int, mus, sigmas, quantizers) -> DeltaBounds:
    """Bounds on Delta_n for d independent Gaussian means released coordinatewise, ``R = (Q_k(theta_hat_k))``
    (data ``Z_i`` with independent coordinates). The joint and product laws factorise over coordinates, so
    ``max_k Delta_k <= Delta_n <= sum_k Delta_k`` (marginalising cannot raise TV; TV of products is
    subadditive): a bracket at most a factor d wide, tight in the exponent. The rate is ``min_k r_k``: the
    nearest face in standard units wins."""
    n = check_int("n", n, minimum=1)
    mus = np.atleast_1d(np.asarray(mus, dtype=float))
    sigmas = np.broadcast_to(np.asarray(sigmas, dtype=float), mus.shape)
    if not isinstance(quantizers, (list, tuple)):
        quantizers = [quantizers] * mus.size
    if len(quantizers) != mus.size:
        raise ValueError(f"quantizers: need one per coordinate ({mus.size}), got {len(quantizers)}")
    logs = np.array([exact_gaussian_mean(n, float(m), float(s), q).log_delta
                     for m, s, q in zip(mus, sigmas, quantizers)])
    return DeltaBounds(n, float(logs.max()), float(special.logsumexp(logs)),
                       f"{mus.size} independent Gaussian means, n={n}", {"log_delta_coordinates": logs.tolist()})


def _sign_event_log_bound(n: int, mus: np.ndarray, sigma: float, statistic: str) -> float:
    """log of a bound on P(E^c): E is the event on which the scale equals a linear statistic of theta_hat
    (absmean: every theta_hat_k has the sign of mu_k; absmax: moreover the largest |mu_k| stays the largest)."""
    root_n = math.sqrt(n)
    terms = list(log_normal_tail(np.abs(mus) * root_n / sigma))
    if statistic == "absmax":
        top = int(np.argmax(np.abs(mus)))
        for k, m in enumerate(mus):
            if k != top:
                terms.append(float(log_normal_tail((abs(mus[top]) - m) * root_n / (sigma * math.sqrt(2)))))
                terms.append(float(log_normal_tail((abs(mus[top]) + m) * root_n / (sigma * math.sqrt(2)))))
    return float(special.logsumexp(terms))


def _scale_statistic(mus: np.ndarray, sigma: float, statistic: str) -> tuple[float, float]:
    """On E the scale is the mean of Y_i = w . Z_i: return its population value and per-sample sd."""
    if statistic == "absmax":
        return float(np.max(np.abs(mus))), sigma
    return float(np.mean(np.abs(mus))), sigma / math.sqrt(mus.size)


def float_scale_leak(n: int, mus, sigma: float, statistic: str = "absmax") -> DeltaBounds:
    """Delta_n of releasing a learned float scale alone (absmax ``max_k |theta_hat_k|`` or absmean
    ``mean_k |theta_hat_k|`` of d independent Gaussian means): a lower bound on the Delta_n of any release that
    includes it (data processing).

    On an event E of probability ``1 - exp(-c n)`` the scale is a linear statistic ``mean_i w . Z_i`` (``w`` picks
    the largest coordinate with its sign, or averages the signs), i.e. a 1-d Gaussian mean whose Delta_n is the
    unquantized value (it depends on n only). Off E the two releases differ, so
    ``|Delta_scale - Delta_identity(n)| <= 2 P(E^c)``; both ends are returned. Continuous statistic:
    ``Theta(n^-1/2)`` whatever the weights do."""
    n = check_int("n", n, minimum=1)
    statistic = check_choice("statistic", statistic, {"absmax", "absmean"})
    mus = np.atleast_1d(np.asarray(mus, dtype=float))
    sigma = check_float("sigma", sigma, low=0.0, low_open=True)
    log_core = math.log(_gaussian_identity_delta(n))
    log_slack = math.log(2.0) + _sign_event_log_bound(n, mus, sigma, statistic)
    lower = log_core + float(log1mexp(log_slack - log_core)) if log_core > log_slack else -math.inf
    upper = min(0.0, float(np.logaddexp(log_core, log_slack)))
    return DeltaBounds(n, lower, upper, f"float {statistic} scale of {mus.size} Gaussian means, n={n}",
                       {"log_delta_identity": log_core, "log_p_event_fails": log_slack - math.log(2.0)})


def absmax_weight_thresholds(scale: float, bits: int) -> np.ndarray:
    """Decision thresholds of symmetric b-bit absmax rounding with scale s: levels s j / L, j = -L..L,
    L = 2^(b-1) - 1, values beyond +-s clamped to the end levels."""
    levels = 2 ** (bits - 1) - 1
    return (np.arange(-levels, levels) + 0.5) * scale / levels


def stored_scale_release_bounds(n: int, mus, sigma: float, *, bits: int = 4, scale_step: float = 2 ** -5,
                                statistic: str = "absmax") -> DeltaBounds:
    """Bounds on Delta_n of the full release (b-bit symmetric weights, scale stored on the fixed grid
    ``scale_step Z``) for d independent Gaussian means.

    Upper: ``Delta_n <= 2 P(R != R*)`` with ``R*`` the release at ``theta*``, and ``P(R != R*) <= P(E^c) +
    P(stored scale changes) + sum_k P(weight k leaves its cell on the grid of the stored scale)``: Gaussian tails.
    Lower: the stored scale alone, ``>= Delta_1d(scale statistic on its grid) - 2 P(E^c)`` (exact 1-d value).
    Both decay exponentially with rate ``min(scale margin rate, weight margin rates)``."""
    n = check_int("n", n, minimum=1)
    bits = check_int("bits", bits, minimum=2)
    scale_step = check_float("scale_step", scale_step, low=0.0, low_open=True)
    statistic = check_choice("statistic", statistic, {"absmax", "absmean"})
    mus = np.atleast_1d(np.asarray(mus, dtype=float))
    sigma = check_float("sigma", sigma, low=0.0, low_open=True)
    scale_star, scale_sd = _scale_statistic(mus, sigma, statistic)
    storage = FixedGrid(scale_step)
    stored_star = float(storage(torch.tensor(scale_star, dtype=torch.float64)))
    log_event = _sign_event_log_bound(n, mus, sigma, statistic)
    scale_margins = grid_margins_around(scale_star, storage)
    root_n = math.sqrt(n)
    log_scale_moves = special.logsumexp(log_normal_tail(np.array(scale_margins) * root_n / scale_sd))
    thresholds = absmax_weight_thresholds(stored_star, bits)
    weight_terms = []
    for m in mus:
        below, above = thresholds[thresholds < m], thresholds[thresholds > m]
        if below.size:
            weight_terms.append(float(log_normal_tail((m - below.max()) * root_n / sigma)))
        if above.size:
            weight_terms.append(float(log_normal_tail((above.min() - m) * root_n / sigma)))
    log_cross = special.logsumexp([log_event, log_scale_moves] + weight_terms)
    log_upper = min(0.0, math.log(2.0) + float(log_cross))
    one_d = exact_gaussian_mean(n, scale_star, scale_sd, storage).log_delta
    slack = math.log(2.0) + log_event
    log_lower = one_d + float(log1mexp(slack - one_d)) if one_d > slack else -math.inf
    rates = {"scale_rate": gaussian_rate(min(scale_margins), scale_sd),
             "weight_rate": min(gaussian_rate(min(abs(m - thresholds)), sigma) for m in mus)}
    return DeltaBounds(n, float(log_lower), float(log_upper),
                       f"{bits}-bit weights + {statistic} scale stored on step {scale_step:g}, n={n}",
                       {"log_delta_stored_scale_alone": one_d, **rates})


# ----------------------------------------------------------------------------------------------------------
# The membership game, simulated
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GameResult:
    """Empirical accuracy of the Bayes-optimal attack over ``n_games`` balanced games, with a Wilson interval,
    beside the exact value ``(1 + Delta_n) / 2``."""

    n: int
    n_games: int
    accuracy: float
    ci_low: float
    ci_high: float
    exact_accuracy: float
    exact_log_delta: float
    confidence: float
    description: str

    @property
    def advantage(self) -> float:
        return 2 * self.accuracy - 1

    @property
    def z_score(self) -> float:
        se = math.sqrt(max(self.exact_accuracy * (1 - self.exact_accuracy), 1e-300) / self.n_games)
        return (self.accuracy - self.exact_accuracy) / se

    @property
    def consistent(self) -> bool:
        return self.ci_low <= self.exact_accuracy <= self.ci_high


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    successes = check_int("successes", successes, minimum=0)
    trials = check_int("trials", trials, minimum=max(1, successes))
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    phat = successes / trials
    denominator = 1 + z * z / trials
    centre = (phat + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / denominator
    # The interval always contains phat; clip the rounding at 0 and 1 (at phat = 1 the upper end is exactly 1).
    return max(0.0, min(centre - half, phat)), min(1.0, max(centre + half, phat))


def _gaussian_game_guesses(n, mu, sigma, grid, theta, target, generator):
    """Bayes-optimal guess (1 = member) from the release of theta and the target, exactly."""
    scale = math.sqrt(n) / sigma
    x = (theta - mu) * scale
    u = (target - mu) / sigma
    rho, s = 1 / math.sqrt(n), math.sqrt(1 - 1 / n)
    if grid is None:
        if n == 1:
            return theta == target
        log_cond = -0.5 * ((x - rho * u) / s) ** 2 - math.log(s)
        return log_cond > -0.5 * x ** 2
    release = grid(torch.as_tensor(theta, dtype=torch.float64), generator=generator).numpy()
    if isinstance(grid, StochasticRounding):
        level = (release - mu) * scale
        width = grid.step * scale
        cond = tent_expectation(rho * u, s if n > 1 else 0.0, level, width)
        return cond > tent_expectation(0.0, 1.0, level, width)
    low = (release - grid.step / 2 - mu) * scale
    high = (release + grid.step / 2 - mu) * scale
    log_marginal = log_interval_prob(low, high)
    if n == 1:
        same = grid(torch.as_tensor(target, dtype=torch.float64)).numpy() == release
        return same & (log_marginal < 0)
    return log_interval_prob((low - rho * u) / s, (high - rho * u) / s) > log_marginal


def _bernoulli_game_guesses(n, p, grid, k_total, target, generator):
    """Bernoulli: P(R = r | z = 1) - P(R = r) = (1 - p) D_r and P(R = r | z = 0) - P(R = r) = -p D_r with
    D_r = P(R(K' + 1) = r) - P(R(K') = r); the optimal guess is the sign of D_r, flipped for z = 0."""
    log_b = lambda k: stats.binom.logpmf(k, n - 1, p)  # noqa: E731  (-inf outside 0..n-1)
    if grid is None:
        positive = log_b(k_total - 1) > log_b(k_total)
        negative = log_b(k_total - 1) < log_b(k_total)
    elif isinstance(grid, StochasticRounding):
        release = grid(torch.as_tensor(k_total / n, dtype=torch.float64), generator=generator).numpy()
        k = np.arange(n)
        weight = stats.binom.pmf(k, n - 1, p)
        diff = {}
        index = np.round((release - grid.offset) / grid.step).astype(np.int64)
        levels = np.unique(index)
        for shift, sign in ((1, 1.0), (0, -1.0)):
            position = ((k + shift) / n - grid.offset) / grid.step
            for lvl in levels:
                tent = np.maximum(1 - np.abs(position - lvl), 0.0)
                diff[lvl] = diff.get(lvl, 0.0) + sign * float(np.dot(weight, tent))
        d = np.array([diff[i] for i in index])
        positive, negative = d > 0, d < 0
    else:
        k = np.arange(n + 1)
        _, cell = np.unique(_bernoulli_levels(grid, k, n), return_inverse=True)
        first = np.full(cell.max() + 1, n + 1)
        last = np.full(cell.max() + 1, -1)
        np.minimum.at(first, cell, k)
        np.maximum.at(last, cell, k)
        c = cell[k_total]
        low_side, high_side = log_b(first[c] - 1), log_b(last[c])
        positive, negative = low_side > high_side, low_side < high_side
    return np.where(target == 1, positive, negative)


def simulate_membership_game(n: int, model: str = "gaussian", *, mu: float = 0.0, sigma: float = 1.0,
                             p: float = 0.5, quantizer=None, n_games: int = 10_000, seed: int = 0,
                             confidence: float = 0.95) -> GameResult:
    """Play ``n_games`` balanced membership games and score the Bayes-optimal attack.

    Each game: a training set (drawn through its sufficient statistic: ``Z_1`` and the sum of the other n-1),
    the release ``R = Q(theta_hat)``, a fair coin ``T``, the target ``Z_1`` (T = 1, member) or a fresh ``Z_0``
    (T = 0); the attack says "member" iff ``p(R | Z_1 = target) > p(R)``, computed exactly. The accuracy should
    match ``(1 + Delta_n) / 2`` within the interval."""
    n = check_int("n", n, minimum=1)
    model = check_choice("model", model, {"gaussian", "bernoulli"})
    n_games = check_int("n_games", n_games, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    grid = _grid_at(_check_quantizer(quantizer), n)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    member = rng.random(n_games) < 0.5
    if model == "gaussian":
        exact = exact_gaussian_mean(n, mu, sigma, quantizer)
        z1 = rng.normal(mu, sigma, n_games)
        rest = rng.normal((n - 1) * mu, math.sqrt(n - 1) * sigma, n_games) if n > 1 else np.zeros(n_games)
        theta = (z1 + rest) / n if n > 1 else z1.copy()
        target = np.where(member, z1, rng.normal(mu, sigma, n_games))
        guess = _gaussian_game_guesses(n, mu, sigma, grid, theta, target, generator)
    else:
        exact = exact_bernoulli_mean(n, p, quantizer)
        z1 = (rng.random(n_games) < p).astype(np.int64)
        k_total = z1 + rng.binomial(n - 1, p, n_games)
        target = np.where(member, z1, (rng.random(n_games) < p).astype(np.int64))
        guess = _bernoulli_game_guesses(n, p, grid, k_total, target, generator)
    wins = int(np.sum(guess == member))
    low, high = wilson_interval(wins, n_games, confidence)
    return GameResult(n, n_games, wins / n_games, low, high, exact.bayes_accuracy, exact.log_delta, confidence,
                      exact.description)


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
    grid = _grid_at(_check_quantizer(quantizer), n)
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
    grid = _grid_at(_check_quantizer(quantizer), n)
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
            levels = _bernoulli_levels(grid, k, n)
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


# The theory tables moved to mislib.studies.theory (mislib 0.2); the old names stay for one release.
_MOVED_TO_THEORY = ("SCALE_EXAMPLE", "MULTIDIM_EXAMPLE", "theory_rates_config", "fit_rate", "theory_rates_table",
                    "game_configurations", "membership_game_table")


def __getattr__(name):
    if name in _MOVED_TO_THEORY:
        import importlib
        import warnings

        warnings.warn(f"mislib.mis.{name} moved to mislib.studies.theory.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module("mislib.studies.theory"), name)
    raise AttributeError(f"module 'mislib.mis' has no attribute {name!r}")
