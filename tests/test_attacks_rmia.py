"""Tests for RMIA (mislib.attacks.rmia_scores): the published formula on a hand-computed case, agreement with
transcriptions of the reference implementations (LeakPro, ML Privacy Meter), bad inputs, a simulated membership
game with and without signal, and a side-by-side with LiRA at 4 and 64 reference models.

Run as a script (``python tests/test_attacks_rmia.py``) to print the side-by-side table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import norm, trim_mean

from mislib import attacks as A

# ----------------------------------------------------------------------------------------- hand-computed case

# Two examples x, three population samples z, two reference models.
TARGET_X = [0.8, 0.3]
REFERENCE_X = [[0.6, 0.2],
               [0.4, 0.4]]
TARGET_Z = [0.35, 0.3, 0.9]
REFERENCE_Z = [[0.4, 0.1, 0.6],
               [0.6, 0.3, 0.6]]


def test_online_formula_on_a_hand_computed_case():
    # Pr(x) = column means = [0.5, 0.3]            -> LR(x) = [0.8/0.5, 0.3/0.3] = [1.6, 1.0]
    # Pr(z) = [0.5, 0.2, 0.6]                       -> LR(z) = [0.7, 1.5, 1.5]
    # gamma = 1: x1 beats 0.7, 1.5, 1.5 (1.6/1.5 = 1.07 > 1): 3/3; x2 beats 0.7 only (1/0.7 = 1.43): 1/3
    # gamma = 2: x1: 1.6/0.7 = 2.29 > 2, 1.6/1.5 = 1.07 < 2: 1/3;   x2: 1/0.7 = 1.43 < 2: 0
    np.testing.assert_allclose(A.rmia_scores(TARGET_X, REFERENCE_X, TARGET_Z, REFERENCE_Z, gamma=1.0),
                               [1.0, 1.0 / 3.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(A.rmia_scores(TARGET_X, REFERENCE_X, TARGET_Z, REFERENCE_Z, gamma=2.0),
                               [1.0 / 3.0, 0.0], rtol=0, atol=1e-15)


def test_offline_formula_on_a_hand_computed_case():
    # Reference model 0 trained on x1 (out_mask False there): Pr_OUT(x) = [0.4, (0.2 + 0.4)/2 = 0.3].
    # a = 0.5: Pr(x) = ((1 + a) Pr_OUT + (1 - a)) / 2 = 0.75 Pr_OUT + 0.25 = [0.55, 0.475]
    #   -> LR(x) = [0.8/0.55, 0.3/0.475] = [1.4545, 0.6316]
    # z is OUT everywhere: Pr_OUT(z) = [0.5, 0.2, 0.6] -> Pr(z) = [0.625, 0.4, 0.7]
    #   -> LR(z) = [0.35/0.625, 0.3/0.4, 0.9/0.7] = [0.56, 0.75, 1.2857]
    # gamma = 1: x1 beats all three (1.4545 > 1.2857): 1; x2 beats 0.56 only (0.6316/0.56 = 1.13): 1/3
    # gamma = 2: x1: 1.4545/0.56 = 2.60 > 2, 1.4545/0.75 = 1.94 < 2: 1/3;  x2: 1.13 < 2: 0
    out_mask = np.array([[False, True], [True, True]])
    for gamma, expected in ((1.0, [1.0, 1.0 / 3.0]), (2.0, [1.0 / 3.0, 0.0])):
        scores = A.rmia_scores(TARGET_X, REFERENCE_X, TARGET_Z, REFERENCE_Z, out_mask=out_mask, offline_a=0.5,
                               gamma=gamma)
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-15)
    # the mask is the same as NaN where a reference trained on x
    nan_reference = np.where(out_mask, REFERENCE_X, np.nan)
    np.testing.assert_array_equal(
        A.rmia_scores(TARGET_X, nan_reference, TARGET_Z, REFERENCE_Z, offline_a=0.5, gamma=1.0), [1.0, 1.0 / 3.0])


def test_ties_do_not_count_and_zero_probabilities_stay_finite():
    # z identical to x: LR(x) / LR(z) = 1 exactly, which is not > 1 (strict, as both implementations)
    assert A.rmia_scores([0.5], [[0.4]], [0.5], [[0.4]], gamma=1.0).tolist() == [0.0]
    # 0 / 0 reads as a likelihood ratio of 1; a positive probability against a zero mean beats everything
    scores = A.rmia_scores([0.0, 0.3], [[0.0, 0.0]], [0.2, 0.9], [[0.4, 0.3]], gamma=1.0)
    np.testing.assert_array_equal(scores, [0.5, 1.0])   # LR(z) = [0.5, 3]: LR 1 beats 0.5; LR inf beats both


def test_gaussian_likelihood_for_regression():
    # residuals 0, 1, -2 at scale 2: exp(-(r/2)^2 / 2) = 1, exp(-1/8), exp(-1/2)
    np.testing.assert_allclose(A.gaussian_likelihood([1.0, 2.0, -1.0], [1.0, 1.0, 1.0], 2.0),
                               [1.0, math.exp(-0.125), math.exp(-0.5)], rtol=1e-15)


# -------------------------------------------------------------------- transcriptions of the reference code

def leakpro_rmia(p_x_given_theta, p_x_given_shadow_models, p_z_given_theta, p_z_given_shadow_models, *, online,
                 offline_a, gamma, out_indices=None, epsilon=0.0):
    """aidotse/LeakPro@c47752f, leakpro/attacks/mia_attacks/rmia.py, lines 203, 216-223 (z) and 232, 238-253
    (x), with ``self.`` removed. LeakPro adds ``epsilon = 1e-6`` to Pr(.) (line 95); mislib adds nothing, so the
    comparison runs at epsilon 0."""
    p_z_given_theta = np.atleast_2d(p_z_given_theta)
    if online is True:
        p_z = np.mean(p_z_given_shadow_models, axis=0, keepdims=True)
    else:
        p_z = np.mean(p_z_given_shadow_models, axis=0)
        p_z = 0.5*((offline_a + 1) * p_z + (1-offline_a))
    ratio_z = p_z_given_theta / (p_z + epsilon)

    n_audit_points = p_x_given_theta.shape[0]
    p_x_given_theta = np.atleast_2d(p_x_given_theta)
    if online is True:
        p_x = np.mean(p_x_given_shadow_models, axis=0, keepdims=True)
    else:
        masked_values = np.where(out_indices, p_x_given_shadow_models, np.nan)
        p_x_out = np.nanmean(masked_values, axis=0)
        p_x = 0.5*((offline_a + 1) * p_x_out + (1-offline_a))
    ratio_x = p_x_given_theta / (p_x + epsilon)
    score = np.zeros((1, n_audit_points))
    for i in range(n_audit_points):
        likelihoods = ratio_x[0,i] / ratio_z
        score[0, i] = np.mean(likelihoods > gamma)
    return score[0]


def ml_privacy_meter_offline(target_signals, all_signals, all_memberships, z_signals, population_signals,
                             num_reference_models, offline_a):
    """privacytrustlab/ml_privacy_meter@e384af8, attacks.py: ``get_rmia_out_signals`` lines 34-38 and
    ``run_rmia`` lines 117-136 (signals are [examples, models]; the population is OUT for every model)."""
    def get_rmia_out_signals(selected_signals, memberships):
        non_members = ~memberships
        out_signals = selected_signals * non_members
        out_signals = -np.sort(-out_signals, axis=1)[:, :num_reference_models]
        return out_signals

    out_signals = get_rmia_out_signals(all_signals, all_memberships)
    mean_out_x = np.mean(out_signals, axis=1)
    mean_x = (1 + offline_a) / 2 * mean_out_x + (1 - offline_a) / 2
    prob_ratio_x = target_signals.ravel() / mean_x
    population_memberships = np.zeros_like(population_signals).astype(bool)
    z_out_signals = get_rmia_out_signals(population_signals, population_memberships)
    mean_out_z = np.mean(z_out_signals, axis=1)
    mean_z = (1 + offline_a) / 2 * mean_out_z + (1 - offline_a) / 2
    prob_ratio_z = z_signals.ravel() / mean_z
    ratios = prob_ratio_x[:, np.newaxis] / prob_ratio_z
    counts = np.average(ratios > 1.0, axis=1)
    return counts


def ml_privacy_meter_paper_online(target_x, ref_x, target_z, ref_z, gamma, proptocut=0.0):
    """privacytrustlab/ml_privacy_meter@d327341, research/2024_rmia/main.py, lines 515-516, 531-532, 547-551
    (online, one query per example; np.outer for torch.outer). ``ref_*`` are [models, examples] holding k/2 IN
    and k/2 OUT models per example (line 440). The sign flip of line 551 (their convention: lower = member) is
    undone here. mislib takes a plain mean, i.e. ``proptocut = 0``."""
    mean_x = trim_mean(ref_x, proportiontocut=proptocut, axis=0)
    mean_z = trim_mean(ref_z, proportiontocut=proptocut, axis=0)
    prob_ratio_x = (target_x.ravel() / (mean_x))
    prob_ratio_z_rev = 1 / (target_z.ravel() / (mean_z))
    final_scores = np.outer(prob_ratio_x, prob_ratio_z_rev)
    signal_gamma = -((final_scores > gamma)*1.0).mean(1)
    return -signal_gamma


def pair_masks(rng, k, m):
    """[k, m] IN masks in complementary pairs: every example is IN for exactly half the reference models."""
    masks = np.zeros((k, m), dtype=bool)
    for pair in range(k // 2):
        masks[2 * pair, rng.permutation(m)[: m // 2]] = True
        masks[2 * pair + 1] = ~masks[2 * pair]
    return masks


def random_inputs(seed, k=6, m=300, n_z=400):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.01, 1.0, m), rng.uniform(0.01, 1.0, (k, m)), rng.uniform(0.01, 1.0, n_z),
            rng.uniform(0.01, 1.0, (k, n_z)), pair_masks(rng, k, m))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_leakpro(seed):
    tx, rx, tz, rz, in_mask = random_inputs(seed)
    for gamma in (0.5, 1.0, 2.0):
        np.testing.assert_array_equal(
            A.rmia_scores(tx, rx, tz, rz, gamma=gamma),
            leakpro_rmia(tx, rx, tz, rz, online=True, offline_a=None, gamma=gamma))
        for a in (0.0, 0.33, 1.0):
            np.testing.assert_array_equal(
                A.rmia_scores(tx, rx, tz, rz, out_mask=~in_mask, offline_a=a, gamma=gamma),
                leakpro_rmia(tx, rx, tz, rz, online=False, offline_a=a, gamma=gamma, out_indices=~in_mask))
    # LeakPro's own epsilon (1e-6) moves a few comparisons at most
    ours = A.rmia_scores(tx, rx, tz, rz, gamma=2.0)
    theirs = leakpro_rmia(tx, rx, tz, rz, online=True, offline_a=None, gamma=2.0, epsilon=1e-6)
    assert np.max(np.abs(ours - theirs)) <= 2.0 / tz.size


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_ml_privacy_meter(seed):
    tx, rx, tz, rz, in_mask = random_inputs(seed)
    k = rx.shape[0]
    # ML Privacy Meter keeps the k/2 largest OUT signals (line 38). For x these are all of its k/2 OUT models;
    # for z, OUT for all k, they would be the largest half: give it the k/2 models that mislib uses for z.
    z_out_mask = np.zeros(rz.shape, dtype=bool)
    z_out_mask[: k // 2] = True
    for a in (0.0, 0.3, 0.7):
        np.testing.assert_array_equal(
            A.rmia_scores(tx, rx, tz, rz, out_mask=~in_mask, z_out_mask=z_out_mask, offline_a=a, gamma=1.0),
            ml_privacy_meter_offline(tx, rx.T, in_mask.T, tz, rz[: k // 2].T, k // 2, a))
    # with all k models for z, its top-k/2 selection biases Pr(z) upwards and the scores differ
    assert not np.array_equal(A.rmia_scores(tx, rx, tz, rz, out_mask=~in_mask, offline_a=0.3, gamma=1.0),
                              ml_privacy_meter_offline(tx, rx.T, in_mask.T, tz, rz.T, k // 2, 0.3))
    for gamma in (1.0, 2.0):
        np.testing.assert_array_equal(A.rmia_scores(tx, rx, tz, rz, gamma=gamma),
                                      ml_privacy_meter_paper_online(tx, rx, tz, rz, gamma))


def test_offline_a_is_the_grid_value_that_best_attacks_a_reference_model():
    w = membership_world(m=2000, k=6, gap=1.0, seed=4)
    # attack reference model 0 (its membership is known) with references 2.. (its partner, 1, left out)
    arguments = (w["reference_x"][0], w["reference_x"][2:], w["reference_z"][0], w["reference_z"][2:])
    labels, out_mask = w["in_mask"][0].astype(int), ~w["in_mask"][2:]
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    aucs = [A.auc(A.rmia_scores(*arguments, out_mask=out_mask, offline_a=a), labels) for a in grid]
    chosen = A.rmia_offline_a(*arguments, labels, out_mask=out_mask, grid=grid)
    assert chosen == grid[int(np.argmax(aucs))]
    assert max(aucs) > min(aucs) + 0.005          # a matters here, so the choice is a real one
    with pytest.raises(ValueError, match="grid entry must be <= 1"):
        A.rmia_offline_a(*arguments, labels, out_mask=out_mask, grid=[0.5, 1.5])
    with pytest.raises(ValueError, match="grid is empty"):
        A.rmia_offline_a(*arguments, labels, out_mask=out_mask, grid=[])
    with pytest.raises(ValueError, match="labels has only one class"):
        A.rmia_offline_a(*arguments, np.ones_like(labels), out_mask=out_mask)


def test_torch_tensors_and_lists_are_accepted():
    torch = pytest.importorskip("torch")
    tx, rx, tz, rz, _ = random_inputs(5, k=2, m=20, n_z=30)
    np.testing.assert_array_equal(
        A.rmia_scores(torch.tensor(tx), torch.tensor(rx), tz.tolist(), rz.tolist()), A.rmia_scores(tx, rx, tz, rz))


# -------------------------------------------------------------------------------------------------- bad input

GOOD = dict(target_p_x=[0.5, 0.6], reference_p_x=[[0.4, 0.5]], target_p_z=[0.3], reference_p_z=[[0.2]])


def call(**changes):
    arguments = {**GOOD, **changes}
    positional = [arguments.pop(name) for name in ("target_p_x", "reference_p_x", "target_p_z", "reference_p_z")]
    return lambda: A.rmia_scores(*positional, **arguments)


@pytest.mark.parametrize("thunk, match", [
    (call(target_p_x=[0.5, 1.2]), r"target_p_x must lie in \[0, 1\]"),
    (call(reference_p_x=[[-0.1, 0.5]]), r"reference_p_x must lie in \[0, 1\]"),
    (call(target_p_z=[2.0]), r"target_p_z must lie in \[0, 1\]"),
    (call(reference_p_z=[[1.5]]), r"reference_p_z must lie in \[0, 1\]"),
    (call(target_p_x=[0.5, np.nan]), "target_p_x contains 1 NaN"),
    (call(reference_p_x=[[np.nan, 0.5]]), "reference_p_x: 1 examples have no reference statistic"),
    (call(reference_p_x=[[0.4, np.inf]]), "reference_p_x contains 1 infinite"),
    (call(reference_p_x=[[0.4, 0.5, 0.6]]), "reference_p_x has shape"),
    (call(reference_p_x=[0.4, 0.5]), "reference_p_x must be a 2-d"),
    (call(target_p_x=[[0.5, 0.6]]), "target_p_x must be a 1-d"),
    (call(target_p_z=[]), "target_p_z is empty"),
    (call(reference_p_z=[[0.2], [0.3]]), "reference_p_x has 1 reference models but reference_p_z has 2"),
    (call(offline_a=1.5), "offline_a must be <= 1"),
    (call(offline_a=-0.1), "offline_a must be >= 0"),
    (call(offline_a=float("nan")), "offline_a must be finite"),
    (call(gamma=0.0), "gamma must be > 0"),
    (call(gamma=-1.0), "gamma must be > 0"),
    (call(out_mask=[[True, True]]), "out_mask and z_out_mask select OUT references"),
    (call(offline_a=0.3, out_mask=[[1, 1]]), "out_mask must be a boolean"),
    (call(offline_a=0.3, out_mask=np.ones((2, 2), bool)), "out_mask has shape"),
    (call(offline_a=0.3, z_out_mask=np.ones((1, 2), bool)), "z_out_mask has shape"),
    (call(offline_a=0.3, out_mask=np.array([[False, True]])), "reference_p_x: 1 examples have no reference"),
    (call(target_p_x=["a", "b"]), "target_p_x must be an array of numbers"),
    (lambda: A.gaussian_likelihood([1.0], [1.0], 0.0), "scale must be > 0"),
    (lambda: A.gaussian_likelihood([1.0], [1.0, 2.0], 1.0), "predictions has shape"),
])
def test_bad_inputs_fail_with_a_message_naming_the_argument(thunk, match):
    with pytest.raises((ValueError, TypeError), match=match):
        thunk()


# ------------------------------------------------------------------------------ simulated membership game

def membership_world(m, k, gap, seed, n_z=2000):
    """Probabilities of the true label from a per-example logistic model: the logit is mu_j + s_j (noise +
    gap * IN), mu_j ~ N(0, 2^2) (hard and easy examples), s_j ~ U(0.5, 2). The target trains on a random half,
    the k reference models on complementary halves, the population z on nothing. LiRA's statistic (the logit)
    is then exactly Gaussian, so LiRA's model is the true one; the Bayes AUC is Phi(gap / sqrt 2)."""
    rng = np.random.default_rng(seed)
    mu, s = rng.normal(0.0, 2.0, m), rng.uniform(0.5, 2.0, m)
    mu_z, s_z = rng.normal(0.0, 2.0, n_z), rng.uniform(0.5, 2.0, n_z)
    in_mask = pair_masks(rng, k, m)
    membership = np.zeros(m, dtype=np.int8)
    membership[rng.permutation(m)[: m // 2]] = 1
    return dict(
        target_x=expit(mu + s * (rng.normal(size=m) + gap * membership)),
        reference_x=expit(mu + s * (rng.normal(size=(k, m)) + gap * in_mask)),
        target_z=expit(mu_z + s_z * rng.normal(size=n_z)),
        reference_z=expit(mu_z + s_z * rng.normal(size=(k, n_z))),
        in_mask=in_mask, membership=membership)


def attack_table(world) -> dict:
    """AUC and TPR at 0.1% FPR of RMIA (online, offline a = 0.3) and LiRA (online, per-example and fixed
    variance) on one world."""
    w = world
    stat, ref_stat = A.logit_confidence(w["target_x"]), A.logit_confidence(w["reference_x"])
    rmia = (w["target_x"], w["reference_x"], w["target_z"], w["reference_z"])
    scores = {
        "rmia_online": A.rmia_scores(*rmia),
        "rmia_offline": A.rmia_scores(*rmia, out_mask=~w["in_mask"], offline_a=0.3),
        "lira_online": A.lira_online_scores(stat, ref_stat, ref_stat, in_mask=w["in_mask"],
                                            out_mask=~w["in_mask"]),
        "lira_online_fixed_variance": A.lira_online_scores(stat, ref_stat, ref_stat, in_mask=w["in_mask"],
                                                           out_mask=~w["in_mask"], fixed_variance=True),
    }
    return {name: (A.auc(score, w["membership"]), A.tpr_at_fpr(score, w["membership"], 0.001))
            for name, score in scores.items()}


def test_rmia_beats_chance_with_signal_and_is_at_chance_without():
    # m = 4000 (2000 + 2000): the AUC's standard deviation under no signal is sqrt((m + 1) / (12 * 2000^2))
    # = 0.0091, so 0.04 is a 4.4-sigma tolerance. With gap 1 the Bayes AUC is Phi(1/sqrt 2) = 0.76.
    for gap, check in ((1.0, lambda auc: auc > 0.6), (0.0, lambda auc: abs(auc - 0.5) < 0.04)):
        world = membership_world(m=4000, k=4, gap=gap, seed=11)
        rmia = (world["target_x"], world["reference_x"], world["target_z"], world["reference_z"])
        for scores in (A.rmia_scores(*rmia), A.rmia_scores(*rmia, out_mask=~world["in_mask"], offline_a=0.3)):
            assert check(A.auc(scores, world["membership"])), (gap, A.auc(scores, world["membership"]))


def test_side_by_side_with_lira_at_4_and_64_reference_models():
    """The paper's claim: RMIA beats LiRA at few reference models. At 4 (2 IN, 2 OUT per example) LiRA's
    per-example variances come from two statistics each; at 64 LiRA, whose Gaussian model is exact here,
    catches up and passes RMIA."""
    bayes = norm.cdf(1.0 / math.sqrt(2.0))
    few = attack_table(membership_world(m=20000, k=4, gap=1.0, seed=0))
    many = attack_table(membership_world(m=20000, k=64, gap=1.0, seed=0))
    assert few["rmia_online"][0] > few["lira_online"][0] + 0.08
    assert few["rmia_online"][0] > few["lira_online_fixed_variance"][0] + 0.02
    assert many["lira_online"][0] > many["rmia_online"][0]
    assert many["lira_online"][0] == pytest.approx(bayes, abs=0.02)
    assert many["rmia_online"][0] > few["rmia_online"][0] - 0.01      # more references never hurt RMIA much


if __name__ == "__main__":
    for k in (4, 64):
        for seed in (0, 1, 2):
            table = attack_table(membership_world(m=20000, k=k, gap=1.0, seed=seed))
            for name, (auc, tpr) in table.items():
                print(f"k={k:3d} seed={seed} {name:28s} AUC {auc:.4f}  TPR@0.1%FPR {tpr:.4f}")
