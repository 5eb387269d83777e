"""Exact sandwich standard errors at scale, from the structure of the Hessian (no sketches).

The sandwich variance of every parameter is ``diag(H^-1 V H^-1) / n_eff`` with ``V = R' R``, ``R`` the rows
``r_i = sqrt(w_i) (g_i - gbar)`` (per-sample loss gradients ``g_i``, centred with the sample weights ``w_i``,
which sum to 1), and ``H`` the Hessian of the training objective ``sum_i w_i loss_i + 1/2 sum_k lambda_k
theta_k^2`` (``lambda_k = ridge`` on the penalised coordinates, 0 on the others: by default those whose name
ends in ``weight``, so biases and the intercept are free), exactly as ``mislib.indicator.standard_errors``.

Every per-sample gradient is a combination of the rows of the per-sample Jacobian ``J`` [m = n k, p] of the
model's k outputs: ``g_i = J_i' e_i``, ``e_i`` the loss's derivative in the outputs. So ``R' = J' C`` with a small
``C`` [m, n], and the Gauss-Newton part of the Hessian is ``Lambda + J' W J`` (``W`` block-diagonal, the
weighted second derivatives of the loss in the outputs). With ``J = [J_p, J_u]`` split into penalised and
free columns, ``K = J_p J_p'`` [m, m] and ``Q = (ridge I + W K)^-1``, the Woodbury identity and one block
elimination give, exactly, for every right-hand side ``J' c``::

    x_u = (J_u' Q W J_u)^-1 J_u' Q c          (free coordinates: the Schur complement, u x u)
    x_p = J_p' Q (c - W J_u x_u)              (penalised coordinates)

so ``H^-1 R'`` costs two passes over ``J_p`` (``K``, then ``J_p' F``) and ``O(p m^2)`` operations in
``O(p m)`` memory: no ``p x p`` matrix is ever formed.

* Generalised linear models (``glm_standard_errors``; logistic and squared loss): ``J = [X, 1]`` is the data
  and the Gauss-Newton form *is* the Hessian, so the result is exact; ``X`` is read in column chunks (never
  copied, any floating dtype: each chunk is promoted to float64).
* Other modules (``model_standard_errors``, e.g. MLPs and CNNs): ``H`` adds the curvature of the outputs
  themselves, ``C_res = sum_i w_i sum_k e_ik grad^2 f_ik``. ``hessian="exact"`` solves ``H Y = R'`` by block
  conjugate gradients on exact Hessian-vector products (``J' W J v`` plus ``C_res v`` by ``torch.func``
  forward-over-reverse), preconditioned by the exact inverse of the Gauss-Newton form above and started from
  its solution; ``hessian="gauss-newton"`` stops there (approximate: ``C_res`` left out; cheaper by the cost
  of the iterations; its error, measured in ``examples/digits_cnn.py``, is large for networks: 77-85% on some
  standard errors there).

Works on any device (``device="cuda"``): nothing leaves the device in the computation.
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, jvp, vmap
from torch.func import hessian as func_hessian

from mislib.infra.checks import check_choice, check_float, check_int, check_tensor, resolve_device
from mislib.modules import LinearRegression, LogisticRegression, flatten_params, unflatten_params

GLM_LOSSES = ("logistic", "squared")
MODEL_HESSIANS = ("exact", "gauss-newton")
# Column chunks of X hold at most this many entries (float64: 128 MiB; larger chunks run the products faster).
CHUNK_ENTRIES = 2 ** 24


# ------------------------------------------------------------------------------------------- shared algebra

def _coefficients(K, W, J_u, C, ridge):
    """The Woodbury / Schur solve in coefficient space: ``H^-1 J' C = [J_p' F ; X_u]``; returns ``(F, X_u)``.

    K [m, m] = J_p J_p', W [m, m] (PSD), J_u [m, u] (u may be 0), C [m, b], ridge > 0."""
    m = K.shape[0]
    Q = torch.linalg.inv(ridge * torch.eye(m, dtype=K.dtype, device=K.device) + W @ K)
    QC = Q @ C
    if J_u.shape[1] == 0:
        return QC, C.new_zeros(0, C.shape[1])
    QWJu = Q @ (W @ J_u)                                    # [m, u]
    S = J_u.T @ QWJu                                        # Schur complement / ridge, symmetric positive
    S = 0.5 * (S + S.T)
    chol, info = torch.linalg.cholesky_ex(S)
    if int(info) > 0:
        raise ValueError("the Hessian is singular in the unpenalised parameters (biases / intercept): they are "
                         "not identified by the data (e.g. a constant or duplicated feature)")
    X_u = torch.cholesky_solve(J_u.T @ QC, chol)            # [u, b]
    return QC - QWJu @ X_u, X_u


