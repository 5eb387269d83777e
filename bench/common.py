"""Shared benchmark plumbing: median timing, thread settings, the machine's state, atomic JSON results."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from mislib.infra.tables import atomic_write_bytes, package_versions

RESULTS = Path(__file__).resolve().parent / "results"


def median_seconds(function, repeats: int = 3) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls (after one untimed warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextlib.contextmanager
def threads(count: int):
    """Run the block with ``count`` threads in torch and in the BLAS / OpenMP pools numpy and scikit-learn use.

    Why: on a small shared machine torch's default of one thread per core makes small tensor programs many
    times slower (threads wait for each other and for the other processes), so every benchmark says which
    setting it measured, and measures both where it matters."""
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(previous)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB).

    VmHWM of /proc/self/status where there is one: getrusage's ru_maxrss is inherited across fork and exec on
    Linux, so a child started by a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    """What the numbers were measured on, including how busy the machine was (load average over 1 minute)."""
    return {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "torch_default_threads": torch.get_num_threads(),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def save(name: str, payload: dict, command: str | None = None) -> Path:
    """bench/results/<name>.json: the payload plus the command, the machine and the package versions."""
    payload = dict(payload, command=command or f"python -m bench.{name}", machine=machine(),
                   packages=package_versions())
    path = RESULTS / f"{name}.json"
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())
    print(json.dumps({k: v for k, v in payload.items() if k not in ("packages", "machine")}, indent=2))
    return path


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
