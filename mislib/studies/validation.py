"""The validation study of notebook 04: the indicator from one model against Monte-Carlo ground truth and attacks."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import pandas as pd
import torch

from mislib.evaluation.montecarlo import attack_evaluation, montecarlo_delta, retrain
from mislib.infra.checks import check_int

# ------------------------------------------------------------------------- the validation study (notebook 04)

def logistic_validation(law, n: int, quantizers: Mapping, *, ridge: float = 1e-3, n_targets: int = 100,
                        n_retrain: int = 300, n_games: int = 10, n_bootstrap_ci: int = 50,
                        n_reference: int = 20000, seed: int = 0, batch_size: int = 8192):
    """Indicator against ground truth on a well-specified logistic regression without intercept.

    ``law``: a ``mislib.evaluation.synthetic_data.LogisticModel``. At sample size ``n``:

    1. one observed data set -> ``theta_hat`` -> the indicator of every quantizer (``indicator_of_model``, sandwich
       standard errors, ``n_bootstrap_ci`` bootstrap refits for intervals); beside it the *oracle* indicator
       (columns ``*_oracle``): the same formula at ``theta*`` with the population standard errors, both from a
       reference sample of ``n_reference`` points -- what the one-model estimate tries to recover;
    2. ``n_targets x n_retrain`` retrainings with a target inside and as many without -> Monte-Carlo
       ``Delta_n`` (``montecarlo_delta``) and the practical attacks (``attack_evaluation``; the white-box attack
       uses the mean and spread of the outside models and the influence of each target);

    Returns a DataFrame, one row per quantizer: the indicator with its interval and cost, the Monte-Carlo
    estimates, the attack metrics, and the cost of each in seconds and model fits.
    """

    from mislib.indicator import (centred_influence_shifts, indicator_from_estimates, indicator_of_model,
                                  standard_errors)
    from mislib.evaluation.trainers import LogisticRegression, fit_logistic

    n = check_int("n", n, minimum=2)
    seed = check_int("seed", seed, minimum=0)

    def trainer(X, y):
        return fit_logistic(X, y, ridge, fit_intercept=False)

    def sampler(size, g):
        return law.sample(size, g)

    # 1. the indicator from one observed data set
    X_obs, y_obs = law.sample(n, seed=seed + 7919)
    start = time.perf_counter()
    model = LogisticRegression.from_coefficients(trainer(X_obs, y_obs), fit_intercept=False)
    fit_seconds = time.perf_counter() - start
    indicator = indicator_of_model(model, X_obs, y_obs, "logistic", quantizers, ridge=ridge,
                                   n_bootstrap_ci=n_bootstrap_ci, seed=seed, average=True)
    indicator = indicator.set_index("quantizer")

    # 2. ground truth by retraining
    sims = retrain(sampler, trainer, n, n_targets=n_targets, n_retrain=n_retrain, seed=seed, batch_size=batch_size)
    outside = sims.outside.reshape(-1, sims.outside.shape[-1])
    mean_out, std_out = outside.mean(0), outside.std(0)
    X_t, y_t = sims.targets
    # A large reference sample stands for P: theta* and the population sandwich (the oracle indicator), and the
    # influence of each target (the white-box attack's mean shift).
    X_ref, y_ref = law.sample(n_reference, seed=seed + 104729)
    reference_model = LogisticRegression.from_coefficients(trainer(X_ref, y_ref), fit_intercept=False)
    shifts = centred_influence_shifts(reference_model, X_t, y_t, X_ref, y_ref, "logistic", n=n, ridge=ridge)
    whitebox = {"mean_out": mean_out, "std": std_out, "shifts": shifts}
    theta_star = {name: p.detach() for name, p in reference_model.named_parameters()}
    se_star = {name: v * math.sqrt(n_reference / n) for name, v in
               standard_errors(reference_model, X_ref, y_ref, "logistic", ridge=ridge).items()}

    def logits(releases, index):
        return (X_t[index] * releases).sum(-1)

    def loss(releases, index):
        f = logits(releases, index)
        return torch.nn.functional.softplus(f) - y_t[index] * f

    def statistic(releases, index):      # logit of the probability given to the true label
        return (2 * y_t[index] - 1) * logits(releases, index)

    rows = []
    for label, q in quantizers.items():
        mc = montecarlo_delta(sims, q, label=label, seed=seed, whitebox=whitebox)
        attack_start = time.perf_counter()
        attack = attack_evaluation(sims, q, loss=loss, statistic=statistic, whitebox=whitebox, n_games=n_games,
                                   label=label, seed=seed)
        attack_seconds = time.perf_counter() - attack_start
        ind = indicator.loc[label]
        row = {"quantizer": label, "sample_size": n, "seed": seed, "scale_channel": ind["scale_channel"],
               "deterministic": bool(ind["deterministic"])}
        for name in ("ranking_score", "r_min", "r_soft", "r_min_with_scale", "r_soft_with_scale"):
            row[name] = ind[name]
            row[f"{name}_low"], row[f"{name}_high"] = ind[f"{name}_low"], ind[f"{name}_high"]
        for name in ("ranking_score_averaged", "expected_exits_with_scale", "p_exit", "delta_estimate",
                     "p_flip", "delta_bound", "p_flip_with_scale", "delta_bound_with_scale", "weights_at_risk",
                     "scale_r", "z_min"):
            row[name] = ind[name]
        oracle = indicator_from_estimates(theta_star, se_star, q, n)
        for name in ("ranking_score", "r_min", "r_soft", "r_min_with_scale", "r_soft_with_scale",
                     "delta_estimate", "delta_bound_with_scale"):
            row[f"{name}_oracle"] = getattr(oracle, name)
        row.update({
            "indicator_seconds": fit_seconds + ind["seconds"], "indicator_model_fits": 1,
            "indicator_averaged_seconds": ind["averaged_seconds"],
            "indicator_ci_seconds": ind["bootstrap_seconds"], "indicator_ci_model_fits": n_bootstrap_ci,
            "mc_lower_bound": mc.lower_bound, "mc_lower_bound_low": mc.lower_bound_low,
            "mc_lower_bound_high": mc.lower_bound_high, "mc_plug_in": mc.plug_in, "mc_plug_in_low": mc.plug_in_low,
            "mc_plug_in_high": mc.plug_in_high, "mc_rule_lower_bound": mc.rule_lower_bound,
            "mc_rule_lower_bound_low": mc.rule_lower_bound_low, "mc_rule_lower_bound_high": mc.rule_lower_bound_high,
            "mc_best_lower_bound": max(mc.lower_bound, mc.rule_lower_bound if mc.rule_lower_bound == mc.rule_lower_bound
                                       else -math.inf),
            "mc_distinct_fraction": mc.distinct_fraction,
            "mc_categories": mc.n_categories,
            "mc_applicable": bool(mc.distinct_fraction < 0.05),   # a continuous release has ~every value once
            "mc_seconds": mc.seconds, "mc_model_fits": mc.model_fits,
            "attack_seconds": attack_seconds, "attack_model_fits": mc.model_fits,
        })
        row.update({k: v for k, v in attack.items() if k not in ("quantizer", "n")})
        rows.append(row)
    table = pd.DataFrame(rows)

    return table


def standard_error_comparison(law, n: int, *, ridge: float = 1e-3, n_bootstrap: int = 200, n_retrain: int = 2000,
                              n_datasets: int = 1, seed: int = 0):
    """Standard errors of a logistic fit (no intercept) three ways, one row per (data set, coordinate): the
    sandwich and ``n_bootstrap`` bootstrap refits on each of ``n_datasets`` observed data sets of size ``n``
    (data set 0 is the observed set of ``logistic_validation``), and the spread of ``theta_hat`` over
    ``n_retrain`` fresh data sets (the truth that both estimate), with their costs."""

    from mislib.indicator import standard_errors
    from mislib.evaluation.trainers import LogisticRegression, fit_logistic

    n = check_int("n", n, minimum=2)
    n_retrain = check_int("n_retrain", n_retrain, minimum=2)
    n_datasets = check_int("n_datasets", n_datasets, minimum=1)
    start = time.perf_counter()
    Xr, yr = law.sample(n * n_retrain, seed=seed + 15485863)
    fits = fit_logistic(Xr.reshape(n_retrain, n, -1), yr.reshape(n_retrain, n), ridge, fit_intercept=False)
    retrain_seconds = time.perf_counter() - start
    spread = fits.std(0)
    rows = []
    for dataset in range(n_datasets):
        X, y = law.sample(n, seed=seed + 7919 + 1000003 * dataset)
        model = LogisticRegression.from_coefficients(fit_logistic(X, y, ridge, fit_intercept=False),
                                                     fit_intercept=False)
        sandwich = standard_errors(model, X, y, "logistic", ridge=ridge, return_details=True)
        boot = standard_errors(model, X, y, "logistic", ridge=ridge, method="bootstrap", n_bootstrap=n_bootstrap,
                               seed=seed + dataset, return_details=True)
        theta_hat = model.coefficients().detach()
        rows += [{
            "sample_size": n, "seed": seed, "dataset": dataset, "coordinate": k, "theta_hat": float(theta_hat[k]),
            "sandwich": float(sandwich.flat[k]), "bootstrap": float(boot.flat[k]), "retraining_sd": float(spread[k]),
            "sandwich_seconds": sandwich.seconds, "sandwich_model_fits": 1, "bootstrap_seconds": boot.seconds,
            "bootstrap_model_fits": boot.model_fits, "retraining_seconds": retrain_seconds,
            "retraining_model_fits": n_retrain} for k in range(theta_hat.numel())]
    return pd.DataFrame(rows)


def rank_agreement(table, indicators=("ranking_score", "r_min_with_scale"), truths=("mc_lower_bound",),
                   *, by: str = "sample_size", where: str | None = None):
    """Kendall's tau-b between each indicator (larger = more private) and each ground truth (larger = more
    leakage), per value of ``by`` (``mislib.evaluation.agreement.ranking_agreement``): +1 means the indicator
    orders the quantizers exactly as the ground truth, 0 no relation. ``where``: a boolean column restricting the
    rows (e.g. "mc_applicable"). One row per (group, indicator, truth) with the p-value and the number of
    quantizers."""
    from mislib.evaluation.agreement import ranking_agreement

    rows = []
    for key, group in table.groupby(by):
        if where is not None:
            group = group[group[where].astype(bool)]
        for indicator in indicators:
            for truth in truths:
                sub = group[[indicator, truth]].dropna()
                tau = p = math.nan
                if len(sub) >= 3:
                    result = ranking_agreement(sub[indicator].to_numpy(), sub[truth].to_numpy(),
                                               reference_higher_is_private=False)
                    tau, p = result.kendall_tau, result.kendall_p
                rows.append({by: key, "indicator": indicator, "ground_truth": truth, "agreement": tau,
                             "p_value": p, "n_quantizers": len(sub)})
    return pd.DataFrame(rows)


def validation_study(law, n_values, quantizers: Mapping, **kwargs):
    """``logistic_validation`` at every sample size, one table (rows: quantizer x sample size)."""

    return pd.concat([logistic_validation(law, n, quantizers, **kwargs) for n in n_values], ignore_index=True)


# ------------------------------------------------------------- the crossing bound against exact Delta_n (§3.4)

BOUND_SAMPLE_SIZES = (2, 5, 20, 100, 1000, 10000)
BOUND_WIDTHS_SE = (0.1, 0.3, 0.7, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)     # cell width in standard errors
BOUND_POSITIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.49, 0.499, 0.4999, 0.25)  # theta* - level, in cell widths


def gaussian_bound_sweep(sample_sizes=BOUND_SAMPLE_SIZES, widths=BOUND_WIDTHS_SE, positions=BOUND_POSITIONS,
                         sigma: float = 1.0):
    """Exact ``Delta_n`` of the quantized Gaussian mean (``mislib.mis.exact_gaussian_mean``) against the bound
    ``2 P(Q(theta_hat) != Q(theta*))`` from both thresholds (``mislib.crossing``), and the old nearer-threshold
    version, at the true optimum and standard error: one row per (n, cell width in standard errors, position of
    ``theta*`` in its cell: 0 at a level, 0.5 on a threshold). Columns in log space (``log_delta``,
    ``log_bound``, ``log_bound_nearest``) and ``violation`` (exact above the bound by more than 1e-9 relative)."""
    import numpy as np

    from mislib.crossing import log_exit_probabilities
    from mislib.mis import exact_gaussian_mean
    from mislib.quantizers import FixedGrid

    rows = []
    for n in sample_sizes:
        se = sigma / math.sqrt(n)
        for width in widths:
            step = width * se
            for position in positions:
                mu = position * step
                exact = exact_gaussian_mean(n, mu, sigma, FixedGrid(step))
                t = torch.tensor([mu], dtype=torch.float64)
                s = torch.tensor([se], dtype=torch.float64)
                low, high = FixedGrid(step).cell_bounds(t)
                log_q = float(log_exit_probabilities(t, s, low, high)[0])
                nearest = float(torch.special.log_ndtr(-FixedGrid(step).margins(t) / s)[0])
                log_bound = min(0.0, math.log(2) + log_q)
                rows.append({"sample_size": n, "width_se": width, "position": position, "coordinates": 1,
                             "log_delta": exact.log_delta, "log_bound": log_bound,
                             "log_bound_nearest": min(0.0, math.log(2) + nearest)})
    table = pd.DataFrame(rows)
    table["violation"] = table["log_delta"] > table["log_bound"] + 1e-9
    table["violation_nearest"] = table["log_delta"] > table["log_bound_nearest"] + 1e-9
    table["delta"], table["bound"] = np.exp(table["log_delta"]), np.exp(table["log_bound"])
    return table


def bernoulli_bound_sweep(sample_sizes=(5, 10, 20, 50, 100, 200, 500, 1000, 2000),
                          probabilities=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5), steps=(0.01, 0.03, 0.05, 0.1, 0.2, 0.4)):
    """Exact ``Delta_n`` of the quantized Bernoulli mean against ``2 P(Q(K/n) != Q(p))`` computed from the exact
    binomial law (a bound: zero violations) and from its Gaussian approximation (both thresholds, standard error
    ``sqrt(p(1-p)/n)``): the skewed binomial crosses faster than the Gaussian tail says, and that version fails.
    Grids ``FixedGrid(step)`` with ``p`` inside a cell (never on a threshold)."""
    import numpy as np
    from scipy import stats
    from scipy.special import logsumexp

    from mislib.mis import exact_bernoulli_mean
    from mislib.quantizers import FixedGrid

    rows = []
    for n in sample_sizes:
        for p in probabilities:
            for step in steps:
                grid = FixedGrid(step)
                low, high = (float(v) for v in grid.cell_bounds(torch.tensor([p], dtype=torch.float64)))
                if min(p - low, high - p) < 1e-9:
                    continue
                # the release changes iff Q(K/n) != Q(p): sum the binomial pmf over those k (log space)
                k = torch.arange(n + 1, dtype=torch.float64)
                changed = (grid(k / n) != grid(torch.tensor([p], dtype=torch.float64))).numpy()
                log_pmf = stats.binom.logpmf(k.numpy(), n, p)
                exit_exact = float(np.exp(logsumexp(log_pmf[changed]))) if changed.any() else 0.0
                se = math.sqrt(p * (1 - p) / n)
                exit_gauss = stats.norm.sf((p - low) / se) + stats.norm.sf((high - p) / se)
                exact = exact_bernoulli_mean(n, p, grid)
                rows.append({"sample_size": n, "p": p, "step": step, "log_delta": exact.log_delta,
                             "bound_exact_binomial": min(1.0, 2 * exit_exact),
                             "bound_gaussian_tail": min(1.0, 2 * exit_gauss)})
    table = pd.DataFrame(rows)
    delta = np.exp(table["log_delta"])
    table["violation"] = delta > table["bound_exact_binomial"] * (1 + 1e-9)
    table["violation_gaussian_tail"] = delta > table["bound_gaussian_tail"] * (1 + 1e-9)
    return table


def plot_bound_sweep(table, ax=None):
    """Exact ``Delta_n`` against the bound (log axes, the diagonal: every point must lie on or below it), with
    the old nearer-threshold version beside it."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    floor = -300.0
    x = np.clip(table["log_bound"], floor, 0) / math.log(10)
    y = np.clip(table["log_delta"], floor, 0) / math.log(10)
    x_old = np.clip(table["log_bound_nearest"], floor, 0) / math.log(10)
    ax.scatter(x_old, y, s=8, marker="x", color="tab:red", alpha=0.5, label="nearer threshold only (old)")
    ax.scatter(x, y, s=8, color="tab:blue", label="both thresholds")
    lim = float(min(x.min(), y.min()))
    ax.plot([lim, 0], [lim, 0], color="k", lw=1, label="diagonal")
    ax.set_xlabel("log10 bound 2 P(Q(theta_hat) != Q(theta*))")
    ax.set_ylabel("log10 exact Delta_n")
    ax.set_title(f"{len(table)} Gaussian cases: {int(table['violation'].sum())} violations "
                 f"(old: {int(table['violation_nearest'].sum())})")
    ax.legend(fontsize=8)
    return ax


