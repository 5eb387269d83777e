"""Wall time per notebook and peak memory of ``make reproduce`` at a preset.

Runs ``python -m mislib.infra.reproduce --preset PRESET --summary ...`` in a subprocess (papermill, every notebook, a
fresh kernel each; the peak is the resident memory of the kernel, sampled every 0.2 s) with everything written
under build/bench/<preset>/ (executed notebooks, figures, tables), so the published notebooks, figures and
tables are never overwritten. Everything is computed from scratch, as after a fresh clone: a fresh results
folder (nothing read from data/results) and a fresh cache (MISLIB_CACHE_DIR: embeddings and the per-point cache
of experiment grids), unless ``--shared-cache`` reuses data/cache (a second run: much faster).

Targets on 2 cores: smoke under 3 minutes in all, paper under 30 minutes in all, peak memory under 4 GiB.

    python -m bench.reproduce [--preset smoke|paper] [--workers N] [--shared-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from bench.common import save
from mislib.infra.paths import PROJECT_ROOT

TARGET_SECONDS = {"smoke": 3 * 60, "paper": 30 * 60}
TARGET_PEAK_MB = 4 * 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(TARGET_SECONDS), default="smoke")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--shared-cache", action="store_true",
                        help="reuse data/cache (embeddings, grid points) instead of a fresh cache")
    args = parser.parse_args(argv)
    out = PROJECT_ROOT / "build" / "bench" / args.preset
    shutil.rmtree(out, ignore_errors=True)        # from scratch: no cached table is reused
    summary_path = out / "summary.json"
    command = [sys.executable, "-m", "mislib.infra.reproduce", "--preset", args.preset, "--workers", str(args.workers),
               "--output-dir", str(out / "notebooks"), "--summary", str(summary_path)]
    env = dict(os.environ, MISLIB_OUTPUT_DIR=str(out))
    if not args.shared_cache:
        env["MISLIB_CACHE_DIR"] = str(out / "cache")
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT)
    wall = time.perf_counter() - start
    if not summary_path.exists():
        raise SystemExit(f"mislib.infra.reproduce wrote no summary (exit status {completed.returncode})")
    summary = json.loads(summary_path.read_text())
    total, peak = summary["total_seconds"], summary["peak_rss_mb"]
    ok = completed.returncode == 0
    slowest = max(summary["notebooks"], key=lambda r: r["seconds"], default=None)
    return save(f"reproduce_{args.preset}", {
        "what": f"python -m mislib.infra.reproduce --preset {args.preset} (every notebook, papermill), outputs under "
                f"build/bench/{args.preset}",
        "preset": args.preset, "workers": args.workers, "fresh_cache": not args.shared_cache,
        "all_notebooks_ok": ok,
        "total_seconds": total, "wall_seconds_with_startup": wall, "peak_rss_mb": peak,
        "target_total_seconds": TARGET_SECONDS[args.preset], "target_peak_rss_mb": TARGET_PEAK_MB,
        "met": ok and total <= TARGET_SECONDS[args.preset] and peak <= TARGET_PEAK_MB,
        "slowest_notebook": slowest["name"] if slowest else None,
        "notebooks": summary["notebooks"],
    }, command=f"python -m bench.reproduce --preset {args.preset}"
               + (f" --workers {args.workers}" if args.workers != 1 else "")
               + (" --shared-cache" if args.shared_cache else ""))


if __name__ == "__main__":
    main()
