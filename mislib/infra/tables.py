"""Experiment grids and their result tables.

Every experiment writes ``data/results/<name>.csv`` (tidy: one row per configuration and seed, columns named in
full) and ``data/results/<name>.json`` (parameters, seeds, package versions, commit, wall time, the SHA-256 of the
CSV and the hash of the configuration). Files are written atomically; a table is reused only when its sidecar
names the same configuration hash and code version and the CSV's checksum matches, so a stale, truncated or
corrupt cache is recomputed, never read.

The code version of a table is what the table depends on, not every line of the library: the source of the mislib
modules its computation uses (found from the ``compute`` callable, then every mislib module those import,
transitively) plus the versions of the numerical packages. Editing a plotting helper or notebook 06's study leaves
the theory tables valid, and a fresh clone reuses every committed table whose inputs did not change.

Tables are written under ``paths.results_dir()`` (build/outputs unless ``make reproduce`` publishes); a valid
published table in data/results/ is read (and copied next to the run's other outputs) rather than recomputed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import io
import shutil
import types
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

from mislib.infra.paths import PROJECT_ROOT, display_path, published_results_dir, results_dir

# Packages whose versions decide the numbers; recorded in every sidecar.
RECORDED_PACKAGES = ("mislib", "torch", "numpy", "scipy", "pandas", "scikit-learn", "rdkit", "onnxruntime")


# Packages whose versions are part of every table's code version (a new numpy may change the last digits).
KEY_PACKAGES = ("torch", "numpy", "scipy", "pandas", "scikit-learn", "rdkit", "onnxruntime")
# The writer's own module is always a dependency: it decides the CSV format.
WRITER_MODULE = __name__


_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    """The source file of mislib module ``name`` (found on disk, nothing imported), or None."""
    parts = name.split(".")
    if parts[0] != "mislib":
        return None
    base = _PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py") if len(parts) > 1 else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imported_mislib_modules(name: str, path: Path) -> set[str]:
    """The mislib modules named by any import statement of ``path`` (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)   # "from mislib import mis"
    return {m for m in found if _module_file(m) is not None}


@functools.lru_cache(maxsize=None)
def dependency_closure(modules: tuple[str, ...]) -> tuple[str, ...]:
    """``modules`` and every mislib module they import, transitively, with their parent packages (sorted)."""
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            raise ValueError(f"{name!r} is not an importable mislib module")
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imported_mislib_modules(name, path) - seen)
    return tuple(sorted(seen))


def _all_modules() -> tuple[str, ...]:
    return tuple(sorted(".".join(("mislib", *p.relative_to(_PACKAGE_DIR).with_suffix("").parts)).removesuffix(
        ".__init__") for p in _PACKAGE_DIR.rglob("*.py")))


@functools.lru_cache(maxsize=None)
def code_version(modules: tuple[str, ...] | None = None) -> str:
    """Hash of the source of ``modules`` and of every mislib module they import (transitively), of this writer,
    and of the versions of the numerical packages. ``None``: every mislib module (the conservative choice when
    the dependencies of a computation are unknown)."""
    names = _all_modules() if modules is None else dependency_closure(tuple(sorted({*modules, WRITER_MODULE})))
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + _module_file(name).read_bytes() + b"\0")
    for package in KEY_PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        digest.update(f"{package}=={version}\0".encode())
    return digest.hexdigest()[:16]


def dependencies_of(compute) -> tuple[str, ...] | None:
    """The mislib modules a ``compute`` callable uses: the modules, functions, classes and objects it names (in
    its code, nested code and closure), following callables defined outside mislib (a notebook's helper) into
    their own names. ``None`` when none is found (then every module counts)."""
    found, seen = set(), set()

    def visit(value, depth=0):
        if id(value) in seen or depth > 4:
            return
        seen.add(id(value))
        if isinstance(value, types.ModuleType):
            module = value.__name__
        elif isinstance(value, functools.partial):
            visit(value.func, depth + 1), [visit(v, depth + 1) for v in (*value.args, *value.keywords.values())]
            return
        else:
            module = getattr(value, "__module__", None) or type(value).__module__
            if not module.startswith("mislib") and not isinstance(value, (types.FunctionType, types.MethodType)):
                module = type(value).__module__
        if module and module.split(".")[0] == "mislib":
            found.add(module)
            return
        function = getattr(value, "__func__", value)
        if isinstance(function, types.FunctionType):
            names = set()
            stack = [function.__code__]
            while stack:
                code = stack.pop()
                names.update(code.co_names)
                stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
            for name in names:
                if name in function.__globals__:
                    visit(function.__globals__[name], depth + 1)
            for cell in function.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth + 1)
                except ValueError:   # an empty cell
                    pass
        elif callable(value) and not isinstance(value, type) and not inspect.isbuiltin(value):
            visit(type(value), depth + 1)

    visit(compute)
    return tuple(sorted(found)) or None


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


