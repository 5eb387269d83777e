"""Monte-Carlo Delta_n against the exact values of the 1-d cases, and the release machinery."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from mislib import quantizers as Q
from mislib.evaluation.synthetic_data import LogisticModel
from mislib.evaluation.trainers import fit_logistic
from mislib.evaluation.montecarlo import (Retrainings, cell_rows, delta_from_codes, montecarlo_delta, montecarlo_table,
                               quantize_rows, release_codes, retrain)


def _mean_trainer(y):
    return y.mean(-1, keepdim=True)


def _exact_bernoulli_delta(n, p, grid):
    """Delta_n of Q(k/n), k ~ Bin(n, p), from the binomial laws (target inside: z + Bin(n-1, p))."""
    try:
        from mislib.mis import exact_bernoulli_mean
    except ImportError:  # pragma: no cover - the exact module is written by another helper
        exact_bernoulli_mean = None
    k = np.arange(n + 1)
    cells = grid(torch.tensor(k / n, dtype=torch.float64)).numpy()
    out = stats.binom.pmf(k, n, p)
    total = 0.0
    for z, weight in ((0, 1 - p), (1, p)):
        inside = np.zeros(n + 1)
        inside[z:z + n] = stats.binom.pmf(np.arange(n), n - 1, p)
        total += weight * 0.5 * sum(abs(inside[cells == c].sum() - out[cells == c].sum()) for c in np.unique(cells))
    if exact_bernoulli_mean is not None:
        assert exact_bernoulli_mean(n, p, grid).delta == pytest.approx(total, rel=1e-9)
    return total


def test_bernoulli_mean_matches_the_exact_delta():
    n, p, grid = 40, 0.3, Q.FixedGrid(0.1, offset=0.013)
    exact = _exact_bernoulli_delta(n, p, grid)

    def sampler(size, g):
        return (torch.rand(size, generator=g, dtype=torch.float64) < p).double()

    sims = retrain(sampler, _mean_trainer, n, n_targets=100, n_retrain=4000, seed=1)
    result = montecarlo_delta(sims, grid)
    assert result.model_fits == 100 * 4000 * 2 and result.n_categories <= 12
    # the split-sample estimate is a lower bound: never above the exact value beyond its interval
    assert result.lower_bound_low <= exact
    assert result.lower_bound <= result.plug_in
    # the plug-in (biased upwards by ~sqrt(categories / M)) is still within its interval at this size
    assert result.plug_in_low <= exact <= result.plug_in_high


def test_gaussian_mean_matches_the_exact_delta_and_continuous_releases_give_nothing():
    n, mu, sigma = 30, 0.2, 1.0
    grid = Q.FixedGrid(0.5)
    edges = np.concatenate([[-np.inf], np.arange(-4.75, 5.0, 0.5), [np.inf]])   # cells of FixedGrid(0.5)
    out = np.diff(stats.norm.cdf(edges, mu, sigma / math.sqrt(n)))
    z = np.linspace(-10, 10, 40001)   # the integrand has kinks in z: a fine trapezoid, not Gauss-Hermite
    inside = np.diff(stats.norm.cdf(edges[None, :], ((mu + sigma * z + (n - 1) * mu) / n)[:, None],
                                    sigma * math.sqrt(n - 1) / n), axis=1)
    exact = np.trapezoid(stats.norm.pdf(z) * 0.5 * np.abs(inside - out).sum(1), z)
    try:
        from mislib.mis import exact_gaussian_mean
        assert exact_gaussian_mean(n, mu, sigma, grid).delta == pytest.approx(exact, rel=1e-6)
    except ImportError:  # pragma: no cover
        pass

    def sampler(size, g):
        return mu + sigma * torch.randn(size, generator=g, dtype=torch.float64)

    sims = retrain(sampler, _mean_trainer, n, n_targets=200, n_retrain=2000, seed=2)
    whitebox = {"mean_out": torch.tensor([mu], dtype=torch.float64),
                "std": torch.tensor([sigma / math.sqrt(n)], dtype=torch.float64),
                "shifts": ((sims.targets[0] - mu) / n).unsqueeze(1)}
    result = montecarlo_delta(sims, grid, whitebox=whitebox)
    assert result.lower_bound_low <= exact
    assert result.plug_in_low <= exact <= result.plug_in_high
    # the fixed likelihood-ratio rule: still a lower bound, and nearly tight (the Gaussian model is right here)
    assert result.rule_lower_bound_low <= exact and result.rule_lower_bound > 0.85 * exact
    assert result.rule_lower_bound > result.lower_bound
    continuous = montecarlo_delta(sims, Q.Identity())
    assert continuous.distinct_fraction == 1.0 and continuous.lower_bound == 0.0
    assert continuous.plug_in == pytest.approx(1.0)


def test_logistic_retraining_is_seeded_and_consistent():
    law = LogisticModel((1.0, -0.5))

    def trainer(X, y):
        return fit_logistic(X, y, 1e-3, fit_intercept=False)

    sims = retrain(lambda size, g: law.sample(size, g), trainer, 30, n_targets=10, n_retrain=40, seed=3,
                   batch_size=150)
    assert sims.inside.shape == (10, 40, 2) and sims.outside.shape == (10, 40, 2)
    again = retrain(lambda size, g: law.sample(size, g), trainer, 30, n_targets=10, n_retrain=40, seed=3)
    torch.testing.assert_close(again.inside, sims.inside)   # batch size does not change the numbers
    # the target is in every "inside" training set: its models lean towards it on average (lower loss on it)
    X_t, y_t = sims.targets

    def target_loss(models):
        f = (models * X_t[:, None, :]).sum(-1)
        return torch.nn.functional.softplus(f) - y_t[:, None] * f

    assert float(target_loss(sims.inside).mean()) < float(target_loss(sims.outside).mean())
    table = montecarlo_table(sims, {"grid 0.5": Q.FixedGrid(0.5), "sign": Q.get("sign")})
    assert list(table["quantizer"]) == ["grid 0.5", "sign"]
    assert (table["lower_bound"] <= table["plug_in"] + 1e-12).all()
    shared = retrain(lambda size, g: law.sample(size, g), trainer, 30, n_targets=10, n_retrain=40, seed=3,
                     shared_out=True)
    assert shared.outside.shape == (40, 2) and shared.shared_out and shared.model_fits == 440


def test_quantize_rows_fast_paths_equal_the_row_loop():
    g = torch.Generator().manual_seed(0)
    thetas = torch.randn(50, 5, dtype=torch.float64, generator=g)
    for q in (Q.get("uniform", bits=4), Q.get("uniform", bits=3, scale_format="pow2"),
              Q.get("uniform", bits=2, symmetric=False, scale_format="bfloat16"), Q.get("uniform", bits=1),
              Q.FixedGrid(0.3), Q.get("ternary_absmean"), Q.get("magnitude_pruning", sparsity=0.4),
              Q.get("ternary_sparsity", sparsity=0.4), Q.get("kmeans", bits=1)):
        fast = quantize_rows(q, thetas)
        loop = torch.stack([q(row) for row in thetas])
        assert torch.equal(fast, loop), q
    for q in (Q.get("uniform", bits=4), Q.get("uniform", bits=2, symmetric=False, scale_format="pow2"),
              Q.FixedGrid(0.3), Q.get("sign"), Q.get("ternary_absmean"), Q.get("magnitude_pruning", sparsity=0.4),
              Q.get("ternary_sparsity", sparsity=0.4), Q.get("kmeans", bits=1)):
        low, high = cell_rows(q, thetas)
        for j in (0, 13, 49):
            expected = q.cell_bounds(thetas[j])
            assert torch.equal(low[j], expected[0]) and torch.equal(high[j], expected[1]), q
    with pytest.raises(ValueError, match="randomised"):
        cell_rows(Q.StochasticRounding(0.1), thetas)
    codes, count = release_codes(torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 2.0]]))
    assert count == 2 and codes[0] == codes[1] != codes[2]


def test_delta_from_codes_on_known_laws():
    rng = np.random.default_rng(0)
    inside = rng.choice(2, size=(50, 4000), p=[0.3, 0.7])
    outside = rng.choice(2, size=(50, 4000), p=[0.7, 0.3])
    result = delta_from_codes(inside, outside)
    assert result["lower_bound_low"] <= 0.4 <= result["plug_in_high"]
    assert abs(result["lower_bound"] - 0.4) < 0.01 and abs(result["plug_in"] - 0.4) < 0.01
    same = delta_from_codes(inside, rng.choice(2, size=4000, p=[0.3, 0.7]))   # shared out-pool, same law
    assert abs(same["lower_bound"]) < 0.01 and same["plug_in"] < 0.03


@pytest.mark.parametrize("call, error, match", [
    (lambda: retrain(lambda s, g: torch.zeros(s), lambda y: y.mean(-1), 10, n_targets=2, n_retrain=4),
     ValueError, r"\[B, p\]"),
    (lambda: retrain(lambda s, g: torch.zeros(s + 1), _mean_trainer, 10, n_targets=2, n_retrain=4),
     ValueError, "rows"),
    (lambda: retrain(lambda s, g: torch.zeros(s), _mean_trainer, 1, n_targets=2, n_retrain=4), ValueError,
     "n must be >= 2"),
    (lambda: retrain(lambda s, g: torch.zeros(s), _mean_trainer, 10, n_targets=2, n_retrain=2), ValueError,
     "n_retrain must be >= 4"),
    (lambda: retrain("sampler", _mean_trainer, 10), TypeError, "callables"),
    (lambda: montecarlo_delta("sims", Q.Identity()), TypeError, "retrain"),
    (lambda: montecarlo_delta(Retrainings(10, (), torch.zeros(2, 4, 1), torch.zeros(2, 4, 1), 0, 0.0), "grid"),
     TypeError, "Quantizer"),
    (lambda: delta_from_codes(np.zeros(10), np.zeros(10)), ValueError, "codes_in"),
    (lambda: delta_from_codes(np.zeros((3, 10)), np.zeros((2, 10))), ValueError, "codes_out"),
    (lambda: quantize_rows(Q.Identity(), torch.zeros(3, 4), shape=(3, 3)), ValueError, "does not hold"),
])
def test_bad_inputs_get_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_attacks_see_membership_when_it_is_easy_and_rank_agreement():
    """Gaussian mean with n = 4: one point moves the mean by a quarter of its deviation, attacks see it."""
    from mislib.evaluation.montecarlo import attack_evaluation
    from mislib.studies.validation import rank_agreement

    n = 4
    sims = retrain(lambda size, g: torch.randn(size, generator=g, dtype=torch.float64), _mean_trainer, n,
                   n_targets=60, n_retrain=40, seed=4)
    targets = sims.targets[0]

    def loss(releases, index):
        return 0.5 * (targets[index] - releases[:, 0]) ** 2

    def statistic(releases, index):
        return -loss(releases, index)

    whitebox = {"mean_out": torch.zeros(1, dtype=torch.float64), "std": torch.full((1,), 0.5, dtype=torch.float64),
                "shifts": (targets / n).unsqueeze(1)}
    rows = [attack_evaluation(sims, q, loss=loss, statistic=statistic, whitebox=whitebox, n_games=20, label=name)
            for name, q in (("identity", Q.Identity()), ("grid 8", Q.FixedGrid(8.0)))]
    identity, coarse = rows
    for attack in ("loss_attack", "lira_offline", "lira_online", "whitebox"):
        assert identity[f"{attack}_auc"] > (0.6 if attack == "whitebox" else 0.55), (attack, identity)
        assert coarse[f"{attack}_auc"] == pytest.approx(0.5, abs=0.02)
    assert identity["n_game_members"] == 60 * 20 and identity["n_shadow"] == 20
    # a grid step of 8 standard deviations releases (almost) always 0: nothing to see
    import pandas as pd

    table = pd.DataFrame({"sample_size": [n] * 4, "r": [0.0, 1.0, 2.0, 3.0], "leak": [0.4, 0.3, 0.2, 0.1],
                          "noise": [0.1, 0.4, 0.2, 0.3]})
    agreement = rank_agreement(table, indicators=("r",), truths=("leak", "noise"))
    assert agreement.set_index("ground_truth").loc["leak", "agreement"] == pytest.approx(1.0)
    assert abs(agreement.set_index("ground_truth").loc["noise", "agreement"]) < 1


def test_vectorised_whitebox_equals_the_attack_module():
    """attack_evaluation's vectorised white-box scores are mislib.attacks.whitebox_gaussian_scores, instance by
    instance (checked by recomputing a few)."""
    from mislib import attacks
    from mislib.evaluation.montecarlo import attack_evaluation

    sims = retrain(lambda size, g: torch.randn(size, generator=g, dtype=torch.float64), _mean_trainer, 6,
                   n_targets=5, n_retrain=8, seed=9)
    targets = sims.targets[0]
    whitebox = {"mean_out": torch.zeros(1, dtype=torch.float64), "std": torch.full((1,), 0.4, dtype=torch.float64),
                "shifts": (targets / 6).unsqueeze(1)}
    grid = Q.FixedGrid(0.3)
    captured = {}
    original = attacks.attack_metrics

    def spy(scores, labels, **kwargs):
        captured.setdefault("scores", []).append(np.asarray(scores))
        return original(scores, labels, **kwargs)

    attacks.attack_metrics = spy
    try:
        attack_evaluation(sims, grid, loss=lambda r, i: r[:, 0] * 0, statistic=lambda r, i: r[:, 0] - targets[i],
                          whitebox=whitebox, n_games=3, n_bootstrap=10)
    finally:
        attacks.attack_metrics = original
    whitebox_scores = captured["scores"][-1]
    thetas = torch.cat([sims.inside[:, :3].reshape(-1, 1), sims.outside[:, :3].reshape(-1, 1)])
    index = torch.arange(5).repeat_interleave(3).repeat(2)
    for j in (0, 7, 20, 29):
        low, high = grid.cell_bounds(thetas[j])
        expected = attacks.whitebox_gaussian_scores(low, high, np.zeros(1), (targets[index[j]] / 6).reshape(1, 1),
                                                    0.4)[0]
        assert whitebox_scores[j] == pytest.approx(expected, rel=1e-12, abs=1e-12)
