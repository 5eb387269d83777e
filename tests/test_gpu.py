"""Every device-aware entry point gives the same numbers on a CUDA device as on the CPU.

Covered: the batched trainers (logistic, least squares, MLP), the indicator (sandwich standard errors with the
exact Hessian, conjugate gradients and the bootstrap, ``estimate`` with every scale channel, ``estimate_model``,
``influence_shifts``), the quantizers (release, margins, cells, scale margins), the Monte-Carlo releases and
ground truth, the synthetic samplers and the shadow-model audit (``mislib.evaluation.audit.run_audit``). The attacks themselves
work on NumPy arrays (their inputs are copied off the device), so they are covered through the audit.

Without a GPU every test is skipped with the reason. ``MISLIB_GPU_TEST_DEVICE=cpu`` runs the same comparisons
with the CPU standing in for the device (a check of the tests themselves, and of the device plumbing up to the
last ``.to(device)``).

Tolerances: float64 throughout; GPU reductions add in a different order, so sums agree to ~1e-12 relative and
quantities obtained by iterating (Newton, conjugate gradients, 300 Adam steps) to ~1e-7. Quantized releases
are compared exactly (the same weights give the same cells: the thresholds are computed by the same IEEE
operations).
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest
import torch

from mislib import indicator
from mislib.evaluation import audit, montecarlo, trainers as models
from mislib import quantizers as Q
from mislib.evaluation.synthetic_data import GaussianMixture, LogisticModel

DEVICE = os.environ.get("MISLIB_GPU_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                       reason="no CUDA device on this machine (torch.cuda.is_available() is False); these tests "
                              "compare GPU and CPU numbers and run where a GPU is present"),
]

# Every quantizer family, deterministic and randomised (the list of tests/test_quantizers.py, shortened).
QUANTIZERS = {
    "identity": Q.get("identity"),
    "fixed grid": Q.get("fixed_grid", step=0.25, offset=0.03),
    "size-adaptive grid": Q.get("size_adaptive", h0=1.0, alpha=0.25, n=100),
    "uniform 4-bit": Q.get("uniform", bits=4),
    "uniform 3-bit asymmetric per channel": Q.get("uniform", bits=3, symmetric=False, per_channel=True),
    "uniform 3-bit pow2 scale": Q.get("uniform", bits=3, scale_format="pow2"),
    "uniform 5-bit bfloat16 scale": Q.get("uniform", bits=5, scale_format="bfloat16"),
    "uniform 3-bit public scale": Q.get("uniform", bits=3, scale_format="public", scale=0.3),
    "sign": Q.get("sign"),
    "ternary absmean": Q.get("ternary_absmean"),
    "ternary 50% sparse": Q.get("ternary_sparsity", sparsity=0.5),
    "pruning 33%": Q.get("magnitude_pruning", sparsity=0.33),
    "k-means 3-bit": Q.get("kmeans", bits=3),
    "prune then 4-bit": Q.get("prune_then_quantize", sparsity=0.5, bits=4),
    "stochastic rounding": Q.get("stochastic_rounding", step=0.25),
}
DETERMINISTIC = {label: q for label, q in QUANTIZERS.items() if q.deterministic}


def on(value):
    """A tensor, a dict of tensors or a module, copied to the device under test (modules move in place: copy)."""
    if isinstance(value, dict):
        return {k: on(v) for k, v in value.items()}
    if isinstance(value, torch.nn.Module):
        return copy.deepcopy(value).to(DEVICE)
    return value.to(DEVICE)


def back(value):
    if isinstance(value, dict):
        return {k: back(v) for k, v in value.items()}
    assert value.device.type == torch.device(DEVICE).type, f"result left the device: {value.device}"
    return value.cpu()


def close(gpu, cpu, rtol=1e-7, atol=1e-10):
    if isinstance(cpu, dict):
        assert set(gpu) == set(cpu)
        for key in cpu:
            close(gpu[key], cpu[key], rtol, atol)
        return
    torch.testing.assert_close(back(gpu), cpu, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def logistic_data():
    X, y = LogisticModel((1.0, -2.0, 0.5), intercept=0.3).sample(400, seed=1)
    return X, y


@pytest.fixture(scope="module")
def mixture_data():
    return GaussianMixture(dim=5, k_modes=4, separation=3.0, centers_seed=0).sample(300, seed=2)


# ------------------------------------------------------------------------------------------------ trainers

def test_trainers_match(logistic_data, mixture_data):
    X, y = logistic_data
    masks = (torch.rand(8, X.shape[0], generator=torch.Generator().manual_seed(0)) < 0.5).double()
    close(models.fit_logistic(X, y, 1e-2, sample_weight=masks, device=DEVICE),
          models.fit_logistic(X, y, 1e-2, sample_weight=masks), rtol=1e-9, atol=1e-12)
    # per-model data [B, n, d], no intercept
    Xb, yb = X.reshape(4, 100, 3), y.reshape(4, 100)
    close(models.fit_logistic(on(Xb), on(yb), 1e-2, fit_intercept=False),
          models.fit_logistic(Xb, yb, 1e-2, fit_intercept=False), rtol=1e-9, atol=1e-12)
    close(models.fit_least_squares(X, X[:, 0] - y, 1e-1, sample_weight=masks, device=DEVICE),
          models.fit_least_squares(X, X[:, 0] - y, 1e-1, sample_weight=masks), rtol=1e-9, atol=1e-12)
    Xm, ym = mixture_data
    kwargs = dict(hidden=6, ridge=1e-2, n_iter=300, lr=0.05, sample_weight=masks[:, :300])
    close(models.fit_mlp_head(Xm, ym, device=DEVICE, **kwargs), models.fit_mlp_head(Xm, ym, **kwargs),
          rtol=1e-7, atol=1e-9)


def test_trainer_outputs_stay_on_the_device(logistic_data):
    X, y = logistic_data
    theta, info = models.fit_logistic(on(X), on(y), 1e-2, return_info=True)
    assert theta.device.type == info.converged.device.type == torch.device(DEVICE).type
    module = models.LogisticRegression.from_coefficients(theta)
    assert next(module.parameters()).device.type == torch.device(DEVICE).type


# ----------------------------------------------------------------------------------------------- indicator

@pytest.fixture(scope="module")
def logistic_model(logistic_data):
    X, y = logistic_data
    return models.LogisticRegression.from_coefficients(models.fit_logistic(X, y, 1e-3))


@pytest.fixture(scope="module")
def mlp_model(mixture_data):
    X, y = mixture_data
    params = models.fit_mlp_head(X, y, 4, ridge=1e-2, n_iter=2000, lr=0.05)
    return models.MLPHead.from_params(params)


@pytest.mark.parametrize("options", [dict(hessian="exact"), dict(hessian="cg", cg_sketch=None),
                                     dict(hessian="cg", cg_sketch=64),
                                     dict(method="bootstrap", n_bootstrap=20, seed=3)],
                         ids=["exact", "cg", "cg-sketch", "bootstrap"])
def test_standard_errors_match(logistic_model, logistic_data, options):
    X, y = logistic_data
    cpu = indicator.standard_errors(logistic_model, X, y, "logistic", ridge=1e-3, **options)
    gpu = indicator.standard_errors(on(logistic_model), on(X), on(y), "logistic", ridge=1e-3, **options)
    close(gpu, cpu, rtol=1e-7, atol=0)


@pytest.mark.parametrize("hessian", ["exact", "cg"])
def test_standard_errors_of_an_mlp_match(mlp_model, mixture_data, hessian):
    """The MLP's Hessian has a residual (non-Gauss-Newton) part: the other branch of the curvature code."""
    X, y = mixture_data
    options = dict(ridge=1e-2, hessian=hessian, cg_sketch=None)
    cpu = indicator.standard_errors(mlp_model, X, y, **options)
    gpu = indicator.standard_errors(on(mlp_model), on(X), on(y), **options)
    close(gpu, cpu, rtol=1e-6, atol=1e-12)


