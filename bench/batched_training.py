"""Batched logistic regressions (one tensor program) against a scikit-learn loop over the same models and data.

256 ridge logistic regressions, each on a random half (n = 500) of one pool of 1,000 points in d = 20, as the
shadow models of a membership audit are. ``mislib.evaluation.trainers.fit_logistic`` fits all of them at once (batched
Newton steps with Cholesky solves); the reference is ``sklearn.linear_model.LogisticRegression`` (lbfgs) in a
Python loop, with the same objective (``C = 1 / (ridge * n)``) and both run to a gradient of 1e-10, so the
coefficients agree (the largest difference is reported).

Both sides are timed with 1 and with 2 threads (torch and the BLAS pools), side by side in one run, medians
over repeats; the headline ratio is best against best.

Target: at least 30x faster on 2 CPU cores, same coefficients.   python -m bench.batched_training
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from bench.common import median_seconds, save, threads
from mislib.evaluation.trainers import fit_logistic

N_MODELS, N_POOL, DIM, RIDGE = 256, 1000, 20, 1e-2
TARGET = 30.0


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


def main(repeats: int = 5):
    X, y, masks = problem()
    rows = {}
    for count in (1, 2):
        with threads(count):
            rows[count] = {"threads": count,
                           "batched_seconds": median_seconds(lambda: batched(X, y, masks), repeats=repeats),
                           "sklearn_loop_seconds": median_seconds(lambda: sklearn_loop(X, y, masks),
                                                                  repeats=max(1, repeats // 2))}
            rows[count]["speedup"] = rows[count]["sklearn_loop_seconds"] / rows[count]["batched_seconds"]
    with threads(1):
        max_diff = float(np.abs(batched(X, y, masks) - sklearn_loop(X, y, masks)).max())
    best_batched = min(r["batched_seconds"] for r in rows.values())
    best_sklearn = min(r["sklearn_loop_seconds"] for r in rows.values())
    speedup = best_sklearn / best_batched
    return save("batched_training", {
        "what": f"{N_MODELS} ridge logistic regressions, n={N_POOL // 2} each (random halves), d={DIM}",
        "by_threads": list(rows.values()),
        "batched_seconds": best_batched, "sklearn_loop_seconds": best_sklearn,
        "speedup": speedup, "target_speedup": TARGET, "met": speedup >= TARGET,
        "max_abs_coefficient_difference": max_diff,
    })


if __name__ == "__main__":
    main()
