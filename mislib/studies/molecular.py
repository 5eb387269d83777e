"""The molecular study (THEORY.md §6, issue 6): privacy against performance of quantized MLP heads.

For every task (``mislib.molecules.datasets``), embedder (``mislib.molecules.embedders``) and seed,
``configuration_rows`` (``mislib.studies.molecular_audit``) runs one audit (``mislib.evaluation.audit.run_audit``)
of MLP heads on frozen embeddings and returns its tidy rows; this module runs the grid and reads the table. The
steps that are specific to molecules are in ``mislib.studies.molecular_data`` (steps 1-4); everything else (training target and shadows in one batched call,
release, indicator, attacks, test metrics) is ``mislib.evaluation.audit``.

1. **Molecules.** ``molecules.load(task, n_molecules, seed=data_seed)``: every molecule at the paper preset
   (``"all"``), a fixed subsample at the smoke preset; each embedding is computed once and cached by
   ``embedders.embed_cached``.
   Molecules the embedder fails on (NaN rows) are dropped and counted.
2. **Split** (``split_molecules``, seeded, stratified by class for classification): a *reference* part, used
   only to fit the preprocessing; a *test* part, used only to measure task performance; and the *pool*, which
   the audit splits at random into the target's members and non-members (equal halves) and from which the
   shadow models draw their training halves. No molecule is in two parts.
3. **Features** (``Featuriser``, fitted on the reference molecules only, so that the preprocessing is the same
   public map for the target and every shadow and carries no information about who is a member):
   continuous embeddings (RDKit 2D, MiniMol) are imputed and standardised with ``embedders.Standardiser``
   (clipped at ``clip`` standard deviations); fingerprints (ECFP4, MACCS) stay 0/1. Then every embedding is
   projected on its first ``n_features`` principal components (of the reference molecules), each scaled to
   unit variance (32 at the paper preset): the four embedders are compared with heads of the same size,
   ``h (n_features + 2) + 1`` weights. ``n_features=None`` gives the heads the full representation instead
   (2,048 ECFP4 bits, 167 MACCS keys, 217 RDKit 2D descriptors, 512 MiniMol values), as a chemist would train
   them: up to 32,801 weights per head, polished and given exact sandwich standard errors matrix-free
   (``mislib.tanh_mlp``); ``design_summary`` gives the sizes.
4. **Targets.** Regression labels are standardised with the reference molecules' mean and standard deviation;
   the RMSE is reported back in the task's units (``target_scale`` times the standardised RMSE).
5. **Audit** (``mislib.evaluation.audit.run_audit``) with an ``audit.ModelSpec("mlp", ...)``, the quantizers of
   ``STUDY_QUANTIZERS`` and the bits-by-sparsity releases ``FACTORIAL_RELEASES``; ``n_targets`` of the trained
   models (the target, then shadows) play the target in turn, each an independent training set (column
   ``target``).

The table ``data/results/molecular.csv`` (``run_study``, resumable through ``experiments.cached_grid``) has the
audit's columns (``audit.COLUMNS``) preceded by ``task``, ``task_kind``, ``embedder``, ``n_features``,
``n_molecules``, ``n_reference``, ``n_test``, ``n_pool``, ``target_scale`` and ``init_seed`` (the MLP's
initialisation: the seed, unless the target had to be retrained, see ``configuration_rows``). A configuration
whose target never reached a positive-definite minimum has a single row, method ``failure`` (``failures``).

Reading it: ``main_releases`` (the ten quantizers; the factorial design is ``mislib.studies.bits_sparsity``),
``per_seed`` (one row per audited head and quantizer), ``summarise`` (audited heads averaged), ``pareto_front``,
``quantizer_ranking``, ``attack_comparison`` and ``conclusions`` (what the notebook states, computed from the
table), and ``plot_tradeoff`` (the figure).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mislib.evaluation import agreement
from mislib.evaluation.quantizer_specs import FACTORIAL_SPECS, select_specs
from mislib.infra.checks import check_choice, check_float, check_int
from mislib.tanh_mlp import n_parameters
from mislib.studies import molecular_audit
from mislib.studies.molecular_audit import (FAILURE_MEASUREMENT, INIT_SEED_STRIDE,  # noqa: F401  (re-exported)
                                             MAX_INIT_ATTEMPTS, AuditWorker, configuration_rows,
                                             study_quantizers)
from mislib.studies.molecular_data import (CONTINUOUS_EMBEDDERS, EMBEDDERS, TASKS,  # noqa: F401  (re-exported)
                                            Featuriser, MolecularSplit, PreparedTask, prepare, split_molecules)

# (The molecules' side of the study, steps 1-4 of the notes, is mislib.studies.molecular_data.)

# The quantizers of the study, drawn from the one catalogue (``quantizer_specs.QUANTIZER_SPECS``), in the order
# figures and tables list them. All but identity and pruning publish a float32 scale or codebook computed from
# the weights (a continuous channel, THEORY.md §2).
STUDY_QUANTIZERS = select_specs(("identity", "uniform 8-bit", "uniform 4-bit", "uniform 2-bit", "k-means 3-bit",
                                 "ternary absmean", "ternary 90% sparse", "sign", "pruning 50%", "pruning 90%"))
# The bits-by-sparsity design (issue 14; ``quantizer_specs.FACTORIAL_SPECS``, analysed by
# ``mislib.studies.bits_sparsity``), audited on the same heads: every table of the study holds both.
FACTORIAL_RELEASES = FACTORIAL_SPECS
ALL_RELEASES = STUDY_QUANTIZERS + FACTORIAL_RELEASES
REFERENCE_QUANTIZER = "identity"
LOW_BITS = 2.0   # "aggressive" quantizers in the conclusions: at most this many bits per stored weight

# The reference attack, as (method, measurement): LiRA's online test with one pooled variance, what Carlini et
# al. (2022) recommend below 64 shadow models.
LIRA = ("lira_online_fixed_variance", "auc")
# The strongest attack per release (LiRA's four variants, RMIA online and offline, the loss and white-box attacks).
BEST_ATTACK = ("best_attack", "auc")
# One audited configuration: the releases of one target are compared with each other within it.
# One audited model: a task, an embedder, a seed (the split) and which trained model played the target
# (``run_audit(n_targets=...)``: each is a different random half of the pool, an independent training set).
CONFIGURATION = ("task", "embedder", "seed", "target")
# The privacy and performance measurements the summaries use: (column, method, measurement).
PRIVACY_COLUMNS = (
    ("lira_auc", *LIRA),
    ("lira_advantage", "lira_online_fixed_variance", "advantage"),
    ("lira_tpr_at_1pct_fpr", "lira_online_fixed_variance", "tpr_at_1pct_fpr"),
    ("loss_attack_auc", "loss_threshold", "auc"),
    ("best_attack_auc", "best_attack", "auc"),
    ("r_min", "indicator", "r_min"),
    ("ranking_score", "indicator", "ranking_score"),
    ("ranking_score_averaged", "indicator", "ranking_score_averaged"),
)
PERFORMANCE_COLUMNS = {
    "classification": (("auroc", "test", "auroc"), ("accuracy", "test", "accuracy")),
    "regression": (("r2", "test", "r2"), ("rmse", "test", "rmse"), ("spearman", "test", "spearman")),
}
# The one performance number per task kind the trade-off figure and the ranking use (higher = better).
PRIMARY_PERFORMANCE = {"classification": "auroc", "regression": "r2"}
PERFORMANCE_LABELS = {"auroc": "test AUROC", "accuracy": "test accuracy", "r2": "test R$^2$",
                      "rmse": "test RMSE", "spearman": "test Spearman"}
IDENTIFIERS = ("task", "task_kind", "embedder", "n_features", "n_molecules", "n_reference", "n_test", "n_pool",
               "target_scale", "init_seed")
# Hidden units of the MLP head per task at the paper preset (notebook 06, section 1): 16 on B3DB classification
# (2,341 members); 4 on the regression tasks (192-382 members), where with 16 units the ridge switches units off and
# leaves flat directions with no sandwich (measured: FreeSolv, 33 of 33 heads not at a positive-definite minimum;
# B3DB regression with ECFP4, no initialisation of three reached one). 4 everywhere at the smoke preset.
HEAD_HIDDEN = {"smoke": 4, "paper": {"b3db_classification": 16, "b3db_regression": 4, "freesolv": 4, "solubility": 4}}


def preset_sizes(preset: str, seed: int = 0) -> dict:
    """The sizes of the study at a preset. ``smoke``: two tasks and two embedders, one seed, 100 molecules per
    task, 8 features, 4 hidden units, 6 shadows, 2 audited models per configuration. ``paper``: every task and
    embedder, one seed (the split), every molecule, 32 features, ``HEAD_HIDDEN`` units, 32 shadows and 8 audited models
    per configuration (the target and 7 shadows in turn: 8 independent training sets; ``run_audit(n_targets=)``),
    the uncertainty-averaged indicator instead of bootstrap refits."""
    from mislib.infra.presets import preset_config

    return preset_config(
        preset,
        smoke=dict(tasks=["b3db_classification", "freesolv"], embedders=["maccs", "rdkit2d"], seeds=[seed],
                   n_molecules={task: 100 for task in TASKS}, n_features=8, hidden=HEAD_HIDDEN["smoke"],
                   n_iter=200, n_shadow=6, n_targets=2, n_bootstrap=20, indicator_bootstrap=0),
        paper=dict(tasks=list(TASKS), embedders=list(EMBEDDERS), seeds=[seed], n_molecules={task: "all" for task in TASKS},
                   n_features=32,
                   hidden=HEAD_HIDDEN["paper"], n_iter=500, n_shadow=32, n_targets=8, n_bootstrap=100,
                   indicator_bootstrap=0),
    )


def head_hidden(sizes: dict, task: str) -> int:
    """Hidden units of the head of ``task`` in a preset's sizes (``molecular_audit.head_hidden`` of its
    ``hidden``: an int, or a dict task -> int)."""
    return molecular_audit.head_hidden(sizes["hidden"], task)


def input_dims(sizes: dict) -> dict:
    """``{embedder: inputs of the head}``: the preset's ``n_features`` components, or the full representation's
    width (``n_features=None``)."""
    from mislib.molecules.embedders import get_embedder

    return {e: sizes["n_features"] if sizes["n_features"] is not None else get_embedder(e).dim
            for e in sizes["embedders"]}


def design_summary(sizes: dict) -> str:
    """One line: the heads of each task (hidden units and weights, per embedder when they differ), the shadow
    models and the audited heads."""
    dims = input_dims(sizes)
    heads = []
    for task in sizes["tasks"]:
        h = head_hidden(sizes, task)
        counts = sorted({n_parameters(h, d) for d in dims.values()})
        weights = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,} to {counts[-1]:,}"
        heads.append(f"{task} {h} hidden units ({weights} weights)")
    inputs = (f"{sizes['n_features']} principal components" if sizes["n_features"] is not None else
              "the full representations (" + ", ".join(f"{e} {d:,}" for e, d in dims.items()) + " inputs)")
    return (f"MLP heads on {inputs}: {', '.join(heads)}; {sizes['n_shadow']} shadows, "
            f"{sizes['n_targets']} audited heads per configuration")


def study_settings(sizes: dict, hidden: int | dict | None = None) -> dict:
    """The settings of ``run_study`` (every key of ``SETTING_KEYS``) from a preset's sizes (``preset_sizes``):
    the fixed choices of the study (splits 0.2 / 0.2, clipping at 5 sd, ridge 0.03, learning rate 0.02) and
    the sizes (``hidden`` overrides the preset's hidden units)."""
    return dict(n_molecules=sizes["n_molecules"], data_seed=0, reference_fraction=0.2, test_fraction=0.2,
                n_features=sizes["n_features"], clip=5.0, hidden=sizes["hidden"] if hidden is None else hidden,
                ridge=0.03, n_iter=sizes["n_iter"], lr=0.02, n_shadow=sizes["n_shadow"],
                n_targets=sizes["n_targets"], n_bootstrap=sizes["n_bootstrap"],
                indicator_bootstrap=sizes["indicator_bootstrap"])


def study_items(tasks: Sequence[str] = TASKS, embedders: Sequence[str] = EMBEDDERS,
                seeds: Sequence[int] = (0, 1, 2), n_targets: int | None = None) -> list[dict]:
    """The grid: one item per (task, embedder, seed), or with ``n_targets`` one per (task, embedder, seed,
    target): each audited model is a resumable piece (its configuration's trained batch is cached once,
    ``molecular_audit.trained_batch_path``), so that no piece is longer than one target's audit. Target-major
    order: parallel workers start on different configurations, and later targets find their batch trained."""
    for task in tasks:
        check_choice("task", task, TASKS)
    for embedder in embedders:
        check_choice("embedder", embedder, EMBEDDERS)
    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    if not tasks or not embedders or not seeds:
        raise ValueError("tasks, embedders and seeds must each name at least one")
    items = [{"task": t, "embedder": e, "seed": s} for t in tasks for e in embedders for s in seeds]
    if n_targets is None:
        return items
    return [{**item, "target": target} for target in range(check_int("n_targets", n_targets, minimum=1))
            for item in items]


SETTING_KEYS = ("n_molecules", "data_seed", "reference_fraction", "test_fraction", "n_features", "clip", "hidden",
                "ridge", "n_iter", "lr", "n_shadow", "n_targets", "n_bootstrap", "indicator_bootstrap")


def run_study(settings: dict, *, tasks: Sequence[str] = TASKS, embedders: Sequence[str] = EMBEDDERS,
              seeds: Sequence[int] = (0, 1, 2), quantizers=ALL_RELEASES, name: str = "molecular",
              device: str | None = None, refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Run (or read back) the whole grid and write ``data/results/<name>.csv`` with its sidecar.

    ``settings`` holds every key of ``SETTING_KEYS``. Each (task, embedder, seed) is cached as soon as it is
    done (``experiments.cached_grid``), so an interrupted run resumes. ``device`` is not part of the cache key
    (a CPU and a GPU run are meant to give the same table)."""
    from mislib.infra.tables import cached_grid

    missing = [k for k in SETTING_KEYS if k not in settings]
    extra = [k for k in settings if k not in SETTING_KEYS]
    if missing or extra:
        raise ValueError(f"settings: missing {missing}, unknown {extra}; expected exactly {list(SETTING_KEYS)}")
    shared = {**settings, "quantizers": [[label, qname, dict(params)] for label, qname, params in quantizers]}
    items = study_items(tasks, embedders, seeds, n_targets=settings["n_targets"])
    worker = AuditWorker(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # per-point library warnings (convergence notes) are not results
        return cached_grid(name, items, worker, shared=shared, refresh=refresh, progress=progress)


# --------------------------------------------------------------------------------------------- reading it

def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """The study table, or a ValueError naming what is missing."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    from mislib.evaluation.audit import COLUMNS

    if "target" not in table.columns:
        table = table.assign(target=0)    # a table written before the audit had many targets: one per seed
    needed = ["task", "task_kind", "embedder", *COLUMNS]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing} (is it the molecular study's table?)")
    if table.empty:
        raise ValueError("table is empty")
    return table


def _wide(table: pd.DataFrame, columns) -> pd.DataFrame:
    """One row per (task, task_kind, embedder, quantizer, seed) with the named measurements as columns."""
    keys = ["task", "task_kind", "embedder", "quantizer", "seed", "target"]
    parts = []
    for column, method, measurement in columns:
        part = table[(table["method"] == method) & (table["measurement"] == measurement)]
        parts.append(part.set_index(keys)["value"].rename(column))
    return pd.concat(parts, axis=1).reset_index()


def main_releases(table: pd.DataFrame) -> pd.DataFrame:
    """The table without the releases of the bits-by-sparsity design (``FACTORIAL_RELEASES``), which has its own
    analysis (``mislib.studies.bits_sparsity``): the study's main quantizers and the per-configuration rows."""
    table = check_table(table)
    return table[~table["quantizer"].isin([spec[0] for spec in FACTORIAL_RELEASES])]


def per_seed(table: pd.DataFrame) -> pd.DataFrame:
    """Privacy and performance measurements of the main releases (``main_releases``), one row per audited model
    (``CONFIGURATION``) and quantizer, with ``performance`` (the task kind's primary metric,
    ``PRIMARY_PERFORMANCE``) and ``performance_change`` (minus the identity release of the same audited model:
    the cost of quantizing)."""
    table = main_releases(table)
    columns = list(PRIVACY_COLUMNS)
    for kind_columns in PERFORMANCE_COLUMNS.values():
        columns.extend(kind_columns)
    available = {(m, s) for m, s in zip(table["method"], table["measurement"])}
    wide = _wide(table, [c for c in columns if (c[1], c[2]) in available])
    wide["performance"] = np.nan
    for kind, column in PRIMARY_PERFORMANCE.items():
        rows = wide["task_kind"] == kind
        if rows.any():
            wide.loc[rows, "performance"] = wide.loc[rows, column]
    reference = wide[wide["quantizer"] == REFERENCE_QUANTIZER].set_index(list(CONFIGURATION))
    if reference.empty:
        raise ValueError(f"the table has no {REFERENCE_QUANTIZER!r} rows to measure the cost of quantizing against")
    base = reference["performance"].reindex(pd.MultiIndex.from_frame(wide[list(CONFIGURATION)]))
    wide["performance_change"] = wide["performance"].to_numpy() - base.to_numpy()
    return wide


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Means of ``per_seed`` over the audited models (seeds and targets), one row per (task, task_kind, embedder,
    quantizer), with ``n_seeds``, ``n_models`` (audited models: independent training sets) and the standard error
    over them of ``lira_auc`` and ``performance``."""
    wide = per_seed(table)
    keys = ["task", "task_kind", "embedder", "quantizer"]
    numeric = [c for c in wide.columns if c not in keys + ["seed", "target"]]
    grouped = wide.groupby(keys, sort=False)
    out = grouped[numeric].mean()
    out["n_seeds"] = grouped["seed"].nunique()
    out["n_models"] = grouped.size()
    for column in ("lira_auc", "performance"):
        out[f"{column}_seed_se"] = grouped[column].std(ddof=1) / np.sqrt(out["n_models"])
    return out.reset_index()


def pareto_front(risk, performance) -> np.ndarray:
    """Boolean mask of the points no other point dominates (lower or equal ``risk`` and higher or equal
    ``performance``, strictly better in one). Ties: identical points are all on the front. NaN refused."""
    risk = np.asarray(risk, dtype=np.float64)
    performance = np.asarray(performance, dtype=np.float64)
    if risk.ndim != 1 or performance.shape != risk.shape:
        raise ValueError(f"risk and performance must be 1-d of the same length, got shapes {risk.shape} and "
                         f"{performance.shape}")
    if np.isnan(risk).any() or np.isnan(performance).any():
        raise ValueError("risk and performance must not contain NaN (drop those points first)")
    weakly = (risk[None, :] <= risk[:, None]) & (performance[None, :] >= performance[:, None])
    strictly = (risk[None, :] < risk[:, None]) | (performance[None, :] > performance[:, None])
    dominated = (weakly & strictly).any(axis=1)    # row i: some j is at least as good everywhere, better once
    return ~dominated


def with_pareto(summary: pd.DataFrame, risk: str = "lira_auc", performance: str = "performance",
                by: Sequence[str] = ("task",)) -> pd.DataFrame:
    """``summary`` with a boolean ``pareto`` column: on the front of (``risk``, ``performance``) within each
    group of ``by`` (by default per task: embedder and quantizer both free choices)."""
    for column in (risk, performance, *by):
        if column not in summary.columns:
            raise ValueError(f"summary has no column {column!r}")
    out = summary.copy()
    out["pareto"] = False
    for _, group in out.groupby(list(by), sort=False):
        out.loc[group.index, "pareto"] = pareto_front(group[risk], group[performance])
    return out


def quantizer_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """One row per quantizer, ordered from most to least private by LiRA:

    - ``lira_auc``, ``ranking_score``: means over every task, embedder and audited model;
    - ``lira_rank``, ``ranking_score_rank``: mean rank within each audited model (CONFIGURATION), 1 = most private (lowest
      LiRA AUC, highest ``ranking_score``);
    - ``performance_change_classification`` / ``_regression``: mean change of the primary metric (AUROC, R^2)
      against the identity release, per task kind;
    - ``pareto_count``: in how many tasks' fronts (``with_pareto``) the quantizer appears with some embedder."""
    wide = per_seed(table)
    groups = wide.groupby(list(CONFIGURATION), sort=False)
    wide["lira_rank"] = groups["lira_auc"].rank(method="average", ascending=True)
    wide["ranking_score_rank"] = groups["ranking_score"].rank(method="average", ascending=False)
    by_q = wide.groupby("quantizer", sort=False)
    out = by_q[["lira_auc", "lira_tpr_at_1pct_fpr", "loss_attack_auc", "ranking_score", "lira_rank", "ranking_score_rank"]].mean()
    for kind in ("classification", "regression"):
        part = wide[wide["task_kind"] == kind].groupby("quantizer", sort=False)["performance_change"].mean()
        out[f"performance_change_{kind}"] = part
    front = with_pareto(summarise(table))
    out["pareto_count"] = front[front["pareto"]].groupby("quantizer")["task"].nunique()
    out["pareto_count"] = out["pareto_count"].fillna(0).astype(int)
    return out.sort_values(["lira_auc", "lira_rank"]).reset_index()


def conclusions(table: pd.DataFrame, *, tolerance: float = 0.02) -> dict:
    """The statements of the notebook, computed from the table (numbers rounded only when printed).

    - ``most_private_lira``: the quantizer with the lowest mean LiRA AUC; ``most_private_ranking_score``: the best
      mean rank by ``ranking_score``; with their mean LiRA AUC and that of the identity release;
    - ``cost_classification`` / ``cost_regression``: the mean change of AUROC / R^2 the most private (LiRA)
      quantizer costs against identity; also ``accuracy_change`` (classification);
    - per task kind: the identity release's mean LiRA AUC (``identity_lira_auc_<kind>``) and how much the most
      private quantizer lowers it (``privacy_gain_<kind>``);
    - ``<indicator>_concordant_fraction`` and ``<indicator>_separated_pairs`` for ``ranking_score`` and ``r_min``
      (``mislib.evaluation.agreement.indicator_agreement`` against LiRA, within each ``CONFIGURATION``);
    - ``low_bit_quantizers``: those storing at most ``LOW_BITS`` bits per weight, most private first, with the
      ranges of their mean LiRA AUC and performance changes;
    - ``recommended``: the most private quantizer (lowest mean LiRA AUC) whose mean performance loss is at most
      ``tolerance`` in *both* task kinds, with its numbers (None if no quantizer qualifies)."""
    tolerance = check_float("tolerance", tolerance, low=0.0)
    wide = per_seed(table)
    ranking = quantizer_ranking(table)
    mean = wide.groupby("quantizer")
    lira = mean["lira_auc"].mean()
    best_lira = str(ranking.iloc[0]["quantizer"])
    best_ranking_score = str(ranking.sort_values(["ranking_score_rank", "lira_auc"]).iloc[0]["quantizer"])
    out = {
        "most_private_lira": best_lira,
        "most_private_lira_auc": float(lira[best_lira]),
        "most_private_ranking_score": best_ranking_score,
        "most_private_ranking_score_lira_auc": float(lira[best_ranking_score]),
        "identity_lira_auc": float(lira[REFERENCE_QUANTIZER]),
        "n_quantizers": int(wide["quantizer"].nunique()),
        "n_tasks": int(wide["task"].nunique()),
        "n_embedders": int(wide["embedder"].nunique()),
        "n_seeds": int(wide["seed"].nunique()),
        "n_models": int(wide.drop_duplicates(list(CONFIGURATION)).shape[0]),
        "n_shadow": _shadow_count(table),
        "tolerance": tolerance,
    }
    out.update(_costs_by_kind(wide, best_lira))
    out.update(_agreement_low_bits_and_recommendation(table, ranking, tolerance))
    return out


def _shadow_count(table: pd.DataFrame) -> int | None:
    """Shadow models per audit, from the cost rows (``shadow_model_fits`` = 1 + shadows); None without them."""
    fits = table.loc[(table["method"] == "cost") & (table["measurement"] == "shadow_model_fits"), "value"]
    return int(fits.max()) - 1 if len(fits) else None


def _costs_by_kind(wide: pd.DataFrame, best_lira: str) -> dict:
    """Per task kind: what the most private quantizer costs, the identity release's LiRA AUC and performance,
    and the privacy gained; the accuracy change for classification (``conclusions``)."""
    out = {}
    for kind in ("classification", "regression"):
        part = wide[wide["task_kind"] == kind]
        if part.empty:
            continue
        by_q = part.groupby("quantizer")
        out[f"cost_{kind}"] = float(by_q["performance_change"].mean()[best_lira])
        out[f"identity_lira_auc_{kind}"] = float(by_q["lira_auc"].mean()[REFERENCE_QUANTIZER])
        out[f"privacy_gain_{kind}"] = out[f"identity_lira_auc_{kind}"] - float(by_q["lira_auc"].mean()[best_lira])
        out[f"identity_performance_{kind}"] = float(by_q["performance"].mean()[REFERENCE_QUANTIZER])
    if "accuracy" in wide.columns and (wide["task_kind"] == "classification").any():
        part = wide[wide["task_kind"] == "classification"].set_index([*CONFIGURATION, "quantizer"])
        accuracy = part["accuracy"].unstack("quantizer")
        out["accuracy_change"] = float((accuracy[best_lira] - accuracy[REFERENCE_QUANTIZER]).mean())
    return out


def _agreement_low_bits_and_recommendation(table: pd.DataFrame, ranking: pd.DataFrame, tolerance: float) -> dict:
    """The indicators' agreement with LiRA, the low-bit quantizers' ranges and the recommendation
    (``conclusions``)."""
    out = {}
    changes = [c for c in ("performance_change_classification", "performance_change_regression")
               if c in ranking.columns and ranking[c].notna().any()]
    main = main_releases(table)
    against_lira = agreement.indicator_agreement(main, reference=LIRA, by=CONFIGURATION).set_index("indicator")
    for name in against_lira.index:
        out[f"{name}_concordant_fraction"] = float(against_lira.loc[name, "concordant_fraction"])
        out[f"{name}_separated_pairs"] = int(against_lira.loc[name, "n_separated"])
    against_best = agreement.indicator_agreement(main, reference=BEST_ATTACK, by=CONFIGURATION).set_index("indicator")
    for name in against_best.index:
        out[f"{name}_best_attack_concordant_fraction"] = float(against_best.loc[name, "concordant_fraction"])
        out[f"{name}_best_attack_separated_pairs"] = int(against_best.loc[name, "n_separated"])
    attacks = attack_comparison(table).set_index("attack")
    compared = ("rmia_online", "lira_online_fixed_variance", "lira_online")
    if set(compared) <= set(attacks.index):
        for name in compared:
            out[f"{name}_auc"] = float(attacks.loc[name, "auc"])
            out[f"{name}_tpr_at_0.1pct_fpr"] = float(attacks.loc[name, "tpr_at_0.1pct_fpr"])
        out["rmia_beats_lira_fraction"] = float(attacks.loc["rmia_online", "beats_lira_fraction"])
    bits = quantizer_overview(main).set_index("quantizer")["bits_per_weight"]
    low = ranking[ranking["quantizer"].map(bits) <= LOW_BITS]
    out["low_bit_quantizers"] = low["quantizer"].tolist()
    if not low.empty:
        out["low_bit_lira_auc_range"] = (float(low["lira_auc"].min()), float(low["lira_auc"].max()))
        for c in changes:
            out[f"low_bit_{c}_range"] = (float(low[c].min()), float(low[c].max()))
    ok = ranking[(ranking[changes] >= -tolerance).all(axis=1) & (ranking["quantizer"] != REFERENCE_QUANTIZER)]
    if ok.empty:
        out["recommended"] = None
    else:
        pick = ok.iloc[0]
        out["recommended"] = str(pick["quantizer"])
        out["recommended_lira_auc"] = float(pick["lira_auc"])
        for c in changes:
            out[f"recommended_{c}"] = float(pick[c])
    return out


def attack_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Every attack of the audit on the main releases, at the same reference models: mean AUC and TPR at 0.1% and
    1% FPR over every audited model and quantizer, and ``beats_lira_fraction``, the share of (audited model,
    quantizer) cells where its AUC is above LiRA's (``LIRA``, one pooled variance). One row per attack, the
    strongest (by mean AUC) first."""
    from mislib.evaluation.audit import ATTACKS

    main = main_releases(table)
    keys = [*CONFIGURATION, "quantizer"]
    part = main[main["method"].isin(ATTACKS)]
    wide = part.pivot_table(index=keys + ["method"], columns="measurement", values="value").reset_index()
    lira = wide[wide["method"] == LIRA[0]].set_index(keys)["auc"]
    rows = []
    for name, group in wide.groupby("method"):
        against = group.set_index(keys)["auc"] - lira.reindex(group.set_index(keys).index)
        means = {metric: group[metric].mean() if metric in group else np.nan
                 for metric in ("auc", "tpr_at_0.1pct_fpr", "tpr_at_1pct_fpr")}
        rows.append({"attack": name, **means, "beats_lira_fraction": float((against > 0).mean()),
                     "n_cells": len(group)})
    return pd.DataFrame(rows).sort_values("auc", ascending=False).reset_index(drop=True)


def indicator_agreement(table: pd.DataFrame, indicators: Sequence[str] = ("ranking_score", "r_min")) -> pd.DataFrame:
    """Deprecated: ``mislib.evaluation.agreement.indicator_agreement(table, indicators, reference=LIRA,
    by=CONFIGURATION)``; removed in mislib 0.3."""
    warnings.warn("mislib.studies.molecular.indicator_agreement is deprecated; use "
                  "mislib.evaluation.agreement.indicator_agreement(table, reference=LIRA, by=CONFIGURATION)",
                  DeprecationWarning, stacklevel=2)
    return agreement.indicator_agreement(check_table(table), indicators, reference=LIRA, by=CONFIGURATION)


def conclusions_text(found: dict) -> str:
    """The conclusions as Markdown sentences (every number from ``conclusions``)."""
    lines = [
        f"- Over {found['n_tasks']} tasks, {found['n_embedders']} embedders and {found['n_models']} audited heads "
        f"(independent training sets), the most "
        f"private release by LiRA is **{found['most_private_lira']}**: mean LiRA AUC "
        f"{found['most_private_lira_auc']:.3f} against {found['identity_lira_auc']:.3f} for the unquantized "
        f"(identity) release.",
        f"- By the indicator's ranking score (mean rank within each audited head) the most private is "
        f"**{found['most_private_ranking_score']}** (mean LiRA AUC {found['most_private_ranking_score_lira_auc']:.3f}).",
    ]
    if "ranking_score_concordant_fraction" in found and found.get("ranking_score_separated_pairs"):
        lines.append(f"- Without any shadow model, the ranking score orders the releases as LiRA does in "
                     f"{100 * found['ranking_score_concordant_fraction']:.0f}% of the {found['ranking_score_separated_pairs']} pairs "
                     f"whose LiRA intervals do not overlap (`r_min`: "
                     f"{100 * found['r_min_concordant_fraction']:.0f}%); against the best attack of each release "
                     f"(LiRA, RMIA, loss and white-box attacks) in "
                     f"{100 * found['ranking_score_best_attack_concordant_fraction']:.0f}% of "
                     f"{found['ranking_score_best_attack_separated_pairs']} separated pairs.")
    if "rmia_online_auc" in found:
        shadows = f"{found['n_shadow']} " if found.get("n_shadow") else ""
        lines.append(f"- RMIA online, with the same {shadows}reference models, has mean AUC "
                     f"{found['rmia_online_auc']:.3f} against {found['lira_online_fixed_variance_auc']:.3f} for LiRA "
                     f"(pooled variance) and {found['lira_online_auc']:.3f} (per-example variance), and TPR at 0.1% "
                     f"FPR {found['rmia_online_tpr_at_0.1pct_fpr']:.4f} against "
                     f"{found['lira_online_fixed_variance_tpr_at_0.1pct_fpr']:.4f}; its AUC is above LiRA's in "
                     f"{100 * found['rmia_beats_lira_fraction']:.0f}% of the (head, release) cells.")
    costs = []
    if "cost_classification" in found:
        text = (f"AUROC on B3DB classification changes by {found['cost_classification']:+.3f} (unquantized: "
                f"{found['identity_performance_classification']:.3f})")
        if "accuracy_change" in found:
            text += f" and accuracy by {found['accuracy_change']:+.3f}"
        costs.append(text)
    if "cost_regression" in found:
        costs.append(f"R$^2$ on the regression tasks by {found['cost_regression']:+.3f} (unquantized: "
                     f"{found['identity_performance_regression']:.3f})")
    if costs:
        lines.append(f"- What {found['most_private_lira']} costs: " + "; ".join(costs) + ".")
    if "identity_lira_auc_classification" in found and "identity_lira_auc_regression" in found:
        leakier = ("classification" if found["identity_lira_auc_classification"]
                   > found["identity_lira_auc_regression"] else "regression")
        lines.append(f"- Classification against regression: the unquantized heads have mean LiRA AUC "
                     f"{found['identity_lira_auc_classification']:.3f} (classification) and "
                     f"{found['identity_lira_auc_regression']:.3f} (regression), so {leakier} leaks more here; "
                     f"the most private quantizer lowers them by {found['privacy_gain_classification']:.3f} and "
                     f"{found['privacy_gain_regression']:.3f}.")
    if found.get("low_bit_quantizers") and "low_bit_lira_auc_range" in found:
        names = ", ".join(found["low_bit_quantizers"])
        low, high = found["low_bit_lira_auc_range"]
        text = (f"- The quantizers storing at most {LOW_BITS:g} bits per weight ({names}) bring the mean LiRA AUC to "
                f"{low:.3f}-{high:.3f}, at a price")
        for kind, metric in (("classification", "AUROC"), ("regression", "R$^2$")):
            key = f"low_bit_performance_change_{kind}_range"
            if key in found:
                text += f"; {metric} changes by {found[key][0]:+.3f} to {found[key][1]:+.3f}"
        lines.append(text + ".")
    if found.get("recommended"):
        changes = [f"{metric} {found[key]:+.3f}" for metric, key in (
            ("AUROC", "recommended_performance_change_classification"),
            ("R$^2$", "recommended_performance_change_regression")) if key in found]
        lines.append(f"- Recommendation: among quantizers that lose at most {found['tolerance']:.2f} of AUROC and "
                     f"of R$^2$ on average, the most private is **{found['recommended']}**: mean LiRA AUC "
                     f"{found['recommended_lira_auc']:.3f} against {found['identity_lira_auc']:.3f} unquantized, "
                     "for a change of " + " and ".join(changes) + ".")
    else:
        lines.append(f"- No quantizer loses less than {found['tolerance']:.2f} of AUROC and of R$^2$ on average "
                     "while quantizing: keep the identity release or accept the cost.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- figures

_MARKERS = ("o", "s", "D", "^", "v", "<", ">", "P", "X", "*", "h", "p")


def plot_tradeoff(summary: pd.DataFrame, *, risk: str = "lira_auc", risk_label: str = "LiRA AUC (lower = more "
                  "private)", tasks: Sequence[str] | None = None, quantizers: Sequence[str] | None = None,
                  floor: float = -1.0):
    """Privacy (x: ``risk``) against the primary task performance (y), one panel per task; colour = embedder,
    marker = quantizer; the Pareto front of each panel (``with_pareto``) is joined by a black line and its
    points ringed. Regression panels show R^2 down to ``floor`` (the number of points below it is written in
    the panel). Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = with_pareto(summary, risk=risk)
    tasks = list(tasks) if tasks is not None else [t for t in TASKS if t in set(data["task"])]
    if not tasks:
        raise ValueError("no task to plot")
    quantizers = list(quantizers) if quantizers is not None else list(dict.fromkeys(data["quantizer"]))
    embedders = [e for e in EMBEDDERS if e in set(data["embedder"])]
    colours = dict(zip(embedders, sns.color_palette("colorblind", len(embedders))))
    markers = {q: _MARKERS[i % len(_MARKERS)] for i, q in enumerate(quantizers)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = data[(data["task"] == task) & data["quantizer"].isin(quantizers)]
        for _, row in part.iterrows():
            ax.scatter(row[risk], row["performance"], color=colours[row["embedder"]],
                       marker=markers[row["quantizer"]], s=46, alpha=0.85, linewidths=0)
        front = part[part["pareto"]].sort_values(risk)
        ax.plot(front[risk], front["performance"], color="black", lw=1.0, zorder=0)
        ax.scatter(front[risk], front["performance"], s=140, facecolors="none", edgecolors="black", linewidths=1.0)
        ax.axvline(0.5, color="grey", lw=0.8, ls=":")
        kind = part["task_kind"].iloc[0] if len(part) else "classification"
        if kind == "regression" and len(part) and part["performance"].min() < floor:
            # a destroyed regression head has R^2 far below 0: keep the interesting range readable
            hidden = int((part["performance"] < floor).sum())
            ax.set_ylim(floor, max(0.05, part["performance"].max()) + 0.05)
            ax.text(0.98, 0.02, f"{hidden} point{'s' * (hidden > 1)} below {floor:g}", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, color="0.3")
        ax.set_title(task.replace("_", " "))
        ax.set_xlabel(risk_label)
        ax.set_ylabel(PERFORMANCE_LABELS[PRIMARY_PERFORMANCE[kind]])
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=colours[e], label=e) for e in embedders]
    handles += [Line2D([], [], ls="", marker=markers[q], color="0.3", label=q) for q in quantizers]
    handles += [Line2D([], [], color="black", marker="o", mfc="none", label="Pareto front")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="embedder / quantizer")
    fig.tight_layout()
    return fig


def plot_indicator_against_attack(per_seed_table: pd.DataFrame, *, indicator: str = "ranking_score",
                                  attack: str = "lira_auc"):
    """Each (embedder, quantizer, seed) as a point: the indicator (x) against the attack's AUC (y), one panel per
    task (the indicator's scale, 1/n, differs between tasks). Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    for column in (indicator, attack, "task", "embedder"):
        if column not in per_seed_table.columns:
            raise ValueError(f"per_seed_table has no column {column!r} (pass per_seed(table))")
    tasks = [t for t in TASKS if t in set(per_seed_table["task"])]
    if not tasks:
        raise ValueError("no task to plot")
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False)
    embedders = [e for e in EMBEDDERS if e in set(per_seed_table["embedder"])]
    for i, (ax, task) in enumerate(zip(axes[0], tasks)):
        part = per_seed_table[per_seed_table["task"] == task]
        sns.scatterplot(data=part, x=indicator, y=attack, hue="embedder", style="embedder", ax=ax, s=28,
                        alpha=0.75, hue_order=embedders, style_order=embedders, legend=i == len(tasks) - 1)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_title(task.replace("_", " "))
        ax.set_xlabel(f"indicator {indicator.replace('_', ' ')} (higher = more private)")
        ax.set_ylabel("LiRA AUC" if attack == "lira_auc" else attack.replace("_", " "))
    legend = axes[0][-1].get_legend()
    if legend is not None:
        sns.move_legend(axes[0][-1], "center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- overviews

def data_overview(table: pd.DataFrame) -> pd.DataFrame:
    """Per task: its kind and the molecule counts of each part (the first seed's split; sizes do not depend on
    the seed), with the target's training-set size ``members``."""
    table = check_table(table)
    columns = ["task", "task_kind", "n_molecules", "n_reference", "n_test", "n_pool", "sample_size"]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing}")
    first = table.sort_values("seed").drop_duplicates("task")[columns]
    order = {t: i for i, t in enumerate(TASKS)}
    first = first.sort_values("task", key=lambda s: s.map(order))
    return first.rename(columns={"sample_size": "members"}).reset_index(drop=True)


def quantizer_overview(table: pd.DataFrame) -> pd.DataFrame:
    """Per quantizer: mean bits per weight and achieved sparsity of the released targets, and whether it
    publishes a continuous (float) scale or codebook."""
    table = check_table(table)
    part = table[table["method"] == "quantizer"]
    if part.empty:
        raise ValueError("the table has no 'quantizer' rows")
    out = part.pivot_table(index="quantizer", columns="measurement", values="value", aggfunc="mean", sort=False)
    out["continuous_scale"] = out["continuous_scale"] > 0.5
    return out[["bits_per_weight", "sparsity", "continuous_scale"]].reset_index()


def failures(table: pd.DataFrame) -> pd.DataFrame:
    """The audited models (task, embedder, seed, target) recorded as failed: no initialisation gave that model a
    positive-definite Hessian, so it has no audit rows (``configuration_rows``)."""
    table = check_table(table)
    part = table[table["method"] == "failure"]
    return part[["task", "embedder", "seed", "target", "measurement", "value"]].reset_index(drop=True)
