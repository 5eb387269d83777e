"""One privacy audit of quantized releases, shared by the synthetic and the molecular studies.

``run_audit(X_pool, y_pool, X_test, y_test, quantizers, ...)`` plays the membership game of THEORY.md §1 on a pool
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
4. **Indicator** ``r_Q^n`` from the target alone (``indicator.indicator_of_model``: sandwich standard errors,
   bootstrap intervals).
5. **Utility** of the quantized target on held-out test data; **baselines**, what a user has without shadow
   models (the standardised distortion ``sum_k ((Q(theta)_k - theta_k) / s_k)^2``, the increase of the training
   loss, the drop of the primary test metric and its bootstrap standard error); **cost** (wall time, model fits)
   of the indicator and of the shadow-model audit.

Many targets at no extra training (``n_targets``): each trained model can play the target in turn, with every
other model as a reference (the standard LiRA evaluation, Carlini et al. 2022). The batch is reordered so that
the audited model comes first and a complete pair of references next (RMIA's offline calibration uses it); the
releases are computed once and shared. Each audited model is a different random half of the pool: an
independent training set.

The white-box attack sees the cell ``q.cell_bounds`` of each released weight. Its working model: the trained
weights are Gaussian around the mean of the shadows' (unquantized) weights, with per-coordinate standard
deviation from the shadows (``whitebox``) or from the indicator's sandwich standard errors
(``whitebox_sandwich_std``); example ``j`` moves them by its influence ``s_j = -(1/n) H^-1 grad loss(z_j)``
(``insertion_influence``, torch.func, at the target's weights). Half the shadows contain ``j``, so the shadow
mean sits half-way: IN is ``mean + s_j / 2`` and OUT is ``mean - s_j / 2``, and the score is the exact
log-likelihood ratio of the observed cells under these two Gaussians. Randomised quantizers have no cells:
no white-box row for them.

The result is a tidy table (``COLUMNS``): one row per model, quantizer, sample size, seed, method and
measurement, with ``value``, ``value_low`` and ``value_high`` (NaN where there is no interval).

How an indicator and a reference (ground truth or the best attack) order the quantizers is
``mislib.evaluation.agreement``; quantizers named by ``(label, name, params)`` triples are
``mislib.evaluation.quantizer_specs``.
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
from scipy.special import expit

from mislib import attacks
from mislib.infra.checks import check_int, check_tensor, resolve_device
from mislib.evaluation.architectures import (MODELS, TASKS, Architecture, ModelSpec,  # noqa: F401  (re-exported)
                                            flat_batch, polish_mlp)
from mislib.evaluation.quantizer_specs import build_quantizers  # noqa: F401  (re-exported: audit.build_quantizers)
from mislib.quantizers import Quantizer, labelled

ATTACKS = ("lira_online", "lira_online_fixed_variance", "lira_offline", "lira_offline_fixed_variance",
           "rmia_online", "rmia_offline", "loss_threshold", "whitebox", "whitebox_sandwich_std")
ATTACK_METRICS = ("auc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")
INDICATOR_MEASUREMENTS = ("ranking_score", "ranking_score_averaged", "expected_exits_with_scale", "delta_estimate",
                          "r_min", "r_soft", "r_min_with_scale", "r_soft_with_scale", "p_flip_with_scale",
                          "log_p_flip_with_scale", "delta_bound_with_scale", "weights_at_risk", "scale_r", "z_min")
BASELINE_MEASUREMENTS = ("standardised_distortion", "train_loss_increase", "test_performance_drop",
                         "test_performance_se")
# The primary test metric of each task (higher = better): what ``test_performance_drop`` is measured in.
PRIMARY_METRIC = {"classification": "auroc", "regression": "r2"}
COLUMNS = ("model", "quantizer", "sample_size", "seed", "target", "method", "measurement", "value", "value_low",
           "value_high")


# ----------------------------------------------------------------------------------------------- influence

def insertion_influence(module, X_train, y_train, X_targets, y_targets, loss, *, ridge: float = 0.0,
                        chunk_size: int = 2 ** 22) -> torch.Tensor:
    """``-(1/n) H^-1 grad loss(z_j)`` for each target ``z_j`` (rows ``[m, P]``, named-parameter order).

    The first-order change of the minimiser of ``mislib.evaluation.trainers``' objective on
    ``(X_train, y_train)`` (``n`` examples; ridge included in ``H``) when ``z_j`` is added:
    ``theta(+j) - theta ~ -(1/(n+1)) H^-1 g_j``.
    Per-sample gradients and the Hessian by torch.func (``mislib.indicator``'s objective, so the same loss and
    penalty). The Hessian is exact up to ``indicator.EXACT_MAX_PARAMETERS`` parameters, else solves are done
    by conjugate gradients on Hessian-vector products. A Hessian that is not positive definite (a non-convex
    model not exactly at a minimum) is floored at ``1e-8`` times its largest eigenvalue."""
    from mislib.objective import EXACT_MAX_PARAMETERS, Objective, block_cg

    train = Objective(module, X_train, y_train, loss, ridge, None, None, chunk_size)
    targets = Objective(module, X_targets, y_targets, loss, ridge, None, None, chunk_size)
    G = targets.per_sample_grads(train.theta)                        # [m, P]
    if train.p <= EXACT_MAX_PARAMETERS:
        H = train.hessian(train.theta)
        L, info = torch.linalg.cholesky_ex(H)
        if int(info) == 0:
            solved = torch.cholesky_solve(G.T, L).T
        else:
            values, vectors = torch.linalg.eigh(H)
            values = values.clamp_min(1e-8 * float(values.abs().max()))
            solved = ((G @ vectors) / values) @ vectors.T
    else:
        solved = block_cg(lambda V: train.hvp(train.theta, V), G, tol=1e-8, max_iter=500)[0]
    return -solved / train.n


def influence_shifts(*args, **kwargs) -> torch.Tensor:
    """Deprecated alias of ``insertion_influence`` (``mislib.indicator`` has its own, different
    ``influence_shifts``); removed in mislib 0.3."""
    warnings.warn("mislib.evaluation.audit.influence_shifts is deprecated; use insertion_influence",
                  DeprecationWarning, stacklevel=2)
    return insertion_influence(*args, **kwargs)


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

@dataclass
class _Setup:
    """The validated inputs of one audit and the membership split they imply."""

    spec: ModelSpec
    arch: Architecture
    X_pool: torch.Tensor
    y_pool: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    items: list
    seed: int
    n_shadow: int
    n_bootstrap: int
    indicator_bootstrap: int
    attacks_on: bool
    members: np.ndarray
    evaluated: np.ndarray      # members and non-members, sorted (one example is left out when N is odd)
    labels: np.ndarray         # 1 = member, per evaluated example
    target_mask: np.ndarray


class _Rows:
    """The tidy rows of one audit (``COLUMNS``), all with the same model label, sample size and seed."""

    def __init__(self, model: str, sample_size: int, seed: int, target: int = 0):
        self.model, self.sample_size, self.seed, self.target = model, sample_size, seed, target
        self.rows: list[dict] = []

    def add(self, quantizer, method, measurement, value, low=math.nan, high=math.nan):
        self.rows.append({"model": self.model, "quantizer": quantizer, "sample_size": self.sample_size,
                          "seed": self.seed, "target": self.target, "method": method, "measurement": measurement,
                          "value": float(value), "value_low": float(low), "value_high": float(high)})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))


def _setup(X_pool, y_pool, X_test, y_test, quantizers, *, model, task, n_shadow, seed, n_bootstrap,
           indicator_bootstrap, attacks_on, device) -> _Setup:
    """Validate every argument of ``run_audit`` (errors name the argument) and draw the target's members."""
    if isinstance(model, ModelSpec):
        if task is not None and task != model.task:
            raise ValueError(f"task {task!r} disagrees with the ModelSpec's task {model.task!r}")
        spec = model
    else:
        spec = ModelSpec(kind=model, task=task or ("regression" if model == "linear" else "classification"))
    X_pool, y_pool, X_test, y_test, n_classes = _check_data(X_pool, y_pool, X_test, y_test, spec.task)
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
    X_pool, y_pool = X_pool.to(device, torch.float64), y_pool.to(device, torch.float64)
    X_test, y_test = X_test.to(device, torch.float64), y_test.to(device, torch.float64)
    N = X_pool.shape[0]
    members, nonmembers = attacks.membership_split(N, seed)
    target_mask = np.zeros(N, dtype=bool)
    target_mask[members] = True
    evaluated = np.sort(np.concatenate([members, nonmembers]))
    return _Setup(spec=spec, arch=Architecture(spec, X_pool.shape[1], n_classes, device), X_pool=X_pool,
                  y_pool=y_pool, X_test=X_test, y_test=y_test, items=items, seed=seed, n_shadow=n_shadow,
                  n_bootstrap=n_bootstrap, indicator_bootstrap=indicator_bootstrap, attacks_on=bool(attacks_on),
                  members=members, evaluated=evaluated, labels=target_mask[evaluated].astype(np.int8),
                  target_mask=target_mask)


