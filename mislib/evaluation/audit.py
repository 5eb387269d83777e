"""One privacy audit of quantized releases, shared by the synthetic and the molecular studies.

``audit(X_pool, y_pool, X_test, y_test, quantizers, ...)`` plays the membership game of THEORY.md §1 on a pool
of ``N`` examples:

1. **Models.** The target's member set is a random half of the pool (``attacks.membership_split``, seeded);
   ``n_shadow`` shadow models come in complementary pairs (one trained on a random half, its partner on the
   other half), so that every example is IN for exactly half of the shadows and every shadow sees as many
   examples as the target. Target and shadows are trained in **one** batched call of ``mislib.evaluation.trainers``.
2. **Release.** For each quantizer, every model's parameters are quantized tensor by tensor (each named
   parameter on its own grid, as ``mislib.indicator`` treats them): that is what each model publishes.
   Stochastic rounding draws from a generator seeded by ``seed`` and the quantizer's label.
3. **Attacks** (``mislib.attacks``), each summarised by ``attack_metrics`` (AUC, advantage, TPR at 1% and 0.1%
   FPR, bootstrap intervals) on the balanced member / non-member split of the pool:
   LiRA online and offline, each with per-example and with fixed (pooled) variance, on the quantized models'
   per-example statistic (logit confidence for classification, negative squared error for regression); the
   loss-threshold attack on the quantized target; the white-box Gaussian attack on the target's cells (below).
4. **Indicator** ``r_Q^n`` from the target alone (``indicator.estimate_model``: sandwich standard errors,
   bootstrap intervals).
5. **Utility** of the quantized target on held-out test data; **cost** (wall time, model fits) of the
   indicator and of the shadow-model audit.

The white-box attack sees the cell ``q.cell_bounds`` of each released weight. Its working model: the trained
weights are Gaussian around the mean of the shadows' (unquantized) weights, with per-coordinate standard
deviation from the shadows (``whitebox``) or from the indicator's sandwich standard errors
(``whitebox_sandwich_std``); example ``j`` moves them by its influence ``s_j = -(1/n) H^-1 grad loss(z_j)``
(``influence_shifts``, torch.func, at the target's weights). Half the shadows contain ``j``, so the shadow
mean sits half-way: IN is ``mean + s_j / 2`` and OUT is ``mean - s_j / 2``, and the score is the exact
log-likelihood ratio of the observed cells under these two Gaussians. Randomised quantizers have no cells:
no white-box row for them.

The result is a tidy table (``COLUMNS``): one row per model, quantizer, sample size, seed, method and
measurement, with ``value``, ``value_low`` and ``value_high`` (NaN where there is no interval).

``ranking_agreement`` / ``agreement_table`` compare how an indicator and a reference (ground truth or the
best attack) order quantizers: among pairs whose reference intervals do not overlap, the fraction ordered the
same way, and Kendall's tau over all quantizers.
"""

from __future__ import annotations

import math
import time
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mislib import attacks
from mislib.infra.checks import check_choice, check_float, check_int, check_tensor, resolve_device
from mislib.quantizers import Quantizer, labelled

MODELS = ("logistic", "linear", "mlp")
TASKS = ("classification", "regression")
ATTACKS = ("lira_online", "lira_online_fixed_variance", "lira_offline", "lira_offline_fixed_variance",
           "loss_threshold", "whitebox", "whitebox_sandwich_std")
ATTACK_METRICS = ("auc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")
INDICATOR_MEASUREMENTS = ("r_min", "r_soft", "r_min_with_scale", "r_soft_with_scale", "p_flip_with_scale",
                          "log_p_flip_with_scale", "delta_bound_with_scale", "weights_at_risk", "scale_r", "z_min")
COLUMNS = ("model", "quantizer", "sample_size", "seed", "method", "measurement", "value", "value_low",
           "value_high")


# ------------------------------------------------------------------------------------------- architectures

@dataclass(frozen=True)
class ModelSpec:
    """What is trained: ``kind`` logistic / linear / mlp, for a classification or regression ``task``.

    ``ridge`` is the penalty of ``mislib.evaluation.trainers`` (weighted mean loss + ridge/2 ||weights||^2, biases free);
    ``hidden``, ``activation``, ``n_iter``, ``lr`` and ``init_seed`` only matter for the MLP (full-batch Adam,
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
    # same thing as quantizing the whole vector (what mislib.evaluation.montecarlo does): the low-dimensional study needs it

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


def _mlp_derivatives(params, X, y, w, task, ridge):
    """Objective, gradient and Hessian of each model of a batch of one-output tanh MLPs, analytically.

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


