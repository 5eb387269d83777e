"""Rates of ``Delta_n`` (THEORY.md §2) and the refined predictions with their second-order terms."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from mislib.infra.checks import check_choice, check_float, check_int
from mislib.quantizers import FixedGrid, StochasticRounding
from mislib.mis.exact import bernoulli_grid_boundaries, exact_gaussian_mean
from mislib.mis.numerics import LOG_SQRT_2PI, check_quantizer, grid_at, log_normal_pdf


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
    weight_u = np.exp(log_normal_pdf(u)) * (u[1] - u[0])
    out = []
    for size in n_array:
        a = margins * math.sqrt(size) / sigma
        log_p = log_normal_tail(a)
        b = np.exp(log_normal_pdf(a) - log_p) / math.sqrt(size)
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
    grid = grid_at(check_quantizer(quantizer), n)
    if not isinstance(grid, FixedGrid):
        raise TypeError("refined_log_delta_bernoulli needs a deterministic grid (FixedGrid or SizeAdaptiveGrid)")
    e = bernoulli_grid_boundaries(n, p, grid)
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
