"""Reading the privacy-against-n table (``mislib.studies.privacy_vs_n``): one row per quantizer and size, log-log
slopes with intervals, the conclusions the notebook states, and the figure.

Kept apart from the computation so that editing how the table is read does not change the table's cache key
(``infra.tables.dependency_closure`` hashes the modules the computation imports).

Slopes (``fit_log_slope``): weighted least squares of ``log value`` on ``log n`` with the delta-method variance
``(se / value)^2`` of each point; when the points scatter more than their standard errors allow (reduced
chi-square above 1) the slope's standard error is inflated by its square root. Points whose value is not
positive (no measurable leakage) cannot enter a log-log fit: they are dropped and counted. Standard errors of
the attack's averages are over the (seed, target) pairs of a size; targets of one seed share their references,
so these are optimistic, which the inflation by the fit's own scatter partly corrects.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from mislib.infra.checks import check_float
from mislib.studies.privacy_vs_n import ALL_TARGETS, PUBLIC_GRID

REFERENCE = "identity"
HALF = -0.5          # the n^-1/2 rate of a release that publishes a float


def _values(table: pd.DataFrame, method: str, measurement: str, *, targets: bool = True) -> pd.DataFrame:
    chosen = table[(table["method"] == method) & (table["measurement"] == measurement)]
    return chosen[chosen["target"] != ALL_TARGETS] if targets else chosen


def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table of ``privacy_vs_n.run_privacy_vs_n``, or a ValueError naming what is missing."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    needed = {"n", "seed", "target", "quantizer", "method", "measurement", "value", "permutation"}
    missing = sorted(needed - set(table.columns))
    if missing:
        raise ValueError(f"table lacks the columns {missing} of a privacy-against-n table")
    if table.empty or not (table["method"] == "attack").any():
        raise ValueError("table holds no attack rows")
    return table


def summarise(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per quantizer and size ``n``: means over (seed, target) of the held-out and in-sample
    advantages, AUC and indicator, the standard errors of the attack's means, and the permutation null of the
    mean held-out advantage (mean and central ``confidence`` band of the targets' and seeds' averaged draws),
    with ``excess = advantage_heldout - null_mean`` and ``significant`` (the mean above the band)."""
    table = check_table(table)
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    alpha = (1 - confidence) / 2
    keys = ["quantizer", "n"]
    out = None
    for method, measurement, name in (("attack", "advantage_heldout", "advantage_heldout"),
                                      ("attack", "advantage_max", "advantage_max"), ("attack", "auc", "auc"),
                                      ("indicator", "ranking_score", "ranking_score"),
                                      ("indicator", "r_min", "r_min"),
                                      ("indicator", "delta_estimate", "delta_estimate")):
        grouped = _values(table, method, measurement).groupby(keys)["value"]
        part = grouped.mean().rename(name).to_frame()
        if method == "attack":
            part[f"{name}_se"] = grouped.std(ddof=1) / np.sqrt(grouped.count())
            if name == "advantage_heldout":
                part["n_targets"] = grouped.count()
        out = part if out is None else out.join(part)
    for measurement, prefix in (("advantage_heldout", "null"), ("advantage_max", "null_max")):
        draws = _values(table, "null_draw", measurement, targets=False)
        per_draw = draws.groupby(keys + ["permutation"])["value"].mean()     # averaged over seeds
        grouped = per_draw.groupby(level=keys)
        out[f"{prefix}_mean"] = grouped.mean()
        if prefix == "null":
            out["null_low"] = grouped.quantile(alpha)
            out["null_high"] = grouped.quantile(1 - alpha)
    out["excess"] = out["advantage_heldout"] - out["null_mean"]
    out["auc_excess"] = out["auc"] - 0.5
    out["significant"] = out["advantage_heldout"] > out["null_high"]
    return out.reset_index().sort_values(keys, kind="stable").reset_index(drop=True)


