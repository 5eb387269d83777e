"""The indicator ``r_Q^n`` (THEORY.md §3): how private is ``Q(theta_hat)``, from one trained model.

Three steps, each its own function:

1. ``standard_errors(model, X, y, loss, ...)`` (``mislib.variance``): the standard error of every parameter,
   ``sqrt(Sigma_kk / n)`` with ``Sigma = H^-1 V H^-1`` (sandwich, on ``mislib.objective.Objective``) or from
   bootstrap refits.
2. ``indicator_from_estimates(theta, stderr, quantizer, n)``: for every coordinate the cell of ``Q`` that holds it
   (grid as ``Q`` computes it at ``theta``), both thresholds in standard errors, and from them the exit
   probabilities (``mislib.crossing``), the ranking score, the paper's exponent ``r_min`` and the scale channel.
3. ``indicator_of_model(model, X, y, loss, quantizers, ...)``: both steps for several quantizers, one row each,
   with bootstrap confidence intervals over the data.

``estimate`` and ``estimate_model`` are the deprecated names of steps 2 and 3 (mislib 0.2).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mislib.crossing import (SCALE_CHANNELS, ScaleChannel, averaged_release_log_exits, checked_pairs,  # noqa: F401
                             log_expected_exits, probability_more_private, ranking_score_from,
                             release_log_exits)
from mislib.infra.checks import check_float, check_int
from mislib.modules import unflatten_params
from mislib.objective import (EXACT_MAX_PARAMETERS, LOSS_NAMES, NotAtOptimumWarning, Objective,  # noqa: F401
                              block_cg, cholesky_factor, data_tensor, resolve_loss)
from mislib.quantizers import Quantizer, labelled
from mislib.variance import (METHODS, StandardErrors, bootstrap_counts, refit, sandwich_variance,  # noqa: F401
                             standard_errors, structured_or_sandwich_variance)

# The objective was indicator._Problem in mislib 0.1 (kept for callers of that private name).
_Problem = Objective


# ------------------------------------------------------------------------------------------------ indicator

@dataclass
class IndicatorResult:
    """The indicator for one quantizer at one model.

    Exit probabilities (THEORY.md §3.4), per coordinate ``q_k = Phi_bar(z_k^lo) + Phi_bar(z_k^hi)`` (both
    thresholds of its cell; ``q_k = 1`` for a coordinate released exactly) and per stored scale likewise:

    - ``ranking_score`` (>= 0, higher = more private; **the score to rank quantizers by**):
      ``(log d - log min(E, d)) / n`` with ``E = expected_exits_with_scale = sum q`` over weights and stored
      values and ``d = n_coordinates``. 0 for the unquantized release (every ``q = 1``), never below it for a
      deterministic quantizer (data processing), and it separates float-scale releases by their weights.
    - ``ranking_score_averaged``, ``expected_exits_averaged``, ``p_exit_averaged``: the same with each ``q``
      averaged over ``theta* ~ N(theta_hat, stderr^2)`` (NaN unless computed: ``average=True``).
    - ``p_exit = 1 - prod (1 - q)`` over the weights, ``p_exit_with_scale`` over everything published, and
      ``delta_estimate = min(1, 2 p_exit_with_scale)``: an **estimate** of the bound ``Delta_n <= 2 P(Q(theta_hat)
      != Q(theta*))``, which is a bound only at the true optimum and standard errors.
    - ``r_min = min_k z_k^2 / (2n)`` (``z_k`` the nearer threshold), ``r_min_with_scale = min(r_min, scale_r)``:
      the paper's exponent, the moderate-deviation rate of size-adaptive grids (for a fixed grid the
      large-deviation rate depends on the whole law of the loss).
    - Legacy (mislib 0.1, nearer threshold only, can be negative: not a ranking score): ``r_soft``,
      ``r_soft_with_scale``, ``weights_at_risk``. ``p_flip*`` and ``delta_bound*`` are the old names of
      ``p_exit*`` and ``delta_estimate``.
    """

    quantizer: str
    n: float
    n_coordinates: int
    deterministic: bool
    scale_channel: str
    ranking_score: float
    expected_exits: float
    expected_exits_with_scale: float
    p_exit: float
    log_p_exit: float
    p_exit_with_scale: float
    log_p_exit_with_scale: float
    delta_estimate: float
    r_min: float
    z_min: float
    argmin: int                   # flat index of the coordinate with the smallest z
    scale_r: float
    r_min_with_scale: float
    r_soft: float
    r_soft_with_scale: float
    weights_at_risk: float
    ranking_score_averaged: float = math.nan
    expected_exits_averaged: float = math.nan
    p_exit_averaged: float = math.nan
    z: torch.Tensor | dict = field(repr=False, default=None)
    margins: torch.Tensor | dict = field(repr=False, default=None)
    exit_probabilities: torch.Tensor = field(repr=False, default=None)   # [d + stored values], weights first
    scale_z: torch.Tensor | None = field(repr=False, default=None)
    note: str = ""
    confidence_intervals: dict = field(default_factory=dict)

    SCALARS = ("ranking_score", "ranking_score_averaged", "expected_exits", "expected_exits_with_scale",
               "expected_exits_averaged", "p_exit", "log_p_exit", "p_exit_with_scale", "log_p_exit_with_scale",
               "p_exit_averaged", "delta_estimate",
               "r_min", "r_min_with_scale", "z_min", "scale_r", "r_soft", "r_soft_with_scale", "weights_at_risk")
    LEGACY = {"p_flip": "p_exit", "p_flip_with_scale": "p_exit_with_scale", "log_p_flip": "log_p_exit",
              "log_p_flip_with_scale": "log_p_exit_with_scale", "delta_bound": "delta_estimate",
              "delta_bound_with_scale": "delta_estimate"}

    def __getattr__(self, name):
        # the mislib 0.1 names (p_flip, delta_bound, ...) read the fields that replaced them
        if name in IndicatorResult.LEGACY:
            return getattr(self, IndicatorResult.LEGACY[name])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def as_row(self) -> dict:
        """The scalar fields (and confidence intervals as ``<name>_low`` / ``<name>_high``) for a table; the
        legacy column names (``p_flip``, ``delta_bound``, ...) are kept beside the new ones."""
        row = {"quantizer": self.quantizer, "sample_size": self.n, "n_coordinates": self.n_coordinates,
               "scale_channel": self.scale_channel, "deterministic": self.deterministic}
        row.update({name: getattr(self, name) for name in self.SCALARS})
        row.update({old: getattr(self, new) for old, new in self.LEGACY.items()})
        for name, (low, high) in self.confidence_intervals.items():
            row[f"{name}_low"], row[f"{name}_high"] = low, high
        row["note"] = self.note
        return row


def _log_p_any(log_q: torch.Tensor) -> float:
    """log(1 - prod(1 - q)) from log q (independent events), accurate when every q is tiny or one is 1."""
    log_q = log_q.to(torch.float64).reshape(-1)
    lse = float(torch.logsumexp(log_q, 0))
    if lse < -30:
        return lse                       # 1 - prod(1 - q) = sum q (1 + O(sum q))
    if bool((log_q >= 0).any()):
        return 0.0
    total = float(torch.log1p(-log_q.exp()).sum())
    return math.log(-math.expm1(total)) if total < 0 else -math.inf


def _nearest_summaries(z: torch.Tensor, n: float) -> tuple[float, float, float]:
    """(r_min, legacy r_soft, legacy weights at risk) from nearer-threshold standardised margins."""
    z = z.to(torch.float64).reshape(-1)
    lse = float(torch.logsumexp(torch.special.log_ndtr(-z), 0))
    return float(z.min() ** 2) / (2 * n), -lse / n, math.exp(lse)


def _quantizer_label(quantizer: Quantizer) -> str:
    return repr(quantizer)


def indicator_from_estimates(theta, stderr, quantizer: Quantizer, n, *, average: bool = False,
                             n_nodes: int = 64, seed: int = 0) -> IndicatorResult:
    """The indicator of ``quantizer`` at parameters ``theta`` whose standard errors are ``stderr``.

    Parameters
    ----------
    theta, stderr : torch.Tensor or dict of torch.Tensor
        Same shapes (or dicts with the same keys: named parameters, each quantized on its own as a per-tensor
        quantizer treats a model's layers; the statistics pool all coordinates). ``stderr`` already includes the
        ``1/sqrt(n)`` (as ``standard_errors`` returns it), so ``z_k = margin_k / stderr_k``.
    quantizer : mislib.quantizers.Quantizer
    n : int or float
        The training-set size (>= 2), for the per-sample rates.
    average : bool
        Also compute the uncertainty-averaged estimator (``*_averaged`` fields): each exit probability
        averaged over ``theta* ~ N(theta, stderr^2)`` with ``n_nodes`` quadrature nodes per coordinate.

    Returns
    -------
    IndicatorResult

    Raises
    ------
    TypeError, ValueError
        On a non-quantizer, mismatched shapes, non-positive standard errors or ``n < 2``.

    Examples
    --------
    >>> import torch
    >>> from mislib.quantizers import get
    >>> theta, se = torch.tensor([0.3, -0.2]), torch.tensor([0.05, 0.05])
    >>> res = indicator_from_estimates(theta, se, get("fixed_grid", step=1.0), n=100)
    >>> f"{res.expected_exits:.4g}"    # Phi_bar(4) + Phi_bar(16) + Phi_bar(6) + Phi_bar(14): the nearer faces win
    '3.167e-05'
    >>> indicator_from_estimates(theta, se, get("identity"), n=100).ranking_score
    0.0
    """
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer must be a mislib.quantizers.Quantizer, got {type(quantizer).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating)):
        raise TypeError(f"n must be a number (the training-set size), got {type(n).__name__}")
    n = check_float("n", float(n), low=2.0)
    pairs = checked_pairs(theta, stderr)
    single = isinstance(theta, torch.Tensor)
    zs, margins, scale_zs, notes, channels = {}, {}, [], [], {}
    for key, (t, s) in pairs.items():
        m = quantizer.margins(t)
        if bool(torch.isnan(m).any()):
            raise ValueError(f"{quantizer!r} returned NaN margins")
        margins[key] = m
        zs[key] = m.to(torch.float64) / s.to(torch.float64)
        channels[key] = ScaleChannel(quantizer, t, s)
        sz = channels[key].z(t)
        if sz is not None:
            scale_zs.append(sz.reshape(-1))
        if channels[key].note and channels[key].note not in notes:
            notes.append(channels[key].note)
    stderrs = {key: s for key, (_, s) in pairs.items()}
    log_w, log_s = release_log_exits(quantizer, {k: t for k, (t, _) in pairs.items()}, stderrs, channels)
    d = int(log_w.numel())
    log_e_with = log_expected_exits(log_w, log_s)
    log_all = log_w if log_s is None else torch.cat([log_w, log_s])
    log_p_with = _log_p_any(log_all)
    z_flat = torch.cat([v.reshape(-1) for v in zs.values()])
    r_min, r_soft, at_risk = _nearest_summaries(z_flat, n)
    if scale_zs:
        scale_z = torch.cat(scale_zs)
        scale_r = float(scale_z.min() ** 2) / (2 * n)
        _, r_soft_with, _ = _nearest_summaries(torch.cat([z_flat, scale_z]), n)
    else:
        scale_z, scale_r, r_soft_with = None, math.nan, r_soft
    if not quantizer.deterministic:
        notes.append("randomised quantizer: no deterministic cells, every coordinate counts as changed (score 0), "
                     "although its Delta_n decays like 1/n (THEORY.md §2)")
    result = IndicatorResult(
        quantizer=_quantizer_label(quantizer), n=n, n_coordinates=d, deterministic=bool(quantizer.deterministic),
        scale_channel=quantizer.scale_channel, ranking_score=ranking_score_from(log_e_with, d, n),
        expected_exits=math.exp(log_expected_exits(log_w, None)), expected_exits_with_scale=math.exp(log_e_with),
        p_exit=math.exp(_log_p_any(log_w)), log_p_exit=_log_p_any(log_w),
        p_exit_with_scale=math.exp(log_p_with),
        log_p_exit_with_scale=log_p_with, delta_estimate=min(1.0, 2 * math.exp(log_p_with)),
        r_min=r_min, z_min=float(z_flat.min()), argmin=int(z_flat.argmin()), scale_r=scale_r,
        r_min_with_scale=min(r_min, scale_r) if scale_zs else r_min, r_soft=r_soft, r_soft_with_scale=r_soft_with,
        weights_at_risk=at_risk, z=zs[""] if single else zs, margins=margins[""] if single else margins,
        exit_probabilities=log_all.exp(), scale_z=scale_z, note="; ".join(notes))
    if average:
        add_uncertainty_average(result, quantizer, {k: t for k, (t, _) in pairs.items()}, stderrs,
                                n_nodes=n_nodes, seed=seed)
    return result


def add_uncertainty_average(result: IndicatorResult, quantizer: Quantizer, theta, stderr, *, n_nodes: int = 64,
                            seed: int = 0) -> IndicatorResult:
    """Fill the ``*_averaged`` fields of ``result`` (computed for ``quantizer`` at ``theta``, ``stderr``): the
    exit probabilities averaged over ``theta* ~ N(theta, stderr^2)`` (``mislib.crossing``)."""
    avg_w, avg_s = averaged_release_log_exits(quantizer, theta, stderr, n_nodes=n_nodes, seed=seed)
    log_e_avg = log_expected_exits(avg_w, avg_s)
    result.ranking_score_averaged = ranking_score_from(log_e_avg, result.n_coordinates, result.n)
    result.expected_exits_averaged = math.exp(log_e_avg)
    result.p_exit_averaged = math.exp(_log_p_any(avg_w if avg_s is None else torch.cat([avg_w, avg_s])))
    return result


def estimate(theta, stderr, quantizer: Quantizer, n) -> IndicatorResult:
    """Deprecated name of ``indicator_from_estimates`` (mislib 0.1; removed in 0.3)."""
    warnings.warn("mislib.indicator.estimate is deprecated: use indicator_from_estimates", DeprecationWarning,
                  stacklevel=2)
    return indicator_from_estimates(theta, stderr, quantizer, n)


# -------------------------------------------------------------------------------------- model-level driver

ZERO_STDERR_FLOOR = 1e-12     # for weights the data cannot move (indicator_of_model, the audit's white-box attack)
BOOTSTRAP_MEASUREMENTS = ("ranking_score", "r_min", "r_min_with_scale", "r_soft", "r_soft_with_scale")


def indicator_of_model(model: nn.Module, X, y, loss=None, quantizers=(), *, ridge: float = 0.0,
                       n_bootstrap_ci: int = 0, confidence: float = 0.95, seed: int = 0, hessian: str = "auto",
                       penalize=None, cg_sketch: int | None = 256, chunk_size: int = 2 ** 22,
                       average: bool = True, n_nodes: int = 64, stderr: dict | None = None,
                       verbose: bool = False):
    """Indicator of each quantizer at a trained module, one row per quantizer (a pandas DataFrame).

    Parameters
    ----------
    model : torch.nn.Module
        Trained to the minimum of its objective (``ridge`` included).
    X, y : torch.Tensor
        Its training data.
    loss : str, callable or None
        As in ``mislib.objective.Objective``.
    quantizers : dict or list
        ``{label: quantizer}`` or a list of quantizers (labelled by ``repr``).
    ridge, penalize, hessian, cg_sketch, chunk_size
        As in ``standard_errors`` (sandwich).
    n_bootstrap_ci : int
        0, or ``B >= 2`` resamples of the data: each refit warm-started, standard errors and indicator
        recomputed; percentile intervals at level ``confidence`` are added (``<name>_low``, ``<name>_high``) for
        ``BOOTSTRAP_MEASUREMENTS``. A replicate whose Hessian is not positive definite (a non-convex model) is
        dropped and counted (column ``bootstrap_dropped``).
    average : bool
        Also compute the uncertainty-averaged estimator (``ranking_score_averaged``; ``n_nodes`` per coordinate).
    stderr : dict or None
        The model's standard errors if already computed (as ``standard_errors`` returns them: a dict shaped like
        ``model.named_parameters()``): used as they are, not recomputed (``seconds`` then excludes them, and
        the column ``standard_errors`` reads ``"given"``). Standard errors of exactly 0, given or computed (a
        fingerprint bit no training example has: its weights stay at 0), are floored at ``ZERO_STDERR_FLOOR``.
    verbose : bool
        Print the table (quantizer, ranking score, averaged score, r_min, delta estimate).

    Returns
    -------
    pandas.DataFrame
        One row per quantizer: ``IndicatorResult.as_row()`` plus the cost (``seconds`` for standard errors and
        the plug-in indicator, ``averaged_seconds`` for the uncertainty average, ``bootstrap_seconds``,
        ``model_fits``).

    Examples
    --------
    >>> import torch
    >>> from mislib.modules import LogisticRegression
    >>> from mislib.quantizers import get
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(200, 3, generator=g, dtype=torch.float64)
    >>> y = (torch.rand(200, generator=g, dtype=torch.float64) < torch.sigmoid(X[:, 0])).double()
    >>> model = LogisticRegression(3, fit_intercept=False)
    >>> opt = torch.optim.LBFGS(model.parameters(), max_iter=200, tolerance_grad=1e-12)
    >>> def closure():
    ...     opt.zero_grad(); f = model(X)
    ...     l = (torch.nn.functional.softplus(f) - y * f).mean() + 0.5e-2 * (model.linear.weight ** 2).sum()
    ...     l.backward(); return l
    >>> _ = opt.step(closure)
    >>> table = indicator_of_model(model, X, y, "logistic", {"none": get("identity"),
    ...                            "grid": get("fixed_grid", step=0.5)}, ridge=1e-2)
    >>> float(table.set_index("quantizer")["ranking_score"]["none"])
    0.0
    >>> bool(table.set_index("quantizer")["ranking_score"]["grid"] > 0)
    True
    """
    import pandas as pd

    items = labelled(quantizers)
    n_bootstrap_ci = check_int("n_bootstrap_ci", n_bootstrap_ci, minimum=0)
    if n_bootstrap_ci == 1:
        raise ValueError("n_bootstrap_ci must be 0 (no intervals) or >= 2")
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_int("seed", seed, minimum=0)
    start = time.perf_counter()
    problem = Objective(model, X, y, loss, ridge, None, penalize, chunk_size)
    theta = unflatten_params(problem.theta, problem.like)
    if stderr is None:
        var, mode, _ = structured_or_sandwich_variance(problem, hessian, (model, loss, ridge, None, penalize),
                                                       1e-10, 500, cg_sketch, seed)
        stderr = unflatten_params(var.clamp_min(0).sqrt(), problem.like)
        mode = f"sandwich ({mode})"
    else:
        mode = "given"      # checked against theta by indicator_from_estimates
    # A standard error of exactly 0: the coordinate's feature is absent from every training example, so the
    # ridge holds its weight at 0 and the sandwich sees no variation; floored, the weight never leaves its cell.
    stderr = {name: torch.as_tensor(value).clamp_min(ZERO_STDERR_FLOOR) for name, value in stderr.items()}
    se_time = time.perf_counter() - start
    results, seconds, averaged_seconds = {}, {}, {}
    for label, q in items:
        t0 = time.perf_counter()
        results[label] = indicator_from_estimates(theta, stderr, q, problem.n)
        results[label].quantizer = label
        seconds[label] = se_time + time.perf_counter() - t0
        t0 = time.perf_counter()
        if average:
            add_uncertainty_average(results[label], q, theta, stderr, n_nodes=n_nodes, seed=seed)
        averaged_seconds[label] = time.perf_counter() - t0
    boot_time, dropped = 0.0, 0
    if n_bootstrap_ci:
        t0 = time.perf_counter()
        draws, dropped = _bootstrap_draws(problem, items, n_bootstrap_ci, seed, hessian, cg_sketch,
                                          (loss, ridge, penalize, chunk_size))
        alpha = (1 - confidence) / 2
        for label, _ in items:
            for name, values in draws[label].items():
                values = np.asarray(values, dtype=float)
                results[label].confidence_intervals[name] = (
                    (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))) if values.size
                    else (math.nan, math.nan))
        boot_time = time.perf_counter() - t0
    rows = []
    for label, _ in items:
        row = results[label].as_row()
        row.update({"standard_errors": mode, "seconds": seconds[label],
                    "averaged_seconds": averaged_seconds[label],
                    "bootstrap_seconds": boot_time, "model_fits": n_bootstrap_ci,
                    "n_bootstrap_ci": n_bootstrap_ci, "bootstrap_dropped": dropped})
        rows.append(row)
    table = pd.DataFrame(rows)
    if verbose:
        print(table[["quantizer", "ranking_score", "ranking_score_averaged", "r_min_with_scale",
                     "delta_estimate"]].to_string(index=False))
    return table


def _bootstrap_draws(problem, items, n_replicates, seed, hessian, cg_sketch, settings):
    """{label: {measurement: [values]}} over bootstrap refits, and how many replicates were dropped because
    their Hessian is not positive definite."""
    loss, ridge, penalize, chunk_size = settings
    counts = bootstrap_counts(problem.w, n_replicates, seed, n_draws=problem.n)
    replicates = refit(problem, counts, hessian=hessian)
    draws = {label: {name: [] for name in BOOTSTRAP_MEASUREMENTS} for label, _ in items}
    dropped = 0
    for b in range(n_replicates):
        problem_b = Objective(problem.model, problem.X, problem.y, loss, ridge, counts[b], penalize, chunk_size)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotAtOptimumWarning)
                var_b, _, _ = sandwich_variance(problem_b, replicates[b], hessian, 1e-10, 500, cg_sketch,
                                                seed + b + 1)
        except ValueError as exc:
            if "positive definite" not in str(exc) and "non-positive curvature" not in str(exc):
                raise
            dropped += 1
            continue
        theta_b = unflatten_params(replicates[b], problem.like)
        se_b = unflatten_params(var_b.clamp_min(1e-300).sqrt(), problem.like)
        for label, q in items:
            res = indicator_from_estimates(theta_b, se_b, q, problem.n)
            for name in draws[label]:
                draws[label][name].append(getattr(res, name))
    if dropped:
        warnings.warn(f"indicator bootstrap: {dropped} of {n_replicates} replicates dropped (Hessian not positive "
                      "definite at the refit)", RuntimeWarning, stacklevel=3)
    return draws, dropped


def estimate_model(*args, **kwargs):
    """Deprecated name of ``indicator_of_model`` (mislib 0.1; removed in 0.3)."""
    warnings.warn("mislib.indicator.estimate_model is deprecated: use indicator_of_model", DeprecationWarning,
                  stacklevel=2)
    return indicator_of_model(*args, **kwargs)


# ------------------------------------------------------------------------------------------------ influence

def centred_influence_shifts(model: nn.Module, X_targets, y_targets, X_reference, y_reference, loss=None, *,
                             n: int, ridge: float = 0.0, penalize=None, chunk_size: int = 2 ** 22) -> torch.Tensor:
    """First-order effect of putting each target in a training set of size ``n``: [m, p].

    Replacing one of ``n`` training points by ``z`` moves the minimiser by about
    ``-(1/n) H^-1 (grad loss(z) - E grad loss)`` (the gradient *centred* at its mean over ``P``), with ``H`` the
    Hessian of the objective (ridge included); both are evaluated at the module's parameters on the reference
    sample (draws from ``P``, e.g. public data). This is the mean shift that the white-box Gaussian attack
    tests for. (``mislib.evaluation.audit``'s influence adds a point without centring.)
    """
    n = check_int("n", n, minimum=2)
    reference = Objective(model, X_reference, y_reference, loss, ridge, None, penalize, chunk_size)
    L = cholesky_factor(reference.hessian(reference.theta), "influence_shifts")
    mean_gradient = reference.w @ reference.per_sample_grads(reference.theta)
    X_targets = data_tensor("X_targets", X_targets, reference.theta.dtype, reference.theta.device)
    if not isinstance(y_targets, torch.Tensor) or y_targets.shape[0] != X_targets.shape[0]:
        raise ValueError("y_targets must be a tensor with one row per row of X_targets")
    y_targets = y_targets.to(device=reference.theta.device,
                             dtype=reference.theta.dtype if y_targets.is_floating_point() else y_targets.dtype)
    G = reference.per_sample_grads(reference.theta, X_targets, y_targets) - mean_gradient
    return -torch.cholesky_solve(G.T, L).T / n


def influence_shifts(*args, **kwargs):
    """Deprecated name of ``centred_influence_shifts`` (mislib 0.1; removed in 0.3)."""
    warnings.warn("mislib.indicator.influence_shifts is deprecated: use centred_influence_shifts",
                  DeprecationWarning, stacklevel=2)
    return centred_influence_shifts(*args, **kwargs)
