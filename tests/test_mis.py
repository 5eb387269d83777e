"""Exact Delta_n = 1 - MIS_n (mislib.mis): accuracy against independent brute force, finiteness far below the
smallest double, the simulated game against the exact value, closed forms, and bad inputs."""

import math

import numpy as np
import pytest
from scipy import special, stats

from mislib import mis
from mislib.studies import theory
from mislib.quantizers import FixedGrid, Identity, SizeAdaptiveGrid, StochasticRounding


# ---------------------------------------------------------------- accuracy against 30-digit brute force (mpmath)

@pytest.mark.parametrize("n, mu, quantizer, dps", [
    (2000, 0.3, FixedGrid(1.0), 35),          # Delta ~ 3e-20: CDF differences in doubles would give 0 or noise,
                                              # so the reference needs 20 digits just for the bulk cell
    (160, 0.1, FixedGrid(0.5, 0.05), 25),     # two thresholds matter
    (5, 0.0, None, 25),                       # continuous release
    (400, 0.1, StochasticRounding(1.0), 25),  # randomised release
])
def test_gaussian_log_delta_matches_mpmath(n, mu, quantizer, dps):
    fast = mis.exact_gaussian_mean(n, mu, 1.0, quantizer).log_delta
    slow = mis.reference_gaussian_log_delta(n, mu, 1.0, quantizer, scan_points=150, dps=dps)
    # The engine's quadrature is accurate to ~1e-12 relative (seen: 1e-14); 1e-9 leaves room for the reference's
    # own tolerance while still catching any real error (a wrong cell, window or root moves log Delta by >1e-6).
    assert fast == pytest.approx(slow, abs=1e-9)


@pytest.mark.parametrize("n, p, quantizer", [
    (1, 0.3, None), (100, 0.3, None), (200, 0.1, FixedGrid(0.5)), (64, 0.25, FixedGrid(1 / 8)),  # k/n on ties
    (13, 0.37, FixedGrid(0.1, 0.03)), (30, 0.3, StochasticRounding(0.25)), (100, 0.3, SizeAdaptiveGrid(0.5, 0.25)),
])
def test_bernoulli_closed_form_matches_enumeration(n, p, quantizer):
    fast = mis.exact_bernoulli_mean(n, p, quantizer).log_delta
    slow = mis.reference_bernoulli_log_delta(n, p, quantizer)
    assert fast == pytest.approx(slow, abs=1e-10)


# ---------------------------------------------------------------- finite far below 1e-308, on the prediction

@pytest.mark.parametrize("n", [10 ** 4, 10 ** 5, 10 ** 6])
def test_tiny_delta_is_finite_and_on_the_refined_prediction(n):
    # theta* 0.2 sigma from the nearest threshold: log Delta ~ -n 0.02 (-200, -2000, -20000).
    result = mis.exact_gaussian_mean(n, 0.3, 1.0, FixedGrid(1.0))
    assert math.isfinite(result.log_delta) and result.log_delta < -0.02 * n
    if n >= 10 ** 5:
        assert result.delta == 0.0 and result.mis == 1.0  # underflow is expected; log_delta carries the number
    predicted = mis.refined_log_delta_gaussian(n, [0.2, 0.8], 1.0)
    # The asymptotic formula's error is O(n^-1) (0.0025 at 1e4, 0.00025 at 1e5): 30/n is a safe envelope.
    assert abs(result.log_delta - predicted) < 30 / n
    # and to first order the exponent is n r + (1/2) log n + O(1)
    assert abs(-result.log_delta - 0.02 * n - 0.5 * math.log(n)) < 3


def test_log_delta_of_a_tiny_bernoulli_release_is_finite():
    result = mis.exact_bernoulli_mean(10 ** 6, 0.1, FixedGrid(0.5))
    assert math.isfinite(result.log_delta)
    assert result.log_delta == pytest.approx(-(10 ** 6) * mis.bernoulli_rate(0.25, 0.1), rel=1e-4)


# ---------------------------------------------------------------- closed forms and structural facts

def test_unquantized_gaussian_value_depends_on_n_only_and_n1_is_total_leak():
    a = mis.exact_gaussian_mean(37, 0.0, 1.0).log_delta
    b = mis.exact_gaussian_mean(37, -4.0, 9.0, Identity()).log_delta
    assert a == b
    assert mis.exact_gaussian_mean(1, 0.0, 1.0).delta == 1.0


