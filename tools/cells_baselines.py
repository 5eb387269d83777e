"""Insert the section "Does the indicator know more than the accuracy drop?" (issue 16) into notebooks 05 and 06.

    python tools/cells_baselines.py notebooks/05_synthetic_ranking.ipynb notebooks/06_molecular_tradeoff.ipynb

Notebook 05: before the cell containing "## Exercises", else (today: it has none) before its last markdown cell
that starts with "## Conclusions". Notebook 06: before the cell whose source starts with "## 4. Conclusions". New
cells carry no outputs. Running it twice does nothing the second time (the section's title is the marker).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

TITLE = "Does the indicator know more than the accuracy drop?"

INTRO = """A skeptic's question: coarse quantizers damage the model, damaged models generalise differently, and attacks
feed on that. Is the indicator telling us more than how much a quantizer damages the model? We compare it with every
predictor a user has **without shadow models** (`mislib.evaluation.predictors.PREDICTORS`): bits per weight, sparsity,
the naive rules built on them, the standardised distortion $\\sum_k ((Q(\\theta)_k-\\theta_k)/s_k)^2$, the increase of
the training loss, and the drop of test performance (this one needs held-out data). Each is scored as the indicator is:
the fraction of pairs separated by the best attack's intervals that it orders alike, and Kendall's $\\tau$, within
each configuration. Then we **control for utility**: among pairs of releases whose test performance differs by less
than a tolerance (in bootstrap standard errors of the test metric), who still orders privacy as the attack does; and
the partial rank correlation of the ranking score with the attack given the drop."""

SYNTHETIC = [
    ("markdown", f"## {TITLE}\n\n" + INTRO + "\n\nOn the high-dimensional data set, per model (dot: mean "
                 "over configurations, bar: one sd, cross: pooled fraction)."),
    ("code", """import numpy as np
from IPython.display import display

from mislib.evaluation import predictor_figures, predictors

high_table = table[table.dataset == HIGH]
predictor_summary = predictors.summarise_agreement(predictors.predictor_agreement(high_table), ["model"])
fig = predictor_figures.plot_predictor_agreement(predictor_summary, over="model")
savefig(fig, "synthetic_predictor_agreement")
predictor_summary.round(3)"""),
    ("markdown", "**At equal utility.** The fraction of separated pairs ordered as the best attack does, among pairs "
                 "whose test AUROC differs by less than the tolerance (right: no control); then the partial rank "
                 "correlation with the attack given the drop, per predictor across configurations."),
    ("code", """controlled = predictors.utility_controlled(high_table, predictors.DEFAULT_TOLERANCES_SE)
fig = predictor_figures.plot_utility_controlled(controlled)
savefig(fig, "synthetic_utility_controlled")
partial = predictors.summarise_partial(predictors.partial_correlations(high_table))
display(controlled.pivot_table(index="predictor", columns="tolerance", values="concordant_fraction").round(3))
partial.round(3)"""),
    ("code", """baselines_found = predictors.conclusions(high_table, tolerance=1.0, budget=0.02)
print(predictors.conclusions_text(baselines_found))
print("\\nWhen not to trust it:", predictors.when_not_to_trust(baselines_found))
one_se = controlled[(controlled.tolerance == 1.0) & (controlled.predictor == "ranking_score")].iloc[0]
assert baselines_found["controlled_pairs"] == one_se.n_pairs
assert baselines_found["n_separated"] == predictor_summary.query("predictor == 'ranking_score'").n_separated.sum()
assert np.isclose(baselines_found["partial_mean"], partial.set_index("predictor").loc["ranking_score", "partial_mean"],
                  equal_nan=True)
if PRESET == "paper":   # the answer on the published table (recomputed by tests/test_predictors.py)
    assert baselines_found["partial_low"] > 0 and baselines_found["partial_positive"] > baselines_found["partial_negative"]
    assert baselines_found["ranking_score_fraction"] >= baselines_found["test_performance_drop_fraction"]"""),
]

MOLECULAR = [
    ("markdown", f"## {TITLE}\n\n" + INTRO + "\n\nOne configuration is one target (task, embedder, seed and, where "
                 "the table has it, which of the independently trained targets); the reference is the best attack."),
    ("code", """from mislib.evaluation import predictor_figures, predictors

