"""Bits or sparsity? The factorial study of issue 14: the width of the value grid (nominal bits) crossed with the
fraction of exact zeros (``quantizer_specs.FACTORIAL_SPECS``), audited on the synthetic data of notebook 05 and
read from any audit table that holds the factorial releases (the molecular study's too).

Every outcome is a change against the unquantized (identity) release of the same configuration: the best
attack's AUC (``best_attack``/``auc``; lower = more private), the indicator's ranking score
(``indicator``/``ranking_score``; higher = more private, 0 for identity) and the stored bits per weight
(``quantizer``/``bits_per_weight``, the quantizer's own count, sparse index included). The design is read from
``factorial_design``, never from the labels.

Which factor matters more is answered three ways, each per configuration and then summarised over them: two
contrasts from the same starting point (8 bits, no zeros: to 3 bits, or to 90% zeros), the share of the
variance over the completely crossed block (the widths that have every pruning fraction) explained by each
factor in a two-way decomposition (also on ranks), and the simple effects (the bits contrast at each sparsity,
the sparsity contrast at each width), which say where an effect reverses.

The synthetic grid's rows come from ``synthetic_ranking.synthetic_configuration`` itself, so its cache key
depends on that computation only, not on this module's analysis.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mislib.evaluation.quantizer_specs import FACTORIAL_SPECS, factorial_design

REFERENCE = "identity"
TABLE_NAME = "synthetic_bits_sparsity"
# The columns of a tidy audit table that are not part of a configuration's identity.
NON_CONFIGURATION = ("quantizer", "method", "measurement", "value", "value_low", "value_high")
# outcome name -> (method, measurement) in the audit table
OUTCOMES = {"attack_auc": ("best_attack", "auc"), "ranking_score": ("indicator", "ranking_score"),
            "stored_bits": ("quantizer", "bits_per_weight"), "sparsity": ("quantizer", "sparsity")}
# outcome -> (what it is called in the sentences, +1 if higher means more private, else -1)
READING = {"attack_auc": ("the best attack's AUC", -1), "ranking_score": ("the indicator's ranking score", +1)}
# The contrasts: both start from FROM_BITS bits without pruning, and go to TO_BITS bits or to TO_SPARSITY zeros.
FROM_BITS, TO_BITS, TO_SPARSITY = 8.0, 3.0, 0.9


# ---------------------------------------------------------------------------------------- the synthetic study

def study_specs(specs=FACTORIAL_SPECS) -> tuple:
    """The releases a factorial audit needs: the identity (the reference of every cell), then ``specs``."""
    return ((REFERENCE, "identity", {}), *specs)


def synthetic_settings(preset: str, seed: int = 0) -> dict:
    """The synthetic factorial grid at a preset: ``{"configs": [...], "shared": {...}}`` for ``cached_grid``.

    The law and models of notebook 05 (a 4-mode Gaussian mixture, logistic regression with ridge 1e-3 and a
    2-unit tanh MLP with ridge 1e-2), every release of ``study_specs()``, one configuration per (model, sample
    size, seed): each seed draws an independent pool, test set and shadow split. ``smoke``: dimension 32,
    logistic, n = 64, 2 seeds, 8 shadows (seconds). ``paper``: dimension 128, both models, n = 64 and 256,
    6 seeds, 32 shadows (a few minutes on one core). No bootstrap intervals: the spread is over seeds.
    """
    from mislib.infra.presets import preset_config

    sizes = preset_config(
        preset,
        smoke=dict(dim=32, models=["logistic"], sample_sizes=[64], seeds=[seed, seed + 1], n_shadow=8,
                   n_test=500),
        paper=dict(dim=128, models=["logistic", "mlp"], sample_sizes=[64, 256], seeds=list(range(seed, seed + 6)),
                   n_shadow=32, n_test=2000),
    )
    shared = dict(dataset=f"gaussian mixture, dimension {sizes['dim']}", dim=sizes["dim"], k_modes=4,
                  separation=3.0, ridge={"logistic": 1e-3, "mlp": 1e-2}, hidden=2, n_iter=300,
                  n_test=sizes["n_test"], n_shadow=sizes["n_shadow"], n_bootstrap=0, indicator_bootstrap=0,
                  quantizers=[[label, name, dict(params)] for label, name, params in study_specs()])
    configs = [{"model": model, "sample_size": n, "seed": s} for model in sizes["models"]
               for n in sizes["sample_sizes"] for s in sizes["seeds"]]
    return {"configs": configs, "shared": shared}


def run_synthetic(preset: str, seed: int = 0, refresh: bool = False) -> pd.DataFrame:
    """The synthetic factorial table (``TABLE_NAME``), computed once per configuration and cached
    (``mislib.infra.tables.cached_grid``, resumable); columns ``dataset`` then the audit's ``COLUMNS``."""
    from mislib.infra.tables import cached_grid
    from mislib.studies.synthetic_ranking import synthetic_configuration

    settings = synthetic_settings(preset, seed)
    return cached_grid(TABLE_NAME, settings["configs"], synthetic_configuration, shared=settings["shared"],
                       refresh=refresh)


