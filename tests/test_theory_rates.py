"""Every regime of THEORY.md §2, checked on exact values: limits and slopes, not agreement at small n (the
exponents converge like 1 + O(log(n r) / (n r)))."""

import math

import numpy as np
import pytest

from mislib import mis
from mislib.studies import theory
from mislib.quantizers import FixedGrid, SizeAdaptiveGrid, StochasticRounding


def slope(ns, log_deltas):
    return float(np.polyfit(np.log(ns), log_deltas, 1)[0])


def test_unquantized_is_one_over_pi_root_n():
    ns = [10 ** 4, 10 ** 5, 10 ** 6]
    logs = [mis.exact_gaussian_mean(n, 0.0, 1.0).log_delta for n in ns]
    # Delta_n = rho/pi (1 + O(1/n)): slope -1/2 to 1e-4 and the constant to 1e-5 at n = 1e6.
    assert slope(ns, logs) == pytest.approx(-0.5, abs=1e-4)
    assert math.exp(logs[-1]) * math.pi * 1e3 == pytest.approx(1.0, abs=1e-5)
    b = [mis.exact_bernoulli_mean(n, 0.3).log_delta for n in ns]
    assert slope(ns, b) == pytest.approx(-0.5, abs=1e-4)
    assert math.exp(b[-1]) / mis.unquantized_delta_asymptotic(ns[-1], "bernoulli", 0.3) == pytest.approx(1, abs=1e-4)


def test_dimension_scales_like_root_d():
    # Delta ~ rho E|sum_k U_k X_k| / 2, which grows like sqrt(d): (2/pi) at d=1, sqrt(2d/pi) for large d.
    n = 10 ** 5
    for d in (1, 4, 16):
        value = mis.exact_gaussian_vector_mean(n, d).delta
        assert value == pytest.approx(mis.mean_abs_product_sum(d) / (2 * math.sqrt(n)), rel=1e-3)
    ratio = mis.exact_gaussian_vector_mean(n, 64).delta * math.sqrt(2 * math.pi * n / 64)
    assert ratio == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("mu, rate", [(0.3, 0.02), (0.15, 0.06125)])
def test_fixed_grid_gaussian_rate_is_the_large_deviation_rate(mu, rate):
    ns = np.array([4000, 6000, 8000])
    logs = np.array([mis.exact_gaussian_mean(int(n), mu, 1.0, FixedGrid(1.0)).log_delta for n in ns])
    # With the known -(1/2) log n term removed the local slope is r + O(1/n^2); 1e-3 relative is generous.
    fitted = theory.fit_rate(ns, logs, "exponential")
    assert fitted == pytest.approx(rate, rel=1e-3)
    # the raw ratio -log Delta / (n r) still carries the log term: above 1, shrinking towards it
    ratios = -logs / (ns * rate)
    assert np.all(ratios > 1) and np.all(np.diff(ratios) < 0) and ratios[-1] < 1.05


def test_fixed_grid_bernoulli_rate_is_the_binary_kl_not_the_variance():
    p, grid = 0.1, FixedGrid(0.5)  # one threshold at 0.25
    ns = np.array([20000, 30000, 40000])
    logs = np.array([mis.exact_bernoulli_mean(int(n), p, grid).log_delta for n in ns])
    fitted = theory.fit_rate(ns, logs, "exponential")
    kl = mis.bernoulli_rate(0.25, p)
    variance = mis.gaussian_rate(0.15, math.sqrt(p * (1 - p)))
    # Lattice effects are O(1/n) per unit n: 1e-3 relative is safe and 35x tighter than the KL-variance gap.
    assert fitted == pytest.approx(kl, rel=1e-3)
    assert variance / kl > 1.3


def test_equal_margins_do_not_give_equal_bernoulli_rates():
    # p = 0.3, thresholds 0.1 and 0.5 (margins 0.2 both): the variance predicts a tie, the KL picks the upper one.
    p, grid = 0.3, FixedGrid(0.4, 0.3)
    ns = np.array([20000, 30000, 40000])
    fitted = theory.fit_rate(ns, [mis.exact_bernoulli_mean(int(n), p, grid).log_delta for n in ns], "exponential")
    assert fitted == pytest.approx(mis.bernoulli_rate(0.5, p), rel=1e-3)
    assert mis.bernoulli_rate(0.1, p) > 1.3 * mis.bernoulli_rate(0.5, p)