def _train(s: _Setup):
    """Phase 1 (module notes), one batched fit: the target (row 0) and the shadows. Returns (params, shadow
    masks, seconds)."""
    N = s.X_pool.shape[0]
    masks = shadow_masks(N, s.n_shadow, s.seed) if s.attacks_on else np.zeros((0, N), dtype=bool)
    weights = torch.as_tensor(np.vstack([s.target_mask[None], masks]), dtype=torch.float64, device=s.X_pool.device)
    start = time.perf_counter()
    params = s.arch.fit(s.X_pool, s.y_pool, weights)
    return params, masks, time.perf_counter() - start


def _members(s: _Setup):
    index = torch.as_tensor(s.members, device=s.X_pool.device)
    return s.X_pool[index], s.y_pool[index]


def _indicator(s: _Setup, target_module):
    """Phase 4 (module notes), the indicator from the target alone: (per-quantizer table, seconds, and the
    bootstrap intervals, their seconds, model fits and replicates used)."""
    from mislib import indicator

    X_members, y_members = _members(s)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", indicator.NotAtOptimumWarning)
        found = indicator.indicator_of_model(target_module, X_members, y_members, s.arch.loss, dict(s.items),
                                             ridge=s.spec.ridge, seed=s.seed)
    # the point estimates' cost; the uncertainty average is priced on its own (cost row indicator_averaged_seconds)
    seconds = time.perf_counter() - start - float(found["averaged_seconds"].sum())
    return (found.set_index("quantizer"), seconds,
            *_indicator_intervals(s.arch, X_members, y_members, s.items, s.indicator_bootstrap, s.seed))


