"""The indicator: standard errors (sandwich, bootstrap, CG), r_min / r_soft / p_flip, the scale channel."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from mislib import quantizers as Q
from mislib.evaluation.synthetic_data import LogisticModel
from mislib.indicator import (IndicatorResult, NotAtOptimumWarning, indicator_from_estimates as estimate,
                              indicator_of_model as estimate_model, standard_errors)
from mislib.evaluation.trainers import LogisticRegression, MLPHead, fit_logistic, fit_mlp_head


class Mean(nn.Module):
    """The 1-d Gaussian-mean M-estimator: loss (y - mu)^2 / 2, minimiser the sample mean."""

    def __init__(self, value):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor([float(value)], dtype=torch.float64))

    def forward(self, X):
        return self.mu.expand(X.shape[0])


@pytest.fixture(scope="module")
def logistic():
    law = LogisticModel((1.0, -2.0, 0.5), intercept=0.3)
    X, y = law.sample(2000, seed=1)
    theta = fit_logistic(X, y, 1e-3)
    return law, X, y, LogisticRegression.from_coefficients(theta)


def test_sandwich_is_exact_for_the_gaussian_mean():
    g = torch.Generator().manual_seed(0)
    y = 2.0 + 1.5 * torch.randn(500, dtype=torch.float64, generator=g)
    X = torch.zeros(500, 1, dtype=torch.float64)
    model = Mean(float(y.mean()))
    se = standard_errors(model, X, y, "squared")
    assert set(se) == {"mu"}
    expected = float(y.std(unbiased=False)) / math.sqrt(500)
    assert abs(float(se["mu"]) / expected - 1) < 1e-10
    boot = standard_errors(model, X, y, "squared", method="bootstrap", n_bootstrap=400, seed=1)
    assert abs(float(boot["mu"]) / expected - 1) < 0.12   # bootstrap sd of a mean: sampling error ~ 1/sqrt(2B)


def test_sandwich_and_bootstrap_agree_on_a_well_specified_logistic_model(logistic):
    """Sandwich vs B = 200 bootstrap refits: within 15% per coordinate (the bootstrap's own relative error is
    about 1/sqrt(2B) = 5%); sandwich vs the inverse Fisher information at the true parameters: within 5%."""
    law, X, y, model = logistic
    sandwich = standard_errors(model, X, y, "logistic", ridge=1e-3, return_details=True)
    boot = standard_errors(model, X, y, "logistic", ridge=1e-3, method="bootstrap", n_bootstrap=200, seed=0,
                           return_details=True)
    ratio = boot.flat / sandwich.flat
    assert float((ratio - 1).abs().max()) < 0.15, ratio
    assert boot.model_fits == 200 and boot.replicates.shape == (200, 4)
    theta = law.true_parameters(fit_intercept=True)
    Xa = torch.cat([X, torch.ones(2000, 1, dtype=X.dtype)], 1)
    p = torch.sigmoid(Xa @ theta)
    fisher = (Xa * (p * (1 - p)).unsqueeze(1)).T @ Xa / 2000
    fisher_se = (torch.linalg.inv(fisher).diagonal() / 2000).sqrt()
    assert float((sandwich.flat / fisher_se - 1).abs().max()) < 0.05
    assert sandwich.covariance.shape == (4, 4)
    torch.testing.assert_close(sandwich.covariance.diagonal().sqrt(), sandwich.flat)


def test_conjugate_gradients_match_the_exact_hessian(logistic):
    _, X, y, model = logistic
    exact = standard_errors(model, X, y, "logistic", ridge=1e-3, hessian="exact", return_details=True)
    cg = standard_errors(model, X, y, "logistic", ridge=1e-3, hessian="cg", cg_sketch=None, return_details=True)
    assert cg.hessian == "cg"
    torch.testing.assert_close(cg.flat, exact.flat, rtol=1e-7, atol=0)
    sketch = standard_errors(model, X, y, "logistic", ridge=1e-3, hessian="cg", cg_sketch=256, return_details=True)
    assert sketch.hessian == "cg-sketch(256)"
    assert float((sketch.flat / exact.flat - 1).abs().max()) < 0.2  # ~4% expected per standard error


def test_generic_module_exact_and_cg_agree():
    from mislib.evaluation.synthetic_data import gaussian_mixture

    X, y = gaussian_mixture(150, 3, k_modes=2, separation=2.0, seed=0)
    params = fit_mlp_head(X, y, 4, ridge=1e-2, n_iter=2000, lr=0.05)  # Adam reaches |grad| ~ 1e-14 here
    module = MLPHead.from_params(params)
    exact = standard_errors(module, X, y, ridge=1e-2, hessian="exact")
    cg = standard_errors(module, X, y, ridge=1e-2, hessian="cg", cg_sketch=None)
    assert set(exact) == {"hidden.weight", "hidden.bias", "output.weight", "output.bias"}
    for name in exact:
        assert exact[name].shape == module.get_parameter(name).shape
        torch.testing.assert_close(cg[name], exact[name], rtol=1e-6, atol=1e-12)


def test_warns_when_the_model_is_not_trained(logistic):
    _, X, y, model = logistic
    shifted = LogisticRegression.from_coefficients(model.coefficients().detach() + 0.05)
    with pytest.warns(NotAtOptimumWarning, match="standard errors"):
        standard_errors(shifted, X, y, "logistic", ridge=1e-3)


def _gaussian_case(n, delta=0.3, sigma=1.0, step=1.0):
    """theta at distance delta from the nearest threshold of FixedGrid(step) (threshold at step / 2)."""
    theta = torch.tensor([step / 2 - delta], dtype=torch.float64)
    stderr = torch.tensor([sigma / math.sqrt(n)], dtype=torch.float64)
    return estimate(theta, stderr, Q.FixedGrid(step), n)


def test_gaussian_mean_rate_is_reproduced_exactly():
    delta, sigma = 0.3, 1.7
    for n in (10, 1000, 10 ** 6):
        result = _gaussian_case(n, delta, sigma)
        assert isinstance(result, IndicatorResult)
        assert result.r_min == pytest.approx(delta ** 2 / (2 * sigma ** 2), rel=1e-12)
        z = delta * math.sqrt(n) / sigma
        assert float(result.z) == pytest.approx(z, rel=1e-12)
        z_far = (1.0 - delta) * math.sqrt(n) / sigma       # the other threshold of the cell [-1/2, 1/2]
        assert result.p_exit == pytest.approx(stats.norm.sf(z) + stats.norm.sf(z_far), rel=1e-9, abs=1e-300)
        assert result.log_p_exit_with_scale == pytest.approx(np.logaddexp(stats.norm.logsf(z),
                                                                          stats.norm.logsf(z_far)), rel=1e-9)
    ratios = [_gaussian_case(n, delta, sigma).r_soft / _gaussian_case(n, delta, sigma).r_min
              for n in (10, 100, 10 ** 4, 10 ** 6)]
    # r_soft > r_min (the Gaussian tail's log z correction), decreasing to 1 like log(n) / n
    assert all(r > 1 for r in ratios) and all(a > b for a, b in zip(ratios, ratios[1:]))
    z = 0.3 * 1000 / 1.7
    assert ratios[-1] - 1 == pytest.approx(2 * (math.log(z) + 0.5 * math.log(2 * math.pi)) / z ** 2, rel=0.05)
    assert ratios[-1] - 1 < 1e-3 and ratios[0] > 1.5


def test_delta_bound_holds_for_the_exact_gaussian_mean():
    """Delta_n <= 2 P(Q(theta_hat) != Q(theta*)) with the exact Delta_n computed by quadrature."""
    mu, sigma, step, n = 0.2, 1.0, 1.0, 40
    edges = np.concatenate([[-np.inf], np.arange(-4.5, 5.0, 1.0), [np.inf]])  # cells of FixedGrid(1)
    out = np.diff(stats.norm.cdf(edges, mu, sigma / math.sqrt(n)))
    z = np.linspace(-10, 10, 40001)   # kinks in z: a fine trapezoid
    inside = np.diff(stats.norm.cdf(edges[None, :], ((mu + sigma * z + (n - 1) * mu) / n)[:, None],
                                    sigma * math.sqrt(n - 1) / n), axis=1)
    delta = np.trapezoid(stats.norm.pdf(z) * 0.5 * np.abs(inside - out).sum(1), z)
    try:
        from mislib.mis import exact_gaussian_mean
        assert exact_gaussian_mean(n, mu, sigma, Q.FixedGrid(step)).delta == pytest.approx(delta, rel=1e-5)
    except ImportError:  # pragma: no cover - written by another helper
        pass
    result = estimate(torch.tensor([mu], dtype=torch.float64), torch.tensor([sigma / math.sqrt(n)],
                      dtype=torch.float64), Q.FixedGrid(step), n)
    assert 0 < delta <= result.delta_estimate     # at the true optimum and standard error it is a bound
    assert delta > result.delta_estimate / 50  # and the bound is not absurdly loose here


def test_several_coordinates_and_far_tails():
    theta = torch.tensor([0.1, 0.45, -0.2], dtype=torch.float64)
    stderr = torch.tensor([0.1, 0.05, 0.2], dtype=torch.float64)
    result = estimate(theta, stderr, Q.FixedGrid(1.0), 100)
    z = np.array([0.4, 0.05, 0.3]) / stderr.numpy()
    z_far = np.array([0.6, 0.95, 0.7]) / stderr.numpy()      # the other face of each cell of FixedGrid(1)
    tails = stats.norm.sf(z)
    q = tails + stats.norm.sf(z_far)
    assert result.r_min == pytest.approx(z.min() ** 2 / 200)
    assert result.r_soft == pytest.approx(-np.log(tails.sum()) / 100)       # legacy: nearer face only
    assert result.p_exit == pytest.approx(1 - np.prod(1 - q))
    assert result.expected_exits == pytest.approx(q.sum())
    assert result.ranking_score == pytest.approx((np.log(3) - np.log(q.sum())) / 100)
    assert result.delta_estimate == pytest.approx(min(1.0, 2 * result.p_exit))
    assert result.weights_at_risk == pytest.approx(tails.sum())
    assert result.argmin == 1 and result.n_coordinates == 3
    far = estimate(torch.tensor([0.0, 0.0], dtype=torch.float64), torch.tensor([0.01, 0.0125], dtype=torch.float64),
                   Q.FixedGrid(1.0), 50)   # z = 50 and 40: Phi_bar underflows double precision
    assert far.p_exit == 0.0 and math.isfinite(far.log_p_exit_with_scale) and math.isfinite(far.r_soft)
    # both faces of each cell at 50 and 40 standard errors
    expected = math.log(2) + np.logaddexp(stats.norm.logsf(50), stats.norm.logsf(40))
    assert far.log_p_exit_with_scale == pytest.approx(expected, rel=1e-9)
    assert far.ranking_score * 50 == pytest.approx(math.log(2) - expected, rel=1e-9)
    assert far.r_soft * 50 == pytest.approx(math.log(2) - expected, rel=1e-9)


def test_identity_and_stochastic_rounding_have_zero_rate():
    theta = torch.tensor([0.3, -0.7], dtype=torch.float64)
    stderr = torch.full((2,), 0.1, dtype=torch.float64)
    for q in (Q.Identity(), Q.StochasticRounding(0.5)):
        result = estimate(theta, stderr, q, 100)
        # every coordinate changes with the data: q = 1, E = d, score 0, estimate of the bound 1
        assert result.r_min == 0 and result.p_exit == 1.0 and result.delta_estimate == 1.0
        assert result.expected_exits == pytest.approx(2.0) and result.ranking_score == 0.0
        assert result.r_soft == pytest.approx(0.0)   # -(1/n) log(2 * 1/2)
    assert "randomised" in estimate(theta, stderr, Q.StochasticRounding(0.5), 100).note


def test_scale_channel():
    theta = torch.tensor([0.3, -1.3, 0.7], dtype=torch.float64)
    stderr = torch.tensor([0.01, 0.02, 0.03], dtype=torch.float64)
    public = estimate(theta, stderr, Q.get("uniform", bits=4, scale_format="public", scale=0.2), 500)
    assert public.scale_channel == "none" and math.isnan(public.scale_r)
    assert public.r_min_with_scale == public.r_min and public.r_soft_with_scale == public.r_soft
    floating = estimate(theta, stderr, Q.get("uniform", bits=4), 500)
    assert floating.scale_channel == "continuous" and floating.scale_r == 0.0
    assert floating.r_min > 0 and floating.r_min_with_scale == 0.0 and floating.delta_bound_with_scale == 1.0
    assert "continuous" in floating.note
    # the float scale counts one changed value; the weights count their exit probabilities
    assert floating.expected_exits_with_scale == pytest.approx(floating.expected_exits + 1.0)
    assert 0 < floating.ranking_score == pytest.approx((math.log(3) - math.log(1 + floating.expected_exits)) / 500)
    sign = estimate(theta, stderr, Q.get("sign"), 500)
    assert sign.r_min > 0 and sign.r_min_with_scale == 0.0
    # pow2 scale: raw = max|w| / 7 = 1.3 / 7 rounds to 2^-2; nearest threshold 2^-2.5; the statistic moves with
    # the arg-max coordinate only, so its standard error is 0.02 / 7.
    pow2 = estimate(theta, stderr, Q.get("uniform", bits=4, scale_format="pow2"), 500)
    raw = 1.3 / 7
    expected_z = (raw - 2 ** -2.5) / (0.02 / 7)
    assert pow2.scale_channel == "stored-on-grid"
    assert float(pow2.scale_z[0]) == pytest.approx(expected_z, rel=1e-6)
    assert pow2.scale_r == pytest.approx(expected_z ** 2 / 1000, rel=1e-6)
    assert pow2.r_min_with_scale == pytest.approx(min(pow2.r_min, pow2.scale_r))
    # the scale's exit probability counts both faces of its storage cell [2^-2.5, 2^-1.5]
    q_scale = stats.norm.sf((raw - 2 ** -2.5) / (0.02 / 7)) + stats.norm.sf((2 ** -1.5 - raw) / (0.02 / 7))
    assert float(pow2.exit_probabilities[-1]) == pytest.approx(q_scale, rel=1e-6)
    # affine grid: scale (max - min) / 15 moves with both extreme coordinates; the zero point with the minimum
    affine_q = Q.get("uniform", bits=4, symmetric=False, scale_format="pow2")
    affine = estimate(theta, stderr, affine_q, 500)
    scale_se = math.hypot(0.03, 0.02) / 15
    assert float(affine.scale_z[0]) == pytest.approx(float(affine_q.scale_margins(theta)[0]) / scale_se, rel=1e-6)
    assert float(affine.scale_z[1]) == pytest.approx(float(affine_q.zero_point_margins(theta)[0]) / 0.02, rel=1e-6)


def test_named_parameters_pool_coordinates():
    theta = {"a.weight": torch.tensor([[0.1, 0.45]], dtype=torch.float64), "a.bias": torch.tensor([-0.2],
                                                                                                  dtype=torch.float64)}
    stderr = {"a.weight": torch.tensor([[0.1, 0.05]], dtype=torch.float64), "a.bias": torch.tensor([0.2],
                                                                                                  dtype=torch.float64)}
    pooled = estimate(theta, stderr, Q.FixedGrid(1.0), 100)
    flat = estimate(torch.tensor([0.1, 0.45, -0.2], dtype=torch.float64),
                    torch.tensor([0.1, 0.05, 0.2], dtype=torch.float64), Q.FixedGrid(1.0), 100)
    assert pooled.r_soft == pytest.approx(flat.r_soft) and pooled.p_exit == pytest.approx(flat.p_exit)
    assert pooled.ranking_score == pytest.approx(flat.ranking_score)
    assert pooled.z["a.weight"].shape == (1, 2)


def test_estimate_model_table_with_bootstrap_intervals(logistic):
    _, X, y, model = logistic
    quantizers = {"grid 0.5": Q.FixedGrid(0.5), "uniform 4 bits": Q.get("uniform", bits=4),
                  "identity": Q.Identity()}
    table = estimate_model(model, X, y, "logistic", quantizers, ridge=1e-3, n_bootstrap_ci=20, seed=0)
    assert list(table["quantizer"]) == list(quantizers)
    for column in ("r_min", "r_soft", "r_min_low", "r_min_high", "r_soft_low", "r_soft_high", "seconds",
                   "model_fits", "scale_channel", "r_min_with_scale"):
        assert column in table
    grid = table.set_index("quantizer").loc["grid 0.5"]
    # percentile intervals bracket the estimate and have width
    for name in ("r_min", "ranking_score"):
        low, value, high = grid[f"{name}_low"], grid[name], grid[f"{name}_high"]
        assert low <= value <= high and low < high, name
    assert grid.model_fits == 20 and grid.bootstrap_dropped == 0
    again = estimate_model(model, X, y, "logistic", quantizers, ridge=1e-3, n_bootstrap_ci=20, seed=0)
    assert np.allclose(again["r_soft_high"], table["r_soft_high"])   # same seed, same numbers


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(stderr=torch.ones(2, dtype=torch.float64)), ValueError, "shape"),
    (dict(stderr=torch.tensor([0.1, 0.0, 0.1], dtype=torch.float64)), ValueError, "> 0"),
    (dict(theta=torch.tensor([0.1, float("nan"), 0.1], dtype=torch.float64)), ValueError, "NaN"),
    (dict(n=1), ValueError, "n must be >= 2"),
    (dict(n="100"), TypeError, "n must be a number"),
    (dict(quantizer="fixed_grid"), TypeError, "Quantizer"),
    (dict(theta={"w": torch.zeros(3, dtype=torch.float64)}), ValueError, "same structure"),
    (dict(theta=[0.1, 0.2, 0.3]), TypeError, "torch.Tensor or a dict"),
])
def test_estimate_refuses_bad_inputs(kwargs, error, match):
    arguments = dict(theta=torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64),
                     stderr=torch.full((3,), 0.1, dtype=torch.float64), quantizer=Q.FixedGrid(1.0), n=100)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        estimate(**arguments)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="jackknife"), ValueError, "unknown method"),
    (dict(hessian="kfac"), ValueError, "unknown hessian"),
    (dict(loss="hinge"), ValueError, "unknown loss"),
    (dict(loss=lambda out, t: (out - t).pow(2).sum()), ValueError, "one loss per sample"),
    (dict(y=torch.zeros(5, dtype=torch.float64)), ValueError, "samples but y has"),
    (dict(model="not a module"), TypeError, "torch.nn.Module"),
    (dict(method="bootstrap", n_bootstrap=1), ValueError, "n_bootstrap must be >= 2"),
    (dict(ridge=-1.0), ValueError, "ridge must be >= 0"),
    (dict(sample_weight=-torch.ones(40, dtype=torch.float64)), ValueError, "sample_weight"),
])
def test_standard_errors_refuses_bad_inputs(kwargs, error, match):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 2, dtype=torch.float64, generator=g)
    y = (torch.rand(40, generator=g) < 0.5).double()
    arguments = dict(model=LogisticRegression(2), X=X, y=y, loss="logistic", ridge=0.1)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        standard_errors(**arguments)


def test_singular_hessian_and_bad_quantizer_lists():
    X = torch.ones(30, 2, dtype=torch.float64)           # two identical columns: a flat direction
    y = torch.arange(30, dtype=torch.float64) / 30
    model = LogisticRegression(2, fit_intercept=False)
    with pytest.raises(ValueError, match="not positive definite"):
        standard_errors(model, X, y, "squared", ridge=0.0)
    law = LogisticModel((1.0,))
    Xl, yl = law.sample(50, seed=0)
    fitted = LogisticRegression.from_coefficients(fit_logistic(Xl, yl, 0.1))
    with pytest.raises(ValueError, match="empty"):
        estimate_model(fitted, Xl, yl, "logistic", {}, ridge=0.1)
    with pytest.raises(ValueError, match="n_bootstrap_ci"):
        estimate_model(fitted, Xl, yl, "logistic", [Q.Identity()], ridge=0.1, n_bootstrap_ci=1)
    with pytest.raises(TypeError, match="must be a mislib.quantizers.Quantizer"):
        estimate_model(fitted, Xl, yl, "logistic", {"bad": "sign"}, ridge=0.1)


def test_influence_of_a_point_on_the_gaussian_mean_is_exact():
    """For the mean, swapping one of n points for z moves the estimate by exactly (z - E y) / n."""
    from mislib.indicator import centred_influence_shifts as influence_shifts

    g = torch.Generator().manual_seed(5)
    y_ref = 1.0 + torch.randn(1000, dtype=torch.float64, generator=g)
    X_ref = torch.zeros(1000, 1, dtype=torch.float64)
    targets = torch.tensor([3.0, -1.0, 1.0], dtype=torch.float64)
    shifts = influence_shifts(Mean(float(y_ref.mean())), torch.zeros(3, 1, dtype=torch.float64), targets, X_ref,
                              y_ref, "squared", n=50)
    torch.testing.assert_close(shifts[:, 0], (targets - y_ref.mean()) / 50)


def test_bootstrap_replicates_with_a_non_positive_definite_hessian_are_dropped_and_counted(logistic, monkeypatch):
    from mislib import indicator

    _, X, y, model = logistic
    real, calls = indicator.sandwich_variance, []

    def flaky(problem, flat, *args):
        calls.append(1)
        if len(calls) in (3, 5):       # the 2nd and 4th bootstrap replicates (call 1 is the model itself)
            raise ValueError("standard_errors: the Hessian of the objective is not positive definite")
        return real(problem, flat, *args)

    monkeypatch.setattr(indicator, "sandwich_variance", flaky)
    with pytest.warns(RuntimeWarning, match="2 of 8 replicates dropped"):
        table = estimate_model(model, X, y, "logistic", {"grid": Q.FixedGrid(0.5)}, ridge=1e-3, n_bootstrap_ci=8)
    assert int(table["bootstrap_dropped"][0]) == 2 and table["r_min_low"][0] < table["r_min_high"][0]


def test_old_names_warn_and_agree():
    from mislib import indicator

    theta, se = torch.tensor([0.1, 0.3], dtype=torch.float64), torch.tensor([0.1, 0.1], dtype=torch.float64)
    with pytest.warns(DeprecationWarning, match="indicator_from_estimates"):
        old = indicator.estimate(theta, se, Q.FixedGrid(1.0), 50)
    assert old.ranking_score == estimate(theta, se, Q.FixedGrid(1.0), 50).ranking_score
    assert old.p_flip == old.p_exit and old.delta_bound == old.delta_estimate