def cached_tensors(path: Path, compute: Callable[[], dict]) -> dict:
    """A dict of tensors (and numbers) stored at ``path`` with a SHA-256 checksum beside it: read back when both
    are there and agree, else computed by ``compute()`` and written atomically. A file whose checksum does not
    match is removed and recomputed (what ``cached_grid`` does with a corrupt point)."""
    import torch

    path, sum_path = Path(path), Path(f"{path}.sha256")
    if path.exists() and sum_path.exists():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == sum_path.read_text().strip():
            return torch.load(io.BytesIO(data), weights_only=True)
        path.unlink(missing_ok=True)
        sum_path.unlink(missing_ok=True)
    value = compute()
    buffer = io.BytesIO()
    torch.save(value, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_bytes(sum_path, hashlib.sha256(data).hexdigest().encode())
    return value


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


def csv_bytes(table: pd.DataFrame) -> bytes:
    """The bytes of ``table`` as every result CSV is written (fixed float format, no index)."""
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


def _modules_key(modules) -> tuple[str, ...] | None:
    if modules is None:
        return None
    if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
        raise TypeError(f"modules must be a sequence of module names, got {modules!r}")
    return tuple(sorted(set(modules)))


def write_table(name: str, table: pd.DataFrame, config: dict, *, seeds: Iterable[int] = (),
                wall_time_s: float | None = None, directory: Path | None = None,
                modules: Iterable[str] | None = None) -> Path:
    """Write the CSV and its JSON sidecar atomically (CSV first, sidecar last: the sidecar seals the pair).

    ``modules``: the mislib modules the table was computed with (its code version follows their imports);
    ``None`` means the whole library."""
    _check_name(name), _check_frame(table), _check_config(config)
    modules = _modules_key(modules)
    directory = Path(directory) if directory is not None else results_dir()
    csv_path, json_path = directory / f"{name}.csv", directory / f"{name}.json"
    data = csv_bytes(table)
    sidecar = {
        "name": name,
        "config": config,
        "config_hash": config_hash(config),
        "code_modules": "all" if modules is None else list(modules),
        "code_version": code_version(modules),
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


def read_sidecar(name: str, directory: Path | None = None) -> dict:
    """The JSON sidecar of table ``name`` (raises CacheMiss when missing or corrupt)."""
    directory = Path(directory) if directory is not None else results_dir()
    json_path = directory / f"{name}.json"
    if not json_path.exists():
        raise CacheMiss(f"{name}: no sealed table in {directory}")
    try:
        return json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheMiss(f"{name}: sidecar {json_path.name} is corrupt ({exc})") from exc


def sidecar_code_version(sidecar: dict) -> str:
    """The code version that the current code gives for the modules a sidecar names."""
    modules = sidecar.get("code_modules", "all")
    return code_version(None if modules == "all" else _modules_key(modules))


def read_table(name: str, config: dict | None = None, directory: Path | None = None, *,
               modules: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a sealed table; raise CacheMiss if missing, stale (other config or code version) or corrupt.

    With ``config``, the table must have been written for that configuration by the current code of
    ``modules`` (``None``: the modules its sidecar names)."""
    directory = Path(directory) if directory is not None else results_dir()
    csv_path = directory / f"{name}.csv"
    sidecar = read_sidecar(name, directory)
    if not csv_path.exists():
        raise CacheMiss(f"{name}: no sealed table in {directory}")
    data = csv_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sidecar.get("csv_sha256"):
        raise CacheMiss(f"{name}: {csv_path.name} does not match its checksum (truncated or edited)")
    if config is not None:
        expected = sidecar_code_version(sidecar) if modules is None else code_version(_modules_key(modules))
        if sidecar.get("config_hash") != config_hash(config):
            raise CacheMiss(f"{name}: cached for another configuration")
        if sidecar.get("code_version") != expected:
            raise CacheMiss(f"{name}: cached by another code version (a module it depends on changed)")
    return pd.read_csv(io.BytesIO(data))


def _read_cached(name: str, config: dict, directory: Path | None, modules) -> pd.DataFrame:
    """The run's own table, else (outside ``make reproduce``) a valid published one, copied next to the run's
    other outputs so that its sidecar is where ``results_dir()`` says."""
    try:
        return read_table(name, config, directory, modules=modules)
    except CacheMiss:
        if directory is not None or results_dir().resolve() == published_results_dir().resolve():
            raise
    table = read_table(name, config, published_results_dir(), modules=modules)
    for suffix in (".csv", ".json"):
        shutil.copyfile(published_results_dir() / f"{name}{suffix}", results_dir() / f"{name}{suffix}")
    return table


def _valid_cache(name: str, config: dict, directory: Path | None, modules) -> pd.DataFrame | None:
    """The cached table when it is valid for ``config`` and ``modules``, else None."""
    try:
        return _read_cached(name, config, directory, modules)
    except CacheMiss:
        return None


def cached_table(name: str, config: dict, compute: Callable[[], pd.DataFrame], *, seeds: Iterable[int] = (),
                 refresh: bool = False, directory: Path | None = None,
                 modules: Iterable[str] | None = None) -> pd.DataFrame:
    """Return the table for ``config``: read it if a valid cache exists, else compute, write and return it.

    ``modules``: the mislib modules ``compute`` depends on; by default found from ``compute`` itself
    (``dependencies_of``). A published table in data/results/ counts as a valid cache for every run."""
    _check_name(name), _check_config(config)
    modules = _modules_key(modules) if modules is not None else dependencies_of(compute)
    cached = None if refresh else _valid_cache(name, config, directory, modules)
    if cached is not None:
        return cached
    start = time.perf_counter()
    table = _check_frame(compute(), f"compute() for {name!r}")
    written = write_table(name, table, config, seeds=seeds, wall_time_s=time.perf_counter() - start,
                          directory=directory, modules=modules)
    print(f"{name}: computed and written to {display_path(written)}")
    # Read back what was written, so the returned table is exactly the cached one (same dtypes, same rounding).
    return read_table(name, config, directory, modules=modules)


def cached_grid(name: str, configs: list[dict], compute_rows: Callable[[dict], pd.DataFrame], *,
                shared: dict | None = None, refresh: bool = False, progress: bool = True,
                directory: Path | None = None, modules: Iterable[str] | None = None) -> pd.DataFrame:
    """Run a grid of configurations, caching each one's rows, then write the sealed table ``<name>``.

    Each configuration's rows are stored atomically in ``data/cache/grid/<name>/<hash>.csv`` as soon as they are
    computed, so a run killed midway resumes where it stopped and finishes with the same table. ``shared`` is
    the part of the configuration common to every point (it is part of each point's hash). Points run through
    ``parallel_map`` (serial, joblib processes or a Dask cluster). ``modules`` as in ``cached_table`` (found
    from ``compute_rows`` by default).
    """
    from mislib.infra.paths import cache_dir

    _check_name(name)
    if not isinstance(configs, list) or not configs:
        raise ValueError("configs must be a non-empty list: a grid needs at least one configuration")
    for config in configs:
        _check_config(config, "each entry of configs")
    shared = dict(_check_config(shared or {}, "shared"))
    full = {"grid": configs, "shared": shared}
    modules = _modules_key(modules) if modules is not None else dependencies_of(compute_rows)
    cached = None if refresh else _valid_cache(name, full, directory, modules)
    if cached is not None:
        return cached
    point_dir = cache_dir() / "grid" / name
    version = code_version(modules)
    start = time.perf_counter()
    todo = [c for c in configs if refresh or not _point_cached(point_dir, {**shared, **c}, version)]
    parallel_map(_GridPoint(compute_rows, shared, point_dir, version), todo, progress=name if progress else None)
    table = pd.concat([_read_point(point_dir, {**shared, **c}, version) for c in configs], ignore_index=True)
    seeds = sorted({int(c["seed"]) for c in configs if "seed" in c})
    written = write_table(name, table, full, seeds=seeds, wall_time_s=time.perf_counter() - start,
                          directory=directory, modules=modules)
    print(f"{name}: computed and written to {display_path(written)}")
    return read_table(name, full, directory, modules=modules)


class _GridPoint:
    """Picklable worker: compute one configuration's rows and store them with a checksum."""

    def __init__(self, compute_rows, shared, point_dir, version):
        self.compute_rows, self.shared, self.point_dir, self.version = compute_rows, shared, point_dir, version

    def __call__(self, config: dict) -> None:
        rows = self.compute_rows({**self.shared, **config})
        if not isinstance(rows, pd.DataFrame):
            rows = pd.DataFrame(rows)
        key = _point_key({**self.shared, **config}, self.version)
        data = csv_bytes(rows)
        atomic_write_bytes(self.point_dir / f"{key}.csv", data)
        atomic_write_bytes(self.point_dir / f"{key}.sha256", hashlib.sha256(data).hexdigest().encode())


def _point_cached(point_dir: Path, config: dict, version: str) -> bool:
    try:
        _read_point(point_dir, config, version)
        return True
    except CacheMiss:
        return False


def _point_key(config: dict, version: str) -> str:
    """A grid point's cache key: its full configuration and the code version of its computation."""
    return config_hash({"config": config, "code_version": version})


def _read_point(point_dir: Path, config: dict, version: str) -> pd.DataFrame:
    key = _point_key(config, version)
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
