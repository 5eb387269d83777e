"""Experiment grids and their result tables.

Every experiment writes ``data/results/<name>.csv`` (tidy: one row per configuration and seed, columns named in
full) and ``data/results/<name>.json`` (parameters, seeds, package versions, commit, wall time, the SHA-256 of the
CSV and the hash of the configuration). Files are written atomically; a table is reused only when its sidecar
names the same configuration hash and code version and the CSV's checksum matches, so a stale, truncated or
corrupt cache is recomputed, never read.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from mislib import __version__
from mislib.infra.paths import PROJECT_ROOT, results_dir

# Packages whose versions decide the numbers; recorded in every sidecar.
RECORDED_PACKAGES = ("mislib", "torch", "numpy", "scipy", "pandas", "scikit-learn", "rdkit", "onnxruntime")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The package version plus a hash of every mislib source file: any change to the code that computes a
    table makes its cache stale (bumping a version number by hand is too easy to forget)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def config_hash(config: dict) -> str:
    """Stable short hash of a JSON-serialisable configuration (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be read by everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def package_versions() -> dict[str, str]:
    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _csv_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    # Fixed float format: byte-identical tables for identical numbers.
    table.to_csv(buffer, index=False, float_format="%.10g")
    return buffer.getvalue().encode()


def _check_name(name) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"name must be a plain file name (letters, digits, _ . -), got {name!r}")
    return name


def _check_config(config, what: str = "config") -> dict:
    if not isinstance(config, dict):
        raise TypeError(f"{what} must be a dict, got {type(config).__name__}")
    try:
        json.dumps(config, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable (str, numbers, bools, None, lists, dicts): {exc}") from exc
    return config


def _check_frame(table, what: str = "table") -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(table).__name__}")
    return table


