"""The conclusions of notebooks/05_synthetic_ranking, read back from the committed paper-preset table
data/results/synthetic_ranking.csv (not recomputed: the table is checked against its sealed checksum)."""

import json

import numpy as np
import pytest

from mislib.evaluation import agreement, audit
from mislib.studies import synthetic_ranking
from mislib.infra.tables import read_table
from mislib.infra.paths import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "data" / "results"
ATTACK, TRUTH = synthetic_ranking.ATTACK, synthetic_ranking.TRUTH
R_MIN, R_SOFT, BITS = synthetic_ranking.R_MIN, synthetic_ranking.R_SOFT, synthetic_ranking.BITS
SCORE, AVERAGED = synthetic_ranking.SCORE, synthetic_ranking.AVERAGED


@pytest.fixture(scope="module")
def table():
    if not (RESULTS / "synthetic_ranking.csv").exists():
        pytest.skip("no committed paper table (run: python -m mislib.infra.reproduce --preset paper --only 05)")
    return read_table("synthetic_ranking", directory=RESULTS)     # checksum verified


@pytest.fixture(scope="module")
def config():
    return json.loads((RESULTS / "synthetic_ranking.json").read_text())["config"]


@pytest.fixture(scope="module")
def datasets(config):
    high, low = (data["dataset"] for data in config["datasets"])
    return high, low


@pytest.fixture(scope="module")
def pooled(table):
    return agreement.pooled_agreement(agreement.study_agreement(table), ["dataset", "model", "reference", "score"])


def test_table_is_the_paper_design(table, config, datasets):
    high, low = datasets
    assert list(table.columns) == ["dataset", *audit.COLUMNS]
    keys = ["dataset", "model", "quantizer", "sample_size", "seed", "method", "measurement"]
    assert not table.duplicated(keys).any()
    first = config["datasets"][0]
    assert first["dim"] == 128 and first["n_shadow"] >= 64 and sorted(first["models"]) == ["logistic", "mlp"]
    for dataset in (high, low):
        sizes = sorted(table[table.dataset == dataset].sample_size.unique())
        assert len(sizes) >= 4 and sizes[-1] / sizes[0] >= 16
    fits = table[(table.method == "cost") & (table.measurement == "shadow_model_fits")]
    assert (fits.value >= 65).all()
    quantizers = set(table[table.dataset == high].quantizer) - {"(all)"}
    assert len(quantizers) >= 10
    for needed in ("uniform 8-bit", "uniform 4-bit", "uniform 3-bit", "uniform 2-bit", "sign", "ternary absmean",
                   "ternary 33% sparse", "ternary 50% sparse", "ternary 90% sparse", "pruning 33%", "pruning 50%",
                   "pruning 90%", "k-means 3-bit", "stochastic rounding, public 4-bit grid",
                   "uniform 4-bit, public scale"):
        assert needed in quantizers, needed
    methods = set(table[table.dataset == high].method)
    assert set(audit.ATTACKS) | {"indicator", "test", "cost", "best_attack"} <= methods
    assert (table[table.dataset == low].method == "monte_carlo").any()


def test_the_ranking_score_ranks_like_the_best_attack_in_dimension_128(pooled, datasets):
    high, _ = datasets
    for model in ("logistic", "mlp"):
        score = synthetic_ranking.pooled_value(pooled, high, model, ATTACK, SCORE)
        assert score >= 0.95
        assert synthetic_ranking.pooled_value(pooled, high, model, ATTACK, SCORE, "n_separated") >= 100
        assert synthetic_ranking.pooled_value(pooled, high, model, ATTACK, SCORE, "mean_kendall_tau") > 0.5
        # r_min does worse than a coin on the same pairs, the naive "fewer bits" clearly worse than the score
        assert synthetic_ranking.pooled_value(pooled, high, model, ATTACK, R_MIN) < 0.5
        assert synthetic_ranking.pooled_value(pooled, high, model, ATTACK, BITS) < score - 0.05
        # the previous r_soft (nearer threshold only) within three points of it
        assert abs(synthetic_ranking.pooled_value(pooled, high, model, ATTACK, R_SOFT) - score) < 0.03