# ------------------------------------------------------------------------------------------------ analysis

def configuration_columns(table: pd.DataFrame, by=None) -> list[str]:
    """The columns that identify one audited configuration: ``by`` if given (checked), else every column of
    ``table`` outside ``NON_CONFIGURATION`` (for the synthetic table: dataset, model, sample_size, seed)."""
    if by is None:
        return [c for c in table.columns if c not in NON_CONFIGURATION]
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in table.columns]
    if missing or not by:
        raise ValueError(f"by: columns {missing or by} are not in the table (it has {list(table.columns)})")
    return by


def factorial_changes(table: pd.DataFrame, by=None, specs=FACTORIAL_SPECS) -> pd.DataFrame:
    """One row per configuration and factorial release (the identity included, as the cell of 32 bits without
    zeros), with its place in the design and each outcome beside its change against the identity release of
    the same configuration.

    Parameters
    ----------
    table : pandas.DataFrame
        A tidy audit table (``mislib.evaluation.audit.COLUMNS`` plus any identifying columns) holding the
        identity and every release of ``specs``, with the measurements of ``OUTCOMES``.
    by : list of str, optional
        The configuration columns (default: ``configuration_columns(table)``).
    specs : sequence of (label, name, params)
        The factorial releases (default ``FACTORIAL_SPECS``).

    Returns
    -------
    pandas.DataFrame
        Columns ``by``, ``quantizer``, ``nominal_bits``, ``target_sparsity``, ``family``, then for each outcome
        of ``OUTCOMES`` its value and (except achieved ``sparsity``) ``<outcome>_change``.

    Raises
    ------
    ValueError
        If a release of the design is absent from the table, a configuration lacks its identity release, or
        ``by`` does not identify a configuration (a release measured twice within one).
    """
    by = configuration_columns(table, by)
    design = factorial_design(study_specs(specs))
    missing = sorted(set(design["label"]) - set(table["quantizer"]))
    if missing:
        raise ValueError(f"table: the factorial releases {missing} are absent (run the audit with study_specs())")
    frames = []
    for outcome, (method, measurement) in OUTCOMES.items():
        part = table[(table["method"] == method) & (table["measurement"] == measurement)
                     & table["quantizer"].isin(design["label"])]
        if part.duplicated([*by, "quantizer"]).any():
            raise ValueError(f"by: {by} does not identify a configuration (several {method}/{measurement} rows "
                             "for one release); pass every column that does")
        frames.append(part.set_index([*by, "quantizer"])["value"].rename(outcome))
    wide = pd.concat(frames, axis=1).reset_index()
    reference = wide[wide["quantizer"] == REFERENCE]
    lacking = len(wide[by].drop_duplicates()) - len(reference)
    if lacking:
        raise ValueError(f"table: {lacking} configuration(s) (by {by}) have no {REFERENCE!r} release to compare with")
    changed = ("attack_auc", "ranking_score", "stored_bits")
    wide = wide.merge(reference[[*by, *changed]], on=by, how="left", suffixes=("", "_reference"))
    for outcome in changed:
        wide[f"{outcome}_change"] = wide[outcome] - wide.pop(f"{outcome}_reference")
    wide = wide.merge(design.rename(columns={"label": "quantizer"}), on="quantizer", how="left")
    columns = [*by, "quantizer", "nominal_bits", "target_sparsity", "family", "sparsity", "attack_auc",
               "attack_auc_change", "ranking_score", "ranking_score_change", "stored_bits", "stored_bits_change"]
    return wide[columns]


