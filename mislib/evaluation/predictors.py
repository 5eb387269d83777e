"""Privacy predictors a user has without shadow models, against the attacks: does the indicator know more than
how much a quantizer damages the model?

Every predictor orders the releases (quantizers) of one audited configuration from more to less private. This
module measures each one as ``mislib.evaluation.agreement`` measures the indicator (pairs separated beyond the
reference attack's intervals, ordered alike; Kendall's tau), then controls for utility: among releases that cost
about the same test performance, which predictor still orders them as the attack does; the partial rank
correlation of a predictor with the attack given the performance drop; and a recommendation rule (the most
private release by a predictor within a utility budget) evaluated against the attack's own choice.

It only reads audit tables (``mislib.evaluation.audit.COLUMNS``); no compute function imports it. Its figures are
``mislib.evaluation.predictor_figures``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mislib.evaluation.agreement import agreement_table


@dataclass(frozen=True)
class Predictor:
    """A privacy predictor: ``source`` is the ``(method, measurement)`` of an audit table it reads (None for a
    rule derived from other columns), ``higher_is_private`` its orientation, ``needs_held_out`` whether it needs
    data beyond the training set."""

    name: str
    source: tuple[str, str] | None
    higher_is_private: bool
    needs_held_out: bool
    description: str


# Every predictor a user has without shadow models. The test-performance drop needs held-out labelled data (the
# test set); all the others need only the training set and the trained weights. The naive rules are the
# quantizer's own description: "fewer bits" (bits per weight, lower = more private), "more zeros" (sparsity), and
# "fewer bits, then more zeros" (bits first, sparsity breaks ties).
PREDICTORS = (
    Predictor("ranking_score", ("indicator", "ranking_score"), True, False,
              "the indicator's ranking score (THEORY.md §3.8)"),
    Predictor("ranking_score_averaged", ("indicator", "ranking_score_averaged"), True, False,
              "the ranking score averaged over the model's uncertainty"),
    Predictor("r_min", ("indicator", "r_min"), True, False, "the indicator's smallest standardised margin"),
    Predictor("fewer bits", ("quantizer", "bits_per_weight"), False, False, "bits per stored weight (fewer = private)"),
    Predictor("more zeros", ("quantizer", "sparsity"), True, False, "fraction of zero weights (more = private)"),
    Predictor("fewer bits, then more zeros", None, True, False, "fewer bits; at equal bits, more zeros"),
    Predictor("standardised_distortion", ("baseline", "standardised_distortion"), True, False,
              "sum_k ((Q(theta)_k - theta_k) / s_k)^2 with the sandwich standard errors s"),
    Predictor("train_loss_increase", ("baseline", "train_loss_increase"), True, False,
              "mean training loss of the quantized target minus the unquantized one"),
    Predictor("test_performance_drop", ("baseline", "test_performance_drop"), True, True,
              "primary test metric of the unquantized target minus the release's (needs held-out data)"),
)
INDICATOR = "ranking_score"
DROP = "test_performance_drop"
REFERENCE = ("best_attack", "auc")
PRIMARY_METRICS = ("auroc", "r2")          # the primary test metric: AUROC (classification), else R^2
_LEXICOGRAPHIC = "fewer bits, then more zeros"


def predictor_names(predictors=PREDICTORS) -> list[str]:
    """The names of ``predictors`` in order."""
    return [p.name for p in predictors]


def _predictor(name: str, predictors=PREDICTORS) -> Predictor:
    for p in predictors:
        if p.name == name:
            return p
    raise ValueError(f"unknown predictor {name!r}; choose one of {predictor_names(predictors)}")


def configuration_keys(table: pd.DataFrame) -> list[str]:
    """The columns that identify one audited configuration (one target whose releases are compared): the
    molecular study's ``task, embedder, seed``, else the synthetic study's ``dataset, model, sample_size, seed``
    (or ``model, sample_size, seed``), each followed by ``target`` where the table has it."""
    for keys in (["task", "embedder", "seed"], ["dataset", "model", "sample_size", "seed"],
                 ["model", "sample_size", "seed"]):
        if set(keys) <= set(table.columns):
            return keys + (["target"] if "target" in table.columns else [])
    raise ValueError(f"cannot tell the configuration columns of a table with columns {list(table.columns)}; pass by=")


def _check_table(table, by) -> list[str]:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame (an audit table), got {type(table).__name__}")
    by = configuration_keys(table) if by is None else list(by)
    missing = [c for c in by + ["quantizer", "method", "measurement", "value"] if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing}")
    return by


def _values(table, method, measurement, by) -> pd.Series:
    part = table[(table["method"] == method) & (table["measurement"] == measurement)]
    return part.set_index(by + ["quantizer"])["value"]


def release_table(table: pd.DataFrame, *, reference: tuple[str, str] = REFERENCE, by: Sequence[str] | None = None,
                  predictors=PREDICTORS, deterministic_only: bool = True) -> pd.DataFrame:
    """One row per release (``by`` + ``quantizer``): the raw value of every predictor (a column per name; NaN
    where the table lacks it), the reference (``reference``, ``reference_low``, ``reference_high``), the primary
    test metric (``performance``) and its bootstrap standard error (``performance_se``, NaN if absent).

    ``test_performance_drop`` comes from the table's baseline rows; a table without them (before mislib 0.3)
    gets it from its test rows: the unquantized release's primary metric minus the release's. Releases without
    a reference value are dropped; with ``deterministic_only``, so are randomised quantizers (their margins are 0
    by convention, ``agreement.study_agreement``)."""
    by = _check_table(table, by)
    keys = by + ["quantizer"]
    ref = table[(table["method"] == reference[0]) & (table["measurement"] == reference[1])]
    if ref.empty:
        raise ValueError(f"the table has no reference rows {reference!r}")
    out = ref.set_index(keys)[["value", "value_low", "value_high"]].rename(
        columns={"value": "reference", "value_low": "reference_low", "value_high": "reference_high"})
    out["performance"] = np.nan
    for metric in PRIMARY_METRICS:
        values = _values(table, "test", metric, by)
        if not values.empty:
            out["performance"] = out["performance"].fillna(values.reindex(out.index))
    out["performance_se"] = _values(table, "baseline", "test_performance_se", by).reindex(out.index)
    for p in predictors:
        if p.source is not None:
            out[p.name] = _values(table, *p.source, by).reindex(out.index)
    if DROP in out.columns and out[DROP].isna().all() and "performance" in out.columns:
        identity = out.xs("identity", level="quantizer")["performance"]
        base = identity.reindex(out.index.droplevel("quantizer")).to_numpy()
        out[DROP] = base - out["performance"].to_numpy()
    if _LEXICOGRAPHIC in predictor_names(predictors):
        bits = _values(table, "quantizer", "bits_per_weight", by).reindex(out.index)
        zeros = _values(table, "quantizer", "sparsity", by).reindex(out.index)
        # a dense rank of the bits (order-preserving) two apart per step, so sparsity in [0, 1] only breaks ties
        out[_LEXICOGRAPHIC] = -2.0 * bits.rank(method="dense") + zeros
    if deterministic_only:
        flags = _values(table, "quantizer", "deterministic", by).reindex(out.index)
        out = out[~(flags == 0)]
    return out.dropna(subset=["reference"]).reset_index()


def _long(releases: pd.DataFrame, by: list[str], name: str) -> pd.DataFrame:
    """A predictor's column and the reference as audit-table rows (method ``predictor`` and ``reference``)."""
    score = releases[by + ["quantizer", name]].rename(columns={name: "value"}).assign(
        method="predictor", measurement=name, value_low=np.nan, value_high=np.nan)
    ref = releases[by + ["quantizer", "reference", "reference_low", "reference_high"]].rename(
        columns={"reference": "value", "reference_low": "value_low", "reference_high": "value_high"}).assign(
        method="reference", measurement="value")
    return pd.concat([score, ref], ignore_index=True)