# ------------------------------------------- ranking public grids of a 2-d Gaussian mean against exact Delta_n

GAUSSIAN_RANKING = {
    "mu": (0.137, -0.291), "sigma": (1.0, 1.5),
    "grids": ((0.1, 0.0), (0.12, 0.03), (0.15, 0.0), (0.15, 0.06), (0.2, 0.0), (0.2, 0.09), (0.25, 0.0),
              (0.25, 0.1)),                     # (step, offset) of FixedGrid, the same on both coordinates
}
RANKING_ESTIMATORS = ("oracle", "plug_in", "averaged", "r_min", "r_soft_legacy")


def gaussian_ranking_truth(sample_sizes, config=GAUSSIAN_RANKING):
    """Exact ``Delta_n`` of every grid of ``config`` at each sample size (``mislib.mis_product``): one row per
    (sample size, grid)."""
    from mislib.mis.multivariate import exact_gaussian_product_delta
    from mislib.quantizers import FixedGrid

    rows = [{"sample_size": n, "grid": f"step={step:g}, offset={offset:g}",
             "delta": exact_gaussian_product_delta(n, config["mu"], config["sigma"], FixedGrid(step, offset))}
            for n in sample_sizes for step, offset in config["grids"]]
    return pd.DataFrame(rows)


def gaussian_ranking_study(sample_sizes=(40, 160, 640, 2560), n_datasets: int = 100, *, seed: int = 0,
                           config=GAUSSIAN_RANKING, n_nodes: int = 64, truth=None):
    """How well each estimator orders the public grids of a 2-d Gaussian mean, over ``n_datasets`` independent
    observed data sets per sample size: Kendall's tau-b between the estimator (higher = more private) and the
    exact ``Delta_n`` (``mislib.evaluation.agreement.ranking_agreement``). Estimators: ``oracle`` (the ranking
    score at ``theta*`` and the true standard errors), ``plug_in`` (``ranking_score`` at ``theta_hat`` and the
    estimated standard errors), ``averaged`` (``ranking_score_averaged``), ``r_min`` and the legacy ``r_soft``.
    One row per (sample size, data set, estimator) with ``kendall_tau``."""
    import numpy as np

    from mislib.evaluation.agreement import ranking_agreement
    from mislib.indicator import indicator_from_estimates
    from mislib.quantizers import FixedGrid

    truth = gaussian_ranking_truth(sample_sizes, config) if truth is None else truth
    grids = [FixedGrid(step, offset) for step, offset in config["grids"]]
    mu = torch.tensor(config["mu"], dtype=torch.float64)
    sigma = torch.tensor(config["sigma"], dtype=torch.float64)
    rows = []
    for n in sample_sizes:
        delta = truth[truth["sample_size"] == n]["delta"].to_numpy()
        log_delta = np.log(delta)
        oracle = [indicator_from_estimates(mu, sigma / math.sqrt(n), q, n).ranking_score for q in grids]
        g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0) * 100003 + n)
        for dataset in range(n_datasets):
            sample = mu + sigma * torch.randn(n, 2, generator=g, dtype=torch.float64)
            theta_hat, se = sample.mean(0), sample.std(0) / math.sqrt(n)
            results = [indicator_from_estimates(theta_hat, se, q, n, average=True, n_nodes=n_nodes, seed=dataset)
                       for q in grids]
            scores = {"oracle": oracle, "plug_in": [r.ranking_score for r in results],
                      "averaged": [r.ranking_score_averaged for r in results],
                      "r_min": [r.r_min for r in results], "r_soft_legacy": [r.r_soft for r in results]}
            for name, values in scores.items():
                agreement = ranking_agreement(values, log_delta, reference_higher_is_private=False)
                rows.append({"sample_size": n, "dataset": dataset, "estimator": name,
                             "kendall_tau": agreement.kendall_tau})
    return pd.DataFrame(rows)


