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

The phases live in modules of their own, re-exported here: ``audit_setup`` (validated inputs, membership
split, shadow halves, the tidy rows), ``audit_attacks`` (phases 2-3: releases, statistics, attacks and the
white-box influence), ``audit_indicator`` (phase 4, and the target's sandwich standard errors, computed once
and shared with the white-box attack and the distortion baseline) and ``audit_utility`` (phase 5: utility and
baselines). This module trains, lets each model play the target and prices the whole.

How an indicator and a reference (ground truth or the best attack) order the quantizers is
``mislib.evaluation.agreement``; quantizers named by ``(label, name, params)`` triples are
``mislib.evaluation.quantizer_specs``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from mislib.evaluation.architectures import (MODELS, TASKS, Architecture, ModelSpec,  # noqa: F401  (re-exported)
                                            flat_batch, polish_mlp)
from mislib.evaluation.audit_attacks import (ATTACK_METRICS, ATTACKS, attack_rows,  # noqa: F401  (re-exported)
                                             attack_scores, insertion_influence, release, releases, whitebox_setup)
from mislib.evaluation.audit_indicator import (INDICATOR_MEASUREMENTS, indicator_phase,  # noqa: F401  (re-exported)
                                               indicator_rows, target_standard_errors)
from mislib.evaluation.audit_setup import (COLUMNS, AuditRows, AuditSetup, audit_setup,  # noqa: F401  (re-exported)
                                           shadow_masks)
from mislib.evaluation.audit_utility import (BASELINE_MEASUREMENTS, PRIMARY_METRIC,  # noqa: F401  (re-exported)
                                             baseline_rows, unquantized, utility_rows)
from mislib.evaluation.quantizer_specs import build_quantizers  # noqa: F401  (re-exported: audit.build_quantizers)
from mislib.infra.checks import check_int
from mislib.quantizers import Quantizer


def influence_shifts(*args, **kwargs) -> torch.Tensor:
    """Deprecated alias of ``insertion_influence`` (``mislib.indicator`` has its own, different
    ``influence_shifts``); removed in mislib 0.3."""
    warnings.warn("mislib.evaluation.audit.influence_shifts is deprecated; use insertion_influence",
                  DeprecationWarning, stacklevel=2)
    return insertion_influence(*args, **kwargs)


def _train(s: AuditSetup):
    """Phase 1 (module notes), one batched fit: the target (row 0) and the shadows. Returns (params, shadow
    masks, seconds)."""
    N = s.X_pool.shape[0]
    masks = shadow_masks(N, s.n_shadow, s.seed) if s.attacks_on else np.zeros((0, N), dtype=bool)
    weights = torch.as_tensor(np.vstack([s.target_mask[None], masks]), dtype=torch.float64, device=s.X_pool.device)
    start = time.perf_counter()
    params = s.arch.fit(s.X_pool, s.y_pool, weights)
    return params, masks, time.perf_counter() - start


def _train_cached(s: AuditSetup, path):
    """``_train`` through a cache file (``run_audit(trained=...)``); the shadow masks are recomputed (seeded)."""
    from mislib.infra.tables import cached_tensors

    def compute():
        params, _, seconds = _train(s)
        return {"params": {k: v.cpu() for k, v in params.items()}, "seconds": seconds}

    stored = cached_tensors(path, compute)
    N = s.X_pool.shape[0]
    masks = shadow_masks(N, s.n_shadow, s.seed) if s.attacks_on else np.zeros((0, N), dtype=bool)
    return ({k: v.to(s.X_pool.device) for k, v in stored["params"].items()}, masks, float(stored["seconds"]))


