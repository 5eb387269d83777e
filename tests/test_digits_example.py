"""examples/digits_cnn.py at the smoke preset: it runs end to end and its numbers are right where they can be checked."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import digits_cnn  # noqa: E402

from mislib.indicator import standard_errors  # noqa: E402
from mislib.modules import flatten_params  # noqa: E402


@pytest.fixture(scope="module")
def smoke():
    return digits_cnn.run("smoke", verbose=False)


def test_standard_errors_are_the_exact_sandwich(smoke):
    X, y = smoke["members"]
    assert smoke["target_gradient_norm"] <= digits_cnn.GRAD_TOL      # at the optimum, as the sandwich assumes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = flatten_params(standard_errors(smoke["model"], X, y, "logistic", ridge=smoke["ridge"],
                                               penalize=digits_cnn.penalize, hessian="exact"))
    assert smoke["stderr"].shape == exact.shape == (smoke["parameters"],)
    assert float(((smoke["stderr"] - exact).abs() / exact).max()) < 1e-6
    assert smoke["stderr_method"] == "exact-pcg" and smoke["cg_residual"] <= 1e-9
    # the Gauss-Newton shortcut is not exact on a network: its error is reported, and is not negligible here
    assert smoke["gauss_newton_max_relative_error"] > 1e-3


def test_indicator_and_audit_numbers_are_sane(smoke):
    releases = smoke["releases"]
    assert list(releases) == list(digits_cnn.RELEASES)
    for label, row in releases.items():
        assert math.isfinite(row["r_soft_with_scale"]) and math.isfinite(row["r_min_with_scale"])
        assert 0.0 <= row["p_flip_with_scale"] <= 1.0
        assert row["lira_auc_low"] <= row["lira_auc"] <= row["lira_auc_high"]
    # a float32 scale is published with the uniform grids: it leaks at n^-1/2, r_min_with_scale = 0
    assert releases["uniform 8-bit"]["r_min_with_scale"] == 0.0
    # a public grid publishes no scale, so the two rates coincide and are positive
    grid = releases["public grid, step 0.05"]
    assert grid["r_min_with_scale"] > 0
    # a finer grid puts more weights near a threshold: 8 bits leak more (lower r_soft) than 4 bits
    assert releases["uniform 8-bit"]["r_soft"] < releases["uniform 4-bit"]["r_soft"]
    assert smoke["cost_ratio"] > 0 and smoke["audit_seconds"] > 0
    assert smoke["agreement"]["n_items"] == len(releases)
