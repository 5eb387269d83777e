"""Tests of mislib.studies.molecular: splits, features, Pareto fronts, the summaries and conclusions (on a table
built by hand, where every answer is known), one small real configuration, and the committed paper table
data/results/molecular.csv with the conclusions that notebook 06 states from it."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mislib.studies import molecular as study
from mislib.infra.paths import PROJECT_ROOT


# --------------------------------------------------------------------------------------------------- split

def test_split_regression_sizes_disjoint_and_seeded():
    y = np.linspace(0, 1, 101)
    split = study.split_molecules(y, "regression", reference_fraction=0.2, test_fraction=0.3, seed=4)
    assert (split.reference.size, split.test.size, split.pool.size) == (20, 30, 51)
    together = np.concatenate([split.reference, split.test, split.pool])
    assert np.array_equal(np.sort(together), np.arange(101))            # disjoint and covering
    again = study.split_molecules(y, "regression", reference_fraction=0.2, test_fraction=0.3, seed=4)
    other = study.split_molecules(y, "regression", reference_fraction=0.2, test_fraction=0.3, seed=5)
    assert np.array_equal(split.pool, again.pool) and not np.array_equal(split.pool, other.pool)


def test_split_classification_keeps_class_proportions():
    y = np.array([1] * 70 + [0] * 30)
    split = study.split_molecules(y, "classification", reference_fraction=0.2, test_fraction=0.2, seed=0)
    assert (split.reference.size, split.test.size, split.pool.size) == (20, 20, 60)
    assert (y[split.reference].sum(), y[split.test].sum(), y[split.pool].sum()) == (14, 14, 42)
    assert np.array_equal(np.sort(np.concatenate([split.reference, split.test, split.pool])), np.arange(100))


@pytest.mark.parametrize("kwargs, message", [
    (dict(y=np.zeros((4, 2)), kind="regression"), "1-d"),
    (dict(y=np.zeros(50), kind="ranking"), "unknown kind"),
    (dict(y=np.zeros(50), kind="regression", reference_fraction=0.6, test_fraction=0.4), "must be < 1"),
    (dict(y=np.zeros(50), kind="regression", test_fraction=0.0), "test_fraction must be >"),
    (dict(y=np.zeros(11), kind="regression"), "too few"),
])
def test_split_bad_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        study.split_molecules(**kwargs)


def test_split_seed_must_be_a_non_negative_integer():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        study.split_molecules(np.zeros(50), "regression", seed=-1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        study.split_molecules(np.zeros(50), "regression", seed=1.5)


# ------------------------------------------------------------------------------------------------ features

def test_featuriser_whitens_the_reference_rows_and_is_linear():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(60, 10)) @ rng.normal(size=(10, 10))
    other = rng.normal(size=(7, 10))
    f = study.Featuriser(4, standardise=False).fit(reference)
    Z = f.transform(reference)
    assert np.allclose(Z.mean(0), 0, atol=1e-12)
    assert np.allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-10)   # uncorrelated, unit variance
    assert np.allclose(f.components_ @ f.components_.T, np.eye(4), atol=1e-12)
    # affine in the input: transform(a + b) - transform(a) depends only on b
    shift = rng.normal(size=10)
    assert np.allclose(f.transform(other + shift) - f.transform(other),
                       (shift @ f.components_.T) / f.scale_)
    # the largest loading of every component is positive (deterministic signs)
    assert (f.components_[np.arange(4), np.abs(f.components_).argmax(1)] > 0).all()


def test_featuriser_imputes_continuous_embeddings_only():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(30, 5))
    reference[3, 2] = np.nan
    f = study.Featuriser(3, standardise=True).fit(reference)
    assert np.isfinite(f.transform(reference)).all()
    with pytest.raises(ValueError, match="NaN or infinite"):
        study.Featuriser(3, standardise=False).fit(reference)


def test_full_representation_keeps_fingerprints_and_standardises_continuous_values():
    rng = np.random.default_rng(3)
    bits = (rng.random((40, 30)) < 0.1).astype(float)
    f = study.Featuriser(None, standardise=False).fit(bits[:20])
    assert np.array_equal(f.transform(bits[20:]), bits[20:])              # 0/1 inputs, sparsity kept
    values = rng.normal(3.0, 2.0, size=(40, 6))
    f = study.Featuriser(None, standardise=True, clip=5.0).fit(values[:20])
    Z = f.transform(values[:20])
    assert Z.shape == (20, 6) and np.allclose(Z.mean(0), 0, atol=1e-6) and np.allclose(Z.std(0), 1, atol=1e-5)
    with pytest.raises(ValueError, match="6"):
        f.transform(values[:, :4])
    prepared = study.prepare("freesolv", "maccs", n_molecules=80, seed=1, n_features=None)
    assert prepared.X_pool.shape[1] == 167 and set(np.unique(prepared.X_pool)) <= {0.0, 1.0}


def test_featuriser_bad_inputs():
    reference = np.random.default_rng(2).normal(size=(5, 20))
    with pytest.raises(ValueError, match="span only 4 directions"):
        study.Featuriser(5, standardise=False).fit(reference)
    with pytest.raises(RuntimeError, match="before fit"):
        study.Featuriser(2, standardise=False).transform(reference)
    f = study.Featuriser(2, standardise=False).fit(reference)
    with pytest.raises(ValueError, match="20"):
        f.transform(reference[:, :10])
    with pytest.raises(ValueError, match="n_features must be >= 1"):
        study.Featuriser(0, standardise=False)
    with pytest.raises(ValueError, match="2-d"):
        f.transform(np.zeros(20))


# ---------------------------------------------------------------------------------------------- pareto

def test_pareto_front_on_a_known_example():
    risk = np.array([0.50, 0.60, 0.55, 0.70, 0.50, 0.45])
    perf = np.array([0.90, 0.95, 0.85, 0.95, 0.90, 0.60])
    # 2 is beaten by 0 (lower risk, higher performance); 3 by 1 (same performance, lower risk);
    # 0 and 4 are the same point (both kept); 5 has the lowest risk (kept).
    assert study.pareto_front(risk, perf).tolist() == [True, True, False, False, True, True]


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        risk = rng.integers(0, 5, 15).astype(float)        # coarse values: many ties
        perf = rng.integers(0, 5, 15).astype(float)
        expected = [not any(risk[j] <= risk[i] and perf[j] >= perf[i] and (risk[j] < risk[i] or perf[j] > perf[i])
                            for j in range(15)) for i in range(15)]
        assert study.pareto_front(risk, perf).tolist() == expected


def test_pareto_front_bad_inputs():
    with pytest.raises(ValueError, match="NaN"):
        study.pareto_front([0.5, np.nan], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        study.pareto_front([0.5, 0.6], [0.1])


# ------------------------------------------------------------------------------------ summaries, by hand

# (quantizer, lira_auc, r_soft, classification AUROC, regression R^2, bits per weight) for both seeds; seed 1
# adds 0.01 to the AUC.
HAND = [("identity", 0.70, -0.10, 0.90, 0.60, 64.0),
        ("gentle", 0.66, -0.05, 0.89, 0.59, 8.0),
        ("harsh", 0.52, -0.08, 0.70, 0.30, 1.5)]


def hand_table() -> pd.DataFrame:
    rows = []
    for (task, kind), seed, (q, auc, r_soft, auroc, r2, bits) in itertools.product(
            [("b3db_classification", "classification"), ("freesolv", "regression")], (0, 1), HAND):
        base = {"task": task, "task_kind": kind, "embedder": "maccs", "model": "mlp", "quantizer": q,
                "sample_size": 100, "seed": seed}
        measured = [("lira_online_fixed_variance", "auc", auc + 0.01 * seed),
                    ("lira_online_fixed_variance", "advantage", 0.1), ("lira_online_fixed_variance", "tpr_at_1pct_fpr", 0.02),
                    ("loss_threshold", "auc", 0.55), ("best_attack", "auc", auc + 0.05),
                    ("indicator", "r_min", 0.0), ("indicator", "ranking_score", r_soft),
                    ("quantizer", "bits_per_weight", bits), ("quantizer", "sparsity", 0.0),
                    ("quantizer", "continuous_scale", float(q != "identity"))]
        if kind == "classification":
            measured += [("test", "auroc", auroc), ("test", "accuracy", auroc - 0.1)]
        else:
            measured += [("test", "r2", r2), ("test", "rmse", 1 - r2), ("test", "spearman", r2)]
        for method, measurement, value in measured:
            rows.append({**base, "method": method, "measurement": measurement, "value": value,
                         "value_low": value - 0.01, "value_high": value + 0.01})
    return pd.DataFrame(rows)


def test_per_seed_and_summarise():
    wide = study.per_seed(hand_table())
    assert len(wide) == 2 * 2 * 3
    harsh = wide[(wide["quantizer"] == "harsh") & (wide["task"] == "freesolv")]
    assert np.allclose(harsh["performance"], 0.30) and np.allclose(harsh["performance_change"], 0.30 - 0.60)
    summary = study.summarise(hand_table())
    row = summary[(summary["quantizer"] == "gentle") & (summary["task"] == "b3db_classification")].iloc[0]
    assert row["n_seeds"] == 2 and np.isclose(row["lira_auc"], 0.665)
    assert np.isclose(row["lira_auc_seed_se"], np.std([0.66, 0.67], ddof=1) / np.sqrt(2))


def test_ranking_and_conclusions_by_hand():
    ranking = study.quantizer_ranking(hand_table())
    assert ranking["quantizer"].tolist() == ["harsh", "gentle", "identity"]           # by mean LiRA AUC
    ranks = ranking.set_index("quantizer")
    assert ranks.loc["harsh", "lira_rank"] == 1 and ranks.loc["gentle", "ranking_score_rank"] == 1
    assert np.isclose(ranks.loc["harsh", "performance_change_classification"], -0.20)
    assert ranks.loc["harsh", "pareto_count"] == 2 and ranks.loc["identity", "pareto_count"] == 2
    found = study.conclusions(hand_table(), tolerance=0.02)
    assert found["most_private_lira"] == "harsh" and found["most_private_ranking_score"] == "gentle"
    assert np.isclose(found["cost_classification"], -0.20) and np.isclose(found["cost_regression"], -0.30)
    assert np.isclose(found["accuracy_change"], -0.20)
    assert np.isclose(found["identity_lira_auc"], 0.705) and np.isclose(found["privacy_gain_regression"], 0.18)
    assert found["recommended"] == "gentle"                      # loses 0.01 <= 0.02; harsh loses too much
    assert found["low_bit_quantizers"] == ["harsh"] and found["low_bit_lira_auc_range"] == pytest.approx((0.525, 0.525))
    assert study.conclusions(hand_table(), tolerance=0.005)["recommended"] is None
    text = study.conclusions_text(found)
    assert "**harsh**" in text and "**gentle**" in text and "-0.200" in text and "-0.010" in text


def test_summaries_refuse_bad_tables():
    with pytest.raises(TypeError, match="DataFrame"):
        study.per_seed({"task": []})
    with pytest.raises(ValueError, match="lacks the columns"):
        study.per_seed(hand_table().drop(columns=["embedder"]))
    with pytest.raises(ValueError, match="empty"):
        study.per_seed(hand_table().iloc[:0])
    no_identity = hand_table()
    no_identity = no_identity[no_identity["quantizer"] != "identity"]
    with pytest.raises(ValueError, match="identity"):
        study.per_seed(no_identity)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        study.conclusions(hand_table(), tolerance=-0.1)
    with pytest.raises(ValueError, match="no column"):
        study.with_pareto(study.summarise(hand_table()), risk="missing")


def test_plots_draw_one_panel_per_task():
    import matplotlib

    matplotlib.use("Agg")
    fig = study.plot_tradeoff(study.summarise(hand_table()))
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "b3db classification"
    fig2 = study.plot_indicator_against_attack(study.per_seed(hand_table()))
    assert [ax.get_title() for ax in fig2.axes] == ["b3db classification", "freesolv"]
    import matplotlib.pyplot as plt

    plt.close("all")


def test_grid_items_and_settings_are_checked():
    assert len(study.study_items()) == 4 * 4 * 3
    with pytest.raises(ValueError, match="unknown task"):
        study.study_items(tasks=["tox21"])
    with pytest.raises(ValueError, match="missing"):
        study.run_study({"n_features": 4})


# ------------------------------------------------------------------------------------ one real configuration

SMALL = dict(n_molecules=80, data_seed=0, reference_fraction=0.2, test_fraction=0.2, n_features=4, clip=5.0,
             hidden=2, ridge=1e-2, n_iter=150, lr=0.02, n_shadow=4, n_bootstrap=0, indicator_bootstrap=0)


def test_one_configuration_end_to_end():
    torch.set_num_threads(1)
    quantizers = [list(q) for q in study.STUDY_QUANTIZERS[:3]] + [["sign", "sign", {}]]
    item = {**SMALL, "task": "freesolv", "embedder": "maccs", "seed": 1, "quantizers": quantizers}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = study.configuration_rows(item)
        prepared = study.prepare("freesolv", "maccs", n_molecules=80, seed=1, n_features=4)
    assert list(rows.columns[:len(study.IDENTIFIERS)]) == list(study.IDENTIFIERS)
    assert (rows["n_pool"] == 48).all() and (rows["sample_size"] == 24).all() and (rows["n_test"] == 16).all()
    assert set(rows["quantizer"]) == {"identity", "uniform 8-bit", "uniform 4-bit", "sign", "(all)"}
    # the RMSE is reported in the task's units (kcal/mol): RMSE^2 = (1 - R^2) * variance of the test labels
    test = rows[rows["method"] == "test"].pivot_table(index="quantizer", columns="measurement", values="value")
    labels = prepared.y_test * prepared.target_scale
    assert np.allclose(test["rmse"] ** 2, (1 - test["r2"]) * labels.var(), rtol=1e-9)
    assert prepared.target_scale > 1                                   # FreeSolv labels spread over several kcal/mol
    assert prepared.X_pool.shape == (48, 4) and np.isfinite(prepared.X_pool).all()


def test_singular_targets_are_retrained_then_recorded_as_failed(monkeypatch):
    """A target without a positive-definite Hessian is retrained from other initialisations; when none works the
    configuration becomes one 'failure' row; any other error propagates."""
    from mislib.evaluation import audit

    seen = []

    def singular(*args, model, **kwargs):
        seen.append(model.init_seed)
        raise ValueError("standard_errors: the Hessian of the objective is not positive definite")

    monkeypatch.setattr(audit, "run_audit", singular)
    item = {**SMALL, "task": "freesolv", "embedder": "maccs", "seed": 2, "quantizers": [["identity", "identity", {}]]}
    rows = study.configuration_rows(item)
    assert seen == [2, 1002, 2002]
    assert len(rows) == 1 and rows["method"].iloc[0] == "failure" and rows["value"].iloc[0] == 3
    assert study.failures(rows)[["task", "embedder", "seed"]].iloc[0].tolist() == ["freesolv", "maccs", 2]

    def broken(*args, **kwargs):
        raise ValueError("X_pool has 3 features but X_test has 4")

    monkeypatch.setattr(audit, "run_audit", broken)
    with pytest.raises(ValueError, match="X_test has 4"):
        study.configuration_rows(item)


def test_prepare_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown embedder"):
        study.prepare("freesolv", "chemberta", n_molecules=50, seed=0, n_features=2)
    with pytest.raises(ValueError, match="unknown task"):
        study.prepare("qm9", "maccs", n_molecules=50, seed=0, n_features=2)


# ------------------------------------------------------------------------------- the committed paper table

RESULTS = PROJECT_ROOT / "data" / "results"
NOTEBOOK = PROJECT_ROOT / "notebooks" / "06_molecular_tradeoff.ipynb"


@pytest.fixture(scope="module")
def paper_table():
    from mislib.infra.tables import read_table

    if not (RESULTS / "molecular.csv").exists():
        pytest.skip("data/results/molecular.csv has not been generated (run the paper preset of notebook 06)")
    return read_table("molecular", directory=RESULTS)      # checksum verified against the sidecar


def test_paper_table_covers_the_grid(paper_table):
    sidecar = json.loads((RESULTS / "molecular.json").read_text())
    assert sidecar["config"]["shared"]["n_shadow"] >= 32
    assert set(paper_table["task"]) == set(study.TASKS)
    assert set(paper_table["embedder"]) == set(study.EMBEDDERS)
    quantizers = set(paper_table["quantizer"]) - {"(all)"}
    assert len(quantizers) >= 8
    assert {"sign", "ternary absmean", "ternary 90% sparse", "uniform 8-bit", "uniform 4-bit", "uniform 2-bit",
            "k-means 3-bit", "pruning 50%"} <= quantizers
    heads = paper_table[["seed", "target"]].drop_duplicates()
    assert len(heads) >= 8                                              # audited heads: independent training sets
    released = paper_table[paper_table["quantizer"] != "(all)"]
    counts = released.groupby(["task", "embedder", "quantizer"])[["seed", "target"]].apply(lambda g: len(g.drop_duplicates()))
    assert (counts == len(heads)).all()                                # every cell has every audited head
    assert {spec[0] for spec in study.FACTORIAL_RELEASES} <= set(released["quantizer"])   # and the factorial design
    assert {"rmia_online", "rmia_offline"} <= set(paper_table["method"])
    for kind, names in (("classification", {"auroc", "accuracy"}), ("regression", {"rmse", "r2", "spearman"})):
        tests = paper_table[(paper_table["task_kind"] == kind) & (paper_table["method"] == "test")]
        assert names <= set(tests["measurement"])


def _independent_conclusions(table: pd.DataFrame) -> dict:
    """The notebook's main statements recomputed with plain pandas on the long table (not through per_seed), on the
    study's ten quantizers (the factorial releases have their own analysis)."""
    table = table[table["quantizer"].isin([spec[0] for spec in study.STUDY_QUANTIZERS])]
    heads = ["task", "embedder", "seed", "target"]
    lira = table[(table["method"] == "lira_online_fixed_variance") & (table["measurement"] == "auc")]
    mean_auc = lira.groupby("quantizer")["value"].mean()
    r_soft = table[(table["method"] == "indicator") & (table["measurement"] == "ranking_score")].copy()
    r_soft["rank"] = r_soft.groupby(heads)["value"].rank(ascending=False)
    mean_rank = r_soft.groupby("quantizer")["rank"].mean()
    best = mean_auc.idxmin()
    out = {"most_private_lira": best, "most_private_lira_auc": mean_auc.min(),
           "identity_lira_auc": mean_auc["identity"], "rank_ranking_score": mean_rank}
    for kind, metric in (("classification", "auroc"), ("regression", "r2")):
        perf = table[(table["task_kind"] == kind) & (table["method"] == "test") & (table["measurement"] == metric)]
        wide = perf.pivot_table(index=heads, columns="quantizer", values="value")
        out[f"cost_{kind}"] = (wide[best] - wide["identity"]).mean()
        out[f"changes_{kind}"] = wide.sub(wide["identity"], axis=0).mean()
        kind_auc = lira[lira["task_kind"] == kind].groupby("quantizer")["value"].mean()
        out[f"identity_lira_auc_{kind}"] = kind_auc["identity"]
    bits = table[(table["method"] == "quantizer") & (table["measurement"] == "bits_per_weight")]
    bits = bits.groupby("quantizer")["value"].mean()
    out["low_bit"] = set(bits[bits <= 2].index)
    return out


