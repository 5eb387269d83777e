"""One-output tanh MLP heads too large for their Hessian: exact Hessian-vector products, the exact inverse of the
Gauss-Newton part, a Newton polish and sandwich standard errors, all matrix-free and batched over models.

Why: a 16-unit head on a 2,048-bit fingerprint has p = 32,801 parameters; its Hessian (8.6 GB) and a Cholesky
factor per Newton step and per model are out of reach, while every product below costs two matrix products with
the data. The model is ``f(x) = sum_j v_j tanh(W_j x + b_j) + c`` (``mislib.modules.MLPHead``, one output), the
objective ``sum_i w_i loss(f_i) + ridge/2 (||W||^2 + ||v||^2)`` with weights ``w`` summing to 1 and the biases
free, loss logistic or squared / 2, exactly as ``mislib.objective.tanh_mlp_derivatives`` (its dense twin, which
the tests compare with).

Flat layout of a direction ``[..., p]``: per hidden unit ``[W_j, b_j]`` (``h (d + 1)``), then ``v`` (``h``), then
``c``. With ``A = v * tanh'(a)`` and ``T = tanh(a)`` [m, h], the Jacobian of the outputs has rows
``J_i = [A_i (x) [x_i, 1], T_i, 1]``; its penalised columns (``W``, ``v``) have the kernel
``K = (X X') o (A A') + T T'`` [m, m]. With ``D = diag(w loss'')`` and ``S = ridge I + D^1/2 K D^1/2``, the
Gauss-Newton form ``Lambda + J' D J`` has the exact inverse (Woodbury, then a Schur complement of size h + 1 for
the free biases, ``E = D^1/2 J_free``, ``Sc = ridge E' S^-1 E``)::

    q   = D^1/2 J_pen r_pen
    x_u = Sc^-1 (r_free - E' S^-1 q)
    x_p = (r_pen - J_pen' D^1/2 S^-1 (q + ridge E x_u)) / ridge

used to precondition conjugate gradients on the exact Hessian (Gauss-Newton part plus the curvature of the
outputs, ``w loss' v_j tanh''`` within a unit and ``w loss' tanh'`` between a unit and its output weight).
Conjugate gradients also tell whether the Hessian is positive definite on the directions they explore: a
direction of non-positive curvature is reported (``pcg``'s ``indefinite``), and the standard errors refuse it.
Those directions are not enough on their own: a Krylov space grown from the gradients misses the saddle at
``W = 0, v = 0`` (every per-sample gradient lies along the output bias there), so ``Curvature.positive_definite``
also runs conjugate gradients from random probes, and the standard errors and the polish rely on it.
"""

from __future__ import annotations

import torch

from mislib.infra.checks import check_choice, check_float, check_int

TASKS = ("classification", "regression")
RHS_BLOCK_ENTRIES = 2 ** 24     # right-hand sides per block of the standard errors: at most this many entries


def n_parameters(h: int, d: int) -> int:
    """Weights of a one-output head with ``h`` tanh units on ``d`` inputs: ``W``, ``b``, ``v`` and ``c``."""
    return h * (d + 2) + 1


def member_index(w):
    """[B, m]: each model's rows of positive weight (padded, with a row of weight 0, to the largest count)."""
    keep = w > 0
    m = int(keep.sum(1).max())
    # a stable sort puts each model's kept rows first, in their original order
    return torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :m]


def unit_layout(params: dict) -> torch.Tensor:
    """``fit_mlp_head``'s dict of ``[B, ...]`` tensors -> ``[B, p]`` in this module's flat layout."""
    W, b = params["hidden.weight"], params["hidden.bias"]
    return torch.cat([torch.cat([W, b.unsqueeze(-1)], dim=-1).flatten(-2), params["output.weight"][..., 0, :],
                      params["output.bias"]], dim=-1)