def _conjugate_gradients(matvec, precondition, B, Y, tol, max_iter):
    """Preconditioned block CG for ``A Y = B`` (rows are systems) from the start ``Y``; returns (Y, iterations,
    worst relative residual)."""
    def dots(a, b):
        return torch.einsum("mp,mp->m", a, b)

    norms = B.norm(dim=1).clamp_min(torch.finfo(B.dtype).tiny)
    R = B - matvec(Y)
    Z = precondition(R)
    P = Z.clone()
    rz = dots(R, Z)
    worst = float((R.norm(dim=1) / norms).max())
    it = 0
    while worst > tol and it < max_iter:
        it += 1
        AP = matvec(P)
        curvature = dots(P, AP)
        if bool(((curvature <= 0) & (rz > 0)).any()):
            raise ValueError("conjugate gradients met a direction of non-positive curvature: the Hessian is not "
                             "positive definite at the model's parameters (not a minimum; pass ridge > 0?)")
        alpha = (rz / curvature.where(curvature > 0, torch.ones_like(curvature))).unsqueeze(-1)
        Y.addcmul_(alpha, P)
        R.addcmul_(alpha, AP, value=-1)
        del AP
        worst = float((R.norm(dim=1) / norms).max())
        Z = precondition(R)
        rz_new = dots(R, Z)
        P.mul_((rz_new / rz.where(rz > 0, torch.ones_like(rz))).unsqueeze(-1)).add_(Z)
        rz = rz_new
    return Y, it, worst


def _weights(sample_weight, n, dtype, device):
    if sample_weight is None:
        raw = torch.ones(n, dtype=dtype, device=device)
    else:
        if not isinstance(sample_weight, torch.Tensor):
            raise TypeError(f"sample_weight must be a torch.Tensor, got {type(sample_weight).__name__}")
        raw = check_tensor("sample_weight", sample_weight).to(device=device, dtype=dtype)
        if raw.shape != (n,):
            raise ValueError(f"sample_weight must be [n] = [{n}], got {tuple(raw.shape)}")
        if bool((raw < 0).any()) or float(raw.sum()) <= 0:
            raise ValueError("sample_weight must be >= 0 with a positive total")
    total = raw.sum()
    return raw / total, float(total)


def _gradient_coefficients(E, w):
    """C [m, n] with R' = J' C: column j is sqrt(w_j) (e_j in block j  -  sum_i w_i e_i in every block i).

    E [n, k] loss derivatives in the outputs, w [n] weights summing to 1."""
    n, k = E.shape
    root = w.sqrt()
    C = -(w.unsqueeze(-1) * E).reshape(-1, 1) * root               # [m, 1] * [n] -> [m, n]
    blocks = C.view(n, k, n)
    blocks.diagonal(dim1=0, dim2=2).add_((E * root.unsqueeze(-1)).T)   # [k, n]: block j of column j
    return C


# ------------------------------------------------------------------------------ generalised linear models