def predictor_agreement(table: pd.DataFrame, reference: tuple[str, str] = REFERENCE, *,
                        by: Sequence[str] | None = None, predictors=PREDICTORS,
                        deterministic_only: bool = True) -> pd.DataFrame:
    """``agreement.agreement_table`` of every predictor against ``reference`` (higher = less private), within
    each configuration ``by`` (default ``configuration_keys``): one row per (configuration, predictor) with
    ``predictor``, ``higher_is_private``, ``needs_held_out`` and the fields of ``agreement.RankingAgreement``.
    Predictors the table lacks are left out.

    Examples
    --------
    >>> table = pd.DataFrame({"model": "m", "sample_size": 8, "seed": 0, "quantizer": list("abc") * 2,
    ...     "method": ["best_attack"] * 3 + ["quantizer"] * 3, "measurement": ["auc"] * 3 + ["bits_per_weight"] * 3,
    ...     "value": [0.9, 0.7, 0.5, 8, 4, 2], "value_low": [0.85, 0.65, 0.45] + [np.nan] * 3,
    ...     "value_high": [0.95, 0.75, 0.55] + [np.nan] * 3})
    >>> row = predictor_agreement(table, predictors=[PREDICTORS[3]]).iloc[0]
    >>> row.predictor, int(row.n_separated), float(row.concordant_fraction)
    ('fewer bits', 3, 1.0)
    """
    by = _check_table(table, by)
    releases = release_table(table, reference=reference, by=by, predictors=predictors,
                             deterministic_only=deterministic_only)
    frames = []
    for p in predictors:
        if p.name not in releases.columns or releases[p.name].isna().all():
            continue
        result = agreement_table(_long(releases, by, p.name), ("predictor", p.name), ("reference", "value"),
                                 by=by, score_higher_is_private=p.higher_is_private,
                                 reference_higher_is_private=False)
        frames.append(result.assign(predictor=p.name, higher_is_private=p.higher_is_private,
                                    needs_held_out=p.needs_held_out))
    if not frames:
        raise ValueError("the table has none of the predictors' measurements")
    out = pd.concat(frames, ignore_index=True).drop(columns=["score", "reference"])
    return out[["predictor", *[c for c in out.columns if c != "predictor"]]]


