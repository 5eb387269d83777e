"""The training objective of a module on its data, and its derivatives (THEORY.md §3.1).

``Objective(model, X, y, loss, ridge=..., sample_weight=..., penalize=...)`` is the one place where the library
differentiates a training objective: the weighted mean loss plus ``ridge / 2`` times the squared norm of the
penalised parameters (by default those whose name ends in ``weight``; biases are not penalised), on flat
parameter vectors. It gives the value, the gradient, per-sample gradients, the Hessian (exact, by per-sample
Jacobians and the loss's second derivatives in the outputs), Hessian-vector products, its diagonal, and
(``block_cg``, ``cholesky_factor``) the curvature solves that standard errors and influence functions need.
Losses: a per-sample callable ``loss(outputs, targets) -> [n]`` or a name, "logistic" (``softplus(f) - y f``),
"squared" (``(y - f)^2 / 2``) or "cross_entropy".
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, jvp, vmap
from torch.func import hessian as func_hessian

from mislib.infra.checks import check_choice, check_float, check_int, check_tensor
from mislib.modules import LinearRegression, LogisticRegression, flatten_params, unflatten_params

LOSS_NAMES = ("logistic", "squared", "cross_entropy")
HESSIAN_MODES = ("exact", "cg", "auto")

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

class Objective:
    """A module, its data and its training objective, on flat parameter vectors (torch.func throughout).

    Parameters
    ----------
    model : torch.nn.Module
        Copied (in eval mode); its parameters, flattened in ``named_parameters`` order, are ``theta``.
    X, y : torch.Tensor
        Inputs ``[n, ...]`` and targets ``[n]`` (``n >= 2``).
    loss : str, callable or None
        "logistic", "squared", "cross_entropy", a per-sample callable, or None for ``model.default_loss``.
    ridge : float
        The penalty ``ridge / 2 ||theta_penalised||^2`` used in training (the Hessian includes it).
    sample_weight : torch.Tensor or None
        Non-negative weights ``[n]`` (normalised to sum to one); None for equal weights.
    penalize : callable or None
        ``penalize(name) -> bool`` for each named parameter; default: names ending in ``weight``.
    chunk_size : int
        Bound on the entries of the work arrays (per-sample Jacobians are processed in chunks).

    Methods on flat vectors ``flat [p]``: ``objective``, ``gradient``, ``per_sample_grads`` ``[n, p]``,
    ``hessian`` ``[p, p]``, ``hvp(flat, V)`` (Hessian-vector products for rows of ``V``), ``hessian_diagonal``,
    ``mean_gradient``, and the batched ``batched_objective`` / ``batched_gradient`` over weight rows.

    Examples
    --------
    >>> import torch
    >>> from mislib.modules import LogisticRegression
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(50, 3, generator=g, dtype=torch.float64); y = (X[:, 0] > 0).double()
    >>> model = LogisticRegression(3, fit_intercept=False)
    >>> f = Objective(model, X, y, "logistic", ridge=1e-2)
    >>> H = f.hessian(f.theta); bool(torch.allclose(f.hvp(f.theta, torch.eye(3, dtype=torch.float64)), H))
    True
    """

    def __init__(self, model, X, y, loss=None, ridge=0.0, sample_weight=None, penalize=None,
                 chunk_size=2 ** 22):
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
        self.X = data_tensor("X", X, dtype, device)
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
            raw = data_tensor("sample_weight", sample_weight, dtype, device)
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


def data_tensor(name, value, dtype, device):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return check_tensor(name, value.to(device=device, dtype=dtype))


def cholesky_factor(H, context: str, *, message: str | None = None):
    """Cholesky factor of a symmetric matrix ``H`` (or a batch ``[b, p, p]``); ``ValueError`` naming ``context``
    when it (any of the batch) is not positive definite. ``message`` replaces the default explanation;
    ``{bad}`` in it is replaced by the number of failing matrices."""
    L, info = torch.linalg.cholesky_ex(H)
    bad = int((info > 0).sum())
    if bad:
        if message is None:
            message = ("the Hessian of the objective is not positive definite at the model's parameters (not a "
                       "minimum, or a flat direction): train to convergence and/or pass the ridge used in "
                       "training (ridge > 0)")
        raise ValueError(f"{context}: " + message.replace("{bad}", str(bad)))
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


# ------------------------------------------------------------------- batched tanh MLPs (analytic)

def tanh_mlp_derivatives(params, X, y, w, task, ridge):
    """Objective, gradient and Hessian of each model of a batch of one-output tanh MLPs, analytically
    (the batched fast path of ``Objective`` for ``MLPHead(activation="tanh")``: tested equal to
    ``Objective.hessian`` model by model).

    ``params``: ``fit_mlp_head``'s dict of ``[B, ...]`` tensors; ``X`` ``[N, d]``, ``y`` ``[N]``, ``w`` ``[B, N]``
    normalised weights, ``task`` "regression" or "classification". Returns ``(objective [B], gradient [B, P'],
    Hessian [B, P', P'], theta [B, P'])``.

    Layout of the flat vectors (``[B, P']``): per hidden unit ``j`` its weights and bias ``[W_j, b_j]``
    (``h (d + 1)``), then the output weights ``v`` (``h``), then the output bias ``c``. Objective per model:
    ``sum_i w_i loss(f_i) + ridge/2 (||W||^2 + ||v||^2)`` (``w`` normalised), loss logistic or squared / 2.
    Hessian = ``J' diag(w loss'') J`` (Gauss-Newton) + the second-order terms of ``f``: ``v_j tanh''`` on each
    unit's block and ``tanh'`` between a unit's block and its output weight."""
    W, b = params["hidden.weight"], params["hidden.bias"]
    v, c = params["output.weight"][:, 0, :], params["output.bias"][:, 0]
    B, h, d = W.shape
    Xt = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)       # [N, d+1]
    a = torch.einsum("nk,bjk->bnj", X, W) + b.unsqueeze(1)
    t = torch.tanh(a)
    t1 = 1 - t * t
    t2 = -2 * t * t1
    f = torch.einsum("bnj,bj->bn", t, v) + c.unsqueeze(1)
    if task == "regression":
        loss = 0.5 * (y - f) ** 2
        d1, d2 = f - y, torch.ones_like(f)
    else:
        loss = torch.nn.functional.softplus(f) - y * f
        p = torch.sigmoid(f)
        d1, d2 = p - y, p * (1 - p)
    objective = (w * loss).sum(1) + 0.5 * ridge * ((W ** 2).sum((1, 2)) + (v ** 2).sum(1))
    # Jacobian of f: [B, N, P']
    J_hidden = (v.unsqueeze(1) * t1).unsqueeze(-1) * Xt[:, None, :]                                  # [B, N, h, d+1]
    J = torch.cat([J_hidden.reshape(B, X.shape[0], -1), t, torch.ones_like(f).unsqueeze(-1)], dim=2)
    grad = ((w * d1).unsqueeze(1) @ J).squeeze(1)
    P = J.shape[2]
    H = (J * (w * d2).unsqueeze(-1)).transpose(1, 2) @ J
    k = d + 1
    r1 = w * d1                                                                                # [B, N]
    scaled = (r1.unsqueeze(-1) * t2 * v.unsqueeze(1)).transpose(1, 2)                          # [B, h, N]
    block = (scaled.unsqueeze(-1) * Xt).transpose(-1, -2) @ Xt                                # [B, h, k, k]
    cross = (r1.unsqueeze(-1) * t1).transpose(1, 2) @ Xt                                       # [B, h, k]
    for j in range(h):
        H[:, j * k:(j + 1) * k, j * k:(j + 1) * k] += block[:, j]
        H[:, j * k:(j + 1) * k, h * k + j] += cross[:, j]
        H[:, h * k + j, j * k:(j + 1) * k] += cross[:, j]
    penalised = torch.zeros(P, dtype=X.dtype, device=X.device)
    penalised[: h * k] = 1.0
    penalised[torch.arange(h, device=X.device) * k + d] = 0.0        # hidden biases are not penalised
    penalised[h * k: h * k + h] = 1.0
    theta = torch.cat([torch.cat([W, b.unsqueeze(-1)], dim=2).reshape(B, -1), v, c.unsqueeze(-1)], dim=1)
    grad = grad + ridge * penalised * theta
    H = H + torch.diag(ridge * penalised)
    return objective, grad, H, theta
