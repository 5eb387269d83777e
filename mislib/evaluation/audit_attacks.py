"""Phases 2 and 3 of an audit (``mislib.evaluation.audit``): every model's release per quantizer, with its
per-example statistics and losses (computed once, shared by every model that plays the target and by the
baselines), and the attacks on it: LiRA, RMIA, the loss threshold and the white-box Gaussian attack on the
released cells, each summarised by ``attacks.attack_metrics``."""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit

from mislib import attacks
from mislib.evaluation.architectures import Architecture, flat_batch
from mislib.evaluation.audit_setup import AuditRows, AuditSetup
from mislib.quantizers import Quantizer

ATTACKS = ("lira_online", "lira_online_fixed_variance", "lira_offline", "lira_offline_fixed_variance",
           "rmia_online", "rmia_offline", "loss_threshold", "whitebox", "whitebox_sandwich_std")
ATTACK_METRICS = ("auc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")


# ----------------------------------------------------------------------------------------------- influence

def insertion_influence(module, X_train, y_train, X_targets, y_targets, loss, *, ridge: float = 0.0,
                        chunk_size: int = 2 ** 22, known: tuple | None = None) -> torch.Tensor:
    """``-(1/n) H^-1 grad loss(z_j)`` for each target ``z_j`` (rows ``[m, P]``, named-parameter order).

    The first-order change of the minimiser of ``mislib.evaluation.trainers``' objective on
    ``(X_train, y_train)`` (``n`` examples; ridge included in ``H``) when ``z_j`` is added:
    ``theta(+j) - theta ~ -(1/(n+1)) H^-1 g_j``.
    Per-sample gradients and the Hessian by torch.func (``mislib.indicator``'s objective, so the same loss and
    penalty). The Hessian is exact up to ``indicator.EXACT_MAX_PARAMETERS`` parameters, else solves are done
    by conjugate gradients on Hessian-vector products: for a one-output tanh ``MLPHead`` those of
    ``mislib.tanh_mlp.influence`` (preconditioned by the Gauss-Newton inverse, batched over targets; it raises
    ``ValueError`` where the Hessian is not positive definite; ``known`` = ``(rows, H^-1 g)`` of targets already
    solved, as ``tanh_mlp.standard_errors(return_solves=True)`` gives them for the training rows, and ignored on
    the other paths), otherwise by automatic differentiation. Elsewhere
    a Hessian that is not positive definite (a non-convex model not exactly at a minimum) is floored at ``1e-8``
    times its largest eigenvalue."""
    from mislib import tanh_mlp
    from mislib.objective import EXACT_MAX_PARAMETERS, Objective, block_cg

    train = Objective(module, X_train, y_train, loss, ridge, None, None, chunk_size)
    if tanh_mlp.takes(module, loss, None, ridge):
        params = {name: value.detach() for name, value in module.named_parameters()}
        return tanh_mlp.influence(params, train.X, train.y, X_targets.to(train.X), y_targets.to(train.y),
                                  task=tanh_mlp.task_of(module), ridge=ridge, known=known).to(train.theta.dtype)
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


# ------------------------------------------------------------------------------------------------- release

def _seed_for(seed: int, label: str) -> int:
    """A reproducible seed per (seed, quantizer label)."""
    return (seed * 1_000_003 + zlib.crc32(label.encode())) % (2 ** 63)


def release(quantizer: Quantizer, params: dict, generator: torch.Generator | None = None) -> dict:
    """Quantize every model of a batch (``params[name]``: [B, ...]) tensor by tensor: what each one publishes."""
    out = {}
    for name, value in params.items():
        out[name] = torch.stack([quantizer(value[b], generator=generator) for b in range(value.shape[0])])
    return out


def statistics(arch: Architecture, outputs: torch.Tensor, y: torch.Tensor):
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


@dataclass
class Release:
    """One quantizer's release of every model of the batch: parameters, outputs on the pool and on the test
    data, the per-example statistics and losses on the pool (``statistics``), all computed once and shared
    by every model that plays the target, and what they cost."""

    params: dict
    outputs: torch.Tensor
    test_outputs: torch.Tensor
    stats: np.ndarray
    losses: np.ndarray
    seconds: float

    def reordered(self, order: torch.Tensor) -> Release:
        """The same release with the models of the batch in ``order``."""
        rows = order.cpu().numpy()
        return Release({k: v[order] for k, v in self.params.items()}, self.outputs[order], self.test_outputs[order],
                       self.stats[rows], self.losses[rows], self.seconds)


def releases(s: AuditSetup, params: dict) -> dict:
    """Phase 2 (release), per quantizer: every model of the batch quantized tensor by tensor, its outputs and
    statistics. Stochastic rounding draws from a generator seeded by the audit's seed and the quantizer's
    label."""
    out = {}
    for label, q in s.items:
        generator = torch.Generator(device=s.X_pool.device).manual_seed(_seed_for(s.seed, label))
        start = time.perf_counter()
        released = release(q, params, generator)
        outputs = s.arch.outputs(released, s.X_pool)
        stats, losses = statistics(s.arch, outputs, s.y_pool)
        seconds = time.perf_counter() - start
        out[label] = Release(released, outputs, s.arch.outputs(released, s.X_test), stats, losses, seconds)
    return out


