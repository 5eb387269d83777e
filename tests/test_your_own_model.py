"""The example of the README section "Use on your own model" (issue 8, item 5) runs and says what it should:
examples/your_own_model.py trains a torch MLP on the breast-cancer data and prints the indicator of six releases."""

from __future__ import annotations

import importlib.util
import math
import warnings

import pytest
import torch

from mislib.indicator import NotAtOptimumWarning
from mislib.infra.paths import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "your_own_model.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("your_own_model", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("error", NotAtOptimumWarning)     # the example trains to the optimum it claims
        table = example.main(seed=0, n_bootstrap_ci=4)
    return table.set_index("quantizer")


def test_prints_the_table(run, capsys):
    assert list(run.index) == ["no quantization", "uniform 8-bit", "uniform 4-bit", "uniform 4-bit, pow2 scale",
                               "ternary (BitNet b1.58)", "public grid, step 0.5"]
    assert (run["sample_size"] == 569).all() and (run["n_coordinates"] == 30 * 4 + 4 + 4 + 1).all()


def test_no_quantization_leaks_every_coordinate(run):
    row = run.loc["no quantization"]
    p = row["n_coordinates"]
    # every weight is released exactly: z = 0 everywhere, each coordinate counts Phi_bar(0) = 1/2
    assert row["r_min"] == 0 and row["r_min_with_scale"] == 0 and row["scale_channel"] == "none"
    assert row["weights_at_risk"] == pytest.approx(p / 2)
    assert row["r_soft"] == pytest.approx(-math.log(p / 2) / 569)
    assert row["p_flip"] == 1 and row["delta_bound"] == 1


def test_a_published_float_scale_leaks_whatever_the_weights_do(run):
    for label in ("uniform 8-bit", "uniform 4-bit", "ternary (BitNet b1.58)"):
        row = run.loc[label]
        assert row["scale_channel"] == "continuous"
        assert row["r_min"] > 0 and row["r_min_with_scale"] == 0, label   # the weights alone would look safe
    pow2 = run.loc["uniform 4-bit, pow2 scale"]
    assert pow2["scale_channel"] == "stored-on-grid" and 0 < pow2["r_min_with_scale"] <= pow2["r_min"]
    assert pow2["r_min_with_scale"] == pytest.approx(min(pow2["r_min"], pow2["scale_r"]))


def test_coarser_releases_rank_as_more_private(run):
    order = ["no quantization", "uniform 8-bit", "uniform 4-bit", "ternary (BitNet b1.58)", "public grid, step 0.5"]
    at_risk = run.loc[order, "weights_at_risk"]
    assert at_risk.is_monotonic_decreasing and at_risk.is_unique, at_risk        # the weights alone
    r_soft = run.loc[order, "r_soft_with_scale"]
    assert r_soft.iloc[1:].is_monotonic_increasing and r_soft.iloc[1:].is_unique, r_soft
    # 8 bits is as leaky as no quantization: a few weights move off their point cells, but each of the four tensors
    # publishes a float scale (one more coordinate at z = 0 each)
    assert r_soft["uniform 8-bit"] == pytest.approx(r_soft["no quantization"], rel=0.01)
    grid = run.loc["public grid, step 0.5"]
    # the only release with a positive rate, and a non-vacuous bound on Delta_n
    assert grid["r_soft_with_scale"] > 0 and (run.drop(index="public grid, step 0.5")["r_soft_with_scale"] < 0).all()
    assert 0 < grid["p_flip_with_scale"] < 0.5
    assert grid["delta_bound_with_scale"] == pytest.approx(min(1.0, 2 * grid["p_flip_with_scale"]))


def test_bootstrap_intervals(run):
    assert (run["n_bootstrap_ci"] == 4).all()
    low, high = run["r_soft_with_scale_low"], run["r_soft_with_scale_high"]
    assert (low <= high).all() and low.notna().all()
    grid = run.loc["public grid, step 0.5"]
    assert grid["r_soft_with_scale_low"] > 0        # the grid's positive rate is not an accident of this sample


def test_ranking_score_respects_data_processing_and_orders_the_releases(run):
    score = run["ranking_score"]
    assert score["no quantization"] == 0 and (score >= 0).all()           # never below the unquantized weights
    assert run.loc["no quantization", "expected_exits_with_scale"] == pytest.approx(129)
    order = ["no quantization", "uniform 8-bit", "uniform 4-bit", "ternary (BitNet b1.58)", "public grid, step 0.5"]
    assert score[order].is_monotonic_increasing and score[order].is_unique, score
    # a stored power-of-two scale has cells of its own: above the same weights with a float scale
    assert score["uniform 4-bit, pow2 scale"] > score["uniform 4-bit"]
    grid = run.loc["public grid, step 0.5"]
    assert grid["expected_exits_with_scale"] < 1 and grid["delta_estimate"] < 1
    assert (run.drop(index="public grid, step 0.5")["delta_estimate"] == 1).all()
    assert (run["ranking_score_averaged"] >= 0).all() and run.loc["no quantization", "ranking_score_averaged"] == 0