def test_paper_conclusions_are_read_from_the_table(paper_table):
    found = study.conclusions(paper_table)
    expected = _independent_conclusions(paper_table)
    assert found["most_private_lira"] == expected["most_private_lira"]
    assert np.isclose(found["most_private_lira_auc"], expected["most_private_lira_auc"])
    assert np.isclose(found["identity_lira_auc"], expected["identity_lira_auc"])
    ranks = expected["rank_ranking_score"]
    assert found["most_private_ranking_score"] in set(ranks[ranks == ranks.min()].index)
    assert set(found["low_bit_quantizers"]) == expected["low_bit"]
    assert {"sign", "ternary absmean", "ternary 90% sparse", "uniform 2-bit"} <= expected["low_bit"]
    for kind in ("classification", "regression"):
        assert np.isclose(found[f"cost_{kind}"], expected[f"cost_{kind}"])
        assert np.isclose(found[f"identity_lira_auc_{kind}"], expected[f"identity_lira_auc_{kind}"])
    # the recommendation: the lowest mean LiRA AUC among quantizers within the tolerance in both task kinds
    ok = [q for q in expected["changes_classification"].index if q != "identity"
          and expected["changes_classification"][q] >= -found["tolerance"]
          and expected["changes_regression"][q] >= -found["tolerance"]]
    main = study.main_releases(paper_table)
    lira = main[(main["method"] == "lira_online_fixed_variance") & (main["measurement"] == "auc")]
    mean_auc = lira.groupby("quantizer")["value"].mean()
    assert found["recommended"] == (mean_auc[ok].idxmin() if ok else None)