@dataclass
class _WhiteBox:
    """What the white-box attack needs, shared by every quantizer (module notes)."""

    mean: np.ndarray
    std_shadow: np.ndarray
    std_sandwich: np.ndarray
    shifts: np.ndarray
    seconds: float


def _standard_errors(s: _Setup, target_module) -> tuple[np.ndarray, float]:
    """The target's sandwich standard errors, flat in named-parameter order (floored at 1e-12), and seconds."""
    from mislib import indicator

    start = time.perf_counter()
    X_members, y_members = _members(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", indicator.NotAtOptimumWarning)
        se = indicator.standard_errors(target_module, X_members, y_members, s.arch.loss, ridge=s.spec.ridge)
    flat = flat_batch({k: v.unsqueeze(0) for k, v in se.items()})[0].cpu().numpy()
    return np.maximum(flat, 1e-12), time.perf_counter() - start


def _whitebox_setup(s: _Setup, params: dict, target_module, se: np.ndarray) -> _WhiteBox:
    """Phase 3 (attacks), shared by every quantizer: shadow mean and spread of the weights, sandwich standard
    errors ``se`` (flat) with the finite-population correction, and each example's shift."""
    start = time.perf_counter()
    X_members, y_members = _members(s)
    N, n = s.X_pool.shape[0], int(s.members.size)
    shadow_flat = flat_batch({k: v[1:] for k, v in params.items()}).cpu().numpy()
    correction = math.sqrt((N - n) / max(1, N - 1))  # random halves of a fixed pool: finite-population
    std_sandwich = np.maximum(se * correction, 1e-12)
    evaluated = torch.as_tensor(s.evaluated, device=s.X_pool.device)
    shifts = insertion_influence(target_module, X_members, y_members, s.X_pool[evaluated], s.y_pool[evaluated],
                                 s.arch.loss, ridge=s.spec.ridge).cpu().numpy()
    return _WhiteBox(mean=shadow_flat.mean(axis=0), std_shadow=np.maximum(shadow_flat.std(axis=0, ddof=1), 1e-12),
                     std_sandwich=std_sandwich, shifts=shifts, seconds=time.perf_counter() - start)


@dataclass
class _Release:
    """One quantizer's release of every model of the batch: parameters, outputs on the pool and on the test
    data (computed once, shared by every model that plays the target), and what it cost."""

    params: dict
    outputs: torch.Tensor
    test_outputs: torch.Tensor
    seconds: float

    def reordered(self, order: torch.Tensor) -> "_Release":
        return _Release({k: v[order] for k, v in self.params.items()}, self.outputs[order],
                        self.test_outputs[order], self.seconds)


def _releases(s: _Setup, params: dict) -> dict:
    """Phase 2 (release), per quantizer: every model of the batch quantized tensor by tensor, and its outputs.
    Stochastic rounding draws from a generator seeded by the audit's seed and the quantizer's label."""
    out = {}
    for label, q in s.items:
        generator = torch.Generator(device=s.X_pool.device).manual_seed(_seed_for(s.seed, label))
        start = time.perf_counter()
        released = release(q, params, generator)
        outputs = s.arch.outputs(released, s.X_pool)
        seconds = time.perf_counter() - start
        out[label] = _Release(released, outputs, s.arch.outputs(released, s.X_test), seconds)
    return out


def _utility_rows(rows: _Rows, s: _Setup, label: str, q: Quantizer, params: dict, released: _Release):
    """Phase 5 (utility), per quantizer: test performance of the quantized target, and what the quantizer is."""
    for name, value in _performance(s.arch, released.test_outputs[0], s.y_test).items():
        rows.add(label, "test", name, value)
    target_release = flat_batch({k: v[:1] for k, v in released.params.items()})[0]
    main = max(params, key=lambda k: params[k][0].numel())
    rows.add(label, "quantizer", "bits_per_weight", q.bits_per_weight(params[main][0]))
    rows.add(label, "quantizer", "sparsity", float((target_release == 0).double().mean()))
    rows.add(label, "quantizer", "continuous_scale", float(q.scale_channel == "continuous"))
    rows.add(label, "quantizer", "deterministic", float(q.deterministic))


@dataclass
class _Unquantized:
    """The target before quantization, what the baselines compare each release with."""

    theta: np.ndarray          # flat parameters
    se: np.ndarray             # flat sandwich standard errors
    member_loss: float         # mean training loss on the members
    test_performance: float    # primary test metric (PRIMARY_METRIC)


def _primary_performance(s: _Setup, outputs: torch.Tensor) -> float:
    return _performance(s.arch, outputs, s.y_test)[PRIMARY_METRIC[s.spec.task]]


def _unquantized(s: _Setup, params: dict, se: np.ndarray) -> _Unquantized:
    target = {k: v[:1] for k, v in params.items()}
    _, losses = _statistics(s.arch, s.arch.outputs(target, s.X_pool), s.y_pool)
    return _Unquantized(theta=flat_batch(target)[0].cpu().numpy(), se=se,
                        member_loss=float(losses[0, s.members].mean()),
                        test_performance=_primary_performance(s, s.arch.outputs(target, s.X_test)[0]))


def _test_performance_se(s: _Setup, test_outputs: torch.Tensor, label: str) -> float:
    """Bootstrap standard error (``n_bootstrap`` resamples of the test examples) of the primary test metric."""
    if s.n_bootstrap < 2:
        return math.nan
    rng = np.random.default_rng([s.seed, 3, zlib.crc32(label.encode())])
    n = s.y_test.shape[0]
    values = []
    for _ in range(s.n_bootstrap):
        pick = torch.as_tensor(rng.integers(0, n, n), device=s.X_test.device)
        y = s.y_test[pick]
        if s.spec.task == "classification" and int(torch.unique(y).numel()) < 2:
            continue   # one class drawn: AUROC undefined
        values.append(_performance(s.arch, test_outputs[pick], y)[PRIMARY_METRIC[s.spec.task]])
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if values.size >= 2 else math.nan


def _baseline_rows(rows: _Rows, s: _Setup, label: str, released: _Release, reference: _Unquantized):
    """What a user can compute without shadow models (issue 16), per quantizer: the standardised distortion
    ``sum_k ((Q(theta)_k - theta_k) / s_k)^2``, the increase of the mean training loss, the drop of the primary
    test metric (needs held-out data) and that metric's bootstrap standard error."""
    theta_q = flat_batch({k: v[:1] for k, v in released.params.items()})[0].cpu().numpy()
    rows.add(label, "baseline", "standardised_distortion",
             float(np.sum(((theta_q - reference.theta) / reference.se) ** 2)))
    _, losses = _statistics(s.arch, released.outputs[:1], s.y_pool)
    rows.add(label, "baseline", "train_loss_increase", float(losses[0, s.members].mean()) - reference.member_loss)
    test_out = released.test_outputs[0]
    rows.add(label, "baseline", "test_performance_drop", reference.test_performance - _primary_performance(s, test_out))
    rows.add(label, "baseline", "test_performance_se", _test_performance_se(s, test_out, label))


def _indicator_rows(rows: _Rows, label: str, found: pd.DataFrame, intervals: dict, used: int):
    """Phase 4 (indicator), per quantizer: its measurements with their bootstrap intervals, and its cost."""
    row = found.loc[label]
    for name in INDICATOR_MEASUREMENTS:
        low, high = intervals.get(label, {}).get(name, (math.nan, math.nan))
        rows.add(label, "indicator", name, row[name], low, high)
    rows.add(label, "indicator", "bootstrap_replicates_used", used)
    rows.add(label, "cost", "indicator_seconds", row["seconds"])
    rows.add(label, "cost", "indicator_averaged_seconds", row["averaged_seconds"])
    rows.add(label, "cost", "indicator_model_fits", 1)


def _rmia_probabilities(arch: Architecture, outputs: torch.Tensor, y: torch.Tensor, stats: np.ndarray,
                        scale: float) -> np.ndarray:
    """RMIA's ``Pr(y|x)``, [B, N]: the probability of the true class (``expit`` of the logit confidence, which
    is ``log(p / (1 - p))``), or for regression ``attacks.gaussian_likelihood`` of the residual at ``scale``."""
    if arch.spec.task != "regression":
        return expit(stats)
    predictions = outputs.detach().reshape(outputs.shape[0], -1).cpu().numpy().astype(np.float64)
    targets = np.broadcast_to(y.detach().cpu().numpy().astype(np.float64), predictions.shape)
    return attacks.gaussian_likelihood(predictions, targets, scale)


def _rmia_scores(s: _Setup, test_outputs, outputs, stats: np.ndarray, shadow_in) -> tuple[dict, float]:
    """RMIA online and offline (module notes): scores and the offline ``a`` chosen on shadow 0 (rows 1 and 2 of
    the batch are a complementary pair)."""
    test_stats, _ = _statistics(s.arch, test_outputs, s.y_test)
    regression = s.arch.spec.task == "regression"
    scale = math.sqrt(max(float(np.mean(-stats)), 1e-300)) if regression else math.nan
    p_x = _rmia_probabilities(s.arch, outputs, s.y_pool, stats, scale)[:, s.evaluated]
    p_z = _rmia_probabilities(s.arch, test_outputs, s.y_test, test_stats, scale)
    offline_a = attacks.rmia_offline_a(p_x[1], p_x[3:], p_z[1], p_z[3:], shadow_in[0].astype(np.int8),
                                       out_mask=~shadow_in[2:])    # shadow 0 (row 1) without its partner
    scores = {"rmia_online": attacks.rmia_scores(p_x[0], p_x[1:], p_z[0], p_z[1:]),
              "rmia_offline": attacks.rmia_scores(p_x[0], p_x[1:], p_z[0], p_z[1:], out_mask=~shadow_in,
                                                  offline_a=offline_a)}
    return scores, offline_a


def _attack_scores(s: _Setup, q: Quantizer, params: dict, released: _Release, shadow_in,
                   whitebox: _WhiteBox) -> tuple[dict, float]:
    """Phase 3 (attacks), per quantizer: every attack's membership scores on the evaluated examples, and RMIA's
    offline ``a``."""
    stats, losses = _statistics(s.arch, released.outputs, s.y_pool)
    rmia, offline_a = _rmia_scores(s, released.test_outputs, released.outputs, stats, shadow_in)
    stats = stats[:, s.evaluated]
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
        **rmia,
        "loss_threshold": attacks.loss_threshold_scores(losses[0, s.evaluated]),
    }
    if q.deterministic:
        low, high = (flat_batch({k: v.unsqueeze(0) for k, v in bounds.items()})[0].cpu().numpy()
                     for bounds in _cell_bounds(q, params))
        w = whitebox
        for name, std in (("whitebox", w.std_shadow), ("whitebox_sandwich_std", w.std_sandwich)):
            scores[name] = (attacks.whitebox_gaussian_scores(low, high, w.mean, 0.5 * w.shifts, std)
                            - attacks.whitebox_gaussian_scores(low, high, w.mean, -0.5 * w.shifts, std))
    return scores, offline_a


