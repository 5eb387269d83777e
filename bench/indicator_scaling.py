"""Cost of the indicator (exact standard errors + 10 quantizers) as a logistic model grows to 10^6 parameters.

A ridge logistic regression with p - 1 features (N(0, 1/d)) and an unpenalised intercept on n samples, ridge 1e-2.
For every size, in its own process (its peak memory is its own):

* ``woodbury``: ``mislib.sandwich.glm_standard_errors`` (exact: Woodbury + Schur complement for the intercept,
  two passes over X) followed by ``mislib.indicator.estimate`` for 10 quantizers (``QUANTIZERS``): the indicator
  a user gets, timed with 1 and with 2 torch threads (on this shared 2-core machine either can be faster: both
  kept, the faster reported). Peak memory is reported as the process's peak resident set minus its resident set before the data
  were made (python + torch), against the size of X.
* ``previous``: ``mislib.indicator.standard_errors(hessian="auto")`` (exact Hessian up to 2,000 parameters,
  Jacobi-preconditioned CG on all 256 gradients beyond; 2 threads), side by side, up to 10^5 parameters (10^6 took 54 s
  with a 64-vector sketch, i.e. approximate, in the previous version of this benchmark).
* ``training``: one training run of the same model (``torch.optim.LBFGS`` on the same penalised objective, from
  zeros, until max |gradient| <= 1e-8 or 500 iterations), at 10^5 and 10^6 parameters.

The points are fixed random parameters (the cost does not depend on where the sandwich is evaluated; the
training rows fit the model to the optimum). Exactness at 10^6: 20 coordinates (the intercept and 19 random
weights) recomputed independently: ``H x_k = e_k`` solved by conjugate gradients on exact Hessian-vector
products (``ridge v + X~' (w D (X~ v))``, plain matrix products, no Woodbury), then the sandwich entry
``x_k' V x_k = ||R x_k||^2`` with ``R`` the centred per-sample gradients; largest relative difference reported.
Growth exponents: least-squares slopes of log seconds on log p (10^4 .. 10^6, n = 256) and on log n (256 ..
4,096, p = 10^4); plus one point at n = 4,096, p = 10^5.

    python -m bench.indicator_scaling [--max-params 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from bench.common import peak_rss_mb, save, threads

N_SAMPLES, RIDGE, THREADS = 256, 1e-2, 2
THREAD_COUNTS = (1, 2)           # the woodbury rows: both measured, the faster reported
SIZES = (10 ** 2, 10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6)
N_GROWTH = (256, 512, 1024, 2048, 4096)          # at p = 10^4
BIG_N = (10 ** 5, 4096)                          # one point: p = 10^5, n = 4,096
PREVIOUS_MAX = 10 ** 5
TRAIN_SIZES = (10 ** 5, 10 ** 6)
TARGETS = {10 ** 5: 1.0, 10 ** 6: 10.0}          # seconds (standard errors + 10 quantizers), n = 256
QUANTIZERS = (("identity", {}), ("fixed_grid", {"step": 0.05}), ("uniform", {"bits": 8}),
              ("uniform", {"bits": 4}), ("uniform", {"bits": 4, "scale_format": "pow2"}),
              ("uniform", {"bits": 4, "per_channel": True}), ("sign", {}), ("ternary_absmean", {}),
              ("magnitude_pruning", {"sparsity": 0.5}), ("stochastic_rounding", {"step": 0.05}))


def current_rss_mb() -> float:
    from pathlib import Path

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def problem(n_params: int, n: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    d = n_params - 1
    X = torch.randn(n, d, generator=generator, dtype=torch.float64).div_(d ** 0.5)   # in place: one copy of X
    y = (torch.rand(n, generator=generator, dtype=torch.float64) < 0.5).double()
    coef = 0.1 * torch.randn(d, generator=generator, dtype=torch.float64)
    intercept = 0.1 * torch.randn(1, generator=generator, dtype=torch.float64)
    return X, y, coef, intercept


def indicator_rows(coef, intercept, stderr, n):
    """``estimate`` for the 10 quantizers, the weights and the intercept as named parameters."""
    from mislib import quantizers as Q
    from mislib.indicator import estimate

    theta = {"linear.weight": coef.reshape(1, -1), "linear.bias": intercept}
    se = {"linear.weight": stderr[:-1].reshape(1, -1), "linear.bias": stderr[-1:]}
    return [estimate(theta, se, Q.get(name, **params), n) for name, params in QUANTIZERS]


def exactness(X, y, coef, intercept, stderr, k: int = 20, seed: int = 1):
    """Largest relative error of ``stderr`` on k coordinates against CG solves on exact Hessian-vector products."""
    n, d = X.shape
    f = X @ coef + intercept
    s = torch.sigmoid(f)
    a, D = s - y, s * (1 - s)
    w = torch.full((n,), 1.0 / n, dtype=torch.float64)
    ridge_vec = torch.cat([torch.full((d,), RIDGE, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])

    def x_tilde(V):                                   # X~ V' for V [k, d + 1] -> [n, k]
        return X @ V[:, :d].T + V[:, d]

    def hvp(V):
        t = (w * D).unsqueeze(-1) * x_tilde(V)        # [n, k]
        return V * ridge_vec + torch.cat([(X.T @ t).T, t.sum(0, keepdim=True).T], dim=1)

    picks = torch.cat([torch.tensor([d]), torch.randperm(d, generator=torch.Generator().manual_seed(seed))[:k - 1]])
    B = torch.zeros(k, d + 1, dtype=torch.float64)
    B[torch.arange(k), picks] = 1.0
    U, R = torch.zeros_like(B), B.clone()
    P, rs = R.clone(), (R * R).sum(1)
    for iteration in range(2000):
        AP = hvp(P)
        alpha = rs / (P * AP).sum(1)
        U += alpha.unsqueeze(-1) * P
        R -= alpha.unsqueeze(-1) * AP
        rs_new = (R * R).sum(1)
        if float(rs_new.sqrt().max()) < 1e-13:
            break
        P = R + (rs_new / rs).unsqueeze(-1) * P
        rs = rs_new
    # R x = sqrt(w) (g_i - gbar) . x with g_i = a_i x~_i
    g_dot = a.unsqueeze(-1) * x_tilde(U)              # [n, k]
    centred = g_dot - (w.unsqueeze(-1) * g_dot).sum(0)
    variance = (w.unsqueeze(-1) * centred ** 2).sum(0) / n   # n_eff = n
    independent = variance.sqrt()
    return float(((stderr[picks] - independent).abs() / independent).max()), iteration + 1


def time_woodbury(n_params: int, n: int, check: bool) -> dict:
    """Standard errors + 10 quantizers with 1 and then 2 torch threads in this process; the faster is reported
    (``seconds``), both are kept. Peak memory: this process's, over both."""
    from mislib.sandwich import glm_standard_errors

    before = current_rss_mb()
    X, y, coef, intercept = problem(n_params, n)
    data_mb = X.numel() * X.element_size() / 2 ** 20
    # warm-up on a tiny slice (imports, first-call costs): what is timed is the computation
    indicator_rows(coef[:50], intercept, glm_standard_errors(X[:, :50], y, coef[:50], intercept, "logistic",
                                                             RIDGE), n)
    per_threads = {}
    for count in THREAD_COUNTS:
        with threads(count):
            start = time.perf_counter()
            stderr = glm_standard_errors(X, y, coef, intercept, "logistic", RIDGE)
            se_seconds = time.perf_counter() - start
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = indicator_rows(coef, intercept, stderr, n)
            per_threads[count] = (se_seconds, time.perf_counter() - start)
    best = min(per_threads, key=lambda c: sum(per_threads[c]))
    peak = peak_rss_mb()
    row = {"kind": "woodbury", "parameters": n_params, "n": n, "threads": best,
           "stderr_seconds": per_threads[best][0], "indicator_seconds": per_threads[best][1],
           "seconds": sum(per_threads[best]),
           "by_threads": {str(c): {"stderr_seconds": a, "indicator_seconds": b} for c, (a, b) in per_threads.items()},
           "data_mb": data_mb, "baseline_rss_mb": before, "peak_rss_mb": peak, "extra_peak_mb": peak - before,
           "memory_ratio": (peak - before) / data_mb,
           "r_soft_with_scale": {r.quantizer: r.r_soft_with_scale for r in results}}
    if check:
        with threads(max(THREAD_COUNTS)):
            row["exactness_max_relative_error"], row["exactness_cg_iterations"] = exactness(X, y, coef, intercept,
                                                                                           stderr)
        row["exactness_coordinates"] = 20
    return row


