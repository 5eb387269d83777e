"""Batched trainers: many independent small models fitted at once as one tensor computation.

Membership experiments retrain the same small model thousands of times (shadow models, Monte-Carlo ground
truth, bootstrap). Here a batch of ``B`` models is one tensor program: the data are either shared,
``X`` [n, d], with one sample-weight row per model, ``sample_weight`` [B, n], or given per model, ``X`` [B, n, d]
and ``y`` [B, n]. A 0/1 weight row is a mask, "model b is trained on the subset S_b"; integer counts are a
bootstrap resample.

Objective of model ``b`` (every trainer, same convention; ``W_b = sum_i w_bi``)::

    (1 / W_b) sum_i w_bi * loss(theta; x_i, y_i)  +  (ridge / 2) * ||theta_penalised||^2

i.e. the weighted *mean* loss plus a fixed ridge term, as in THEORY.md §1. Losses: logistic
``softplus(f) - y f`` (y in {0, 1}); squared ``(y - f)^2 / 2`` (note the 1/2); cross-entropy for several
classes. Penalised: every coefficient / weight matrix; the intercept and biases are *not* penalised unless
``penalize_intercept=True`` (logistic / linear). The same rule (names ending in ``weight`` are penalised) is
what ``mislib.indicator`` uses by default, so standard errors are computed for exactly this objective.

Equivalences with scikit-learn (checked in tests/test_models.py to ~1e-7):

- ``fit_logistic(X, y, ridge)`` = ``sklearn.linear_model.LogisticRegression(C=1 / (ridge * W))`` with the same
  ``sample_weight`` (sklearn minimises ``C sum_i s_i loss_i + ||coef||^2 / 2``, intercept unpenalised);
- ``fit_least_squares(X, y, ridge)`` = ``sklearn.linear_model.Ridge(alpha=ridge * W)``
  (sklearn minimises ``sum_i s_i (y_i - f_i)^2 + alpha ||coef||^2``).

Layouts: logistic and linear coefficients are ``[B, d + 1]`` with the intercept *last* (``[B, d]`` without
intercept); the MLP returns a dict of batched tensors named like ``MLPHead.named_parameters()`` with a leading
batch dimension. When nothing is batched (``X`` [n, d], ``y`` [n], weights None or [n]) the batch dimension is
dropped. Default dtype float64 (the indicator needs accurate optima); ``device="cuda"`` runs on a GPU.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from mislib.infra.checks import check_choice, check_float, check_int, check_tensor, resolve_device
from mislib.objective import cholesky_factor
from mislib.modules import (ACTIVATIONS, MLP_TASKS, LinearRegression, LogisticRegression, MLPHead, coefficients_to_params,  # noqa: F401
                            flatten_params, load_params, mlp_forward, params_of, params_to_coefficients,
                            stack_params, unflatten_params)

# Work arrays of one chunk of models stay under this many bytes (the batch is split into chunks beyond it).
CHUNK_BYTES = 2 ** 28
# fit_logistic's per-model arrays ([chunk, n]) hold at most this many entries (1 MiB in float64: cache-sized).
CACHE_ELEMENTS = 2 ** 17


class ConvergenceWarning(UserWarning):
    """Some models of a batch did not reach the requested gradient tolerance."""


@dataclass
class FitInfo:
    """Diagnostics of a batched fit (one entry per model)."""

    n_iter: int                 # iterations used (the most over chunks)
    converged: torch.Tensor     # [B] bool: final max |gradient| <= tol
    grad_norm: torch.Tensor     # [B] final max |gradient of the objective|


# ----------------------------------------------------------------------------------------------- input layout

@dataclass
class _Batch:
    X: torch.Tensor            # [n, p] shared or [B, n, p] (intercept column appended when asked)
    y: torch.Tensor            # [n] or [B, n]
    w: torch.Tensor | None     # [n] or [B, n], normalised to sum 1 per model; None = uniform
    B: int
    batched: bool              # whether the caller passed any batched input (else the batch dim is dropped)
    n: int
    d: int

    def rows(self, start: int, stop: int):
        X = self.X[start:stop] if self.X.dim() == 3 else self.X
        y = self.y[start:stop] if self.y.dim() == 2 else self.y
        n = self.X.shape[-2]
        if self.w is None:
            w = torch.full((stop - start, n), 1.0 / n, dtype=self.X.dtype, device=self.X.device)
        else:
            w = self.w[start:stop] if self.w.dim() == 2 else self.w.expand(stop - start, n)
        return X, y, w


def _to(name, value, dtype, device) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    value = value.to(device=device, dtype=dtype)
    return check_tensor(name, value)


def _layout(X, y, sample_weight, *, dtype, device, fit_intercept: bool, n_models: int | None = None) -> _Batch:
    """Validate shapes and bring (X, y, weights) to one batched layout."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch dtype, got {dtype!r}")
    device = resolve_device(device)
    X = _to("X", X, dtype, device)
    y = _to("y", y, dtype, device)
    if X.dim() not in (2, 3):
        raise ValueError(f"X must be [n, d] (shared) or [B, n, d] (one data set per model), got shape "
                         f"{tuple(X.shape)}")
    n, d = X.shape[-2], X.shape[-1]
    if y.dim() not in (1, 2) or y.shape[-1] != n:
        raise ValueError(f"y must be [n] or [B, n] with n = {n} (from X), got shape {tuple(y.shape)}")
    batch_sizes = {}
    if X.dim() == 3:
        batch_sizes["X"] = X.shape[0]
    if y.dim() == 2:
        batch_sizes["y"] = y.shape[0]
    w = None
    if sample_weight is not None:
        w = _to("sample_weight", sample_weight, dtype, device)
        if w.dim() not in (1, 2) or w.shape[-1] != n:
            raise ValueError(f"sample_weight must be [n] or [B, n] with n = {n}, got shape {tuple(w.shape)}")
        if bool((w < 0).any()):
            raise ValueError("sample_weight must be >= 0 (a 0/1 mask or bootstrap counts)")
        totals = w.sum(-1)
        if bool((totals <= 0).any()):
            raise ValueError("every model needs a positive total sample_weight (an all-zero mask trains nothing)")
        w = w / totals.unsqueeze(-1)
        if w.dim() == 2:
            batch_sizes["sample_weight"] = w.shape[0]
    if n_models is not None:
        batch_sizes["init"] = n_models
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(f"batch sizes disagree: {batch_sizes}")
    B = next(iter(batch_sizes.values()), 1)
    if fit_intercept:
        X = torch.cat([X, torch.ones(X.shape[:-1] + (1,), dtype=dtype, device=device)], dim=-1)
    return _Batch(X=X, y=y, w=w, B=B, batched=bool(batch_sizes), n=n, d=d)