def _attack_rows(rows: _Rows, s: _Setup, label: str, scores: dict):
    """Phase 3 (attacks), per quantizer: each attack's metrics with intervals, and the best attack per metric."""
    best: dict[str, tuple] = {}
    for name, score in scores.items():
        metrics = attacks.attack_metrics(score, s.labels, n_bootstrap=s.n_bootstrap, seed=s.seed)
        for metric in ATTACK_METRICS:
            value = metrics[metric]
            rows.add(label, name, metric, value, metrics[f"{metric}_low"], metrics[f"{metric}_high"])
            if metric not in best or value > best[metric][0]:
                best[metric] = (value, metrics[f"{metric}_low"], metrics[f"{metric}_high"])
    for metric, (value, low, high) in best.items():
        rows.add(label, "best_attack", metric, value, low, high)


def run_audit(X_pool, y_pool, X_test, y_test, quantizers: Mapping[str, Quantizer], *,
              model: str | ModelSpec = "logistic", task: str | None = None, n_shadow: int = 64, seed: int = 0,
              n_bootstrap: int = 200, indicator_bootstrap: int = 0, attacks_on: bool = True, device=None,
              model_label: str | None = None, n_targets: int = 1) -> pd.DataFrame:
    """Audit every quantizer's release of a model trained on a random half of ``(X_pool, y_pool)``.

    Parameters
    ----------
    X_pool, y_pool : tensors [N, d] and [N]
        The pool (class indices for classification, values for regression); the target trains on a random half.
    X_test, y_test : tensors
        Held-out data, for the utility rows only.
    quantizers : mapping or list
        ``{label: Quantizer}`` (or a list of quantizers, labelled by ``repr``).
    model : str or ModelSpec
        A kind (``"logistic"``, ``"linear"``, ``"mlp"``, default settings; ``task`` defaults to regression for
        ``"linear"``, else classification) or a ``ModelSpec`` (which carries its task).
    n_shadow : int
        Shadow models (even, >= 4).
    n_bootstrap, indicator_bootstrap : int
        Replicates for the attack metrics' intervals, and refits for the indicator's (0: no intervals).
    attacks_on : bool
        False skips shadows and attacks (indicator and utility only).
    n_targets : int
        How many of the trained models play the target in turn (the standard LiRA evaluation: many independent
        training sets per audit at no extra training): 1 = the target only; ``1 + k`` adds shadows 0..k-1, each
        audited exactly as the target with every other model as a reference (rows ``target`` = 0, 1, ...).
        Needs ``n_shadow >= 6`` when above 1.
    seed, device, model_label
        Same seed, same numbers; ``model_label`` is written in the ``model`` column (default: the kind).

    Returns
    -------
    pandas.DataFrame
        The tidy table of the module notes (columns ``COLUMNS``; ``sample_size`` is the audited model's number of
        members, ``N // 2`` for the target; ``target`` which model was audited). Methods: the
        attacks of ``ATTACKS``, ``best_attack`` (per metric, the strongest attack, with its interval),
        ``indicator``, ``baseline`` (``BASELINE_MEASUREMENTS``: what a user has without shadow models), ``test``,
        ``quantizer`` (bits per weight, sparsity, whether a continuous scale is
        published, whether it is deterministic) and ``cost``: per quantizer ``indicator_seconds`` (sandwich +
        this quantizer's margins) against ``shadow_audit_seconds`` (training of target and shadows, the
        white-box set-up, this quantizer's releases, statistics and attack scores), with
        ``indicator_model_fits`` (1) and ``shadow_model_fits`` (1 + n_shadow); per configuration (quantizer
        ``"(all)"``) the totals over every quantizer with shared work counted once
        (``indicator_total_seconds``, ``shadow_audit_total_seconds``), and the price of the intervals
        (``indicator_interval_seconds`` and ``indicator_interval_model_fits`` for the indicator's bootstrap,
        ``attack_interval_seconds`` for the attack metrics' bootstrap).

    Raises
    ------
    ValueError
        On inconsistent data, an odd or too small ``n_shadow``, a binary model on several classes, ...
    """
    s = _setup(X_pool, y_pool, X_test, y_test, quantizers, model=model, task=task, n_shadow=n_shadow, seed=seed,
               n_bootstrap=n_bootstrap, indicator_bootstrap=indicator_bootstrap, attacks_on=attacks_on,
               device=device)
    n_targets = check_int("n_targets", n_targets, minimum=1)
    if n_targets > 1 and not s.attacks_on:
        raise ValueError("n_targets > 1 uses the shadow models as targets: it needs attacks_on=True")
    if n_targets > 1 + s.n_shadow:
        raise ValueError(f"n_targets={n_targets} is more than the {1 + s.n_shadow} trained models (target and "
                         f"n_shadow={s.n_shadow} shadows)")
    if n_targets > 1 and s.n_shadow < 6:
        # a shadow playing the target leaves its partner unpaired: LiRA's per-example variance needs two complete
        # pairs of references left, so that every example is IN and OUT of at least two of them
        raise ValueError(f"n_targets > 1 needs n_shadow >= 6, got {s.n_shadow}")
    params, masks, fit_seconds = _train(s)
    releases = _releases(s, params)
    frames = []
    for target in range(n_targets):
        view, order, view_masks = _as_target(s, masks, target)
        ordered = {k: v[order] for k, v in params.items()}
        frames.append(_audit_target(view, ordered, view_masks, {label: r.reordered(order) for label, r in
                                                                 releases.items()}, fit_seconds,
                                    model_label or s.spec.kind, target))
    return pd.concat(frames, ignore_index=True)