def _mlp_from_flat(theta, like):
    B, h, d = like["hidden.weight"].shape
    k = d + 1
    hidden = theta[:, : h * k].reshape(B, h, k)
    return {"hidden.weight": hidden[:, :, :d].contiguous(), "hidden.bias": hidden[:, :, d].contiguous(),
            "output.weight": theta[:, h * k: h * k + h].unsqueeze(1).contiguous(),
            "output.bias": theta[:, h * k + h:].contiguous()}


def polish_mlp(params: dict, X, y, weights, *, task: str = "classification", ridge: float = 1e-3,
               max_iter: int = 40, tol: float = 1e-9) -> dict:
    """Newton-polish a batch of one-output tanh MLPs (``mislib.evaluation.trainers.fit_mlp_head``'s dict, ``weights`` [B, N])
    to a minimum of the training objective, so that the indicator's sandwich sees a positive-definite Hessian.

    Why: full-batch Adam stops near, not at, a minimum (in our runs gradients of 1e-3 to 1e-2, negative Hessian
    eigenvalues, and outputs that move by as much as they vary between shadow models when polished), while the
    indicator assumes an M-estimator at its minimum. Newton steps with the exact Hessian (Cholesky where it is
    positive definite, saddle-free ``|eigenvalues|`` elsewhere, so every step descends) and backtracking; a
    model leaves the active set once its gradient is below ``tol`` at a positive-definite Hessian. Models that
    do not get there in ``max_iter`` steps are reported with a warning."""
    W0 = params["hidden.weight"]
    w = weights / weights.sum(1, keepdim=True)
    out = {name: value.clone() for name, value in params.items()}
    active = torch.arange(W0.shape[0], device=W0.device)
    for _ in range(max_iter):
        part = {name: value[active] for name, value in out.items()}
        ws = w[active]
        f0, g, H, theta = _mlp_derivatives(part, X, y, ws, task, ridge)
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
    if active.numel():
        warnings.warn(f"polish_mlp: {active.numel()} of {W0.shape[0]} models did not reach a minimum with "
                      f"gradient <= {tol:g} and a positive-definite Hessian in {max_iter} Newton steps",
                      RuntimeWarning, stacklevel=2)
    return out


def _mlp_objective(params, X, y, w, task, ridge):
    W, b = params["hidden.weight"], params["hidden.bias"]
    v, c = params["output.weight"][:, 0, :], params["output.bias"][:, 0]
    f = torch.einsum("bnj,bj->bn", torch.tanh(torch.einsum("nk,bjk->bnj", X, W) + b.unsqueeze(1)), v) \
        + c.unsqueeze(1)
    loss = 0.5 * (y - f) ** 2 if task == "regression" else torch.nn.functional.softplus(f) - y * f
    return (w * loss).sum(1) + 0.5 * ridge * ((W ** 2).sum((1, 2)) + (v ** 2).sum(1))


def _flat(params: dict) -> torch.Tensor:
    """[B, P] in named-parameter order (the order of the indicator's flat vectors)."""
    return torch.cat([v.reshape(v.shape[0], -1) for v in params.values()], dim=1)


# ----------------------------------------------------------------------------------------------- influence