def write_table(name: str, table: pd.DataFrame, config: dict, *, seeds: Iterable[int] = (),
                wall_time_s: float | None = None, directory: Path | None = None) -> Path:
    """Write the CSV and its JSON sidecar atomically (CSV first, sidecar last: the sidecar seals the pair)."""
    _check_name(name), _check_frame(table), _check_config(config)
    directory = Path(directory) if directory is not None else results_dir()
    csv_path, json_path = directory / f"{name}.csv", directory / f"{name}.json"
    data = _csv_bytes(table)
    sidecar = {
        "name": name,
        "config": config,
        "config_hash": config_hash(config),
        "code_version": code_version(),
        "seeds": [int(s) for s in seeds],
        "rows": int(len(table)),
        "columns": list(map(str, table.columns)),
        "csv_sha256": hashlib.sha256(data).hexdigest(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "commit": git_commit(),
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 3),
    }
    json_path.unlink(missing_ok=True)  # an unsealed CSV is never trusted
    atomic_write_bytes(csv_path, data)
    atomic_write_bytes(json_path, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    return csv_path


class CacheMiss(Exception):
    """Raised internally when a cached table cannot be used; the reason is in the message."""


def read_table(name: str, config: dict | None = None, directory: Path | None = None) -> pd.DataFrame:
    """Read a sealed table; raise CacheMiss if missing, stale (other config or code version) or corrupt."""
    directory = Path(directory) if directory is not None else results_dir()
    csv_path, json_path = directory / f"{name}.csv", directory / f"{name}.json"
    if not csv_path.exists() or not json_path.exists():
        raise CacheMiss(f"{name}: no sealed table in {directory}")
    try:
        sidecar = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheMiss(f"{name}: sidecar {json_path.name} is corrupt ({exc})") from exc
    data = csv_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sidecar.get("csv_sha256"):
        raise CacheMiss(f"{name}: {csv_path.name} does not match its checksum (truncated or edited)")
    if config is not None and (sidecar.get("config_hash") != config_hash(config)
                               or sidecar.get("code_version") != code_version()):
        raise CacheMiss(f"{name}: cached for another configuration or code version")
    return pd.read_csv(io.BytesIO(data))


def cached_table(name: str, config: dict, compute: Callable[[], pd.DataFrame], *, seeds: Iterable[int] = (),
                 refresh: bool = False, directory: Path | None = None) -> pd.DataFrame:
    """Return the table for ``config``: read it if a valid cache exists, else compute, write and return it."""
    _check_name(name), _check_config(config)
    if not refresh:
        try:
            return read_table(name, config, directory)
        except CacheMiss:
            pass
    start = time.perf_counter()
    table = _check_frame(compute(), f"compute() for {name!r}")
    write_table(name, table, config, seeds=seeds, wall_time_s=time.perf_counter() - start, directory=directory)
    # Read back what was written, so the returned table is exactly the cached one (same dtypes, same rounding).
    return read_table(name, config, directory)


def cached_grid(name: str, configs: list[dict], compute_rows: Callable[[dict], pd.DataFrame], *,
                shared: dict | None = None, refresh: bool = False, progress: bool = True,
                directory: Path | None = None) -> pd.DataFrame:
    """Run a grid of configurations, caching each one's rows, then write the sealed table ``<name>``.

    Each configuration's rows are stored atomically in ``data/cache/grid/<name>/<hash>.csv`` as soon as they are
    computed, so a run killed midway resumes where it stopped and finishes with the same table. ``shared`` is
    the part of the configuration common to every point (it is part of each point's hash). Points run through
    ``parallel_map`` (serial, joblib processes or a Dask cluster).
    """
    from mislib.infra.paths import cache_dir

    _check_name(name)
    if not isinstance(configs, list) or not configs:
        raise ValueError("configs must be a non-empty list: a grid needs at least one configuration")
    for config in configs:
        _check_config(config, "each entry of configs")
    shared = dict(_check_config(shared or {}, "shared"))
    full = {"grid": configs, "shared": shared}
    if not refresh:
        try:
            return read_table(name, full, directory)
        except CacheMiss:
            pass
    point_dir = cache_dir() / "grid" / name
    start = time.perf_counter()
    todo = [c for c in configs if refresh or not _point_cached(point_dir, {**shared, **c})]
    parallel_map(_GridPoint(compute_rows, shared, point_dir), todo, progress=name if progress else None)
    table = pd.concat([_read_point(point_dir, {**shared, **c}) for c in configs], ignore_index=True)
    seeds = sorted({int(c["seed"]) for c in configs if "seed" in c})
    write_table(name, table, full, seeds=seeds, wall_time_s=time.perf_counter() - start, directory=directory)
    return read_table(name, full, directory)


class _GridPoint:
    """Picklable worker: compute one configuration's rows and store them with a checksum."""

    def __init__(self, compute_rows, shared, point_dir):
        self.compute_rows, self.shared, self.point_dir = compute_rows, shared, point_dir

    def __call__(self, config: dict) -> None:
        rows = self.compute_rows({**self.shared, **config})
        if not isinstance(rows, pd.DataFrame):
            rows = pd.DataFrame(rows)
        key = _point_key({**self.shared, **config})
        data = _csv_bytes(rows)
        atomic_write_bytes(self.point_dir / f"{key}.csv", data)
        atomic_write_bytes(self.point_dir / f"{key}.sha256", hashlib.sha256(data).hexdigest().encode())


def _point_cached(point_dir: Path, config: dict) -> bool:
    try:
        _read_point(point_dir, config)
        return True
    except CacheMiss:
        return False


def _point_key(config: dict) -> str:
    """A grid point's cache key: its full configuration and the code version."""
    return config_hash({"config": config, "code_version": code_version()})


def _read_point(point_dir: Path, config: dict) -> pd.DataFrame:
    key = _point_key(config)
    csv_path, sum_path = point_dir / f"{key}.csv", point_dir / f"{key}.sha256"
    if not csv_path.exists() or not sum_path.exists():
        raise CacheMiss(f"grid point {key} not computed yet")
    data = csv_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sum_path.read_text().strip():
        csv_path.unlink(missing_ok=True)
        sum_path.unlink(missing_ok=True)
        raise CacheMiss(f"grid point {key} was corrupt and has been removed")
    return pd.read_csv(io.BytesIO(data))


def parallel_map(function: Callable[[Any], Any], items: list, *, n_jobs: int | None = None,
                 progress: str | None = None) -> list:
    """Map ``function`` over ``items`` with joblib, order preserved.

    Backend: ``MISLIB_DASK_ADDRESS`` (a running Dask scheduler) if set, else joblib's process pool with
    ``n_jobs`` workers (``MISLIB_N_JOBS``, default 1 = serial, which is what tests and smoke runs use).
    """
    from joblib import Parallel, delayed, parallel_config
    from tqdm.auto import tqdm

    n_jobs = int(os.environ.get("MISLIB_N_JOBS", "1")) if n_jobs is None else n_jobs
    address = os.environ.get("MISLIB_DASK_ADDRESS")
    iterator = tqdm(items, desc=progress, disable=progress is None, leave=False)
    if address:
        from distributed import Client

        with Client(address), parallel_config(backend="dask"):
            return Parallel()(delayed(function)(item) for item in iterator)
    if n_jobs == 1:
        return [function(item) for item in iterator]
    return Parallel(n_jobs=n_jobs)(delayed(function)(item) for item in iterator)
