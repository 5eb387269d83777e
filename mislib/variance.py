"""Standard errors of a trained module's parameters (THEORY.md §3.1): ``sqrt(Sigma_kk / n)`` by the sandwich
``Sigma = H^-1 V H^-1`` (exact or by conjugate gradients on Hessian-vector products of ``mislib.objective``) or
by bootstrap refits (warm-started chord-Newton steps, batched)."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import grad, vmap

from mislib.infra.checks import check_choice, check_float, check_int
from mislib.modules import unflatten_params
from mislib.objective import (CG_BLOCK_ENTRIES, EXACT_MAX_PARAMETERS, HESSIAN_MODES, NotAtOptimumWarning,
                              Objective, block_cg, cholesky_factor)

METHODS = ("sandwich", "bootstrap")


@dataclass
class StandardErrors:
    """Flat standard errors and how they were obtained (``standard_errors(..., return_details=True)``)."""

    stderr: dict                 # named like model.named_parameters()
    flat: torch.Tensor           # [p] same values, flattened in named_parameters order
    method: str                  # "sandwich" or "bootstrap"
    hessian: str                 # "exact", "exact (woodbury)", "cg", "cg-sketch(m)" or "-" (bootstrap)
    n: float                     # effective sample size (sum of the sample weights)
    model_fits: int              # refits performed (bootstrap); 0 for the sandwich
    seconds: float
    covariance: torch.Tensor | None = None   # Sigma / n [p, p] when the exact sandwich was used
    replicates: torch.Tensor | None = None   # [B, p] bootstrap parameter vectors


def standard_errors(model: nn.Module, X, y, loss=None, *, ridge: float = 0.0, method: str = "sandwich",
                    hessian: str = "auto", sample_weight=None, penalize=None, n_bootstrap: int = 200,
                    seed: int = 0, cg_tol: float = 1e-10, cg_max_iter: int = 500, cg_sketch: int | None = 256,
                    refit_tol: float | None = None, refit_max_iter: int = 100, chunk_size: int = 2 ** 22,
                    return_details: bool = False):
    """Standard error of every parameter of a trained module: ``sqrt(Sigma_kk / n)``.

    method "sandwich": ``Sigma = H^-1 V H^-1``, ``V`` the (weighted, centred) covariance of per-sample gradients,
    ``H`` the Hessian of the objective (ridge included) at the module's parameters. Both come from per-sample
    Jacobians of the outputs (``torch.func``, vmapped over samples): ``g_i = J_i' dloss/df`` and
    ``H = ridge + sum_i w_i J_i' L_i J_i + C`` (``L_i`` the loss's second derivative in the outputs; ``C``, the
    curvature of the outputs themselves, is zero for linear models and added by Hessian-vector products where a
    random probe finds it, e.g. MLPs). ``hessian="exact"``: the full Hessian and a Cholesky solve; ``"cg"``:
    matrix-free, ``diag(H^-1 V H^-1) = sum_i (H^-1 r_i)^2`` with ``r_i = sqrt(w_i)(g_i - gbar)``, each
    ``H^-1 r_i`` by Jacobi-preconditioned conjugate gradients on Hessian-vector products (``J' (L (J v))``, two
    matrix products), in blocks of right-hand sides so that memory stays bounded. With ``n > cg_sketch`` the
    ``n`` vectors ``r_i`` are replaced by ``m = cg_sketch`` random sign combinations
    ``sum_i eps_ji r_i / sqrt(m)`` (same expectation ``V``; each variance then has relative standard deviation
    about ``sqrt(2 / m)``: 9% for m = 256, i.e. 4% on a standard error; 18% and 9% for m = 64);
    ``cg_sketch=None`` always solves all ``n``. ``"auto"``: exact when ``p <= 2000``, else cg. ``chunk_size``
    bounds the entries of the work arrays (per-sample Jacobians are recomputed in chunks when all of them, ``n``
    x outputs x ``p``, exceed ``JACOBIAN_CACHE_ENTRIES``); larger chunks are faster for very large models.
    Measured costs (logistic regression, n = 256, 2 cores): 3 ms at 10^2 parameters, 0.05 s at 10^3, 0.4 s at
    10^4, 5 s at 10^5, 30 s at 10^6 (``cg_sketch=64, chunk_size=2**25``): see bench/indicator_scaling.py.

    method "bootstrap": ``n_bootstrap`` resamples of the data (multinomial counts as sample weights), each refit
    from ``theta_hat`` by batched chord-Newton steps (the Hessian at ``theta_hat`` as a fixed preconditioner,
    with a per-model backtracking line search) until max |gradient| <= ``refit_tol``; the standard error is the
    standard deviation of the refits.

    Returns a dict shaped like ``model.named_parameters()``; with ``return_details`` a ``StandardErrors``.

    Raises
    ------
    ValueError
        On unknown ``method`` / ``hessian`` / loss names, mismatched data, or a Hessian that is not positive
        definite at the model's parameters.

    Examples
    --------
    The sandwich standard error of a sample mean is its classical one, ``sd / sqrt(n)``:

    >>> import torch
    >>> from torch import nn
    >>> class Mean(nn.Module):
    ...     def __init__(self, value):
    ...         super().__init__()
    ...         self.mu = nn.Parameter(torch.tensor([value], dtype=torch.float64))
    ...     def forward(self, X):
    ...         return self.mu.expand(X.shape[0])
    >>> y = torch.tensor([1.0, 2.0, 4.0, 5.0], dtype=torch.float64)
    >>> se = standard_errors(Mean(3.0), torch.zeros(4, 1, dtype=torch.float64), y, "squared")
    >>> round(float(se["mu"]), 6), round(float(y.std(unbiased=False) / 2), 6)
    (0.790569, 0.790569)
    """
    check_choice("method", method, METHODS)
    check_choice("hessian", hessian, HESSIAN_MODES)
    start = time.perf_counter()
    problem = Objective(model, X, y, loss, ridge, sample_weight, penalize, chunk_size)
    if method == "sandwich":
        var, mode, cov = structured_or_sandwich_variance(problem, hessian, (model, loss, ridge, sample_weight, penalize),
                                                         cg_tol, cg_max_iter, cg_sketch, seed)
        flat, fits, reps = var.clamp_min(0).sqrt(), 0, None
    else:
        n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=2)
        seed = check_int("seed", seed, minimum=0)
        counts = bootstrap_counts(problem.w, n_bootstrap, seed, n_draws=problem.n)
        reps = refit(problem, counts, hessian=hessian, tol=refit_tol, max_iter=refit_max_iter,
                     cg_tol=cg_tol, cg_max_iter=cg_max_iter)
        flat, mode, fits, cov = reps.std(dim=0, unbiased=True), "-", n_bootstrap, None
    stderr = unflatten_params(flat, problem.like)
    if not return_details:
        return stderr
    return StandardErrors(stderr, flat, method, mode, problem.n_eff, fits, time.perf_counter() - start, cov, reps)


def structured_or_sandwich_variance(problem: Objective, hessian, settings, cg_tol, cg_max_iter, cg_sketch, seed):
    """``sandwich_variance`` at the optimum, except for large generalised linear models with ``hessian="auto"``:
    those take the exact structured path of ``mislib.sandwich`` (Woodbury, no sketch, O(p n^2)). ``settings``:
    the ``(model, loss, ridge, sample_weight, penalize)`` the objective was built from."""
    from mislib import sandwich, tanh_mlp

    model, loss, ridge, sample_weight, penalize = settings
    if hessian == "auto" and tanh_mlp.takes(model, loss, penalize, ridge):
        # exact, matrix-free: conjugate gradients preconditioned by the Gauss-Newton inverse (no sketch)
        params = {name: value.detach() for name, value in model.named_parameters()}
        se, newton_step, _ = tanh_mlp.standard_errors(params, problem.X, problem.y, task=tanh_mlp.task_of(model),
                                                      ridge=ridge, sample_weight=sample_weight)
        var = torch.cat([se[name].reshape(-1) for name, _ in model.named_parameters()]) ** 2
        _warn_if_not_at_optimum(newton_step.to(var), var)
        return var.to(problem.theta.dtype), "exact (tanh-mlp pcg)", None
    if hessian == "auto" and problem.p > EXACT_MAX_PARAMETERS and sandwich.glm_applies(model, loss, penalize):
        se = sandwich.model_standard_errors(model, problem.X, problem.y, loss, ridge=ridge,
                                            sample_weight=sample_weight)
        return se.to(problem.theta.dtype) ** 2, "exact (woodbury)", None
    return sandwich_variance(problem, problem.theta, hessian, cg_tol, cg_max_iter, cg_sketch, seed)


def _resolve_hessian_mode(hessian, p):
    if hessian == "auto":
        return "exact" if p <= EXACT_MAX_PARAMETERS else "cg"
    return hessian


def sandwich_variance(problem: Objective, flat, hessian, cg_tol, cg_max_iter, cg_sketch, seed):
    """diag(H^-1 V H^-1) / n_eff at ``flat`` (plus the full matrix in exact mode)."""
    mode = _resolve_hessian_mode(hessian, problem.p)
    if mode == "exact":
        G = torch.cat([G for _, G in problem.gradient_chunks(flat)])     # g_i' J_i, from the curvature pass
        gbar = problem.mean_gradient(flat)
        R = problem.w.sqrt().unsqueeze(-1) * (G - gbar)           # V = R' R
        H = problem.hessian(flat)
        L = cholesky_factor(H, "standard_errors")
        U = torch.cholesky_solve(R.T, L)                      # H^-1 R'  [p, n]
        cov = (U @ U.T) / problem.n_eff
        var = torch.diagonal(cov).clone()
        gradient = gbar + problem.ridge_vec * flat                      # of the objective
        step = torch.cholesky_solve(gradient.unsqueeze(-1), L).squeeze(-1)
        _warn_if_not_at_optimum(step, var)
        return var, "exact", cov
    if cg_sketch is not None:
        cg_sketch = check_int("cg_sketch", cg_sketch, minimum=1)
    n, p = problem.n, problem.p
    # V = R' R with rows r_i = sqrt(w_i) (g_i - gbar); sketched: R = S R_full, S [m, n] random signs / sqrt(m).
    # The right-hand sides are built and solved block by block (CG_BLOCK_ENTRIES), so that memory stays
    # O(block x p) whatever n and m: per-sample gradients are never all held at once.
    gbar = problem.mean_gradient(flat)
    root_w = problem.w.sqrt()
    if cg_sketch is not None and cg_sketch < n:
        g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
        signs = (torch.randint(0, 2, (cg_sketch, n), generator=g) * 2 - 1).to(flat.dtype).to(flat.device)
        coefficients = signs * root_w / math.sqrt(cg_sketch)          # [m, n]
        m, label = cg_sketch, f"cg-sketch({cg_sketch})"
    else:
        coefficients, m, label = None, n, "cg"

    def right_hand_sides(start, stop):
        if coefficients is None:                                      # rows start..stop of R itself
            G = problem.per_sample_grads(flat, problem.X[start:stop], problem.y[start:stop])
            return root_w[start:stop].unsqueeze(-1) * (G - gbar)
        C = coefficients[start:stop]
        out = -C.sum(-1, keepdim=True) * gbar
        for sl, G in problem.gradient_chunks(flat):
            out.addmm_(C[:, sl], G)
        return out

    block = max(1, min(m, CG_BLOCK_ENTRIES // p))
    inverse_diagonal = 1.0 / problem.hessian_diagonal(flat).clamp_min(torch.finfo(flat.dtype).tiny)
    var = torch.zeros(p, dtype=flat.dtype, device=flat.device)
    worst = 0.0
    for start in range(0, m, block):
        U, _, residual = block_cg(lambda V: problem.hvp(flat, V), right_hand_sides(start, min(m, start + block)),
                                  tol=cg_tol, max_iter=cg_max_iter, inverse_diagonal=inverse_diagonal)
        var += (U ** 2).sum(0)
        worst = max(worst, residual)
        del U
    if worst > 1e-4:
        warnings.warn(f"conjugate gradients stopped at relative residual {worst:.1e} after {cg_max_iter} "
                      "iterations (raise cg_max_iter or ridge)", RuntimeWarning, stacklevel=3)
    return var / problem.n_eff, label, None


def _warn_if_not_at_optimum(newton_step, var):
    """A Newton step longer than 0.1 standard error means the parameters are not the minimiser assumed."""
    ratio = float((newton_step.abs() / var.clamp_min(1e-300).sqrt()).max())
    if ratio > 0.1:
        warnings.warn(f"the model is {ratio:.2g} standard errors (one Newton step) from the minimum of the "
                      "objective: standard errors assume a trained model; train longer or pass the ridge used",
                      NotAtOptimumWarning, stacklevel=4)


def bootstrap_counts(w: torch.Tensor, n_replicates: int, seed: int, n_draws: int) -> torch.Tensor:
    """[B, n] multinomial resampling counts (``n_draws`` draws with probabilities ``w``), seeded."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(w.detach().cpu().to(torch.float64), n_draws * n_replicates, replacement=True,
                            generator=g).reshape(n_replicates, n_draws)
    counts = torch.zeros(n_replicates, w.numel(), dtype=torch.float64)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    return counts.to(device=w.device, dtype=w.dtype)


