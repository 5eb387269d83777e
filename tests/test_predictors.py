"""Privacy predictors against the attack (mislib.evaluation.predictors): constructed tables whose answers are known
(a predictor equal to the attack scores 100%, a reversed one 0%), the pair filter of the utility-controlled
comparison, the partial rank correlation against an independent computation, the budgeted recommendation, and
clear errors for bad inputs."""

import math

import numpy as np
import pandas as pd
import pytest

from mislib.evaluation import agreement
from mislib.evaluation import predictors as P

QUANTIZERS = ("identity", "uniform 8-bit", "uniform 4-bit", "uniform 2-bit", "sign", "pruning 90%")
BITS = {"identity": 64, "uniform 8-bit": 8, "uniform 4-bit": 4, "uniform 2-bit": 2, "sign": 1, "pruning 90%": 7.5}
ZEROS = {"identity": 0, "uniform 8-bit": 0.01, "uniform 4-bit": 0.2, "uniform 2-bit": 0.8, "sign": 0, "pruning 90%": 0.9}


def audit_table(n_configurations=4, seed=0, width=0.01, se=0.01, with_baselines=True, noise=0.3):
    """An audit-shaped table: per configuration (model, sample_size, seed) and quantizer, the best attack's AUC
    with an interval of half-width ``width``, the test AUROC, the quantizer's bits and sparsity, the indicator
    (``ranking_score`` = minus the AUC, exactly the attack; ``r_min`` = the AUC, exactly reversed), and, with
    ``with_baselines``, the baseline rows (the drop, its SE, and a noisy distortion)."""
    rng, noisy = np.random.default_rng(seed), np.random.default_rng(seed + 1000)
    rows = []
    for c in range(n_configurations):
        auc = dict(zip(QUANTIZERS, rng.uniform(0.5, 0.9, len(QUANTIZERS))))
        auroc = dict(zip(QUANTIZERS, 0.9 - 0.2 * rng.uniform(0, 1, len(QUANTIZERS))))
        auroc["identity"] = 0.95
        for q in QUANTIZERS:
            def add(method, measurement, value, low=np.nan, high=np.nan, q=q, c=c):
                rows.append({"model": "logistic", "quantizer": q, "sample_size": 32, "seed": c, "method": method,
                             "measurement": measurement, "value": value, "value_low": low, "value_high": high})
            add("best_attack", "auc", auc[q], auc[q] - width, auc[q] + width)
            add("test", "auroc", auroc[q])
            add("quantizer", "bits_per_weight", BITS[q])
            add("quantizer", "sparsity", ZEROS[q])
            add("quantizer", "deterministic", 1.0)
            add("indicator", "ranking_score", -auc[q])
            add("indicator", "r_min", auc[q])
            if with_baselines:
                add("baseline", "test_performance_drop", auroc["identity"] - auroc[q])
                add("baseline", "test_performance_se", se)
                add("baseline", "standardised_distortion", -auc[q] + noise * noisy.normal())
    return pd.DataFrame(rows)