def time_previous(n_params: int, n: int) -> dict:
    from mislib.indicator import standard_errors
    from mislib.modules import LogisticRegression

    X, y, coef, intercept = problem(n_params, n)
    model = LogisticRegression.from_coefficients(torch.cat([coef, intercept]))
    with threads(THREADS), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        standard_errors(LogisticRegression.from_coefficients(torch.zeros(3, dtype=torch.float64)),
                        X[:, :2], y, "logistic", ridge=RIDGE)
        start = time.perf_counter()
        details = standard_errors(model, X, y, "logistic", ridge=RIDGE, hessian="auto", cg_sketch=None,
                                  return_details=True)
        seconds = time.perf_counter() - start
    from mislib.sandwich import glm_standard_errors

    new = glm_standard_errors(X, y, coef, intercept, "logistic", RIDGE)
    return {"kind": "previous", "parameters": n_params, "n": n, "threads": THREADS, "seconds": seconds,
            "method": details.hessian, "peak_rss_mb": peak_rss_mb(),
            "max_relative_difference_to_woodbury": float(((new - details.flat).abs() / details.flat).max())}


def time_training(n_params: int, n: int) -> dict:
    X, y, _, _ = problem(n_params, n)
    d = n_params - 1
    theta = torch.zeros(n_params, dtype=torch.float64, requires_grad=True)
    with threads(THREADS):
        optimiser = torch.optim.LBFGS([theta], max_iter=500, tolerance_grad=1e-8, tolerance_change=0,
                                      history_size=20, line_search_fn="strong_wolfe")

        def objective():
            optimiser.zero_grad()
            f = X @ theta[:d] + theta[d]
            value = (torch.nn.functional.softplus(f) - y * f).mean() + RIDGE / 2 * theta[:d].square().sum()
            value.backward()
            return value

        start = time.perf_counter()
        optimiser.step(objective)
        seconds = time.perf_counter() - start
        objective()
    return {"kind": "training", "parameters": n_params, "n": n, "threads": THREADS, "seconds": seconds,
            "iterations": optimiser.state[theta]["n_iter"], "max_abs_gradient": float(theta.grad.abs().max())}


