"""Shared benchmark plumbing: median timing and atomic JSON results."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from mislib.experiments import atomic_write_bytes, package_versions

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


def save(name: str, payload: dict) -> Path:
    payload = dict(payload, machine={"python": platform.python_version(), "torch_threads": torch.get_num_threads(),
                                     "cpu": platform.processor() or platform.machine()},
                   packages=package_versions())
    path = RESULTS / f"{name}.json"
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())
    print(json.dumps({k: v for k, v in payload.items() if k not in ("packages", "machine")}, indent=2))
    return path