def test_indicators_rank_like_the_montecarlo_truth_in_dimension_1(pooled, datasets):
    _, low = datasets
    score = synthetic_ranking.pooled_value(pooled, low, "logistic", TRUTH, SCORE)
    assert synthetic_ranking.pooled_value(pooled, low, "logistic", TRUTH, R_MIN) >= 0.85
    assert score >= 0.9 and score >= synthetic_ranking.pooled_value(pooled, low, "logistic", TRUTH, R_SOFT)
    assert synthetic_ranking.pooled_value(pooled, low, "logistic", TRUTH, BITS) < 0.65
    assert synthetic_ranking.pooled_value(pooled, low, "logistic", TRUTH, SCORE, "n_separated") >= 50
    assert synthetic_ranking.pooled_value(pooled, low, "logistic", ATTACK, SCORE, "n_separated") == 0   # attacks separate nothing


def test_the_best_score_is_an_indicator(pooled, datasets):
    _, low = datasets
    for (dataset, _, _), group in pooled[pooled.n_separated > 0].groupby(["dataset", "model", "reference"]):
        winner = group.sort_values("concordant_fraction", ascending=False).iloc[0].score
        assert winner.startswith("indicator.")
        if dataset == low:
            assert winner.startswith(SCORE)


def test_r_min_in_dimension_128_is_zero_or_vanishing(table, datasets):
    high, _ = datasets
    r_min = table[(table.dataset == high) & (table.method == "indicator") & (table.measurement == "r_min_with_scale")]
    flags = table[(table.dataset == high) & (table.method == "quantizer") & (table.measurement == "continuous_scale")]
    continuous = set(flags[flags.value == 1].quantizer)
    assert (r_min[r_min.quantizer.isin(continuous)].value == 0).all()
    positive = r_min[r_min.value > 0]
    assert set(positive.quantizer) <= {"uniform 4-bit, public scale", "uniform 4-bit, power-of-two scale"}
    assert (positive.value * positive.sample_size).max() < 1e-2


def test_indicator_bound_is_above_the_montecarlo_truth(table):
    versus = synthetic_ranking.indicator_vs_montecarlo(table)
    versus = versus[versus["quantizer.deterministic"] == 1]
    above = versus["monte_carlo.delta_best_lower_bound_low"] > versus["indicator.delta_bound_with_scale"]
    assert len(versus) >= 50 and above.mean() <= 0.05


def test_coarse_quantization_hides_members_at_the_smallest_n(table, datasets):
    high, _ = datasets
    n0 = table[table.dataset == high].sample_size.min()
    for model in ("logistic", "mlp"):
        part = table[(table.dataset == high) & (table.model == model) & (table.sample_size == n0)
                     & (table.seed == 0)]
        wide = synthetic_ranking.wide_table(part, [("best_attack", "auc"), ("indicator", "ranking_score")], ["quantizer"])
        wide = wide.set_index("quantizer")
        identity, coarse = wide.loc["identity"], wide.loc["uniform 2-bit"]
        assert identity["best_attack.auc"] > 0.9
        assert coarse["best_attack.auc_high"] < identity["best_attack.auc_low"]
        assert coarse["indicator.ranking_score"] > identity["indicator.ranking_score"] == 0


def test_the_indicator_is_much_cheaper_than_a_shadow_audit(table, datasets, config):
    high, _ = datasets
    costs = synthetic_ranking.cost_summary(table)
    costs_high = costs[costs.dataset == high]
    assert (costs.shadow_model_fits == config["datasets"][0]["n_shadow"] + 1).all()
    assert (costs.indicator_model_fits == 1).all()
    assert costs_high.shadow_over_indicator.min() > 5
    assert np.median(costs_high.shadow_over_indicator) > 10


