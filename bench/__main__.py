"""Run every benchmark, then print the README's performance table (``make bench``; about 6 minutes on 2 cores).

    python -m bench                 # batched training, indicator vs LiRA, indicator scaling, tanh-MLP scaling,
                                    # reproduce (smoke)
    python -m bench --skip reproduce --skip indicator_scaling
    python -m bench --paper         # also time the paper preset of make reproduce (about 30 minutes more)

Each benchmark writes bench/results/<name>.json (``python -m bench.<name>`` runs one on its own), and the
scaling curve is drawn to bench/results/indicator_scaling.png;
``python -m bench.report`` prints the table from whatever results are there.
"""

from __future__ import annotations

import argparse
import time

from bench import batched_training, indicator_scaling, indicator_vs_lira, report, tanh_mlp_scaling
from bench import reproduce as reproduce_bench

BENCHMARKS = {
    "batched_training": lambda: batched_training.main(),
    "indicator_vs_lira": lambda: indicator_vs_lira.main(),
    "indicator_scaling": lambda: indicator_scaling.main([]),
    "tanh_mlp_scaling": lambda: tanh_mlp_scaling.main([]),
    "reproduce": lambda: reproduce_bench.main(["--preset", "smoke"]),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip", action="append", default=[], choices=sorted(BENCHMARKS))
    parser.add_argument("--paper", action="store_true", help="also time make reproduce at the paper preset")
    args = parser.parse_args(argv)
    seconds = {}
    for name, run in BENCHMARKS.items():
        if name in args.skip:
            continue
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        run()
        seconds[name] = time.perf_counter() - start
    if args.paper:
        print("\n=== reproduce (paper) ===", flush=True)
        start = time.perf_counter()
        reproduce_bench.main(["--preset", "paper"])
        seconds["reproduce (paper)"] = time.perf_counter() - start
    print("\n" + "\n".join(f"{name:<22} {value / 60:5.1f} min" for name, value in seconds.items()))
    report.plot_scaling()
    print("\n" + report.markdown())


if __name__ == "__main__":
    main()