def _cell_values(changes: pd.DataFrame, by: list[str], outcome: str) -> pd.DataFrame:
    """Per configuration and (nominal bits, target sparsity) cell, the mean of ``outcome`` over the cell's
    releases (the two 16-bit casts share one cell)."""
    return changes.groupby([*by, "nominal_bits", "target_sparsity"], dropna=False)[outcome].mean().reset_index()


def cell_means(changes: pd.DataFrame, by=None) -> pd.DataFrame:
    """Per (nominal bits, target sparsity) cell, over configurations: the mean and standard deviation of the
    attack-AUC and ranking-score changes, the mean stored bits per weight, its change, and the mean achieved
    sparsity; ``n_configurations``."""
    by = _by_of_changes(changes, by)
    outcomes = ["attack_auc_change", "ranking_score_change", "stored_bits", "stored_bits_change", "sparsity"]
    per_configuration = changes.groupby([*by, "nominal_bits", "target_sparsity"], dropna=False)[outcomes].mean()
    grouped = per_configuration.groupby(["nominal_bits", "target_sparsity"])
    out = grouped.mean()
    for outcome in ("attack_auc_change", "ranking_score_change"):
        out[f"{outcome}_sd"] = grouped[outcome].std()
    out["n_configurations"] = grouped.size()
    return out.reset_index()


def crossed_block(changes: pd.DataFrame) -> tuple[list[float], list[float]]:
    """The completely crossed part of the design: the nominal widths that have every target sparsity of the
    design, and those sparsities (for ``FACTORIAL_SPECS``: 3, 4, 8, 32 bits by 0, 0.5, 0.75, 0.9, 0.95)."""
    cells = changes[["nominal_bits", "target_sparsity"]].drop_duplicates()
    levels = sorted(cells["target_sparsity"].unique())
    widths = sorted(b for b, part in cells.groupby("nominal_bits") if sorted(part["target_sparsity"]) == levels)
    if len(widths) < 2 or len(levels) < 2:
        raise ValueError("changes: the design has no crossed block of at least 2 widths by 2 sparsities")
    return widths, levels


def variance_shares(changes: pd.DataFrame, outcome: str, by=None, ranks: bool = False) -> pd.DataFrame:
    """Per configuration, the two-way decomposition of ``outcome`` over the crossed block (one value per cell):
    the shares of its sum of squares explained by the width (``share_bits``), by the sparsity
    (``share_sparsity``) and left to their interaction (``share_interaction``); they sum to 1 (NaN when the
    outcome does not vary). ``ranks=True``: the same on the ranks of the values within the configuration."""
    by = _by_of_changes(changes, by)
    widths, levels = crossed_block(changes)
    cells = _cell_values(changes, by, outcome)
    cells = cells[cells["nominal_bits"].isin(widths) & cells["target_sparsity"].isin(levels)]
    rows = []
    for key, part in cells.groupby(by, dropna=False):
        grid = part.pivot(index="nominal_bits", columns="target_sparsity", values=outcome)
        values = grid.to_numpy(dtype=float)
        if ranks:
            values = pd.Series(values.ravel()).rank().to_numpy().reshape(values.shape)
        grand = values.mean()
        total = ((values - grand) ** 2).sum()
        bits = values.shape[1] * ((values.mean(axis=1) - grand) ** 2).sum()
        sparsity = values.shape[0] * ((values.mean(axis=0) - grand) ** 2).sum()
        shares = (bits / total, sparsity / total) if total > 0 else (math.nan, math.nan)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "share_bits": shares[0],
                     "share_sparsity": shares[1], "share_interaction": 1 - sum(shares)})
    return pd.DataFrame(rows)