def test_n1_grid_is_one_minus_sum_of_squares():
    p = np.diff(stats.norm.cdf(np.arange(-12.5, 13.5, 1.0), loc=0.3))
    assert mis.exact_gaussian_mean(1, 0.3, 1.0, FixedGrid(1.0)).delta == pytest.approx(1 - np.sum(p ** 2), rel=1e-12)
    assert mis.exact_bernoulli_mean(1, 0.3).delta == pytest.approx(2 * 0.3 * 0.7, rel=1e-14)


def test_vector_mean_in_dimension_one_matches_the_scalar_engine():
    for n in (2, 10, 1000):
        assert mis.exact_gaussian_vector_mean(n, 1).log_delta == pytest.approx(
            mis.exact_gaussian_mean(n, 0.0, 1.0).log_delta, abs=1e-8)


@pytest.mark.parametrize("n", [2, 7, 50, 400])
def test_post_processing_never_lowers_mis(n):
    free = mis.exact_gaussian_mean(n, 0.0, 1.0).log_delta
    for quantizer in (FixedGrid(1.0), FixedGrid(0.1, 0.03), StochasticRounding(0.5), SizeAdaptiveGrid(1.0, 0.3)):
        for mu in (0.3, 0.5):
            assert mis.exact_gaussian_mean(n, mu, 1.0, quantizer).log_delta <= free + 1e-12
    free_b = mis.exact_bernoulli_mean(n, 0.3).log_delta
    for quantizer in (FixedGrid(0.25), StochasticRounding(0.1)):
        assert mis.exact_bernoulli_mean(n, 0.3, quantizer).log_delta <= free_b + 1e-12


def test_bernoulli_threshold_at_the_mode_leaks_exactly_as_much_as_no_quantization():
    # Delta = 2 p (1-p) max_e P(K' = e): a boundary at the binomial's mode attains the unquantized maximum.
    for n in (10, 64, 1000):
        assert mis.exact_bernoulli_mean(n, 0.5, FixedGrid(1.0)).log_delta == pytest.approx(
            mis.exact_bernoulli_mean(n, 0.5).log_delta, abs=1e-12)


def test_constant_release_has_no_leak():
    assert mis.exact_bernoulli_mean(10, 0.3, FixedGrid(5.0)).log_delta == -math.inf


def test_result_fields():
    r = mis.exact_gaussian_mean(100, 0.3, 1.0, FixedGrid(1.0))
    assert r.n == 100 and "fixed grid" in r.description
    assert r.mis == pytest.approx(1 - r.delta) and r.log10_delta == pytest.approx(math.log10(r.delta))
    with pytest.raises(Exception):
        r.n = 3  # frozen


# ---------------------------------------------------------------- the simulated game

GAMES = [
    dict(n=1), dict(n=9), dict(n=4, mu=0.3, quantizer=FixedGrid(1.0)), dict(n=1, mu=0.3, quantizer=FixedGrid(1.0)),
    dict(n=25, mu=0.3, quantizer=StochasticRounding(1.0)), dict(n=1, mu=0.3, quantizer=StochasticRounding(1.0)),
    dict(n=100, mu=0.0, quantizer=SizeAdaptiveGrid(1.0, 0.25)),
    dict(n=3, model="bernoulli", p=0.3), dict(n=20, model="bernoulli", p=0.3, quantizer=FixedGrid(0.25)),
    dict(n=64, model="bernoulli", p=0.25, quantizer=FixedGrid(1 / 8)),
    dict(n=5, model="bernoulli", p=0.3, quantizer=StochasticRounding(0.25)),
]


@pytest.mark.parametrize("kwargs", GAMES)
def test_simulated_game_matches_exact_value(kwargs):
    # 99.9% Wilson interval with fixed seeds: over the 11 cases a correct attack fails this by chance with
    # probability ~1%, while a wrong decision rule or a wrong Delta shifts accuracy by >= 0.01 = 7 standard errors.
    result = mis.simulate_membership_game(n_games=20_000, seed=3, confidence=0.999, **kwargs)
    assert result.ci_low <= result.exact_accuracy <= result.ci_high, (result.accuracy, result.exact_accuracy)


def test_game_detects_a_leak_and_is_reproducible_and_fast():
    import time

    start = time.perf_counter()
    a = mis.simulate_membership_game(2, mu=0.3, quantizer=FixedGrid(1.0), n_games=10_000, seed=7)
    assert time.perf_counter() - start < 1.0
    b = mis.simulate_membership_game(2, mu=0.3, quantizer=FixedGrid(1.0), n_games=10_000, seed=7)
    assert a == b
    assert a.ci_low > 0.55  # Delta_2 ~ 0.27: the attack wins clearly
    c = mis.simulate_membership_game(2, mu=0.3, quantizer=FixedGrid(1.0), n_games=10_000, seed=8)
    assert c.accuracy != a.accuracy


