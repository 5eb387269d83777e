"""Benchmarks: ratios measured side by side in one run, medians over repeats. ``python -m bench`` runs them all;
``python -m bench.<name>`` runs one. Results land in bench/results/<name>.json and the README's table."""
