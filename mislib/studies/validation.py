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

    1. one observed data set -> ``theta_hat`` -> the indicator of every quantizer (``estimate_model``, sandwich
       standard errors, ``n_bootstrap_ci`` bootstrap refits for intervals); beside it the *oracle* indicator
       (columns ``*_oracle``): the same formula at ``theta*`` with the population standard errors, both from a
       reference sample of ``n_reference`` points -- what the one-model estimate tries to recover;
    2. ``n_targets x n_retrain`` retrainings with a target inside and as many without -> Monte-Carlo
       ``Delta_n`` (``montecarlo_delta``) and the practical attacks (``attack_evaluation``; the white-box attack
       uses the mean and spread of the outside models and the influence of each target);

    Returns a DataFrame, one row per quantizer: the indicator with its interval and cost, the Monte-Carlo
    estimates, the attack metrics, and the cost of each in seconds and model fits.
    """

    from mislib.indicator import estimate, estimate_model, influence_shifts, standard_errors
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
    indicator = estimate_model(model, X_obs, y_obs, "logistic", quantizers, ridge=ridge,
                               n_bootstrap_ci=n_bootstrap_ci, seed=seed)
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
    shifts = influence_shifts(reference_model, X_t, y_t, X_ref, y_ref, "logistic", n=n, ridge=ridge)
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
        for name in ("r_min", "r_soft", "r_min_with_scale", "r_soft_with_scale"):
            row[name] = ind[name]
            row[f"{name}_low"], row[f"{name}_high"] = ind[f"{name}_low"], ind[f"{name}_high"]
        for name in ("p_flip", "delta_bound", "p_flip_with_scale", "delta_bound_with_scale", "weights_at_risk",
                     "scale_r", "z_min"):
            row[name] = ind[name]
        oracle = estimate(theta_star, se_star, q, n)
        for name in ("r_min", "r_soft", "r_min_with_scale", "r_soft_with_scale", "delta_bound_with_scale"):
            row[f"{name}_oracle"] = getattr(oracle, name)
        row.update({
            "indicator_seconds": fit_seconds + ind["seconds"], "indicator_model_fits": 1,
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


def rank_agreement(table, indicators=("r_min_with_scale", "r_soft_with_scale"), truths=("mc_lower_bound",),
                   *, by: str = "sample_size", where: str | None = None):
    """Kendall's tau-b between each indicator (larger = more private) and each ground truth (larger = more
    leakage), per value of ``by``: ``agreement = tau(indicator, -truth)``, so +1 means the indicator orders the
    quantizers exactly as the ground truth, 0 no relation. ``where``: a boolean column restricting the rows
    (e.g. "mc_applicable"). One row per (group, indicator, truth) with the p-value and the number of quantizers.
    """
    from scipy.stats import kendalltau

    rows = []
    for key, group in table.groupby(by):
        if where is not None:
            group = group[group[where].astype(bool)]
        for indicator in indicators:
            for truth in truths:
                sub = group[[indicator, truth]].dropna()
                if len(sub) >= 3:
                    result = kendalltau(sub[indicator], -sub[truth])
                    tau, p = float(result.statistic), float(result.pvalue)
                else:
                    tau = p = math.nan
                rows.append({by: key, "indicator": indicator, "ground_truth": truth, "agreement": tau,
                             "p_value": p, "n_quantizers": len(sub)})
    return pd.DataFrame(rows)


def validation_study(law, n_values, quantizers: Mapping, **kwargs):
    """``logistic_validation`` at every sample size, one table (rows: quantizer x sample size)."""

    return pd.concat([logistic_validation(law, n, quantizers, **kwargs) for n in n_values], ignore_index=True)