def test_paper_findings_hold(paper_table):
    """The scientific statements of the notebook, checked on the committed table: quantizing the most private way
    lowers LiRA for most audited heads (paired by task, embedder, seed and target), the ranking score orders the
    releases as LiRA does far more often than r_min, and 8-bit uniform quantization is nearly free on both axes."""
    found = study.conclusions(paper_table)
    wide = study.per_seed(paper_table).set_index([*study.CONFIGURATION, "quantizer"])
    auc = wide["lira_auc"].unstack()
    gain = auc["identity"] - auc[found["most_private_lira"]]
    assert (gain > 0).mean() >= 0.75 and gain.mean() > 0.05
    assert found["ranking_score_concordant_fraction"] >= 0.8 > found["r_min_concordant_fraction"]
    performance = wide["performance"].unstack()
    assert abs((auc["uniform 8-bit"] - auc["identity"]).mean()) < 0.01
    assert abs((performance["uniform 8-bit"] - performance["identity"]).mean()) < 0.01


def test_paper_notebook_states_the_conclusions_of_the_table(paper_table):
    """The executed notebook (paper preset) shows exactly the text generated from the committed table."""
    if not NOTEBOOK.exists():
        pytest.skip("notebook 06 not written yet")
    notebook = json.loads(NOTEBOOK.read_text())
    shown = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            shown.append("".join(data.get("text/markdown", [])))
    if not any(shown):
        pytest.skip("notebook 06 is stored without outputs")
    assert study.conclusions_text(study.conclusions(paper_table)) in shown


