"""The matrix-free tanh-MLP path (mislib.tanh_mlp) against its dense twins: the analytic Hessian of
``objective.tanh_mlp_derivatives``, the dense Newton polish and the exact dense sandwich."""

import warnings

import pytest
import torch

from mislib import indicator, tanh_mlp, variance
from mislib.evaluation.architectures import polish_mlp
from mislib.evaluation.trainers import fit_mlp_head
from mislib.modules import MLPHead
from mislib.objective import EXACT_MAX_PARAMETERS, tanh_mlp_derivatives

RIDGE = 0.05


def _problem(task, N=80, d=6, h=3, B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, d, generator=g, dtype=torch.float64)
    noise = torch.randn(N, generator=g, dtype=torch.float64)
    if task == "classification":
        y = ((X[:, 0] + 0.5 * noise) > 0).double()
    else:
        y = X[:, 0] - X[:, 1] ** 2 + 0.3 * noise
    weights = (torch.rand(B, N, generator=g) < 0.6).double()
    params = fit_mlp_head(X, y, h, task=task, ridge=RIDGE, sample_weight=weights, n_iter=1500, seed=1)
    return X, y, weights, params


@pytest.fixture(scope="module", params=["classification", "regression"])
def polished(request):
    task = request.param
    X, y, weights, params = _problem(task)
    return task, X, y, weights, params, polish_mlp(params, X, y, weights, task=task, ridge=RIDGE)