by_kind = ["task_kind", *predictors.configuration_keys(table)]     # task_kind: a label, one per task
predictor_summary = predictors.summarise_agreement(predictors.predictor_agreement(table, by=by_kind), ["task_kind"])
fig = predictor_figures.plot_predictor_agreement(predictor_summary, over="task_kind")
savefig(fig, "molecular_predictor_agreement")
predictor_summary.round(3)"""),
    ("code", """controlled = predictors.utility_controlled(table, predictors.DEFAULT_TOLERANCES_SE)
fig = predictor_figures.plot_utility_controlled(controlled)
savefig(fig, "molecular_utility_controlled")
partial = predictors.summarise_partial(predictors.partial_correlations(table))
display(controlled.pivot_table(index="predictor", columns="tolerance", values="concordant_fraction").round(3))
partial.round(3)"""),
    ("markdown", "**A combined rule.** The most private release by each predictor among those that lose at most "
                 "0.02 of AUROC or $R^2$ (the tolerance of the recommendation below), against the attack's own choice "
                 "in the same budget: how often it is that release (`hit_rate`) and the AUC it gives away "
                 "(`mean_regret`); `random` is a uniformly random candidate."),
    ("code", """budgeted = predictors.recommendation_comparison(table, [0.02])
baselines_found = predictors.conclusions(table, tolerance=1.0, budget=0.02)
display(Markdown(predictors.conclusions_text(baselines_found)))
print("When not to trust it:", predictors.when_not_to_trust(baselines_found))
budgeted.round(3)"""),
    ("code", """picks = budgeted.set_index("predictor")
assert baselines_found["recommend_hit"] == picks.loc["ranking_score", "hit_rate"]
assert baselines_found["recommend_best_single_hit"] == picks.drop(index=["ranking_score", "random"]).hit_rate.max()
assert np.isclose(baselines_found["partial_mean"], partial.set_index("predictor").loc["ranking_score", "partial_mean"],
                  equal_nan=True)
one_se = controlled[(controlled.tolerance == 1.0) & (controlled.predictor == "ranking_score")].iloc[0]
assert baselines_found["controlled_pairs"] == one_se.n_pairs
if PRESET == "paper":   # the answer on the published table
    assert baselines_found["partial_low"] > 0 and baselines_found["partial_positive"] > baselines_found["partial_negative"]
    assert picks.loc["ranking_score", "hit_rate"] > picks.loc["random", "hit_rate"]"""),
]


def _cells(spec):
    out = []
    for kind, source in spec:
        out.append(nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source))
    return out


def _position(notebook, path: Path) -> int:
    sources = [cell.source for cell in notebook.cells]
    if path.name.startswith("06"):
        for i, source in enumerate(sources):
            if source.startswith("## 4. Conclusions"):
                return i
        raise ValueError(f"{path}: no cell starts with '## 4. Conclusions'")
    for i, source in enumerate(sources):
        if "## Exercises" in source:
            return i
    markdown = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"]
    if not markdown:
        raise ValueError(f"{path}: no markdown cell to insert before")
    return markdown[-1]


def insert(path) -> int | None:
    """Insert the section into the notebook at ``path`` (05 or 06, told by the file name); return the index of
    its first cell, or None if it is there already."""
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    if any(TITLE in cell.source for cell in notebook.cells):
        return None
    if path.name.startswith("05"):
        spec = SYNTHETIC
    elif path.name.startswith("06"):
        spec = MOLECULAR
    else:
        raise ValueError(f"{path}: expected notebook 05 or 06")
    at = _position(notebook, path)
    notebook.cells[at:at] = _cells(spec)
    nbformat.write(notebook, path)
    return at


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        where = insert(argument)
        print(f"{argument}: " + ("section already there" if where is None else f"inserted at cell {where}"))