def ranking_summary(table):
    """Mean and spread (standard deviation) of Kendall's tau over data sets, per sample size and estimator (a NaN
    tau, an estimator constant over the grids, counts as 0: no ordering)."""
    filled = table.assign(kendall_tau=table["kendall_tau"].fillna(0.0))
    summary = filled.groupby(["sample_size", "estimator"])["kendall_tau"].agg(["mean", "std", "count"])
    return summary.reset_index().rename(columns={"mean": "tau_mean", "std": "tau_sd", "count": "n_datasets"})


def logistic_ranking_over_datasets(law, table, quantizers: Mapping, *, truth: str = "mc_rule_lower_bound",
                                   labels=None, n_datasets: int = 50, ridge: float = 1e-3, seed: int = 0,
                                   n_nodes: int = 32):
    """Kendall's tau of the plug-in and the uncertainty-averaged ranking score against the Monte-Carlo truth of
    ``table`` (a ``validation_study`` table: the truth depends on ``n`` only, not on the observed data set), over
    ``n_datasets`` independent observed data sets per sample size, restricted to the quantizers ``labels`` (those
    the truth measures). The oracle's tau (one value per ``n``) is repeated on every row."""
    from mislib.evaluation.agreement import ranking_agreement
    from mislib.evaluation.trainers import LogisticRegression, fit_logistic
    from mislib.indicator import indicator_from_estimates, standard_errors

    labels = list(quantizers) if labels is None else list(labels)
    rows = []
    for n, group in table.groupby("sample_size"):
        group = group.set_index("quantizer").loc[labels]
        reference = group[truth].to_numpy()
        oracle = ranking_agreement(group["ranking_score_oracle"].to_numpy(), reference,
                                   reference_higher_is_private=False).kendall_tau
        for dataset in range(n_datasets):
            X, y = law.sample(int(n), seed=seed + 7919 + 1000003 * (dataset + 1))
            model = LogisticRegression.from_coefficients(fit_logistic(X, y, ridge, fit_intercept=False),
                                                         fit_intercept=False)
            theta = {k: v.detach() for k, v in model.named_parameters()}
            se = standard_errors(model, X, y, "logistic", ridge=ridge)
            results = [indicator_from_estimates(theta, se, quantizers[label], int(n), average=True,
                                                n_nodes=n_nodes, seed=dataset) for label in labels]
            for name, values in (("plug_in", [r.ranking_score for r in results]),
                                 ("averaged", [r.ranking_score_averaged for r in results])):
                tau = ranking_agreement(values, reference, reference_higher_is_private=False).kendall_tau
                rows.append({"sample_size": int(n), "dataset": dataset, "estimator": name, "kendall_tau": tau})
            rows.append({"sample_size": int(n), "dataset": dataset, "estimator": "oracle", "kendall_tau": oracle})
    return pd.DataFrame(rows)


