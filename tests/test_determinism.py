"""Determinism and resumability of a real experiment (issue 8, items 1 and 2).

The experiment is a small grid of the molecular study (``molecular_study.run_study``: molecules loaded and
embedded, an MLP head and its shadow models trained, ten quantized releases including stochastic rounding, LiRA,
the loss attack and the white-box attack with bootstrap intervals, the indicator with bootstrap refits): every
source of randomness of the library is on the path. Each run is a fresh Python process (what a restarted kernel
is), with its own output and cache folders, a different ``PYTHONHASHSEED`` and differently seeded global
generators (``random``, ``numpy``, ``torch``), so that only the library's own seeds can make the numbers agree.

What must hold:

1. runs in fresh processes give byte-identical results tables (``data/results/<name>.csv``), apart from the
   wall-time rows (``measurement`` ending in ``seconds``), the only entries that measure the machine rather than
   compute a result;
2. a run killed with SIGKILL in the middle of the grid, then started again, publishes no half table, reuses the
   grid points it had finished (their cache files untouched) and ends with the same table as an uninterrupted run.

Three processes do both: an uninterrupted run, and beside it a run that is killed and then restarted.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mislib.infra.tables import code_version
from mislib.infra.paths import PROJECT_ROOT

NAME = "determinism_smoke"
N_POINTS = 4                  # tasks x seeds below
KILL_AFTER = 2                # grid points sealed before the kill

CHILD = f"""
import os
import random

import numpy
import torch

torch.set_num_threads(1)   # as the notebooks do (tiny tensors); 1 and 2 threads were checked to agree
# Global generators seeded differently in every run: results must come from the library's own seeds only.
seed = int(os.environ["PYTHONHASHSEED"])
random.seed(seed), numpy.random.seed(seed), torch.manual_seed(seed)
from mislib.studies import molecular as study

settings = dict(n_molecules=120, data_seed=0, reference_fraction=0.2, test_fraction=0.2, n_features=8, clip=5.0,
                hidden=4, ridge=1e-2, n_iter=200, lr=0.02, n_shadow=4, n_targets=1, n_bootstrap=10,
                indicator_bootstrap=2)
quantizers = (("identity", "identity", {{}}), ("uniform 4-bit", "uniform", {{"bits": 4}}),
              ("uniform 4-bit, pow2 scale", "uniform", {{"bits": 4, "scale_format": "pow2"}}),
              ("k-means 2-bit", "kmeans", {{"bits": 2}}), ("ternary absmean", "ternary_absmean", {{}}),
              ("ternary 90% sparse", "ternary_sparsity", {{"sparsity": 0.9}}),
              ("pruning 50%", "magnitude_pruning", {{"sparsity": 0.5}}), ("grid 0.1", "fixed_grid", {{"step": 0.1}}),
              ("stochastic rounding 0.1", "stochastic_rounding", {{"step": 0.1}}), ("sign", "sign", {{}}))
study.run_study(settings, tasks=("b3db_classification", "freesolv"), embedders=("maccs",), seeds=(0, 1),
                quantizers=quantizers, name="{NAME}", progress=False)
"""


def _start(folder: Path, hash_seed: int) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISLIB_")}
    env.update(MISLIB_OUTPUT_DIR=str(folder / "outputs"), MISLIB_CACHE_DIR=str(folder / "cache"),
               MISLIB_N_JOBS="1", PYTHONHASHSEED=str(hash_seed))
    log = open(folder / "log.txt", "wb")
    process = subprocess.Popen([sys.executable, "-c", CHILD], cwd=PROJECT_ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process


def _finish(process: subprocess.Popen, folder: Path, timeout: float = 300) -> Path:
    code = process.wait(timeout=timeout)
    assert code == 0, f"run in {folder} failed ({code}):\n{(folder / 'log.txt').read_text()[-3000:]}"
    return folder / "outputs" / "data" / "results" / f"{NAME}.csv"


def _points(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Sealed grid points (a checksum file exists only once its CSV is complete): name -> (mtime, bytes)."""
    directory = folder / "cache" / "grid" / NAME
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.glob("*.csv"))
            if p.with_suffix(".sha256").exists()}


def _without_wall_times(path: Path) -> tuple[bytes, int]:
    """The CSV's bytes with the wall-time rows left out, and how many were left out."""
    lines = path.read_bytes().decode().splitlines(keepends=True)
    measurement = next(csv.reader([lines[0]])).index("measurement")
    kept = [line for line in lines[1:] if not next(csv.reader([line]))[measurement].endswith("seconds")]
    return (lines[0] + "".join(kept)).encode(), len(lines) - 1 - len(kept)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and beside it a run killed after KILL_AFTER grid points then started again: three
    fresh processes, each with its own hash seed and global generators."""
    code, started = code_version(), time.time()   # the code is part of every cache key
    root = tmp_path_factory.mktemp("determinism")
    reference, killed = root / "uninterrupted", root / "killed"
    first = _start(reference, hash_seed=1)
    victim = _start(killed, hash_seed=2)
    try:
        deadline = time.monotonic() + 240
        while len(_points(killed)) < KILL_AFTER and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        kill_code = victim.wait(timeout=30)
        sealed = _points(killed)
        table_after_kill = (killed / "outputs" / "data" / "results" / f"{NAME}.csv").exists()
        reference_table = _finish(first, reference)
    finally:
        for process in (first, victim):
            if process.poll() is None:
                process.kill()
                process.wait()
    resumed_table = _finish(_start(killed, hash_seed=3), killed)
    edited = [p.name for p in (PROJECT_ROOT / "mislib").rglob("*.py") if p.stat().st_mtime > started]
    if code_version() != code or edited:
        pytest.skip(f"mislib's source files changed while the runs were going ({edited}): their cache keys differ")
    return dict(reference=reference_table, resumed=resumed_table, kill_code=kill_code, sealed=sealed,
                table_after_kill=table_after_kill, points_after=_points(killed), reference_points=_points(reference))


def test_same_seed_same_table_in_fresh_processes(runs):
    """The resumed table was computed by two processes (the killed one and its restart), the reference by a third:
    every number agrees to the last byte."""
    reference, dropped = _without_wall_times(runs["reference"])
    assert _without_wall_times(runs["resumed"])[0] == reference
    assert reference.count(b"\n") - 1 > 1000 and dropped > 0   # a real table, and it had wall-time rows to leave out
    table = reference.decode()
    for needle in ("lira_online_fixed_variance", "whitebox", "indicator", "stochastic rounding 0.1", "freesolv",
                   "b3db_classification"):
        assert needle in table, needle


def test_killed_run_resumes_where_it_stopped(runs):
    assert runs["kill_code"] == -signal.SIGKILL, f"the run ended before it was killed ({runs['kill_code']})"
    sealed = runs["sealed"]
    assert KILL_AFTER <= len(sealed) < N_POINTS, sorted(sealed)
    assert not runs["table_after_kill"]                           # no half table is ever published
    after = runs["points_after"]
    assert sorted(after) == sorted(runs["reference_points"]), (sorted(after), sorted(runs["reference_points"]))
    assert len(after) == N_POINTS
    assert all(after[name] == sealed[name] for name in sealed)    # finished points reused, not recomputed