def from_unit_layout(theta: torch.Tensor, h: int, d: int) -> dict:
    """Inverse of ``unit_layout`` (any leading dimensions)."""
    lead = theta.shape[:-1]
    U = theta[..., : h * (d + 1)].reshape(*lead, h, d + 1)
    return {"hidden.weight": U[..., :d].contiguous(), "hidden.bias": U[..., d].contiguous(),
            "output.weight": theta[..., h * (d + 1): h * (d + 2)].unsqueeze(-2).contiguous(),
            "output.bias": theta[..., h * (d + 2):].contiguous()}


def _loss_derivatives(f, y, task):
    if task == "regression":
        return 0.5 * (y - f) ** 2, f - y, torch.ones_like(f)
    p = torch.sigmoid(f)
    return torch.nn.functional.softplus(f) - y * f, p - y, p * (1 - p)


def _hidden(X, W, b):
    """tanh pre-activations of every model on shared rows: ``X`` [N, d], ``W`` [B, h, d] -> [B, N, h] (one
    matrix product for the whole batch)."""
    B, h, d = W.shape
    return (X @ W.reshape(B * h, d).T).reshape(-1, B, h).transpose(0, 1) + b.unsqueeze(1)


def objective(params: dict, X, y, w, task: str, ridge: float) -> torch.Tensor:
    """[B]: the training objective of every model (``X`` [N, d] and ``y`` [N] shared, ``w`` [B, N])."""
    W, b = params["hidden.weight"], params["hidden.bias"]
    v, c = params["output.weight"][:, 0, :], params["output.bias"][:, 0]
    f = (torch.tanh(_hidden(X, W, b)) * v.unsqueeze(1)).sum(-1) + c.unsqueeze(1)
    loss = _loss_derivatives(f, y, task)[0]
    return (w * loss).sum(1) + 0.5 * ridge * ((W ** 2).sum((1, 2)) + (v ** 2).sum(1))


