"""The inputs of one audit (``mislib.evaluation.audit.run_audit``), validated, with the membership split they
imply, the shadow models' complementary halves, and the tidy rows the audit returns (``COLUMNS``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mislib import attacks
from mislib.evaluation.architectures import Architecture, ModelSpec
from mislib.infra.checks import check_int, check_tensor, resolve_device
from mislib.quantizers import labelled

COLUMNS = ("model", "quantizer", "sample_size", "seed", "target", "method", "measurement", "value", "value_low",
           "value_high")


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


@dataclass
class AuditSetup:
    """The validated inputs of one audit and the membership split they imply (of the audited model, which is
    row 0 of the batch)."""

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

    def member_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The audited model's training set ``(X, y)``."""
        index = torch.as_tensor(self.members, device=self.X_pool.device)
        return self.X_pool[index], self.y_pool[index]


class AuditRows:
    """The tidy rows of one audit (``COLUMNS``), all with the same model label, sample size and seed."""

    def __init__(self, model: str, sample_size: int, seed: int, target: int = 0):
        self.model, self.sample_size, self.seed, self.target = model, sample_size, seed, target
        self.rows: list[dict] = []

    def add(self, quantizer, method, measurement, value, low=math.nan, high=math.nan):
        """One row: ``value`` and its interval ``[low, high]`` (NaN where there is none)."""
        self.rows.append({"model": self.model, "quantizer": quantizer, "sample_size": self.sample_size,
                          "seed": self.seed, "target": self.target, "method": method, "measurement": measurement,
                          "value": float(value), "value_low": float(low), "value_high": float(high)})

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with columns ``COLUMNS``."""
        return pd.DataFrame(self.rows, columns=list(COLUMNS))


def audit_setup(X_pool, y_pool, X_test, y_test, quantizers, *, model, task, n_shadow, seed, n_bootstrap,
                indicator_bootstrap, attacks_on, device) -> AuditSetup:
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
    return AuditSetup(spec=spec, arch=Architecture(spec, X_pool.shape[1], n_classes, device), X_pool=X_pool,
                      y_pool=y_pool, X_test=X_test, y_test=y_test, items=items, seed=seed, n_shadow=n_shadow,
                      n_bootstrap=n_bootstrap, indicator_bootstrap=indicator_bootstrap,
                      attacks_on=bool(attacks_on), members=members, evaluated=evaluated,
                      labels=target_mask[evaluated].astype(np.int8), target_mask=target_mask)
