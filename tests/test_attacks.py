"""Tests for mislib.attacks: metrics against sklearn and brute force, bootstrap coverage, LiRA reaching the
Bayes AUC on synthetic Gaussian statistics, the white-box cell attack in its three regimes, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn import metrics as skm

from mislib import attacks as A


def gaussian_scores(n, gap, seed):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(gap, 1.0, n), rng.normal(0.0, 1.0, n)]
    labels = np.r_[np.ones(n, int), np.zeros(n, int)]
    return scores, labels


# ---------------------------------------------------------------------------------------------- metrics

scores_and_labels = st.integers(2, 60).flatmap(lambda n: st.tuples(
    st.lists(st.one_of(st.integers(-3, 3).map(float), st.floats(-5, 5, allow_nan=False)), min_size=n,
             max_size=n),
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
)).filter(lambda pair: 0 < sum(pair[1]) < len(pair[1]))


@settings(max_examples=150, deadline=None)
@given(scores_and_labels)
def test_roc_auc_advantage_match_sklearn_on_random_and_tied_scores(pair):
    scores, labels = np.array(pair[0]), np.array(pair[1])
    for drop in (False, True):
        fpr, tpr, thr = A.roc_curve(scores, labels, drop_intermediate=drop)
        sk_fpr, sk_tpr, sk_thr = skm.roc_curve(labels, scores, drop_intermediate=drop)
        np.testing.assert_allclose(fpr, sk_fpr, rtol=0, atol=1e-12)
        np.testing.assert_allclose(tpr, sk_tpr, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(thr, sk_thr)
    assert A.auc(scores, labels) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    sk_fpr, sk_tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    assert A.advantage(scores, labels) == pytest.approx(np.max(np.abs(sk_tpr - sk_fpr)), abs=1e-12)


def brute_force_tpr_at_fpr(scores, labels, target):
    best = 0.0
    for threshold in np.r_[np.inf, np.unique(scores)]:
        flagged = scores >= threshold
        tpr = flagged[labels == 1].mean()
        fpr = flagged[labels == 0].mean()
        if fpr <= target:
            best = max(best, tpr)
    return best


@settings(max_examples=100, deadline=None)
@given(scores_and_labels, st.sampled_from([0.001, 0.01, 0.05, 0.2, 0.5, 0.99]))
def test_tpr_at_fpr_matches_brute_force(pair, target):
    scores, labels = np.array(pair[0]), np.array(pair[1])
    assert A.tpr_at_fpr(scores, labels, target) == pytest.approx(brute_force_tpr_at_fpr(scores, labels, target))


def test_metrics_known_values_and_torch_input():
    # members above every non-member: perfect; reversed: AUC 0 but advantage 1 (|TPR - FPR|)
    scores = torch.tensor([3.0, 2.0, 1.0, 0.0])
    labels = torch.tensor([1, 1, 0, 0])
    assert A.auc(scores, labels) == 1.0 and A.advantage(scores, labels) == 1.0
    assert A.tpr_at_fpr(scores, labels, 0.001) == 1.0
    assert A.auc(-scores, labels) == 0.0 and A.advantage(-scores, labels) == 1.0
    # all scores tied: the only rules flag nobody or everybody
    assert A.auc(np.zeros(4), labels) == 0.5 and A.advantage(np.zeros(4), labels) == 0.0
    # infinite scores are legal and ordered
    assert A.auc([np.inf, 1.0, -np.inf, 0.5], [1, 1, 0, 0]) == 1.0


def test_attack_metrics_points_match_the_single_metrics_and_are_reproducible():
    scores, labels = gaussian_scores(500, 1.0, seed=1)
    result = A.attack_metrics(scores, labels, n_bootstrap=100, seed=3)
    assert result["auc"] == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert result["advantage"] == pytest.approx(A.advantage(scores, labels))
    assert result["tpr_at_1pct_fpr"] == pytest.approx(A.tpr_at_fpr(scores, labels, 0.01))
    assert result["tpr_at_0.1pct_fpr"] == pytest.approx(A.tpr_at_fpr(scores, labels, 0.001))
    assert result["n_members"] == result["n_nonmembers"] == 500
    for key in A.METRIC_NAMES:
        assert result[f"{key}_low"] <= result[key] + 0.05 and result[f"{key}_low"] <= result[f"{key}_high"]
    assert result == A.attack_metrics(scores, labels, n_bootstrap=100, seed=3)
    assert result != A.attack_metrics(scores, labels, n_bootstrap=100, seed=4)
    nan_ci = A.attack_metrics(scores, labels, n_bootstrap=0)
    assert math.isnan(nan_ci["auc_low"]) and nan_ci["auc"] == result["auc"]


def test_vectorised_bootstrap_equals_metrics_of_the_resampled_data():
    # the weighted-cumulative-count shortcut must give what the metrics give on explicitly repeated data
    scores, labels = gaussian_scores(60, 0.8, seed=2)
    scores = np.round(scores, 1)  # ties
    order, _, ends = A._sorted_counts(scores, labels)
    weights = A._bootstrap_weights(np.random.default_rng(0), labels[order], 5)
    assert np.all(weights[:, labels[order] == 1].sum(axis=1) == 60)
    vectorised = A._metrics_from_weights(labels[order], ends, weights)
    for row in range(5):
        counts = weights[row].astype(int)
        s, y = np.repeat(scores[order], counts), np.repeat(labels[order], counts)
        assert vectorised["auc"][row] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        assert vectorised["advantage"][row] == pytest.approx(A.advantage(s, y), abs=1e-12)
        assert vectorised["tpr_at_1pct_fpr"][row] == pytest.approx(A.tpr_at_fpr(s, y, 0.01), abs=1e-12)


def test_bootstrap_auc_interval_covers_the_truth_at_about_nominal_rate():
    gap = 1.0
    true_auc = norm.cdf(gap / math.sqrt(2.0))           # AUC of N(gap, 1) against N(0, 1)
    true_tpr = norm.sf(norm.isf(0.01) - gap)            # TPR at 1% FPR
    covered_auc = covered_tpr = 0
    repetitions = 150
    for r in range(repetitions):
        scores, labels = gaussian_scores(300, gap, seed=100 + r)
        result = A.attack_metrics(scores, labels, n_bootstrap=200, seed=r)
        covered_auc += result["auc_low"] <= true_auc <= result["auc_high"]
        covered_tpr += result["tpr_at_1pct_fpr_low"] <= true_tpr <= result["tpr_at_1pct_fpr_high"]
    assert 0.88 <= covered_auc / repetitions <= 0.99
    assert 0.80 <= covered_tpr / repetitions <= 1.0


def test_attack_metrics_is_fast_on_ten_thousand_scores():
    import time
    scores, labels = gaussian_scores(5000, 0.5, seed=0)
    start = time.perf_counter()
    A.attack_metrics(scores, labels, n_bootstrap=200)
    assert time.perf_counter() - start < 3.0


def test_balanced_indices_and_membership_split():
    labels = np.r_[np.ones(30, int), np.zeros(70, int)]
    index = A.balanced_indices(labels, seed=1)
    assert index.size == 60 and labels[index].sum() == 30 and np.all(np.diff(index) > 0)
    np.testing.assert_array_equal(index, A.balanced_indices(labels, seed=1))
    with pytest.raises(ValueError, match="unbalanced"):
        A.attack_metrics(np.arange(100.0), labels)
    A.attack_metrics(np.arange(100.0), labels, balanced=False, n_bootstrap=10)
    members, nonmembers = A.membership_split(11, seed=2)
    assert members.size == nonmembers.size == 5 and not set(members) & set(nonmembers)
    np.testing.assert_array_equal(members, A.membership_split(11, seed=2)[0])


# ---------------------------------------------------------------------------------------------- statistics

def test_loss_and_logit_confidence_statistics():
    np.testing.assert_array_equal(A.loss_threshold_scores([0.1, 2.0]), [-0.1, -2.0])
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(A.logit_confidence(p), np.log(p / (1 - p)))
    assert np.all(np.isfinite(A.logit_confidence([0.0, 1.0])))
    logits = np.array([[2.0, -1.0, 0.5], [1000.0, 0.0, -5.0], [0.0, 800.0, 800.0]])
    labels = np.array([0, 0, 0])
    stat = A.logit_confidence_from_logits(logits, labels)
    probs = np.exp(logits[0] - logits[0].max()) / np.exp(logits[0] - logits[0].max()).sum()
    assert stat[0] == pytest.approx(np.log(probs[0] / (1 - probs[0])))
    assert stat[1] == pytest.approx(1000.0 - math.log1p(math.exp(-5.0)), rel=1e-14)  # no overflow
    assert stat[2] == pytest.approx(-800.0 - math.log(2.0), rel=1e-14)
    # binary: one logit for class 1 equals the two-column form [0, z]
    z = np.array([3.0, -2.0, 40.0])
    y = np.array([1, 1, 0])
    np.testing.assert_allclose(A.logit_confidence_from_logits(z, y),
                               A.logit_confidence_from_logits(np.c_[np.zeros(3), z], y))
    np.testing.assert_array_equal(A.negative_squared_error([1.0, 2.0], [0.5, 4.0]), [-0.25, -4.0])


# ---------------------------------------------------------------------------------------------- LiRA

def lira_world(m=2000, n_shadow=40, gap=1.5, seed=0):
    """Per-example Gaussian statistics: OUT ~ N(mu_j, s_j^2), IN ~ N(mu_j + gap s_j, s_j^2), with mu_j and s_j
    varying across examples (why per-example calibration beats a global threshold). Bayes AUC: Phi(gap/sqrt2)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 3.0, m)
    s = rng.uniform(0.5, 2.0, m)
    in_mask = rng.random((n_shadow, m)) < 0.5
    shadow = mu + s * (rng.normal(size=(n_shadow, m)) + gap * in_mask)
    membership = np.r_[np.ones(m // 2, int), np.zeros(m - m // 2, int)]
    target = mu + s * (rng.normal(size=m) + gap * membership)
    return target, shadow, in_mask, membership


def test_lira_reaches_the_bayes_auc_on_gaussian_statistics():
    target, shadow, in_mask, membership = lira_world()
    bayes = norm.cdf(1.5 / math.sqrt(2.0))
    online = A.lira_online_scores(target, shadow, shadow, in_mask=in_mask, out_mask=~in_mask)
    offline = A.lira_offline_scores(target, shadow, out_mask=~in_mask)
    global_threshold = A.auc(target, membership)
    assert A.auc(online, membership) == pytest.approx(bayes, abs=0.03)
    assert A.auc(offline, membership) == pytest.approx(bayes, abs=0.03)
    assert global_threshold < bayes - 0.15


def test_lira_formulas_masks_and_fixed_variance():
    target, shadow, in_mask, _ = lira_world(m=50, n_shadow=12, seed=3)
    out = np.where(in_mask, np.nan, shadow)
    inside = np.where(in_mask, shadow, np.nan)
    mu_out, s_out = np.nanmean(out, 0), np.nanstd(out, 0, ddof=1)
    mu_in, s_in = np.nanmean(inside, 0), np.nanstd(inside, 0, ddof=1)
    np.testing.assert_allclose(A.lira_offline_scores(target, out), -norm.logsf(target, mu_out, s_out))
    np.testing.assert_allclose(A.lira_offline_scores(target, shadow, out_mask=~in_mask),
                               A.lira_offline_scores(target, out))
    expected = norm.logpdf(target, mu_in, s_in) - norm.logpdf(target, mu_out, s_out)
    np.testing.assert_allclose(A.lira_online_scores(target, inside, out), expected, rtol=1e-10)
    # fixed variance: one pooled within-example variance for OUT (and one for IN)
    pooled_out = np.sqrt(np.nansum((out - mu_out) ** 2) / np.sum(np.sum(~np.isnan(out), 0) - 1))
    np.testing.assert_allclose(A.lira_offline_scores(target, out, fixed_variance=True),
                               -norm.logsf(target, mu_out, pooled_out))
    # far above the OUT distribution the offline score keeps growing (no saturation at log 1)
    far = A.lira_offline_scores(mu_out + 60 * s_out, out)
    assert np.all(far > 1500) and np.all(np.isfinite(far))


# ---------------------------------------------------------------------------------------------- white box

def test_interval_logprob_is_accurate_in_the_tails():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50

    def exact(a, b):
        if a + b > 0:   # by symmetry, so that 50 digits suffice far in the right tail too
            a, b = -b, -a
        cdf = lambda x: mpmath.ncdf(x) if math.isfinite(x) else (1 if x > 0 else 0)  # noqa: E731
        return float(mpmath.log(cdf(b) - cdf(a)))

    cases = [(-1.0, 0.5), (0.0, np.inf), (-np.inf, -0.3), (40.0, 41.0), (-41.0, -40.0), (39.0, np.inf),
             (8.0, 8.0 + 1e-7), (-3.0, -3.0 + 1e-9), (2.0, 2.0 + 2e-5), (-np.inf, np.inf), (-1.0, 30.0)]
    low = np.array([c[0] for c in cases])
    high = np.array([c[1] for c in cases])
    got = A.gaussian_interval_logprob(low, high, np.zeros(len(cases)), 1.0)
    want = np.array([exact(a, b) for a, b in cases])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # location-scale and the point (density) case
    got = A.gaussian_interval_logprob([3.0, 1.0], [5.0, 1.0], [1.0, 0.0], [2.0, 0.5])
    np.testing.assert_allclose(got, [math.log(norm.cdf(2) - norm.cdf(1)), norm.logpdf(1.0, 0, 0.5)])


def test_interval_logprob_of_a_tiny_cell_far_from_zero_width():
    """A bfloat16 cell of width 1.7e-18 at -1.7e-16, 0.7 standard deviations from the mean: (low - mean) / std and
    (high - mean) / std round to the same float, yet the cell has probability width x density (not 0)."""
    low, high, mean, std = -1.67834496e-16, -1.66967135e-16, -0.20858141, 0.30149701
    got = A.gaussian_interval_logprob([low], [high], [mean], [std])
    want = norm.logpdf((low + high) / 2, mean, std) + math.log(high - low)
    np.testing.assert_allclose(got, [want], rtol=1e-9)


def whitebox_games(cell_of, m=1500, d=20, shift_norm=1.5, seed=0):
    """Play m membership games; returns the attack's scores and the membership labels."""
    rng = np.random.default_rng(seed)
    mean_out = rng.normal(0.0, 1.0, d)
    std = rng.uniform(0.5, 2.0, d)
    directions = rng.normal(size=(m, d))
    shifts = shift_norm * std * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    membership = rng.integers(0, 2, m)
    scores = np.empty(m)
    for j in range(m):
        theta = mean_out + shifts[j] * membership[j] + std * rng.normal(size=d)
        low, high = cell_of(theta, mean_out, std)
        scores[j] = A.whitebox_gaussian_scores(low, high, mean_out, shifts[j:j + 1], std)[0]
    return scores, membership


def test_whitebox_continuous_release_is_the_gaussian_likelihood_ratio():
    rng = np.random.default_rng(5)
    d, m = 30, 7
    mean_out, std = rng.normal(size=d), rng.uniform(0.5, 2.0, d)
    theta = mean_out + std * rng.normal(size=d)
    shifts = 0.3 * rng.normal(size=(m, d))
    got = A.whitebox_gaussian_scores(theta, theta, mean_out, shifts, std)
    want = (norm.logpdf(theta, mean_out + shifts, std) - norm.logpdf(theta, mean_out, std)).sum(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # chunking over targets changes nothing
    np.testing.assert_allclose(A.whitebox_gaussian_scores(theta, theta, mean_out, shifts, std,
                                                          max_chunk_elements=d), got)
    # and in the game it reaches the Bayes AUC Phi(|shift / std| / sqrt 2)
    scores, membership = whitebox_games(lambda theta, mean, std: (theta, theta))
    assert A.auc(scores, membership) == pytest.approx(norm.cdf(1.5 / math.sqrt(2.0)), abs=0.035)


def test_whitebox_coarse_cells_collapse_to_chance():
    # grid step 40 std with the mean in the middle of its cell: the released cell never moves
    def cell(theta, mean, std):
        low = mean - 20 * std + np.floor((theta - mean + 20 * std) / (40 * std)) * 40 * std
        return low, low + 40 * std
    scores, membership = whitebox_games(cell)
    assert np.max(np.abs(scores)) < 1e-12
    assert A.auc(scores, membership) == pytest.approx(0.5, abs=0.06)


def test_whitebox_threshold_at_the_mean_has_power():
    # the only threshold (step 40 std) sits at the mean: the release is the sign of theta - mean
    def cell(theta, mean, std):
        above = theta >= mean
        return np.where(above, mean, mean - 40 * std), np.where(above, mean + 40 * std, mean)
    scores, membership = whitebox_games(cell)
    sign_auc = A.auc(scores, membership)
    continuous, _ = whitebox_games(lambda theta, mean, std: (theta, theta))
    assert 0.70 < sign_auc < A.auc(continuous, membership) - 0.02
    # the score is the exact log-likelihood ratio of the signs
    rng = np.random.default_rng(1)
    mean, std, shift = np.zeros(4), np.ones(4), 0.4 * rng.normal(size=(1, 4))
    above = np.array([True, False, True, True])
    low, high = np.where(above, 0.0, -np.inf), np.where(above, np.inf, 0.0)
    want = np.sum(np.log(np.where(above, norm.cdf(shift[0]), norm.cdf(-shift[0])) / 0.5))
    assert A.whitebox_gaussian_scores(low, high, mean, shift, std)[0] == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("call, match", [
    (lambda: A.auc([0.1, 0.2, 0.3], [1, 0]), "labels has length 2 but scores has length 3"),
    (lambda: A.auc([0.1, np.nan], [1, 0]), "scores contains 1 NaN"),
    (lambda: A.auc([0.1, 0.2], [1, 2]), "labels must contain only 0"),
    (lambda: A.auc([0.1, 0.2], [1, 1]), "labels has only one class"),
    (lambda: A.auc([[0.1, 0.2]], [1, 0]), "scores must be a 1-d array"),
    (lambda: A.auc([], []), "scores is empty"),
    (lambda: A.auc(["a", "b"], [1, 0]), "scores must be an array of numbers"),
    (lambda: A.tpr_at_fpr([0.1, 0.2], [1, 0], 0.0), "fpr must be > 0"),
    (lambda: A.tpr_at_fpr([0.1, 0.2], [1, 0], 1.0), "fpr must be < 1"),
    (lambda: A.attack_metrics([0.1, 0.2], [1, 0], confidence=1.5), "confidence must be < 1"),
    (lambda: A.attack_metrics([0.1, 0.2], [1, 0], n_bootstrap=-1), "n_bootstrap must be >= 0"),
    (lambda: A.balanced_indices([0, 0, 0]), "labels has only one class"),
    (lambda: A.membership_split(1), "n_total must be >= 2"),
    (lambda: A.loss_threshold_scores([np.nan]), "losses contains 1 NaN"),
    (lambda: A.logit_confidence([1.2]), r"p_true must lie in \[0, 1\]"),
    (lambda: A.logit_confidence_from_logits(np.zeros((2, 3)), [0, 3]), r"labels must lie in \[0, 2\]"),
    (lambda: A.logit_confidence_from_logits(np.zeros((2, 3)), [0]), "one class label per row"),
    (lambda: A.negative_squared_error([1.0], [1.0, 2.0]), "predictions has shape"),
    (lambda: A.lira_offline_scores([0.1, 0.2], np.zeros((5, 3))), "shadow_out_stats has shape"),
    (lambda: A.lira_offline_scores([0.1, 0.2], np.zeros(5)), "shadow_out_stats must be a 2-d"),
    (lambda: A.lira_offline_scores([0.1], np.array([[1.0], [np.nan]])), "fewer than two"),
    (lambda: A.lira_offline_scores([0.1], np.full((3, 1), np.nan), fixed_variance=True), "no shadow statistic"),
    (lambda: A.lira_offline_scores([0.1], np.zeros((3, 1)), out_mask=np.ones((3, 2), bool)),
     "out_mask has shape"),
    (lambda: A.lira_offline_scores([0.1], np.zeros((3, 1)), out_mask=np.ones((3, 1))),
     "out_mask must be a boolean"),
    (lambda: A.lira_online_scores([np.nan], np.zeros((3, 1)), np.zeros((3, 1))), "target_stats contains"),
    (lambda: A.whitebox_gaussian_scores([1.0], [0.0], [0.0], [[0.1]], 1.0), "cell_low > cell_high"),
    (lambda: A.whitebox_gaussian_scores([0.0], [1.0], [0.0], [[0.1]], 0.0), "std must be > 0"),
    (lambda: A.whitebox_gaussian_scores([0.0], [1.0], [0.0], [[0.1]], -1.0), "std must be > 0"),
    (lambda: A.whitebox_gaussian_scores([0.0], [1.0], [0.0], [[0.1, 0.2]], 1.0), "shifts has shape"),
    (lambda: A.whitebox_gaussian_scores([0.0], [1.0], [0.0], [0.1], 1.0), "shifts must be a 2-d"),
    (lambda: A.whitebox_gaussian_scores([0.0], [1.0, 2.0], [0.0], [[0.1]], 1.0), "cell_high has shape"),
    (lambda: A.whitebox_gaussian_scores([0.0], [1.0], [0.0, 1.0], [[0.1]], 1.0), "mean_out has shape"),
    (lambda: A.whitebox_gaussian_scores([0.0], [1.0], [0.0], [[0.1]], [1.0, 2.0]), "std must be a scalar"),
    (lambda: A.whitebox_gaussian_scores([np.nan], [1.0], [0.0], [[0.1]], 1.0), "cell_low contains 1 NaN"),
    (lambda: A.whitebox_gaussian_scores([np.inf], [np.inf], [0.0], [[0.1]], 1.0), "must be finite"),
])
def test_bad_inputs_fail_with_a_message_naming_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_whitebox_takes_cells_from_mislib_quantizers():
    from mislib import quantizers
    w = torch.tensor([0.1, 0.3, -0.7], dtype=torch.float64)
    mean, shift, std = np.array([0.0, 0.4, -0.6]), np.array([[0.1, -0.2, 0.05]]), np.array([0.3, 0.2, 0.5])
    low, high = quantizers.FixedGrid(0.5).cell_bounds(w)       # cells [-.25, .25], [.25, .75], [-.75, -.25]
    cell_prob = lambda m: norm.cdf(high.numpy(), m, std) - norm.cdf(low.numpy(), m, std)  # noqa: E731
    want = np.sum(np.log(cell_prob(mean + shift[0])) - np.log(cell_prob(mean)))
    assert A.whitebox_gaussian_scores(low, high, mean, torch.from_numpy(shift), std)[0] == pytest.approx(want)
    low, high = quantizers.get("identity").cell_bounds(w)      # continuous release: log densities
    want = np.sum(norm.logpdf(w.numpy(), mean + shift[0], std) - norm.logpdf(w.numpy(), mean, std))
    assert A.whitebox_gaussian_scores(low, high, mean, shift, std)[0] == pytest.approx(want)
