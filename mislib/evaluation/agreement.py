"""Ranking agreement: how an indicator (or any score) orders quantizers against a reference (ground truth or the
best attack). Among pairs whose reference intervals do not overlap, the fraction ordered the same way, and
Kendall's tau over all quantizers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RankingAgreement:
    """How an indicator orders items (quantizers) against a reference with confidence intervals.

    ``n_separated`` pairs have reference intervals that do not overlap; ``concordant`` of them (indicator
    ties count one half) are ordered the same way by the indicator; ``concordant_fraction`` is the ratio (NaN
    when no pair is separated). ``kendall_tau`` is Kendall's tau-b between the two privacy orderings over all
    items (NaN when either is constant); ``kendall_p`` its two-sided p-value."""

    n_items: int
    n_pairs: int
    n_separated: int
    concordant: float
    concordant_fraction: float
    kendall_tau: float
    kendall_p: float

    def as_dict(self) -> dict:
        return dict(vars(self))


def _vector(name, value, length=None) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-d (one value per item), got shape {array.shape}")
    if length is not None and array.size != length:
        raise ValueError(f"{name} has {array.size} values but score has {length}; give one per item")
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN; drop the items without a value first")
    return array


def ranking_agreement(score, reference, reference_low=None, reference_high=None, *,
                      score_higher_is_private: bool = True,
                      reference_higher_is_private: bool = True) -> RankingAgreement:
    """Agreement between the privacy ordering given by ``score`` and by ``reference`` over the same items.

    ``score`` (e.g. ``r_soft``: higher = more private) and ``reference`` (e.g. the Monte-Carlo ``Delta_n`` or
    the best attack's AUC: higher = *less* private, so ``reference_higher_is_private=False``), one value per
    item. A pair counts when the reference intervals ``[reference_low, reference_high]`` do not overlap
    (without intervals: when the reference values differ); it is concordant when the score orders it the same
    way as the reference, half when the score ties. Infinite scores are allowed (a release that never
    changes has ``r = inf``)."""
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 1:
        raise ValueError(f"score must be 1-d (one value per item), got shape {score.shape}")
    if np.isnan(score).any():
        raise ValueError("score contains NaN; drop the items without a value first")
    m = score.size
    if m < 2:
        raise ValueError(f"need at least 2 items to compare orderings, got {m}")
    reference = _vector("reference", reference, m)
    if np.isinf(reference).any():
        raise ValueError("reference must be finite")
    if (reference_low is None) != (reference_high is None):
        raise ValueError("give both reference_low and reference_high, or neither")
    if reference_low is None:
        low = high = reference
    else:
        low, high = _vector("reference_low", reference_low, m), _vector("reference_high", reference_high, m)
        if (low > reference + 1e-12).any() or (high < reference - 1e-12).any():
            raise ValueError("every reference value must lie inside its interval [reference_low, "
                             "reference_high]")
    s = score if score_higher_is_private else -score
    r = reference if reference_higher_is_private else -reference
    lo, hi = (low, high) if reference_higher_is_private else (-high, -low)
    i, j = np.triu_indices(m, k=1)
    a_above = lo[i] > hi[j]                  # item i is more private than j beyond the intervals
    b_above = lo[j] > hi[i]
    separated = a_above | b_above
    with np.errstate(invalid="ignore"):
        diff = s[i] - s[j]                   # inf - inf -> NaN: a tie
    sign_score = np.where(np.isnan(diff), 0.0, np.sign(diff))
    sign_reference = np.where(a_above, 1.0, -1.0)
    agree = np.where(sign_score == 0, 0.5, (sign_score == sign_reference).astype(float))
    n_sep = int(separated.sum())
    concordant = float(agree[separated].sum())
    from scipy.stats import kendalltau

    finite = np.where(np.isinf(s), np.sign(s) * (np.nanmax(np.abs(s[np.isfinite(s)]), initial=1.0) * 2 + 1), s)
    if np.ptp(finite) == 0 or np.ptp(r) == 0:
        tau, p = math.nan, math.nan
    else:
        result = kendalltau(finite, r)
        tau, p = float(result.statistic), float(result.pvalue)
    return RankingAgreement(n_items=m, n_pairs=int(i.size), n_separated=n_sep, concordant=concordant,
                            concordant_fraction=concordant / n_sep if n_sep else math.nan,
                            kendall_tau=tau, kendall_p=p)


def _pivot(table: pd.DataFrame, method: str, measurement: str, by: list[str]) -> pd.DataFrame:
    part = table[(table["method"] == method) & (table["measurement"] == measurement)]
    if part.empty:
        raise ValueError(f"the table has no rows with method {method!r} and measurement {measurement!r}")
    return part.set_index(by + ["quantizer"])[["value", "value_low", "value_high"]]


def agreement_table(table: pd.DataFrame, score: tuple[str, str] = ("indicator", "ranking_score"),
                    reference: tuple[str, str] = ("best_attack", "auc"), *,
                    by: Sequence[str] = ("model", "sample_size", "seed"), reference_by: Sequence[str] | None = None,
                    score_higher_is_private: bool = True, reference_higher_is_private: bool = False,
                    quantizers: Sequence[str] | None = None, use_intervals: bool = True) -> pd.DataFrame:
    """``ranking_agreement`` of ``score`` against ``reference`` (each a (method, measurement) of an audit
    table) within each group of ``by``; one row per group with the fields of ``RankingAgreement``.

    ``reference_by`` (a subset of ``by``, default ``by``) are the keys on which reference rows are matched: a
    Monte-Carlo ground truth computed once per sample size serves the audits of every seed with
    ``reference_by=("model", "sample_size")``. ``quantizers`` restricts the items; quantizers missing either
    value in a group are dropped."""
    by = list(by)
    joined = _joined(table, score, reference, by, reference_by, quantizers)
    rows = []
    for key, group in joined.groupby(by, sort=True):
        if len(group) < 2:
            continue
        intervals = use_intervals and group[["value_low", "value_high"]].notna().all().all()
        result = ranking_agreement(group["score"].to_numpy(), group["value"].to_numpy(),
                                   group["value_low"].to_numpy() if intervals else None,
                                   group["value_high"].to_numpy() if intervals else None,
                                   score_higher_is_private=score_higher_is_private,
                                   reference_higher_is_private=reference_higher_is_private)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "score": f"{score[0]}.{score[1]}",
                     "reference": f"{reference[0]}.{reference[1]}", **result.as_dict()})
    return pd.DataFrame(rows)


def _joined(table, score, reference, by, reference_by, quantizers):
    """Score (column ``score``) beside the reference (``value``, ``value_low``, ``value_high``) per item."""
    reference_by = by if reference_by is None else list(reference_by)
    if not set(reference_by) <= set(by):
        raise ValueError(f"reference_by {reference_by} must be a subset of by {by}")
    missing = [c for c in by + ["quantizer", "method", "measurement", "value"] if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing}")
    left = _pivot(table, *score, by)[["value"]].rename(columns={"value": "score"}).reset_index()
    right = _pivot(table, *reference, reference_by).reset_index()
    joined = left.merge(right, on=reference_by + ["quantizer"], how="inner")
    if quantizers is not None:
        joined = joined[joined["quantizer"].isin(list(quantizers))]
    return joined.dropna(subset=["score", "value"])


def discordant_pairs(table: pd.DataFrame, score: tuple[str, str], reference: tuple[str, str], *,
                     by: Sequence[str] = ("model", "sample_size", "seed"), reference_by: Sequence[str] | None = None,
                     score_higher_is_private: bool = True, reference_higher_is_private: bool = False,
                     quantizers: Sequence[str] | None = None) -> pd.DataFrame:
    """The pairs that ``agreement_table`` counts as discordant: the reference separates them beyond the
    intervals, and the score orders them the other way (ties are not listed). One row per pair: the group,
    the quantizer that the reference finds more private and its values, then the other one."""
    by = list(by)
    joined = _joined(table, score, reference, by, reference_by, quantizers)
    rows = []
    for key, group in joined.groupby(by, sort=True):
        g = group.reset_index(drop=True)
        s = g["score"].to_numpy() * (1 if score_higher_is_private else -1)
        sign = 1 if reference_higher_is_private else -1
        lo = np.where(sign > 0, g["value_low"], -g["value_high"])
        hi = np.where(sign > 0, g["value_high"], -g["value_low"])
        for i, j in zip(*np.nonzero((lo[:, None] > hi[None, :]) & (s[:, None] < s[None, :]))):
            rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                         "more private (reference)": g.quantizer[i], "its reference": g.value[i],
                         "its score": g.score[i], "less private (reference)": g.quantizer[j],
                         "reference ": g.value[j], "score ": g.score[j]})
    columns = by + ["more private (reference)", "its reference", "its score", "less private (reference)",
                    "reference ", "score "]
    return pd.DataFrame(rows, columns=columns)


# Scores compared in the study: (method, measurement, higher is more private). The last two are naive
# baselines that an indicator should beat: fewer bits, or more zeros, taken as "more private".
STUDY_SCORES = (
    ("indicator", "ranking_score", True),
    ("indicator", "ranking_score_averaged", True),
    ("indicator", "r_min_with_scale", True),
    ("indicator", "r_soft_with_scale", True),      # the score before mislib 0.2 (nearer threshold only), for comparison
    ("quantizer", "bits_per_weight", False),
    ("quantizer", "sparsity", True),
)


def study_agreement(table: pd.DataFrame, scores=STUDY_SCORES, *, deterministic_only: bool = True) -> pd.DataFrame:
    """Agreement of each score with each available reference, for every data set, model, sample size and seed
    of a study table (``run_synthetic_ranking``): the best attack's AUC everywhere, and the Monte-Carlo
    ``delta_best_lower_bound`` where the table has it (matched on data set, model and sample size).

    ``deterministic_only``: rank only deterministic releases. A randomised quantizer has no cells, so its
    margins, and every indicator built on them, are 0 by convention (THEORY.md §3: stochastic rounding's
    ``Delta_n`` decays like 1/n, which no margin shows); ranking it by them would test a convention."""
    frames = []
    for dataset, part in table.groupby("dataset", sort=False):
        kept = None
        if deterministic_only:
            flags = part[(part.method == "quantizer") & (part.measurement == "deterministic")]
            kept = sorted(set(flags.loc[flags.value == 1, "quantizer"]))
        references = [(("best_attack", "auc"), ["model", "sample_size", "seed"])]
        if (part.method == "monte_carlo").any():
            references.append((("monte_carlo", "delta_best_lower_bound"), ["model", "sample_size"]))
        for method, measurement, higher in scores:
            for reference, reference_by in references:
                result = agreement_table(part, (method, measurement), reference,
                                         by=("model", "sample_size", "seed"), reference_by=reference_by,
                                         score_higher_is_private=higher, reference_higher_is_private=False,
                                         quantizers=kept)
                if len(result):
                    frames.append(result.assign(dataset=dataset))
    out = pd.concat(frames, ignore_index=True)
    return out[["dataset", *[c for c in out.columns if c != "dataset"]]]


def pooled_agreement(agreements: pd.DataFrame, by: Sequence[str] | None = None):
    """Pool an ``agreement_table``: total concordant over total separated pairs, and the mean Kendall tau
    (NaN taus, from constant scores, count as 0: an indicator that ties everything orders nothing). Without
    ``by`` a dict for the whole table; with ``by`` a DataFrame with one row per group."""
    def pool(frame):
        separated = int(frame["n_separated"].sum())
        concordant = float(frame["concordant"].sum())
        return {"n_groups": int(len(frame)), "n_separated": separated, "concordant": concordant,
                "concordant_fraction": concordant / separated if separated else math.nan,
                "mean_kendall_tau": float(frame["kendall_tau"].fillna(0.0).mean())}

    if by is None:
        return pool(agreements)
    by = list(by)
    rows = [{**dict(zip(by, key if isinstance(key, tuple) else (key,))), **pool(group)}
            for key, group in agreements.groupby(by, sort=True)]
    return pd.DataFrame(rows)




def indicator_agreement(table: pd.DataFrame, indicators: Sequence[str] = ("ranking_score", "r_min"), *,
                        reference: tuple[str, str], by: Sequence[str], method: str = "indicator") -> pd.DataFrame:
    """How each indicator orders the quantizers against ``reference`` (an attack's ``(method, measurement)``,
    higher = less private), pooled over the groups of ``by``: ``agreement_table`` within each group, then
    ``pooled_agreement``. One row per indicator (``method``'s measurement of that name) with the number of pairs
    whose reference intervals are separated, the fraction the indicator orders the same way, and the mean
    Kendall tau.

    Examples
    --------
    The molecular study (notebook 06) compares ``ranking_score`` and ``r_min`` with LiRA within each task, embedder
    and seed: ``indicator_agreement(table, reference=("lira_online_fixed_variance", "auc"),
    by=("task", "embedder", "seed"))``.
    """
    rows = []
    for name in indicators:
        agreement = agreement_table(table, score=(method, name), reference=tuple(reference), by=tuple(by))
        rows.append({"indicator": name, **pooled_agreement(agreement)})
    return pd.DataFrame(rows)