def plot_ranking_summary(summary, ax=None, title=""):
    """Mean Kendall tau (+- one standard deviation over data sets) against n, one line per estimator."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    estimators = list(dict.fromkeys(summary["estimator"]))
    for k, name in enumerate(estimators):
        rows = summary[summary["estimator"] == name].sort_values("sample_size")
        shift = 1 + 0.04 * (k - (len(estimators) - 1) / 2)
        ax.errorbar(rows["sample_size"] * shift, rows["tau_mean"], yerr=rows["tau_sd"], fmt="o-", ms=4,
                    capsize=2, label=name)
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("training-set size n")
    ax.set_ylabel("Kendall tau vs truth (mean +- sd)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return ax


def score_intervals(theta, stderr, quantizers: Mapping, n: int, *, n_draws: int = 200, seed: int = 0,
                    confidence: float = 0.9):
    """For one observed model: each quantizer's plug-in and averaged ranking scores, an interval of the score
    over ``theta* ~ N(theta, stderr^2)`` (the rank uncertainty), and P(more private than the next one in the
    averaged order) (``mislib.crossing.probability_more_private``). One row per quantizer."""
    import numpy as np

    from mislib.crossing import log_expected_exits, probability_more_private, ranking_score_from, release_log_exits
    from mislib.indicator import indicator_from_estimates

    g = torch.Generator().manual_seed(seed)
    draws = [theta + stderr * torch.randn(theta.shape, generator=g, dtype=theta.dtype) for _ in range(n_draws)]
    rows = []
    for label, q in quantizers.items():
        res = indicator_from_estimates(theta, stderr, q, n, average=True)
        scores = [ranking_score_from(log_expected_exits(*release_log_exits(q, t, stderr)), res.n_coordinates, n)
                  for t in draws]
        low, high = np.quantile(scores, [(1 - confidence) / 2, (1 + confidence) / 2])
        rows.append({"quantizer": label, "plug_in": res.ranking_score, "averaged": res.ranking_score_averaged,
                     "score_low": float(low), "score_high": float(high)})
    out = pd.DataFrame(rows).sort_values("averaged", ascending=False).reset_index(drop=True)
    labels = list(out["quantizer"])
    out["p_more_private_than_next"] = [
        probability_more_private(theta, stderr, quantizers[a], quantizers[b], n_draws=n_draws, seed=seed)
        for a, b in zip(labels, labels[1:])] + [math.nan]
    return out


def plot_score_intervals(intervals, truth, ax=None, title=""):
    """``score_intervals`` of one model against the exact ``Delta_n`` of each quantizer (``truth``: a mapping
    label -> Delta_n): the averaged score with its interval over the weights' uncertainty, and the plug-in."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    x = np.log10([truth[label] for label in intervals["quantizer"]])
    ax.errorbar(x, intervals["averaged"], yerr=[intervals["averaged"] - intervals["score_low"],
                                               intervals["score_high"] - intervals["averaged"]],
                fmt="o", capsize=2, label="averaged (interval over theta* ~ N(theta_hat, s^2))")
    ax.plot(x, intervals["plug_in"], "x", color="tab:red", label="plug-in")
    ax.set_xlabel("log10 exact Delta_n (less private to the right)")
    ax.set_ylabel("ranking score")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return ax


