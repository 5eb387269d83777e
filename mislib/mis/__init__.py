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
the refined predictions with their second-order terms used in the figures. 
Layout (one module per concept): ``numerics`` (result types, log-space helpers), ``exact`` (the 1-d Gaussian and
Bernoulli exact values), ``rates``, ``bounds`` (several coordinates, data-dependent scales), ``multivariate``
(exact ``Delta_n`` of a d-dimensional Gaussian mean on a product grid), ``game`` (the simulated membership game),
``reference`` (mpmath references). Every public name is available as ``mislib.mis.<name>``.
"""

from __future__ import annotations

from mislib.mis.numerics import (  # noqa: F401
    DeltaBounds, ExactMIS, LOG_HALF, LOG_SQRT_2PI, MAX_CELLS, TAIL_LOG, U_WINDOW, describe_quantizer, log1mexp,
    log_interval_prob, log_outside_prob, tent_expectation)
from mislib.mis.exact import (  # noqa: F401
    exact_bernoulli_mean, exact_gaussian_mean, exact_gaussian_vector_mean, mean_abs_product_sum)
from mislib.mis.rates import (  # noqa: F401
    bernoulli_rate, chernoff_rate, gaussian_rate, grid_margins_around, log_normal_tail, refined_log_delta_bernoulli,
    refined_log_delta_gaussian, second_order_log_delta_gaussian, second_order_log_tail, sr_deterministic_crossover,
    stochastic_rounding_delta_asymptotic, unquantized_delta_asymptotic)
from mislib.mis.bounds import (  # noqa: F401
    absmax_weight_thresholds, float_scale_leak, gaussian_product_bounds, stored_scale_release_bounds)
from mislib.mis.game import (  # noqa: F401
    GameResult, simulate_membership_game, wilson_interval)
from mislib.mis.reference import (  # noqa: F401
    reference_bernoulli_log_delta, reference_gaussian_log_delta)
from mislib.mis.multivariate import exact_gaussian_pair_delta, exact_gaussian_product_delta  # noqa: F401

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