class Curvature:
    """The derivatives of a batch of heads at their parameters (module notes).

    ``params``: ``fit_mlp_head``'s dict of ``[B, ...]`` tensors (one output); ``X`` [N, d] and ``y`` [N] the
    rows every model may use, ``w`` [B, N] each model's normalised weights (0 off its training set); ``task``
    classification or regression; ``ridge`` > 0; ``gram`` the [N, N] matrix ``X X'`` if already computed.
    Directions are ``[B, R, p]`` (``R`` right-hand sides per model). Products with the data are single matrix
    products over the shared rows; the Gauss-Newton kernel only over each model's rows of positive weight."""

    def __init__(self, params: dict, X, y, w, task: str, ridge: float, gram=None):
        check_choice("task", task, TASKS)
        self.ridge = check_float("ridge", ridge, low=0.0, low_open=True)
        self.X, self.y, self.w, self.task, self.gram = X, y, w, task, gram
        W, b = params["hidden.weight"], params["hidden.bias"]
        self.W, self.v, self.c = W, params["output.weight"][:, 0, :], params["output.bias"][:, 0]
        self.B, self.h, self.d = W.shape
        self.p = n_parameters(self.h, self.d)
        t = torch.tanh(_hidden(X, W, b))                                            # [B, N, h]
        self.t, self.t1 = t, 1 - t * t
        self.t2 = -2 * t * self.t1
        self.A = self.v.unsqueeze(1) * self.t1                                       # df / da
        f = (t * self.v.unsqueeze(1)).sum(-1) + self.c.unsqueeze(1)
        loss, d1, d2 = _loss_derivatives(f, y, task)
        self.value = (w * loss).sum(1) + 0.5 * ridge * ((W ** 2).sum((1, 2)) + (self.v ** 2).sum(1))
        self.d1, self.r1, self.r2 = d1, w * d1, w * d2
        self._factors = None

    # ----------------------------------------------------------------------------------------- layout
    def _split(self, V):
        B, R = V.shape[:2]
        h, d = self.h, self.d
        U = V[..., : h * (d + 1)].reshape(B, R, h, d + 1)
        return U[..., :d], U[..., d], V[..., h * (d + 1): h * (d + 2)], V[..., h * (d + 2)]

    def _join(self, dW, db, dv, dc):
        B, R = dW.shape[:2]
        U = torch.cat([dW, db.unsqueeze(-1)], dim=-1).reshape(B, R, -1)
        return torch.cat([U, dv, dc.unsqueeze(-1)], dim=-1)

    def _times_X(self, dW):
        """[B, R, h, d] -> x_i . dW_j for every row and unit: [B, R, N, h]."""
        B, R, h, d = dW.shape
        return (self.X @ dW.reshape(B * R * h, d).T).reshape(-1, B, R, h).permute(1, 2, 0, 3)

    def _X_times(self, coef):
        """[B, R, N, h] -> sum_i coef_ij x_i for every unit: [B, R, h, d]."""
        B, R, N, h = coef.shape
        return (self.X.T @ coef.permute(2, 0, 1, 3).reshape(N, B * R * h)).reshape(self.d, B, R, h) \
            .permute(1, 2, 3, 0)

    # ------------------------------------------------------------------------------------ derivatives
    def gradient(self) -> torch.Tensor:
        """[B, p]: the gradient of the objective."""
        coef = self.r1.unsqueeze(-1) * self.A                                        # [B, N, h]
        gW = self._X_times(coef.unsqueeze(1))[:, 0] + self.ridge * self.W
        gv = (self.r1.unsqueeze(-1) * self.t).sum(1) + self.ridge * self.v
        return self._join(gW.unsqueeze(1), coef.sum(1).unsqueeze(1), gv.unsqueeze(1),
                          self.r1.sum(1).reshape(-1, 1))[:, 0]

    def hvp(self, V, shift=None) -> torch.Tensor:
        """The exact Hessian times every direction of ``V`` [B, R, p]; with ``shift`` [B], the Hessian plus
        ``shift`` times its Gauss-Newton part (a Levenberg-Marquardt damping: positive definite for large
        shifts)."""
        dW, db, dv, dc = self._split(V)
        da = self._times_X(dW) + db.unsqueeze(2)                                      # [B, R, m, h]
        df = (da * self.A.unsqueeze(1)).sum(-1) + (self.t.unsqueeze(1) * dv.unsqueeze(2)).sum(-1) + dc.unsqueeze(-1)
        gn = 1.0 if shift is None else (1 + shift).reshape(-1, 1, 1)
        s = gn * self.r2.unsqueeze(1) * df                                             # [B, R, m]
        r1 = self.r1.unsqueeze(1).unsqueeze(-1)
        coef = (s.unsqueeze(-1) * self.A.unsqueeze(1)
                + r1 * (self.v.unsqueeze(1).unsqueeze(2) * self.t2.unsqueeze(1) * da
                        + self.t1.unsqueeze(1) * dv.unsqueeze(2)))
        ridge = self.ridge * gn
        HW = self._X_times(coef) + (ridge if shift is None else ridge.unsqueeze(-1)) * dW
        Hv = torch.einsum("brn,bnj->brj", s, self.t) + (r1 * self.t1.unsqueeze(1) * da).sum(2) + ridge * dv
        return self._join(HW, coef.sum(2), Hv, s.sum(-1))

    # ------------------------------------------------------------------------ Gauss-Newton inverse
    def _prepare(self):
        """Factor S and the Schur complement once per point (module notes), over each model's rows of positive
        weight (``rows`` [B, m]; padding rows have weight 0, hence no effect)."""
        if self._factors is not None:
            return self._factors
        rows = member_index(self.w)
        gather = lambda a: torch.gather(a, 1, rows.unsqueeze(-1).expand(-1, -1, a.shape[-1]))  # noqa: E731
        gram = self.X @ self.X.T if self.gram is None else self.gram
        A, t = gather(self.A), gather(self.t)
        root = torch.gather(self.r2, 1, rows).clamp_min(0).sqrt()                       # D^1/2 [B, m]
        K = gram[rows.unsqueeze(-1), rows.unsqueeze(1)] * torch.bmm(A, A.transpose(1, 2)) \
            + torch.bmm(t, t.transpose(1, 2))
        S = root.unsqueeze(-1) * K * root.unsqueeze(1)
        S.diagonal(dim1=1, dim2=2).add_(self.ridge)
        L = torch.linalg.cholesky(S)
        E = root.unsqueeze(-1) * torch.cat([A, torch.ones_like(A[..., :1])], dim=-1)          # [B, m, h+1]
        Sc = self.ridge * E.transpose(1, 2) @ torch.cholesky_solve(E, L)
        Sc = 0.5 * (Sc + Sc.transpose(1, 2))
        # Floor the Schur complement's eigenvalues at 1e-6 of its largest: where two hidden units coincide, or
        # one is idle, the Gauss-Newton form is singular in their free biases while the Hessian is not; the
        # floor keeps the preconditioner symmetric, positive definite and well scaled (exact elsewhere)
        values, vectors = torch.linalg.eigh(Sc)
        values = values.clamp_min(1e-6 * values[..., -1:].clamp_min(1e-300))
        Lc = torch.linalg.cholesky((vectors * values.unsqueeze(1)) @ vectors.transpose(1, 2))
        self._factors = (rows, root, L, E, Lc)
        return self._factors

    def precondition(self, V) -> torch.Tensor:
        """The exact inverse of the Gauss-Newton form times every direction of ``V`` [B, R, p]."""
        rows, root, L, E, Lc = self._prepare()
        dW, db, dv, dc = self._split(V)
        B, R = V.shape[:2]
        index = rows.unsqueeze(1).expand(-1, R, -1)                                      # [B, R, m]
        Jp = (self._times_X(dW) * self.A.unsqueeze(1)).sum(-1) + torch.einsum("bnj,brj->brn", self.t, dv)
        q = root.unsqueeze(1) * torch.gather(Jp, 2, index)                              # [B, R, m]
        Sq = torch.cholesky_solve(q.transpose(1, 2), L)                                  # [B, m, R]
        r_free = torch.cat([db, dc.unsqueeze(-1)], dim=-1)                               # [B, R, h+1]
        x_u = torch.cholesky_solve((r_free - (E.transpose(1, 2) @ Sq).transpose(1, 2)).transpose(1, 2), Lc)
        z_rows = root.unsqueeze(1) * torch.cholesky_solve(q.transpose(1, 2) + self.ridge * (E @ x_u),
                                                          L).transpose(1, 2)
        # back to all rows (0 off the training set; padding rows have weight 0, so they add 0)
        z = torch.zeros(B, R, self.X.shape[0], dtype=V.dtype, device=V.device).scatter_add_(2, index, z_rows)
        xW = (dW - self._X_times(z.unsqueeze(-1) * self.A.unsqueeze(1))) / self.ridge
        xv = (dv - torch.einsum("brn,bnj->brj", z, self.t)) / self.ridge
        x_u = x_u.transpose(1, 2)
        return self._join(xW, x_u[..., : self.h], xv, x_u[..., self.h])

    # ------------------------------------------------------------------------------- linear solves
    def pcg(self, Bv, *, shift=None, tol: float = 1e-10, max_iter: int = 200):
        """``H^-1 b`` for every right-hand side of ``Bv`` [B, R, p] by conjugate gradients preconditioned (and
        started) by the Gauss-Newton inverse (``shift``: solve with ``hvp(., shift)`` instead). Returns ``(Y,
        indefinite [B] bool, iterations, worst relative residual)``; a model is ``indefinite`` when a search
        direction met non-positive curvature (its columns stop there)."""
        tol = check_float("tol", tol, low=0.0, low_open=True)
        max_iter = check_int("max_iter", max_iter, minimum=0)
        scale = 1.0 if shift is None else 1 / (1 + shift).reshape(-1, 1, 1)

        def precondition(V):
            return scale * self.precondition(V)

        norms = Bv.norm(dim=-1).clamp_min(torch.finfo(Bv.dtype).tiny)
        Y = precondition(Bv)
        R = Bv - self.hvp(Y, shift)
        Z = precondition(R)
        P = Z.clone()
        rz = (R * Z).sum(-1)
        indefinite = torch.zeros(self.B, dtype=torch.bool, device=Bv.device)
        active = torch.ones_like(rz, dtype=torch.bool)
        it = 0
        while it < max_iter:
            active &= R.norm(dim=-1) / norms > tol
            if not bool(active.any()):
                break
            it += 1
            HP = self.hvp(P, shift)
            curvature = (P * HP).sum(-1)
            bad = active & (curvature <= 0)
            indefinite |= bad.any(-1)
            active &= ~bad
            alpha = torch.where(active, rz / curvature.where(curvature > 0, torch.ones_like(curvature)),
                                torch.zeros_like(rz))
            Y.addcmul_(alpha.unsqueeze(-1), P)
            R.addcmul_(alpha.unsqueeze(-1), HP, value=-1)
            Z = precondition(R)
            rz_new = (R * Z).sum(-1)
            beta = torch.where(active, rz_new / rz.where(rz > 0, torch.ones_like(rz)), torch.zeros_like(rz))
            P = Z + beta.unsqueeze(-1) * P
            rz = rz_new
        # the recursive residual can drift from the true one: report the true one
        worst = float(((Bv - self.hvp(Y, shift)).norm(dim=-1) / norms).max())
        return Y, indefinite, it, worst


    def positive_definite(self, n_probes: int = 4, seed: int = 0, *, tol: float = 1e-6,
                          max_iter: int = 200) -> torch.Tensor:
        """[B] bool: no negative curvature met by conjugate gradients on ``n_probes`` random right-hand sides.

        Why random ones: a Krylov space grown from gradients alone can miss a negative direction entirely (at
        W = 0, v = 0 every per-sample gradient lies along the output bias); a random start has a component
        along every eigenvector, and conjugate gradients meet a negative eigenvalue long before they could
        converge without it."""
        g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
        probes = torch.randn(self.B, check_int("n_probes", n_probes, minimum=1), self.p, generator=g,
                             dtype=self.X.dtype).to(self.X.device)
        return ~self.pcg(probes, tol=tol, max_iter=max_iter)[1]


