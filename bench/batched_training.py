"""Batched logistic regressions (one tensor program) against a scikit-learn loop over the same models and data.

Target: at least 30x faster on 2 CPU cores, same coefficients.   python -m bench.batched_training
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from bench.common import median_seconds, save
from mislib.models import fit_logistic

N_MODELS, N_POOL, DIM, RIDGE = 256, 1000, 20, 1e-2


def problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_POOL, DIM))
    beta = rng.normal(size=DIM) / np.sqrt(DIM)
    y = (rng.random(N_POOL) < 1 / (1 + np.exp(-X @ beta))).astype(float)
    masks = (rng.random((N_MODELS, N_POOL)) < 0.5).astype(float)  # each model trains on a random half
    return X, y, masks


def sklearn_loop(X, y, masks):
    coefs = []
    for mask in masks:
        keep = mask > 0
        model = LogisticRegression(C=1.0 / (RIDGE * keep.sum()), tol=1e-10, max_iter=1000)
        model.fit(X[keep], y[keep])
        coefs.append(np.r_[model.coef_.ravel(), model.intercept_])
    return np.array(coefs)


def batched(X, y, masks):
    return fit_logistic(torch.from_numpy(X), torch.from_numpy(y), RIDGE,
                        sample_weight=torch.from_numpy(masks)).numpy()


def main():
    X, y, masks = problem()
    t_batched = median_seconds(lambda: batched(X, y, masks), repeats=5)
    t_sklearn = median_seconds(lambda: sklearn_loop(X, y, masks), repeats=3)
    max_diff = float(np.abs(batched(X, y, masks) - sklearn_loop(X, y, masks)).max())
    save("batched_training", {
        "what": f"{N_MODELS} ridge logistic regressions, n={N_POOL // 2} each (random halves), d={DIM}",
        "batched_seconds": t_batched, "sklearn_loop_seconds": t_sklearn,
        "speedup": t_sklearn / t_batched, "target_speedup": 30.0,
        "max_abs_coefficient_difference": max_diff,
    })


if __name__ == "__main__":
    main()