def summarise_agreement(agreements: pd.DataFrame, over: Sequence[str] = ()) -> pd.DataFrame:
    """Per predictor (and group of ``over``): the configurations (``n_configurations``), the separated pairs and
    the pooled fraction ordered alike (total concordant over total separated), the mean, sd and count of the
    per-configuration fraction (configurations with a separated pair), and the mean and sd of Kendall's tau
    (a NaN tau, from a constant predictor, counts as 0: it orders nothing, as in ``pooled_agreement``)."""
    keys = list(over) + ["predictor"]
    rows = []
    for key, g in agreements.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        separated = int(g["n_separated"].sum())
        fractions = g["concordant_fraction"].dropna()
        tau = g["kendall_tau"].fillna(0.0)
        rows.append({**dict(zip(keys, key)), "needs_held_out": bool(g["needs_held_out"].iloc[0]),
                     "n_configurations": len(g), "n_separated": separated,
                     "concordant_fraction": float(g["concordant"].sum()) / separated if separated else math.nan,
                     "fraction_mean": float(fractions.mean()) if len(fractions) else math.nan,
                     "fraction_sd": float(fractions.std(ddof=1)) if len(fractions) > 1 else math.nan,
                     "fraction_count": len(fractions),
                     "tau_mean": float(tau.mean()), "tau_sd": float(tau.std(ddof=1)) if len(tau) > 1 else math.nan})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- utility-controlled pairs

def release_pairs(releases: pd.DataFrame, by: Sequence[str], predictors=PREDICTORS) -> pd.DataFrame:
    """Every pair of releases of the same configuration whose reference intervals do not overlap (the pairs
    ``ranking_agreement`` counts), with ``performance_gap`` (absolute difference of the primary test metric),
    ``se`` (the configuration's median ``performance_se``) and, per predictor, 1 if it orders the pair as the
    reference does, 0 if the other way, 1/2 if it ties (the rule of ``agreement.ranking_agreement``)."""
    by = list(by)
    names = [p.name for p in predictors if p.name in releases.columns and releases[p.name].notna().any()]
    rows = []
    for key, g in releases.groupby(by, sort=True):
        g = g.reset_index(drop=True)
        lo, hi = g["reference_low"].to_numpy(), g["reference_high"].to_numpy()
        if np.isnan(lo).any() or np.isnan(hi).any():
            lo = hi = g["reference"].to_numpy()
        i, j = np.triu_indices(len(g), k=1)
        i_private = hi[i] < lo[j]                   # lower attack AUC beyond the intervals: i more private
        j_private = hi[j] < lo[i]
        keep = i_private | j_private
        i, j, sign = i[keep], j[keep], np.where(i_private[keep], 1.0, -1.0)
        perf = g["performance"].to_numpy(dtype=float)
        frame = pd.DataFrame({"quantizer_a": g["quantizer"].to_numpy()[i], "quantizer_b": g["quantizer"].to_numpy()[j],
                              "performance_gap": np.abs(perf[i] - perf[j]),
                              "se": float(np.nanmedian(g["performance_se"])) if g["performance_se"].notna().any()
                              else math.nan})
        for name in names:
            p = _predictor(name, predictors)
            s = g[name].to_numpy(dtype=float) * (1 if p.higher_is_private else -1)
            with np.errstate(invalid="ignore"):
                d = np.sign(s[i] - s[j]) * sign
            frame[name] = np.where(np.isnan(d) | (d == 0), 0.5, (d > 0).astype(float))
            frame.loc[np.isnan(s[i]) | np.isnan(s[j]), name] = np.nan
        for column, value in zip(by, key if isinstance(key, tuple) else (key,)):
            frame[column] = value
        rows.append(frame)
    columns = by + ["quantizer_a", "quantizer_b", "performance_gap", "se", *names]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


DEFAULT_TOLERANCES_SE = (0.25, 0.5, 1.0, 2.0, 4.0, math.inf)