def influence_shifts(module, X_train, y_train, X_targets, y_targets, loss, *, ridge: float = 0.0,
                     chunk_size: int = 2 ** 22) -> torch.Tensor:
    """``-(1/n) H^-1 grad loss(z_j)`` for each target ``z_j`` (rows ``[m, P]``, named-parameter order).

    The first-order change of the minimiser of ``mislib.evaluation.trainers``' objective on ``(X_train, y_train)`` (``n``
    examples; ridge included in ``H``) when ``z_j`` is added: ``theta(+j) - theta ~ -(1/(n+1)) H^-1 g_j``.
    Per-sample gradients and the Hessian by torch.func (``mislib.indicator``'s objective, so the same loss and
    penalty). The Hessian is exact up to ``indicator.EXACT_MAX_PARAMETERS`` parameters, else solves are done
    by conjugate gradients on Hessian-vector products. A Hessian that is not positive definite (a non-convex
    model not exactly at a minimum) is floored at ``1e-8`` times its largest eigenvalue."""
    from mislib import indicator

    train = indicator._Problem(module, X_train, y_train, loss, ridge, None, None, chunk_size)
    targets = indicator._Problem(module, X_targets, y_targets, loss, ridge, None, None, chunk_size)
    G = targets.per_sample_grads(train.theta)                        # [m, P]
    if train.p <= indicator.EXACT_MAX_PARAMETERS:
        H = train.hessian(train.theta)
        L, info = torch.linalg.cholesky_ex(H)
        if int(info) == 0:
            solved = torch.cholesky_solve(G.T, L).T
        else:
            values, vectors = torch.linalg.eigh(H)
            values = values.clamp_min(1e-8 * float(values.abs().max()))
            solved = ((G @ vectors) / values) @ vectors.T
    else:
        solved = indicator.block_cg(lambda V: train.hvp(train.theta, V), G, tol=1e-8, max_iter=500)[0]
    return -solved / train.n


# ------------------------------------------------------------------------------------------------- helpers

def _labels_and_classes(y: torch.Tensor, task: str, name: str):
    if task == "regression":
        return None
    values = torch.unique(y)
    if bool((values != values.round()).any()) or bool((values < 0).any()):
        raise ValueError(f"{name} must hold class indices 0, 1, ... for task 'classification'")
    return max(2, int(values.max()) + 1)


def _check_data(X_pool, y_pool, X_test, y_test, task):
    X_pool = check_tensor("X_pool", X_pool)
    X_test = check_tensor("X_test", X_test)
    y_pool = check_tensor("y_pool", y_pool)
    y_test = check_tensor("y_test", y_test)
    if X_pool.dim() != 2 or X_test.dim() != 2:
        raise ValueError(f"X_pool and X_test must be 2-d [examples, features], got shapes {tuple(X_pool.shape)} "
                         f"and {tuple(X_test.shape)}")
    if X_pool.shape[1] != X_test.shape[1]:
        raise ValueError(f"X_pool has {X_pool.shape[1]} features but X_test has {X_test.shape[1]}")
    for name, X, y in (("y_pool", X_pool, y_pool), ("y_test", X_test, y_test)):
        if y.shape != (X.shape[0],):
            raise ValueError(f"{name} must be 1-d with one target per row of X ({X.shape[0]}), got shape "
                             f"{tuple(y.shape)}")
    if X_pool.shape[0] < 8:
        raise ValueError(f"X_pool has {X_pool.shape[0]} examples; the audit needs at least 8 (half of them train "
                         "the target)")
    n_classes = _labels_and_classes(y_pool, task, "y_pool")
    if n_classes is not None:
        test_classes = _labels_and_classes(y_test, task, "y_test")
        if test_classes > n_classes:
            raise ValueError(f"y_test holds class {test_classes - 1}, never seen in y_pool")
        if int(torch.unique(y_pool).numel()) < 2:
            raise ValueError("y_pool holds a single class; a classifier needs at least two")
    return X_pool, y_pool, X_test, y_test, n_classes




def _seed_for(seed: int, label: str) -> int:
    """A reproducible seed per (seed, quantizer label)."""
    return (seed * 1_000_003 + zlib.crc32(label.encode())) % (2 ** 63)


def release(quantizer: Quantizer, params: dict, generator: torch.Generator | None = None) -> dict:
    """Quantize every model of a batch (``params[name]``: [B, ...]) tensor by tensor: what each one publishes."""
    out = {}
    for name, value in params.items():
        out[name] = torch.stack([quantizer(value[b], generator=generator) for b in range(value.shape[0])])
    return out