def test_estimate_matches_for_every_scale_channel(logistic_model, logistic_data):
    X, y = logistic_data
    theta = {name: p.detach() for name, p in logistic_model.named_parameters()}
    stderr = indicator.standard_errors(logistic_model, X, y, "logistic", ridge=1e-3)
    fields = ("r_min", "r_soft", "log_p_flip", "z_min", "scale_r", "r_min_with_scale", "r_soft_with_scale",
              "log_p_flip_with_scale")
    channels = set()
    for label, q in QUANTIZERS.items():
        cpu = indicator.indicator_from_estimates(theta, stderr, q, 400)
        gpu = indicator.indicator_from_estimates(on(theta), on(stderr), q, 400)
        channels.add(gpu.scale_channel)
        for name in fields:
            a, b = getattr(gpu, name), getattr(cpu, name)
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-300), (label, name)
        assert gpu.argmin == cpu.argmin, label
        close(gpu.z, cpu.z, rtol=1e-12, atol=0)
    assert channels == {"none", "continuous", "stored-on-grid"}


def test_estimate_model_matches(logistic_model, logistic_data):
    X, y = logistic_data
    kwargs = dict(ridge=1e-3, n_bootstrap_ci=4, seed=0)
    cpu = indicator.indicator_of_model(logistic_model, X, y, "logistic", DETERMINISTIC, **kwargs)
    gpu = indicator.indicator_of_model(on(logistic_model), on(X), on(y), "logistic", DETERMINISTIC, **kwargs)
    numbers = [c for c in cpu.columns if cpu[c].dtype.kind == "f" and "seconds" not in c]
    np.testing.assert_allclose(gpu[numbers].to_numpy(), cpu[numbers].to_numpy(), rtol=1e-7, atol=1e-12)