def _as_target(s: _Setup, masks: np.ndarray, target: int):
    """Model ``target`` of the batch (0: the target, ``1 + k``: shadow ``k``) as the audited model: the setup
    with its members, the batch order that puts it first (and a complete pair of references next, which RMIA's
    offline calibration uses) and the shadow masks of the other models in that order."""
    B = 1 + masks.shape[0]
    order = np.arange(B)
    if target == 0:
        return s, torch.as_tensor(order, device=s.X_pool.device), masks
    everyone = np.vstack([s.target_mask[None], masks])
    shadow, partner = target - 1, (target - 1) ^ 1
    pairs = [1 + k for k in range(masks.shape[0]) if k not in (shadow, partner)]
    order = np.array([target, *pairs, 1 + partner, 0])
    mask = everyone[target]
    members = np.flatnonzero(mask)
    nonmembers = np.flatnonzero(~mask)
    size = min(members.size, nonmembers.size)      # balanced game: drop one example when the pool is odd
    rng = np.random.default_rng([s.seed, 4, target])
    members, nonmembers = (np.sort(rng.permutation(part)[:size]) for part in (members, nonmembers))
    evaluated = np.sort(np.concatenate([members, nonmembers]))
    view = _Setup(**{**s.__dict__, "members": np.flatnonzero(mask), "evaluated": evaluated,
                     "labels": mask[evaluated].astype(np.int8), "target_mask": mask})
    return view, torch.as_tensor(order, device=s.X_pool.device), everyone[order[1:]]


