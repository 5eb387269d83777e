"""Matrix-free against dense: the Newton polish and the exact sandwich of one-hidden-layer tanh heads.

The molecular study's heads on full fingerprints have up to 32,801 weights; the dense path (a Hessian per model,
Cholesky per Newton step) is what ``polish_mlp(method="dense")`` and ``standard_errors(hessian="exact")`` do, the
matrix-free one is ``mislib.tanh_mlp`` (conjugate gradients on exact Hessian products, preconditioned by the
Woodbury inverse of the Gauss-Newton form). Side by side in one run, same data, same starting points:

* 8 heads, 16 hidden units, on ``n`` = 1,200 rows of sparse 0/1 inputs (2% ones, like ECFP4) with d = 100, 250
  and 500 (p = 1,633, 4,033 and 8,033): seconds of the polish (from the same Adam fit; how many heads both
  polishes bring to the same minimum, and the largest difference of their objectives) and of the exact standard
  errors of head 0 at its matrix-free minimum (its 600 members), with their largest relative difference;
* the white-box attack's insertion influence ``-(1/n) H^-1 g_j`` of ``INFLUENCE_ROWS`` rows for head 0 at
  p = 4,033 and 8,033: ``mislib.tanh_mlp.influence`` against the automatic-differentiation conjugate gradients
  that ``insertion_influence`` used above 2,000 parameters before (``objective.block_cg`` on ``Objective.hvp``,
  unpreconditioned), with their largest relative difference;
* one point the dense path cannot reach on this machine: d = 2,048 (p = 32,801, a 8.6 GB Hessian), matrix-free
  only, the polish of 8 heads, one head's standard errors and the influence of ``INFLUENCE_ROWS`` rows.

    python -m bench.tanh_mlp_scaling [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from bench.common import peak_rss_mb, save, threads

HIDDEN, N_ROWS, N_HEADS, RIDGE, DENSITY = 16, 1200, 8, 0.03, 0.02
DIMS = (100, 250, 500)
BIG_DIM = 2048
TARGET_RATIO = 2.0      # matrix-free at least 2x faster than dense at p = 8,033, same standard errors (1e-6)
INFLUENCE_ROWS = 100    # rows whose insertion influence is solved (the audits solve every pool row)


def _problem(d: int, seed: int = 0):
    from mislib.evaluation import trainers

    g = torch.Generator().manual_seed(seed)
    X = (torch.rand(N_ROWS, d, generator=g) < DENSITY).double()
    signal = X[:, : max(1, d // 10)].sum(1) - DENSITY * max(1, d // 10)
    y = ((signal + 0.5 * torch.randn(N_ROWS, generator=g, dtype=torch.float64)) > 0).double()
    weights = torch.zeros(N_HEADS, N_ROWS, dtype=torch.float64)
    for b in range(N_HEADS):
        weights[b, torch.randperm(N_ROWS, generator=g)[: N_ROWS // 2]] = 1.0
    params = trainers.fit_mlp_head(X, y, HIDDEN, ridge=RIDGE, sample_weight=weights, n_iter=500, seed=0)
    return X, y, weights, params


def _timed(function):
    start = time.perf_counter()
    out = function()
    return out, time.perf_counter() - start


def _measure(d: int, dense: bool) -> dict:
    from mislib import indicator, tanh_mlp
    from mislib.evaluation.architectures import polish_mlp
    from mislib.modules import MLPHead

    X, y, weights, params = _problem(d)
    row = {"d": d, "parameters": tanh_mlp.n_parameters(HIDDEN, d), "heads": N_HEADS, "rows": N_ROWS,
           "influence_rows": INFLUENCE_ROWS}
    w = weights / weights.sum(1, keepdim=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        free, row["polish_matrix_free_seconds"] = _timed(lambda: polish_mlp(params, X, y, weights, ridge=RIDGE,
                                                                           method="matrix-free"))
        members = weights[0] > 0
        head = {k: v[0] for k, v in free.items()}
        (se_free, _, _), row["se_matrix_free_seconds"] = _timed(
            lambda: tanh_mlp.standard_errors(head, X[members], y[members], task="classification", ridge=RIDGE))
        rows = torch.arange(INFLUENCE_ROWS)
        shifts, row["influence_matrix_free_seconds"] = _timed(
            lambda: tanh_mlp.influence(head, X[members], y[members], X[rows], y[rows], task="classification",
                                       ridge=RIDGE))
        if dense and d > 100:
            generic, row["influence_autodiff_cg_seconds"] = _timed(
                lambda: _autodiff_influence(MLPHead.from_params(free, index=0), X[members], y[members], X[rows],
                                            y[rows]))
            row["influence_max_relative_difference"] = float((generic - shifts).norm(dim=1).max()
                                                             / shifts.norm(dim=1).max())
            row["influence_ratio"] = row["influence_autodiff_cg_seconds"] / row["influence_matrix_free_seconds"]
        if dense:
            polished, row["polish_dense_seconds"] = _timed(lambda: polish_mlp(params, X, y, weights, ridge=RIDGE,
                                                                              method="dense"))
            # from the same Adam fit both polishes reach a minimum, not always the same one (non-convex)
            gap = torch.stack([(polished[k] - free[k]).abs().flatten(1).amax(1) for k in free]).amax(0)
            row["polish_same_minimum"] = int((gap < 1e-6).sum())
            objective = lambda p: tanh_mlp.objective(p, X, y, w, "classification", RIDGE)  # noqa: E731
            row["polish_objective_max_difference"] = float((objective(polished) - objective(free)).abs().max())
            module = MLPHead.from_params(free, index=0)
            se_dense, row["se_dense_seconds"] = _timed(
                lambda: indicator.standard_errors(module, X[members], y[members], ridge=RIDGE, hessian="exact"))
            row["se_max_relative_difference"] = max(float(((se_dense[k] - se_free[k]).abs()
                                                           / se_dense[k].clamp_min(1e-300)).max()) for k in se_dense)
            row["polish_ratio"] = row["polish_dense_seconds"] / row["polish_matrix_free_seconds"]
            row["se_ratio"] = row["se_dense_seconds"] / row["se_matrix_free_seconds"]
    row["peak_rss_mb"] = peak_rss_mb()
    print(row, flush=True)
    return row


def _autodiff_influence(module, X, y, X_rows, y_rows):
    """The previous large-model path of ``insertion_influence``: unpreconditioned block conjugate gradients on
    automatic-differentiation Hessian-vector products."""
    from mislib.objective import Objective, block_cg

    train = Objective(module, X, y, None, RIDGE, None, None, 2 ** 22)
    G = Objective(module, X_rows, y_rows, None, RIDGE, None, None, 2 ** 22).per_sample_grads(train.theta)
    return -block_cg(lambda V: train.hvp(train.theta, V), G, tol=1e-8, max_iter=500)[0] / train.n


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.tanh_mlp_scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the two smaller sizes only, no d = 2,048 point")
    args = parser.parse_args(argv)
    dims = DIMS[:2] if args.quick else DIMS
    with threads(2):
        rows = [_measure(d, dense=True) for d in dims]
        if not args.quick:
            rows.append(_measure(BIG_DIM, dense=False))
    compared = [r for r in rows if "se_ratio" in r]
    largest = max(compared, key=lambda r: r["parameters"])
    met = (largest["parameters"] >= 8000 and largest["polish_ratio"] >= TARGET_RATIO
           and largest["se_ratio"] >= TARGET_RATIO
           and all(r["se_max_relative_difference"] < 1e-6 for r in compared))
    save("tanh_mlp_scaling", {"rows": rows, "target_ratio": TARGET_RATIO, "met": bool(met)},
         command="python -m bench.tanh_mlp_scaling" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
