"""Run every notebook end to end with papermill.

    python -m mislib.reproduce --preset paper --publish  # make reproduce: the published notebooks and artefacts
    python -m mislib.reproduce --preset smoke --only 02  # one notebook (by number or name), under build/smoke/
    python -m mislib.reproduce --workers 2               # experiment grids on 2 processes (joblib)
    python -m mislib.reproduce --dask tcp://host:8786    # experiment grids on an existing Dask cluster

Only ``--publish`` (paper preset; what ``make reproduce`` runs) writes the executed notebooks back to notebooks/ and
figures and tables to figures/ and data/results/, so that a reader sees the published outputs. Every other run
goes under build/<preset>/ (notebooks, figures, tables): it never overwrites a published artefact.
--output-dir and MISLIB_OUTPUT_DIR override these defaults (not with --publish).
The preset reaches each notebook through MISLIB_PRESET (no papermill-injected cell is stored), and the executed
notebooks are normalised (``mislib.infra.notebooks``): the project kernel, no absolute path of this machine.
A failing notebook is reported with its failing cell and the run exits non-zero; the notebook on disk is left
untouched and the failed copy is kept in build/failed/ for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from mislib.infra import notebooks as normal_form
from mislib.infra.tables import atomic_write_bytes
from mislib.infra.paths import PROJECT_ROOT, PUBLISH_VARIABLE
from mislib.infra.presets import NOTEBOOK_SECONDS, PRESET_VARIABLE, PRESETS

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
BUILD_DIR = PROJECT_ROOT / "build"
SMOKE_DIR = BUILD_DIR / "smoke"


@dataclass
class NotebookRun:
    name: str
    seconds: float
    peak_rss_mb: float
    ok: bool
    error: str = ""


def discover(only: str | None = None, directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """Ordered notebooks NN_name.ipynb; ``only`` selects by number prefix, stem or file name."""
    notebooks = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if only is None:
        return notebooks
    chosen = [p for p in notebooks if only in (p.name, p.stem, p.stem[:2])]
    if not chosen:
        names = ", ".join(p.stem for p in notebooks)
        raise SystemExit(f"--only {only!r} matches no notebook; available: {names}")
    return chosen


class _PeakMemory:
    """Peak resident memory of this process's children (the kernel), sampled every 0.2 s."""

    def __init__(self):
        import psutil

        self._process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.wait(0.2):
            total = 0
            for child in self._process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _finish_notebook(executed: Path, source: Path) -> None:
    """Normal form of an executed notebook: no injected cell, no absolute path, the project kernel."""
    notebook = nbformat.read(executed, as_version=4)
    try:
        relative = source.resolve().relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        relative = source.name
    if source.name[:2] in NOTEBOOK_SECONDS:
        normal_form.normalise(notebook, source.name[:2], relative)
    nbformat.write(notebook, executed)


def run_notebook(path: Path, preset: str, device: str, output_dir: Path) -> NotebookRun:
    """Execute ``path`` with its own kernel at ``preset`` (through MISLIB_PRESET, not an injected cell) and write
    the executed copy to ``output_dir``; a failed copy goes to build/failed/."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output_dir.mkdir(parents=True, exist_ok=True)
    scratch = BUILD_DIR / "executing" / path.name
    scratch.parent.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in (PRESET_VARIABLE, "MISLIB_DEVICE")}
    os.environ.update({PRESET_VARIABLE: preset, "MISLIB_DEVICE": device})   # the kernel inherits them
    start = time.perf_counter()
    try:
        with _PeakMemory() as memory:
            try:
                pm.execute_notebook(str(path), str(scratch), cwd=str(path.parent), progress_bar=True)
                ok, error = True, ""
            except PapermillExecutionError as exc:
                ok = False
                error = f"cell {exc.cell_index} (execution count {exc.exec_count}): {exc.ename}: {exc.evalue}"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.perf_counter() - start
    if ok:
        _finish_notebook(scratch, path)
        os.replace(scratch, output_dir / path.name)
    else:
        failed = BUILD_DIR / "failed" / path.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(scratch), failed)
    return NotebookRun(path.stem, seconds, memory.peak / 2**20, ok, error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mislib.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="paper")
    parser.add_argument("--only", help="run one notebook: its number (02), stem or file name")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("MISLIB_N_JOBS", "1")),
                        help="joblib processes for experiment grids (default: MISLIB_N_JOBS, else 1)")
    parser.add_argument("--dask", metavar="ADDRESS", help="run experiment grids on this Dask scheduler")
    parser.add_argument("--publish", action="store_true",
                        help="write the published artefacts: notebooks/, figures/, data/results/ (paper preset "
                             "only; what make reproduce runs)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where executed notebooks go (default: notebooks/ with --publish, else "
                             "build/<preset>/notebooks)")
    parser.add_argument("--summary", type=Path, metavar="JSON",
                        help="also write the per-notebook wall time and peak memory to this JSON file")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda was requested but no CUDA device is available")

    if args.publish and args.preset != "paper":
        parser.error("--publish writes the published artefacts and needs --preset paper")
    if args.publish and (args.output_dir or os.environ.get("MISLIB_OUTPUT_DIR")):
        parser.error("--publish writes notebooks/, figures/ and data/results/: drop --output-dir and "
                     "MISLIB_OUTPUT_DIR")
    if args.publish:
        os.environ[PUBLISH_VARIABLE] = "1"
        output_dir = NOTEBOOK_DIR
    else:
        os.environ[PUBLISH_VARIABLE] = "0"
        os.environ.setdefault("MISLIB_OUTPUT_DIR", str(BUILD_DIR / args.preset))
        output_dir = args.output_dir or BUILD_DIR / args.preset / "notebooks"
        print(f"not publishing: notebooks, figures and tables go under "
              f"{os.path.relpath(os.environ['MISLIB_OUTPUT_DIR'], PROJECT_ROOT)}/ "
              f"(make reproduce publishes at the paper preset)", flush=True)
    os.environ[PRESET_VARIABLE] = args.preset
    os.environ["MISLIB_DEVICE"] = args.device
    os.environ["MISLIB_N_JOBS"] = str(args.workers)
    if args.dask:
        os.environ["MISLIB_DASK_ADDRESS"] = args.dask

    notebooks = discover(args.only)
    runs = []
    for index, path in enumerate(notebooks, 1):
        print(f"[{index}/{len(notebooks)}] {path.name} (preset {args.preset}, device {args.device})", flush=True)
        run = run_notebook(path, args.preset, args.device, output_dir)
        runs.append(run)
        if not run.ok:
            print(f"FAILED {path.name}: {run.error}", file=sys.stderr, flush=True)
            print(f"  the executed copy is in build/failed/{path.name}", file=sys.stderr)
            break

    print("\nnotebook                                   seconds   peak MiB  status")
    for run in runs:
        print(f"{run.name:<42} {run.seconds:8.1f} {run.peak_rss_mb:10.0f}  {'ok' if run.ok else 'FAILED'}")
    total = sum(r.seconds for r in runs)
    peak = max((r.peak_rss_mb for r in runs), default=0.0)
    print(f"{'total':<42} {total:8.1f} {peak:10.0f}")
    if args.summary:
        summary = {"preset": args.preset, "device": args.device, "workers": args.workers,
                   "total_seconds": total, "peak_rss_mb": peak, "notebooks": [asdict(r) for r in runs]}
        atomic_write_bytes(args.summary, (json.dumps(summary, indent=2) + "\n").encode())
    return 0 if all(r.ok for r in runs) and len(runs) == len(notebooks) else 1


if __name__ == "__main__":
    sys.exit(main())