def glm_standard_errors(X, y, coef, intercept=None, loss: str = "logistic", ridge: float = 0.0, *,
                        sample_weight=None, penalize_intercept: bool = False, device=None,
                        chunk_entries: int = CHUNK_ENTRIES) -> torch.Tensor:
    """Exact sandwich standard errors of a ridge GLM, ``f(x) = x . coef + intercept``, by Woodbury.

    Parameters
    ----------
    X : torch.Tensor [n, d]
        Training features (any floating dtype; read in column chunks promoted to float64, never copied whole).
    y : torch.Tensor [n]
        Targets (0/1 for ``"logistic"``).
    coef : torch.Tensor [d] (or [1, d])
        Fitted coefficients, at the minimum of ``sum_i w_i loss_i + ridge/2 ||coef||^2``.
    intercept : torch.Tensor [1] or float or None
        Fitted intercept (None: the model has none). Not penalised unless ``penalize_intercept``.
    loss : {"logistic", "squared"}
        ``softplus(f) - y f`` or ``(y - f)^2 / 2``.
    ridge : float
        The ridge used in training (> 0 needed when there are at least as many parameters as samples).
    sample_weight : torch.Tensor [n], optional
        Training weights (normalised inside; ``n_eff`` is their sum).
    penalize_intercept : bool
        Whether the ridge applied to the intercept too.
    device : str or torch.device, optional
        Where to compute (default: ``X``'s device).
    chunk_entries : int
        Entries per column chunk of ``X`` (bounds the extra memory).

    Returns
    -------
    torch.Tensor [d (+1)], float64
        ``sqrt(diag(H^-1 V H^-1) / n_eff)`` in ``flatten_params`` order of ``LogisticRegression``: the
        coefficients, then the intercept. Cost: two passes over ``X``, ``O(d n^2)``; memory ``O(n^2 + chunk)``.
    """
    loss = check_choice("loss", loss, GLM_LOSSES)
    ridge = check_float("ridge", ridge, low=0.0)
    chunk_entries = check_int("chunk_entries", chunk_entries, minimum=1)
    if not isinstance(X, torch.Tensor) or not X.is_floating_point() or X.dim() != 2:
        raise TypeError("X must be a floating-point torch.Tensor [n, d]")
    dev = resolve_device(X.device if device is None else device)
    f64 = dict(dtype=torch.float64, device=dev)
    X = X.to(dev)                                            # no copy when already there
    n, d = X.shape
    coef = check_tensor("coef", torch.as_tensor(coef)).to(**f64).reshape(-1)
    if coef.numel() != d:
        raise ValueError(f"coef has {coef.numel()} entries but X has {d} features")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    y = check_tensor("y", y.to(**f64)).reshape(-1)
    if y.numel() != n:
        raise ValueError(f"X has {n} samples but y has {y.numel()}")
    if n < 2:
        raise ValueError(f"need at least 2 samples, got {n}")
    if loss == "logistic" and bool(((y != 0) & (y != 1)).any()):
        raise ValueError("y must contain only 0 and 1 for the 'logistic' loss")
    has_intercept = intercept is not None
    b = torch.as_tensor(intercept if has_intercept else 0.0).to(**f64).reshape(-1)
    if b.numel() != 1:
        raise ValueError(f"intercept must be one number, got {b.numel()} entries")
    w, n_eff = _weights(sample_weight, n, torch.float64, dev)
    free = has_intercept and not penalize_intercept
    p = d + int(has_intercept)
    if ridge == 0 and p - int(free) >= n:
        raise ValueError(f"ridge must be > 0 when the penalised parameters ({p - int(free)}) are at least as many "
                         f"as the samples ({n}): the Hessian is singular")
    step = max(1, chunk_entries // n)
    chunks = [slice(j, min(d, j + step)) for j in range(0, d, step)]

    # pass 1: outputs and the Gram matrix K = X X'
    f = b.expand(n).clone()
    K = torch.zeros(n, n, **f64)
    for sl in chunks:
        Xc = X[:, sl].to(torch.float64)
        f.addmv_(Xc, coef[sl])
        K.addmm_(Xc, Xc.T)
    if loss == "logistic":
        s = torch.sigmoid(f)
        residual, curvature = s - y, s * (1 - s)
    else:
        residual, curvature = f - y, torch.ones_like(f)
    C = _gradient_coefficients(residual.unsqueeze(-1), w)
    ones = torch.ones(n, 1, **f64)
    if has_intercept and penalize_intercept:
        K += ones @ ones.T
    if ridge == 0:   # few parameters: the exact Hessian itself (p x p), through its Cholesky factor
        return _glm_dense(X, chunks, has_intercept, w * curvature, C, n_eff, f64)
    F, X_u = _coefficients(K, torch.diag(w * curvature), ones if free else ones[:, :0], C, ridge)
    # pass 2: the penalised coordinates, var_k = || (X' F)_k ||^2
    var = torch.empty(p, **f64)
    for sl in chunks:
        var[sl] = torch.linalg.vector_norm(X[:, sl].to(torch.float64).T @ F, dim=1).square()
    if has_intercept:
        var[d] = X_u.square().sum() if free else (ones.T @ F).square().sum()
    return (var / n_eff).sqrt()


def _glm_dense(X, chunks, has_intercept, wd, C, n_eff, f64):
    """ridge = 0, fewer parameters than samples: H = X~' diag(wd) X~ formed and factored (p x p)."""
    Xt = torch.cat([X[:, sl].to(torch.float64) for sl in chunks], dim=1)
    if has_intercept:
        Xt = torch.cat([Xt, torch.ones(Xt.shape[0], 1, **f64)], dim=1)
    H = Xt.T @ (wd.unsqueeze(-1) * Xt)
    chol, info = torch.linalg.cholesky_ex(0.5 * (H + H.T))
    if int(info) > 0:
        raise ValueError("the Hessian is singular (collinear features?): pass the ridge used in training")
    U = torch.cholesky_solve(Xt.T @ C, chol)
    return (U.square().sum(1) / n_eff).sqrt()


# ----------------------------------------------------------------------------------------- any module

def glm_applies(model: nn.Module, loss=None, penalize=None) -> bool:
    """Whether ``model_standard_errors`` takes the exact GLM path for this module: a single-output linear module
    (``LogisticRegression``, ``LinearRegression``, ``nn.Linear(d, 1)``), the logistic or squared loss (by name
    or the module's ``default_loss``) and the default penalty (weights penalised, bias free)."""
    loss_name = loss if loss is not None else getattr(model, "default_loss", None)
    return _glm_parts(model) is not None and penalize is None and loss_name in GLM_LOSSES


def _glm_parts(model):
    """(weight, bias or None) when ``model`` is linear in its parameters with one output, else None."""
    linear = model.linear if isinstance(model, (LogisticRegression, LinearRegression)) else model
    if isinstance(linear, nn.Linear) and linear.out_features == 1:
        return linear.weight, linear.bias
    return None


class ModelCurvature:
    """The Hessian of a module's training objective at its parameters, ready to be solved against.

    Holds the per-sample Jacobians ``J`` [n k, p] (``torch.func``), the loss derivatives in the outputs, and the
    exact inverse of the Gauss-Newton form ``Lambda + J' W J`` (Woodbury + Schur on the free parameters, see the
    module notes). ``solve`` applies the exact ``H^-1`` (block preconditioned conjugate gradients on exact
    Hessian-vector products); ``gauss_newton_gradients`` the Gauss-Newton inverse to the centred per-sample
    gradients. Memory ``O(n k p)``; ridge > 0 required.
    """

    def __init__(self, model: nn.Module, X, y, loss=None, ridge: float = 0.0, *, sample_weight=None,
                 penalize=None, device=None):
        from mislib.indicator import resolve_loss   # lazy: the indicator dispatches to this module

        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.ridge = check_float("ridge", ridge, low=0.0)
        if self.ridge == 0:
            raise ValueError("ridge must be > 0 for a non-linear module (the Woodbury form needs it); use "
                             "mislib.indicator.standard_errors(hessian='exact') for small unpenalised models")
        loss_fn = resolve_loss(loss, model)
        dev = resolve_device(next(model.parameters()).device if device is None else device)
        self.model = copy.deepcopy(model).to(dev).eval()
        self.like = {name: p.detach() for name, p in self.model.named_parameters()}
        self.theta = flatten_params(self.like)
        dtype = self.theta.dtype
        self.buffers = dict(self.model.named_buffers())
        if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError("X and y must be torch.Tensors")
        self.X = check_tensor("X", X.to(device=dev, dtype=dtype))
        y = y.to(dev)
        self.y = check_tensor("y", y.to(dtype)) if y.is_floating_point() else y
        n = self.X.shape[0]
        if self.y.shape[0] != n:
            raise ValueError(f"X has {n} samples but y has {self.y.shape[0]}")
        self.w, self.n_eff = _weights(sample_weight, n, dtype, dev)
        penalize = (lambda name: name.endswith("weight")) if penalize is None else penalize
        self.pen = torch.cat([torch.full((v.numel(),), bool(penalize(name)), device=dev)
                              for name, v in self.like.items()])
        with torch.no_grad():
            out = functional_call(self.model, (self.like, self.buffers), (self.X[:1],))
        k = self.k = math.prod(out.shape[1:])
        out_shape = (1,) + tuple(out.shape[1:])
        p = self.theta.numel()

        def single_output(named, x):
            return functional_call(self.model, (named, self.buffers), (x.unsqueeze(0),)).reshape(-1)

        def sample_loss(f, t):
            return loss_fn(f.reshape(out_shape), t.unsqueeze(0)).sum()

        jac = vmap(jacrev(single_output), in_dims=(None, 0))
        rows = max(1, CHUNK_ENTRIES // max(1, k * p))
        Js, Es, Ls = [], [], []
        for i in range(0, n, rows):
            Xc, yc = self.X[i:i + rows], self.y[i:i + rows]
            named_jac = jac(self.like, Xc)
            Js.append(torch.cat([named_jac[name].reshape(Xc.shape[0], k, -1) for name in self.like], dim=-1))
            del named_jac
            with torch.no_grad():
                f = functional_call(self.model, (self.like, self.buffers), (Xc,)).reshape(-1, k)
            Es.append(vmap(grad(sample_loss))(f, yc))
            Ls.append(vmap(func_hessian(sample_loss))(f, yc))
        self.J = J = torch.cat(Js).reshape(n * k, p)
        del Js
        self.E, L = torch.cat(Es), torch.cat(Ls)
        w = self.w
        self.W = W = (torch.block_diag(*(w.reshape(-1, 1, 1) * L).unbind(0)) if k > 1
                      else torch.diag(w * L.reshape(-1)))
        self.J_u = J[:, ~self.pen]
        self.K = J @ J.T - self.J_u @ self.J_u.T
        m = self.K.shape[0]
        self.Q = torch.linalg.inv(self.ridge * torch.eye(m, dtype=dtype, device=dev) + W @ self.K)
        self.QW = self.Q @ W
        self.WJu = W @ self.J_u
        self.chol = None
        if self.J_u.shape[1]:
            S = self.ridge * (self.J_u.T @ self.Q @ self.WJu)    # the Schur complement of the free block
            chol, info = torch.linalg.cholesky_ex(0.5 * (S + S.T))
            if int(info) > 0:
                raise ValueError("the Hessian's Gauss-Newton part is singular in the unpenalised parameters: "
                                 "a bias without effect on the outputs (e.g. a unit whose outgoing weights are 0);"
                                 " penalise every parameter (penalize=lambda name: True) or retrain")
            self.chol = chol
        self.weights = w.unsqueeze(-1) * self.E                   # the residual part's output weights [n, k]

    @property
    def p(self) -> int:
        return self.theta.numel()

    def gradient_coefficients(self):
        """C [m, n] with R' = J' C (the centred, weighted per-sample gradients)."""
        return _gradient_coefficients(self.E, self.w)

    def gauss_newton_gradients(self):
        """[n, p]: the Gauss-Newton inverse applied to every centred per-sample gradient (rows r_j)."""
        F, X_u = _coefficients(self.K, self.W, self.J_u, self.gradient_coefficients(), self.ridge)
        Y = torch.empty(F.shape[1], self.p, dtype=F.dtype, device=F.device)
        Y[:, self.pen] = (F.T @ self.J)[:, self.pen]
        Y[:, ~self.pen] = X_u.T
        return Y

    def _inverse_penalised(self, V):              # (ridge I + J_p' W J_p)^-1 on the penalised coordinates
        penf = self.pen.to(V.dtype)
        t = (V * penf) @ self.J.T
        return (V * penf - (t @ self.QW.T) @ self.J * penf) / self.ridge

    def precondition(self, V):
        """(Lambda + J' W J)^-1 v for every row v of V (block elimination of the free coordinates)."""
        A_v = self._inverse_penalised(V)
        if self.chol is None:
            return A_v
        rhs_u = V[:, ~self.pen] - (A_v @ self.J.T) @ self.WJu
        x_u = torch.cholesky_solve(rhs_u.T, self.chol).T
        out = self._inverse_penalised(V - ((x_u @ self.WJu.T) @ self.J) * self.pen.to(V.dtype))
        out[:, ~self.pen] = x_u
        return out

    def _residual_one(self, v):
        def linearised(params):
            outputs = functional_call(self.model, (params, self.buffers), (self.X,)).reshape(-1, self.k)
            return (self.weights * outputs).sum()

        return flatten_params(jvp(grad(linearised), (self.like,), (unflatten_params(v, self.like),))[1])

    def hvp(self, V):
        """H v (exact) for every row v of V: ridge, Gauss-Newton part, and the outputs' own curvature."""
        out = V * (self.ridge * self.pen.to(V.dtype)) + ((V @ self.J.T) @ self.W) @ self.J
        for j in range(0, V.shape[0], 16):
            out[j:j + 16] += vmap(self._residual_one)(V[j:j + 16])
        return out

    def solve(self, B, start=None, *, tol: float = 1e-10, max_iter: int = 200):
        """H^-1 b for every row b of B [m, p]; returns (U, iterations, worst relative residual)."""
        tol = check_float("tol", tol, low=0.0, low_open=True)
        max_iter = check_int("max_iter", max_iter, minimum=0)
        Y = self.precondition(B) if start is None else start
        return _conjugate_gradients(self.hvp, self.precondition, B, Y, tol, max_iter)


def model_standard_errors(model: nn.Module, X, y, loss=None, ridge: float = 0.0, *, hessian: str = "exact",
                          sample_weight=None, penalize=None, tol: float = 1e-10, max_iter: int = 200,
                          device=None, return_details: bool = False):
    """Sandwich standard errors of any trained module, flat in ``named_parameters`` order.

    Single-output linear modules (``LogisticRegression``, ``LinearRegression``, ``nn.Linear(d, 1)``) with the
    logistic or squared loss and the default penalty go to ``glm_standard_errors`` (exact). Any other module:
    per-sample Jacobians (``torch.func``), the Gauss-Newton form inverted exactly by Woodbury (see the module
    notes), then for ``hessian="exact"`` block conjugate gradients on exact Hessian-vector products,
    preconditioned and started by it, until every relative residual is below ``tol`` (``ModelCurvature``).

    Parameters
    ----------
    model : torch.nn.Module
        Trained to the minimum of ``sum_i w_i loss_i + ridge/2 ||penalised parameters||^2``.
    X, y : torch.Tensor
        The training data (``y`` class indices for "cross_entropy").
    loss : str or callable, optional
        "logistic", "squared", "cross_entropy", a per-sample ``loss(outputs, targets) -> [n]``, or None (the
        module's ``default_loss``), as in ``mislib.indicator.standard_errors``.
    ridge : float
        The ridge used in training (> 0 for non-linear modules).
    hessian : {"exact", "gauss-newton"}
        Exact Hessian (by preconditioned conjugate gradients) or its Gauss-Newton part only (approximate).
    sample_weight : torch.Tensor [n], optional
    penalize : callable(name) -> bool, optional
        Which parameters the ridge applies to (default: names ending in "weight").
    tol, max_iter : float, int
        Stopping rule of the conjugate gradients.
    device : str or torch.device, optional
        Where to compute (default: the model's device); the module is copied there.
    return_details : bool
        Also return a dict: ``method``, ``iterations`` and ``residual`` of the conjugate gradients.

    Returns
    -------
    torch.Tensor [p] (and the dict with ``return_details``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    hessian = check_choice("hessian", hessian, MODEL_HESSIANS)
    if glm_applies(model, loss, penalize):
        weight, bias = _glm_parts(model)
        loss_name = loss if loss is not None else model.default_loss
        if not isinstance(X, torch.Tensor):
            raise TypeError(f"X must be a torch.Tensor, got {type(X).__name__}")
        se = glm_standard_errors(X, y, weight.detach().reshape(-1), None if bias is None else bias.detach(),
                                 loss_name, ridge, sample_weight=sample_weight,
                                 device=weight.device if device is None else device)
        return (se, {"method": "glm-woodbury", "iterations": 0, "residual": 0.0}) if return_details else se
    curvature = ModelCurvature(model, X, y, loss, ridge, sample_weight=sample_weight, penalize=penalize,
                               device=device)
    Y = curvature.gauss_newton_gradients()
    details = {"method": "gauss-newton-woodbury", "iterations": 0, "residual": math.nan}
    if hessian == "exact":
        B = curvature.gradient_coefficients().T @ curvature.J          # R [n, p]: the right-hand sides
        Y, iterations, worst = curvature.solve(B, Y, tol=tol, max_iter=max_iter)
        if worst > tol:
            warnings.warn(f"conjugate gradients stopped at relative residual {worst:.1e} after {iterations} "
                          "iterations (raise max_iter)", RuntimeWarning, stacklevel=2)
        details = {"method": "exact-pcg", "iterations": iterations, "residual": worst}
    se = (Y.square().sum(0) / curvature.n_eff).sqrt()
    return (se, details) if return_details else se