def test_preset_settings_are_the_committed_paper_design():
    """The notebook's design, built by preset_sizes and study_settings, is the one the committed table records
    (its sidecar): a wrong key, value or quantizer would change the cache key and the table."""
    import json

    from mislib.infra.paths import PROJECT_ROOT

    sidecar = PROJECT_ROOT / "data" / "results" / "molecular.json"
    if not sidecar.exists():
        pytest.skip("no committed paper table")
    shared = json.loads(sidecar.read_text())["config"]["shared"]
    settings = study.study_settings(study.preset_sizes("paper", seed=0))
    assert shared == {**settings, "quantizers": [[label, name, dict(p)] for label, name, p in study.ALL_RELEASES]}
    smoke = study.preset_sizes("smoke", seed=3)
    assert smoke["seeds"] == [3] and study.study_settings(smoke, hidden=2)["hidden"] == 2
    assert list(study.study_settings(smoke)) == list(study.SETTING_KEYS)


def test_deprecated_indicator_agreement_is_the_evaluation_one():
    from mislib.evaluation import agreement

    table = hand_table()
    with pytest.warns(DeprecationWarning, match="evaluation.agreement"):
        old = study.indicator_agreement(table)
    new = agreement.indicator_agreement(study.check_table(table), reference=study.LIRA, by=study.CONFIGURATION)
    assert new.set_index("indicator").loc["ranking_score", "n_separated"] > 0
    pd.testing.assert_frame_equal(old, new)