# ------------------------------------------------------- notebook 04: its releases, standard errors and figures

# (label, quantizer name, parameters): the releases of the one-model validation (two weights, logistic model).
VALIDATION_QUANTIZERS = (
    ("identity", "identity", {}),
    ("stochastic rounding 0.25", "stochastic_rounding", {"step": 0.25}),
    ("grid 1.0", "fixed_grid", {"step": 1.0}),
    ("grid 0.5", "fixed_grid", {"step": 0.5}),
    ("grid 0.2", "fixed_grid", {"step": 0.2}),
    ("uniform 8 bits", "uniform", {"bits": 8}),
    ("uniform 4 bits", "uniform", {"bits": 4}),
    ("uniform 2 bits", "uniform", {"bits": 2}),
    ("uniform 4 bits, pow2 scale", "uniform", {"bits": 4, "scale_format": "pow2"}),
    ("uniform 4 bits, public scale", "uniform", {"bits": 4, "scale_format": "public", "scale": 0.125}),
    ("sign", "sign", {}),
    ("ternary (absmean)", "ternary_absmean", {}),
    ("magnitude pruning 50%", "magnitude_pruning", {"sparsity": 0.5}),
)
# Releases with finitely many values (no float published): the Monte-Carlo Delta_n can see them.
DISCRETE = ("grid 1.0", "grid 0.5", "grid 0.2", "uniform 4 bits, pow2 scale", "uniform 4 bits, public scale")