def refit(problem: Objective, counts: torch.Tensor, *, hessian="auto", tol=None, max_iter=100, cg_tol=1e-10,
          cg_max_iter=500, init=None) -> torch.Tensor:
    """Warm-started refits for every weight row of ``counts`` [B, n]: returns parameter vectors [B, p].

    Chord Newton: ``theta_b <- theta_b - t_b H0^-1 grad L_b(theta_b)`` with ``H0`` the Hessian at the module's
    parameters, ``t_b`` by backtracking on each model's objective. Converges linearly at a rate set by how much
    the replicate Hessians differ from ``H0`` (small: a few iterations to 1e-10). Replicates still unconverged
    after ``CHORD_ITERATIONS`` (a resample far from the data, e.g. nearly separable) switch to full Newton steps
    with their own Hessian (exact mode only)."""

    dtype = problem.theta.dtype
    tol = (1e-10 if dtype == torch.float64 else 1e-5) if tol is None else check_float("refit_tol", tol, low=0.0,
                                                                                        low_open=True)
    max_iter = check_int("refit_max_iter", max_iter, minimum=1)
    W = counts / counts.sum(-1, keepdim=True)
    B = W.shape[0]
    thetas = problem.theta.expand(B, -1).clone() if init is None else init.clone()
    mode = _resolve_hessian_mode(hessian, problem.p)
    if mode == "exact":
        L = cholesky_factor(problem.hessian(problem.theta), "bootstrap refit")

        def solve(G):
            return torch.cholesky_solve(G.T, L).T
    else:
        def solve(G):
            return block_cg(lambda V: problem.hvp(problem.theta, V), G, tol=cg_tol, max_iter=cg_max_iter)[0]
    rows = max(1, problem.chunk_size // max(1, problem.n * (problem.p + 1)))
    for start in range(0, B, rows):
        sl = slice(start, min(B, start + rows))
        th, Wc = thetas[sl], W[sl]
        for _ in range(min(max_iter, CHORD_ITERATIONS) if mode == "exact" else max_iter):
            g = problem.batched_gradient(th, Wc)
            active = g.abs().amax(-1) > tol
            if not bool(active.any()):
                break
            step = solve(g) * active.unsqueeze(-1)
            f0 = problem.batched_objective(th, Wc)
            th = _backtrack(lambda t: problem.batched_objective(t, Wc), th, step, g, f0)
        th = th.detach().clone()
        g = problem.batched_gradient(th, Wc)
        if mode == "exact":
            for b in torch.nonzero(g.abs().amax(-1) > tol).reshape(-1).tolist():
                th[b] = _newton_one(problem, th[b], Wc[b], tol, max_iter)
            g = problem.batched_gradient(th, Wc)
        if bool((g.abs().amax(-1) > tol).any()):
            warnings.warn(f"bootstrap refits: {int((g.abs().amax(-1) > tol).sum())} replicates did not reach "
                          f"max |gradient| <= {tol:g} in {max_iter} iterations", RuntimeWarning, stacklevel=3)
        thetas[sl] = th.detach()
    return thetas


def _backtrack(objective, theta, step, grad, f0, max_halvings: int = 40):
    """Per-model Armijo backtracking on theta - t * step (the full Newton step is accepted near the optimum)."""
    slope = (grad * step).sum(-1)
    t = torch.ones_like(f0)
    slack = 1e-13 * (1 + f0.abs())  # rounding: at the optimum f cannot decrease measurably
    for _ in range(max_halvings):
        candidate = theta - t.unsqueeze(-1) * step
        f = objective(candidate)
        ok = (f <= f0 - 1e-4 * t * slope + slack) & torch.isfinite(f)
        if bool(ok.all()):
            return candidate
        t = torch.where(ok, t, t / 2)
    return theta - t.unsqueeze(-1) * step



CHORD_ITERATIONS = 20


def _newton_one(problem, theta, w, tol, max_iter):
    """Full Newton with backtracking for one weighted objective (the fallback of ``refit``)."""

    for _ in range(max_iter):
        g = grad(lambda t: problem.objective(t, w))(theta)
        if float(g.abs().max()) <= tol:
            break
        L, info = torch.linalg.cholesky_ex(problem.hessian(theta, w))
        if int(info) > 0:
            break  # not positive definite: keep the chord iterate, the caller warns
        step = torch.cholesky_solve(g.unsqueeze(-1), L).squeeze(-1)
        f0 = problem.objective(theta, w).reshape(1)
        theta = _backtrack(lambda t: vmap(lambda u: problem.objective(u, w))(t), theta.unsqueeze(0),
                           step.unsqueeze(0), g.unsqueeze(0), f0)[0]
    return theta.detach()
