"""Ranking agreement (mislib.evaluation.agreement): hand-made rankings with known answers, intervals, grouping and
pooling of audit tables, the per-indicator summary, and clear errors for bad inputs."""

import math

import numpy as np
import pandas as pd
import pytest

from mislib.evaluation import agreement


def test_agreement_perfect_reversed_and_ties():
    score = [3.0, 2.0, 1.0, 0.0]               # higher = more private
    delta = [0.1, 0.2, 0.3, 0.4]               # higher = less private
    same = agreement.ranking_agreement(score, delta, reference_higher_is_private=False)
    assert same.n_separated == 6 and same.concordant_fraction == 1.0 and same.kendall_tau == pytest.approx(1)
    reverse = agreement.ranking_agreement(score[::-1], delta, reference_higher_is_private=False)
    assert reverse.concordant_fraction == 0.0 and reverse.kendall_tau == pytest.approx(-1)
    ties = agreement.ranking_agreement([0.0, 0.0, 0.0, 0.0], delta, reference_higher_is_private=False)
    assert ties.concordant_fraction == 0.5 and math.isnan(ties.kendall_tau)
    infinite = agreement.ranking_agreement([math.inf, 1.0, 0.5, 0.0], delta, reference_higher_is_private=False)
    assert infinite.concordant_fraction == 1.0


def test_agreement_counts_only_pairs_separated_beyond_intervals():
    score = [1.0, 2.0, 3.0]
    reference = np.array([0.10, 0.12, 0.50])   # first two overlap, the third is apart
    low, high = reference - 0.05, reference + 0.05
    result = agreement.ranking_agreement(score, reference, low, high, reference_higher_is_private=False)
    # pairs (0, 2) and (1, 2) are separated; the score calls 2 the most private, the reference the least
    assert result.n_pairs == 3 and result.n_separated == 2 and result.concordant == 0.0
    flipped = agreement.ranking_agreement(score, reference, low, high, reference_higher_is_private=True)
    assert flipped.concordant_fraction == 1.0
    nothing = agreement.ranking_agreement(score, [0.1, 0.1, 0.1], [0, 0, 0], [1, 1, 1])
    assert nothing.n_separated == 0 and math.isnan(nothing.concordant_fraction)


def test_agreement_table_groups_and_pools():
    rows = []
    for n, flip in ((10, False), (20, True)):
        for q, r, auc in (("a", 1.0, 0.9), ("b", 2.0, 0.7), ("c", 3.0, 0.5)):
            rows.append(dict(model="m", quantizer=q, sample_size=n, seed=0, method="indicator",
                             measurement="r_soft", value=-r if flip else r, value_low=np.nan, value_high=np.nan))
            rows.append(dict(model="m", quantizer=q, sample_size=n, seed=0, method="best_attack",
                             measurement="auc", value=auc, value_low=auc - 0.01, value_high=auc + 0.01))
    table = pd.DataFrame(rows)
    groups = agreement.agreement_table(table, ("indicator", "r_soft"), ("best_attack", "auc"))
    assert list(groups.sample_size) == [10, 20]
    assert list(groups.concordant_fraction) == [1.0, 0.0]
    pooled = agreement.pooled_agreement(groups)
    assert pooled["n_separated"] == 6 and pooled["concordant_fraction"] == 0.5
    discordant = agreement.discordant_pairs(table, ("indicator", "r_soft"), ("best_attack", "auc"))
    assert list(discordant.sample_size) == [20, 20, 20]          # every separated pair of the flipped group
    assert set(discordant["more private (reference)"]) == {"b", "c"}
    assert agreement.discordant_pairs(table[table.sample_size == 10], ("indicator", "r_soft"),
                                  ("best_attack", "auc")).empty
    only_two = agreement.agreement_table(table, ("indicator", "r_soft"), ("best_attack", "auc"), quantizers=["a", "b"])
    assert list(only_two.n_items) == [2, 2]
    with pytest.raises(ValueError, match="no rows with method"):
        agreement.agreement_table(table, ("indicator", "r_min"), ("best_attack", "auc"))


# ---------------------------------------------------------------------------------------------- bad inputs

def test_agreement_bad_inputs():
    with pytest.raises(ValueError, match="NaN"):
        agreement.ranking_agreement([1.0, np.nan], [0.1, 0.2])
    with pytest.raises(ValueError, match="one per item"):
        agreement.ranking_agreement([1.0, 2.0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least 2 items"):
        agreement.ranking_agreement([1.0], [0.1])
    with pytest.raises(ValueError, match="inside its interval"):
        agreement.ranking_agreement([1.0, 2.0], [0.1, 0.2], [0.15, 0.1], [0.2, 0.3])
    with pytest.raises(ValueError, match="both reference_low and reference_high"):
        agreement.ranking_agreement([1.0, 2.0], [0.1, 0.2], [0.0, 0.1])


def test_indicator_agreement_pools_each_indicator_over_the_groups():
    rows = []
    # two groups of three quantizers; the attack AUC separates every pair; r_soft orders them like the attack in
    # both groups, r_min reverses one group: 6 separated pairs each, 6 and 3 concordant
    for group, r_min_sign in (("g1", 1), ("g2", -1)):
        for quantizer, auc, r_soft in (("a", 0.9, 0.1), ("b", 0.7, 0.5), ("c", 0.5, 2.0)):
            base = {"task": group, "quantizer": quantizer}
            rows.append({**base, "method": "attack", "measurement": "auc", "value": auc, "value_low": auc - 0.05,
                         "value_high": auc + 0.05})
            rows.append({**base, "method": "indicator", "measurement": "r_soft", "value": r_soft,
                         "value_low": np.nan, "value_high": np.nan})
            rows.append({**base, "method": "indicator", "measurement": "r_min", "value": r_min_sign * r_soft,
                         "value_low": np.nan, "value_high": np.nan})
    found = agreement.indicator_agreement(pd.DataFrame(rows), ("r_soft", "r_min"), reference=("attack", "auc"),
                                          by=("task",))
    found = found.set_index("indicator")
    assert found.loc["r_soft", "n_separated"] == 6 and found.loc["r_soft", "concordant_fraction"] == 1.0
    assert found.loc["r_min", "concordant"] == 3 and found.loc["r_min", "concordant_fraction"] == 0.5
    assert found.loc["r_soft", "mean_kendall_tau"] == pytest.approx(1.0)
    assert found.loc["r_min", "mean_kendall_tau"] == pytest.approx(0.0)