def test_design_summary_counts_the_weights_of_each_head():
    paper = study.preset_sizes("paper")
    text = study.design_summary(paper)
    assert "b3db_classification 16 hidden units (545 weights)" in text and "freesolv 4 hidden units (137 weights)" in text
    assert "32 principal components" in text and "32 shadows, 8 audited heads" in text
    text = study.design_summary({**paper, "n_features": None})
    # 16 x (167 + 2) + 1 = 2,705 (MACCS) to 16 x (2,048 + 2) + 1 = 32,801 (ECFP4); 4 units: 677 to 8,201
    assert "b3db_classification 16 hidden units (2,705 to 32,801 weights)" in text
    assert "freesolv 4 hidden units (677 to 8,201 weights)" in text
    assert "ecfp4 2,048, maccs 167" in text and "minimol 512" in text
    assert "32 shadows, 8 audited heads" in text
    smoke = study.design_summary(study.preset_sizes("smoke"))
    assert "8 principal components" in smoke and "(41 weights)" in smoke      # 4 x (8 + 2) + 1


def test_head_hidden_reads_an_int_or_a_dict_per_task():
    from mislib.studies import molecular, molecular_audit

    assert molecular_audit.head_hidden(8, "freesolv") == 8
    assert molecular_audit.head_hidden({"freesolv": 4, "b3db_classification": 16}, "b3db_classification") == 16
    assert molecular.head_hidden({"hidden": {"freesolv": 4}}, "freesolv") == 4
    with pytest.raises(KeyError):
        molecular_audit.head_hidden({"freesolv": 4}, "solubility")
