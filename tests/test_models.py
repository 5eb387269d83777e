"""Batched trainers: the same optima as scikit-learn / the closed form, models independent within a batch."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression as SkLogistic
from sklearn.linear_model import Ridge

from mislib.evaluation.synthetic_data import GaussianMixture, LogisticModel, gaussian_mixture, logistic_data
from mislib.evaluation.trainers import (LinearRegression, LogisticRegression, MLPHead, coefficients_to_params, fit_least_squares,
                           fit_logistic, fit_mlp_head, flatten_params, load_params, mlp_forward, params_of,
                           params_to_coefficients, stack_params, unflatten_params)


@pytest.fixture(scope="module")
def data():
    return logistic_data(300, [1.0, -2.0, 0.5], intercept=0.3, seed=1)


def _sklearn_logistic(X, y, ridge, weights=None, fit_intercept=True):
    total = X.shape[0] if weights is None else float(weights.sum())
    model = SkLogistic(C=1.0 / (ridge * total), solver="newton-cholesky", tol=1e-12, max_iter=1000,
                       fit_intercept=fit_intercept)
    model.fit(X.numpy(), y.numpy(), sample_weight=None if weights is None else weights.numpy())
    coef = model.coef_[0]
    return np.concatenate([coef, model.intercept_]) if fit_intercept else coef


def test_logistic_matches_sklearn(data):
    X, y = data
    theta, info = fit_logistic(X, y, 1e-2, return_info=True)
    assert theta.shape == (4,)
    np.testing.assert_allclose(theta.numpy(), _sklearn_logistic(X, y, 1e-2), atol=1e-7)
    assert bool(info.converged.all()) and info.n_iter <= 12 and float(info.grad_norm.max()) <= 1e-10


def test_logistic_weights_masks_and_no_intercept_match_sklearn(data):
    X, y = data
    g = torch.Generator().manual_seed(0)
    weights = torch.rand(300, generator=g, dtype=torch.float64) * 3
    np.testing.assert_allclose(fit_logistic(X, y, 3e-3, sample_weight=weights).numpy(),
                               _sklearn_logistic(X, y, 3e-3, weights), atol=1e-7)
    masks = (torch.rand(50, 300, generator=g) < 0.5).double()
    batch = fit_logistic(X, y, 3e-3, sample_weight=masks)
    assert batch.shape == (50, 4)
    for b in (0, 17, 49):
        np.testing.assert_allclose(batch[b].numpy(), _sklearn_logistic(X, y, 3e-3, masks[b]), atol=1e-7)
    np.testing.assert_allclose(fit_logistic(X, y, 1e-2, fit_intercept=False).numpy(),
                               _sklearn_logistic(X, y, 1e-2, fit_intercept=False), atol=1e-7)


def test_logistic_per_model_data_and_warm_start(data):
    X, y = data
    Xb, yb = X.reshape(3, 100, 3), y.reshape(3, 100)
    batch = fit_logistic(Xb, yb, 1e-2)
    for b in range(3):
        np.testing.assert_allclose(batch[b].numpy(), _sklearn_logistic(Xb[b], yb[b], 1e-2), atol=1e-7)
    _, info = fit_logistic(Xb, yb, 1e-2, init=batch, return_info=True)
    assert info.n_iter <= 1  # already at the optimum


def test_penalized_intercept_is_a_stationary_point(data):
    X, y = data
    theta = fit_logistic(X, y, 0.05, penalize_intercept=True).requires_grad_(True)
    eta = X @ theta[:3] + theta[3]
    objective = (torch.nn.functional.softplus(eta) - y * eta).mean() + 0.025 * (theta ** 2).sum()
    (gradient,) = torch.autograd.grad(objective, theta)
    assert float(gradient.abs().max()) < 1e-9


def test_least_squares_matches_ridge(data):
    X, _ = data
    noise = torch.randn(300, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = X @ torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64) + 0.1 * noise
    for ridge in (0.0, 0.1):
        theta = fit_least_squares(X, y, ridge)
        sk = Ridge(alpha=ridge * 300, tol=1e-12).fit(X.numpy(), y.numpy())
        np.testing.assert_allclose(theta.numpy(), np.concatenate([sk.coef_, [sk.intercept_]]), atol=1e-8)
    w = torch.rand(4, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    batch = fit_least_squares(X, y, 0.1, sample_weight=w)
    sk = Ridge(alpha=0.1 * float(w[2].sum()), tol=1e-12).fit(X.numpy(), y.numpy(), sample_weight=w[2].numpy())
    np.testing.assert_allclose(batch[2].numpy(), np.concatenate([sk.coef_, [sk.intercept_]]), atol=1e-8)


def test_mlp_models_are_independent_and_deterministic():
    X, y = gaussian_mixture(120, 4, k_modes=4, separation=3.0, seed=0)
    masks = torch.ones(3, 120, dtype=torch.float64)
    masks[1, :60] = 0
    batch = fit_mlp_head(X, y, 6, sample_weight=masks, n_iter=150, seed=3)
    alone = fit_mlp_head(X[60:], y[60:], 6, n_iter=150, seed=3)
    for name in alone:
        torch.testing.assert_close(batch[name][1], alone[name], atol=1e-10, rtol=1e-8)
        torch.testing.assert_close(batch[name][0], batch[name][2])  # same data, same shared init
    again = fit_mlp_head(X, y, 6, sample_weight=masks, n_iter=150, seed=3)
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    module = MLPHead.from_params(batch, index=0)
    torch.testing.assert_close(module(X), mlp_forward({k: v[:1] for k, v in batch.items()}, X)[0, :, 0])
    accuracy = float(((module(X) > 0).double() == y).double().mean())
    assert accuracy > 0.85


def test_mlp_regression_and_multiclass_fit():
    X, _ = gaussian_mixture(200, 3, k_modes=2, separation=2.0, seed=1)
    y = torch.sin(X[:, 0]) + 0.5 * X[:, 1]
    params = fit_mlp_head(X, y, 16, task="regression", n_iter=400, lr=0.03)
    module = MLPHead.from_params(params, task="regression")
    assert float(((module(X) - y) ** 2).mean().detach()) < 0.25 * float(y.var())
    X3, y3 = gaussian_mixture(240, 5, k_modes=3, separation=4.0, n_classes=3, seed=2)
    params = fit_mlp_head(X3, y3, 8, n_iter=300)
    assert params["output.weight"].shape == (3, 8)
    module = MLPHead.from_params(params)
    assert module.default_loss == "cross_entropy"
    assert float((module(X3).argmax(-1) == y3).double().mean()) > 0.9


def test_modules_and_conversions_round_trip(data):
    X, y = data
    theta = fit_logistic(X, y, 1e-2, sample_weight=torch.ones(2, 300, dtype=torch.float64))
    module = LogisticRegression.from_coefficients(theta[0])
    torch.testing.assert_close(module.coefficients().detach(), theta[0])
    torch.testing.assert_close(module(X), X @ theta[0, :3] + theta[0, 3])
    params = coefficients_to_params(theta)
    assert params["linear.weight"].shape == (2, 1, 3) and params["linear.bias"].shape == (2, 1)
    torch.testing.assert_close(params_to_coefficients(params), theta)
    copy = load_params(module, coefficients_to_params(theta), index=1)
    torch.testing.assert_close(copy.coefficients().detach(), theta[1])
    stacked = stack_params([module, copy])
    torch.testing.assert_close(params_to_coefficients(stacked), theta)
    flat = flatten_params(params_of(module))
    back = unflatten_params(flat, params_of(module))
    assert all(torch.equal(back[k], v) for k, v in params_of(module).items())
    assert LinearRegression(3).default_loss == "squared"
    no_intercept = LogisticRegression.from_coefficients(theta[0, :3], fit_intercept=False)
    assert [name for name, _ in no_intercept.named_parameters()] == ["linear.weight"]


def test_synthetic_laws_are_fixed_and_samples_seeded():
    mixture = GaussianMixture(dim=128, k_modes=4, separation=3.0)
    X1, y1 = mixture.sample(500, seed=1)
    X2, y2 = mixture.sample(500, seed=1)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    X3, _ = mixture.sample(500, seed=2)
    assert not torch.equal(X1, X3)
    assert set(y1.unique().tolist()) == {0.0, 1.0}
    distances = torch.cdist(mixture.centers, mixture.centers)
    assert abs(float(distances[0, 1]) / (3.0 * 2 ** 0.5) - 1) < 0.15  # nearly orthogonal in high dimension
    Xg, yg = gaussian_mixture(500, 128, 4, 3.0, seed=1)
    assert torch.equal(Xg, X1) and torch.equal(yg, y1)
    model = LogisticModel((2.0, -1.0))
    X, y = model.sample(20000, seed=0)
    theta = fit_logistic(X, y, 1e-6, fit_intercept=False)
    assert float((theta - model.true_parameters()).abs().max()) < 0.1  # well specified: MLE is consistent


@pytest.mark.parametrize("call, error, match", [
    (lambda X, y: fit_logistic(X, y + 0.5), ValueError, "only 0 and 1"),
    (lambda X, y: fit_logistic(X, y[:-1]), ValueError, "y must be"),
    (lambda X, y: fit_logistic(X[0], y), ValueError, "X must be"),
    (lambda X, y: fit_logistic(X, y, -1.0), ValueError, "ridge must be >= 0"),
    (lambda X, y: fit_logistic(X, y, sample_weight=-torch.ones(300, dtype=torch.float64)), ValueError, ">= 0"),
    (lambda X, y: fit_logistic(X, y, sample_weight=torch.zeros(2, 300, dtype=torch.float64)), ValueError,
     "positive total"),
    (lambda X, y: fit_logistic(X.reshape(3, 100, 3), y.reshape(3, 100), sample_weight=torch.ones(2, 100)),
     ValueError, "batch sizes disagree"),
    (lambda X, y: fit_logistic(X.numpy(), y), TypeError, "torch.Tensor"),
    (lambda X, y: fit_logistic(X * float("nan"), y), ValueError, "NaN"),
    (lambda X, y: fit_logistic(X, y, init=torch.zeros(7, dtype=torch.float64)), ValueError, "init must be"),
    (lambda X, y: fit_least_squares(torch.zeros(300, 3, dtype=torch.float64), y, 0.0, fit_intercept=False),
     ValueError, "ridge > 0"),
    (lambda X, y: fit_mlp_head(X, y, 0), ValueError, "hidden must be >= 1"),
    (lambda X, y: fit_mlp_head(X, y, 4, task="ranking"), ValueError, "unknown task"),
    (lambda X, y: fit_mlp_head(X, y + 0.5, 4), ValueError, "class indices"),
    (lambda X, y: fit_logistic(X, y, device="cuda") if not torch.cuda.is_available() else (_ for _ in ()).throw(
        RuntimeError("no CUDA device is available")), RuntimeError, "CUDA"),
])
def test_bad_inputs_get_clear_errors(data, call, error, match):
    X, y = data
    with pytest.raises(error, match=match):
        call(X, y)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(data):
    X, y = data
    masks = (torch.rand(8, 300, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    cpu = fit_logistic(X, y, 1e-2, sample_weight=masks)
    gpu = fit_logistic(X, y, 1e-2, sample_weight=masks, device="cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-9, rtol=1e-9)
