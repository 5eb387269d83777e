"""Phase 4 of an audit (``mislib.evaluation.audit``): the indicator ``r_Q^n`` of every quantizer from the
audited model alone, with its bootstrap intervals, and its rows.

The model's sandwich standard errors are computed once (``target_standard_errors``) and shared: the indicator
uses them, and so do the white-box attack (``whitebox_sandwich_std``) and the standardised-distortion baseline.
Their seconds are therefore counted in each cost that uses them: in ``indicator_seconds`` and
``indicator_total_seconds`` as in ``shadow_audit_seconds`` and ``shadow_audit_total_seconds``."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import torch

from mislib import indicator
from mislib.evaluation.architectures import Architecture, flat_batch
from mislib.evaluation.audit_setup import AuditRows, AuditSetup

INDICATOR_MEASUREMENTS = ("ranking_score", "ranking_score_averaged", "expected_exits_with_scale", "delta_estimate",
                          "r_min", "r_soft", "r_min_with_scale", "r_soft_with_scale", "p_flip_with_scale",
                          "log_p_flip_with_scale", "delta_bound_with_scale", "weights_at_risk", "scale_r", "z_min")


def target_standard_errors(s: AuditSetup, target_module) -> tuple[dict, np.ndarray, float, torch.Tensor | None]:
    """The audited model's sandwich standard errors (``indicator.standard_errors`` on its members, the audit's
    seed for a sketched solve): as a dict of named parameters (for the indicator), flat in named-parameter
    order floored at 1e-12 (for the white-box attack and the distortion baseline), their seconds, and for a
    head on the matrix-free path (``tanh_mlp.takes``) the members' solves ``H^-1 g_i`` that the sandwich needed
    anyway, which the white-box attack reuses (else ``None``). The same standard errors either way."""
    from mislib import tanh_mlp

    start = time.perf_counter()
    X_members, y_members = s.member_data()
    solves = None
    if tanh_mlp.takes(target_module, s.arch.loss, None, s.spec.ridge):
        params = {name: value.detach() for name, value in target_module.named_parameters()}
        se, _, details = tanh_mlp.standard_errors(params, X_members, y_members, task=tanh_mlp.task_of(target_module),
                                                  ridge=s.spec.ridge, return_solves=True)
        solves = details["solves"]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", indicator.NotAtOptimumWarning)
            se = indicator.standard_errors(target_module, X_members, y_members, s.arch.loss, ridge=s.spec.ridge,
                                           seed=s.seed)
    flat = flat_batch({k: v.unsqueeze(0) for k, v in se.items()})[0].cpu().numpy()
    return se, np.maximum(flat, indicator.ZERO_STDERR_FLOOR), time.perf_counter() - start, solves


def indicator_phase(s: AuditSetup, target_module, stderr: dict):
    """Phase 4, the indicator from the audited model alone and its standard errors ``stderr``
    (``target_standard_errors``): (per-quantizer table, seconds, and the bootstrap intervals, their seconds,
    model fits and replicates used). The seconds exclude the standard errors' (the caller adds them)."""
    X_members, y_members = s.member_data()
    start = time.perf_counter()
    found = indicator.indicator_of_model(target_module, X_members, y_members, s.arch.loss, dict(s.items),
                                         ridge=s.spec.ridge, seed=s.seed, stderr=stderr)
    # the point estimates' cost; the uncertainty average is priced on its own (cost row indicator_averaged_seconds)
    seconds = time.perf_counter() - start - float(found["averaged_seconds"].sum())
    return (found.set_index("quantizer"), seconds,
            *_indicator_intervals(s.arch, X_members, y_members, s.items, s.indicator_bootstrap, s.seed))


def _indicator_intervals(arch: Architecture, X, y, items, n_replicates: int, seed: int,
                         confidence: float = 0.95):
    """Percentile bootstrap intervals of the indicator: the member set resampled ``n_replicates`` times, each
    replicate retrained from scratch by the same batched trainer as the shadows (so non-convex models get the
    same treatment as the target), then standard errors and indicator recomputed. Replicates whose Hessian is
    not positive definite are dropped (counted in the returned ``used``).
    Returns ({label: {measurement: (low, high)}}, seconds, model fits, replicates used)."""
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


def indicator_rows(rows: AuditRows, label: str, found: pd.DataFrame, intervals: dict, used: int,
                   se_seconds: float):
    """Phase 4 (indicator), per quantizer: its measurements with their bootstrap intervals, and its cost
    (``indicator_seconds``: the standard errors' ``se_seconds`` and this quantizer's plug-in indicator)."""
    row = found.loc[label]
    for name in INDICATOR_MEASUREMENTS:
        low, high = intervals.get(label, {}).get(name, (math.nan, math.nan))
        rows.add(label, "indicator", name, row[name], low, high)
    rows.add(label, "indicator", "bootstrap_replicates_used", used)
    rows.add(label, "cost", "indicator_seconds", se_seconds + row["seconds"])
    rows.add(label, "cost", "indicator_averaged_seconds", row["averaged_seconds"])
    rows.add(label, "cost", "indicator_model_fits", 1)