def _by_of_changes(changes: pd.DataFrame, by) -> list[str]:
    design_columns = {"nominal_bits", "target_sparsity", "family", *OUTCOMES, "attack_auc_change",
                      "ranking_score_change", "stored_bits_change"}
    return configuration_columns(changes.drop(columns=[c for c in design_columns if c in changes]), by)


def simple_effects(changes: pd.DataFrame, outcome: str, by=None) -> pd.DataFrame:
    """Per configuration, the contrasts of the crossed block: ``bits`` at each sparsity s (cell(TO_BITS, s) -
    cell(FROM_BITS, s)) and ``sparsity`` at each width b (cell(b, TO_SPARSITY) - cell(b, 0)). Columns ``by``,
    ``factor`` ("bits" or "sparsity"), ``at`` (the level held fixed) and ``effect``."""
    by = _by_of_changes(changes, by)
    widths, levels = crossed_block(changes)
    for name, value, within in (("FROM_BITS", FROM_BITS, widths), ("TO_BITS", TO_BITS, widths),
                                ("TO_SPARSITY", TO_SPARSITY, levels), ("sparsity 0", 0.0, levels)):
        if value not in within:
            raise ValueError(f"changes: the crossed block {widths} x {levels} lacks {name} = {value}")
    cells = _cell_values(changes, by, outcome).set_index([*by, "nominal_bits", "target_sparsity"])[outcome]
    frames = []
    for s in levels:
        effect = cells.xs((TO_BITS, s), level=("nominal_bits", "target_sparsity")) - cells.xs(
            (FROM_BITS, s), level=("nominal_bits", "target_sparsity"))
        frames.append(effect.rename("effect").reset_index().assign(factor="bits", at=s))
    for b in widths:
        effect = cells.xs((b, TO_SPARSITY), level=("nominal_bits", "target_sparsity")) - cells.xs(
            (b, 0.0), level=("nominal_bits", "target_sparsity"))
        frames.append(effect.rename("effect").reset_index().assign(factor="sparsity", at=b))
    return pd.concat(frames, ignore_index=True)[[*by, "factor", "at", "effect"]]


def _describe(row: pd.Series, by: list[str]) -> str:
    return ", ".join(f"{c} {row[c]}" for c in by)


def _outcome_conclusions(changes: pd.DataFrame, outcome: str, by: list[str]) -> dict:
    """The numbers of ``conclusions`` for one outcome (keys without the outcome's prefix)."""
    change = f"{outcome}_change"
    direction = READING[outcome][1]
    effects = simple_effects(changes, change, by)
    bits_at = effects[effects["factor"] == "bits"].groupby("at")["effect"]
    sparsity_at = effects[effects["factor"] == "sparsity"].groupby("at")["effect"]
    bits = effects[(effects["factor"] == "bits") & (effects["at"] == 0.0)].set_index(by)["effect"]
    sparsity = effects[(effects["factor"] == "sparsity") & (effects["at"] == FROM_BITS)].set_index(by)["effect"]
    shares = variance_shares(changes, change, by)
    rank_shares = variance_shares(changes, change, by, ranks=True)
    sparsity_leads = shares["share_sparsity"] > shares["share_bits"]
    leader = "sparsity" if sparsity_leads.mean() >= 0.5 else "bits"
    reversed_rows = shares[sparsity_leads != (leader == "sparsity")]
    found = {
        "bits_effect": float(bits.mean()), "bits_effect_sd": float(bits.std()),
        "sparsity_effect": float(sparsity.mean()), "sparsity_effect_sd": float(sparsity.std()),
        # the fraction of configurations where each contrast makes the release more private
        "bits_effect_more_private": float((direction * bits > 0).mean()),
        "sparsity_effect_more_private": float((direction * sparsity > 0).mean()),
        "effect_ratio": float(abs(sparsity.mean()) / abs(bits.mean())) if bits.mean() != 0 else math.inf,
        "share_bits": float(shares["share_bits"].mean()), "share_sparsity": float(shares["share_sparsity"].mean()),
        "share_interaction": float(shares["share_interaction"].mean()),
        "share_bits_min": float(shares["share_bits"].min()), "share_bits_max": float(shares["share_bits"].max()),
        "share_sparsity_min": float(shares["share_sparsity"].min()),
        "share_sparsity_max": float(shares["share_sparsity"].max()),
        "rank_share_bits": float(rank_shares["share_bits"].mean()),
        "rank_share_sparsity": float(rank_shares["share_sparsity"].mean()),
        "leading_factor": leader,
        "leading_fraction": float((sparsity_leads == (leader == "sparsity")).mean()),
        "reversed_configurations": [_describe(row, by) for _, row in reversed_rows.iterrows()],
        "bits_effect_by_sparsity": {float(k): float(v) for k, v in bits_at.mean().items()},
        "sparsity_effect_by_bits": {float(k): float(v) for k, v in sparsity_at.mean().items()},
        "bits_effect_by_sparsity_sd": {float(k): float(v) for k, v in bits_at.std().items()},
        "sparsity_effect_by_bits_sd": {float(k): float(v) for k, v in sparsity_at.std().items()},
    }
    # where a simple effect points the other way from the main contrast (mean over configurations)
    found["bits_reverses_at"] = [s for s, v in found["bits_effect_by_sparsity"].items()
                                 if np.sign(v) != np.sign(found["bits_effect"]) and v != 0]
    found["sparsity_reverses_at"] = [b for b, v in found["sparsity_effect_by_bits"].items()
                                     if np.sign(v) != np.sign(found["sparsity_effect"]) and v != 0]
    return found