def _chunk_size(B: int, per_model_elements: int, itemsize: int) -> int:
    return max(1, min(B, CHUNK_BYTES // max(1, per_model_elements * itemsize)))


def _ridge_vector(ridge: float, p: int, fit_intercept: bool, penalize_intercept: bool, dtype, device):
    vec = torch.full((p,), ridge, dtype=dtype, device=device)
    if fit_intercept and not penalize_intercept:
        vec[-1] = 0.0
    return vec


def _linear(X, theta):
    """Linear predictor: X [n, p] or [b, n, p], theta [b, p] -> [b, n]."""
    if X.dim() == 2:
        return theta @ X.T
    return torch.bmm(X, theta.unsqueeze(-1)).squeeze(-1)


def _xt(X, r):
    """X^T r per model: r [b, n] -> [b, p]."""
    if X.dim() == 2:
        return r @ X
    return torch.einsum("bnp,bn->bp", X, r)


class _Gram:
    """X^T diag(s_b) X per model for a fixed X: ``gram(s)`` with s [b, n] -> [b, p, p].

    The outer products x_i x_i' (upper triangle only: the matrices are symmetric, half the work) are built once
    per fit when they fit in memory: shared X, one GEMM of the weights against them; one data set per model
    (few features), one batched vector product per model, ~6x faster than a batched [p, n] x [n, p] product for
    p = 2. Else one batched matrix product per call."""

    def __init__(self, X):
        self.X = X
        p = X.shape[-1]
        self.outer = None
        pairs = p * (p + 1) // 2
        if X.numel() // p * pairs * X.element_size() <= CHUNK_BYTES // 4:
            self.rows, self.cols = torch.triu_indices(p, p, device=X.device)
            self.outer = X[..., self.rows] * X[..., self.cols]                 # [(B,) n, p (p + 1) / 2]

    def __call__(self, s):
        if self.outer is None:
            return (s.unsqueeze(-1) * self.X).transpose(1, 2) @ self.X
        p = self.X.shape[-1]
        upper = s @ self.outer if self.outer.dim() == 2 else torch.bmm(s.unsqueeze(1), self.outer).squeeze(1)
        out = torch.empty(s.shape[0], p, p, dtype=upper.dtype, device=upper.device)
        out[:, self.rows, self.cols] = upper
        out[:, self.cols, self.rows] = upper
        return out


def _xt_s_x(X, s):
    """X^T diag(s_b) X per model: s [b, n] -> [b, p, p] (X shared [n, p] broadcasts)."""
    return _Gram(X)(s)


def _cholesky(H, what: str):
    return cholesky_factor(H, what, message="the Hessian of {bad} model(s) is not positive definite "
                                            "(rank-deficient data and no penalty?); use ridge > 0")


def _finish(theta, batch: _Batch, info: FitInfo, return_info: bool):
    if not bool(info.converged.all()):
        warnings.warn(f"{int((~info.converged).sum())} of {batch.B} models did not converge "
                      f"(largest final |gradient| {float(info.grad_norm.max()):.2e})", ConvergenceWarning,
                      stacklevel=3)
    if not batch.batched:
        theta = theta[0]
    return (theta, info) if return_info else theta


def _check_init(init, B, p, dtype, device, batched):
    if init is None:
        return None
    init = _to("init", init, dtype, device)
    if init.dim() == 1:
        init = init.expand(B, -1)
    if init.shape != (B, p):
        raise ValueError(f"init must be [{p}] or [{B}, {p}] (coefficients, intercept last), got "
                         f"{tuple(init.shape)}")
    return init


# ------------------------------------------------------------------------------------------- logistic (IRLS)

def fit_logistic(X, y, ridge: float = 1e-3, *, sample_weight=None, fit_intercept: bool = True,
                 penalize_intercept: bool = False, init=None, max_iter: int = 50, tol: float | None = None,
                 device=None, dtype=torch.float64, return_info: bool = False):
    """Ridge-penalised logistic regressions, fitted by batched Newton (IRLS) steps with Cholesky solves.

    X: [n, d] shared or [B, n, d]; y: [n] or [B, n] in {0, 1}; sample_weight: None, [n] or [B, n] (mask or
    counts). Minimises ``(1/W) sum_i w_i (softplus(f_i) - y_i f_i) + ridge/2 ||coef||^2`` (intercept unpenalised
    unless ``penalize_intercept``). Returns coefficients [B, d + 1] (intercept last; [B, d] without intercept;
    no batch dimension when nothing is batched); with ``return_info`` also a ``FitInfo``.

    Newton with a backtracking (Armijo) line search from ``init`` (default zeros: warm starts pass the previous
    fit). Stops when every model's max |gradient| <= ``tol`` (default 1e-10 in float64, 1e-5 in float32);
    a well-conditioned problem needs about 6-10 iterations.
    """
    ridge = check_float("ridge", ridge, low=0.0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    tol = _default_tol(tol, dtype)
    batch = _layout(X, y, sample_weight, dtype=dtype, device=device, fit_intercept=fit_intercept,
                    n_models=init.shape[0] if isinstance(init, torch.Tensor) and init.dim() == 2 else None)
    if bool(((batch.y != 0) & (batch.y != 1)).any()):
        raise ValueError("y must contain only 0 and 1 for a logistic regression")
    p = batch.X.shape[-1]
    init = _check_init(init, batch.B, p, batch.X.dtype, batch.X.device, batch.batched)
    ridge_vec = _ridge_vector(ridge, p, fit_intercept, penalize_intercept, batch.X.dtype, batch.X.device)
    # Chunks of models whose [chunk, n] work arrays stay cache-sized: the Newton loop is a few elementwise passes
    # over them, memory-bound when they do not fit (measured 25% faster for 256 models x 1,000 samples).
    chunk = min(_chunk_size(batch.B, 3 * batch.n * p + 2 * p * p, batch.X.element_size()),
                max(1, CACHE_ELEMENTS // batch.n))
    shared_gram = _Gram(batch.X) if batch.X.dim() == 2 else None   # outer products built once for all chunks
    if init is None and batch.B > 1 and batch.X.dim() == 2 and batch.y.dim() == 1:
        # Many models on one data set (masks, bootstrap counts): start them all from the fit to the pooled
        # weights, one extra model, near every optimum, which saves Newton steps (same minima: convex).
        pooled = None if batch.w is None else batch.w.mean(0) if batch.w.dim() == 2 else batch.w
        X0, y0 = batch.X, batch.y
        w0 = (torch.full((1, batch.n), 1.0 / batch.n, dtype=X0.dtype, device=X0.device) if pooled is None
              else pooled.unsqueeze(0))
        start_point, _, _ = _logistic_newton(X0, y0, w0, ridge_vec, torch.zeros(1, p, dtype=X0.dtype,
                                                                                 device=X0.device), max_iter, tol,
                                             shared_gram)
        init = start_point.expand(batch.B, -1)
    thetas, converged, grads, iters = [], [], [], 0
    for start in range(0, batch.B, chunk):
        stop = min(batch.B, start + chunk)
        Xc, yc, wc = batch.rows(start, stop)
        theta0 = (torch.zeros(stop - start, p, dtype=Xc.dtype, device=Xc.device) if init is None
                  else init[start:stop].clone())
        theta, g, it = _logistic_newton(Xc, yc, wc, ridge_vec, theta0, max_iter, tol, shared_gram)
        thetas.append(theta), grads.append(g), converged.append(g <= tol)
        iters = max(iters, it)
    info = FitInfo(iters, torch.cat(converged), torch.cat(grads))
    return _finish(torch.cat(thetas), batch, info, return_info)


def _default_tol(tol, dtype):
    if tol is None:
        return 1e-10 if dtype == torch.float64 else 1e-5
    return check_float("tol", tol, low=0.0, low_open=True)


def _logistic_objective(X, y, w, ridge_vec, theta):
    eta = _linear(X, theta)
    return (w * (nn.functional.softplus(eta) - y * eta)).sum(-1) + 0.5 * (ridge_vec * theta ** 2).sum(-1)


def _logistic_newton(X, y, w, ridge_vec, theta, max_iter, tol, gram=None, max_halvings: int = 40):
    # Why written out rather than through a generic line search: with shared data a model's work is a few elementwise passes
    # over [b, n] (memory-bound), so passes are what to save. Along a step the predictor moves linearly
    # (eta - t X step): the line search needs one matrix product, and the predictor and objective it accepts
    # are the next iteration's. The loss is softplus(sign * eta) with sign = 1 - 2y (y in {0, 1}), weighted sums
    # are batched dot products (no temporary), and w mu (1 - mu), w (mu - y) reuse w mu.
    gmax = None
    gram = _Gram(X) if gram is None else gram
    sign = 1 - 2 * y
    wy = w * y
    diag = torch.diag(ridge_vec)

    def objective(eta, th):
        return torch.einsum("bn,bn->b", w.expand_as(eta), nn.functional.softplus(sign * eta)) \
            + 0.5 * (ridge_vec * th ** 2).sum(-1)

    eta = _linear(X, theta)
    f = objective(eta, theta)
    for it in range(max_iter + 1):
        mu = torch.sigmoid(eta)
        wmu = w * mu
        grad = _xt(X, wmu - wy) + ridge_vec * theta
        gmax = grad.abs().amax(-1)
        active = gmax > tol
        if it == max_iter or not bool(active.any()):
            break
        H = gram(torch.addcmul(wmu, wmu, mu, value=-1)) + diag                  # w mu (1 - mu)
        L = _cholesky(H, "fit_logistic")
        step = torch.cholesky_solve(grad.unsqueeze(-1), L).squeeze(-1) * active.unsqueeze(-1)
        direction = _linear(X, step)
        # per-model Armijo backtracking on theta - t step, as _backtrack (mislib.indicator)
        slope = (grad * step).sum(-1)
        t = torch.ones_like(f)
        slack = 1e-13 * (1 + f.abs())  # rounding: at the optimum f cannot decrease measurably
        for _ in range(max_halvings):
            candidate = theta - t.unsqueeze(-1) * step
            eta_new = torch.addcmul(eta, t.unsqueeze(-1), direction, value=-1)
            f_new = objective(eta_new, candidate)
            ok = (f_new <= f - 1e-4 * t * slope + slack) & torch.isfinite(f_new)
            if bool(ok.all()):
                break
            t = torch.where(ok, t, t / 2)
        else:
            candidate = theta - t.unsqueeze(-1) * step
            eta_new = _linear(X, candidate)
            f_new = objective(eta_new, candidate)
        theta, f, eta = candidate, f_new, eta_new
    return theta, gmax, it


# ------------------------------------------------------------------------------------------ least squares

def fit_least_squares(X, y, ridge: float = 0.0, *, sample_weight=None, fit_intercept: bool = True,
                      penalize_intercept: bool = False, device=None, dtype=torch.float64):
    """Ridge regressions in closed form: solve ``(X'WX / W + ridge P) theta = X'Wy / W`` by Cholesky.

    Minimises ``(1/W) sum_i w_i (y_i - f_i)^2 / 2 + ridge/2 ||coef||^2`` (intercept unpenalised unless asked).
    Same shapes and layout as ``fit_logistic``. ``ridge=0`` needs full-rank data.
    """
    ridge = check_float("ridge", ridge, low=0.0)
    batch = _layout(X, y, sample_weight, dtype=dtype, device=device, fit_intercept=fit_intercept)
    p = batch.X.shape[-1]
    ridge_vec = _ridge_vector(ridge, p, fit_intercept, penalize_intercept, batch.X.dtype, batch.X.device)
    chunk = _chunk_size(batch.B, 2 * batch.n * p + 2 * p * p, batch.X.element_size())
    thetas = []
    for start in range(0, batch.B, chunk):
        stop = min(batch.B, start + chunk)
        Xc, yc, wc = batch.rows(start, stop)
        yc = yc.expand(stop - start, -1)
        A = _xt_s_x(Xc, wc) + torch.diag(ridge_vec)
        b = _xt(Xc, wc * yc)
        thetas.append(torch.cholesky_solve(b.unsqueeze(-1), _cholesky(A, "fit_least_squares")).squeeze(-1))
    theta = torch.cat(thetas)
    return theta if batch.batched else theta[0]


# --------------------------------------------------------------------------------------- one-hidden-layer MLP



def fit_mlp_head(X, y, hidden: int = 32, *, task: str = "classification", n_classes: int | None = None,
                 ridge: float = 1e-3, sample_weight=None, activation: str = "tanh", n_iter: int = 500,
                 lr: float = 0.02, seed: int = 0, independent_init: bool = False, init: dict | None = None,
                 device=None, dtype=torch.float64, return_info: bool = False):
    """One-hidden-layer MLPs ``f(x) = W2 act(W1 x + b1) + b2``, trained all at once by full-batch Adam.

    task "classification": ``y`` holds class indices; 2 classes -> one logit and the logistic loss, more ->
    ``n_classes`` logits and cross-entropy. task "regression": one output, squared loss ``(y - f)^2 / 2``.
    Objective per model: weighted mean loss + ``ridge/2 (||W1||^2 + ||W2||^2)`` (biases unpenalised).

    Optimiser: Adam for exactly ``n_iter`` full-batch steps, learning rate ``lr`` with cosine decay to 0 (so the
    iterates settle). Adam is elementwise, so the models stay independent; torch's L-BFGS is not offered because
    its shared line search would couple the models of a batch. Initialisation as ``nn.Linear`` (uniform
    +-1/sqrt(fan_in)) from ``seed``: one draw shared by every model (training is then a deterministic function
    of the data, as the theory assumes) unless ``independent_init``; ``init`` (dict like the output) warm-starts.
    Same seed, same numbers. Returns a dict ``{"hidden.weight": [B, h, d], "hidden.bias": [B, h],
    "output.weight": [B, k, h], "output.bias": [B, k]}`` (batch dimension dropped when nothing is batched);
    with ``return_info`` also a ``FitInfo`` whose ``grad_norm`` is the final max |gradient| of each model
    (``converged`` is all True by convention: a fixed number of steps has no stopping test; check ``grad_norm``,
    and train longer before computing standard errors, which assume a minimum).
    """
    hidden = check_int("hidden", hidden, minimum=1)
    check_choice("task", task, MLP_TASKS)
    check_choice("activation", activation, ACTIVATIONS)
    ridge = check_float("ridge", ridge, low=0.0)
    n_iter = check_int("n_iter", n_iter, minimum=1)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    seed = check_int("seed", seed, minimum=0)
    batch = _layout(X, y, sample_weight, dtype=dtype, device=device, fit_intercept=False)
    dev, dt = batch.X.device, batch.X.dtype
    if task == "classification":
        if bool((batch.y != batch.y.round()).any()) or bool((batch.y < 0).any()):
            raise ValueError("classification needs y to hold class indices 0, 1, ..., n_classes - 1")
        k_classes = int(batch.y.max()) + 1 if n_classes is None else check_int("n_classes", n_classes, minimum=2)
        k_classes = max(k_classes, 2)
        if int(batch.y.max()) >= k_classes:
            raise ValueError(f"y holds class {int(batch.y.max())} but n_classes is {k_classes}")
        k = 1 if k_classes == 2 else k_classes
    else:
        k_classes, k = None, 1
    B, d = batch.B, batch.d
    act = ACTIVATIONS[activation]
    if init is not None:
        params = _check_mlp_init(init, B, d, hidden, k, dt, dev)
    else:
        params = _init_mlp(B, d, hidden, k, seed, independent_init, dt, dev)
    X_all, y_all, w_all = batch.rows(0, B)
    y_idx = y_all.long() if k > 1 else None

    def objective(prm):
        out = mlp_forward(prm, X_all, act)                              # [B, n, k]
        if task == "regression":
            losses = 0.5 * (y_all - out.squeeze(-1)) ** 2
        elif k == 1:
            f = out.squeeze(-1)
            losses = nn.functional.softplus(f) - y_all * f
        else:
            logp = torch.log_softmax(out, dim=-1)
            target = y_idx.expand(B, -1) if y_idx.dim() == 1 else y_idx
            losses = -torch.gather(logp, -1, target.unsqueeze(-1)).squeeze(-1)
        penalty = 0.5 * ridge * ((prm["hidden.weight"] ** 2).sum((-1, -2)) + (prm["output.weight"] ** 2).sum((-1, -2)))
        return (w_all * losses).sum(-1) + penalty                       # [B]

    names = list(params)
    state = {name: params[name].clone().requires_grad_(True) for name in names}
    m = {name: torch.zeros_like(state[name]) for name in names}
    v = {name: torch.zeros_like(state[name]) for name in names}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, n_iter + 1):
        loss = objective(state).sum()  # models are independent: the gradient of the sum is per-model
        grads = torch.autograd.grad(loss, [state[name] for name in names])
        rate = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / n_iter))
        with torch.no_grad():
            for name, g in zip(names, grads):
                m[name].mul_(beta1).add_(g, alpha=1 - beta1)
                v[name].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat = m[name] / (1 - beta1 ** step)
                v_hat = v[name] / (1 - beta2 ** step)
                state[name].sub_(rate * m_hat / (v_hat.sqrt() + eps))
    final = {name: state[name].detach() for name in names}
    if return_info:
        prm = {name: final[name].clone().requires_grad_(True) for name in names}
        grads = torch.autograd.grad(objective(prm).sum(), [prm[name] for name in names])
        gnorm = torch.stack([g.abs().flatten(1).amax(-1) for g in grads]).amax(0)
        info = FitInfo(n_iter, torch.ones(B, dtype=torch.bool, device=dev), gnorm)
    if not batch.batched:
        final = {name: value[0] for name, value in final.items()}
    return (final, info) if return_info else final


def _init_mlp(B, d, h, k, seed, independent, dtype, device):
    g = torch.Generator().manual_seed(seed)
    count = B if independent else 1

    def uniform(shape, fan_in):
        bound = 1.0 / math.sqrt(fan_in)
        draw = (torch.rand((count,) + shape, generator=g, dtype=torch.float64) * 2 - 1) * bound
        return draw.to(dtype=dtype, device=device).expand((B,) + shape).clone()

    return {"hidden.weight": uniform((h, d), d), "hidden.bias": uniform((h,), d),
            "output.weight": uniform((k, h), h), "output.bias": uniform((k,), h)}


def _check_mlp_init(init, B, d, h, k, dtype, device):
    shapes = {"hidden.weight": (h, d), "hidden.bias": (h,), "output.weight": (k, h), "output.bias": (k,)}
    if not isinstance(init, dict) or set(init) != set(shapes):
        raise ValueError(f"init must be a dict with keys {sorted(shapes)}")
    out = {}
    for name, shape in shapes.items():
        value = _to(f"init[{name!r}]", init[name], dtype, device)
        if value.shape == shape:
            value = value.expand((B,) + shape)
        if value.shape != (B,) + shape:
            raise ValueError(f"init[{name!r}] must be {shape} or {(B,) + shape}, got {tuple(value.shape)}")
        out[name] = value.clone()
    return out