def _audit_target(s: _Setup, params: dict, masks: np.ndarray, releases: dict, fit_seconds: float, label: str,
                  target: int) -> pd.DataFrame:
    """Phases 3-5 for the model in row 0 of the batch (``_as_target``): indicator, baselines, attacks, utility,
    cost."""
    rows = _Rows(label, int(s.members.size), s.seed, target)
    target_module = s.arch.module(params, 0)
    found, indicator_total, intervals, boot_seconds, boot_fits, boot_used = _indicator(s, target_module)
    se, se_seconds = _standard_errors(s, target_module)
    reference = _unquantized(s, params, se)
    whitebox = _whitebox_setup(s, params, target_module, se) if s.attacks_on else None
    shadow_in = masks[:, s.evaluated]
    shadow_total = metrics_total = 0.0
    for name, q in s.items:
        released = releases[name]
        _utility_rows(rows, s, name, q, params, released)
        _indicator_rows(rows, name, found, intervals, boot_used)
        _baseline_rows(rows, s, name, released, reference)
        if not s.attacks_on:
            continue
        start = time.perf_counter()
        scores, offline_a = _attack_scores(s, q, params, released, shadow_in, whitebox)
        attack_seconds = time.perf_counter() - start
        _attack_rows(rows, s, name, scores)
        rows.add(name, "rmia_offline", "offline_a", offline_a)
        rows.add(name, "cost", "shadow_audit_seconds", fit_seconds + whitebox.seconds + se_seconds
                 + released.seconds + attack_seconds)
        rows.add(name, "cost", "shadow_model_fits", 1 + s.n_shadow)
        shadow_total += released.seconds + attack_seconds
        metrics_total += time.perf_counter() - start - attack_seconds
    # Phase 5, cost: totals for the whole configuration (every quantizer), shared work counted once.
    rows.add("(all)", "cost", "training_seconds", fit_seconds)
    rows.add("(all)", "cost", "indicator_total_seconds", indicator_total)
    rows.add("(all)", "cost", "indicator_interval_seconds", boot_seconds)
    rows.add("(all)", "cost", "indicator_interval_model_fits", boot_fits)
    if s.attacks_on:
        rows.add("(all)", "cost", "shadow_audit_total_seconds", fit_seconds + whitebox.seconds + se_seconds
                 + shadow_total)
        rows.add("(all)", "cost", "attack_interval_seconds", metrics_total)
    return rows.frame()


def audit(*args, **kwargs) -> pd.DataFrame:
    """Deprecated alias of ``run_audit`` (the module and the function shared a name); removed in mislib 0.3."""
    warnings.warn("mislib.evaluation.audit.audit is deprecated; use run_audit", DeprecationWarning, stacklevel=2)
    return run_audit(*args, **kwargs)

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
            result = indicator.indicator_from_estimates(theta, se, q, n)
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