def validation_quantizers() -> dict:
    """``{label: Quantizer}`` of ``VALIDATION_QUANTIZERS``."""
    from mislib.evaluation.quantizer_specs import build_quantizers

    return build_quantizers(VALIDATION_QUANTIZERS)


def standard_error_table(law, n_values, *, ridge: float, n_bootstrap: int, n_retrain: int, n_datasets: int,
                         seed: int = 0) -> pd.DataFrame:
    """Sandwich, bootstrap and retraining standard errors at each n (``standard_error_comparison``, cached as
    ``indicator_standard_errors``), with their ratios."""
    from mislib.infra.tables import cached_table

    config = dict(beta=list(law.beta), ridge=ridge, n_values=list(n_values), n_bootstrap=n_bootstrap,
                  n_retrain=n_retrain, n_datasets=n_datasets, seed=seed)
    table = cached_table("indicator_standard_errors", config, lambda: pd.concat(
        [standard_error_comparison(law, n, ridge=ridge, n_bootstrap=n_bootstrap, n_retrain=n_retrain,
                                   n_datasets=n_datasets, seed=seed) for n in n_values], ignore_index=True),
        seeds=[seed])
    table["bootstrap / sandwich"] = table["bootstrap"] / table["sandwich"]
    table["sandwich / truth"] = table["sandwich"] / table["retraining_sd"]
    table["bootstrap / truth"] = table["bootstrap"] / table["retraining_sd"]
    return table