def test_gradient_and_hessian_products_equal_the_dense_hessian(polished):
    task, X, y, weights, params, _ = polished
    curvature = tanh_mlp.Curvature(params, X, y, weights / weights.sum(1, keepdim=True), task, RIDGE)
    value, g, H, theta = tanh_mlp_derivatives(params, X, y, weights / weights.sum(1, keepdim=True), task, RIDGE)
    assert torch.equal(tanh_mlp.unit_layout(params), theta)
    torch.testing.assert_close(curvature.value, value, rtol=0, atol=1e-14)
    torch.testing.assert_close(curvature.gradient(), g, rtol=0, atol=1e-14)
    V = torch.randn(4, 3, curvature.p, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(curvature.hvp(V), torch.einsum("bpq,brq->brp", H, V), rtol=0, atol=1e-13)


def test_preconditioner_is_the_exact_inverse_of_the_gauss_newton_form(polished):
    """Exact where the Gauss-Newton form is well conditioned (the regression heads before the polish); always
    symmetric and positive definite (in the classification toy two hidden units coincide and the form is
    singular in the difference of their free biases, where the eigenvalue floor applies)."""
    task, X, y, weights, params, _ = polished
    curvature = tanh_mlp.Curvature(params, X, y, weights / weights.sum(1, keepdim=True), task, RIDGE)
    g = torch.Generator().manual_seed(3)
    U, V = (torch.randn(4, 2, curvature.p, dtype=torch.float64, generator=g) for _ in range(2))
    PU, PV = curvature.precondition(U), curvature.precondition(V)
    torch.testing.assert_close((U * PV).sum(-1), (V * PU).sum(-1), rtol=1e-9, atol=0)
    assert bool(((V * PV).sum(-1) > 0).all())
    if task == "regression":
        # (H + 1 G) - H = G, the Gauss-Newton form: its product must be undone by the preconditioner
        GV = curvature.hvp(V, torch.ones(4, dtype=torch.float64)) - curvature.hvp(V)
        torch.testing.assert_close(curvature.precondition(GV), V, rtol=0, atol=1e-8)


def test_newton_solves_and_polish_match_the_dense_polish(polished):
    task, X, y, weights, params, dense = polished
    curvature = tanh_mlp.Curvature(dense, X, y, weights / weights.sum(1, keepdim=True), task, RIDGE)
    _, _, H, _ = tanh_mlp_derivatives(dense, X, y, weights / weights.sum(1, keepdim=True), task, RIDGE)
    V = torch.randn(4, 2, curvature.p, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    Y, indefinite, _, worst = curvature.pcg(V)
    assert not bool(indefinite.any()) and worst < 1e-9
    torch.testing.assert_close(Y, torch.linalg.solve(H.unsqueeze(1), V.unsqueeze(-1)).squeeze(-1), rtol=1e-7,
                               atol=1e-9)
    matrix_free, done = tanh_mlp.polish(params, X, y, weights, task=task, ridge=RIDGE)
    assert bool(done.all())
    for name in dense:
        torch.testing.assert_close(matrix_free[name], dense[name], rtol=0, atol=1e-8)


def test_standard_errors_equal_the_dense_sandwich(polished):
    task, X, y, weights, _, params = polished
    for b in range(weights.shape[0]):
        keep = weights[b] > 0
        module = MLPHead.from_params(params, task=task, index=b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", indicator.NotAtOptimumWarning)
            dense = indicator.standard_errors(module, X[keep], y[keep], ridge=RIDGE, hessian="exact")
        se, newton, _ = tanh_mlp.standard_errors({k: v[b] for k, v in params.items()}, X[keep], y[keep],
                                                 task=task, ridge=RIDGE)
        for name in dense:
            torch.testing.assert_close(se[name], dense[name], rtol=1e-8, atol=0)
        assert float(newton.abs().max()) < 1e-6     # polished to |gradient| <= 1e-9


def test_large_heads_take_the_matrix_free_path_and_agree_with_the_dense_one():
    """p just above EXACT_MAX_PARAMETERS: the default ("auto") dispatches here; forcing the dense exact path
    (a 2,009 x 2,009 Hessian) gives the same standard errors."""
    g = torch.Generator().manual_seed(5)
    n, d, h = 150, 500, 4
    X = (torch.rand(n, d, generator=g) < 0.05).double()        # sparse 0/1 inputs, like a fingerprint
    y = ((X[:, :20].sum(1) + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)) > 1).double()
    params = fit_mlp_head(X, y, h, ridge=RIDGE, n_iter=300, seed=0)
    batch = {k: v.unsqueeze(0) for k, v in params.items()}
    polished = polish_mlp(batch, X, y, torch.ones(1, n, dtype=torch.float64), ridge=RIDGE)
    module = MLPHead.from_params(polished, index=0)
    assert sum(p.numel() for p in module.parameters()) > EXACT_MAX_PARAMETERS
    details = variance.standard_errors(module, X, y, ridge=RIDGE, return_details=True)
    assert details.hessian == "exact (tanh-mlp pcg)"
    dense = indicator.standard_errors(module, X, y, ridge=RIDGE, hessian="exact")
    for name in dense:
        torch.testing.assert_close(details.stderr[name], dense[name], rtol=1e-7, atol=1e-12)


def test_insertion_influence_equals_the_dense_one(polished, monkeypatch):
    """The white-box attack's shifts ``-(1/n) H^-1 g_j`` (members and non-members alike): the matrix-free solves
    that ``insertion_influence`` takes above ``EXACT_MAX_PARAMETERS`` against its dense Hessian path."""
    import mislib.objective
    from mislib.evaluation.audit_attacks import insertion_influence

    task, X, y, weights, _, params = polished
    for b in range(2):
        keep = weights[b] > 0
        module = MLPHead.from_params(params, task=task, index=b)
        dense = insertion_influence(module, X[keep], y[keep], X, y, module.default_loss, ridge=RIDGE)
        direct = tanh_mlp.influence({k: v[b] for k, v in params.items()}, X[keep], y[keep], X, y, task=task,
                                    ridge=RIDGE)
        with monkeypatch.context() as patch:
            patch.setattr(mislib.objective, "EXACT_MAX_PARAMETERS", 10)      # the dispatch of large heads
            dispatched = insertion_influence(module, X[keep], y[keep], X, y, module.default_loss, ridge=RIDGE)
        assert dense.shape == (X.shape[0], tanh_mlp.n_parameters(3, 6)) and float(dense.abs().max()) > 1e-3
        torch.testing.assert_close(direct, dense, rtol=1e-7, atol=1e-10)
        torch.testing.assert_close(dispatched, direct, rtol=0, atol=0)


def test_member_solves_of_the_sandwich_are_the_influences_of_the_members(polished):
    """``standard_errors(return_solves=True)`` gives ``H^-1 g_i`` of every member (what the sandwich solved
    anyway); ``influence(known=...)`` then solves only the other rows, with the same result."""
    task, X, y, weights, _, params = polished
    keep = weights[0] > 0
    head = {k: v[0] for k, v in params.items()}
    se, _, details = tanh_mlp.standard_errors(head, X[keep], y[keep], task=task, ridge=RIDGE, return_solves=True)
    plain = tanh_mlp.standard_errors(head, X[keep], y[keep], task=task, ridge=RIDGE)[0]
    assert all(torch.equal(se[k], plain[k]) for k in se)
    full = tanh_mlp.influence(head, X[keep], y[keep], X, y, task=task, ridge=RIDGE)
    n, members = int(keep.sum()), torch.nonzero(keep).flatten()
    torch.testing.assert_close(-details["solves"] / n, full[members], rtol=1e-7, atol=1e-12)
    reused = tanh_mlp.influence(head, X[keep], y[keep], X, y, task=task, ridge=RIDGE,
                                known=(members, details["solves"]))
    torch.testing.assert_close(reused, full, rtol=1e-7, atol=1e-12)


def test_an_audit_of_large_heads_equals_the_dense_audit(monkeypatch):
    """The whole audit with the heads forced onto the matrix-free path (standard errors, the members' solves
    reused by the white-box attack, the other examples' influences) against the dense path: the same rows."""
    import mislib.objective
    from mislib import quantizers as Q
    from mislib.evaluation import audit

    g = torch.Generator().manual_seed(7)
    X = torch.randn(80, 4, generator=g, dtype=torch.float64)
    y = ((X[:, 0] + 0.5 * torch.randn(80, generator=g, dtype=torch.float64)) > 0).double()
    Xt = torch.randn(60, 4, generator=g, dtype=torch.float64)
    yt = (Xt[:, 0] > 0).double()
    quantizers = {"identity": Q.get("identity"), "uniform 4-bit": Q.get("uniform", bits=4)}

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return audit.run_audit(X, y, Xt, yt, quantizers, model=audit.ModelSpec(kind="mlp", hidden=2, ridge=0.05,
                                                                                   n_iter=300),
                                   n_shadow=6, seed=1, n_bootstrap=0, n_targets=2)

    dense = run()
    monkeypatch.setattr(mislib.objective, "EXACT_MAX_PARAMETERS", 5)
    free = run()
    keep = ~dense["measurement"].str.endswith("seconds")
    left, right = dense[keep].reset_index(drop=True), free[keep].reset_index(drop=True)
    assert (left["method"] == right["method"]).all() and "whitebox" in set(left["method"])
    torch.testing.assert_close(torch.tensor(right["value"].to_numpy(dtype=float)),
                               torch.tensor(left["value"].to_numpy(dtype=float)), rtol=1e-6, atol=1e-9,
                               equal_nan=True)


def test_a_saddle_is_refused():
    """At W = 0, v = 0 the Hessian couples each unit's weights with its output weight through the mean
    residual: an indefinite block when that coupling beats the ridge. The sandwich must refuse it."""
    X, y, weights, params = _problem("classification", B=1)
    zero = {k: torch.zeros_like(v[0]) for k, v in params.items()}
    zero["output.bias"] += 3.0               # far from the labels' mean: large residuals
    keep = weights[0] > 0
    with pytest.raises(ValueError, match="not positive definite"):
        tanh_mlp.standard_errors(zero, X[keep], y[keep], task="classification", ridge=1e-3)
    with pytest.raises(ValueError, match="influence: the Hessian is not positive definite"):
        tanh_mlp.influence(zero, X[keep], y[keep], X, y, task="classification", ridge=1e-3)


def test_member_index_and_bad_input():
    w = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 2, 0, 0, 0, 0]], dtype=torch.float64)
    rows = tanh_mlp.member_index(w)
    assert rows[0].tolist() == [0, 2, 5] and rows[1, 0] == 1 and bool((w[1, rows[1, 1:]] == 0).all())
    X, y, weights, params = _problem("regression", B=1)
    w = weights / weights.sum(1, keepdim=True)
    with pytest.raises(ValueError, match="ridge"):
        tanh_mlp.Curvature(params, X, y, w, "regression", 0.0)
    with pytest.raises(ValueError, match="task"):
        tanh_mlp.Curvature(params, X, y, w, "ranking", RIDGE)
