"""Exit probabilities over whole cells: the bound against exact Delta_n, the ranking score's data-processing
property, the uncertainty-averaged estimator and P(A more private than B)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from mislib import quantizers as Q
from mislib.crossing import (averaged_release_log_exits, log_exit_probabilities, probability_more_private,
                             scale_cell_bounds)
from mislib.indicator import indicator_from_estimates
from mislib.studies.validation import bernoulli_bound_sweep, gaussian_bound_sweep


def test_the_bound_holds_in_every_exact_gaussian_case_and_the_nearer_threshold_version_does_not():
    table = gaussian_bound_sweep()
    assert len(table) == 540                       # 6 sample sizes (2..1e4) x 9 widths (0.1..30 se) x 10 positions
    assert int(table["violation"].sum()) == 0
    assert int(table["violation_nearest"].sum()) > 0   # counting one threshold is not a bound (issue 12)
    tight = table[table["log_delta"] > -700]
    assert float((tight["log_delta"] - tight["log_bound"]).max()) > math.log(0.5)   # and it is not loose


def test_bernoulli_bound_from_exact_binomial_crossing_holds_and_the_gaussian_tail_version_fails():
    table = bernoulli_bound_sweep()
    assert len(table) > 250
    assert int(table["violation"].sum()) == 0
    failures = table[table["violation_gaussian_tail"]]
    # the skewed cases (small p) fail; the symmetric p = 1/2 never does
    assert len(failures) > 0 and float(failures["p"].median()) <= 0.05 and not (failures["p"] == 0.5).any()


@pytest.mark.parametrize("scale_format", ["bfloat16", "float16", "pow2"])
def test_scale_cells_match_the_stored_values_and_the_margins(scale_format):
    g = torch.Generator().manual_seed(1)
    raw = torch.exp(torch.randn(500, generator=g, dtype=torch.float64) * 2)   # normal range of float16
    stored, margin = Q.store_scale(raw, scale_format)
    low, high = scale_cell_bounds(raw, scale_format)
    assert bool(((low <= raw) & (raw <= high)).all())
    torch.testing.assert_close(torch.minimum(raw - low, high - raw), margin, rtol=1e-10, atol=0)
    # just inside each face the stored value is the same, just outside it changes
    for face, inside in ((low, 1 + 1e-9), (high, 1 - 1e-9)):
        assert torch.equal(Q.store_scale(face * inside, scale_format)[0], stored)
    assert not bool((Q.store_scale(high * (1 + 1e-9), scale_format)[0] == stored).any())


def test_log_exit_probabilities_far_in_the_tail_and_on_a_point_cell():
    t, s = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0.01, 0.5], dtype=torch.float64)
    log_q = log_exit_probabilities(t, s, torch.tensor([-0.5, 1.0], dtype=torch.float64),
                                   torch.tensor([0.5, 1.0], dtype=torch.float64))
    assert float(log_q[0]) == pytest.approx(math.log(2) + stats.norm.logsf(50), rel=1e-12)
    assert float(log_q[1]) == 0.0


QUANTIZERS = [Q.get("fixed_grid", step=0.3), Q.get("uniform", bits=4), Q.get("uniform", bits=2, scale_format="pow2"),
              Q.get("uniform", bits=3, symmetric=False, scale_format="bfloat16"),
              Q.get("uniform", bits=8, scale_format="float16"), Q.get("uniform", bits=4, per_channel=True),
              Q.get("sign"), Q.get("ternary_absmean"), Q.get("ternary_sparsity", sparsity=0.5),
              Q.get("magnitude_pruning", sparsity=0.5), Q.get("kmeans", bits=2),
              Q.get("prune_then_quantize", sparsity=0.3, bits=4, scale_format="pow2"),
              Q.get("stochastic_rounding", step=0.2)]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(index=st.integers(0, len(QUANTIZERS) - 1), seed=st.integers(0, 10 ** 6),
       log_se=st.floats(-6, 1), n=st.integers(2, 10 ** 5), size=st.integers(1, 12))
def test_data_processing_no_quantized_release_scores_below_the_unquantized_weights(index, seed, log_se, n, size):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(3, size, generator=g, dtype=torch.float64)
    se = torch.exp(log_se + 0.5 * torch.randn(3, size, generator=g, dtype=torch.float64))
    identity = indicator_from_estimates(theta, se, Q.Identity(), n, average=True, n_nodes=8)
    assert identity.ranking_score == 0.0 and identity.ranking_score_averaged == 0.0
    result = indicator_from_estimates(theta, se, QUANTIZERS[index], n, average=True, n_nodes=8)
    assert result.ranking_score >= identity.ranking_score
    assert result.ranking_score_averaged >= identity.ranking_score_averaged
    assert result.expected_exits_with_scale >= 0 and result.r_min >= 0


def test_the_score_separates_float_scale_releases_by_their_weights():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(64, generator=g, dtype=torch.float64)
    se = torch.full((64,), 0.01, dtype=torch.float64)
    coarse = indicator_from_estimates(theta, se, Q.get("uniform", bits=2), 1000)
    fine = indicator_from_estimates(theta, se, Q.get("uniform", bits=8), 1000)
    assert coarse.r_min_with_scale == fine.r_min_with_scale == 0.0       # both publish a float scale
    assert coarse.ranking_score > fine.ranking_score > 0.0              # the score still tells them apart


def test_uncertainty_average_is_the_one_dimensional_integral():
    theta, se, step = 0.43, 0.05, 1.0      # near the threshold at 0.5: the cell of theta* is uncertain
    grid = Q.FixedGrid(step)

    def q(t):
        low, high = grid.thresholds_around(t)
        return stats.norm.sf((t - low) / se) + stats.norm.sf((high - t) / se)

    expected = integrate.quad(lambda t: stats.norm.pdf(t, theta, se) * q(t), theta - 10 * se, theta + 10 * se,
                              points=[0.5], limit=200)[0]
    log_w, log_s = averaged_release_log_exits(grid, torch.tensor([theta], dtype=torch.float64),
                                              torch.tensor([se], dtype=torch.float64), n_nodes=4000)
    assert log_s is None
    assert float(log_w.exp()[0]) == pytest.approx(expected, rel=2e-3)
    plug_in = q(theta)
    assert expected > 1.5 * plug_in        # the plug-in ignores that theta* may sit on the other side


def test_probability_more_private_is_a_probability_over_the_uncertainty():
    theta = torch.tensor([0.3, -0.2, 0.05], dtype=torch.float64)
    se = torch.full((3,), 0.05, dtype=torch.float64)
    a, b = Q.FixedGrid(1.0), Q.FixedGrid(0.25)
    p_ab = probability_more_private(theta, se, a, b, n_draws=200, seed=1)
    p_ba = probability_more_private(theta, se, b, a, n_draws=200, seed=1)
    assert p_ab + p_ba == pytest.approx(1.0)
    assert p_ab > 0.9                                      # the coarse grid: every coordinate far from a face
    assert probability_more_private(theta, se, a, a, n_draws=20) == 0.5
    with pytest.raises(TypeError, match="quantizer_b"):
        probability_more_private(theta, se, a, "sign")