def _worst(ratios: pd.Series) -> float:
    """The ratio farthest from 1."""
    return float(ratios.iloc[(ratios - 1).abs().argmax()])


def standard_error_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per n and coordinate: the truth (spread over retrainings), the mean sandwich and bootstrap, and the worst
    and mean ratios."""
    return table.groupby(["sample_size", "coordinate"]).agg(
        truth=("retraining_sd", "first"), sandwich_mean=("sandwich", "mean"), bootstrap_mean=("bootstrap", "mean"),
        bootstrap_over_sandwich_worst=("bootstrap / sandwich", _worst),
        sandwich_over_truth_mean=("sandwich / truth", "mean"), sandwich_over_truth_worst=("sandwich / truth", _worst))


def standard_error_conclusions(table: pd.DataFrame, summary: pd.DataFrame, *, n_bootstrap: int, n_retrain: int,
                               n_datasets: int):
    """How far bootstrap and sandwich are apart (``boot_gap``, and ``boot_gap_large_n`` from the second n on), the
    sandwich's largest gap to the truth averaged over data sets (``mean_gap``) and for one data set
    (``worst_gap``), and the ratios to the truth at the smallest n (``small_n_ratio_<method>``)."""
    from mislib.studies.findings import Conclusions

    n_values = sorted(table.sample_size.unique())
    small = table.sample_size == n_values[0]
    values = {"boot_gap": float((table["bootstrap / sandwich"] - 1).abs().max()),
              "boot_gap_large_n": float((table.loc[~small, "bootstrap / sandwich"] - 1).abs().max()),
              "mean_gap": float((summary["sandwich_over_truth_mean"] - 1).abs().max()),
              "worst_gap": float((table["sandwich / truth"] - 1).abs().max())}
    lines = [f"bootstrap ({n_bootstrap} refits) vs sandwich on the same data set: largest relative difference "
             f"{values['boot_gap_large_n']:.1%} for n >= {n_values[1]}, {values['boot_gap']:.1%} including "
             f"n = {n_values[0]}"]
    for name in ("sandwich", "bootstrap"):
        values[f"small_n_ratio_{name}"] = float(table.loc[small, f"{name} / truth"].mean())
        lines.append(f"  at n = {n_values[0]}, {name} / truth averages {values[f'small_n_ratio_{name}']:.2f}")
    lines.append(f"sandwich vs the spread over {n_retrain} retrainings, averaged over {n_datasets} data sets: "
                 f"largest relative difference {values['mean_gap']:.1%}; for a single data set: up to "
                 f"{values['worst_gap']:.1%}")
    return Conclusions(values, lines)


def plot_standard_errors(table: pd.DataFrame, beta):
    """Per weight: the truth (spread over retrainings) against n, and each data set's sandwich and bootstrap."""
    import matplotlib.pyplot as plt

    n_values = sorted(table.sample_size.unique())
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for coordinate, ax in enumerate(axes):
        rows = table[table.coordinate == coordinate]
        truth = rows.groupby("sample_size")["retraining_sd"].first()
        ax.plot(truth.index, truth.values, "k-", lw=2, label="spread over retrainings (truth)")
        jitter = 1 + 0.04 * (rows["dataset"] - rows["dataset"].mean())
        ax.plot(rows["sample_size"] * jitter * 0.97, rows["sandwich"], "o", ms=4, label="sandwich, one data set each")
        ax.plot(rows["sample_size"] * jitter * 1.03, rows["bootstrap"], "s", ms=4, mfc="none",
                label="bootstrap, one data set each")
        ax.set(xscale="log", yscale="log", xlabel="training-set size n")
        ax.minorticks_off()
        ax.set_xticks(n_values, [str(n) for n in n_values])
        ax.set_yticks([0.1, 0.2, 0.3, 0.5], ["0.1", "0.2", "0.3", "0.5"])
        ax.set_title(f"weight {coordinate + 1} (beta = {beta[coordinate]:g})", fontsize=10)
    axes[0].set_ylabel("standard error of the weight")
    axes[0].legend(fontsize=7)
    return fig


def _size_palette(n_values) -> dict:
    import matplotlib.pyplot as plt

    return dict(zip(sorted(n_values), plt.rcParams["axes.prop_cycle"].by_key()["color"]))


