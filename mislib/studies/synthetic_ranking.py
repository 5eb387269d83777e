"""The synthetic ranking study of notebook 05: how often each indicator orders quantizer pairs as the best attack
(and, in one dimension, the Monte-Carlo ground truth) does."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from mislib.evaluation.audit import COLUMNS, Architecture, ModelSpec, insertion_influence, run_audit
from mislib.evaluation.quantizer_specs import QUANTIZER_SPECS, build_quantizers

# ------------------------------------------------------------------------------- the synthetic ranking study

# The quantizers of the high-dimensional study: the whole catalogue (``quantizer_specs.QUANTIZER_SPECS``). Its
# public grids ("public:<b>") use the absmax step of a reference model trained on public data (an independent
# sample of the same law, the same size), so that "uniform 4-bit, public scale" and "stochastic rounding" share
# the grid that "uniform 4-bit" would compute, but fixed in advance instead of learned from the private data.
STUDY_QUANTIZERS = QUANTIZER_SPECS

# The low-dimensional variant: a one-parameter logistic model, where the Monte-Carlo Bayes-optimal Delta_n is
# feasible because every release below takes few values (a float scale or full-precision weights would give a
# new release at every retraining: no Monte-Carlo estimate can see them). Public grids are placed relative to
# the public reference model's weight, at a level, 0.3 or 0.1 step from a threshold, or on a threshold: their
# true privacy differs by orders of magnitude, which is what an indicator has to find from one private model.
LOWDIM_QUANTIZERS = (
    ("identity", "identity", {}),
    ("grid, 4-bit step, reference at a level", "fixed_grid", {"step": "public:4"}),
    ("grid, 4-bit step, reference 0.3 step from a threshold", "fixed_grid",
     {"step": "public:4", "offset": "public:4*0.2"}),
    ("grid, 4-bit step, reference 0.1 step from a threshold", "fixed_grid",
     {"step": "public:4", "offset": "public:4*0.4"}),
    ("grid, 4-bit step, reference on a threshold", "fixed_grid", {"step": "public:4", "offset": "public:4*0.5"}),
    ("grid, 2-bit step, reference at a level", "fixed_grid", {"step": "public:2"}),
    ("grid, 2-bit step, reference 0.1 step from a threshold", "fixed_grid",
     {"step": "public:2", "offset": "public:2*0.4"}),
    ("uniform 4-bit, power-of-two scale", "uniform", {"bits": 4, "scale_format": "pow2"}),
    ("stochastic rounding, 4-bit step", "stochastic_rounding", {"step": "public:4"}),
    ("stochastic rounding, 2-bit step", "stochastic_rounding", {"step": "public:2"}),
)


def _sample_seed(seed: int, sample_size: int, stream: int) -> int:
    """Independent sample streams per (seed, sample size, purpose)."""
    return (seed * 1_000_003 + sample_size * 101 + stream) % (2 ** 62)


def _law(settings: dict):
    from mislib.evaluation.synthetic_data import GaussianMixture

    return GaussianMixture(dim=settings["dim"], k_modes=settings["k_modes"], separation=settings["separation"],
                           centers_seed=settings.get("law_seed", 0))


def _draw(law, size: int, seed: int, centre: bool):
    X, y = law.sample(size, seed)
    if centre:  # subtract the (known) mixture mean: a model without intercept is then well specified
        X = X - law.centers.mean(0)
    return X, y


def _model_spec(settings: dict, model: str) -> ModelSpec:
    ridge = settings["ridge"]
    ridge = ridge[model] if isinstance(ridge, Mapping) else ridge    # one ridge, or one per model kind
    return ModelSpec(kind=model, task="classification", ridge=ridge, hidden=settings.get("hidden", 16),
                     n_iter=settings.get("n_iter", 500), lr=settings.get("lr", 0.02),
                     fit_intercept=settings.get("fit_intercept", True))


def public_absmax(settings: dict, model: str, sample_size: int) -> float:
    """max |w| of the largest weight tensor of a model trained on public data (seed-independent: one public
    data set per law and sample size), the basis of every public grid."""
    law = _law(settings)
    spec = _model_spec(settings, model)
    X, y = _draw(law, sample_size, _sample_seed(10 ** 6, sample_size, 3), settings.get("centre", False))
    arch = Architecture(spec, X.shape[1], 2 if settings["k_modes"] >= 2 else None, "cpu")
    params = arch.fit(X, y, torch.ones(1, X.shape[0], dtype=torch.float64))
    main = max(params, key=lambda k: params[k][0].numel())
    return float(params[main][0].abs().max())


def synthetic_configuration(item: dict) -> pd.DataFrame:
    """One audit of the synthetic study: ``item`` holds ``model``, ``sample_size``, ``seed`` and the shared
    settings (``dim``, ``k_modes``, ``separation``, ``ridge``, ``hidden``, ``n_iter``, ``n_test``, ``n_shadow``,
    ``n_bootstrap``, ``indicator_bootstrap``, ``quantizers`` as ``(label, name, params)`` triples, ``centre``,
    ``fit_intercept``, ``dataset``)."""
    law = _law(item)
    n, seed, centre = item["sample_size"], item["seed"], item.get("centre", False)
    X_pool, y_pool = _draw(law, 2 * n, _sample_seed(seed, n, 1), centre)
    X_test, y_test = _draw(law, item["n_test"], _sample_seed(seed, n, 2), centre)
    quantizers = build_quantizers(item["quantizers"], public_absmax(item, item["model"], n))
    table = run_audit(X_pool, y_pool, X_test, y_test, quantizers, model=_model_spec(item, item["model"]),
                      n_shadow=item["n_shadow"], seed=seed, n_bootstrap=item["n_bootstrap"],
                      indicator_bootstrap=item["indicator_bootstrap"], device=item.get("device"))
    table.insert(0, "dataset", item["dataset"])
    return table


def montecarlo_configuration(item: dict) -> pd.DataFrame:
    """Monte-Carlo Bayes-optimal ``Delta_n`` (``mislib.evaluation.montecarlo``) of each quantizer of ``item`` for a
    logistic model without intercept on the (centred) law of ``item``, at ``sample_size``: ``n_targets``
    targets, ``n_retrain`` retrainings with and without each. Rows: method ``monte_carlo``, measurements
    ``delta_lower_bound`` (split-sample), ``delta_rule_lower_bound`` (the white-box likelihood-ratio rule fixed
    in advance, deterministic quantizers), ``delta_best_lower_bound`` (the larger of the two, with its
    interval) and ``delta_plug_in``, all with intervals, ``distinct_fraction`` (distinct releases
    over retrainings: near 1, the release is effectively continuous and the estimates mean nothing),
    ``model_fits`` and ``seconds``; ``seed`` is the Monte-Carlo seed."""
    from mislib.evaluation import montecarlo, trainers as models

    if item.get("fit_intercept", True) or item.get("model", "logistic") != "logistic":
        raise ValueError("the Monte-Carlo ground truth is implemented for the logistic model without intercept "
                         "(fit_intercept=False), whose single weight tensor is the whole release")
    law = _law(item)
    n, seed = item["sample_size"], item["seed"]
    mean = law.centers.mean(0)

    def sampler(size, generator):
        X, y = law.sample(size, generator)
        return X - mean, y

    ridge = _model_spec(item, "logistic").ridge

    def trainer(X, y):
        return models.fit_logistic(X, y, ridge, fit_intercept=False)

    sims = montecarlo.retrain(sampler, trainer, n, n_targets=item["n_targets"], n_retrain=item["n_retrain"],
                              seed=seed)
    # The Gaussian working model of the white-box attack, at the population: weights N(mean, std^2) without the
    # target, shifted by the target's influence -(1/n) H^-1 grad loss(z) with it (H from a large sample).
    out = sims.outside.reshape(-1, sims.outside.shape[-1])
    mean, std = out.mean(0), out.std(0)
    X_big, y_big = sampler(20_000, torch.Generator().manual_seed(seed + 1))
    module = models.LogisticRegression(law.dim, fit_intercept=False)
    with torch.no_grad():
        module.linear.weight.copy_(mean.reshape(1, -1))
    X_t, y_t = sims.targets
    shifts = insertion_influence(module, X_big, y_big, X_t, y_t, "logistic", ridge=ridge) * (X_big.shape[0] / n)
    whitebox = {"mean_out": mean.numpy(), "std": std.numpy(), "shifts": shifts.numpy()}
    quantizers = build_quantizers(item["quantizers"], public_absmax(item, "logistic", n))
    rows = []
    for label, q in quantizers.items():
        # the release is one weight tensor [1, d]; a per-tensor quantizer treats it as the vector [d]
        res = montecarlo.montecarlo_delta(sims, q, label=label, seed=seed, whitebox=whitebox)
        base = {"dataset": item["dataset"], "model": "logistic", "quantizer": label, "sample_size": n,
                "seed": seed, "method": "monte_carlo"}
        rows.extend(_montecarlo_rows(res, base))
    return pd.DataFrame(rows)


def _montecarlo_rows(res, base: dict) -> list[dict]:
    """The tidy rows of one quantizer's Monte-Carlo estimate (``montecarlo_configuration``)."""
    best = max((res.lower_bound, res.lower_bound_low, res.lower_bound_high),
               (res.rule_lower_bound, res.rule_lower_bound_low, res.rule_lower_bound_high),
               key=lambda t: -math.inf if math.isnan(t[0]) else t[0])
    return [{**base, "measurement": measurement, "value": float(value), "value_low": float(low),
             "value_high": float(high)}
            for measurement, value, low, high in (
                ("delta_lower_bound", res.lower_bound, res.lower_bound_low, res.lower_bound_high),
                ("delta_rule_lower_bound", res.rule_lower_bound, res.rule_lower_bound_low, res.rule_lower_bound_high),
                ("delta_best_lower_bound", *best),
                ("delta_plug_in", res.plug_in, res.plug_in_low, res.plug_in_high),
                ("distinct_fraction", res.distinct_fraction, math.nan, math.nan),
                ("model_fits", res.model_fits, math.nan, math.nan),
                ("seconds", res.seconds, math.nan, math.nan))]