def test_wilson_interval():
    low, high = mis.wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert mis.wilson_interval(100, 100)[1] == 1.0
    with pytest.raises(ValueError, match="trials"):
        mis.wilson_interval(5, 3)


# ---------------------------------------------------------------- rates

def test_rate_functions():
    assert mis.gaussian_rate(0.2, 1.0) == pytest.approx(0.02)
    assert mis.bernoulli_rate(0.25, 0.1) == pytest.approx(0.25 * math.log(2.5) + 0.75 * math.log(0.75 / 0.9))
    assert mis.bernoulli_rate(0.1, 0.1) == 0.0
    derivative = lambda t, z: t - z  # noqa: E731  squared loss: the M-estimator is the mean
    assert mis.chernoff_rate(derivative, 0.25, [0.0, 1.0], [0.9, 0.1]) == pytest.approx(
        mis.bernoulli_rate(0.25, 0.1), rel=1e-8)
    assert mis.chernoff_rate(derivative, 0.02, [0.0, 1.0], [0.9, 0.1]) == pytest.approx(
        mis.bernoulli_rate(0.02, 0.1), rel=1e-8)  # the other side of theta*
    nodes, weights = special.roots_hermitenorm(80)  # Gaussian law as a discrete one: exact MGF
    assert mis.chernoff_rate(derivative, 0.7, nodes, weights) == pytest.approx(0.7 ** 2 / 2, rel=1e-6)
    assert mis.chernoff_rate(derivative, 1.5, [0.0, 1.0], [0.9, 0.1]) == math.inf  # unreachable threshold


def test_second_order_tail():
    x = np.array([5.0, 20.0, 200.0])
    assert np.all(np.abs(mis.second_order_log_tail(x) - mis.log_normal_tail(x)) < 1 / x ** 2)


# ---------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("call, error, message", [
    (lambda: mis.exact_gaussian_mean(0, 0.0, 1.0), ValueError, "n must be >= 1"),
    (lambda: mis.exact_gaussian_mean(2.5, 0.0, 1.0), TypeError, "n must be an integer"),
    (lambda: mis.exact_gaussian_mean(True, 0.0, 1.0), TypeError, "n must be an integer"),
    (lambda: mis.exact_gaussian_mean(5, 0.0, 0.0), ValueError, "sigma must be > 0"),
    (lambda: mis.exact_gaussian_mean(5, 0.0, -1.0), ValueError, "sigma must be > 0"),
    (lambda: mis.exact_gaussian_mean(5, float("nan"), 1.0), ValueError, "mu must be finite"),
    (lambda: mis.exact_gaussian_mean(5, 0.0, float("inf")), ValueError, "sigma must be finite"),
    (lambda: mis.exact_gaussian_mean(5, 0.0, 1.0, "fixed_grid"), TypeError, "quantizer must be"),
    (lambda: mis.exact_gaussian_mean(5, 0.0, 1.0, FixedGrid(1e-9)), ValueError, "too fine"),
    (lambda: mis.exact_bernoulli_mean(5, 0.0), ValueError, "p must be > 0"),
    (lambda: mis.exact_bernoulli_mean(5, 1.0), ValueError, "p must be < 1"),
    (lambda: mis.exact_bernoulli_mean(5, float("nan")), ValueError, "p must be finite"),
    (lambda: mis.exact_bernoulli_mean(-1, 0.5), ValueError, "n must be >= 1"),
    (lambda: mis.exact_bernoulli_mean(5, 0.5, object()), TypeError, "quantizer must be"),
    (lambda: mis.simulate_membership_game(5, "poisson"), ValueError, "unknown model"),
    (lambda: mis.simulate_membership_game(5, n_games=0), ValueError, "n_games must be >= 1"),
    (lambda: mis.gaussian_rate(0.2, 0.0), ValueError, "sigma"),
    (lambda: mis.bernoulli_rate(1.5, 0.5), ValueError, "t must lie in"),
    (lambda: mis.chernoff_rate(lambda t, z: t - z, 0.1, []), ValueError, "non-empty"),
    (lambda: mis.chernoff_rate(lambda t, z: t - z, 0.1, [0.0, 1.0], [1.0]), ValueError, "weights"),
    (lambda: theory.fit_rate([1, 2], [0, -1], "linear"), ValueError, "rate_kind"),
])
def test_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()