def fit_log_slope(n, values, stderr=None, *, confidence: float = 0.95) -> dict:
    """Slope of ``log values`` against ``log n`` (module notes), with a ``confidence`` interval.

    Parameters
    ----------
    n, values : arrays
        Sizes (positive) and measurements; points with a value that is not positive and finite are dropped.
    stderr : array or None
        Standard errors of ``values`` (weighted fit with the delta method); None: ordinary least squares, the
        interval from the residuals (Student t).

    Returns
    -------
    dict
        ``slope``, ``low``, ``high``, ``se``, ``intercept``, ``n_points`` (used) and ``n_dropped``; NaN slope
        with fewer than two points, NaN interval where the data cannot give one.
    """
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    n = np.asarray(n, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if n.ndim != 1 or values.shape != n.shape:
        raise ValueError(f"n and values must be 1-d arrays of one length, got shapes {n.shape} and {values.shape}")
    if (n <= 0).any() or not np.isfinite(n).all():
        raise ValueError("n must hold positive sizes")
    se = None if stderr is None else np.asarray(stderr, dtype=np.float64)
    if se is not None and se.shape != n.shape:
        raise ValueError(f"stderr must have the shape of values {values.shape}, got {se.shape}")
    keep = np.isfinite(values) & (values > 0)
    if se is not None:
        keep &= np.isfinite(se) & (se > 0)
    found = {"slope": math.nan, "low": math.nan, "high": math.nan, "se": math.nan, "intercept": math.nan,
             "n_points": int(keep.sum()), "n_dropped": int((~keep).sum())}
    if keep.sum() < 2 or np.unique(n[keep]).size < 2:
        return found
    x, y = np.log(n[keep]), np.log(values[keep])
    k = x.size
    w = np.ones(k) if se is None else (values[keep] / se[keep]) ** 2
    A = np.column_stack([np.ones(k), x])
    cov = np.linalg.inv(A.T @ (w[:, None] * A))
    intercept, slope = cov @ (A.T @ (w * y))
    residual = y - intercept - slope * x
    chi2 = float(np.sum(w * residual ** 2))
    if se is None:
        if k > 2:
            s = math.sqrt(cov[1, 1] * chi2 / (k - 2))
            half = sps.t.ppf(0.5 + confidence / 2, k - 2) * s
        else:
            s = half = math.nan
    else:
        s = math.sqrt(cov[1, 1] * (max(1.0, chi2 / (k - 2)) if k > 2 else 1.0))
        half = sps.norm.ppf(0.5 + confidence / 2) * s
    found.update(slope=float(slope), intercept=float(intercept), se=s, low=float(slope - half),
                 high=float(slope + half))
    return found


def slopes(summary: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per quantizer: log-log slopes of the attack's excess held-out advantage (over the null mean), of
    ``AUC - 0.5``, of the in-sample ``max |TPR - FPR|`` (not corrected: its bias flattens it), of the
    indicator's ``delta_estimate`` and of its ``ranking_score`` (OLS), with intervals; the difference of the
    advantage slope from identity's (interval from the two standard errors, correlations ignored); and the
    indicator's mean ranking score at the largest ``n`` with ``exits_fraction_at_largest_n = exp(-n *
    ranking_score)``, the share of weights it expects to leave their cell (1: the release is as informative
    as the float; the exponential regime of a fixed grid needs it near 0).

    A ranking-score slope of -1 means ``n * ranking_score`` stays constant: the expected exits do not fall with
    ``n``, and the indicator predicts no exponential fall; a slope of 0 is a genuine exponential rate."""
    rows = []
    reference = None
    largest = summary["n"].max()
    for label, part in summary.groupby("quantizer", sort=False):
        advantage = fit_log_slope(part["n"], part["excess"], part["advantage_heldout_se"], confidence=confidence)
        auc = fit_log_slope(part["n"], part["auc_excess"], part["auc_se"], confidence=confidence)
        in_sample = fit_log_slope(part["n"], part["advantage_max"], part["advantage_max_se"], confidence=confidence)
        delta = fit_log_slope(part["n"], part["delta_estimate"], confidence=confidence)
        rate = fit_log_slope(part["n"], part["ranking_score"], confidence=confidence)
        row = {"quantizer": label}
        for prefix, fit in (("advantage", advantage), ("auc", auc), ("max_advantage", in_sample),
                            ("indicator_delta", delta), ("ranking_score", rate)):
            row.update({f"{prefix}_{key}": fit[key] for key in ("slope", "low", "high", "se", "n_points")})
        score = float(part.loc[part["n"] == largest, "ranking_score"].mean())
        row["ranking_score_at_largest_n"] = score
        row["exits_fraction_at_largest_n"] = math.exp(-largest * score)
        rows.append(row)
        if label == REFERENCE:
            reference = advantage
    out = pd.DataFrame(rows)
    if reference is not None:
        z = sps.norm.ppf(0.5 + confidence / 2)
        out["advantage_slope_minus_identity"] = out["advantage_slope"] - reference["slope"]
        spread = z * np.sqrt(out["advantage_se"] ** 2 + reference["se"] ** 2)
        out["difference_low"] = out["advantage_slope_minus_identity"] - spread
        out["difference_high"] = out["advantage_slope_minus_identity"] + spread
        out.loc[out["quantizer"] == REFERENCE, ["difference_low", "difference_high"]] = 0.0
    return out


def conclusions(table: pd.DataFrame, confidence: float = 0.95) -> dict:
    """What the notebook states, computed from the table (``summarise`` and ``slopes``)."""
    summary = summarise(table, confidence)
    fitted = slopes(summary, confidence).set_index("quantizer")
    smallest = summary[summary["n"] == summary["n"].min()]
    identity = fitted.loc[REFERENCE] if REFERENCE in fitted.index else None
    faster = {q: bool(row["difference_high"] < 0) for q, row in fitted.iterrows() if q != REFERENCE}
    slower = {q: bool(row["difference_low"] > 0) for q, row in fitted.iterrows() if q != REFERENCE}
    # the indicator predicts a faster fall than the float rate when its delta estimate itself falls with n
    predicts_faster = {q: bool(row["indicator_delta_slope"] < -0.1) for q, row in fitted.iterrows()
                       if q != REFERENCE}
    matches = [predicts_faster[q] == faster[q] for q in faster]
    significant = {q: [int(v) for v in part.loc[part["significant"], "n"]]
                   for q, part in summary.groupby("quantizer", sort=False)}
    # rates are compared where they are measured: quantizers whose leakage clears the null at two sizes or more
    measured = [q for q, sizes in significant.items() if len(sizes) >= 2 and np.isfinite(fitted.loc[q,
                "advantage_slope"])]
    rate_tau = sps.kendalltau(fitted.loc[measured, "ranking_score_at_largest_n"],
                              -fitted.loc[measured, "advantage_slope"]).statistic if len(measured) >= 3 else math.nan
    level_tau = [sps.kendalltau(part["ranking_score"], -part["excess"]).statistic
                 for _, part in summary.groupby("n")]
    return {
        "sizes": sorted(int(v) for v in summary["n"].unique()),
        "n_targets": int(summary["n_targets"].min()),
        "max_bias_at_smallest_n": float(smallest["null_max_mean"].mean()),
        "heldout_null_at_smallest_n": float(smallest["null_mean"].mean()),
        "slopes": {q: (row["advantage_slope"], row["advantage_low"], row["advantage_high"])
                   for q, row in fitted.iterrows()},
        "auc_slopes": {q: (row["auc_slope"], row["auc_low"], row["auc_high"]) for q, row in fitted.iterrows()},
        "identity_slope": None if identity is None else float(identity["advantage_slope"]),
        "identity_consistent_with_half": None if identity is None else
        bool(identity["advantage_low"] <= HALF <= identity["advantage_high"]),
        "faster_than_identity": faster,
        "slower_than_identity": slower,
        "public_grid_faster": faster.get(PUBLIC_GRID),
        "indicator_predicts_faster": predicts_faster,
        "indicator_matches_attack": float(np.mean(matches)) if matches else math.nan,
        "rate_quantizers": measured,
        "rate_tau": float(rate_tau),
        "level_tau": float(np.nanmean(level_tau)),
        "identity_max_slope": None if identity is None else float(identity["max_advantage_slope"]),
        # releases whose leakage is not measurable: the slope of their in-sample maximum is that of its bias
        "unmeasured_max_slopes": {q: (row["max_advantage_slope"], row["max_advantage_low"], row["max_advantage_high"])
                                  for q, row in fitted.iterrows() if len(significant[q]) < 2},
        "ranking_score_slopes": {q: (row["ranking_score_slope"], row["ranking_score_low"],
                                     row["ranking_score_high"]) for q, row in fitted.iterrows() if q != REFERENCE},
        "exits_fraction_at_largest_n": {q: float(row["exits_fraction_at_largest_n"])
                                        for q, row in fitted.iterrows() if q != REFERENCE},
        "significant_sizes": significant,
    }


def _interval(triple) -> str:
    slope, low, high = triple
    if not np.isfinite(slope):
        return "undefined (fewer than two sizes with measurable leakage)"
    return f"{slope:.2f} [{low:.2f}, {high:.2f}]" if np.isfinite(low) else f"{slope:.2f} (no interval)"


def conclusions_text(found: dict) -> str:
    """The conclusions as sentences (every number from ``conclusions``)."""
    public = found["exits_fraction_at_largest_n"].get(PUBLIC_GRID)
    lines = [
        (f"- With no leakage (shuffled membership labels), the in-sample max |TPR - FPR| averages "
         f"{found['max_bias_at_smallest_n']:.3f} at n = {found['sizes'][0]}, the held-out advantage "
         f"{found['heldout_null_at_smallest_n']:+.3f}: the maximum is biased, the held-out value is not."),
        (f"- The unquantized head's excess held-out advantage falls with slope "
         f"{_interval(found['slopes'][REFERENCE])} in log n "
         f"({'consistent' if found['identity_consistent_with_half'] else 'not consistent'} with -1/2 over "
         f"n = {found['sizes'][0]}-{found['sizes'][-1]}); AUC - 0.5: {_interval(found['auc_slopes'][REFERENCE])}; "
         f"the uncorrected in-sample maximum would give {found['identity_max_slope']:.2f}."),
    ]
    for q, triple in found["slopes"].items():
        if q == REFERENCE:
            continue
        verdict = "faster than" if found["faster_than_identity"][q] else (
            "slower than" if found["slower_than_identity"][q] else "not distinguishable from")
        sizes = found["significant_sizes"][q]
        if len(sizes) < 2:
            verdict = "which is noise: its leakage clears the null band at " + (
                f"n = {sizes[0]} only" if sizes else "no size")
        else:
            verdict += f" the unquantized head's (leakage above the null at n = {', '.join(map(str, sizes))})"
        lines.append(f"- {q}: slope {_interval(triple)}, {verdict}; the indicator "
                     f"{'predicts' if found['indicator_predicts_faster'][q] else 'does not predict'} a faster "
                     f"fall (ranking-score slope {_interval(found['ranking_score_slopes'][q])}).")
    unmeasured = found["unmeasured_max_slopes"]
    if unmeasured:
        lines.append("- Where nothing measurable leaks, the in-sample maximum still falls, with slope "
                     + "; ".join(f"{_interval(t)} ({q})" for q, t in unmeasured.items())
                     + ": the rate of its bias, which would read as leakage falling like n^-1/2.")
    if public is not None:
        lines.append(f"- At the largest n the indicator expects {public:.0%} of the public grid's weights to leave "
                     f"their cell: the fixed grid is far from its exponential regime at these sizes.")
    none = not any(found["indicator_predicts_faster"].values()) and not any(found["faster_than_identity"].values())
    lines.append(f"- The indicator's prediction (a faster fall than the float rate, or not) matches the attack "
                 f"for {found['indicator_matches_attack']:.0%} of the quantized releases"
                 f"{' (neither shows a faster fall for any of them)' if none else ''}. Among the releases whose "
                 f"rate is measured ({', '.join(found['rate_quantizers'])}), Kendall's tau between the ranking "
                 f"score and the attack's rate of fall is {found['rate_tau']:+.2f}; between the ranking score and "
                 f"the level of leakage, averaged over n, {found['level_tau']:+.2f}.")
    return "\n".join(lines)


def plot_privacy_vs_n(summary: pd.DataFrame, order=None):
    """Log-log panels against ``n``: the held-out advantage per quantizer (mean +- 2 standard errors) with the
    upper edge of the 95% permutation-null band and the no-leakage mean of the in-sample maximum; ``AUC - 0.5``;
    and the indicator's ranking score. Non-positive means cannot be drawn on log axes and are left out.
    ``order``: the quantizers, in legend order (default: as in the table)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    labels = list(order) if order is not None else list(dict.fromkeys(summary["quantizer"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    colours = dict(zip(labels, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    sizes = np.array(sorted(summary["n"].unique()), dtype=float)
    null = summary.groupby("n")[["null_high", "null_max_mean"]].max()
    floor = 1e-3
    axes[0].fill_between(null.index, floor, null["null_high"], color="0.85", label="95% null band (upper edge)")
    axes[0].plot(null.index, null["null_max_mean"], ":", color="0.3", label="in-sample max, no leakage")
    for label in labels:
        part = summary[summary["quantizer"] == label]
        for ax, column, se in ((axes[0], "advantage_heldout", "advantage_heldout_se"),
                               (axes[1], "auc_excess", "auc_se"), (axes[2], "ranking_score", None)):
            shown = part[part[column] > 0]
            if shown.empty:
                continue
            error = None
            if se is not None:     # the lower whisker stops at the axis' floor
                error = np.vstack([np.clip(np.minimum(2 * shown[se], shown[column] - floor), 0, None), 2 * shown[se]])
            ax.errorbar(shown["n"], shown[column], yerr=error, marker="o", color=colours[label], label=label,
                        capsize=2)
    first = summary[(summary["quantizer"] == REFERENCE) & (summary["advantage_heldout"] > 0)]
    if not first.empty:
        n0, a0 = first["n"].iloc[0], first["advantage_heldout"].iloc[0]
        axes[0].plot(sizes, a0 * (sizes / n0) ** HALF, "--", color="k", lw=1, label="$n^{-1/2}$")
    titles = ("held-out advantage (LiRA online)", "AUC $-$ 0.5 (LiRA online)", "indicator: ranking score")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("training-set size n")
        ax.set_title(title)
    axes[0].set_ylim(bottom=floor)
    axes[1].set_ylim(bottom=floor)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=5, fontsize=8, bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig
