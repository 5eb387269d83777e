"""Run every notebook end to end with papermill.

    python -m mislib.reproduce --preset paper            # all notebooks, written back with their outputs
    python -m mislib.reproduce --preset smoke --only 02  # one notebook (by number or name)
    python -m mislib.reproduce --workers 2               # experiment grids on 2 processes (joblib)
    python -m mislib.reproduce --dask tcp://host:8786    # experiment grids on an existing Dask cluster

At the paper preset, executed notebooks are written back to notebooks/ and figures and tables to figures/ and
data/results/, so that a reader sees the published outputs. At the smoke preset everything goes under
build/smoke/ instead (notebooks, figures, tables): a quick run never overwrites the published artefacts.
--output-dir and MISLIB_OUTPUT_DIR override these defaults.
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

from mislib.infra.tables import atomic_write_bytes
from mislib.infra.paths import PROJECT_ROOT
from mislib.infra.presets import PRESETS

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
SMOKE_DIR = PROJECT_ROOT / "build" / "smoke"


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


def _mark_injected_cell(path: Path) -> None:
    """nbval re-runs notebooks at the smoke preset from the environment: skip papermill's injected cell."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "nbval-skip" not in tags:
            tags.append("nbval-skip")
    nbformat.write(notebook, path)


def run_notebook(path: Path, preset: str, device: str, output_dir: Path) -> NotebookRun:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output_dir.mkdir(parents=True, exist_ok=True)
    scratch = PROJECT_ROOT / "build" / "executing" / path.name
    scratch.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with _PeakMemory() as memory:
        try:
            pm.execute_notebook(str(path), str(scratch), parameters={"PRESET": preset, "DEVICE": device},
                                kernel_name="python3", cwd=str(path.parent), progress_bar=True)
            ok, error = True, ""
        except PapermillExecutionError as exc:
            ok = False
            error = f"cell {exc.cell_index} (execution count {exc.exec_count}): {exc.ename}: {exc.evalue}"
    seconds = time.perf_counter() - start
    if ok:
        _mark_injected_cell(scratch)
        os.replace(scratch, output_dir / path.name)
    else:
        failed = PROJECT_ROOT / "build" / "failed" / path.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(scratch), failed)
    return NotebookRun(path.stem, seconds, memory.peak / 2**20, ok, error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mislib.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="paper")
    parser.add_argument("--only", help="run one notebook: its number (02), stem or file name")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=1, help="joblib processes for experiment grids")
    parser.add_argument("--dask", metavar="ADDRESS", help="run experiment grids on this Dask scheduler")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where executed notebooks go (default: notebooks/ at paper, build/smoke/notebooks "
                             "at smoke)")
    parser.add_argument("--summary", type=Path, metavar="JSON",
                        help="also write the per-notebook wall time and peak memory to this JSON file")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda was requested but no CUDA device is available")

    if args.preset == "smoke":
        os.environ.setdefault("MISLIB_OUTPUT_DIR", str(SMOKE_DIR))
    output_dir = args.output_dir or (NOTEBOOK_DIR if args.preset == "paper" else SMOKE_DIR / "notebooks")
    os.environ["MISLIB_PRESET"] = args.preset
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