def _warm_up():
    """torch.func compiles on first use (seconds): pay it once before anything is timed."""
    from mislib.evaluation.synthetic_data import GaussianMixture
    from mislib import quantizers as Q

    X, y = GaussianMixture(dim=3).sample(16, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in ("logistic", "mlp"):
            run_audit(X, y, X, y, {"identity": Q.get("identity")},
                  model=ModelSpec(kind=kind, hidden=2, n_iter=200, ridge=1e-2), n_shadow=4, n_bootstrap=0)


def _run_item(item: dict) -> pd.DataFrame:
    _warm_up()  # in every worker process, so that each configuration's wall times are comparable
    if item["study"] == "monte_carlo":
        return montecarlo_configuration(item)
    return synthetic_configuration(item)


def synthetic_ranking_items(settings: dict) -> list[dict]:
    """The configurations of the study: for each data set in ``settings["datasets"]`` (a list of dicts with the
    law, models, sample sizes, seeds and sizes), one item per (model, sample size, seed), plus one Monte-Carlo
    item per sample size and Monte-Carlo seed where ``montecarlo`` is given."""
    items = []
    for data in settings["datasets"]:
        shared = {k: v for k, v in data.items() if k not in ("models", "sample_sizes", "seeds", "montecarlo")}
        shared["quantizers"] = [list(q) for q in shared["quantizers"]]
        for model in data["models"]:
            for n in data["sample_sizes"]:
                for seed in data["seeds"]:
                    items.append({**shared, "study": "audit", "model": model, "sample_size": n, "seed": seed})
        mc = data.get("montecarlo")
        if mc:
            for n in data["sample_sizes"]:
                for seed in mc.get("seeds", [0]):
                    items.append({**shared, **mc, "study": "monte_carlo", "model": "logistic", "sample_size": n,
                                  "seed": seed})
    return items


def run_synthetic_ranking(settings: dict, n_jobs: int | None = None) -> pd.DataFrame:
    """Every configuration of ``synthetic_ranking_items(settings)`` through ``experiments.parallel_map``
    (joblib processes or a Dask cluster, see there), concatenated into one tidy table."""
    from mislib.infra.tables import parallel_map

    items = synthetic_ranking_items(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = parallel_map(_run_item, items, n_jobs=n_jobs, progress="synthetic ranking")
    table = pd.concat(tables, ignore_index=True)
    return table[["dataset", *COLUMNS]]


def synthetic_ranking_settings(*, dim: int, sample_sizes, seeds, lowdim_sample_sizes, lowdim_seeds, n_shadow: int,
                               n_bootstrap: int, indicator_bootstrap: int, n_test: int, mc_targets: int,
                               mc_retrain: int, hidden: int, n_iter: int) -> dict:
    """The study's configuration (JSON-serialisable, hashed by ``experiments.cached_table``) from its sizes:

    - ``gaussian mixture, dimension <dim>``: 4 modes, separation 3, classes alternating between modes (so a
      class is itself a mixture); logistic regression (ridge 1e-3) and a one-hidden-layer tanh MLP with
      ``hidden`` units (ridge 1e-2; Adam for ``n_iter`` steps then Newton-polished), the quantizers of
      ``STUDY_QUANTIZERS``;
    - ``gaussian mixture, dimension 1``: 2 modes at +-1, centred, a logistic model without intercept (one
      weight), the public grids of ``LOWDIM_QUANTIZERS``, and the Monte-Carlo Bayes-optimal ``Delta_n`` with
      ``mc_targets`` targets and ``mc_retrain`` retrainings with and without each.
    """
    shared = dict(n_shadow=n_shadow, n_bootstrap=n_bootstrap, indicator_bootstrap=indicator_bootstrap,
                  n_test=n_test)
    return {"datasets": [
        dict(dataset=f"gaussian mixture, dimension {dim}", dim=dim, k_modes=4, separation=3.0,
             ridge={"logistic": 1e-3, "mlp": 1e-2}, hidden=hidden, n_iter=n_iter,
             quantizers=[list(q) for q in STUDY_QUANTIZERS], models=["logistic", "mlp"],
             sample_sizes=list(sample_sizes), seeds=list(seeds), **shared),
        dict(dataset="gaussian mixture, dimension 1", dim=1, k_modes=2, separation=1.0, ridge=1e-3, centre=True,
             fit_intercept=False, quantizers=[list(q) for q in LOWDIM_QUANTIZERS], models=["logistic"],
             sample_sizes=list(lowdim_sample_sizes), seeds=list(lowdim_seeds),
             montecarlo=dict(n_targets=mc_targets, n_retrain=mc_retrain, seeds=[0]), **shared),
    ]}


def wide_table(table: pd.DataFrame, pairs, index) -> pd.DataFrame:
    """Selected ``(method, measurement)`` pairs of a tidy audit table side by side: one row per value of
    ``index`` (columns of the table), columns ``method.measurement`` with ``_low`` / ``_high``."""
    frames = []
    for method, measurement in pairs:
        part = table[(table.method == method) & (table.measurement == measurement)]
        part = part.set_index(list(index))[["value", "value_low", "value_high"]]
        name = f"{method}.{measurement}"
        frames.append(part.rename(columns={"value": name, "value_low": f"{name}_low",
                                           "value_high": f"{name}_high"}))
    return pd.concat(frames, axis=1).reset_index()


def cost_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per audited configuration: seconds and model fits of the indicator (every quantizer, point
    estimates; its bootstrap intervals separately) and of the shadow-model audit (training of target and
    shadows, white-box set-up, every quantizer's attack scores; the attack metrics' bootstrap separately), and
    the ratio ``shadow_over_indicator`` of the point-estimate costs."""
    cost = table[(table.method == "cost") & (table.quantizer == "(all)")]
    wide = cost.pivot_table(index=["dataset", "model", "sample_size", "seed"], columns="measurement",
                            values="value").reset_index()
    fits = table[(table.method == "cost") & (table.measurement == "shadow_model_fits")]
    fits = fits.groupby(["dataset", "model", "sample_size", "seed"])["value"].first().rename("shadow_model_fits")
    wide = wide.merge(fits.reset_index(), on=["dataset", "model", "sample_size", "seed"])
    wide["shadow_over_indicator"] = wide["shadow_audit_total_seconds"] / wide["indicator_total_seconds"]
    wide["indicator_model_fits"] = 1
    columns = ["dataset", "model", "sample_size", "seed", "indicator_total_seconds", "indicator_model_fits",
               "indicator_interval_seconds", "indicator_interval_model_fits", "shadow_audit_total_seconds",
               "shadow_model_fits", "attack_interval_seconds", "training_seconds", "shadow_over_indicator"]
    return wide[columns]


def indicator_vs_montecarlo(table: pd.DataFrame) -> pd.DataFrame:
    """The indicator of every audit (each seed) beside the Monte-Carlo ground truth at the same data set, model,
    sample size and quantizer: one row per (data set, model, sample size, seed, quantizer), columns
    ``method.measurement`` (with ``_low``/``_high``)."""
    audits = table[table.method != "monte_carlo"]
    mc = table[table.method == "monte_carlo"]
    if mc.empty:
        raise ValueError("the table has no Monte-Carlo rows (method 'monte_carlo')")
    index = ["dataset", "model", "sample_size", "seed", "quantizer"]
    left = wide_table(audits[audits.dataset.isin(mc.dataset.unique())],
                 [("indicator", "ranking_score"), ("indicator", "r_min_with_scale"),
                  ("indicator", "r_soft_with_scale"), ("indicator", "delta_bound_with_scale"), ("best_attack", "auc"), ("quantizer", "deterministic")],
                 index)
    right = wide_table(mc, [("monte_carlo", "delta_best_lower_bound"), ("monte_carlo", "delta_plug_in"),
                       ("monte_carlo", "distinct_fraction")], ["dataset", "model", "sample_size", "quantizer"])
    return left.merge(right, on=["dataset", "model", "sample_size", "quantizer"], how="inner")


# ------------------------------------------------------------------------------------------- the notebook

def preset_sizes(preset: str, seed: int = 0) -> dict:
    """The sizes of the study at a preset (``smoke``: seconds; ``paper``: the published tables), the arguments of
    ``synthetic_ranking_settings``; seeds start at ``seed``."""
    from mislib.infra.presets import preset_config

    return preset_config(
        preset,
        smoke=dict(dim=32, sample_sizes=[32, 64], seeds=[seed], lowdim_sample_sizes=[64, 256], lowdim_seeds=[seed],
                   n_shadow=8, n_bootstrap=50, indicator_bootstrap=4, n_test=500, mc_targets=40, mc_retrain=40,
                   hidden=2, n_iter=150),
        paper=dict(dim=128, sample_sizes=[32, 64, 128, 256, 512], seeds=[seed, seed + 1],
                   lowdim_sample_sizes=[16, 32, 64, 128, 256], lowdim_seeds=[seed, seed + 1, seed + 2],
                   n_shadow=64, n_bootstrap=200, indicator_bootstrap=16, n_test=2000, mc_targets=200,
                   mc_retrain=200, hidden=2, n_iter=300),
    )


def describe_quantizers(specs) -> pd.DataFrame:
    """One row per ``(label, name, params)`` triple: the quantizer function, its parameters, whether it is
    deterministic and which scale channel it has (public steps resolved with a unit absmax)."""
    built = build_quantizers(specs, public_absmax=1.0)
    return pd.DataFrame([{"quantizer": label, "function": name, "parameters": params,
                          "deterministic": built[label].deterministic, "scale": built[label].scale_channel}
                         for label, name, params in specs]).set_index("quantizer")


def overview(table: pd.DataFrame, dataset: str, model: str, n: int, seed: int = 0) -> pd.DataFrame:
    """Every quantizer of one audited configuration, most attackable first: the best attack's AUC with its
    interval, the test accuracy, the ranking score, ``r_min`` (with the scale channel) and the number of
    published values the indicator expects to change (``expected_exits_with_scale``)."""
    part = table[(table.dataset == dataset) & (table.model == model) & (table.sample_size == n) & (table.seed == seed)]
    wide = wide_table(part, [("best_attack", "auc"), ("test", "accuracy"), ("indicator", "ranking_score"),
                             ("indicator", "r_min_with_scale"), ("indicator", "expected_exits_with_scale")],
                      ["quantizer"])
    keep = ["quantizer", "best_attack.auc", "best_attack.auc_low", "best_attack.auc_high", "test.accuracy",
            "indicator.ranking_score", "indicator.r_min_with_scale", "indicator.expected_exits_with_scale"]
    return wide[keep].sort_values("best_attack.auc", ascending=False).set_index("quantizer")


def deterministic_quantizers(table: pd.DataFrame, dataset: str) -> list[str]:
    """The labels of the deterministic quantizers audited on ``dataset`` (sorted)."""
    flags = table[(table.method == "quantizer") & (table.measurement == "deterministic") & (table.value == 1)]
    return sorted(set(flags[flags.dataset == dataset].quantizer))


def pooled_value(pooled: pd.DataFrame, dataset: str, model: str, reference: str, score: str,
                 field: str = "concordant_fraction") -> float:
    """One number of a pooled agreement table (``agreement.pooled_agreement`` by data set, model, reference and
    score): ``field`` for that data set, model, reference and score.

    Raises
    ------
    ValueError
        If no row, or more than one, matches.
    """
    row = pooled[(pooled.dataset == dataset) & (pooled.model == model) & (pooled.reference == reference)
                 & (pooled.score == score)]
    if len(row) != 1:
        raise ValueError(f"{len(row)} pooled rows for {dataset!r}, {model!r}, reference {reference!r}, score "
                         f"{score!r}; expected one (pool by data set, model, reference and score)")
    return float(row[field].iloc[0])


ATTACK, TRUTH = "best_attack.auc", "monte_carlo.delta_best_lower_bound"
SCORE, AVERAGED = "indicator.ranking_score", "indicator.ranking_score_averaged"
R_MIN, R_SOFT, BITS = "indicator.r_min_with_scale", "indicator.r_soft_with_scale", "quantizer.bits_per_weight"


def conclusions(pooled: pd.DataFrame, high: str, low: str, dim: int):
    """What notebook 05 concludes on ranking (§3), from the pooled agreement table: per model of the
    high-dimensional data set ``high``, against the best attack, the concordant fractions of the ranking score
    (``score``; ``averaged`` for the uncertainty-averaged one), the previous ``r_soft``, ``r_min`` and fewer bits, the pairs separated and the mean Kendall taus; in dimension 1 (``low``), against
    the Monte-Carlo truth (key ``"dimension 1"``), the same fractions, and the pairs the best attack separates
    there (``attack_separated_low``)."""
    from mislib.studies.findings import Conclusions

    def value(dataset, model, reference, score, field="concordant_fraction"):
        return pooled_value(pooled, dataset, model, reference, score, field)

    values, lines = {}, []
    for model in ("logistic", "mlp"):
        found = {"score": value(high, model, ATTACK, SCORE), "averaged": value(high, model, ATTACK, AVERAGED),
                 "r_soft": value(high, model, ATTACK, R_SOFT), "r_min": value(high, model, ATTACK, R_MIN),
                 "bits": value(high, model, ATTACK, BITS),
                 "separated": value(high, model, ATTACK, SCORE, "n_separated"),
                 "score_tau": value(high, model, ATTACK, SCORE, "mean_kendall_tau"),
                 "averaged_tau": value(high, model, ATTACK, AVERAGED, "mean_kendall_tau"),
                 "r_soft_tau": value(high, model, ATTACK, R_SOFT, "mean_kendall_tau"),
                 "r_min_tau": value(high, model, ATTACK, R_MIN, "mean_kendall_tau")}
        values[model] = found
        lines.append(f"dimension {dim}, {model}, against the best attack: concordant pairs ranking score "
                     f"{found['score']:.1%} (averaged {found['averaged']:.1%}), previous r_soft {found['r_soft']:.1%}, "
                     f"r_min {found['r_min']:.1%}, fewer bits {found['bits']:.1%} of {found['separated']:.0f} "
                     f"separated pairs; Kendall tau ranking score {found['score_tau']:.2f} (averaged "
                     f"{found['averaged_tau']:.2f}), r_soft {found['r_soft_tau']:.2f}, r_min {found['r_min_tau']:.2f}")
    truth = {"score": value(low, "logistic", TRUTH, SCORE), "averaged": value(low, "logistic", TRUTH, AVERAGED),
             "r_min": value(low, "logistic", TRUTH, R_MIN), "r_soft": value(low, "logistic", TRUTH, R_SOFT),
             "bits": value(low, "logistic", TRUTH, BITS),
             "separated": value(low, "logistic", TRUTH, SCORE, "n_separated")}
    values["dimension 1"] = truth
    lines.append(f"dimension 1, against the Monte-Carlo Delta_n: concordant pairs ranking score "
                 f"{truth['score']:.1%} (averaged {truth['averaged']:.1%}), r_min {truth['r_min']:.1%}, previous "
                 f"r_soft {truth['r_soft']:.1%}, fewer bits {truth['bits']:.1%} of {truth['separated']:.0f} "
                 "separated pairs")
    values["attack_separated_low"] = value(low, "logistic", ATTACK, SCORE, "n_separated")
    lines.append(f"dimension 1, pairs separated by the best attack: {values['attack_separated_low']:.0f}")
    return Conclusions(values, lines)


def cost_conclusions(table: pd.DataFrame, high: str, dim: int):
    """What notebook 05 concludes on cost (§5): the median costs per data set and model (``summary``), the share
    of the shadow audit's time the indicator's bootstrap intervals cost (``interval_share``, median over the
    high-dimensional configurations), the Monte-Carlo ground truth's model fits and seconds, and the range of
    the shadow audit's cost over the indicator's in dimension ``dim`` (``ratio_min``, ``ratio_median``,
    ``ratio_max``)."""
    from mislib.studies.findings import Conclusions

    costs = cost_summary(table)
    summary = costs.groupby(["dataset", "model"]).agg(
        indicator_s=("indicator_total_seconds", "median"),
        indicator_intervals_s=("indicator_interval_seconds", "median"),
        shadow_audit_s=("shadow_audit_total_seconds", "median"),
        attack_intervals_s=("attack_interval_seconds", "median"),
        ratio_min=("shadow_over_indicator", "min"), ratio_median=("shadow_over_indicator", "median"),
        indicator_fits=("indicator_model_fits", "max"), interval_fits=("indicator_interval_model_fits", "max"),
        shadow_fits=("shadow_model_fits", "max"))
    mc_cost = table[(table.method == "monte_carlo") & (table.measurement.isin(["seconds", "model_fits"]))]
    mc_cost = mc_cost.groupby("measurement").value.median()
    high_costs = costs[costs.dataset == high]
    interval_share = (high_costs.indicator_interval_seconds / high_costs.shadow_audit_total_seconds).median()
    ratio = high_costs.shadow_over_indicator
    lines = [summary.round(3).to_string(),
             f"the indicator's bootstrap intervals ({int(costs.indicator_interval_model_fits.max())} retrainings) "
             f"cost {interval_share:.2f} of the shadow audit's time at the median",
             f"\nMonte-Carlo ground truth (dimension 1): {mc_cost['model_fits']:.0f} model fits, "
             f"{mc_cost['seconds']:.1f} s per sample size (median)",
             f"dimension {dim}: the shadow audit costs {ratio.min():.0f} to {ratio.max():.0f} times the indicator "
             f"(median {ratio.median():.0f}), with {int(high_costs.shadow_model_fits.max())} model fits against 1"]
    values = {"summary": summary, "interval_share": float(interval_share), "ratio_min": float(ratio.min()),
              "ratio_median": float(ratio.median()), "ratio_max": float(ratio.max()),
              "montecarlo_model_fits": float(mc_cost["model_fits"]), "montecarlo_seconds": float(mc_cost["seconds"])}
    return Conclusions(values, lines)


# ---------------------------------------------------------------------------------------------- figures

def _size_colours(sizes) -> dict:
    """One viridis colour per sample size, shared by the figures (every size of both data sets)."""
    import matplotlib.pyplot as plt

    sizes = sorted(set(int(n) for n in sizes))
    return dict(zip(sizes, plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))))


def _log_ticks(axis):
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def plot_indicator_vs_truth(table: pd.DataFrame, versus_mc: pd.DataFrame, high: str, deterministic: list[str]):
    """Left and centre: the best attack's AUC against the published values expected to change (the indicator's
    ``expected_exits_with_scale``), each
    deterministic quantizer at each n and seed of the data set ``high`` (logistic, MLP); right: the Monte-Carlo
    lower bound on Delta_n against the indicator's bound 2 p_flip in dimension 1 (``versus_mc``:
    ``indicator_vs_montecarlo``, deterministic releases)."""
    import matplotlib.pyplot as plt

    rows_high = wide_table(table[table.dataset == high], [("best_attack", "auc"),
                                                          ("indicator", "expected_exits_with_scale")],
                           ["model", "sample_size", "seed", "quantizer"])
    rows_high = rows_high[rows_high.quantizer.isin(deterministic)]
    rows_high["at risk"] = rows_high["indicator.expected_exits_with_scale"]
    colour = _size_colours(table.sample_size.unique())
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, model in zip(axes[:2], ("logistic", "mlp")):
        for n in sorted(rows_high.sample_size.unique()):
            rows = rows_high[(rows_high.model == model) & (rows_high.sample_size == n)]
            ax.errorbar(rows["at risk"], rows["best_attack.auc"],
                        yerr=[rows["best_attack.auc"] - rows["best_attack.auc_low"],
                              rows["best_attack.auc_high"] - rows["best_attack.auc"]],
                        fmt="o", ms=3.5, capsize=0, elinewidth=0.6, alpha=0.8, color=colour[n], label=f"n = {n}")
        ax.set_xscale("log")
        _log_ticks(ax.xaxis)
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xlabel("published values expected to change (indicator)")
        ax.set_title(f"{high.split(', ')[-1]}, {model}", fontsize=10)
    axes[0].set_ylabel("best attack AUC (0.5 = a coin)")
    axes[0].legend(fontsize=8)
    ax = axes[2]
    for n in sorted(versus_mc.sample_size.unique()):
        rows = versus_mc[versus_mc.sample_size == n]
        y = rows["monte_carlo.delta_best_lower_bound"]
        ax.errorbar(rows["indicator.delta_bound_with_scale"].clip(lower=1e-4), y,
                    yerr=[y - rows["monte_carlo.delta_best_lower_bound_low"],
                          rows["monte_carlo.delta_best_lower_bound_high"] - y],
                    fmt="o", ms=3.5, elinewidth=0.6, alpha=0.8, color=colour[n], label=f"n = {n}")
    top = float(versus_mc["monte_carlo.delta_best_lower_bound_high"].max()) * 1.2
    ax.plot([1e-4, 1], [1e-4, 1], "k--", lw=0.8, label="bound = truth")
    ax.set_ylim(min(-0.01, float(versus_mc["monte_carlo.delta_best_lower_bound_low"].min())), top)
    ax.set_xscale("log")
    ax.set_xlabel(r"indicator's estimate $2\,p_{\mathrm{exit}}$ of $\Delta_n$")
    ax.set_ylabel(r"Monte-Carlo lower bound on $\Delta_n$")
    ax.set_title("dimension 1, logistic (no intercept)", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def plot_agreement(by_n: pd.DataFrame, high: str, low: str):
    """Concordant fraction of separated pairs (top) and mean Kendall tau (bottom) against n, for the ranking
    score, r_min, the previous r_soft and the naive "fewer bits": in ``high`` against the best attack (logistic, MLP), in ``low`` against the
    Monte-Carlo truth. ``by_n``: ``agreement.pooled_agreement`` by data set, model, reference, score and n.
    Grey numbers: the pairs separated at that n."""
    import matplotlib.pyplot as plt

    panels = [(high, "logistic", ATTACK), (high, "mlp", ATTACK), (low, "logistic", TRUTH)]
    labels = {SCORE: "ranking score", R_MIN: r"$r_{\min}$", R_SOFT: r"previous $r_{\mathrm{soft}}$",
              BITS: "fewer bits (naive)"}
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.5), sharex="col")
    for column, (dataset, model, reference) in enumerate(panels):
        rows = by_n[(by_n.dataset == dataset) & (by_n.model == model) & (by_n.reference == reference)]
        for score, label in labels.items():
            line = rows[rows.score == score].sort_values("sample_size")
            style = "--" if "bits" in score else "-"
            axes[0, column].plot(line.sample_size, line.concordant_fraction, style, marker="o", label=label)
            axes[1, column].plot(line.sample_size, line.mean_kendall_tau, style, marker="o", label=label)
        separated = rows[rows.score == SCORE].sort_values("sample_size")
        for n, count in zip(separated.sample_size, separated.n_separated):
            axes[0, column].annotate(f"{count}", (n, 0.02), ha="center", fontsize=7, color="grey")
        reference_name = "best attack" if reference.startswith("best") else "Monte-Carlo $\\Delta_n$"
        axes[0, column].set_title(f"{dataset.replace('gaussian mixture, ', '')}, {model}\nagainst the "
                                  f"{reference_name}", fontsize=10)
        axes[0, column].set_ylim(0, 1.05)
        axes[0, column].axhline(0.5, color="grey", lw=0.8)
        axes[1, column].axhline(0, color="grey", lw=0.8)
        axes[1, column].set_ylim(-1, 1)
        axes[1, column].set_xscale("log", base=2)
        axes[1, column].set_xlabel("training-set size n")
    axes[0, 0].set_ylabel("concordant fraction of\nseparated pairs")
    axes[1, 0].set_ylabel("Kendall's tau\n(mean over seeds)")
    axes[0, 0].legend(fontsize=8)
    return fig


def plot_cost(costs: pd.DataFrame, high: str):
    """Per audited configuration of ``high`` (``costs``: ``cost_summary``): the shadow-model audit's time
    against the indicator's (left, with 1x, 10x and 100x lines), and their ratio against n (right)."""
    import matplotlib.pyplot as plt

    colour = _size_colours(costs.sample_size.unique())
    costs_high = costs[costs.dataset == high]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    fig.subplots_adjust(wspace=0.35)
    for model, marker in (("logistic", "o"), ("mlp", "s")):
        rows = costs_high[costs_high.model == model]
        axes[0].scatter(rows.indicator_total_seconds, rows.shadow_audit_total_seconds, marker=marker, label=model,
                        c=[colour[n] for n in rows.sample_size])
        axes[1].scatter(rows.sample_size, rows.shadow_over_indicator, marker=marker, label=model,
                        c=[colour[n] for n in rows.sample_size])
    lims = np.array([costs_high.indicator_total_seconds.min() / 2, costs_high.shadow_audit_total_seconds.max() * 2])
    for factor, style in ((1, "-"), (10, "--"), (100, ":")):
        axes[0].plot(lims, factor * lims, "k" + style, lw=0.8, label=f"{factor} x")
    axes[0].set(xscale="log", yscale="log", xlim=lims, ylim=lims, xlabel="indicator, all quantizers (s)",
                ylabel="shadow-model audit, all quantizers (s)")
    axes[0].legend(fontsize=8)
    axes[1].set_xscale("log", base=2)
    axes[1].set_yscale("log")
    _log_ticks(axes[1].yaxis)
    axes[1].set_xlabel("training-set size n")
    axes[1].set_ylabel("shadow audit time / indicator time")
    axes[1].set_title(f"{high.split(', ')[-1]}; colour = n", fontsize=10)
    return fig