def test_conclusions_read_each_number_from_its_own_row():
    """Every (data set, model, reference, score, field) gets a distinct value: a conclusion read from the wrong
    row or field would come out wrong."""
    import pandas as pd

    rows, expected = [], {}
    for k, (dataset, model, reference, score) in enumerate(
            (d, m, r, s) for d in ("high", "low") for m in ("logistic", "mlp") for r in (ATTACK, TRUTH)
            for s in (SCORE, AVERAGED, R_MIN, R_SOFT, BITS)):
        row = {"dataset": dataset, "model": model, "reference": reference, "score": score,
               "concordant_fraction": k / 100, "n_separated": 1000 + k, "mean_kendall_tau": -k / 100}
        rows.append(row)
        expected[(dataset, model, reference, score)] = row
    found = synthetic_ranking.conclusions(pd.DataFrame(rows), "high", "low", dim=7)
    for model in ("logistic", "mlp"):
        for key, score in (("score", SCORE), ("averaged", AVERAGED), ("r_soft", R_SOFT), ("r_min", R_MIN),
                           ("bits", BITS)):
            assert found[model][key] == expected[("high", model, ATTACK, score)]["concordant_fraction"], key
        assert found[model]["separated"] == expected[("high", model, ATTACK, SCORE)]["n_separated"]
        assert found[model]["score_tau"] == expected[("high", model, ATTACK, SCORE)]["mean_kendall_tau"]
        assert found[model]["averaged_tau"] == expected[("high", model, ATTACK, AVERAGED)]["mean_kendall_tau"]
        assert found[model]["r_soft_tau"] == expected[("high", model, ATTACK, R_SOFT)]["mean_kendall_tau"]
    truth = found["dimension 1"]
    assert truth["r_min"] == expected[("low", "logistic", TRUTH, R_MIN)]["concordant_fraction"]
    assert truth["score"] == expected[("low", "logistic", TRUTH, SCORE)]["concordant_fraction"]
    assert truth["separated"] == expected[("low", "logistic", TRUTH, SCORE)]["n_separated"]
    assert found["attack_separated_low"] == expected[("low", "logistic", ATTACK, SCORE)]["n_separated"]
    assert found.report.splitlines()[0].startswith("dimension 7, logistic, against the best attack")
    with pytest.raises(ValueError, match="0 pooled rows"):
        synthetic_ranking.pooled_value(pd.DataFrame(rows), "high", "svm", ATTACK, R_SOFT)


def test_paper_conclusions_and_costs_from_the_committed_table(table, pooled, datasets, config):
    high, low = datasets
    found = synthetic_ranking.conclusions(pooled, high, low, dim=config["datasets"][0]["dim"])
    for model in ("logistic", "mlp"):
        assert found[model]["score"] >= 0.95 and found[model]["r_min"] < 0.5
    assert found["attack_separated_low"] == 0
    costs = synthetic_ranking.cost_conclusions(table, high, dim=config["datasets"][0]["dim"])
    ratio = synthetic_ranking.cost_summary(table).query("dataset == @high").shadow_over_indicator
    assert costs["ratio_min"] == ratio.min() and costs["ratio_median"] == pytest.approx(ratio.median())
    assert costs["ratio_min"] > 5 and costs["montecarlo_model_fits"] > 100
    assert f"{ratio.min():.0f} to {ratio.max():.0f} times the indicator" in costs.report


def test_overview_and_deterministic_quantizers(table, datasets):
    high, low = datasets
    view = synthetic_ranking.overview(table, high, "logistic", 32, seed=0)
    assert view["best_attack.auc"].is_monotonic_decreasing and "identity" in view.index
    # the ranking score is (log d - log min(E, d)) / n with E the published values expected to change
    d = view.loc["identity", "indicator.expected_exits_with_scale"]
    expected = (np.log(d) - np.log(np.minimum(view["indicator.expected_exits_with_scale"], d))) / 32
    assert np.allclose(view["indicator.ranking_score"], expected, rtol=1e-9) and (view["indicator.ranking_score"] >= 0).all()
    deterministic = synthetic_ranking.deterministic_quantizers(table, high)
    assert "stochastic rounding, public 4-bit grid" not in deterministic and "uniform 4-bit" in deterministic
    described = synthetic_ranking.describe_quantizers(synthetic_ranking.STUDY_QUANTIZERS)
    assert set(described.index[~described.deterministic]) == {"stochastic rounding, public 4-bit grid"}
