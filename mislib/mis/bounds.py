"""Several coordinates and data-dependent scales: brackets on ``Delta_n`` from one-coordinate exact values."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special

from mislib.infra.checks import check_choice, check_float, check_int
from mislib.quantizers import FixedGrid
from mislib.mis.exact import exact_gaussian_mean, gaussian_identity_delta
from mislib.mis.numerics import DeltaBounds, log1mexp
from mislib.mis.rates import gaussian_rate, grid_margins_around, log_normal_tail


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
    log_core = math.log(gaussian_identity_delta(n))
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
