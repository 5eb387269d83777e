"""What an audit trains: ``ModelSpec`` (a kind, a task and its training settings) and ``Architecture`` (batched
fit, batched forward and one-model modules, parameters as named dicts ``{name: [B, ...]}``), with the Newton
polish of the MLP head (``polish_mlp``) that brings a non-convex fit to a point where the sandwich exists."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from mislib.infra.checks import check_choice, check_float, check_int
from mislib import tanh_mlp
from mislib.objective import EXACT_MAX_PARAMETERS, tanh_mlp_derivatives

MODELS = ("logistic", "linear", "mlp")
TASKS = ("classification", "regression")

@dataclass(frozen=True)
class ModelSpec:
    """What is trained: ``kind`` logistic / linear / mlp, for a classification or regression ``task``.

    ``ridge`` is the penalty of ``mislib.evaluation.trainers`` (weighted mean loss + ridge/2 ||weights||^2, biases
    free); ``hidden``, ``activation``, ``n_iter``, ``lr`` and ``init_seed`` only matter for the MLP (full-batch Adam,
    one initialisation shared by every model, so training is a deterministic function of the data)."""

    kind: str = "logistic"
    task: str = "classification"
    ridge: float = 1e-3
    hidden: int = 16
    activation: str = "tanh"
    n_iter: int = 500
    lr: float = 0.02
    init_seed: int = 0
    fit_intercept: bool = True

    # why fit_intercept: a model without intercept has one parameter tensor, so a per-tensor release is the
    # same thing as quantizing the whole vector (what mislib.evaluation.montecarlo does): the low-dimensional
    # study needs it

    def __post_init__(self):
        check_choice("model", self.kind, MODELS)
        check_choice("task", self.task, TASKS)
        check_float("ridge", self.ridge, low=0.0)
        check_int("hidden", self.hidden, minimum=1)
        check_int("n_iter", self.n_iter, minimum=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_int("init_seed", self.init_seed, minimum=0)
        if not isinstance(self.fit_intercept, bool):
            raise TypeError(f"fit_intercept must be True or False, got {self.fit_intercept!r}")
        if self.kind == "mlp" and not self.fit_intercept:
            raise ValueError("fit_intercept=False is only for the logistic and linear models (the MLP has biases)")
        if self.kind == "logistic" and self.task != "classification":
            raise ValueError("model 'logistic' is for task 'classification'; use model 'linear' for regression")
        if self.kind == "linear" and self.task != "regression":
            raise ValueError("model 'linear' is for task 'regression'; use 'logistic' or 'mlp' to classify")


class Architecture:
    """Batched fit, batched forward and one-model modules for a ModelSpec (parameters as named dicts)."""

    def __init__(self, spec: ModelSpec, n_features: int, n_classes: int | None, device):
        self.spec, self.d, self.device = spec, n_features, device
        self.n_classes = n_classes
        if spec.task == "regression":
            self.loss = "squared"
        else:
            self.loss = "logistic" if n_classes == 2 else "cross_entropy"

    def fit(self, X, y, weights) -> dict:
        from mislib.evaluation import trainers as models

        s = self.spec
        if s.kind == "logistic":
            coef = models.fit_logistic(X, y, s.ridge, sample_weight=weights, max_iter=100, device=self.device,
                                       fit_intercept=s.fit_intercept)
            return models.coefficients_to_params(coef, s.fit_intercept)
        if s.kind == "linear":
            coef = models.fit_least_squares(X, y, s.ridge, sample_weight=weights, device=self.device,
                                            fit_intercept=s.fit_intercept)
            return models.coefficients_to_params(coef, s.fit_intercept)
        params = models.fit_mlp_head(X, y, s.hidden, task=s.task, n_classes=self.n_classes, ridge=s.ridge,
                                     sample_weight=weights, activation=s.activation, n_iter=s.n_iter, lr=s.lr,
                                     seed=s.init_seed, device=self.device)
        if params["output.weight"].shape[-2] == 1 and s.activation == "tanh":
            params = polish_mlp(params, X, y, weights, task=s.task, ridge=s.ridge)
        return params

    def module(self, params: dict, index: int):
        from mislib.evaluation import trainers as models

        s = self.spec
        if s.kind == "mlp":
            return models.MLPHead.from_params(params, activation=s.activation, task=s.task, index=index)
        cls = models.LogisticRegression if s.kind == "logistic" else models.LinearRegression
        module = cls(self.d, s.fit_intercept, dtype=params["linear.weight"].dtype).to(params["linear.weight"].device)
        return models.load_params(module, params, index=index, copy_module=False)

    def outputs(self, params: dict, X) -> torch.Tensor:
        """[B, N] (one output) or [B, N, k] (k classes)."""
        from mislib.evaluation import trainers as models

        if self.spec.kind == "mlp":
            out = models.mlp_forward(params, X, self.spec.activation)
            return out.squeeze(-1) if out.shape[-1] == 1 else out
        out = params["linear.weight"][:, 0, :] @ X.T
        return out + params["linear.bias"] if "linear.bias" in params else out




def _mlp_from_flat(theta, like):
    B, h, d = like["hidden.weight"].shape
    k = d + 1
    hidden = theta[:, : h * k].reshape(B, h, k)
    return {"hidden.weight": hidden[:, :, :d].contiguous(), "hidden.bias": hidden[:, :, d].contiguous(),
            "output.weight": theta[:, h * k: h * k + h].unsqueeze(1).contiguous(),
            "output.bias": theta[:, h * k + h:].contiguous()}


POLISH_METHODS = ("auto", "dense", "matrix-free")


def polish_mlp(params: dict, X, y, weights, *, task: str = "classification", ridge: float = 1e-3,
               max_iter: int = 40, tol: float = 1e-9, method: str = "auto") -> dict:
    """Newton-polish a batch of one-output tanh MLPs (``mislib.evaluation.trainers.fit_mlp_head``'s dict,
    ``weights`` [B, N]) to a minimum of the training objective, so that the indicator's sandwich sees a
    positive-definite Hessian.

    Why: full-batch Adam stops near, not at, a minimum (in our runs gradients of 1e-3 to 1e-2, negative Hessian
    eigenvalues, and outputs that move by as much as they vary between shadow models when polished), while the
    indicator assumes an M-estimator at its minimum. Newton steps with the exact Hessian (Cholesky where it is
    positive definite, saddle-free ``|eigenvalues|`` elsewhere, so every step descends) and backtracking; a
    model leaves the active set once its gradient is below ``tol`` at a positive-definite Hessian. Models that
    do not get there in ``max_iter`` steps are reported with a warning. ``method`` "auto": heads with more than
    ``EXACT_MAX_PARAMETERS`` parameters take the "matrix-free" path (``mislib.tanh_mlp.polish``: the same Newton
    steps by preconditioned conjugate gradients, damped where the Hessian is indefinite), smaller ones the
    "dense" one."""
    check_choice("method", method, POLISH_METHODS)
    W0 = params["hidden.weight"]
    h, d = W0.shape[1:]
    if method == "matrix-free" or (method == "auto" and tanh_mlp.n_parameters(h, d) > EXACT_MAX_PARAMETERS):
        out, done = tanh_mlp.polish(params, X, y, weights, task=task, ridge=ridge, max_iter=max_iter, tol=tol)
        _warn_unfinished(int((~done).sum()), W0.shape[0], tol, max_iter)
        return out
    w = weights / weights.sum(1, keepdim=True)
    out = {name: value.clone() for name, value in params.items()}
    active = torch.arange(W0.shape[0], device=W0.device)
    for _ in range(max_iter):
        part = {name: value[active] for name, value in out.items()}
        ws = w[active]
        f0, g, H, theta = tanh_mlp_derivatives(part, X, y, ws, task, ridge)
        L, info = torch.linalg.cholesky_ex(H)
        done = (g.abs().amax(1) <= tol) & (info == 0)
        keep = ~done
        if not bool(keep.any()):
            active = active[:0]
            break
        active, part, ws, f0, g, H, theta, L, info = (
            active[keep], {k: v[keep] for k, v in part.items()}, ws[keep], f0[keep], g[keep], H[keep],
            theta[keep], L[keep], info[keep])
        step = torch.cholesky_solve(g.unsqueeze(-1), L).squeeze(-1)
        indefinite = info > 0
        if bool(indefinite.any()):
            values, vectors = torch.linalg.eigh(H[indefinite])
            floor = 1e-10 * values.abs().amax(1, keepdim=True)
            coords = (vectors.transpose(1, 2) @ g[indefinite].unsqueeze(-1)).squeeze(-1)
            step[indefinite] = (vectors @ (coords / values.abs().clamp_min(floor)).unsqueeze(-1)).squeeze(-1)
        size = torch.ones(active.numel(), dtype=X.dtype, device=X.device)
        slope = (g * step).sum(1)
        for _ in range(40):
            f1 = _mlp_objective(_mlp_from_flat(theta - size.unsqueeze(1) * step, part), X, y, ws, task, ridge)
            accept = f1 <= f0 - 1e-4 * size * slope + 1e-13 * (1 + f0.abs())
            if bool(accept.all()):
                break
            size = torch.where(accept, size, size / 2)
        updated = _mlp_from_flat(theta - size.unsqueeze(1) * step, part)
        for name in out:
            out[name][active] = updated[name]
    _warn_unfinished(active.numel(), W0.shape[0], tol, max_iter)
    return out


def _warn_unfinished(count: int, total: int, tol: float, max_iter: int):
    if count:
        warnings.warn(f"polish_mlp: {count} of {total} models did not reach a minimum with gradient <= {tol:g} "
                      f"and a positive-definite Hessian in {max_iter} Newton steps", RuntimeWarning, stacklevel=3)


def _mlp_objective(params, X, y, w, task, ridge):
    W, b = params["hidden.weight"], params["hidden.bias"]
    v, c = params["output.weight"][:, 0, :], params["output.bias"][:, 0]
    f = torch.einsum("bnj,bj->bn", torch.tanh(torch.einsum("nk,bjk->bnj", X, W) + b.unsqueeze(1)), v) \
        + c.unsqueeze(1)
    loss = 0.5 * (y - f) ** 2 if task == "regression" else torch.nn.functional.softplus(f) - y * f
    return (w * loss).sum(1) + 0.5 * ridge * ((W ** 2).sum((1, 2)) + (v ** 2).sum(1))


def flat_batch(params: dict) -> torch.Tensor:
    """[B, P] in named-parameter order (the order of the indicator's flat vectors)."""
    return torch.cat([v.reshape(v.shape[0], -1) for v in params.values()], dim=1)
