"""Phase 5 of an audit (``mislib.evaluation.audit``), per quantizer: the utility of the quantized target on
held-out test data, what the quantizer is, and the baselines a user has without shadow models (standardised
distortion, increase of the training loss, drop of the primary test metric and its bootstrap standard
error)."""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from mislib import attacks
from mislib.evaluation.architectures import Architecture, flat_batch
from mislib.evaluation.audit_attacks import Release, statistics
from mislib.evaluation.audit_setup import AuditRows, AuditSetup
from mislib.quantizers import Quantizer

BASELINE_MEASUREMENTS = ("standardised_distortion", "train_loss_increase", "test_performance_drop",
                         "test_performance_se")
# The primary test metric of each task (higher = better): what ``test_performance_drop`` is measured in.
PRIMARY_METRIC = {"classification": "auroc", "regression": "r2"}


def _as_numpy(outputs: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return outputs.detach().cpu().to(torch.float64).numpy(), y.detach().cpu().to(torch.float64).numpy()


def _r2(out: np.ndarray, target: np.ndarray) -> float:
    total = float(np.sum((target - target.mean()) ** 2))
    return 1.0 - float(np.sum((out - target) ** 2)) / total if total > 0 else math.nan


def _auroc(out: np.ndarray, target: np.ndarray) -> float:
    """Binary (one logit per example) or one-vs-rest multi-class AUROC; NaN where a class is missing."""
    if out.ndim == 1:
        return attacks.auc(out, target) if 0 < target.sum() < target.size else math.nan
    from sklearn.metrics import roc_auc_score

    probs = torch.softmax(torch.as_tensor(out), dim=-1).numpy()
    try:
        return float(roc_auc_score(target.astype(int), probs, multi_class="ovr", labels=list(range(out.shape[-1]))))
    except ValueError:
        return math.nan


_PRIMARY = {"auroc": _auroc, "r2": _r2}


def performance(arch: Architecture, outputs: torch.Tensor, y: torch.Tensor) -> dict:
    """Test performance of one model: accuracy / AUROC or RMSE / R^2 / Spearman."""
    from scipy import stats as sps

    out, target = _as_numpy(outputs, y)
    if arch.spec.task == "regression":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # constant predictions: Spearman is undefined (NaN)
            spearman = float(sps.spearmanr(out, target).statistic)
        return {"rmse": float(np.sqrt(np.mean((out - target) ** 2))), "r2": _r2(out, target), "spearman": spearman}
    hits = (out > 0) == (target == 1) if out.ndim == 1 else out.argmax(-1) == target
    accuracy = float(np.mean(hits))
    return {"accuracy": accuracy, "auroc": _auroc(out, target)}


def primary_performance(arch: Architecture, outputs: torch.Tensor, y: torch.Tensor) -> float:
    """The primary test metric (``PRIMARY_METRIC`` of the task) of one model, alone."""
    return _PRIMARY[PRIMARY_METRIC[arch.spec.task]](*_as_numpy(outputs, y))


def utility_rows(rows: AuditRows, s: AuditSetup, label: str, q: Quantizer, params: dict, released: Release):
    """Phase 5 (utility), per quantizer: test performance of the quantized target, and what the quantizer is."""
    for name, value in performance(s.arch, released.test_outputs[0], s.y_test).items():
        rows.add(label, "test", name, value)
    target_release = flat_batch({k: v[:1] for k, v in released.params.items()})[0]
    main = max(params, key=lambda k: params[k][0].numel())
    rows.add(label, "quantizer", "bits_per_weight", q.bits_per_weight(params[main][0]))
    rows.add(label, "quantizer", "sparsity", float((target_release == 0).double().mean()))
    rows.add(label, "quantizer", "continuous_scale", float(q.scale_channel == "continuous"))
    rows.add(label, "quantizer", "deterministic", float(q.deterministic))


@dataclass
class Unquantized:
    """The target before quantization, what the baselines compare each release with."""

    theta: np.ndarray          # flat parameters
    se: np.ndarray             # flat sandwich standard errors
    member_loss: float         # mean training loss on the members
    test_performance: float    # primary test metric (PRIMARY_METRIC)


def unquantized(s: AuditSetup, params: dict, se: np.ndarray) -> Unquantized:
    """The audited model (row 0 of ``params``) before quantization, with its flat standard errors ``se``."""
    target = {k: v[:1] for k, v in params.items()}
    _, losses = statistics(s.arch, s.arch.outputs(target, s.X_pool), s.y_pool)
    return Unquantized(theta=flat_batch(target)[0].cpu().numpy(), se=se,
                       member_loss=float(losses[0, s.members].mean()),
                       test_performance=primary_performance(s.arch, s.arch.outputs(target, s.X_test)[0], s.y_test))


def _test_performance_se(s: AuditSetup, test_outputs: torch.Tensor, label: str) -> float:
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
        values.append(primary_performance(s.arch, test_outputs[pick], y))
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if values.size >= 2 else math.nan


def baseline_rows(rows: AuditRows, s: AuditSetup, label: str, released: Release, reference: Unquantized):
    """What a user can compute without shadow models (issue 16), per quantizer: the standardised distortion
    ``sum_k ((Q(theta)_k - theta_k) / s_k)^2``, the increase of the mean training loss (from the release's
    losses, row 0), the drop of the primary test metric (needs held-out data) and that metric's bootstrap
    standard error."""
    theta_q = flat_batch({k: v[:1] for k, v in released.params.items()})[0].cpu().numpy()
    rows.add(label, "baseline", "standardised_distortion",
             float(np.sum(((theta_q - reference.theta) / reference.se) ** 2)))
    rows.add(label, "baseline", "train_loss_increase",
             float(released.losses[0, s.members].mean()) - reference.member_loss)
    test_out = released.test_outputs[0]
    rows.add(label, "baseline", "test_performance_drop",
             reference.test_performance - primary_performance(s.arch, test_out, s.y_test))
    rows.add(label, "baseline", "test_performance_se", _test_performance_se(s, test_out, label))
