"""Cost of the indicator's standard errors as the model grows from 10^2 to 10^6 parameters.

A ridge logistic regression with p - 1 features on n = 256 samples (features N(0, 1/d)). ``hessian="auto"``
uses the exact Hessian up to ``EXACT_MAX_PARAMETERS`` = 2,000 parameters (``J' L J`` from per-sample Jacobians,
then a Cholesky solve) and conjugate gradients beyond (Jacobi-preconditioned, Hessian-vector products as two
matrix products with the per-sample Jacobians, right-hand sides in blocks), so the switch shows in the curve.
Both methods are also timed side by side where both are affordable. The parameters are a fixed random point,
not a fitted optimum: the cost of one sandwich does not depend on where it is evaluated, and fitting a
10^6-parameter model is not what is measured.

Each size runs in its own process (so that its peak memory is its own) with 1 and 2 torch threads, median over
repeats after a warm-up. At 10^6 parameters the data alone are 2 GB (256 x 10^6 doubles), the per-sample
Jacobians do not fit in memory and are recomputed in every product, and two settings change, recorded in the
results: ``cg_sketch=64`` (64 random sign combinations of the 256 centred gradients instead of all 256: each
variance then has a relative standard deviation of about sqrt(2/64) = 18%, 9% on a standard error) and
``chunk_size=2**25`` (256 MiB chunks of the Jacobian instead of 32 MiB: fewer passes over the products' output).

    python -m bench.indicator_scaling [--max-params 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import torch

from bench.common import median_seconds, peak_rss_mb, save, threads
from mislib.indicator import EXACT_MAX_PARAMETERS, standard_errors
from mislib.evaluation.trainers import LogisticRegression

N_SAMPLES, RIDGE = 256, 1e-2
SIZES = (10 ** 2, 10 ** 3, 2 * 10 ** 3, 3 * 10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6)
SIDE_BY_SIDE_MAX = 3 * 10 ** 3          # both methods timed up to here
BOTH_THREADS_MAX = 10 ** 4              # 1 and 2 threads up to here; beyond, 2 threads only
BIG = 10 ** 6                           # from here: the settings of the module notes
BIG_SETTINGS = dict(cg_sketch=64, chunk_size=2 ** 25)


def model_and_data(n_params: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    d = n_params - 1
    X = torch.randn(N_SAMPLES, d, generator=generator, dtype=torch.float64) / d ** 0.5
    y = (torch.rand(N_SAMPLES, generator=generator, dtype=torch.float64) < 0.5).double()
    model = LogisticRegression(d)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model, X, y


def settings(n_params: int) -> dict:
    return dict(BIG_SETTINGS) if n_params >= BIG else {}


def time_one(n_params: int, hessian: str, n_threads: int) -> dict:
    """One measurement in this process: median seconds, the method used, and this process's peak memory."""
    model, X, y = model_and_data(n_params)
    options = settings(n_params)
    with threads(n_threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random point is not an optimum; the cost is what is measured here

        def run():
            return standard_errors(model, X, y, "logistic", ridge=RIDGE, hessian=hessian, return_details=True,
                                   **options)

        if n_params <= 10 ** 4:
            seconds = median_seconds(run, repeats=3)
        else:  # one timed run (a full warm-up would double the cost): warm torch.func up on a tiny model
            tiny = model_and_data(100)
            standard_errors(*tiny, "logistic", ridge=RIDGE)
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
        details = run() if n_params <= 10 ** 4 else None
    method = details.hessian if details is not None else (
        "exact" if hessian == "exact" or (hessian == "auto" and n_params <= EXACT_MAX_PARAMETERS) else
        "cg" if options.get("cg_sketch") is None or options["cg_sketch"] >= N_SAMPLES else
        f"cg-sketch({options['cg_sketch']})")
    return {"parameters": n_params, "hessian": hessian, "method": method, "threads": n_threads,
            "seconds": seconds, "peak_rss_mb": peak_rss_mb(), **options}


def combinations(n_params: int):
    """(hessian, threads) pairs measured at this size."""
    for n_threads in ((1, 2) if n_params <= BOTH_THREADS_MAX else (2,)):
        for hessian in (("auto", "exact", "cg") if n_params <= SIDE_BY_SIDE_MAX else ("auto",)):
            yield hessian, n_threads


def measure(n_params: int) -> list[dict]:
    """Every combination at one size, in a fresh process (so that the peak memory is this size's)."""
    out = subprocess.run([sys.executable, "-m", "bench.indicator_scaling", "--one", str(n_params)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-params", type=int, default=10 ** 6)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        rows = [time_one(args.one, hessian, n_threads) for hessian, n_threads in combinations(args.one)]
        for row in rows:  # the process's peak: this size's, whatever the combination
            row["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(rows))
        return None
    rows = []
    for size in (s for s in SIZES if s <= args.max_params):
        rows += measure(size)
        for row in rows[-len(list(combinations(size))):]:
            print({k: row[k] for k in ("parameters", "hessian", "method", "threads", "seconds", "peak_rss_mb")},
                  flush=True)
    command = "python -m bench.indicator_scaling" + (f" --max-params {args.max_params}"
                                                      if args.max_params != 10 ** 6 else "")
    return save("indicator_scaling", {
        "what": f"sandwich standard errors, ridge logistic regression, n={N_SAMPLES}; 'auto' is exact up to "
                f"{EXACT_MAX_PARAMETERS} parameters, conjugate gradients beyond",
        "exact_max_parameters": EXACT_MAX_PARAMETERS, "big_settings": {"from": BIG, **BIG_SETTINGS},
        "rows": rows}, command=command)


if __name__ == "__main__":
    main()