def test_a_predictor_equal_to_the_attack_scores_all_and_a_reversed_one_none():
    table = audit_table()
    summary = P.summarise_agreement(P.predictor_agreement(table)).set_index("predictor")
    assert summary.loc["ranking_score", "concordant_fraction"] == 1.0
    assert summary.loc["ranking_score", "tau_mean"] == pytest.approx(1.0)
    assert summary.loc["r_min", "concordant_fraction"] == 0.0
    assert summary.loc["r_min", "tau_mean"] == pytest.approx(-1.0)
    assert summary.loc["ranking_score", "n_configurations"] == 4
    # every pair is separated (intervals 0.02 wide, AUCs drawn uniformly: check the count directly)
    auc = table[table.method == "best_attack"].pivot(index="seed", columns="quantizer", values="value")
    separated = sum(int((np.abs(np.subtract.outer(r, r)) > 0.02).sum() // 2) for r in auc.to_numpy())
    assert summary.loc["ranking_score", "n_separated"] == separated
    assert summary.loc["test_performance_drop", "needs_held_out"] and not summary.loc["fewer bits", "needs_held_out"]
    # the noisy distortion is in between
    assert 0.0 < summary.loc["standardised_distortion", "concordant_fraction"] < 1.0


def test_predictor_agreement_is_agreement_table_per_predictor():
    table = audit_table(seed=3)
    mine = P.predictor_agreement(table)
    bits = mine[mine.predictor == "fewer bits"].reset_index(drop=True)
    direct = agreement.agreement_table(table, ("quantizer", "bits_per_weight"), ("best_attack", "auc"),
                                       score_higher_is_private=False)
    np.testing.assert_allclose(bits["concordant"], direct["concordant"])
    np.testing.assert_allclose(bits["kendall_tau"], direct["kendall_tau"])


def test_lexicographic_rule_breaks_bit_ties_by_zeros():
    table = audit_table(n_configurations=1)
    table.loc[(table.measurement == "bits_per_weight") & (table.quantizer == "uniform 2-bit"), "value"] = 1.0
    releases = P.release_table(table).set_index("quantizer")["fewer bits, then more zeros"]
    order = releases.sort_values(ascending=False).index.tolist()
    # 1 bit: uniform 2-bit (80% zeros) before sign (none); then 4, 7.5, 8 and 64 bits
    assert order == ["uniform 2-bit", "sign", "uniform 4-bit", "pruning 90%", "uniform 8-bit", "identity"]


def test_drop_is_derived_from_the_test_rows_of_an_older_table():
    old = audit_table(with_baselines=False, seed=5)
    new = audit_table(with_baselines=True, seed=5)
    derived = P.release_table(old).set_index(["seed", "quantizer"])["test_performance_drop"]
    stored = P.release_table(new).set_index(["seed", "quantizer"])["test_performance_drop"]
    pd.testing.assert_series_equal(derived, stored.reindex(derived.index))
    assert (derived.xs("identity", level="quantizer") == 0).all()


def test_randomised_releases_are_left_out():
    table = audit_table(n_configurations=1)
    table.loc[(table.measurement == "deterministic") & (table.quantizer == "sign"), "value"] = 0.0
    assert "sign" not in set(P.release_table(table).quantizer)
    assert "sign" in set(P.release_table(table, deterministic_only=False).quantizer)


def test_tolerance_filter_selects_exactly_the_close_pairs():
    table = audit_table(n_configurations=1, width=0.001)
    quantizers = ["identity", "uniform 8-bit", "uniform 4-bit", "uniform 2-bit"]
    table = table[table.quantizer.isin(quantizers)].copy()
    perf = dict(zip(quantizers, (0.90, 0.905, 0.925, 0.96)))
    auc = dict(zip(quantizers, (0.9, 0.8, 0.7, 0.6)))     # every pair separated
    for q in quantizers:
        table.loc[(table.quantizer == q) & (table.measurement == "auroc"), "value"] = perf[q]
        rows = (table.quantizer == q) & (table.method == "best_attack")
        table.loc[rows, ["value", "value_low", "value_high"]] = [auc[q], auc[q] - 0.001, auc[q] + 0.001]
        table.loc[(table.quantizer == q) & (table.measurement == "test_performance_drop"), "value"] = 0.9 - perf[q]
    releases = P.release_table(table)
    pairs = P.release_pairs(releases, ["model", "sample_size", "seed"])
    assert len(pairs) == 6
    for tolerance, expected in ((1.0, {("identity", "uniform 8-bit")}),
                                (3.0, {("identity", "uniform 8-bit"), ("identity", "uniform 4-bit"),
                                       ("uniform 8-bit", "uniform 4-bit")}),
                                (4.0, {("identity", "uniform 8-bit"), ("identity", "uniform 4-bit"),
                                       ("uniform 8-bit", "uniform 4-bit"), ("uniform 4-bit", "uniform 2-bit")})):
        close = pairs[pairs.performance_gap < tolerance * pairs.se]
        assert set(zip(close.quantizer_a, close.quantizer_b)) == expected
        curve = P.utility_controlled(table, [tolerance]).set_index("predictor")
        assert curve.loc["ranking_score", "n_pairs"] == len(expected)
        assert curve.loc["ranking_score", "concordant_fraction"] == 1.0 and curve.loc["r_min", "concordant"] == 0
    absolute = P.utility_controlled(table, [0.021], in_se=False).set_index("predictor")
    assert absolute.loc["fewer bits", "n_pairs"] == 2        # gaps 0.005 and 0.02
    # here the release the attack finds more private also performs better: the drop orders both pairs wrongly
    assert absolute.loc["test_performance_drop", "concordant_fraction"] == 0.0


def test_without_a_tolerance_the_pairs_give_the_pooled_agreement():
    table = audit_table(n_configurations=6, seed=7, width=0.05)
    everything = P.utility_controlled(table, [math.inf]).set_index("predictor")
    pooled = P.summarise_agreement(P.predictor_agreement(table)).set_index("predictor")
    for name in ("fewer bits", "more zeros", "standardised_distortion", "test_performance_drop"):
        assert everything.loc[name, "n_pairs"] == pooled.loc[name, "n_separated"]
        assert everything.loc[name, "concordant_fraction"] == pytest.approx(pooled.loc[name, "concordant_fraction"])


def _partial_by_residuals(x, y, z):
    """Partial Spearman by regressing the ranks of x and y on those of z (an independent computation)."""
    ranks = [pd.Series(v).rank().to_numpy() for v in (x, y, z)]
    design = np.column_stack([np.ones(len(x)), ranks[2]])
    residuals = [r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in ranks[:2]]
    return float(np.corrcoef(*residuals)[0, 1])


def test_partial_spearman_recovers_constructed_dependence():
    rng = np.random.default_rng(0)
    z = rng.normal(size=3000)
    x, y = z + 0.3 * rng.normal(size=3000), z + 0.3 * rng.normal(size=3000)
    assert P.partial_spearman(x, y, z) == pytest.approx(_partial_by_residuals(x, y, z), abs=1e-10)
    assert abs(P.partial_spearman(x, y, z)) < 0.06                  # x and y depend only through z
    assert pd.Series(x).corr(pd.Series(y), method="spearman") > 0.8
    e = rng.normal(size=3000)
    x2, y2 = z + e, z + e + 0.1 * rng.normal(size=3000)             # share e beyond z
    assert P.partial_spearman(x2, y2, z) > 0.9
    assert P.partial_spearman(x2, -y2, z) == pytest.approx(-P.partial_spearman(x2, y2, z))
    assert math.isnan(P.partial_spearman([1, 2, 3, 4], [1, 1, 1, 1], [4, 3, 2, 1]))


def test_partial_correlations_and_their_summary():
    table = audit_table(n_configurations=8, seed=2)
    partial = P.partial_correlations(table)
    score = partial[partial.predictor == "ranking_score"]
    assert len(score) == 8 and np.allclose(score.spearman, 1.0) and np.allclose(score.partial, 1.0)
    assert "test_performance_drop" not in set(partial.predictor)
    summary = P.summarise_partial(partial).set_index("predictor")
    assert summary.loc["ranking_score", "n_positive"] == 8 and summary.loc["r_min", "n_negative"] == 8
    assert summary.loc["ranking_score", "sign_test_p"] == pytest.approx(2 * 0.5 ** 8)
    low, high = summary.loc["fewer bits", ["partial_mean_low", "partial_mean_high"]]
    assert low <= summary.loc["fewer bits", "partial_mean"] <= high


def test_clustered_targets_are_resampled_and_counted_whole():
    partials = pd.DataFrame({"predictor": "ranking_score", "seed": [0, 0, 0, 1, 2], "target": [0, 1, 2, 0, 0],
                             "spearman": 0.5, "partial": [0.5, 0.5, 0.5, -0.1, 0.2]})
    flat = P.summarise_partial(partials).iloc[0]
    assert (flat.n_positive, flat.n_negative, flat.n_clusters) == (4, 1, 5)
    assert flat.sign_test_p == pytest.approx(0.375)                  # binomial: 4 of 5
    clustered = P.summarise_partial(partials, cluster=["seed"]).iloc[0]
    assert (clustered.n_positive, clustered.n_negative, clustered.n_clusters) == (2, 1, 3)
    assert clustered.sign_test_p == pytest.approx(1.0)
    assert clustered.partial_mean == pytest.approx(0.32) == flat.partial_mean
    # resampling whole clusters can draw seed 0 three times: a mean of 0.5 is reachable only then
    assert clustered.partial_mean_high == pytest.approx(0.5) and clustered.partial_mean_low < 0.2
    with pytest.raises(ValueError, match="cluster columns"):
        P.summarise_partial(partials, cluster=["task"])


def test_recommend_picks_the_most_private_release_within_the_budget():
    table = audit_table(n_configurations=3, seed=4)
    picks, summary = P.recommend(table, 0.1)
    releases = P.release_table(table)
    for _, pick in picks.iterrows():
        group = releases[(releases.seed == pick.seed) & (releases.test_performance_drop <= 0.1)]
        best = group.loc[group.reference.idxmin()]
        assert pick.quantizer == best.quantizer and pick.hit and pick.regret == 0    # the score is the attack
        assert pick.n_candidates == len(group)
    assert summary["hit_rate"] == 1.0 and summary["n_configurations"] == 3
    reversed_picks, reversed_summary = P.recommend(table, 0.1, "r_min")
    assert reversed_summary["mean_regret"] > 0 and reversed_summary["hit_rate"] < 1
    for _, pick in reversed_picks.iterrows():     # the reversed score picks the leakiest candidate
        group = releases[(releases.seed == pick.seed) & (releases.test_performance_drop <= 0.1)]
        assert pick.attack_auc == group.reference.max()
    zero, _ = P.recommend(table, 0.0)
    assert (zero.quantizer == "identity").all()                     # no budget: nothing but the unquantized weights
    comparison = P.recommendation_comparison(table, [0.1]).set_index("predictor")
    assert comparison.loc["random", "hit_rate"] == pytest.approx((1 / picks.n_candidates).mean())


def test_conclusions_state_their_own_numbers():
    table = audit_table(n_configurations=8, seed=6, width=0.002)
    found = P.conclusions(table, tolerance=5.0, budget=0.1)
    assert found["ranking_score_fraction"] == 1.0 and found["indicator_beats_baselines"] is True
    assert found["best_baseline_fraction"] < 1.0 and found["recommend_hit"] == 1.0
    assert found["partial_mean"] == pytest.approx(1.0) and found["adds_beyond_drop"]
    text = P.conclusions_text(found)
    assert f"{found['n_separated']} pairs" in text and f"{found['partial_mean']:+.2f}" in text
    sentence = P.when_not_to_trust(found)
    assert sentence.count(".") <= 4 and f"{found['controlled_pairs']} pairs" in sentence


def test_bad_inputs_raise_clear_errors():
    table = audit_table(n_configurations=2)
    with pytest.raises(TypeError, match="table must be a pandas DataFrame"):
        P.predictor_agreement(table.to_dict())
    with pytest.raises(ValueError, match="no reference rows"):
        P.predictor_agreement(table, reference=("lira_online", "auc"))
    with pytest.raises(ValueError, match="tolerances must be positive"):
        P.utility_controlled(table, [-1.0])
    with pytest.raises(ValueError, match="test_performance_se"):
        P.utility_controlled(audit_table(with_baselines=False), [1.0])
    with pytest.raises(ValueError, match="unknown predictor"):
        P.recommend(table, 0.1, "accuracy")
    with pytest.raises(ValueError, match="budget"):
        P.recommend(table, -0.1)
    with pytest.raises(ValueError, match="same length"):
        P.partial_spearman([1, 2, 3, 4], [1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="lacks the columns"):
        P.predictor_agreement(table.drop(columns="value"))
    with pytest.raises(ValueError, match="configuration columns"):
        P.configuration_keys(table.drop(columns="model"))


@pytest.fixture(scope="module")
def real_table():
    """A small real audit (``audit.run_audit``: logistic regression, 8 shadows, 3 of the models as targets)."""
    import warnings

    from mislib import quantizers as Q
    from mislib.evaluation import audit
    from mislib.evaluation.synthetic_data import GaussianMixture

    if "target" not in audit.COLUMNS:
        pytest.skip("this mislib's audit has no baseline rows and no targets yet")
    law = GaussianMixture(dim=16, k_modes=2, separation=2.0)
    X, y = law.sample(64, seed=1)
    Xt, yt = law.sample(400, seed=2)
    quantizers = {"identity": Q.get("identity"), "coarse public grid": Q.get("fixed_grid", step=100.0),
                  "uniform 4-bit": Q.get("uniform", bits=4), "uniform 2-bit": Q.get("uniform", bits=2),
                  "pruning 50%": Q.get("magnitude_pruning", sparsity=0.5)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return audit.run_audit(X, y, Xt, yt, quantizers, model=audit.ModelSpec(kind="logistic", ridge=1e-4),
                               n_shadow=8, seed=3, n_bootstrap=50, indicator_bootstrap=4, n_targets=3)


def test_on_a_real_audit_the_drop_from_the_test_rows_is_the_stored_one(real_table):
    assert P.configuration_keys(real_table) == ["model", "sample_size", "seed", "target"]
    stored = P.release_table(real_table).set_index(["target", "quantizer"])
    derived = P.release_table(real_table[real_table.measurement != "test_performance_drop"]).set_index(
        ["target", "quantizer"])
    np.testing.assert_allclose(derived["test_performance_drop"], stored["test_performance_drop"], atol=1e-9)
    assert (stored["performance_se"] > 0).any() and stored["standardised_distortion"].notna().all()
    agreements = P.predictor_agreement(real_table)
    assert set(agreements.target) == {0, 1, 2}
    assert set(P.predictor_names()) <= set(agreements.predictor)      # every predictor is in the real table
    found = P.conclusions(real_table)
    assert found["n_configurations"] == 3 and found["partial_clusters"] == 1   # three targets of one pool


def test_regret_difference_is_paired_by_configuration():
    table = audit_table(n_configurations=6, seed=8)
    ours, _ = P.recommend(table, 0.2)
    theirs, _ = P.recommend(table, 0.2, "fewer bits")
    difference = P.regret_difference(table, 0.2, "ranking_score", "fewer bits")
    assert difference["n"] == 6
    assert difference["mean"] == pytest.approx((ours.regret - theirs.regret).mean())
    assert difference["mean"] <= 0 and difference["low"] <= difference["mean"] <= difference["high"]
    assert P.regret_difference(table, 0.2, "ranking_score", "ranking_score")["high"] == 0


def test_a_table_where_the_attack_separates_nothing_still_concludes():
    table = audit_table(n_configurations=5, seed=9, width=1.0)          # every interval overlaps every other
    curve = P.utility_controlled(table, [1.0, math.inf]).set_index(["tolerance", "predictor"])
    assert (curve["n_pairs"] == 0).all() and curve["concordant_fraction"].isna().all()
    found = P.conclusions(table)
    assert found["n_separated"] == 0 and found["controlled_pairs"] == 0 and not found["controlled_decides"]
    assert "this test does not decide here" in P.conclusions_text(found)
    assert found["partial_mean"] == pytest.approx(1.0)                  # the partial correlation needs no intervals


def test_four_configurations_are_too_few_to_claim_more_than_the_drop():
    found = P.conclusions(audit_table(n_configurations=4, seed=6, width=0.002), tolerance=5.0, budget=0.1)
    assert found["partial_mean"] == pytest.approx(1.0) and found["partial_positive"] == 4
    assert found["partial_p"] == pytest.approx(0.125)                  # 4 of 4 positive: not below 0.05
    assert not found["partial_significant"] and not found["adds_beyond_drop"]
    assert "does not demonstrably know more" in P.conclusions_text(found)