# ------------------------------------------------------------------------------------------ Newton polish

def polish(params: dict, X, y, weights, *, task: str, ridge: float, max_iter: int = 40, tol: float = 1e-9,
           cg_tol: float = 1e-10, cg_max_iter: int = 100):
    """Newton-polish a batch of heads (``fit_mlp_head``'s dict, ``weights`` [B, N] over the rows of ``X``) to a
    minimum of the objective, matrix-free: Newton steps by preconditioned conjugate gradients, the
    preconditioned gradient where a model meets negative curvature (a descent direction: the Gauss-Newton form
    is positive definite), and a backtracking line search. A model is done when max |gradient| <= ``tol`` and
    its last Newton solve met no negative curvature. Returns ``(params, done [B] bool)``."""
    w = weights / weights.sum(1, keepdim=True)
    gram = X @ X.T                       # shared by every model and Newton step
    B, h, d = params["hidden.weight"].shape
    theta = unit_layout(params)
    done = torch.zeros(B, dtype=torch.bool, device=theta.device)
    active = torch.arange(B, device=theta.device)
    damping = torch.zeros(B, dtype=theta.dtype, device=theta.device)
    for _ in range(max_iter):
        part = from_unit_layout(theta[active], h, d)
        curvature = Curvature(part, X, y, w[active], task, ridge, gram)
        g = curvature.gradient()
        step, indefinite = _damped_newton_step(curvature, g, damping, active, cg_tol, cg_max_iter)
        finished = (g.abs().amax(1) <= tol) & ~indefinite
        if bool(finished.any()):
            finished[finished.clone()] = curvature.positive_definite()[finished]
        done[active[finished]] = True
        keep = ~finished
        if not bool(keep.any()):
            active = active[:0]
            break
        active, g, step, f0 = active[keep], g[keep], step[keep], curvature.value[keep]
        base = theta[active]
        size = torch.ones(active.numel(), dtype=theta.dtype, device=theta.device)
        slope = (g * step).sum(1)
        for _ in range(40):
            trial = from_unit_layout(base - size.unsqueeze(1) * step, h, d)
            f1 = objective(trial, X, y, w[active], task, ridge)
            accept = f1 <= f0 - 1e-4 * size * slope + 1e-13 * (1 + f0.abs())
            if bool(accept.all()):
                break
            size = torch.where(accept, size, size / 2)
        theta[active] = base - size.unsqueeze(1) * step
    return from_unit_layout(theta, h, d), done