def run_child(*args) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.indicator_scaling", "--child", *map(str, args)],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k != "r_soft_with_scale"},
          flush=True)
    return row


def slope(rows, key):
    xs = np.log([r[key] for r in rows])
    ys = np.log([r["seconds"] for r in rows])
    return float(np.polyfit(xs, ys, 1)[0])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-params", type=int, default=10 ** 6)
    parser.add_argument("--quick", action="store_true", help="skip n = 4,096 at 10^5 and the training runs")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, n_params, n = args.child[0], int(args.child[1]), int(args.child[2])
        row = (time_woodbury(n_params, n, check=n_params >= 10 ** 6) if kind == "woodbury" else
               time_previous(n_params, n) if kind == "previous" else time_training(n_params, n))
        print(json.dumps(row))
        return None
    rows = []
    sizes = [s for s in SIZES if s <= args.max_params]
    for size in sizes:
        rows.append(run_child("woodbury", size, N_SAMPLES))
        if size <= PREVIOUS_MAX:
            rows.append(run_child("previous", size, N_SAMPLES))
    growth_n = [run_child("woodbury", 10 ** 4, n) for n in N_GROWTH if n != N_SAMPLES]
    if not args.quick:
        rows.append(run_child("woodbury", *BIG_N))
        rows += [run_child("training", size, N_SAMPLES) for size in TRAIN_SIZES if size <= args.max_params]
    rows += growth_n
    new = {r["parameters"]: r for r in rows if r["kind"] == "woodbury" and r["n"] == N_SAMPLES}
    old = {r["parameters"]: r for r in rows if r["kind"] == "previous"}
    train = {r["parameters"]: r for r in rows if r["kind"] == "training"}
    summary = {
        "speedup_vs_previous": {p: old[p]["seconds"] / new[p]["stderr_seconds"] for p in old if p in new},
        "targets": {p: {"seconds": new[p]["seconds"], "target_seconds": t, "met": new[p]["seconds"] <= t,
                        "memory_ratio": new[p]["memory_ratio"], "memory_met": new[p]["memory_ratio"] <= 2}
                    for p, t in TARGETS.items() if p in new},
        "cost_vs_training": {p: new[p]["seconds"] / train[p]["seconds"] for p in train if p in new},
        "exponent_in_p": slope([new[p] for p in new if p >= 10 ** 4], "parameters") if len(new) >= 3 else None,
        "exponent_in_n": slope([new[10 ** 4]] + growth_n, "n") if 10 ** 4 in new else None,
        "exactness_at_1e6": {k: new[10 ** 6][k] for k in ("exactness_max_relative_error", "exactness_coordinates")}
        if 10 ** 6 in new else None,
    }
    command = "python -m bench.indicator_scaling" + (f" --max-params {args.max_params}"
                                                      if args.max_params != 10 ** 6 else "") + (
        " --quick" if args.quick else "")
    return save("indicator_scaling", {
        "what": f"exact sandwich standard errors (mislib.sandwich, Woodbury) + the indicator for "
                f"{len(QUANTIZERS)} quantizers, ridge logistic regression, n={N_SAMPLES} unless stated; previous "
                f"method (mislib.indicator.standard_errors, auto, all 256 gradients) side by side up to "
                f"{PREVIOUS_MAX} parameters",
        "quantizers": [f"{name}({params})" for name, params in QUANTIZERS], "summary": summary, "rows": rows},
        command=command)


if __name__ == "__main__":
    main()
