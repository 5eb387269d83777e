"""Print issue 16's answer for one audit table: ``python tools/baselines_report.py data/results/molecular.csv``, or
``... data/results/synthetic_ranking.csv "gaussian mixture, dimension 128"`` (one data set of the synthetic study).
Absolute tolerance 0.02 (AUROC / R^2) when the table has no ``test_performance_se`` rows, else 1 standard error."""

import sys

import pandas as pd

from mislib.evaluation import predictors

table = pd.read_csv(sys.argv[1])
if len(sys.argv) > 2:
    table = table[table["dataset"] == sys.argv[2]]
has_se = (table["measurement"] == "test_performance_se").any()
found = predictors.conclusions(table, tolerance=1.0 if has_se else 0.02, in_se=has_se, budget=0.02)
print(predictors.conclusions_text(found))
print("\nWhen not to trust it:", predictors.when_not_to_trust(found))