def run_audit(X_pool, y_pool, X_test, y_test, quantizers: Mapping[str, Quantizer], *,
              model: str | ModelSpec = "logistic", task: str | None = None, n_shadow: int = 64, seed: int = 0,
              n_bootstrap: int = 200, indicator_bootstrap: int = 0, attacks_on: bool = True, device=None,
              model_label: str | None = None, n_targets: int = 1, targets=None, trained=None) -> pd.DataFrame:
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
    targets : sequence of int or None
        Audit only these of the ``n_targets`` models (default: all): a long audit split into resumable pieces
        gives the same rows, piece by piece (each target's rows depend only on the trained batch).
    trained : path or None
        Where phase 1 is cached (``infra.tables.cached_tensors``): the batch's parameters and training seconds
        are read from there when present, else trained and stored, so that the pieces of one audit train once.
        The caller names the file by everything the training depends on.
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
        white-box set-up with the sandwich its second variant uses, this quantizer's releases, statistics and
        attack scores; the sandwich is computed once and its seconds count in both, as both need it), with
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
    s = audit_setup(X_pool, y_pool, X_test, y_test, quantizers, model=model, task=task, n_shadow=n_shadow,
                    seed=seed, n_bootstrap=n_bootstrap, indicator_bootstrap=indicator_bootstrap,
                    attacks_on=attacks_on, device=device)
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
    targets = list(range(n_targets)) if targets is None else [check_int("targets", t, minimum=0) for t in targets]
    if not targets or max(targets) >= n_targets:
        raise ValueError(f"targets must name at least one of the n_targets={n_targets} models, got {targets}")
    params, masks, fit_seconds = _train(s) if trained is None else _train_cached(s, trained)
    released = releases(s, params)
    frames = []
    for target in targets:
        view, order, view_masks = _as_target(s, masks, target)
        ordered = {k: v[order] for k, v in params.items()}
        frames.append(_audit_target(view, ordered, view_masks, {label: r.reordered(order) for label, r in
                                                                 released.items()}, fit_seconds,
                                    model_label or s.spec.kind, target))
    return pd.concat(frames, ignore_index=True)


def _as_target(s: AuditSetup, masks: np.ndarray, target: int):
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
    view = AuditSetup(**{**s.__dict__, "members": np.flatnonzero(mask), "evaluated": evaluated,
                     "labels": mask[evaluated].astype(np.int8), "target_mask": mask})
    return view, torch.as_tensor(order, device=s.X_pool.device), everyone[order[1:]]


def _audit_target(s: AuditSetup, params: dict, masks: np.ndarray, quantized: dict, fit_seconds: float,
                  label: str, target: int) -> pd.DataFrame:
    """Phases 3-5 for the model in row 0 of the batch (``_as_target``): indicator, baselines, attacks, utility,
    cost. The sandwich standard errors are computed once; their seconds ``se_seconds`` count in the
    indicator's cost and in the shadow audit's (the white-box attack uses them too)."""
    rows = AuditRows(label, int(s.members.size), s.seed, target)
    target_module = s.arch.module(params, 0)
    se, se_flat, se_seconds, member_solves = target_standard_errors(s, target_module)
    found, indicator_seconds, intervals, boot_seconds, boot_fits, boot_used = indicator_phase(s, target_module, se)
    reference = unquantized(s, params, se_flat)
    whitebox = whitebox_setup(s, params, target_module, se_flat, member_solves) if s.attacks_on else None
    shadow_in = masks[:, s.evaluated]
    shadow_total = metrics_total = 0.0
    for name, q in s.items:
        released = quantized[name]
        utility_rows(rows, s, name, q, params, released)
        indicator_rows(rows, name, found, intervals, boot_used, se_seconds)
        baseline_rows(rows, s, name, released, reference)
        if not s.attacks_on:
            continue
        start = time.perf_counter()
        scores, offline_a = attack_scores(s, q, params, released, shadow_in, whitebox)
        attack_seconds = time.perf_counter() - start
        attack_rows(rows, s, name, scores)
        rows.add(name, "rmia_offline", "offline_a", offline_a)
        rows.add(name, "cost", "shadow_audit_seconds", fit_seconds + whitebox.seconds + se_seconds
                 + released.seconds + attack_seconds)
        rows.add(name, "cost", "shadow_model_fits", 1 + s.n_shadow)
        shadow_total += released.seconds + attack_seconds
        metrics_total += time.perf_counter() - start - attack_seconds
    # Phase 5, cost: totals for the whole configuration (every quantizer), shared work counted once.
    rows.add("(all)", "cost", "training_seconds", fit_seconds)
    rows.add("(all)", "cost", "indicator_total_seconds", se_seconds + indicator_seconds)
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
