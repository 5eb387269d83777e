"""The fast paths of the indicator's curvature code give the numbers of the straightforward ones.

``mislib.indicator`` builds Hessians as ``J' L J`` (+ a residual part found by a random probe), solves by
Jacobi-preconditioned block conjugate gradients in blocks of right-hand sides, keeps or recomputes per-sample
Jacobians depending on their size, and uses closed-form loss derivatives for the named losses. Each shortcut is
checked here against plain autodiff (``torch.func.hessian`` of the objective) or against the other path.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from mislib import indicator, objective, variance
from mislib.evaluation.synthetic_data import gaussian_mixture
from mislib.evaluation.trainers import LogisticRegression, MLPHead, fit_logistic, fit_mlp_head, flatten_params


def _autodiff_hessian(problem):
    """The Hessian of the objective by torch.func.hessian, the reference."""
    return hessian(problem.objective)(problem.theta)


@pytest.fixture(scope="module")
def data():
    return gaussian_mixture(120, 4, k_modes=2, separation=2.0, seed=0)


@pytest.fixture(scope="module")
def logistic(data):
    X, y = data
    return LogisticRegression.from_coefficients(fit_logistic(X, y, 1e-2))


@pytest.fixture(scope="module")
def mlp(data):
    X, y = data
    return MLPHead.from_params(fit_mlp_head(X, y, 3, ridge=1e-2, n_iter=1500, lr=0.05))


class Quadratic(nn.Module):
    """Outputs quadratic in the parameters, and not a known linear class: the residual part is not zero."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([0.3, -0.2, 0.1, 0.4], dtype=torch.float64))

    def forward(self, X):
        return X @ self.a + (self.a ** 2).sum()


@pytest.mark.parametrize("which", ["logistic", "mlp", "mlp-3-class", "quadratic", "weighted"])
def test_hessian_equals_autodiff(which, data, logistic, mlp):
    X, y = data
    weights = None
    if which == "logistic":
        model, loss = logistic, "logistic"
    elif which == "mlp":
        model, loss = mlp, "logistic"
    elif which == "mlp-3-class":
        model, loss = MLPHead(4, 3, n_outputs=3), "cross_entropy"
        y = torch.arange(X.shape[0]) % 3
    elif which == "quadratic":
        model, loss = Quadratic(), "squared"
    else:
        model, loss = mlp, "logistic"
        weights = torch.rand(X.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    problem = objective.Objective(model, X, y, loss, 1e-2, weights, None, 2 ** 22)
    H = problem.hessian(problem.theta)
    torch.testing.assert_close(H, _autodiff_hessian(problem), rtol=1e-10, atol=1e-13)
    # the residual part is found where it exists, and not for the linear model
    assert problem._state.residual == (which != "logistic")
    # products agree with the matrix
    V = torch.randn(5, problem.p, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(problem.hvp(problem.theta, V), V @ H, rtol=1e-10, atol=1e-13)
    # the per-sample gradients from the Jacobians are the autodiff ones
    G = torch.cat([g for _, g in problem.gradient_chunks(problem.theta)])
    torch.testing.assert_close(G, problem.per_sample_grads(problem.theta), rtol=1e-10, atol=1e-14)


def test_custom_loss_uses_autodiff_and_agrees(data, logistic):
    """A callable loss (no closed form) goes through vmap(grad) / vmap(hessian): same standard errors."""
    X, y = data

    def bce(outputs, targets):
        return nn.functional.binary_cross_entropy_with_logits(outputs, targets, reduction="none")

    named = indicator.standard_errors(logistic, X, y, "logistic", ridge=1e-2)
    custom = indicator.standard_errors(logistic, X, y, bce, ridge=1e-2)
    for name in named:
        torch.testing.assert_close(custom[name], named[name], rtol=1e-10, atol=0)


@pytest.mark.parametrize("which", ["logistic", "mlp"])
def test_recomputed_jacobians_and_blocks_give_the_same_errors(which, data, logistic, mlp, monkeypatch):
    """Jacobians too large to keep (recomputed in every product; in chunks of 40 samples for the logistic model)
    and right-hand sides solved in blocks of 7: the numbers of the single-block, cached run."""
    X, y = data
    model = logistic if which == "logistic" else mlp
    p = sum(v.numel() for v in model.parameters())
    chunk = 40 * p if which == "logistic" else 2 ** 22
    reference = indicator.standard_errors(model, X, y, ridge=1e-2, hessian="cg", cg_sketch=None,
                                          return_details=True)
    exact = indicator.standard_errors(model, X, y, ridge=1e-2, hessian="exact", return_details=True)
    torch.testing.assert_close(reference.flat, exact.flat, rtol=1e-6, atol=1e-12)
    one_block = indicator.standard_errors(model, X, y, ridge=1e-2, hessian="cg", cg_sketch=50,
                                          return_details=True)
    monkeypatch.setattr(objective, "JACOBIAN_CACHE_ENTRIES", 0)
    monkeypatch.setattr(variance, "CG_BLOCK_ENTRIES", 7 * p)
    chunked = indicator.standard_errors(model, X, y, ridge=1e-2, hessian="cg", cg_sketch=None, chunk_size=chunk,
                                        return_details=True)
    torch.testing.assert_close(chunked.flat, reference.flat, rtol=1e-8, atol=1e-14)
    sketch = indicator.standard_errors(model, X, y, ridge=1e-2, hessian="cg", cg_sketch=50, chunk_size=chunk,
                                       return_details=True)
    assert sketch.hessian == one_block.hessian == "cg-sketch(50)"
    torch.testing.assert_close(sketch.flat, one_block.flat, rtol=1e-8, atol=1e-14)


def test_preconditioned_block_cg_solves_and_reports():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    A = A @ A.T + torch.diag(torch.logspace(-2, 3, 30, dtype=torch.float64))   # badly scaled diagonal
    B = torch.randn(4, 30, generator=g, dtype=torch.float64)
    plain, it_plain, res_plain = objective.block_cg(lambda V: V @ A, B, tol=1e-12)
    jacobi, it_jacobi, res_jacobi = objective.block_cg(lambda V: V @ A, B, tol=1e-12,
                                                       inverse_diagonal=1 / A.diagonal())
    exact = torch.linalg.solve(A, B.T).T
    torch.testing.assert_close(plain, exact, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(jacobi, exact, rtol=1e-8, atol=1e-10)
    assert res_plain <= 1e-12 and res_jacobi <= 1e-12
    assert it_jacobi < it_plain                        # the preconditioner earns its keep on a scaled problem
    with pytest.raises(ValueError, match="non-positive curvature"):
        objective.block_cg(lambda V: -V, B)


def test_curvature_is_cached_per_point_and_weights(data, logistic):
    X, y = data
    problem = objective.Objective(logistic, X, y, "logistic", 1e-2, None, None, 2 ** 22)
    first = problem._curvature(problem.theta)
    assert problem._curvature(problem.theta.clone()) is first               # same point: reused
    moved = problem._curvature(problem.theta + 0.1)
    assert moved is not first
    w = torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=torch.float64)
    assert problem._curvature(problem.theta + 0.1, w) is not moved          # other weights: recomputed
    # the mean gradient is the objective's gradient minus the ridge term
    params = {name: p.detach() for name, p in logistic.named_parameters()}
    torch.testing.assert_close(problem.mean_gradient(problem.theta) + problem.ridge_vec * problem.theta,
                               problem.gradient(problem.theta), rtol=1e-10, atol=1e-15)
    assert flatten_params(params).shape == problem.theta.shape
    assert functional_call(logistic, params, (X[:2],)).shape == (2,)
