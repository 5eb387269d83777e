"""The synthetic ranking study of notebook 05: how often each indicator orders quantizer pairs as the best attack
(and, in one dimension, the Monte-Carlo ground truth) does."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

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
        best = max((res.lower_bound, res.lower_bound_low, res.lower_bound_high),
                   (res.rule_lower_bound, res.rule_lower_bound_low, res.rule_lower_bound_high),
                   key=lambda t: -math.inf if math.isnan(t[0]) else t[0])
        for measurement, value, low, high in (
                ("delta_lower_bound", res.lower_bound, res.lower_bound_low, res.lower_bound_high),
                ("delta_rule_lower_bound", res.rule_lower_bound, res.rule_lower_bound_low,
                 res.rule_lower_bound_high),
                ("delta_best_lower_bound", *best),
                ("delta_plug_in", res.plug_in, res.plug_in_low, res.plug_in_high),
                ("distinct_fraction", res.distinct_fraction, math.nan, math.nan),
                ("model_fits", res.model_fits, math.nan, math.nan),
                ("seconds", res.seconds, math.nan, math.nan)):
            rows.append({**base, "measurement": measurement, "value": float(value), "value_low": float(low),
                         "value_high": float(high)})
    return pd.DataFrame(rows)


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
                 [("indicator", "r_min_with_scale"), ("indicator", "r_soft_with_scale"),
                  ("indicator", "delta_bound_with_scale"), ("best_attack", "auc"), ("quantizer", "deterministic")],
                 index)
    right = wide_table(mc, [("monte_carlo", "delta_best_lower_bound"), ("monte_carlo", "delta_plug_in"),
                       ("monte_carlo", "distinct_fraction")], ["dataset", "model", "sample_size", "quantizer"])
    return left.merge(right, on=["dataset", "model", "sample_size", "quantizer"], how="inner")