def _damped_newton_step(curvature: Curvature, g, damping, active, cg_tol, cg_max_iter):
    """The Newton step of every model (``H s = g``), damped (``H + mu G``, ``G`` the Gauss-Newton form) where
    the Hessian met negative curvature, with ``mu`` raised tenfold until it does not and lowered tenfold after
    each success (``damping`` [B] is updated in place). Returns ``(step [B', p], indefinite [B'])``: whether the
    undamped Hessian met negative curvature."""
    step, indefinite, _, _ = curvature.pcg(g.unsqueeze(1), tol=cg_tol, max_iter=cg_max_iter)
    step = step[:, 0]
    todo = indefinite.clone()
    mu = torch.where(indefinite, damping[active].clamp_min(1e-2), torch.zeros_like(damping[active]))
    for _ in range(12):
        if not bool(todo.any()):
            break
        damped, bad, _, _ = curvature.pcg(g.unsqueeze(1), shift=mu, tol=cg_tol, max_iter=cg_max_iter)
        accept = todo & ~bad
        step[accept] = damped[accept, 0]
        todo &= bad
        mu = torch.where(todo, 10 * mu, mu)
    if bool(todo.any()):   # still indefinite: the preconditioned gradient, a descent direction
        step[todo] = curvature.precondition(g.unsqueeze(1))[todo, 0]
    damping[active] = torch.where(indefinite, mu / 10, torch.zeros_like(mu))
    return step, indefinite