def utility_controlled(table: pd.DataFrame, tolerances: Sequence[float] = (1.0,), *, in_se: bool = True,
                       reference: tuple[str, str] = REFERENCE, by: Sequence[str] | None = None,
                       predictors=PREDICTORS, over: Sequence[str] = (),
                       deterministic_only: bool = True) -> pd.DataFrame:
    """Among the separated pairs of releases (``release_pairs``) whose test performance differs by less than
    a tolerance, the fraction each predictor orders as ``reference`` does. ``tolerances`` are in units of the
    configuration's bootstrap standard error of the test metric (``in_se``; needs the ``test_performance_se``
    rows) or absolute (in AUROC / R^2). One row per (group of ``over``, tolerance, predictor): ``n_pairs``,
    ``concordant`` and ``concordant_fraction`` (NaN without pairs). With an infinite tolerance the fractions are
    those of ``predictor_agreement`` pooled."""
    by = _check_table(table, by)
    tolerances = [float(t) for t in np.atleast_1d(tolerances)]
    if not tolerances or any(not t > 0 for t in tolerances):
        raise ValueError(f"tolerances must be positive numbers, got {tolerances}")
    releases = release_table(table, reference=reference, by=by, predictors=predictors,
                             deterministic_only=deterministic_only)
    if in_se and releases["performance_se"].isna().all():
        raise ValueError("in_se=True needs the baseline rows 'test_performance_se'; give absolute tolerances "
                         "with in_se=False")
    pairs = release_pairs(releases, by, predictors)
    names = [p.name for p in predictors if p.name in pairs.columns]
    rows = []
    groups = pairs.groupby(list(over), sort=True) if over else [((), pairs)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        for t in tolerances:
            scale = g["se"] if in_se else 1.0
            close = g if math.isinf(t) else g[g["performance_gap"] < t * scale]
            for name in names:
                votes = close[name].dropna()
                rows.append({**dict(zip(over, key)), "tolerance": t, "in_se": in_se, "predictor": name,
                             "n_pairs": len(votes), "concordant": float(votes.sum()),
                             "concordant_fraction": float(votes.mean()) if len(votes) else math.nan})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- partial rank correlation

def partial_spearman(x, y, z) -> float:
    """Spearman's partial rank correlation of ``x`` and ``y`` given ``z``: the Pearson correlation of the ranks'
    residuals after a linear fit on the ranks of ``z``, i.e. (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))
    on ranks. NaN when a variable is constant or ``z`` explains ``x`` or ``y`` exactly.

    Examples
    --------
    Overall ``x`` and ``y`` rise together, but within each level of ``z`` they run opposite:

    >>> round(partial_spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], [1, 1, 2, 2, 3]), 3)
    -1.0
    """
    from scipy.stats import rankdata

    arrays = [np.asarray(v, dtype=float) for v in (x, y, z)]
    for name, v in zip("xyz", arrays):
        if v.ndim != 1:
            raise ValueError(f"{name} must be 1-d, got shape {v.shape}")
        if np.isnan(v).any():
            raise ValueError(f"{name} contains NaN")
    if not len(arrays[0]) == len(arrays[1]) == len(arrays[2]):
        raise ValueError(f"x, y and z must have the same length, got {[len(v) for v in arrays]}")
    if len(arrays[0]) < 4:
        raise ValueError(f"need at least 4 items for a partial correlation, got {len(arrays[0])}")
    rx, ry, rz = (rankdata(v) for v in arrays)
    if min(np.ptp(rx), np.ptp(ry), np.ptp(rz)) == 0:
        return math.nan
    c = np.corrcoef(np.vstack([rx, ry, rz]))
    rxy, rxz, ryz = c[0, 1], c[0, 2], c[1, 2]
    denominator = (1 - rxz ** 2) * (1 - ryz ** 2)
    if denominator <= 1e-12:
        return math.nan
    return float((rxy - rxz * ryz) / math.sqrt(denominator))


def partial_correlations(table: pd.DataFrame, *, given: str = DROP, reference: tuple[str, str] = REFERENCE,
                         by: Sequence[str] | None = None, predictors=PREDICTORS,
                         deterministic_only: bool = True) -> pd.DataFrame:
    """Per configuration and predictor: Spearman's correlation of the predictor's privacy (oriented so that
    higher = more private) with the reference's privacy (minus the attack's AUC), raw (``spearman``) and given
    ``given`` (``partial``, ``partial_spearman``). Positive = the predictor orders privacy as the attack does,
    beyond what the ``given`` baseline already says. The ``given`` predictor itself is left out."""
    from scipy.stats import spearmanr

    by = _check_table(table, by)
    releases = release_table(table, reference=reference, by=by, predictors=predictors,
                             deterministic_only=deterministic_only)
    if given not in releases.columns or releases[given].isna().all():
        raise ValueError(f"the table has no values of the conditioning predictor {given!r}")
    rows = []
    for key, g in releases.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for p in predictors:
            if p.name == given or p.name not in g.columns:
                continue
            part = g.dropna(subset=[p.name, given, "reference"])
            if len(part) < 4:
                continue
            x = part[p.name].to_numpy(float) * (1 if p.higher_is_private else -1)
            y = -part["reference"].to_numpy(float)
            constant = np.ptp(x) == 0 or np.ptp(y) == 0
            rows.append({**dict(zip(by, key)), "predictor": p.name, "n_releases": len(part),
                         "spearman": math.nan if constant else float(spearmanr(x, y).statistic),
                         "partial": partial_spearman(x, y, part[given].to_numpy(float))})
    return pd.DataFrame(rows)


def _bootstrap_interval(sums, counts, rng, n_bootstrap: int) -> tuple[float, float]:
    """Percentile 95% interval of a mean over items grouped in independent units (``sums`` and ``counts`` per
    unit), resampling whole units; NaNs with fewer than two units."""
    if len(sums) < 2:
        return math.nan, math.nan
    pick = rng.integers(0, len(sums), size=(n_bootstrap, len(sums)))
    means = np.asarray(sums)[pick].sum(axis=1) / np.asarray(counts)[pick].sum(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def summarise_partial(partials: pd.DataFrame, *, cluster: Sequence[str] | None = None, n_bootstrap: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Per predictor, across configurations: mean, sd and count of the partial correlation (NaNs dropped), how
    many are positive and negative, the two-sided sign-test p-value and a percentile bootstrap 95% interval of
    the mean (``n_bootstrap`` resamples).

    ``cluster`` (columns of ``partials``): configurations that share data, e.g. the targets drawn from one pool
    (all keys but ``target``), are not independent; the bootstrap then resamples whole clusters and the sign test
    counts the clusters' mean partial correlations (``n_clusters``), so that the evidence is not overstated."""
    from scipy.stats import binomtest

    rng = np.random.default_rng(seed)
    cluster = list(cluster) if cluster else []
    missing = [c for c in cluster if c not in partials.columns]
    if missing:
        raise ValueError(f"cluster columns {missing} are not in the partial-correlation table")
    rows = []
    for name, g in partials.groupby("predictor", sort=False):
        g = g.dropna(subset=["partial"])
        v = g["partial"].to_numpy()
        sums = g.groupby(cluster, sort=True)["partial"].agg(["sum", "count", "mean"]) if cluster else \
            pd.DataFrame({"sum": v, "count": 1, "mean": v})
        units = sums["mean"].to_numpy()
        positive, negative = int((units > 0).sum()), int((units < 0).sum())
        p_sign = binomtest(positive, positive + negative).pvalue if positive + negative else math.nan
        low, high = _bootstrap_interval(sums["sum"].to_numpy(), sums["count"].to_numpy(), rng, n_bootstrap)
        rows.append({"predictor": name, "n_configurations": len(v), "n_clusters": len(units),
                     "spearman_mean": float(g["spearman"].mean()),
                     "partial_mean": float(v.mean()) if len(v) else math.nan,
                     "partial_sd": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                     "n_positive": positive, "n_negative": negative, "sign_test_p": float(p_sign),
                     "partial_mean_low": float(low), "partial_mean_high": float(high)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- recommendation in a budget

def recommend(table: pd.DataFrame, budget: float, predictor: str = INDICATOR, *, budget_in_se: bool = False,
              reference: tuple[str, str] = REFERENCE, by: Sequence[str] | None = None, predictors=PREDICTORS,
              deterministic_only: bool = True):
    """The most private release by ``predictor`` among the releases whose test-performance drop is at most
    ``budget`` (absolute, in AUROC / R^2; with ``budget_in_se`` in units of the release's bootstrap standard error
    of the test metric), per configuration; ties go to the smaller drop. The unquantized release (drop 0) is
    always a candidate. Needs held-out data (the drop).

    Returns ``(picks, summary)``: ``picks`` one row per configuration with the chosen ``quantizer``, its ``drop``
    and ``attack_auc``, the attack's most private candidate (``best_quantizer``, ``best_auc``), ``regret``
    (chosen AUC minus best), ``hit`` (the same release), ``tied`` (the chosen release's interval overlaps the
    best one's: the attack cannot tell them apart), ``n_candidates`` and ``random_auc`` (the candidates' mean
    AUC: a random pick's expectation); ``summary`` a dict of their means (``hit_rate``, ``tied_rate``,
    ``mean_regret``, ``random_hit_rate``, ``random_regret``) and ``n_configurations``."""
    by = _check_table(table, by)
    budget = float(budget)
    if not budget >= 0 or math.isinf(budget) and budget_in_se:
        raise ValueError(f"budget must be a non-negative number, got {budget}")
    p = _predictor(predictor, predictors)
    releases = release_table(table, reference=reference, by=by, predictors=predictors,
                             deterministic_only=deterministic_only)
    if releases[DROP].isna().all() or releases[predictor].isna().all():
        raise ValueError(f"the table has no values of {DROP!r} or of the predictor {predictor!r}")
    if budget_in_se and releases["performance_se"].isna().all():
        raise ValueError("budget_in_se=True needs the baseline rows 'test_performance_se'")
    limit = budget * releases["performance_se"] if budget_in_se else budget
    candidates = releases[(releases[DROP] <= limit + 1e-12) | (releases["quantizer"] == "identity")]
    candidates = candidates.dropna(subset=[predictor, "reference"])
    rows = []
    for key, g in candidates.groupby(by, sort=True):
        score = g[predictor] * (1 if p.higher_is_private else -1)
        chosen = g.assign(_s=score).sort_values(["_s", DROP, "quantizer"], ascending=[False, True, True]).iloc[0]
        best = g.sort_values(["reference", "quantizer"]).iloc[0]
        low = chosen["reference_low"] if pd.notna(chosen["reference_low"]) else chosen["reference"]
        high = best["reference_high"] if pd.notna(best["reference_high"]) else best["reference"]
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "predictor": predictor,
                     "quantizer": chosen["quantizer"], "drop": float(chosen[DROP]),
                     "attack_auc": float(chosen["reference"]), "best_quantizer": best["quantizer"],
                     "best_auc": float(best["reference"]), "regret": float(chosen["reference"] - best["reference"]),
                     "hit": bool(chosen["quantizer"] == best["quantizer"]), "tied": bool(low <= high),
                     "n_candidates": len(g), "random_auc": float(g["reference"].mean())})
    picks = pd.DataFrame(rows)
    summary = {"predictor": predictor, "budget": budget, "budget_in_se": budget_in_se,
               "n_configurations": len(picks), "hit_rate": float(picks["hit"].mean()),
               "tied_rate": float(picks["tied"].mean()), "mean_regret": float(picks["regret"].mean()),
               "mean_auc": float(picks["attack_auc"].mean()),
               "random_hit_rate": float((1 / picks["n_candidates"]).mean()),
               "random_regret": float((picks["random_auc"] - picks["best_auc"]).mean())}
    return picks, summary


def regret_difference(table: pd.DataFrame, budget: float, predictor: str, rival: str, *,
                      cluster: Sequence[str] | None = None, n_bootstrap: int = 2000, seed: int = 0,
                      **options) -> dict:
    """Paired comparison of two predictors' picks within the same budget (``recommend``): the mean over
    configurations of ``predictor``'s AUC regret minus ``rival``'s (negative = ``predictor`` picks more private
    releases), with a percentile bootstrap 95% interval (resampling whole ``cluster`` groups when given) and the
    number of configurations ``n``."""
    ours, _ = recommend(table, budget, predictor, **options)
    theirs, _ = recommend(table, budget, rival, **options)
    by = options.get("by") or configuration_keys(table)
    paired = ours.merge(theirs, on=list(by), suffixes=("", "_rival"))
    paired["difference"] = paired["regret"] - paired["regret_rival"]
    units = paired.groupby(list(cluster), sort=True)["difference"] if cluster else None
    sums = units.sum().to_numpy() if cluster else paired["difference"].to_numpy()
    counts = units.count().to_numpy() if cluster else np.ones(len(paired))
    low, high = _bootstrap_interval(sums, counts, np.random.default_rng(seed), n_bootstrap)
    return {"mean": float(paired["difference"].mean()), "low": low, "high": high, "n": len(paired)}


def recommendation_comparison(table: pd.DataFrame, budgets: Sequence[float] = (0.02,), *,
                              budget_in_se: bool = False, predictors=PREDICTORS, **options) -> pd.DataFrame:
    """``recommend``'s summary for every predictor the table has and every budget: one row per (budget,
    predictor), plus a ``random`` row per budget (a uniformly random candidate's expected hit rate and regret)."""
    releases = release_table(table, predictors=predictors, **{k: v for k, v in options.items()
                                                              if k in ("reference", "by", "deterministic_only")})
    available = [p.name for p in predictors if p.name in releases.columns and releases[p.name].notna().any()]
    rows = []
    for budget in budgets:
        for name in available:
            rows.append(recommend(table, budget, name, budget_in_se=budget_in_se, predictors=predictors,
                                  **options)[1])
        last = rows[-1]
        rows.append({**last, "predictor": "random", "hit_rate": last["random_hit_rate"], "tied_rate": math.nan,
                     "mean_regret": last["random_regret"], "mean_auc": math.nan})
    return pd.DataFrame(rows).drop(columns=["random_hit_rate", "random_regret"])


# ------------------------------------------------------------------------------------------------- conclusions

INDICATORS = ("ranking_score", "ranking_score_averaged", "r_min")
SIGNIFICANCE = 0.05          # the partial correlation counts when its interval excludes 0 and the sign test passes this
MIN_CONTROLLED_PAIRS = 20   # fewer separated pairs of equal utility than this: the pair test does not decide


def conclusions(table: pd.DataFrame, *, tolerance: float = 1.0, in_se: bool = True, budget: float = 0.02,
                reference: tuple[str, str] = REFERENCE, by: Sequence[str] | None = None,
                predictors=PREDICTORS, deterministic_only: bool = True) -> dict:
    """The answer to "does the indicator know more than the accuracy drop?" on one study's table, as numbers:

    - ``<predictor>_fraction`` / ``<predictor>_tau``: pooled fraction of separated pairs ordered as the
      reference does and mean Kendall tau (``predictor_agreement``), with ``n_separated``; ``best_baseline`` the
      non-indicator predictor with the highest fraction;
    - ``controlled_*``: the same fraction among pairs whose test performance differs by less than ``tolerance``
      (in standard errors with ``in_se``, else absolute), for the ranking score, the drop and the best baseline;
    - ``partial_*``: the ranking score's partial rank correlation with the attack given the drop, across
      configurations (mean, sd, count, positives, sign-test p, bootstrap interval of the mean), and the best
      non-indicator predictor's mean; ``partial_train_loss_*`` the same given the training-loss increase (a damage
      measure without held-out data and its noise) where the table has it;
    - ``recommend_*``: the most private release by the ranking score within a drop ``budget`` against every
      other predictor within the same budget (hit rate: the attack's own choice; regret in AUC);
    - verdicts: ``indicator_beats_baselines`` (higher fraction than every baseline), ``adds_beyond_drop``
      (``partial_significant``: the partial correlation's bootstrap interval above 0 and its sign test at
      p < ``SIGNIFICANCE``; and, where at least ``MIN_CONTROLLED_PAIRS`` pairs of
      equal utility are separated (``controlled_decides``), a utility-controlled fraction at least the drop's),
      ``combination_beats_singles`` (the budgeted ranking score has a higher hit rate than every other predictor in
      the same budget, and its regret minus that of the lowest-regret other predictor, paired by configuration,
      has a bootstrap interval below 0: ``recommend_regret_difference_*``)."""
    options = dict(reference=reference, by=by, predictors=predictors, deterministic_only=deterministic_only)
    names = set(predictor_names(predictors))
    if INDICATOR not in names or DROP not in names:
        raise ValueError(f"predictors must include {INDICATOR!r} and {DROP!r}")
    summary = summarise_agreement(predictor_agreement(table, **options)).set_index("predictor")
    found = {"reference": f"{reference[0]}.{reference[1]}", "tolerance": float(tolerance), "in_se": in_se,
             "budget": float(budget), "n_configurations": int(summary.loc[INDICATOR, "n_configurations"]),
             "n_separated": int(summary.loc[INDICATOR, "n_separated"])}
    for name, row in summary.iterrows():
        found[f"{name}_fraction"] = float(row["concordant_fraction"])
        found[f"{name}_tau"] = float(row["tau_mean"])
    found["best_baseline"], found["best_baseline_fraction"] = _best(summary["concordant_fraction"])
    found["best_baseline_tau"] = (float(summary.loc[found["best_baseline"], "tau_mean"])
                                  if found["best_baseline"] else math.nan)
    controlled = utility_controlled(table, [tolerance], in_se=in_se, **options).set_index("predictor")
    found["controlled_pairs"] = int(controlled.loc[INDICATOR, "n_pairs"])
    found["controlled_indicator_fraction"] = float(controlled.loc[INDICATOR, "concordant_fraction"])
    found["controlled_drop_fraction"] = float(controlled.loc[DROP, "concordant_fraction"])
    found["controlled_best_baseline"], found["controlled_best_baseline_fraction"] = _best(
        controlled["concordant_fraction"])
    found.update(_partial_findings(table, DROP, "partial", options))
    if "train_loss_increase" in names:      # the same control with the damage measured on the training set
        try:
            found.update(_partial_findings(table, "train_loss_increase", "partial_train_loss", options))
        except ValueError:                  # a table without the baseline rows
            pass
    picks = recommendation_comparison(table, [budget], **options).set_index("predictor")
    found["recommend_hit"] = float(picks.loc[INDICATOR, "hit_rate"])
    found["recommend_tied"] = float(picks.loc[INDICATOR, "tied_rate"])
    found["recommend_regret"] = float(picks.loc[INDICATOR, "mean_regret"])
    singles = picks.drop(index=[INDICATOR, "random"])
    found["recommend_best_single"], found["recommend_best_single_hit"] = _best(singles["hit_rate"], exclude=())
    found["recommend_best_single_regret"] = float(singles.loc[found["recommend_best_single"], "mean_regret"])
    found["recommend_lowest_regret_single"], lowest = _best(-singles["mean_regret"], exclude=())
    found["recommend_lowest_regret"] = -lowest
    by = options["by"] if options["by"] is not None else configuration_keys(table)
    difference = regret_difference(table, budget, INDICATOR, found["recommend_lowest_regret_single"], **options,
                                   cluster=[c for c in by if c != "target"] if "target" in by else None)
    found.update({f"recommend_regret_difference_{k}": v for k, v in difference.items() if k != "n"})
    found["recommend_drop_hit"] = float(picks.loc[DROP, "hit_rate"])
    found["recommend_drop_regret"] = float(picks.loc[DROP, "mean_regret"])
    found["recommend_random_hit"] = float(picks.loc["random", "hit_rate"])
    found["indicator_beats_baselines"] = bool(found[f"{INDICATOR}_fraction"] > found["best_baseline_fraction"])
    found["controlled_decides"] = found["controlled_pairs"] >= MIN_CONTROLLED_PAIRS
    found["partial_significant"] = bool(found["partial_low"] > 0 and found["partial_p"] < SIGNIFICANCE)
    found["adds_beyond_drop"] = bool(found["partial_significant"] and (
        not found["controlled_decides"] or found["controlled_indicator_fraction"] >= found["controlled_drop_fraction"]))
    found["combination_beats_singles"] = bool(found["recommend_hit"] > found["recommend_best_single_hit"]
                                              and found["recommend_regret_difference_high"] < 0)
    return found


def _best(values: pd.Series, exclude=INDICATORS) -> tuple[str | None, float]:
    """The name (index) with the largest value, leaving out ``exclude``; ``(None, nan)`` when all are NaN."""
    values = values.drop(index=[n for n in exclude if n in values.index]).dropna()
    if values.empty:
        return None, math.nan
    return str(values.idxmax()), float(values.max())


def _partial_findings(table, given: str, prefix: str, options: dict) -> dict:
    """The ranking score's partial correlation given ``given`` across configurations, and the best
    non-indicator predictor's mean, under keys starting with ``prefix`` (``conclusions``)."""
    partials = partial_correlations(table, given=given, **options)
    if partials.empty:
        empty = {f"{prefix}_{k}": math.nan for k in ("mean", "sd", "p", "low", "high", "spearman_mean",
                                                     "best_baseline_mean")}
        return empty | {f"{prefix}_{k}": 0 for k in ("n", "clusters", "positive", "negative")} | {
            f"{prefix}_best_baseline": None}
    by = options["by"] if options["by"] is not None else configuration_keys(table)
    cluster = [c for c in by if c != "target"] if "target" in by else None
    summary = summarise_partial(partials, cluster=cluster).set_index("predictor")
    row = summary.loc[INDICATOR]
    best, best_mean = _best(summary["partial_mean"])
    return {f"{prefix}_mean": float(row["partial_mean"]), f"{prefix}_sd": float(row["partial_sd"]),
            f"{prefix}_n": int(row["n_configurations"]), f"{prefix}_clusters": int(row["n_clusters"]),
            f"{prefix}_positive": int(row["n_positive"]),
            f"{prefix}_negative": int(row["n_negative"]), f"{prefix}_p": float(row["sign_test_p"]),
            f"{prefix}_low": float(row["partial_mean_low"]), f"{prefix}_high": float(row["partial_mean_high"]),
            f"{prefix}_spearman_mean": float(row["spearman_mean"]),
            f"{prefix}_best_baseline": best, f"{prefix}_best_baseline_mean": best_mean}


def _tolerance_words(found: dict) -> str:
    if found["in_se"]:
        return f"{found['tolerance']:g} bootstrap standard error{'s' if found['tolerance'] != 1 else ''}"
    return f"{found['tolerance']:g} (absolute, in AUROC or R$^2$)"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f}%"


def conclusions_text(found: dict) -> str:
    """``conclusions`` as Markdown sentences (every number from ``found``)."""
    pct = _pct
    pairs = (f"{found['controlled_pairs']} separated pairs; the ranking score orders "
             f"{pct(found['controlled_indicator_fraction'])} of them as the attack does, the drop "
             f"{pct(found['controlled_drop_fraction'])}, the best other baseline ({found['controlled_best_baseline']}) "
             f"{pct(found['controlled_best_baseline_fraction'])}")
    if found["controlled_pairs"] == 0:
        pairs = "no pair that the attack separates: this test does not decide here"
    elif not found["controlled_decides"]:
        pairs += f" (fewer than {MIN_CONTROLLED_PAIRS} pairs: this test does not decide here)"
    lines = [
        f"- Over {found['n_configurations']} configurations and {found['n_separated']} pairs of releases that the "
        f"best attack separates, the ranking score orders {pct(found['ranking_score_fraction'])} as the attack does "
        f"(mean Kendall tau {found['ranking_score_tau']:.2f}); the best predictor without the indicator, "
        f"**{found['best_baseline']}**, {pct(found['best_baseline_fraction'])} (tau {found['best_baseline_tau']:.2f}); "
        f"the test-performance drop alone {pct(found['test_performance_drop_fraction'])} "
        f"(tau {found['test_performance_drop_tau']:.2f}).",
        f"- **At equal utility** (test performance within {_tolerance_words(found)}): {pairs}.",
        f"- Partial rank correlation of the ranking score with the attack's privacy given the drop: mean "
        f"{found['partial_mean']:+.2f} (sd {found['partial_sd']:.2f}, 95% bootstrap interval "
        f"[{found['partial_low']:+.2f}, {found['partial_high']:+.2f}]) over {found['partial_n']} configurations"
        + (f" drawn from {found['partial_clusters']} independent pools (targets of one pool resampled and counted "
              "as one)"
           if found["partial_clusters"] != found["partial_n"] else "")
        + f", positive in {found['partial_positive']} and negative in {found['partial_negative']} (sign test "
        f"p = {found['partial_p']:.2g}); {found['partial_spearman_mean']:+.2f} without the control; the best baseline given "
        f"the drop, {found['partial_best_baseline']}, {found['partial_best_baseline_mean']:+.2f}"
        + (f"; given the training-loss increase instead, {found['partial_train_loss_mean']:+.2f} "
           f"[{found['partial_train_loss_low']:+.2f}, {found['partial_train_loss_high']:+.2f}]."
           if found.get("partial_train_loss_n") else "."),
        f"- Choosing the most private release by the ranking score among those losing at most "
        f"{found['budget']:g} of test performance picks the attack's own choice in {pct(found['recommend_hit'])} of "
        f"the configurations (mean AUC regret {found['recommend_regret']:.3f}; in {pct(found['recommend_tied'])} the "
        f"attack's intervals cannot tell the pick from its choice); the best single predictor in the same budget, "
        f"{found['recommend_best_single']}, {pct(found['recommend_best_single_hit'])} (regret "
        f"{found['recommend_best_single_regret']:.3f}); spending the budget (largest drop) "
        f"{pct(found['recommend_drop_hit'])}; a random candidate {pct(found['recommend_random_hit'])}. Paired by "
        f"configuration, the ranking score's regret minus that of {found['recommend_lowest_regret_single']} (the "
        f"lowest of the others) is {found['recommend_regret_difference_mean']:+.3f} (95% interval "
        f"[{found['recommend_regret_difference_low']:+.3f}, {found['recommend_regret_difference_high']:+.3f}]). "
        + ("The combination beats every single predictor." if found["combination_beats_singles"] else
           "The combination does not beat every single predictor."),
    ]
    if found["adds_beyond_drop"]:
        verdict = ("So **the indicator knows more than the accuracy drop**: its rank correlation with the attack "
                   "survives the control for the drop" + (", and between releases of about the same utility it "
                                                          "orders privacy at least as well as the drop."
                                                          if found["controlled_decides"] else "."))
    elif math.isnan(found["partial_low"]):
        verdict = ("So **this table cannot tell** whether the indicator knows more than the accuracy drop: too few "
                   "independent configurations for an interval.")
    elif not found["partial_significant"]:
        verdict = ("So **on this evidence the indicator does not demonstrably know more than the accuracy drop**: "
                   "given the drop, its rank correlation with the attack is not positive beyond doubt (its interval "
                   f"must exclude 0 and its sign test reach p < {SIGNIFICANCE:g}).")
    else:
        verdict = ("So **the evidence is mixed**: the rank correlation survives the control for the drop, but "
                   "between releases of equal utility the drop orders more pairs as the attack does.")
    lines.append(f"- {verdict}")
    return "\n".join(lines)


def when_not_to_trust(found: dict) -> str:
    """One sentence for the README's "When not to trust it", with the numbers of ``conclusions``."""
    head = (f"Given the accuracy drop, the ranking score's rank correlation with the best attack averages "
            f"{found['partial_mean']:+.2f} (95% interval [{found['partial_low']:+.2f}, {found['partial_high']:+.2f}], "
            f"{found['partial_n']} configurations)")
    if found["controlled_pairs"]:
        head += (f", and between releases whose test performance differs by less than {_tolerance_words(found)} it "
                 f"orders {_pct(found['controlled_indicator_fraction'])} of the {found['controlled_pairs']} pairs the "
                 f"attack separates as the attack does (the drop {_pct(found['controlled_drop_fraction'])})")
    if found["adds_beyond_drop"]:
        return (head + ": it adds to the accuracy drop, but it ranks one model's releases and does not give an "
                "attack's AUC.")
    return head + ": do not trust it to choose between releases of equal utility beyond what the accuracy drop says."
