"""mislib.sandwich: exact sandwich standard errors by structure, against the exact-Hessian path of the indicator."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from mislib import sandwich
from mislib.evaluation.synthetic_data import gaussian_mixture
from mislib.evaluation.trainers import fit_mlp_head
from mislib.indicator import resolve_loss, standard_errors
from mislib.modules import LinearRegression, LogisticRegression, MLPHead, flatten_params, unflatten_params

EXACT = 1e-8          # relative agreement of two exact computations (float64)


def _relative(a, b):
    return float(((a - b).abs() / b.abs()).max())


def _glm(n, d, loss, fit_intercept=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    if loss == "logistic":
        y = (torch.rand(n, generator=g, dtype=torch.float64) < 0.5).double()
        model = LogisticRegression(d, fit_intercept)
    else:
        y = torch.randn(n, generator=g, dtype=torch.float64)
        model = LinearRegression(d, fit_intercept)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.2 * torch.randn(parameter.shape, generator=g, dtype=torch.float64))
    return model, X, y


def _reference(model, X, y, loss, ridge, **options):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a random point is not an optimum: the formula is checked, not the fit
        return flatten_params(standard_errors(model, X, y, loss, ridge=ridge, hessian="exact", **options))


@pytest.mark.parametrize("n, d, loss, ridge, fit_intercept", [
    (40, 150, "logistic", 0.1, True),      # more parameters than samples: the Woodbury side
    (150, 12, "logistic", 0.05, True),     # fewer
    (50, 80, "squared", 0.3, False),       # no intercept
    (120, 10, "squared", 0.0, True),       # no ridge: the dense fallback
])
def test_glm_matches_the_exact_hessian_path(n, d, loss, ridge, fit_intercept):
    model, X, y = _glm(n, d, loss, fit_intercept)
    weight = model.linear.weight.detach().reshape(-1)
    bias = model.linear.bias.detach() if fit_intercept else None
    se = sandwich.glm_standard_errors(X, y, weight, bias, loss, ridge)
    assert se.shape == (d + int(fit_intercept),) and se.dtype == torch.float64
    assert _relative(se, _reference(model, X, y, loss, ridge)) < EXACT
    weights = torch.rand(n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    weighted = sandwich.glm_standard_errors(X, y, weight, bias, loss, ridge, sample_weight=weights)
    assert _relative(weighted, _reference(model, X, y, loss, ridge, sample_weight=weights)) < EXACT
    assert _relative(weighted, se) > 1e-3          # the weights matter


def test_glm_penalised_intercept_chunks_and_float32_data():
    model, X, y = _glm(30, 70, "logistic")
    weight, bias = model.linear.weight.detach().reshape(-1), model.linear.bias.detach()
    se = sandwich.glm_standard_errors(X, y, weight, bias, "logistic", 0.2, penalize_intercept=True)
    reference = _reference(model, X, y, "logistic", 0.2, penalize=lambda name: True)
    assert _relative(se, reference) < EXACT
    free = sandwich.glm_standard_errors(X, y, weight, bias, "logistic", 0.2)
    assert float(free[-1]) > float(se[-1]) * 1.01     # a free intercept is less certain
    chunked = sandwich.glm_standard_errors(X, y, weight, bias, "logistic", 0.2, chunk_entries=30 * 7)
    torch.testing.assert_close(chunked, free, rtol=1e-12, atol=0)
    X32 = X.float()
    from_32 = sandwich.glm_standard_errors(X32, y, weight, bias, "logistic", 0.2)
    torch.testing.assert_close(from_32, sandwich.glm_standard_errors(X32.double(), y, weight, bias, "logistic", 0.2),
                               rtol=1e-12, atol=0)


def test_model_dispatch_to_the_glm_path():
    model, X, y = _glm(40, 60, "logistic")
    se, details = sandwich.model_standard_errors(model, X, y, ridge=0.1, return_details=True)
    assert details["method"] == "glm-woodbury" and sandwich.glm_applies(model)
    assert not sandwich.glm_applies(model, "cross_entropy") and not sandwich.glm_applies(model, None, lambda n: True)
    assert _relative(se, _reference(model, X, y, "logistic", 0.1)) < EXACT
    linear = nn.Linear(60, 1, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(model.linear.weight)
        linear.bias.copy_(model.linear.bias)
    assert _relative(sandwich.model_standard_errors(linear, X, y, "logistic", 0.1), se) < 1e-12


@pytest.fixture(scope="module")
def mlp():
    X, y = gaussian_mixture(150, 3, k_modes=2, separation=2.0, seed=0)
    params = fit_mlp_head(X, y, 4, ridge=1e-2, n_iter=2000, lr=0.05)
    return MLPHead.from_params(params), X, y


def test_general_module_exact_path_matches_and_gauss_newton_is_approximate(mlp):
    model, X, y = mlp
    reference = _reference(model, X, y, None, 1e-2)
    se, details = sandwich.model_standard_errors(model, X, y, ridge=1e-2, return_details=True)
    assert details["method"] == "exact-pcg" and details["residual"] <= 1e-10
    assert _relative(se, reference) < EXACT
    approximate = sandwich.model_standard_errors(model, X, y, ridge=1e-2, hessian="gauss-newton")
    assert _relative(approximate, reference) > 1e-3   # the outputs' own curvature matters for an MLP


def test_cross_entropy_module_matches():
    X, y = gaussian_mixture(120, 3, k_modes=3, separation=2.5, seed=1)
    labels = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    torch.manual_seed(0)
    model = MLPHead(3, 4, n_outputs=3)
    optimiser = torch.optim.LBFGS(model.parameters(), max_iter=3000, tolerance_grad=1e-13, tolerance_change=0,
                                  history_size=50, line_search_fn="strong_wolfe")
    loss = resolve_loss("cross_entropy")

    def closure():
        optimiser.zero_grad()
        value = loss(model(X), labels).mean() + 0.05 / 2 * sum(p.square().sum() for p in model.parameters())
        value.backward()
        return value

    optimiser.step(closure)
    every = lambda name: True                          # noqa: E731
    se = sandwich.model_standard_errors(model, X, labels, "cross_entropy", 0.05, penalize=every)
    assert _relative(se, _reference(model, X, labels, "cross_entropy", 0.05, penalize=every)) < EXACT


def test_solve_applies_the_exact_inverse_hessian(mlp):
    model, X, y = mlp
    curvature = sandwich.ModelCurvature(model, X, y, None, 1e-2)
    like = {name: p.detach() for name, p in model.named_parameters()}
    loss = resolve_loss("logistic")

    def objective(flat):
        params = unflatten_params(flat, like)
        penalty = sum(v.square().sum() for name, v in params.items() if name.endswith("weight"))
        return loss(functional_call(model, params, (X,)), y).mean() + 1e-2 / 2 * penalty

    H = hessian(objective)(flatten_params(like))
    B = torch.randn(3, H.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    U, iterations, residual = curvature.solve(B, tol=1e-12)
    torch.testing.assert_close(U, torch.linalg.solve(H, B.T).T, rtol=1e-9, atol=1e-12)
    assert residual <= 1e-12 and iterations > 0
    torch.testing.assert_close(curvature.hvp(B), B @ H, rtol=1e-10, atol=1e-12)


def test_bad_input_is_refused_with_the_argument_named(mlp):
    model, X, y = _glm(20, 50, "logistic")
    weight, bias = model.linear.weight.detach().reshape(-1), model.linear.bias.detach()
    with pytest.raises(ValueError, match="ridge"):
        sandwich.glm_standard_errors(X, y, weight, bias, "logistic", 0.0)
    with pytest.raises(ValueError, match="loss"):
        sandwich.glm_standard_errors(X, y, weight, bias, "hinge", 0.1)
    with pytest.raises(ValueError, match="coef"):
        sandwich.glm_standard_errors(X, y, weight[:-1], bias, "logistic", 0.1)
    with pytest.raises(ValueError, match="0 and 1"):
        sandwich.glm_standard_errors(X, y + 0.5, weight, bias, "logistic", 0.1)
    with pytest.raises(ValueError, match="sample_weight"):
        sandwich.glm_standard_errors(X, y, weight, bias, "logistic", 0.1, sample_weight=torch.ones(3))
    net, Xm, ym = mlp
    with pytest.raises(ValueError, match="ridge"):
        sandwich.model_standard_errors(net, Xm, ym, ridge=0.0)
    with pytest.raises(ValueError, match="hessian"):
        sandwich.model_standard_errors(net, Xm, ym, ridge=0.1, hessian="sketch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine: the GPU path "
                    "(device='cuda') is compared with the CPU numbers only where a GPU exists")
def test_cuda_matches_cpu(mlp):
    model, X, y = _glm(64, 300, "logistic")
    weight, bias = model.linear.weight.detach().reshape(-1), model.linear.bias.detach()
    cpu = sandwich.glm_standard_errors(X, y, weight, bias, "logistic", 0.1)
    gpu = sandwich.glm_standard_errors(X.cuda(), y.cuda(), weight.cuda(), bias.cuda(), "logistic", 0.1)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=0)
    net, Xm, ym = mlp
    cpu = sandwich.model_standard_errors(net, Xm, ym, ridge=1e-2)
    gpu = sandwich.model_standard_errors(net, Xm, ym, ridge=1e-2, device="cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-7, atol=0)


def test_standard_errors_dispatch_large_glms_to_the_exact_structured_path():
    """indicator.standard_errors (hessian="auto") above EXACT_MAX_PARAMETERS: a logistic model takes the Woodbury
    path, exact (equal to the full-Hessian path), not conjugate gradients with a sketch."""
    from mislib.evaluation.trainers import fit_logistic
    from mislib.indicator import indicator_of_model, standard_errors
    from mislib.modules import LogisticRegression, coefficients_to_params, load_params
    from mislib.objective import EXACT_MAX_PARAMETERS
    from mislib.quantizers import get

    g = torch.Generator().manual_seed(3)
    n, d = 200, EXACT_MAX_PARAMETERS + 100
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(X[:, 0])).double()
    model = load_params(LogisticRegression(d), coefficients_to_params(fit_logistic(X, y, ridge=0.1)))
    fast = standard_errors(model, X, y, "logistic", ridge=0.1, return_details=True)
    exact = standard_errors(model, X, y, "logistic", ridge=0.1, hessian="exact", return_details=True)
    assert fast.hessian == "exact (woodbury)" and exact.hessian == "exact"
    torch.testing.assert_close(fast.flat, exact.flat, rtol=1e-9, atol=0)
    table = indicator_of_model(model, X, y, "logistic", {"grid": get("fixed_grid", step=0.05)}, ridge=0.1,
                               average=False)
    assert table.loc[0, "standard_errors"] == "sandwich (exact (woodbury))"