# ----------------------------------------------------------------------------------------------- white box

@dataclass
class WhiteBox:
    """What the white-box attack needs, shared by every quantizer (``mislib.evaluation.audit`` notes)."""

    mean: np.ndarray
    std_shadow: np.ndarray
    std_sandwich: np.ndarray
    shifts: np.ndarray
    seconds: float


def whitebox_setup(s: AuditSetup, params: dict, target_module, se: np.ndarray,
                   member_solves: torch.Tensor | None = None) -> WhiteBox:
    """Phase 3 (attacks), shared by every quantizer: shadow mean and spread of the weights, sandwich standard
    errors ``se`` (flat) with the finite-population correction, and each example's shift. ``member_solves``:
    ``H^-1 g_i`` of the members (``target_standard_errors`` of a large tanh head), reused for their shifts."""
    start = time.perf_counter()
    X_members, y_members = s.member_data()
    N, n = s.X_pool.shape[0], int(s.members.size)
    shadow_flat = flat_batch({k: v[1:] for k, v in params.items()}).cpu().numpy()
    correction = math.sqrt((N - n) / max(1, N - 1))  # random halves of a fixed pool: finite-population
    std_sandwich = np.maximum(se * correction, 1e-12)
    evaluated = torch.as_tensor(s.evaluated, device=s.X_pool.device)
    known = None
    if member_solves is not None:       # s.members and s.evaluated are sorted pool indices
        rows = np.flatnonzero(np.isin(s.evaluated, s.members))
        known = (torch.as_tensor(rows, device=s.X_pool.device),
                 member_solves[torch.as_tensor(np.searchsorted(s.members, s.evaluated[rows]))])
    shifts = insertion_influence(target_module, X_members, y_members, s.X_pool[evaluated], s.y_pool[evaluated],
                                 s.arch.loss, ridge=s.spec.ridge, known=known).cpu().numpy()
    return WhiteBox(mean=shadow_flat.mean(axis=0), std_shadow=np.maximum(shadow_flat.std(axis=0, ddof=1), 1e-12),
                    std_sandwich=std_sandwich, shifts=shifts, seconds=time.perf_counter() - start)


def _cell_bounds(q: Quantizer, params: dict):
    """Cells of the target's (row 0) weights, tensor by tensor: (low dict, high dict)."""
    lows, highs = {}, {}
    for name, value in params.items():
        lows[name], highs[name] = q.cell_bounds(value[0])
    return lows, highs


# ------------------------------------------------------------------------------------------------- attacks

def _rmia_probabilities(arch: Architecture, outputs: torch.Tensor, y: torch.Tensor, stats: np.ndarray,
                        scale: float) -> np.ndarray:
    """RMIA's ``Pr(y|x)``, [B, N]: the probability of the true class (``expit`` of the logit confidence, which
    is ``log(p / (1 - p))``), or for regression ``attacks.gaussian_likelihood`` of the residual at ``scale``."""
    if arch.spec.task != "regression":
        return expit(stats)
    predictions = outputs.detach().reshape(outputs.shape[0], -1).cpu().numpy().astype(np.float64)
    targets = np.broadcast_to(y.detach().cpu().numpy().astype(np.float64), predictions.shape)
    return attacks.gaussian_likelihood(predictions, targets, scale)


def _rmia_scores(s: AuditSetup, test_outputs, outputs, stats: np.ndarray, shadow_in) -> tuple[dict, float]:
    """RMIA online and offline (``mislib.evaluation.audit`` notes): scores and the offline ``a`` chosen on
    shadow 0 (rows 1 and 2 of the batch are a complementary pair)."""
    test_stats, _ = statistics(s.arch, test_outputs, s.y_test)
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


def attack_scores(s: AuditSetup, q: Quantizer, params: dict, released: Release, shadow_in,
                  whitebox: WhiteBox) -> tuple[dict, float]:
    """Phase 3 (attacks), per quantizer: every attack's membership scores on the evaluated examples (the
    audited model is row 0 of ``params``, the trained weights whose cells the white-box attack sees, and of
    ``released``; ``shadow_in`` says which evaluated examples each other model trained on), and RMIA's
    offline ``a``."""
    rmia, offline_a = _rmia_scores(s, released.test_outputs, released.outputs, released.stats, shadow_in)
    stats = released.stats[:, s.evaluated]
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
        "loss_threshold": attacks.loss_threshold_scores(released.losses[0, s.evaluated]),
    }
    if q.deterministic:
        low, high = (flat_batch({k: v.unsqueeze(0) for k, v in bounds.items()})[0].cpu().numpy()
                     for bounds in _cell_bounds(q, params))
        w = whitebox
        for name, std in (("whitebox", w.std_shadow), ("whitebox_sandwich_std", w.std_sandwich)):
            scores[name] = (attacks.whitebox_gaussian_scores(low, high, w.mean, 0.5 * w.shifts, std)
                            - attacks.whitebox_gaussian_scores(low, high, w.mean, -0.5 * w.shifts, std))
    return scores, offline_a


def attack_rows(rows: AuditRows, s: AuditSetup, label: str, scores: dict):
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