def test_influence_shifts_match(logistic_model, logistic_data):
    X, y = logistic_data
    cpu = indicator.centred_influence_shifts(logistic_model, X[:20], y[:20], X, y, "logistic", n=400, ridge=1e-3)
    gpu = indicator.centred_influence_shifts(on(logistic_model), on(X[:20]), on(y[:20]), on(X), on(y), "logistic",
                                     n=400, ridge=1e-3)
    close(gpu, cpu, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------------------------------- quantizers

@pytest.mark.parametrize("label", list(QUANTIZERS))
def test_quantizers_match(label):
    q = QUANTIZERS[label]
    w = torch.randn(16, 33, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    if q.deterministic:
        close(q(on(w)), q(w), rtol=0, atol=0)
        close(q.margins(on(w)), q.margins(w), rtol=1e-12, atol=0)
        for gpu, cpu in zip(q.cell_bounds(on(w)), q.cell_bounds(w)):
            close(gpu, cpu, rtol=0, atol=0)
        scale = q.scale_margins(w)
        if scale is not None:
            close(q.scale_margins(on(w)), scale, rtol=1e-12, atol=0)
        assert q.bits_per_weight(on(w)) == q.bits_per_weight(w)
    else:  # randomised: a device generator gives other draws, but the same law (each draw is a neighbour)
        out = back(q(on(w), generator=torch.Generator(device=DEVICE).manual_seed(0)))
        assert ((out - w).abs() < 0.25 + 1e-12).all()


# ----------------------------------------------------------------------------------------------- Monte Carlo

def test_montecarlo_matches():
    law = LogisticModel((1.0, -0.5))

    def trainer_on(device):
        return lambda X, y: models.fit_logistic(X, y, 1e-2, fit_intercept=False, device=device)

    kwargs = dict(n=50, n_targets=4, n_retrain=16, seed=0)
    cpu = montecarlo.retrain(law.sample, trainer_on("cpu"), **kwargs)
    gpu = montecarlo.retrain(law.sample, trainer_on(DEVICE), **kwargs)
    close(gpu.inside, cpu.inside, rtol=1e-9, atol=1e-12)
    close(gpu.outside, cpu.outside, rtol=1e-9, atol=1e-12)
    step = 0.5
    for q in (Q.get("fixed_grid", step=step), Q.get("uniform", bits=3), Q.get("sign")):
        thetas = cpu.inside.reshape(-1, 2)
        close(montecarlo.quantize_rows(q, on(thetas)), montecarlo.quantize_rows(q, thetas), rtol=0, atol=0)
        for a, b in zip(montecarlo.cell_rows(q, on(thetas)), montecarlo.cell_rows(q, thetas)):
            close(a, b, rtol=0, atol=0)
        # the same retrainings on both devices: the same categories, the same estimates
        cpu_result = montecarlo.montecarlo_delta(cpu, q, seed=0, n_bootstrap=20)
        moved = montecarlo.Retrainings(cpu.n, cpu.targets, on(cpu.inside), on(cpu.outside), cpu.seed, 0.0)
        gpu_result = montecarlo.montecarlo_delta(moved, q, seed=0, n_bootstrap=20)
        assert gpu_result.lower_bound == cpu_result.lower_bound
        assert gpu_result.plug_in == cpu_result.plug_in
        assert gpu_result.n_categories == cpu_result.n_categories


# ------------------------------------------------------------------------------------ samplers and the audit

def test_samplers_match():
    law = GaussianMixture(dim=3, k_modes=2)
    X, y = law.sample(50, seed=4)
    Xg, yg = law.sample(50, seed=4, device=DEVICE)
    close(Xg, X, rtol=0, atol=0)
    close(yg, y, rtol=0, atol=0)


def test_audit_matches(mixture_data):
    X, y = mixture_data
    quantizers = {label: DETERMINISTIC[label] for label in ("identity", "uniform 4-bit", "sign", "fixed grid")}
    kwargs = dict(model=audit.ModelSpec(kind="logistic", ridge=1e-3), n_shadow=8, n_bootstrap=20, seed=0)
    cpu = audit.run_audit(X[:200], y[:200], X[200:], y[200:], quantizers, **kwargs)
    gpu = audit.run_audit(X[:200], y[:200], X[200:], y[200:], quantizers, device=DEVICE, **kwargs)
    keep = cpu["method"] != "cost"                        # wall times differ, of course
    assert (gpu.loc[keep, ["quantizer", "method", "measurement"]].to_numpy()
            == cpu.loc[keep, ["quantizer", "method", "measurement"]].to_numpy()).all()
    for column in ("value", "value_low", "value_high"):
        np.testing.assert_allclose(gpu.loc[keep, column].to_numpy(), cpu.loc[keep, column].to_numpy(),
                                   rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=column)
