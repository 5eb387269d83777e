"""The indicator ``r_Q^n`` (THEORY.md §3): how private is ``Q(theta_hat)``, from one trained model.

Three steps, each its own function:

1. ``standard_errors(model, X, y, loss, ...)``: the standard error of every parameter, ``sqrt(Sigma_kk / n)``
   with ``Sigma = H^-1 V H^-1`` (sandwich, from per-sample gradients and the Hessian of the training objective)
   or from bootstrap refits.
2. ``estimate(theta, stderr, quantizer, n)``: margins ``delta_k`` to the nearest decision threshold of ``Q``
   (grid as ``Q`` computes it at ``theta``), standardised margins ``z_k = delta_k / stderr_k``
   (``= sqrt(n) delta_k / sigma_k``), and from them ``r_min``, ``r_soft``, ``p_flip``, the bound on
   ``Delta_n``, the weights at risk, and the scale channel (THEORY.md §3.7).
3. ``estimate_model(model, X, y, loss, quantizers, ...)``: both steps for several quantizers, one row each,
   with bootstrap confidence intervals over the data.

The training objective is the one of ``mislib.evaluation.trainers``: weighted mean loss plus ``ridge / 2`` times the squared
norm of the penalised parameters (by default those whose name ends in ``weight``; biases are not penalised).
Pass the ``ridge`` used in training: the Hessian includes it. Losses: a per-sample callable
``loss(outputs, targets) -> [n]`` or a name, "logistic" (``softplus(f) - y f``), "squared" (``(y - f)^2 / 2``)
or "cross_entropy".
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, jvp, vmap
from torch.func import hessian as func_hessian

from mislib.infra.checks import check_choice, check_float, check_int, check_tensor
from mislib.modules import LinearRegression, LogisticRegression, flatten_params, unflatten_params
from mislib.quantizers import Quantizer, labelled

LOSS_NAMES = ("logistic", "squared", "cross_entropy")
METHODS = ("sandwich", "bootstrap")
HESSIAN_MODES = ("exact", "cg", "auto")
SCALE_CHANNELS = ("none", "continuous", "stored-on-grid")

# Modules whose outputs are linear in their parameters: the Hessian is exactly its Gauss-Newton part.
_LINEAR_IN_PARAMETERS = (LogisticRegression, LinearRegression, nn.Linear)

# Above this many parameters "auto" switches from the exact Hessian to conjugate gradients.
EXACT_MAX_PARAMETERS = 2000
# Per-sample Jacobians (n x outputs x parameters entries) are kept in memory up to this size (256 MiB in
# float64), else recomputed chunk by chunk in every Hessian-vector product.
JACOBIAN_CACHE_ENTRIES = 2 ** 25
# Conjugate gradients solve at most this many entries' worth of right-hand sides at once (block x parameters;
# 512 MiB per array in float64, about five arrays): fewer blocks mean fewer passes over the data.
CG_BLOCK_ENTRIES = 2 ** 26


class NotAtOptimumWarning(UserWarning):
    """The model's parameters are not at a minimum of the objective given (train longer, or check ``ridge``)."""


# --------------------------------------------------------------------------------------------------- losses

def _logistic(outputs, targets):
    f = outputs.reshape(targets.shape)
    return nn.functional.softplus(f) - targets * f


def _squared(outputs, targets):
    return 0.5 * (targets - outputs.reshape(targets.shape)) ** 2


def _cross_entropy(outputs, targets):
    return nn.functional.cross_entropy(outputs, targets.long(), reduction="none")


_LOSSES = {"logistic": _logistic, "squared": _squared, "cross_entropy": _cross_entropy}


def _logistic_derivatives(f, t):
    """First and second derivatives of the logistic loss in the outputs f [m, 1]: [m, 1] and [m, 1, 1]."""
    s = torch.sigmoid(f)
    return s - t.reshape(f.shape), (s * (1 - s)).unsqueeze(-1)


def _squared_derivatives(f, t):
    return f - t.reshape(f.shape), torch.ones_like(f).unsqueeze(-1)


def _cross_entropy_derivatives(f, t):
    """softmax(f) - onehot(t) and diag(p) - p p' for logits f [m, k]."""
    p = torch.softmax(f, dim=-1)
    onehot = nn.functional.one_hot(t.long(), f.shape[-1]).to(f.dtype)
    return p - onehot, torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


# Closed forms for the named losses (autodiff through vmap costs milliseconds of overhead on small models).
_LOSS_DERIVATIVES = {_logistic: _logistic_derivatives, _squared: _squared_derivatives,
                     _cross_entropy: _cross_entropy_derivatives}


def resolve_loss(loss, model: nn.Module | None = None):
    """A per-sample loss callable from a name, a callable, or None (the module's ``default_loss``)."""
    if loss is None:
        loss = getattr(model, "default_loss", None)
        if loss is None:
            raise ValueError("loss is None and the model has no default_loss: pass 'logistic', 'squared', "
                             "'cross_entropy' or a callable(outputs, targets) -> [n]")
    if isinstance(loss, str):
        return _LOSSES[check_choice("loss", loss, LOSS_NAMES)]
    if callable(loss):
        return loss
    raise TypeError(f"loss must be a name in {list(LOSS_NAMES)} or a callable, got {type(loss).__name__}")


def _default_penalize(name: str) -> bool:
    return name.endswith("weight")