def plot_indicator_vs_montecarlo(table: pd.DataFrame):
    """n x ranking score (oracle, and from one trained model with its bootstrap interval) against the Monte-Carlo
    lower bound on Delta_n (the fixed-rule estimate, with its interval), for the releases with finitely many
    values and identity."""
    import matplotlib.pyplot as plt

    labels = [*DISCRETE, "identity"]
    measured = table[table.quantizer.isin(labels)]
    marker_of = dict(zip(labels, ["o", "s", "^", "D", "v", "X"]))
    palette = _size_palette(table.sample_size.unique())
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4), sharey=True)
    for ax, column, title in ((axes[0], "ranking_score_oracle", "oracle (theta*, population sigma)"),
                              (axes[1], "ranking_score", "from one trained model")):
        for _, row in measured.iterrows():
            n, y = row["sample_size"], row["mc_rule_lower_bound"]
            x = n * row[column]
            xerr = None if column != "ranking_score" else [[max(0.0, x - n * row["ranking_score_low"])],
                                                           [max(0.0, n * row["ranking_score_high"] - x)]]
            ax.errorbar(x, y, xerr=xerr, yerr=[[y - row["mc_rule_lower_bound_low"]],
                                               [row["mc_rule_lower_bound_high"] - y]],
                        fmt=marker_of[row["quantizer"]], color=palette[n], ms=5, capsize=2, alpha=0.85)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(r"$n \times$ ranking score")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel(r"Monte-Carlo lower bound on $\Delta_n$ (rule)")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=f"n = {n}") for n, c in palette.items()]
    handles += [plt.Line2D([], [], color="k", marker=m, ls="", label=q) for q, m in marker_of.items()]
    axes[1].legend(handles=handles, fontsize=7, loc="upper right")
    return fig


def plot_indicator_vs_attacks(table: pd.DataFrame):
    """n x oracle ranking score against the AUC of the white-box attack and of online LiRA, every release."""
    import matplotlib.pyplot as plt
    import numpy as np

    palette = _size_palette(table.sample_size.unique())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, attack, title in ((axes[0], "whitebox", "white-box Gaussian likelihood ratio"),
                              (axes[1], "lira_online", "LiRA online")):
        for n, colour in palette.items():
            rows = table[table.sample_size == n]
            auc = rows[f"{attack}_auc"]
            ax.errorbar(n * rows["ranking_score_oracle"], auc,
                        yerr=np.abs(np.vstack([auc - rows[f"{attack}_auc_low"], rows[f"{attack}_auc_high"] - auc])),
                        fmt="o", ms=4, capsize=2, color=colour, alpha=0.8, label=f"n = {n}")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xlabel(r"$n \times$ ranking score (oracle)")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("attack AUC")
    axes[0].legend()
    return fig


def agreement_conclusions(agreement: pd.DataFrame):
    """The rank agreement of each indicator with each ground truth: mean, min and max over n (``summary``), at
    the largest n against the Monte-Carlo rule bound (``at_largest``), and by n against it (``rule``)."""
    from mislib.studies.findings import Conclusions

    summary = agreement.groupby(["ground_truth", "indicator"])["agreement"].agg(["mean", "min", "max"])
    largest = int(agreement.sample_size.max())
    at_largest = agreement[(agreement.sample_size == largest) & (agreement.ground_truth == "mc_rule_lower_bound")]
    at_largest = at_largest.set_index("indicator")[["agreement", "p_value", "n_quantizers"]]
    rule = agreement[agreement.ground_truth == "mc_rule_lower_bound"].pivot(index="indicator", columns="sample_size",
                                                                            values="agreement")
    lines = ["agreement over sample sizes (mean, min, max):", summary.round(2).to_string(),
             f"\nat n = {largest}, vs the Monte-Carlo rule bound:", at_largest.round(3).to_string(),
             "\nvs the rule bound, by sample size:", rule.round(2).to_string()]
    return Conclusions({"summary": summary, "at_largest": at_largest, "rule": rule, "largest": largest}, lines)


def cost_table(table: pd.DataFrame, se_table: pd.DataFrame, *, n_bootstrap_ci: int, n_bootstrap_se: int):
    """Median seconds and model fits of each estimate of notebook 04, and how many times the indicator's time the
    Monte-Carlo ground truth costs (``(table, ratio)``)."""
    fits = int(table["mc_model_fits"].iloc[0])
    cost = pd.DataFrame({
        "estimate": ["indicator (sandwich)", "indicator bootstrap interval", "standard errors by bootstrap",
                     "Monte-Carlo Delta_n (retrainings)", "attacks (reuse the retrainings)"],
        "seconds (median)": [table["indicator_seconds"].median(), table["indicator_ci_seconds"].median(),
                             se_table["bootstrap_seconds"].median(), table["mc_seconds"].median(),
                             table["attack_seconds"].median()],
        "model fits": [1, n_bootstrap_ci, n_bootstrap_se, fits, fits]})
    return cost, float(table["mc_seconds"].median() / table["indicator_seconds"].median())