def test_refined_prediction_error_shrinks_like_one_over_n():
    # -log Delta_n = n r + (1/2) log n + O(1); the refined formula captures the O(1) term, leaving O(1/n).
    errors = []
    for n in (100, 1000, 10000):
        exact = mis.exact_gaussian_mean(n, 0.3, 1.0, FixedGrid(1.0)).log_delta
        errors.append(abs(mis.refined_log_delta_gaussian(n, [0.2, 0.8], 1.0) - exact))
        assert abs(mis.second_order_log_delta_gaussian(n, 0.2, 1.0) - exact) < 0.5 / n
    assert errors[0] < 0.01 and errors[1] < errors[0] / 5 and errors[2] < errors[1] / 5


def test_on_threshold_loses_the_exponential_gain():
    ns = [10 ** 3, 10 ** 4, 10 ** 5]
    logs = [mis.exact_gaussian_mean(n, 0.5, 1.0, FixedGrid(1.0)).log_delta for n in ns]
    assert slope(ns, logs) == pytest.approx(-0.5, abs=1e-3)
    # The one-bit release at the median leaks as much as the whole mean, to first order (both rho/pi).
    assert math.exp(logs[-1]) / mis.exact_gaussian_mean(ns[-1], 0.0, 1.0).delta == pytest.approx(1, abs=1e-3)


def test_stochastic_rounding_is_one_over_n_and_crosses_deterministic_rounding():
    ns = [10 ** 3, 10 ** 4, 10 ** 5]
    logs = [mis.exact_gaussian_mean(n, 0.3, 1.0, StochasticRounding(1.0)).log_delta for n in ns]
    assert slope(ns, logs) == pytest.approx(-1.0, abs=1e-3)
    # Once theta_hat stays between two levels Delta = E|Z - theta*| / (n step) up to exponentially small terms.
    assert math.exp(logs[-1]) == pytest.approx(math.sqrt(2 / math.pi) / ns[-1], rel=1e-6)
    b = mis.exact_bernoulli_mean(10 ** 4, 0.1, StochasticRounding(0.5)).delta
    assert b == pytest.approx(2 * 0.1 * 0.9 / (10 ** 4 * 0.5), rel=1e-6)
    crossover = mis.sr_deterministic_crossover(0.3, 1.0, 1.0, n_max=1000)
    assert crossover is not None and 10 < crossover < 200  # seen: 55
    small, large = crossover - 1, crossover + 20
    sr = lambda n: mis.exact_gaussian_mean(n, 0.3, 1.0, StochasticRounding(1.0)).log_delta  # noqa: E731
    det = lambda n: mis.exact_gaussian_mean(n, 0.3, 1.0, FixedGrid(1.0)).log_delta  # noqa: E731
    assert sr(small) < det(small) and sr(large) > det(large)


def aligned(mu, h0, alpha, n):
    step = SizeAdaptiveGrid(h0, alpha).step_at(n)
    return SizeAdaptiveGrid(h0, alpha, offset=mu - 0.3 * step - step / 2)


def test_size_adaptive_exponent_is_n_r_q():
    # Moderate deviations: -log Delta / (n r_Q^n) -> 1, slowly (log terms): 1.06 at n r = 45, 1.006 at 450.
    ratios = []
    for n in (10 ** 6, 10 ** 8, 10 ** 10):
        r = mis.gaussian_rate(0.3 * n ** -0.25, 1.0)
        log_delta = mis.exact_gaussian_mean(n, 0.0, 1.0, aligned(0.0, 1.0, 0.25, n)).log_delta
        ratios.append(-log_delta / (n * r))
    assert np.all(np.diff(ratios) < 0) and 1 < ratios[-1] < 1.01
    # Bernoulli: only the variance matters in this regime (the KL rate and the variance rate merge).
    p = 0.3
    n = 10 ** 10
    margin = 0.3 * 0.5 * n ** -0.25
    log_delta = mis.exact_bernoulli_mean(n, p, aligned(p, 0.5, 0.25, n)).log_delta
    assert -log_delta / (n * mis.gaussian_rate(margin, math.sqrt(p * (1 - p)))) == pytest.approx(1, abs=0.01)