def conclusions(table: pd.DataFrame, by=None, specs=FACTORIAL_SPECS) -> dict:
    """What the factorial grid of ``table`` says about bits against sparsity.

    Parameters
    ----------
    table : pandas.DataFrame
        An audit table holding the identity and every release of ``specs`` (see ``factorial_changes``).
    by : list of str, optional
        Its configuration columns (default: every column outside ``NON_CONFIGURATION``).
    specs : sequence of (label, name, params)
        The factorial releases.

    Returns
    -------
    dict
        ``n_configurations``; for the attack (prefix ``attack_``, the best attack's AUC) and the indicator
        (prefix ``indicator_``, the ranking score), from the changes against identity: ``bits_effect``
        (FROM_BITS to TO_BITS bits, no zeros) and ``sparsity_effect`` (no zeros to TO_SPARSITY, at FROM_BITS
        bits) with their standard deviations over configurations and the fraction of configurations where each
        makes the release more private, ``effect_ratio`` (|sparsity| / |bits|), the mean variance shares
        ``share_bits``, ``share_sparsity``, ``share_interaction`` (with min and max over configurations) and on
        ranks (``rank_share_*``), ``leading_factor`` with the fraction of configurations where it has the larger
        share, ``reversed_configurations`` (where the other factor has), the simple effects
        ``bits_effect_by_sparsity`` and ``sparsity_effect_by_bits`` and the levels where they point the other
        way (``bits_reverses_at``, ``sparsity_reverses_at``); ``stored_bits`` (mean stored bits per weight of the
        cells FROM_BITS/0, TO_BITS/0 and FROM_BITS/TO_SPARSITY, keyed ``"<bits>/<sparsity>"``); and
        ``zeros_on_sign`` (``zeros_on_sign``: sign against ternary at each sparsity).
    """
    changes = factorial_changes(table, by, specs)
    by = _by_of_changes(changes, by)
    found = {"n_configurations": int(len(changes[by].drop_duplicates())), "configuration_columns": by}
    for prefix, outcome in (("attack", "attack_auc"), ("indicator", "ranking_score")):
        found.update({f"{prefix}_{k}": v for k, v in _outcome_conclusions(changes, outcome, by).items()})
    means = cell_means(changes, by).set_index(["nominal_bits", "target_sparsity"])
    found["stored_bits"] = {f"{b:g}/{s:g}": float(means.loc[(b, s), "stored_bits"])
                            for b, s in ((FROM_BITS, 0.0), (TO_BITS, 0.0), (FROM_BITS, TO_SPARSITY))}
    found["achieved_sparsity"] = {f"{b:g}/{s:g}": float(means.loc[(b, s), "sparsity"])
                                  for b, s in ((FROM_BITS, 0.0), (TO_BITS, 0.0), (FROM_BITS, TO_SPARSITY))}
    found["zeros_on_sign"] = zeros_on_sign(means)
    return found