def shadow_masks(n_total: int, n_shadow: int, seed: int) -> np.ndarray:
    """[n_shadow, n_total] booleans: complementary pairs of random halves (each example IN for exactly half)."""
    n_total = check_int("n_total", n_total, minimum=2)
    n_shadow = check_int("n_shadow", n_shadow, minimum=2)
    if n_shadow % 2:
        raise ValueError(f"n_shadow must be even (shadows come in complementary pairs), got {n_shadow}")
    rng = np.random.default_rng([check_int("seed", seed, minimum=0), 1])
    masks = np.zeros((n_shadow, n_total), dtype=bool)
    for pair in range(n_shadow // 2):
        chosen = rng.permutation(n_total)[: n_total // 2]
        masks[2 * pair, chosen] = True
        masks[2 * pair + 1] = ~masks[2 * pair]
    return masks


def _statistics(arch: Architecture, outputs: torch.Tensor, y: torch.Tensor):
    """Per-model, per-example LiRA statistic and loss: two [B, N] NumPy arrays."""
    from mislib.indicator import resolve_loss

    B, N = outputs.shape[0], outputs.shape[1]
    flat_out = outputs.reshape((B * N,) + tuple(outputs.shape[2:]))
    targets = y.repeat(B)
    losses = resolve_loss(arch.loss)(flat_out, targets).reshape(B, N)
    if arch.spec.task == "regression":
        stats = attacks.negative_squared_error(flat_out.reshape(-1), targets)
    else:
        stats = attacks.logit_confidence_from_logits(flat_out, targets)
    return np.asarray(stats).reshape(B, N), losses.detach().cpu().numpy().astype(np.float64)


def _performance(arch: Architecture, outputs: torch.Tensor, y: torch.Tensor) -> dict:
    """Test performance of one model: accuracy / AUROC or RMSE / R^2 / Spearman."""
    from scipy import stats as sps

    out = outputs.detach().cpu().to(torch.float64).numpy()
    target = y.detach().cpu().to(torch.float64).numpy()
    if arch.spec.task == "regression":
        resid = out - target
        total = float(np.sum((target - target.mean()) ** 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # constant predictions: Spearman is undefined (NaN)
            spearman = float(sps.spearmanr(out, target).statistic)
        return {"rmse": float(np.sqrt(np.mean(resid ** 2))),
                "r2": 1.0 - float(np.sum(resid ** 2)) / total if total > 0 else math.nan,
                "spearman": spearman}
    if out.ndim == 1:
        accuracy = float(np.mean((out > 0) == (target == 1)))
        auroc = attacks.auc(out, target) if 0 < target.sum() < target.size else math.nan
        return {"accuracy": accuracy, "auroc": auroc}
    from sklearn.metrics import roc_auc_score

    probs = torch.softmax(torch.as_tensor(out), dim=-1).numpy()
    accuracy = float(np.mean(out.argmax(-1) == target))
    try:
        auroc = float(roc_auc_score(target.astype(int), probs, multi_class="ovr",
                                    labels=list(range(out.shape[-1]))))
    except ValueError:
        auroc = math.nan
    return {"accuracy": accuracy, "auroc": auroc}


# --------------------------------------------------------------------------------------------------- audit

def audit(X_pool, y_pool, X_test, y_test, quantizers: Mapping[str, Quantizer], *, model: str | ModelSpec =
          "logistic", task: str | None = None, n_shadow: int = 64, seed: int = 0,
          n_bootstrap: int = 200, indicator_bootstrap: int = 0, attacks_on: bool = True, device=None,
          model_label: str | None = None) -> pd.DataFrame:
    """Audit every quantizer's release of a model trained on a random half of ``(X_pool, y_pool)``.

    ``X_pool`` [N, d] float, ``y_pool`` [N] (class indices for classification, values for regression),
    ``X_test``/``y_test`` held out (utility only). ``quantizers``: ``{label: Quantizer}``. ``model``: a kind
    (``"logistic"``, ``"linear"``, ``"mlp"``, default settings; ``task`` defaults to regression for
    ``"linear"``, else classification) or a ``ModelSpec`` (which carries its task). ``n_shadow`` (even, >= 4)
    shadow models; ``n_bootstrap`` replicates for the attack metrics' intervals; ``indicator_bootstrap``
    replicates (refits) for the indicator's intervals (0: no intervals). ``attacks_on=False`` skips shadows and
    attacks (indicator and utility only). Same seed, same numbers.

    Returns the tidy table described in the module notes (columns ``COLUMNS``; ``sample_size`` is the target's
    training-set size ``N // 2``). Methods: the attacks of ``ATTACKS``, ``best_attack`` (per metric, the
    strongest attack, with its interval), ``indicator``, ``test``, ``quantizer`` (bits per weight, sparsity,
    whether a continuous scale is published, whether it is deterministic) and ``cost``: per quantizer
    ``indicator_seconds`` (sandwich + this quantizer's margins) against ``shadow_audit_seconds`` (training of
    target and shadows, the white-box set-up, this quantizer's releases, statistics and attack scores), with
    ``indicator_model_fits`` (1) and ``shadow_model_fits`` (1 + n_shadow); per configuration (quantizer
    ``"(all)"``) the totals over every quantizer with shared work counted once (``indicator_total_seconds``,
    ``shadow_audit_total_seconds``), and the price of the intervals (``indicator_interval_seconds`` and
    ``indicator_interval_model_fits`` for the indicator's bootstrap, ``attack_interval_seconds`` for the attack
    metrics' bootstrap).
    """
    if isinstance(model, ModelSpec):
        if task is not None and task != model.task:
            raise ValueError(f"task {task!r} disagrees with the ModelSpec's task {model.task!r}")
        spec = model
    else:
        spec = ModelSpec(kind=model, task=task or ("regression" if model == "linear" else "classification"))
    task = spec.task
    X_pool, y_pool, X_test, y_test, n_classes = _check_data(X_pool, y_pool, X_test, y_test, task)
    if spec.kind == "logistic" and n_classes != 2:
        raise ValueError(f"model 'logistic' is binary but y_pool holds {n_classes} classes; use model 'mlp'")
    items = labelled(quantizers)
    # why 4: LiRA's per-example variance needs two IN and two OUT statistics for every example
    n_shadow = check_int("n_shadow", n_shadow, minimum=4)
    if n_shadow % 2:
        raise ValueError(f"n_shadow must be even (shadows come in complementary pairs), got {n_shadow}")
    seed = check_int("seed", seed, minimum=0)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0)
    indicator_bootstrap = check_int("indicator_bootstrap", indicator_bootstrap, minimum=0)
    if indicator_bootstrap == 1:
        raise ValueError("indicator_bootstrap must be 0 (no intervals) or >= 2")
    device = resolve_device(device)
    dtype = torch.float64
    X_pool, y_pool = X_pool.to(device, dtype), y_pool.to(device, dtype)
    X_test, y_test = X_test.to(device, dtype), y_test.to(device, dtype)
    arch = Architecture(spec, X_pool.shape[1], n_classes, device)
    N = X_pool.shape[0]
    members, nonmembers = attacks.membership_split(N, seed)
    n = int(members.size)
    target_mask = np.zeros(N, dtype=bool)
    target_mask[members] = True
    evaluated = np.sort(np.concatenate([members, nonmembers]))     # (one example is left out when N is odd)
    labels = target_mask[evaluated].astype(np.int8)
    label = model_label or spec.kind
    rows: list[dict] = []

    def add(quantizer, method, measurement, value, low=math.nan, high=math.nan):
        rows.append({"model": label, "quantizer": quantizer, "sample_size": n, "seed": seed, "method": method,
                     "measurement": measurement, "value": float(value), "value_low": float(low),
                     "value_high": float(high)})

    # 1. one batched fit: the target (row 0) and the shadows
    masks = shadow_masks(N, n_shadow, seed) if attacks_on else np.zeros((0, N), dtype=bool)
    weights = torch.as_tensor(np.vstack([target_mask[None], masks]), dtype=dtype, device=device)
    start = time.perf_counter()
    params = arch.fit(X_pool, y_pool, weights)
    fit_seconds = time.perf_counter() - start
    target_module = arch.module(params, 0)
    X_members, y_members = X_pool[torch.as_tensor(members, device=device)], y_pool[torch.as_tensor(members,
                                                                                                     device=device)]

    # 2. the indicator, from the target alone
    from mislib import indicator

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", indicator.NotAtOptimumWarning)
        ind = indicator.estimate_model(target_module, X_members, y_members, arch.loss, dict(items),
                                       ridge=spec.ridge, seed=seed)
    indicator_total = time.perf_counter() - start
    ind = ind.set_index("quantizer")
    intervals, boot_seconds, boot_fits, boot_used = _indicator_intervals(
        arch, X_members, y_members, items, indicator_bootstrap, seed)

    # 3. what the white-box attack needs, shared by every quantizer
    whitebox_ready = attacks_on
    if attacks_on:
        start = time.perf_counter()
        shadow_flat = _flat({k: v[1:] for k, v in params.items()}).cpu().numpy()
        mean = shadow_flat.mean(axis=0)
        std_shadow = np.maximum(shadow_flat.std(axis=0, ddof=1), 1e-12)
        se = indicator.standard_errors(target_module, X_members, y_members, arch.loss, ridge=spec.ridge)
        correction = math.sqrt((N - n) / max(1, N - 1))  # random halves of a fixed pool: finite-population
        std_sandwich = np.maximum(_flat({k: v.unsqueeze(0) for k, v in se.items()})[0].cpu().numpy()
                                  * correction, 1e-12)
        shifts = influence_shifts(target_module, X_members, y_members, X_pool[torch.as_tensor(evaluated,
                                  device=device)], y_pool[torch.as_tensor(evaluated, device=device)], arch.loss,
                                  ridge=spec.ridge).cpu().numpy()
        whitebox_setup = time.perf_counter() - start
        shadow_in = masks[:, evaluated]

    shadow_total = metrics_total = 0.0
    for qlabel, q in items:
        generator = torch.Generator(device=device).manual_seed(_seed_for(seed, qlabel))
        start = time.perf_counter()
        released = release(q, params, generator)
        outputs = arch.outputs(released, X_pool)
        release_seconds = time.perf_counter() - start

        # utility of the quantized target, and what the quantizer is
        test_out = arch.outputs({k: v[:1] for k, v in released.items()}, X_test)[0]
        for name, value in _performance(arch, test_out, y_test).items():
            add(qlabel, "test", name, value)
        target_release = _flat({k: v[:1] for k, v in released.items()})[0]
        main = max(params, key=lambda k: params[k][0].numel())
        add(qlabel, "quantizer", "bits_per_weight", q.bits_per_weight(params[main][0]))
        add(qlabel, "quantizer", "sparsity", float((target_release == 0).double().mean()))
        add(qlabel, "quantizer", "continuous_scale", float(q.scale_channel == "continuous"))
        add(qlabel, "quantizer", "deterministic", float(q.deterministic))

        # indicator
        row = ind.loc[qlabel]
        for name in INDICATOR_MEASUREMENTS:
            low, high = intervals.get(qlabel, {}).get(name, (math.nan, math.nan))
            add(qlabel, "indicator", name, row[name], low, high)
        add(qlabel, "indicator", "bootstrap_replicates_used", boot_used)
        add(qlabel, "cost", "indicator_seconds", row["seconds"])
        add(qlabel, "cost", "indicator_model_fits", 1)

        if not attacks_on:
            continue
        start = time.perf_counter()
        stats, losses = _statistics(arch, outputs, y_pool)
        stats = stats[:, evaluated]
        target_stats, shadow_stats = stats[0], stats[1:]
        scores = {
            "lira_online": attacks.lira_online_scores(target_stats, shadow_stats, shadow_stats,
                                                      in_mask=shadow_in, out_mask=~shadow_in),
            "lira_online_fixed_variance": attacks.lira_online_scores(
                target_stats, shadow_stats, shadow_stats, in_mask=shadow_in, out_mask=~shadow_in,
                fixed_variance=True),
            "lira_offline": attacks.lira_offline_scores(target_stats, shadow_stats, out_mask=~shadow_in),
            "lira_offline_fixed_variance": attacks.lira_offline_scores(target_stats, shadow_stats,
                                                                       out_mask=~shadow_in, fixed_variance=True),
            "loss_threshold": attacks.loss_threshold_scores(losses[0, evaluated]),
        }
        if q.deterministic and whitebox_ready:
            low, high = (_flat({k: v.unsqueeze(0) for k, v in bounds.items()})[0].cpu().numpy()
                         for bounds in _cell_bounds(q, params))
            for name, std in (("whitebox", std_shadow), ("whitebox_sandwich_std", std_sandwich)):
                scores[name] = (attacks.whitebox_gaussian_scores(low, high, mean, 0.5 * shifts, std)
                                - attacks.whitebox_gaussian_scores(low, high, mean, -0.5 * shifts, std))
        attack_seconds = time.perf_counter() - start
        best: dict[str, tuple] = {}
        for name, score in scores.items():
            metrics = attacks.attack_metrics(score, labels, n_bootstrap=n_bootstrap, seed=seed)
            for metric in ATTACK_METRICS:
                value = metrics[metric]
                add(qlabel, name, metric, value, metrics[f"{metric}_low"], metrics[f"{metric}_high"])
                if metric not in best or value > best[metric][0]:
                    best[metric] = (value, metrics[f"{metric}_low"], metrics[f"{metric}_high"])
        for metric, (value, low, high) in best.items():
            add(qlabel, "best_attack", metric, value, low, high)
        add(qlabel, "cost", "shadow_audit_seconds", fit_seconds + whitebox_setup + release_seconds + attack_seconds)
        add(qlabel, "cost", "shadow_model_fits", 1 + n_shadow)
        shadow_total += release_seconds + attack_seconds
        metrics_total += time.perf_counter() - start - attack_seconds
    # Totals for the whole configuration (every quantizer): shared work counted once.
    add("(all)", "cost", "training_seconds", fit_seconds)
    add("(all)", "cost", "indicator_total_seconds", indicator_total)
    add("(all)", "cost", "indicator_interval_seconds", boot_seconds)
    add("(all)", "cost", "indicator_interval_model_fits", boot_fits)
    if attacks_on:
        add("(all)", "cost", "shadow_audit_total_seconds", fit_seconds + whitebox_setup + shadow_total)
        add("(all)", "cost", "attack_interval_seconds", metrics_total)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _indicator_intervals(arch: Architecture, X, y, items, n_replicates: int, seed: int,
                         confidence: float = 0.95):
    """Percentile bootstrap intervals of the indicator: the member set resampled ``n_replicates`` times, each
    replicate retrained from scratch by the same batched trainer as the shadows (so non-convex models get the
    same treatment as the target), then standard errors and indicator recomputed. Replicates whose Hessian is
    not positive definite are dropped (counted in the returned ``used``).
    Returns ({label: {measurement: (low, high)}}, seconds, model fits, replicates used)."""
    from mislib import indicator

    if n_replicates == 0:
        return {}, 0.0, 0, 0
    start = time.perf_counter()
    rng = np.random.default_rng([seed, 2])
    n = X.shape[0]
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_replicates)])
    counts = torch.as_tensor(counts, dtype=X.dtype, device=X.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = arch.fit(X, y, counts)
    draws: dict[str, dict[str, list]] = {label: {m: [] for m in INDICATOR_MEASUREMENTS} for label, _ in items}
    used = 0
    for b in range(n_replicates):
        module = arch.module(params, b)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                se = indicator.standard_errors(module, X, y, arch.loss, ridge=arch.spec.ridge,
                                               sample_weight=counts[b])
        except ValueError:
            continue  # not at a positive-definite minimum: no sandwich for this replicate
        theta = {name: p.detach() for name, p in module.named_parameters()}
        se = {name: value.clamp_min(1e-300) for name, value in se.items()}
        used += 1
        for label, q in items:
            result = indicator.estimate(theta, se, q, n)
            for m in INDICATOR_MEASUREMENTS:
                draws[label][m].append(getattr(result, m))
    alpha = (1 - confidence) / 2
    intervals = {}
    if used >= 2:
        for label, _ in items:
            intervals[label] = {}
            for m, values in draws[label].items():
                values = np.asarray(values, dtype=float)
                intervals[label][m] = (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))
    return intervals, time.perf_counter() - start, n_replicates, used


def _cell_bounds(q: Quantizer, params: dict):
    """Cells of the target's (row 0) weights, tensor by tensor: (low dict, high dict)."""
    lows, highs = {}, {}
    for name, value in params.items():
        lows[name], highs[name] = q.cell_bounds(value[0])
    return lows, highs


def build_quantizers(specs, public_absmax: float | None = None) -> dict:
    """``{label: Quantizer}`` from ``(label, name, params)`` triples; a parameter ``"public:<b>"`` becomes the
    public b-bit step ``public_absmax / (2**(b-1) - 1)`` and ``"public:<b>*<f>"`` the fraction f of it."""
    from mislib import quantizers as Q

    out = {}
    for label, name, params in specs:
        resolved = {}
        for key, value in params.items():
            if isinstance(value, str) and value.startswith("public:"):
                if public_absmax is None:
                    raise ValueError(f"quantizer {label!r} needs a public scale: pass public_absmax")
                bits, _, fraction = value.split(":", 1)[1].partition("*")
                step = check_float("public_absmax", public_absmax, low=0.0, low_open=True) / (2 ** (int(bits) - 1) - 1)
                value = step * (float(fraction) if fraction else 1.0)
            resolved[key] = value
        out[label] = Q.get(name, **resolved)
    return out