def test_unaligned_size_adaptive_tracks_the_actual_margin():
    grid = SizeAdaptiveGrid(1.0, 0.25)
    for n in (2154, 10 ** 4, 464159):  # sizes where mu = 0.3 happens to sit well inside its cell (n r >= 4)
        margin = min(mis.grid_margins_around(0.3, grid.at(n)))
        exponent = n * mis.gaussian_rate(margin, 1.0)
        log_delta = mis.exact_gaussian_mean(n, 0.3, 1.0, grid).log_delta
        predicted = mis.refined_log_delta_gaussian(n, mis.grid_margins_around(0.3, grid.at(n)), 1.0)
        assert exponent > 4 and log_delta < -exponent
        # the refined prediction uses the actual margins (both thresholds, which tie at n = 10^4)
        assert log_delta == pytest.approx(predicted, abs=0.01)


def test_float_scale_leaks_at_root_n_and_stored_scale_is_exponential():
    ex = theory.SCALE_EXAMPLE
    ns = [10 ** 3, 10 ** 4, 10 ** 5]
    for statistic in ("absmax", "absmean"):
        leak = [mis.float_scale_leak(n, ex["mus"], ex["sigma"], statistic) for n in ns]
        assert all(b.log_upper - b.log_lower < 1e-9 for b in leak)  # the bracket is exact here
        assert slope(ns, [b.log_delta for b in leak]) == pytest.approx(-0.5, abs=1e-3)
    stored_ns = np.array([40000, 60000, 80000])
    stored = [mis.stored_scale_release_bounds(int(n), ex["mus"], ex["sigma"], bits=ex["bits"],
                                              scale_step=ex["scale_step"]) for n in stored_ns]
    rate = min(stored[0].parts["scale_rate"], stored[0].parts["weight_rate"])
    for side in ("log_lower", "log_upper"):
        fitted = theory.fit_rate(stored_ns, [getattr(b, side) for b in stored], "exponential")
        assert fitted == pytest.approx(rate, rel=0.01)
    # ... and far below the float-scale leak
    assert stored[-1].log_upper < mis.float_scale_leak(80000, ex["mus"], ex["sigma"]).log_lower - 100


def test_theory_table_has_every_regime_and_its_fits():
    config = {"n_power": [16, 64, 256, 1024, 4096], "n_exponential": [400, 1600, 6400],
              "n_moderate": [10 ** 6, 10 ** 8, 10 ** 10], "n_unaligned": [100, 1000, 10000]}
    table = theory.theory_rates_table(config)
    expected = {"unquantized", "unquantized_dimension", "fixed_grid", "on_threshold", "stochastic_rounding",
                "size_adaptive_aligned", "size_adaptive_unaligned", "multidim_nearest_face",
                "learned_scale_float", "learned_scale_stored", "learned_scale_public"}
    assert set(table["regime"]) == expected
    for column in ("regime", "parameters", "sample_size", "log_delta", "predicted_rate", "fitted_rate",
                   "local_rate", "refined_log_delta", "log_delta_lower", "log_delta_upper"):
        assert column in table.columns
    firsts = table.groupby(["regime", "configuration"]).first()
    power = firsts[firsts["rate_kind"] == "power"]
    assert np.allclose(power["fitted_rate"], power["predicted_rate"], rtol=0.03)
    exact_exp = firsts[(firsts["rate_kind"] == "exponential")
                       & ~firsts.index.get_level_values(0).isin(["learned_scale_stored"])]
    assert np.allclose(exact_exp["fitted_rate"], exact_exp["predicted_rate"], rtol=0.01)