# ------------------------------------------------------------------------------------ standard errors

def standard_errors(params: dict, X, y, *, task: str, ridge: float, sample_weight=None, tol: float = 1e-10,
                    max_iter: int = 200, return_solves: bool = False):
    """Exact sandwich standard errors of one head (``params`` without batch dimension, ``X`` [n, d], ``y`` [n]):
    ``diag(H^-1 V H^-1) / n_eff`` with ``V = R' R``, ``r_i = sqrt(w_i) (g_i - gbar)`` (as
    ``mislib.variance.sandwich_variance``), each ``H^-1 r_i`` by preconditioned conjugate gradients, in blocks
    of right-hand sides. Returns ``(se as a dict like params, newton_step [p] in named order, details)``.

    Raises ``ValueError`` when the conjugate gradients meet non-positive curvature (the Hessian is not positive
    definite at these parameters, so the sandwich does not exist). ``return_solves``: ``details["solves"]`` also
    holds ``H^-1 g_i`` [m, p] (named order) for the rows of positive weight, which ``influence(known=...)`` then
    need not solve again (the white-box attack reuses them)."""
    n = X.shape[0]
    raw = torch.ones(n, dtype=X.dtype, device=X.device) if sample_weight is None else sample_weight.to(X)
    keep = raw > 0
    Xm, ym, raw = X[keep], y[keep], raw[keep]
    n_eff = float(raw.sum())
    w = (raw / raw.sum()).unsqueeze(0)
    batch = {name: value.unsqueeze(0) for name, value in params.items()}
    curvature = Curvature(batch, Xm, ym, w, task, ridge)
    h, d, m = curvature.h, curvature.d, Xm.shape[0]
    gradient = curvature.gradient()                                                     # [1, p]
    gbar = gradient.clone()
    gbar -= ridge * unit_layout(batch) * _penalised(h, d, X)                            # mean loss gradient
    root = w[0].sqrt()
    block = max(1, min(m, RHS_BLOCK_ENTRIES // curvature.p))
    var = torch.zeros(curvature.p, dtype=X.dtype, device=X.device)
    worst, iterations = 0.0, 0
    # H^-1 g_i = H^-1 r_i / sqrt(w_i) + H^-1 gbar: one more solve gives every member's own
    mean_solve = _solve(curvature, gbar, tol, max_iter, "standard_errors")[0] if return_solves else None
    solves = []
    for start in range(0, m, block):
        rows = slice(start, min(m, start + block))
        per_sample = _example_gradients(Xm[rows], curvature.A[0, rows], curvature.t[0, rows],
                                        root[rows] * curvature.d1[0, rows])               # sqrt(w_i) g_i
        rhs = per_sample - root[rows].unsqueeze(-1) * gbar
        U, it, residual = _solve(curvature, rhs, tol, max_iter, "standard_errors")
        var += (U ** 2).sum(0)
        worst, iterations = max(worst, residual), max(iterations, it)
        if return_solves:
            solves.append(named_order(from_unit_layout(U / root[rows].unsqueeze(-1) + mean_solve, h, d)))
    step = _solve(curvature, gradient, tol, max_iter, "standard_errors")[0]
    if not bool(curvature.positive_definite().all()):
        raise ValueError(NOT_POSITIVE_DEFINITE.format(what="standard_errors"))
    se = from_unit_layout((var / n_eff).clamp_min(0).sqrt(), h, d)
    details = {"iterations": iterations, "residual": worst, "n_eff": n_eff}
    if return_solves:
        details["solves"] = torch.cat(solves)
    return se, named_order(from_unit_layout(step[0], h, d)), details


def influence(params: dict, X, y, X_targets, y_targets, *, task: str, ridge: float, tol: float = 1e-10,
              max_iter: int = 200, known: tuple | None = None) -> torch.Tensor:
    """``-(1/n) H^-1 grad loss(z_j)`` for each target row ``z_j`` (``[m, p]`` in ``named_parameters`` order): the
    first-order change of the minimiser when ``z_j`` joins the ``n`` training rows ``(X, y)`` of one head
    (``mislib.evaluation.audit_attacks.insertion_influence``, whose dense twin it is). ``H`` is the exact Hessian
    of the mean loss plus the ridge; each solve by preconditioned conjugate gradients, in blocks of targets.
    ``known``: ``(rows, solves)``, ``H^-1 g_j`` already solved for those rows of the targets (named order, as
    ``standard_errors(return_solves=True)`` gives them for the training rows); only the others are solved.
    Raises ``ValueError`` where the Hessian is not positive definite."""
    n = X.shape[0]
    batch = {name: value.unsqueeze(0) for name, value in params.items()}
    curvature = Curvature(batch, X, y, torch.full((1, n), 1.0 / n, dtype=X.dtype, device=X.device), task, ridge)
    h, d, p = curvature.h, curvature.d, curvature.p
    out = torch.empty(X_targets.shape[0], p, dtype=X.dtype, device=X.device)
    todo = torch.ones(X_targets.shape[0], dtype=torch.bool, device=X.device)
    if known is not None:
        rows, solves = known
        out[rows], todo[rows] = -solves.to(out) / n, False
    todo = torch.nonzero(todo).flatten()
    at_targets = Curvature(batch, X_targets[todo], y_targets[todo], torch.zeros(1, todo.numel()).to(X), task, ridge)
    block = max(1, min(todo.numel(), RHS_BLOCK_ENTRIES // p))
    for start in range(0, todo.numel(), block):
        rows = slice(start, min(todo.numel(), start + block))
        gradients = _example_gradients(X_targets[todo[rows]], at_targets.A[0, rows], at_targets.t[0, rows],
                                       at_targets.d1[0, rows])
        solved = _solve(curvature, gradients, tol, max_iter, "influence")[0]
        out[todo[rows]] = named_order(from_unit_layout(-solved / n, h, d))
    if not bool(curvature.positive_definite().all()):     # the targets' gradients alone can miss a saddle
        raise ValueError(NOT_POSITIVE_DEFINITE.format(what="influence"))
    return out


NOT_POSITIVE_DEFINITE = ("{what}: the Hessian is not positive definite at these parameters (conjugate gradients met "
                         "non-positive curvature): the model is not at a minimum")


def _example_gradients(X, A, t, scale) -> torch.Tensor:
    """[r, p] in the flat layout: ``scale_i`` times the gradient of the output at each row, ``A`` = ``v tanh'``
    and ``t`` = ``tanh`` of its pre-activations (with ``scale`` = ``loss'``, the per-example loss gradients)."""
    scale = scale.unsqueeze(-1)
    rows = torch.cat([X, torch.ones_like(X[:, :1])], dim=-1)
    return torch.cat([((A * scale).unsqueeze(-1) * rows.unsqueeze(1)).flatten(1), t * scale, scale], dim=1)


def _solve(curvature: Curvature, rhs, tol, max_iter, what: str):
    """``H^-1`` applied to the rows of ``rhs`` [r, p] of a one-head ``curvature``: ([r, p], iterations,
    residual), or ``ValueError`` on non-positive curvature."""
    solved, indefinite, iterations, residual = curvature.pcg(rhs.unsqueeze(0), tol=tol, max_iter=max_iter)
    if bool(indefinite.any()):
        raise ValueError(NOT_POSITIVE_DEFINITE.format(what=what))
    return solved[0], iterations, residual


def named_order(params: dict) -> torch.Tensor:
    """A head's dict (any leading dimensions, as ``from_unit_layout`` gives) -> flat in ``named_parameters``
    order (hidden.weight, hidden.bias, output.*)."""
    lead = params["output.bias"].shape[:-1]
    return torch.cat([params[name].reshape(*lead, -1) for name in ("hidden.weight", "hidden.bias", "output.weight",
                                                                    "output.bias")], dim=-1)


def _penalised(h: int, d: int, like) -> torch.Tensor:
    """[p] 1 on the penalised coordinates (W and v), 0 on the biases, in the flat layout."""
    unit = torch.ones(d + 1, dtype=like.dtype, device=like.device)
    unit[d] = 0
    return torch.cat([unit.repeat(h), torch.ones(h, dtype=like.dtype, device=like.device),
                      torch.zeros(1, dtype=like.dtype, device=like.device)])


def takes(model, loss, penalize, ridge: float) -> bool:
    """Whether the standard errors and the insertion influences of ``model`` go matrix-free through this module
    (under ``hessian="auto"``): a one-output tanh ``MLPHead`` (``applies``) with a ridge and more parameters than
    ``mislib.objective.EXACT_MAX_PARAMETERS``, the dense paths' limit."""
    from mislib.objective import EXACT_MAX_PARAMETERS

    return (applies(model, loss, penalize) and ridge > 0
            and sum(p.numel() for p in model.parameters()) > EXACT_MAX_PARAMETERS)


def applies(model, loss, penalize) -> bool:
    """Whether ``model`` is a one-output tanh ``MLPHead`` with the default penalty and a loss this module knows."""
    from mislib.modules import MLPHead

    return (isinstance(model, MLPHead) and model.activation == "tanh" and model.n_outputs == 1
            and penalize is None and (loss is None or loss == model.default_loss))


def task_of(model) -> str:
    """The ``task`` argument of this module for an ``MLPHead``."""
    return "regression" if model.default_loss == "squared" else "classification"