def zeros_on_sign(means: pd.DataFrame) -> dict:
    """Below the crossed block: the sign release (1 bit, no zeros) against ternary at each sparsity (a zero
    level added, log2 3 bits), from ``cell_means`` (indexed or not by bits and sparsity). Returns
    ``{"sign_attack_auc_change", "sign_ranking_score_change", "ternary": {sparsity: (attack change, ranking
    change)}}``, or an empty dict when the table has no sign or no ternary cell."""
    means = means.reset_index() if "nominal_bits" not in means.columns else means
    sign = means[(means["nominal_bits"] == 1.0) & (means["target_sparsity"] == 0.0)]
    ternary = means[np.isclose(means["nominal_bits"], math.log2(3))]
    if sign.empty or ternary.empty:
        return {}
    return {"sign_attack_auc_change": float(sign["attack_auc_change"].iloc[0]),
            "sign_ranking_score_change": float(sign["ranking_score_change"].iloc[0]),
            "ternary": {float(row.target_sparsity): (float(row.attack_auc_change), float(row.ranking_score_change))
                        for row in ternary.itertuples()}}


def conclusions_text(found: dict) -> str:
    """The conclusions as Markdown sentences; every number comes from ``found`` (``conclusions``)."""
    lines = [f"- Over {found['n_configurations']} configurations (by {', '.join(found['configuration_columns'])}), "
             f"each release compared with the unquantized one of the same configuration."]
    for prefix in ("attack", "indicator"):
        f = {k[len(prefix) + 1:]: v for k, v in found.items() if k.startswith(prefix + "_")}
        name = READING["attack_auc" if prefix == "attack" else "ranking_score"][0]
        lines.append(
            f"- **{name[0].upper() + name[1:]}**: from {FROM_BITS:g} bits without zeros, going to {TO_BITS:g} bits (whose "
            f"grid already zeroes {100 * found['achieved_sparsity'][f'{TO_BITS:g}/0']:.0f}% of the weights) changes it "
            f"by {f['bits_effect']:+.3f} (sd {f['bits_effect_sd']:.3f} over configurations; more private in "
            f"{100 * f['bits_effect_more_private']:.0f}% of them), going to {100 * TO_SPARSITY:.0f}% zeros by "
            f"{f['sparsity_effect']:+.3f} (sd {f['sparsity_effect_sd']:.3f}; more private in "
            f"{100 * f['sparsity_effect_more_private']:.0f}%): the sparsity contrast is {f['effect_ratio']:.1f} "
            f"times the bits contrast.")
        lines.append(
            f"  Over the crossed block, the width explains {100 * f['share_bits']:.0f}% of the variance "
            f"({100 * f['share_bits_min']:.0f}-{100 * f['share_bits_max']:.0f}% over configurations), the sparsity "
            f"{100 * f['share_sparsity']:.0f}% ({100 * f['share_sparsity_min']:.0f}-"
            f"{100 * f['share_sparsity_max']:.0f}%), their interaction {100 * f['share_interaction']:.0f}%; on "
            f"ranks {100 * f['rank_share_bits']:.0f}% against {100 * f['rank_share_sparsity']:.0f}%. "
            f"**{f['leading_factor'].capitalize()} matters more** in {100 * f['leading_fraction']:.0f}% of the "
            f"configurations" + (f"; it reverses in {len(f['reversed_configurations'])}: "
                                 f"{'; '.join(f['reversed_configurations'])}." if f['reversed_configurations']
                                 else "; it reverses in none."))
        where = []
        if f["bits_reverses_at"]:
            where.append("the bits contrast points the other way at " + ", ".join(
                f"{100 * s:.0f}% zeros ({f['bits_effect_by_sparsity'][s]:+.3f}, sd {f['bits_effect_by_sparsity_sd'][s]:.3f})"
                for s in f["bits_reverses_at"]))
        if f["sparsity_reverses_at"]:
            where.append("the sparsity contrast points the other way at " + ", ".join(
                f"{b:g} bits ({f['sparsity_effect_by_bits'][b]:+.3f}, sd {f['sparsity_effect_by_bits_sd'][b]:.3f})"
                for b in f["sparsity_reverses_at"]))
        lines.append("  " + ("; ".join(where).capitalize() + "." if where else
                             "Neither simple effect changes direction across the other factor's levels."))
    sign = found.get("zeros_on_sign")
    if sign:
        ternary = sign["ternary"]
        more = [s for s, (auc, _) in ternary.items() if auc > sign["sign_attack_auc_change"]]
        lines.append(
            f"- Below 2 bits: the sign release (1 bit, no zeros) changes the best attack's AUC by "
            f"{sign['sign_attack_auc_change']:+.3f}; ternary (log2 3 bits) by " + ", ".join(
                f"{auc:+.3f} at {100 * s:.0f}% zeros" for s, (auc, _) in ternary.items())
            + (f". Here it reverses: the narrower grid without zeros (sign) is more private than ternary with "
               f"{', '.join(f'{100 * s:.0f}%' for s in more)} zeros." if more else
               ". Ternary at every sparsity is at least as private as sign."))
    stored = found["stored_bits"]
    lines.append(f"- Stored bits per weight (sparse index included): {stored[f'{FROM_BITS:g}/0']:.2f} at "
                 f"{FROM_BITS:g} bits, {stored[f'{TO_BITS:g}/0']:.2f} at {TO_BITS:g} bits, "
                 f"{stored[f'{FROM_BITS:g}/{TO_SPARSITY:g}']:.2f} at {FROM_BITS:g} bits with "
                 f"{100 * TO_SPARSITY:.0f}% zeros.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- figure

def _bits_label(bits: float) -> str:
    if abs(bits - math.log2(3)) < 1e-9:
        return "log2 3 (ternary)"
    return {1.0: "1 (sign)", 16.0: "16 (casts)", 32.0: "full (float)"}.get(bits, f"{bits:g}")


def plot_bits_sparsity(table: pd.DataFrame, by=None, specs=FACTORIAL_SPECS, title: str | None = None):
    """Two heat maps, nominal bits (rows) by target sparsity (columns): the mean change of the best attack's
    AUC against identity (left) and of the indicator's ranking score (right), each cell annotated with that
    mean and the mean stored bits per weight; blue = more private in both. Empty cells are not in the design.
    Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    means = cell_means(factorial_changes(table, by, specs), by)
    widths = sorted(means["nominal_bits"].unique())
    levels = sorted(means["target_sparsity"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.55 * len(widths) + 2.2))
    panels = (("attack_auc_change", "best attack AUC - identity's", "RdBu_r"),
              ("ranking_score_change", "ranking score - identity's", "RdBu"))
    for ax, (column, label, cmap) in zip(axes, panels):
        grid = means.pivot(index="nominal_bits", columns="target_sparsity", values=column).reindex(
            index=widths, columns=levels)
        stored = means.pivot(index="nominal_bits", columns="target_sparsity", values="stored_bits").reindex(
            index=widths, columns=levels)
        values = grid.to_numpy(dtype=float)
        bound = float(np.nanmax(np.abs(values))) or 1.0
        image = ax.imshow(values, cmap=cmap, norm=TwoSlopeNorm(0.0, -bound, bound), aspect="auto")
        for i in range(len(widths)):
            for j in range(len(levels)):
                if not math.isnan(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:+.3f}\n{stored.iat[i, j]:.2g} b", ha="center", va="center",
                            fontsize=7.5, color="white" if abs(values[i, j]) > 0.6 * bound else "black")
        ax.set_xticks(range(len(levels)), [f"{100 * s:.0f}%" for s in levels])
        ax.set_yticks(range(len(widths)), [_bits_label(b) for b in widths])
        ax.set_xlabel("fraction of zeros (pruned before quantizing)")
        fig.colorbar(image, ax=ax, label=label, shrink=0.85)
    axes[0].set_ylabel("nominal bits of the value grid")
    axes[0].set_title("best attack (lower = more private)", fontsize=10)
    axes[1].set_title("indicator (higher = more private)", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