# ------------------------------------------------------------------------------------- the objective, batched

class _Problem:
    """A module, its data and its training objective, on flat parameter vectors (torch.func throughout)."""

    def __init__(self, model, X, y, loss, ridge, sample_weight, penalize, chunk_size):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = copy.deepcopy(model).eval()  # eval: no dropout / batch-norm updates inside torch.func
        named = [(name, p) for name, p in self.model.named_parameters()]
        if not named:
            raise ValueError("model has no parameters")
        self.like = {name: p.detach() for name, p in named}
        self.theta = flatten_params(self.like).clone()
        if not self.theta.is_floating_point():
            raise TypeError("model parameters must be floating point")
        dtype, device = self.theta.dtype, self.theta.device
        self.buffers = {name: b for name, b in self.model.named_buffers()}
        self.loss_fn = resolve_loss(loss, model)
        self.loss_name = loss if isinstance(loss, str) else getattr(model, "default_loss", "custom")
        self.X = _data("X", X, dtype, device)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        self.y = y.to(device)
        if self.y.is_floating_point():
            check_tensor("y", self.y)
            self.y = self.y.to(dtype)
        n = self.X.shape[0]
        if self.y.shape[0] != n:
            raise ValueError(f"X has {n} samples but y has {self.y.shape[0]}")
        if n < 2:
            raise ValueError(f"need at least 2 samples, got {n}")
        if self.loss_name == "logistic" and bool(((self.y != 0) & (self.y != 1)).any()):
            raise ValueError("y must contain only 0 and 1 for the 'logistic' loss")
        self.n = n
        self.ridge = check_float("ridge", ridge, low=0.0)
        penalize = _default_penalize if penalize is None else penalize
        self.ridge_vec = torch.cat([torch.full((v.numel(),), self.ridge if penalize(name) else 0.0,
                                               dtype=dtype, device=device) for name, v in self.like.items()])
        if sample_weight is None:
            raw = torch.ones(n, dtype=dtype, device=device)
        else:
            raw = _data("sample_weight", sample_weight, dtype, device)
            if raw.shape != (n,):
                raise ValueError(f"sample_weight must be [n] = [{n}], got {tuple(raw.shape)}")
            if bool((raw < 0).any()) or float(raw.sum()) <= 0:
                raise ValueError("sample_weight must be >= 0 with a positive total")
        self.n_eff = float(raw.sum())
        self.w = raw / raw.sum()
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        try:
            with torch.no_grad():
                out = self.outputs(self.theta, self.X[:2])
        except RuntimeError as exc:
            raise ValueError(f"the model cannot be applied to X of shape {tuple(self.X.shape)} (does X have the "
                             f"number of features the model expects?): {exc}") from exc
        with torch.no_grad():
            per = self.loss_fn(out, self.y[:2])
        if not isinstance(per, torch.Tensor) or per.shape != (2,):
            raise ValueError("loss(outputs, targets) must return one loss per sample ([n]); got shape "
                             f"{tuple(per.shape) if isinstance(per, torch.Tensor) else type(per).__name__}")
        self.out_shape = (1,) + tuple(out.shape[1:])      # the model's output for one sample
        self.k = math.prod(out.shape[1:])                  # outputs per sample
        self._state = None                                 # curvature at the last point asked for

    @property
    def p(self) -> int:
        return self.theta.numel()

    def outputs(self, flat, X):
        return functional_call(self.model, (unflatten_params(flat, self.like), self.buffers), (X,))

    def losses(self, flat):
        return self.loss_fn(self.outputs(flat, self.X), self.y)

    def objective(self, flat, w=None):
        w = self.w if w is None else w
        return (w * self.losses(flat)).sum() + 0.5 * (self.ridge_vec * flat ** 2).sum()

    def per_sample_grads(self, flat, X=None, y=None):
        """[n, p]: gradient of each sample's loss (without the ridge term, which is the same for all);
        on the problem's data, or on other points ``X``, ``y``."""
        X, y = (self.X, self.y) if X is None else (X, y)

        def single(theta, x, t):
            return self.loss_fn(self.outputs(theta, x.unsqueeze(0)), t.unsqueeze(0)).sum()

        per = vmap(grad(single), in_dims=(None, 0, 0))
        rows = max(1, self.chunk_size // max(1, self.p))
        return torch.cat([per(flat, X[i:i + rows], y[i:i + rows]) for i in range(0, X.shape[0], rows)])

    def gradient(self, flat):
        return grad(self.objective)(flat)

    # Curvature. The Hessian of the objective splits exactly (chain rule) into a Gauss-Newton part and a
    # residual part,  H = P + sum_i w_i J_i' L_i J_i + C,  C = sum_i w_i sum_k g_ik grad^2 f_ik,
    # with f_i the model's k outputs on sample i, J_i = df_i/dtheta [k, p] (per-sample Jacobians: vmap over
    # samples, which torch runs as large matrix products), g_i and L_i the first and second derivatives of the
    # loss in the outputs, and P the ridge. C vanishes when the outputs are linear in the parameters (linear,
    # logistic, softmax regression); it is probed with one random direction and added only where it is not
    # zero (MLPs), by Hessian-vector products. Why not Hessian-vector products throughout: torch's vmap over
    # tangent directions turns every layer into one matrix-vector product per direction, ~10x slower than
    # the matrix products J' (L (J V')) below.

    def _single_output(self, named, x):
        return functional_call(self.model, (named, self.buffers), (x.unsqueeze(0),)).reshape(-1)

    def _sample_loss(self, f, t):
        return self.loss_fn(f.reshape(self.out_shape), t.unsqueeze(0)).sum()

    def jacobian_chunks(self, flat):
        """Per chunk of samples: (slice, J [m, k, p], g [m, k], L [m, k, k]) at ``flat``."""
        # Jacobians in the named parameters, concatenated: differentiating through the flat vector's slices
        # would add a zero-filled [m, k, p] buffer per parameter tensor
        jac = vmap(jacrev(self._single_output), in_dims=(None, 0))
        named = unflatten_params(flat, self.like)
        derivatives = _LOSS_DERIVATIVES.get(self.loss_fn)
        if derivatives is None:  # a custom loss: its derivatives in the outputs by autodiff
            first, second = vmap(grad(self._sample_loss)), vmap(func_hessian(self._sample_loss))
        else:
            first, second = (lambda f, t: derivatives(f, t)[0]), (lambda f, t: derivatives(f, t)[1])
        rows = max(1, self.chunk_size // max(1, self.k * self.p))
        for i in range(0, self.n, rows):
            sl = slice(i, min(self.n, i + rows))
            Xc, yc = self.X[sl], self.y[sl]
            f = self.outputs(flat, Xc).reshape(-1, self.k).detach()
            parts = jac(named, Xc)
            J = torch.cat([parts[name].reshape(Xc.shape[0], self.k, -1) for name in self.like], dim=-1)
            del parts
            yield sl, J, first(f, yc), second(f, yc)

    def _curvature(self, flat, w=None):
        """Everything the Hessian needs at ``flat`` with weights ``w``; the per-sample Jacobians are kept when
        they fit in ``JACOBIAN_CACHE_ENTRIES`` (else recomputed chunk by chunk in each product)."""
        w = self.w if w is None else w
        state = self._state
        if (state is not None and state.w is w and state.flat.shape == flat.shape
                and torch.equal(state.flat, flat)):
            return state
        keep = self.n * self.k * self.p <= JACOBIAN_CACHE_ENTRIES
        gs, diag = [], self.ridge_vec.clone()
        gbar = torch.zeros_like(diag)
        # one random direction decides whether C is zero: C v = 0 for a random v has probability 0 unless C = 0
        probe = torch.randn(1, self.p, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        probe = probe.to(device=flat.device, dtype=flat.dtype)
        gauss_newton_probe = probe * self.ridge_vec
        if keep:  # one [n, k, p] tensor: each product is then two large matrix products
            J_all = torch.empty(self.n, self.k, self.p, dtype=flat.dtype, device=flat.device)
            L_all = torch.empty(self.n, self.k, self.k, dtype=flat.dtype, device=flat.device)
        for sl, J, g, L in self.jacobian_chunks(flat):   # one pass over the data for all of these
            gs.append(g)
            wc = w[sl]
            gbar.addmv_(J.reshape(-1, self.p).T, (wc.unsqueeze(-1) * g).reshape(-1))
            self._chunk_product(J, L, wc, probe, out=gauss_newton_probe)
            # diag(J' L J) per sample, summed with the weights
            if self.k == 1:
                diag.addmv_((J[:, 0, :] ** 2).T, wc * L[:, 0, 0])
            else:
                diag += torch.einsum("mkp,mkl,mlp->p", wc.reshape(-1, 1, 1) * J, L, J)
            if keep:
                J_all[sl], L_all[sl] = J, L
        state = _Curvature(flat=flat.detach().clone(), w=w, chunks=[(slice(0, self.n), J_all, L_all)] if keep
                           else None, g=torch.cat(gs), diag=diag, gbar=gbar, residual=False)
        if type(self.model) not in _LINEAR_IN_PARAMETERS:   # known linear models: C = 0, no probe needed
            scale = float(gauss_newton_probe.norm())
            state.residual = float(self._residual_product(state, probe).norm()) > 1e-12 * scale
        self._state = state
        return state

    def _jacobians(self, state):
        if state.chunks is not None:
            yield from state.chunks
        else:
            for sl, J, _, L in self.jacobian_chunks(state.flat):
                yield sl, J, L

    def _chunk_product(self, J, L, w, V, out):
        """Add sum_i w_i J_i' L_i J_i v over one chunk of samples to ``out``, for each row v of V [m, p]."""
        J2 = J.reshape(-1, self.p)                                            # [c k, p]
        JV = (J2 @ V.T).reshape(J.shape[0], self.k, -1)                       # [c, k, m]
        LJV = (w.reshape(-1, 1, 1) * torch.bmm(L, JV)).reshape(-1, V.shape[0])
        return out.addmm_(LJV.T, J2)                                          # in place: no [m, p] temporary

    def _gauss_newton_product(self, state, V):
        """(P + sum_i w_i J_i' L_i J_i) v for each row v of V [m, p]."""
        out = V * self.ridge_vec
        for sl, J, L in self._jacobians(state):
            self._chunk_product(J, L, state.w[sl], V, out=out)
        return out

    def _residual_product(self, state, V):
        """C v for each row v of V: Hessian-vector products of sum_i w_i g_i . f_i(theta) (g held fixed).

        In the named parameters (as the Jacobians), chunked over samples and over the rows of V: vmap over
        directions copies the chunk's inputs once per direction, so about 16 directions x the chunk's inputs
        are held at once (and one direction at a time, without vmap, for very wide inputs)."""
        weights = state.w.unsqueeze(-1) * state.g                               # [n, k]
        named = unflatten_params(state.flat, self.like)
        row_size = max(1, self.X[:1].numel())
        samples = max(1, min(self.n, self.chunk_size // (min(16, V.shape[0]) * row_size)))
        directions = max(1, min(V.shape[0], self.chunk_size // (self.p + samples * row_size)))
        out = torch.zeros_like(V)
        for i in range(0, self.n, samples):
            Xc, wc = self.X[i:i + samples], weights[i:i + samples]

            def linearised(params):
                return (wc * functional_call(self.model, (params, self.buffers), (Xc,)).reshape(-1, self.k)).sum()

            def one(v):
                return flatten_params(jvp(grad(linearised), (named,), (unflatten_params(v, self.like),))[1])

            for j in range(0, V.shape[0], directions):
                block = V[j:j + directions]
                out[j:j + directions] += (one(block[0]).unsqueeze(0) if block.shape[0] == 1
                                          else vmap(one)(block))
        return out

    def mean_gradient(self, flat):
        """[p] weighted mean of the per-sample loss gradients (no ridge term)."""
        return self._curvature(flat).gbar

    def gradient_chunks(self, flat):
        """Per chunk of samples: (slice, per-sample loss gradients G [m, p] = g' J), from the curvature."""
        state = self._curvature(flat)
        for sl, J, _ in self._jacobians(state):
            yield sl, (J[:, 0, :] * state.g[sl]) if self.k == 1 else torch.einsum("mk,mkp->mp", state.g[sl], J)

    def hvp(self, flat, V):
        """H(flat) v for each row v of V [m, p] (Gauss-Newton products, plus the residual part if any)."""
        state = self._curvature(flat)
        out = self._gauss_newton_product(state, V)
        if state.residual:
            out = out + self._residual_product(state, V)
        return out

    def hessian_diagonal(self, flat):
        """Diagonal of the Gauss-Newton part plus the ridge (the Jacobi preconditioner of conjugate gradients; the
        residual part C, where there is one, is left out: a preconditioner only has to be positive)."""
        return self._curvature(flat).diag

    def hessian(self, flat, w=None):
        """The full Hessian [p, p] of the objective (weights ``w``, default the problem's) at ``flat``."""
        state = self._curvature(flat, self.w if w is None else w)
        H = torch.diag(self.ridge_vec)
        for sl, J, L in self._jacobians(state):
            J2 = J.reshape(-1, self.p)
            H = H + J2.T @ (state.w[sl].reshape(-1, 1, 1) * torch.bmm(L, J)).reshape(-1, self.p)
        if state.residual:
            eye = torch.eye(self.p, dtype=flat.dtype, device=flat.device)
            H = H + self._residual_product(state, eye)
        return 0.5 * (H + H.T)

    def batched_objective(self, thetas, W):
        return vmap(self.objective, in_dims=(0, 0))(thetas, W)

    def batched_gradient(self, thetas, W):
        return vmap(grad(self.objective), in_dims=(0, 0))(thetas, W)


@dataclass
class _Curvature:
    flat: torch.Tensor             # the point
    w: torch.Tensor                # the weights of the objective
    chunks: list | None            # [(slice, J [m, k, p], L [m, k, k])] when kept in memory
    g: torch.Tensor                # [n, k] loss gradients in the outputs
    diag: torch.Tensor             # [p] diagonal of the Gauss-Newton part plus the ridge
    gbar: torch.Tensor             # [p] weighted mean of the per-sample loss gradients
    residual: bool                 # whether the residual part C is non-zero


def _data(name, value, dtype, device):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return check_tensor(name, value.to(device=device, dtype=dtype))


def _cholesky(H, context):
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) > 0:
        raise ValueError(f"{context}: the Hessian of the objective is not positive definite at the model's "
                         "parameters (not a minimum, or a flat direction): train to convergence and/or pass the "
                         "ridge used in training (ridge > 0)")
    return L


def block_cg(matvec, B, *, tol: float = 1e-10, max_iter: int = 500, inverse_diagonal=None):
    """Solve ``A u_j = b_j`` for every row of ``B`` [m, p] by conjugate gradients (A symmetric positive
    definite, given by ``matvec(V [m, p]) -> [m, p]``); stops when every relative residual <= ``tol``.
    ``inverse_diagonal`` [p] (optional, positive): Jacobi preconditioner, e.g. 1 / diag(A).
    Returns (U [m, p], iterations, largest relative residual)."""
    def dots(a, b):  # row-wise dot products without an [m, p] temporary (einsum runs them as one bmm)
        return torch.einsum("mp,mp->m", a, b)

    U = torch.zeros_like(B)
    R = B.clone()
    Z = R if inverse_diagonal is None else R * inverse_diagonal
    P = Z.clone()
    rz = dots(R, Z)
    rs = dots(R, R)
    norms = rs.sqrt().clamp_min(torch.finfo(B.dtype).tiny)
    it = 0
    for it in range(1, max_iter + 1):
        AP = matvec(P)
        curvature = dots(P, AP)
        live = rs > 0
        if bool((curvature[live] <= 0).any()):
            raise ValueError("conjugate gradients met a direction of non-positive curvature: the Hessian is "
                             "not positive definite at the model's parameters (pass ridge > 0?)")
        alpha = torch.where(live, rz / curvature.where(curvature != 0, torch.ones_like(curvature)),
                            torch.zeros_like(rz)).unsqueeze(-1)
        U.addcmul_(alpha, P)                    # in place: the blocks are the memory of a large model
        R.addcmul_(alpha, AP, value=-1)
        del AP
        rs = dots(R, R)
        if float((rs.sqrt() / norms).max()) <= tol:
            break
        Z = R if inverse_diagonal is None else R * inverse_diagonal
        rz_new = dots(R, Z)
        beta = (rz_new / rz.where(rz > 0, torch.ones_like(rz))).unsqueeze(-1)
        P.mul_(beta).add_(Z)
        rz = rz_new
    return U, it, float((rs.sqrt() / norms).max())


# ----------------------------------------------------------------------------------------- standard errors

@dataclass
class StandardErrors:
    """Flat standard errors and how they were obtained (``standard_errors(..., return_details=True)``)."""

    stderr: dict                 # named like model.named_parameters()
    flat: torch.Tensor           # [p] same values, flattened in named_parameters order
    method: str                  # "sandwich" or "bootstrap"
    hessian: str                 # "exact", "cg", "cg-sketch(m)" or "-" (bootstrap)
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
    """
    check_choice("method", method, METHODS)
    check_choice("hessian", hessian, HESSIAN_MODES)
    start = time.perf_counter()
    problem = _Problem(model, X, y, loss, ridge, sample_weight, penalize, chunk_size)
    if method == "sandwich":
        var, mode, cov = _sandwich_variance(problem, problem.theta, hessian, cg_tol, cg_max_iter, cg_sketch, seed)
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


def _resolve_hessian_mode(hessian, p):
    if hessian == "auto":
        return "exact" if p <= EXACT_MAX_PARAMETERS else "cg"
    return hessian


def _sandwich_variance(problem: _Problem, flat, hessian, cg_tol, cg_max_iter, cg_sketch, seed):
    """diag(H^-1 V H^-1) / n_eff at ``flat`` (plus the full matrix in exact mode)."""
    mode = _resolve_hessian_mode(hessian, problem.p)
    if mode == "exact":
        G = torch.cat([G for _, G in problem.gradient_chunks(flat)])     # g_i' J_i, from the curvature pass
        gbar = problem.mean_gradient(flat)
        R = problem.w.sqrt().unsqueeze(-1) * (G - gbar)           # V = R' R
        H = problem.hessian(flat)
        L = _cholesky(H, "standard_errors")
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


def refit(problem: _Problem, counts: torch.Tensor, *, hessian="auto", tol=None, max_iter=100, cg_tol=1e-10,
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
        L = _cholesky(problem.hessian(problem.theta), "bootstrap refit")

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


# ------------------------------------------------------------------------------------------------ indicator

@dataclass
class IndicatorResult:
    """The indicator for one quantizer at one model (all rates per sample: larger means more private).

    Weights channel (THEORY.md §3.4), over the quantized coordinates:
      ``r_min = min_k z_k^2 / (2n)``; ``r_soft = -(1/n) log sum_k Phi_bar(z_k)`` (negative when the sum exceeds
      1, i.e. when the union bound is vacuous); ``p_flip = 1 - prod_k (1 - Phi_bar(z_k))``;
      ``delta_bound = min(1, 2 p_flip)`` (``Delta_n <= 2 P(Q(theta_hat) != Q(theta*))``);
      ``weights_at_risk = sum_k Phi_bar(z_k)``.
    Scale channel (THEORY.md §3.7), reported separately: ``scale_z`` (one per stored scale / zero point),
    ``scale_r = min scale_z^2 / (2n)``: NaN for "none" (no data-dependent scale published), 0 for "continuous"
    (a float scale leaks at n^-1/2 whatever the weights do: it counts as a coordinate with ``z = 0``), and for
    "stored-on-grid" the scale's own margin over its delta-method standard error.
    The ``*_with_scale`` fields treat the stored scales as extra coordinates of the release (``r_min_with_scale =
    min(r_min, scale_r)``): they describe everything that is published, and are the ones to rank quantizers by.
    """

    quantizer: str
    n: float
    r_min: float
    r_soft: float
    p_flip: float
    log_p_flip: float
    delta_bound: float
    weights_at_risk: float
    z_min: float
    argmin: int                   # flat index of the coordinate with the smallest z
    n_coordinates: int
    scale_channel: str
    scale_r: float
    r_min_with_scale: float
    r_soft_with_scale: float
    p_flip_with_scale: float
    log_p_flip_with_scale: float
    delta_bound_with_scale: float
    deterministic: bool
    z: torch.Tensor | dict = field(repr=False)
    margins: torch.Tensor | dict = field(repr=False)
    scale_z: torch.Tensor | None = field(repr=False, default=None)
    note: str = ""
    confidence_intervals: dict = field(default_factory=dict)

    SCALARS = ("r_min", "r_soft", "p_flip", "log_p_flip", "delta_bound", "weights_at_risk", "z_min",
               "scale_r", "r_min_with_scale", "r_soft_with_scale", "p_flip_with_scale", "log_p_flip_with_scale",
               "delta_bound_with_scale")

    def as_row(self) -> dict:
        """The scalar fields (and confidence intervals as ``<name>_low`` / ``<name>_high``) for a table."""
        row = {"quantizer": self.quantizer, "sample_size": self.n, "n_coordinates": self.n_coordinates,
               "scale_channel": self.scale_channel, "deterministic": self.deterministic}
        row.update({name: getattr(self, name) for name in self.SCALARS})
        for name, (low, high) in self.confidence_intervals.items():
            row[f"{name}_low"], row[f"{name}_high"] = low, high
        row["note"] = self.note
        return row


def _log_tail(z):
    """log Phi_bar(z), accurate far in the tail."""
    return torch.special.log_ndtr(-z)


def _summaries(z: torch.Tensor, n: float) -> dict:
    """r_min, r_soft, p_flip (and its log), delta bound and weights at risk from standardised margins."""
    z = z.to(torch.float64).reshape(-1)
    log_tail = _log_tail(z)
    lse = float(torch.logsumexp(log_tail, 0))
    log_survive = torch.log1p(-log_tail.exp())       # tails <= 1/2: log1p is accurate here
    total = float(log_survive.sum())
    if lse < -30:
        # p_flip = sum tails - (pairwise products ...): relative correction below e^lse ~ 1e-13
        log_p_flip = lse
    else:
        log_p_flip = math.log(-math.expm1(total)) if total < 0 else -math.inf
    p_flip = math.exp(log_p_flip)
    return {
        "r_min": float(z.min() ** 2) / (2 * n),
        "r_soft": -lse / n,
        "p_flip": p_flip,
        "log_p_flip": log_p_flip,
        "delta_bound": min(1.0, 2 * p_flip),
        "weights_at_risk": math.exp(lse),
    }


def _as_tensor_dict(name, value):
    if isinstance(value, torch.Tensor):
        return None, {"": value}
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{name} is an empty mapping")
        for key, v in value.items():
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"{name}[{key!r}] must be a torch.Tensor, got {type(v).__name__}")
        return list(value), dict(value)
    raise TypeError(f"{name} must be a torch.Tensor or a dict of tensors (named parameters), got "
                    f"{type(value).__name__}")


def _quantizer_label(quantizer: Quantizer) -> str:
    return repr(quantizer)


def estimate(theta, stderr, quantizer: Quantizer, n) -> IndicatorResult:
    """The indicator of ``quantizer`` at parameters ``theta`` whose standard errors are ``stderr``.

    ``theta`` and ``stderr``: tensors of the same shape, or dicts of them (named parameters: each tensor is
    quantized on its own, as a per-tensor quantizer treats a model's layers; the statistics pool all
    coordinates). ``stderr`` already includes the ``1/sqrt(n)`` (as ``standard_errors`` returns it), so
    ``z_k = margin_k / stderr_k``. ``n`` (>= 2) is the training-set size, used for the rates ``(...) / n``.
    Returns an ``IndicatorResult``.
    """
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer must be a mislib.quantizers.Quantizer, got {type(quantizer).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating)):
        raise TypeError(f"n must be a number (the training-set size), got {type(n).__name__}")
    n = check_float("n", float(n), low=2.0)
    keys, thetas = _as_tensor_dict("theta", theta)
    skeys, stderrs = _as_tensor_dict("stderr", stderr)
    if (keys is None) != (skeys is None) or (keys is not None and set(keys) != set(skeys)):
        raise ValueError("theta and stderr must have the same structure (both tensors, or dicts with the same keys)")
    zs, margins, scale_zs, notes = {}, {}, [], []
    for key, t in thetas.items():
        label = "theta" if keys is None else f"theta[{key!r}]"
        t = check_tensor(label, t.detach())
        s = check_tensor(label.replace("theta", "stderr"), stderrs[key].detach().to(device=t.device))
        if s.shape != t.shape:
            raise ValueError(f"stderr has shape {tuple(s.shape)} but theta has {tuple(t.shape)}"
                             + ("" if keys is None else f" (parameter {key!r})"))
        if bool((s <= 0).any()):
            raise ValueError(f"stderr must be > 0 everywhere ({int((s <= 0).sum())} entries are not"
                             + ("" if keys is None else f", parameter {key!r}") + ")")
        m = quantizer.margins(t)
        if bool(torch.isnan(m).any()):
            raise ValueError(f"{quantizer!r} returned NaN margins")
        margins[key] = m
        zs[key] = m.to(torch.float64) / s.to(torch.float64)
        sz, note = _scale_z(quantizer, t, s)
        if sz is not None:
            scale_zs.append(sz.reshape(-1))
        if note and note not in notes:
            notes.append(note)
    z_flat = torch.cat([v.reshape(-1) for v in zs.values()])
    weights = _summaries(z_flat, n)
    channel = quantizer.scale_channel
    if scale_zs:
        scale_z = torch.cat(scale_zs)
        scale_r = float(scale_z.min() ** 2) / (2 * n)
        both = _summaries(torch.cat([z_flat, scale_z]), n)
    else:
        scale_z, scale_r, both = None, math.nan, weights
    if not quantizer.deterministic:
        notes.append("randomised quantizer: no deterministic cells, margins are 0 and r = 0, although its "
                     "Delta_n decays like 1/n (THEORY.md §2)")
    return IndicatorResult(
        quantizer=_quantizer_label(quantizer), n=n, **weights,
        z_min=float(z_flat.min()), argmin=int(z_flat.argmin()), n_coordinates=int(z_flat.numel()),
        scale_channel=channel, scale_r=scale_r,
        r_min_with_scale=min(weights["r_min"], scale_r) if scale_zs else weights["r_min"],
        r_soft_with_scale=both["r_soft"], p_flip_with_scale=both["p_flip"],
        log_p_flip_with_scale=both["log_p_flip"], delta_bound_with_scale=both["delta_bound"],
        deterministic=bool(quantizer.deterministic),
        z=zs[""] if keys is None else zs, margins=margins[""] if keys is None else margins,
        scale_z=scale_z, note="; ".join(notes))


# ----------------------------------------------------------------------------------------- scale channel

# Up to this many coordinates the Jacobian of a scale statistic is taken coordinate by coordinate; beyond,
# from random sign directions (exact for max-type statistics, whose Jacobian has one entry per group).
SCALE_FD_MAX_COORDINATES = 512
SCALE_FD_PROBES = 64


def _scale_z(quantizer, w, se):
    """z of each published scale (and zero point) of ``quantizer`` at ``w``; (None, note) when not applicable."""
    channel = quantizer.scale_channel
    if channel not in SCALE_CHANNELS:
        raise ValueError(f"{quantizer!r} reports scale_channel {channel!r}; expected one of {SCALE_CHANNELS}")
    if channel == "none":
        return None, ""
    if channel == "continuous":
        count = sum(s.count for s in quantizer.storage(w) if s.data_dependent) or 1
        # (on w's device: it is concatenated with the weights' z)
        return torch.zeros(count, dtype=torch.float64, device=w.device), (
            "continuous (float) scale published: it leaks at n^-1/2 whatever the weights do (scale_r = 0)")
    margins = quantizer.scale_margins(w)
    if margins is None:
        raise ValueError(f"{quantizer!r} says its scale is stored on a grid but scale_margins() is None")
    margins = margins.reshape(-1).to(torch.float64)
    se_scale = _statistic_stderr(lambda v: _raw_scale(quantizer, v), w, se)
    parts = [margins / se_scale]
    zp_margins = getattr(quantizer, "zero_point_margins", lambda v: None)(w)
    if zp_margins is not None:
        se_zp = _statistic_stderr(lambda v: _range_minimum(quantizer, v), w, se)
        parts.append(zp_margins.reshape(-1).to(torch.float64) / se_zp)
    return torch.cat(parts), ("scale stored on a grid: its margin over the delta-method standard error of the "
                              "scale statistic (diagonal covariance)")


def _grid_of(quantizer, w):
    grid = quantizer.grid(w)
    if isinstance(grid, dict) and "uniform" in grid:
        grid = grid["uniform"]
    return grid


def _raw_scale(quantizer, w):
    grid = _grid_of(quantizer, w)
    raw = getattr(grid, "raw_scale", None)
    if raw is None:
        raise ValueError(f"cannot find the raw scale statistic of {quantizer!r} (needs grid(w).raw_scale)")
    return raw.reshape(-1).to(torch.float64)


def _range_minimum(quantizer, w):
    """min(w, 0) per group: the statistic that sets an affine grid's zero point."""
    rows = w.detach().to(torch.float64)
    if getattr(quantizer, "per_channel", False):
        rows = rows.movedim(quantizer.channel_dim, 0).reshape(rows.shape[quantizer.channel_dim], -1)
    else:
        rows = rows.reshape(1, -1)
    return rows.amin(dim=1).clamp_max(0)


def _statistic_stderr(statistic, w, se):
    """Delta method with a diagonal covariance: sqrt(sum_k (ds/dw_k)^2 se_k^2), derivatives by central
    differences (exact for the piecewise-linear statistics used: max|w|, range, mean|w|)."""
    w64 = w.detach().to(torch.float64)
    se64 = se.detach().to(torch.float64).to(w64.device)
    h = 1e-6 * float(w64.abs().max().clamp_min(1e-12))
    base = statistic(w64)
    flat = w64.reshape(-1)
    if flat.numel() <= SCALE_FD_MAX_COORDINATES:
        total = torch.zeros_like(base)
        for k in range(flat.numel()):
            plus, minus = flat.clone(), flat.clone()
            plus[k] += h
            minus[k] -= h
            deriv = (statistic(plus.reshape(w64.shape)) - statistic(minus.reshape(w64.shape))) / (2 * h)
            total += deriv ** 2 * float(se64.reshape(-1)[k]) ** 2
    else:
        g = torch.Generator().manual_seed(0)
        total = torch.zeros_like(base)
        for _ in range(SCALE_FD_PROBES):
            direction = (torch.randint(0, 2, flat.shape, generator=g) * 2 - 1).to(flat) * se64.reshape(-1)
            step = h / float(se64.max())
            deriv = (statistic((flat + step * direction).reshape(w64.shape))
                     - statistic((flat - step * direction).reshape(w64.shape))) / (2 * step)
            total += deriv ** 2 / SCALE_FD_PROBES
    return total.sqrt().clamp_min(1e-300)


# -------------------------------------------------------------------------------------- model-level driver



def estimate_model(model: nn.Module, X, y, loss=None, quantizers=(), *, ridge: float = 0.0,
                   n_bootstrap_ci: int = 0, confidence: float = 0.95, seed: int = 0, hessian: str = "auto",
                   penalize=None, cg_sketch: int | None = 256, chunk_size: int = 2 ** 22):
    """Indicator of each quantizer at a trained module, one row per quantizer (a pandas DataFrame).

    Standard errors by the sandwich (``hessian`` as in ``standard_errors``), each named parameter quantized on its
    own, statistics pooled over all of them (``estimate``). With ``n_bootstrap_ci = B > 0``: the data are
    resampled B times, the model refit warm-started, the standard errors and indicator recomputed, and
    percentile intervals at level ``confidence`` are added for the r's (``<name>_low``, ``<name>_high``).
    Columns also give the cost: ``seconds`` (standard errors + indicator, and the bootstrap separately) and
    ``model_fits`` (refits; the sandwich needs none beyond the trained model).
    """
    import pandas as pd

    items = labelled(quantizers)
    n_bootstrap_ci = check_int("n_bootstrap_ci", n_bootstrap_ci, minimum=0)
    if n_bootstrap_ci == 1:
        raise ValueError("n_bootstrap_ci must be 0 (no intervals) or >= 2")
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_int("seed", seed, minimum=0)
    start = time.perf_counter()
    problem = _Problem(model, X, y, loss, ridge, None, penalize, chunk_size)
    var, mode, _ = _sandwich_variance(problem, problem.theta, hessian, 1e-10, 500, cg_sketch, seed)
    se_time = time.perf_counter() - start
    stderr = unflatten_params(var.clamp_min(0).sqrt(), problem.like)
    theta = unflatten_params(problem.theta, problem.like)
    results, seconds = {}, {}
    for label, q in items:
        t0 = time.perf_counter()
        results[label] = estimate(theta, stderr, q, problem.n)
        results[label].quantizer = label
        seconds[label] = se_time + time.perf_counter() - t0
    boot_time = 0.0
    if n_bootstrap_ci:
        t0 = time.perf_counter()
        counts = bootstrap_counts(problem.w, n_bootstrap_ci, seed, n_draws=problem.n)
        replicates = refit(problem, counts, hessian=hessian)
        draws = {label: {name: [] for name in ("r_min", "r_soft", "r_min_with_scale", "r_soft_with_scale")}
                 for label, _ in items}
        for b in range(n_bootstrap_ci):
            problem_b = _Problem(problem.model, problem.X, problem.y, loss, ridge, counts[b], penalize,
                                 chunk_size)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotAtOptimumWarning)
                var_b, _, _ = _sandwich_variance(problem_b, replicates[b], hessian, 1e-10, 500, cg_sketch,
                                                 seed + b + 1)
            theta_b = unflatten_params(replicates[b], problem.like)
            se_b = unflatten_params(var_b.clamp_min(1e-300).sqrt(), problem.like)
            for label, q in items:
                res = estimate(theta_b, se_b, q, problem.n)
                for name in draws[label]:
                    draws[label][name].append(getattr(res, name))
        alpha = (1 - confidence) / 2
        for label, _ in items:
            for name, values in draws[label].items():
                values = np.asarray(values, dtype=float)
                results[label].confidence_intervals[name] = (float(np.quantile(values, alpha)),
                                                             float(np.quantile(values, 1 - alpha)))
        boot_time = time.perf_counter() - t0
    rows = []
    for label, _ in items:
        row = results[label].as_row()
        row.update({"standard_errors": f"sandwich ({mode})", "seconds": seconds[label],
                    "bootstrap_seconds": boot_time, "model_fits": n_bootstrap_ci,
                    "n_bootstrap_ci": n_bootstrap_ci})
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ influence

def influence_shifts(model: nn.Module, X_targets, y_targets, X_reference, y_reference, loss=None, *, n: int,
                     ridge: float = 0.0, penalize=None, chunk_size: int = 2 ** 22) -> torch.Tensor:
    """First-order effect of putting each target in a training set of size ``n``: [m, p].

    Replacing one of ``n`` training points by ``z`` moves the minimiser by about
    ``-(1/n) H^-1 (grad loss(z) - E grad loss)``, with ``H`` the Hessian of the objective (ridge included) and the
    expectation over ``P``; both are evaluated at the module's parameters on the reference sample (draws from
    ``P``, e.g. public data). This is the mean shift that the white-box Gaussian attack tests for.
    """
    n = check_int("n", n, minimum=2)
    reference = _Problem(model, X_reference, y_reference, loss, ridge, None, penalize, chunk_size)
    L = _cholesky(reference.hessian(reference.theta), "influence_shifts")
    mean_gradient = reference.w @ reference.per_sample_grads(reference.theta)
    X_targets = _data("X_targets", X_targets, reference.theta.dtype, reference.theta.device)
    if not isinstance(y_targets, torch.Tensor) or y_targets.shape[0] != X_targets.shape[0]:
        raise ValueError("y_targets must be a tensor with one row per row of X_targets")
    y_targets = y_targets.to(device=reference.theta.device,
                             dtype=reference.theta.dtype if y_targets.is_floating_point() else y_targets.dtype)
    G = reference.per_sample_grads(reference.theta, X_targets, y_targets) - mean_gradient
    return -torch.cholesky_solve(G.T, L).T / n
