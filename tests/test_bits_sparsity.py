"""The bits-against-sparsity analysis (``mislib.studies.bits_sparsity``): known effects recovered from constructed
tables, the design, and the conclusions consistent with the table."""

import math

import numpy as np
import pandas as pd
import pytest

from mislib.evaluation.quantizer_specs import FACTORIAL_SPECS, factorial_design
from mislib.studies import bits_sparsity as bs

DESIGN = factorial_design(bs.study_specs()).set_index("label")


def constructed_table(auc, score=lambda b, s: 0.0, configurations=(("a", 0), ("a", 1), ("b", 0))):
    """A tidy audit table with columns task, seed (the configuration), every release of ``study_specs()``, and
    ``auc(bits, sparsity, configuration)`` as the best attack's AUC, ``score(bits, sparsity)`` as ranking
    score, the nominal bits (times 1 - sparsity) as stored bits and the target sparsity as achieved."""
    rows = []
    for task, seed in configurations:
        for label, cell in DESIGN.iterrows():
            b, s = cell["nominal_bits"], cell["target_sparsity"]
            values = {("best_attack", "auc"): auc(b, s, (task, seed)), ("indicator", "ranking_score"): score(b, s),
                      ("quantizer", "bits_per_weight"): b * (1 - s) + (s > 0), ("quantizer", "sparsity"): s,
                      ("lira_online", "auc"): 0.5}
            for (method, measurement), value in values.items():
                rows.append({"task": task, "seed": seed, "quantizer": label, "method": method,
                             "measurement": measurement, "value": value, "value_low": np.nan,
                             "value_high": np.nan})
    return pd.DataFrame(rows)


def additive(b, s, configuration=None):
    """AUC: 0.8, minus 0.2 per unit of sparsity, minus 0.01 per bit below 8 (nothing above 8)."""
    return 0.8 - 0.2 * s - 0.01 * max(0.0, 8 - b)


def test_study_specs_and_settings():
    assert bs.study_specs()[0] == ("identity", "identity", {})
    assert bs.study_specs()[1:] == FACTORIAL_SPECS
    smoke = bs.synthetic_settings("smoke")
    paper = bs.synthetic_settings("paper", seed=3)
    assert len(smoke["configs"]) == 2 and len(paper["configs"]) == 2 * 2 * 6
    assert sorted({c["seed"] for c in paper["configs"]}) == list(range(3, 9))
    assert [q[0] for q in paper["shared"]["quantizers"]] == [s[0] for s in bs.study_specs()]
    assert paper["shared"]["n_bootstrap"] == 0 and paper["shared"]["n_shadow"] == 32


def test_factorial_changes_against_identity_of_the_same_configuration():
    def auc(b, s, configuration):
        return additive(b, s) + (0.05 if configuration == ("b", 0) else 0.0)

    changes = bs.factorial_changes(constructed_table(auc))
    assert len(changes) == 3 * len(DESIGN)
    assert list(changes.columns[:2]) == ["task", "seed"]
    identity = changes[changes.quantizer == "identity"]
    assert (identity.attack_auc_change == 0).all() and (identity.nominal_bits == 32).all()
    row = changes[(changes.quantizer == "int3 z90") & (changes.task == "b")].iloc[0]
    assert row.attack_auc == pytest.approx(0.85 - 0.18 - 0.05)       # the configuration's offset cancels
    assert row.attack_auc_change == pytest.approx(-0.18 - 0.05)
    assert row.stored_bits_change == pytest.approx(3 * 0.1 + 1 - 32)
    assert row.target_sparsity == 0.9 and row.family == "uniform"


def test_factorial_changes_refuses_incomplete_tables():
    table = constructed_table(additive)
    with pytest.raises(ValueError, match="tern z90"):
        bs.factorial_changes(table[table.quantizer != "tern z90"])
    no_identity = table[~((table.quantizer == "identity") & (table.seed == 1))]
    with pytest.raises(ValueError, match="1 configuration"):
        bs.factorial_changes(no_identity)
    with pytest.raises(ValueError, match="by"):
        bs.factorial_changes(table, by=["target"])
    with pytest.raises(ValueError, match="does not identify a configuration"):
        bs.factorial_changes(table, by=["task"])          # task "a" has two seeds
    # the configuration columns are found, or taken as given
    assert bs.configuration_columns(table) == ["task", "seed"]
    assert len(bs.factorial_changes(table, by=["task", "seed"])) == 3 * len(DESIGN)


def test_crossed_block_and_cell_means():
    changes = bs.factorial_changes(constructed_table(additive))
    assert bs.crossed_block(changes) == ([3.0, 4.0, 8.0, 32.0], [0.0, 0.5, 0.75, 0.9, 0.95])
    means = bs.cell_means(changes).set_index(["nominal_bits", "target_sparsity"])
    assert len(means) == 26 - 1 + 1          # 26 releases + identity, the two casts in one cell
    assert means.loc[(4.0, 0.75), "attack_auc_change"] == pytest.approx(-0.15 - 0.04)
    assert means.loc[(16.0, 0.0), "n_configurations"] == 3
    assert means.loc[(8.0, 0.5), "attack_auc_change_sd"] == pytest.approx(0.0)


def test_variance_shares_recover_an_additive_design():
    changes = bs.factorial_changes(constructed_table(additive))
    shares = bs.variance_shares(changes, "attack_auc_change")
    # rows 3, 4, 8, 32 bits: effects -0.05, -0.04, 0, 0; columns: -0.2 s
    bits = np.array([-0.05, -0.04, 0.0, 0.0])
    sparsity = -0.2 * np.array([0.0, 0.5, 0.75, 0.9, 0.95])
    ss_bits = 5 * ((bits - bits.mean()) ** 2).sum()
    ss_sparsity = 4 * ((sparsity - sparsity.mean()) ** 2).sum()
    assert shares.share_bits.to_numpy() == pytest.approx([ss_bits / (ss_bits + ss_sparsity)] * 3)
    assert shares.share_sparsity.to_numpy() == pytest.approx([ss_sparsity / (ss_bits + ss_sparsity)] * 3)
    assert shares.share_interaction.to_numpy() == pytest.approx([0.0] * 3, abs=1e-12)
    ranked = bs.variance_shares(changes, "attack_auc_change", ranks=True)
    assert (ranked.share_sparsity > ranked.share_bits).all()
    # an outcome that depends on the width alone
    only_bits = bs.factorial_changes(constructed_table(lambda b, s, c: 0.7 - 0.01 * max(0.0, 8 - b)))
    assert bs.variance_shares(only_bits, "attack_auc_change").share_bits.to_numpy() == pytest.approx([1.0] * 3)


def test_conclusions_recover_effects_reversals_and_configurations():
    def auc(b, s, configuration):
        if configuration == ("b", 0):          # here the width alone matters: 0.02 per bit below 8
            value = 0.8 - 0.02 * max(0.0, 8 - b)
        else:
            value = additive(b, s)
        if b == 3 and s == 0.95:
            value += 0.2                       # at 95% zeros, 3 bits leaks more than 8: the bits effect reverses
        return value

    found = bs.conclusions(constructed_table(auc, score=lambda b, s: 0.01 * s))
    assert found["n_configurations"] == 3 and found["configuration_columns"] == ["task", "seed"]
    assert found["attack_bits_effect"] == pytest.approx((-0.05 - 0.05 - 0.10) / 3)
    assert found["attack_sparsity_effect"] == pytest.approx((-0.18 - 0.18 + 0) / 3)
    assert found["attack_effect_ratio"] == pytest.approx(0.12 / (0.2 / 3))
    assert found["attack_sparsity_effect_more_private"] == pytest.approx(2 / 3)
    assert found["attack_bits_effect_more_private"] == pytest.approx(1.0)
    assert found["attack_leading_factor"] == "sparsity"
    assert found["attack_leading_fraction"] == pytest.approx(2 / 3)
    assert found["attack_reversed_configurations"] == ["task b, seed 0"]
    assert found["attack_bits_reverses_at"] == [0.95]
    assert found["attack_bits_effect_by_sparsity"][0.95] == pytest.approx((0.15 + 0.15 + 0.10) / 3)
    assert found["attack_bits_effect_by_sparsity"][0.5] == pytest.approx((-0.05 - 0.05 - 0.10) / 3)
    assert found["attack_sparsity_reverses_at"] == []
    assert found["attack_sparsity_effect_by_bits"][3.0] == pytest.approx((-0.18 - 0.18 + 0) / 3)
    # the indicator here depends on sparsity only
    assert found["indicator_share_sparsity"] == pytest.approx(1.0)
    assert found["indicator_bits_effect"] == pytest.approx(0.0)
    assert found["stored_bits"]["8/0.9"] == pytest.approx(8 * 0.1 + 1)
    sign = found["zeros_on_sign"]
    assert sign["sign_attack_auc_change"] == pytest.approx((-0.07 - 0.07 - 0.14) / 3)
    assert sign["ternary"][0.5][0] == pytest.approx((2 * (-0.1 - 0.01 * (8 - math.log2(3)))
                                                     - 0.02 * (8 - math.log2(3))) / 3)


def test_conclusions_text_states_the_numbers_of_the_dict():
    found = bs.conclusions(constructed_table(additive, score=lambda b, s: 0.01 * s + 0.001 * max(0, 8 - b)))
    text = bs.conclusions_text(found)
    for number in (f"{found['attack_bits_effect']:+.3f}", f"{found['attack_sparsity_effect']:+.3f}",
                   f"{found['attack_effect_ratio']:.1f} times", f"{100 * found['attack_share_sparsity']:.0f}%",
                   f"{found['indicator_sparsity_effect']:+.3f}", f"{found['stored_bits']['8/0.9']:.2f}",
                   f"{found['zeros_on_sign']['sign_attack_auc_change']:+.3f}"):
        assert number in text, number
    assert "**Sparsity matters more** in 100% of the configurations; it reverses in none" in text


def test_plot_annotates_the_cell_means():
    table = constructed_table(additive, score=lambda b, s: 0.01 * s)
    fig = bs.plot_bits_sparsity(table, title="constructed")
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 2
    texts = [t.get_text() for t in heatmaps[0].texts]
    assert len(texts) == 26 and "-0.190\n2 b" in texts   # 4 bits, 75% zeros: -0.15 - 0.04; 4 x 0.25 + 1 bits
    image = heatmaps[0].images[0].get_array()
    assert image.shape == (7, 5) and np.isnan(np.ma.filled(image, np.nan)).sum() == 35 - 26   # cells outside the design


def test_a_real_audit_goes_through_the_analysis():
    from mislib.studies.synthetic_ranking import synthetic_configuration

    settings = bs.synthetic_settings("smoke")
    item = {**settings["shared"], **settings["configs"][0], "dim": 8, "n_shadow": 4, "sample_size": 24,
            "n_test": 100, "n_iter": 100}
    table = synthetic_configuration(item)
    changes = bs.factorial_changes(table)
    assert set(changes.quantizer) == set(DESIGN.index)
    # sparsity achieved on the trained weights: nothing for sign and the casts, most for 95% pruning
    achieved = changes.set_index("quantizer").sparsity
    assert achieved["sign z0"] == 0 and achieved["bf16 z0"] == 0
    assert achieved["tern z95"] > 0.7 and achieved["int8 z95"] == achieved["tern z95"]
    assert changes.set_index("quantizer").stored_bits_change["int8 z0"] < 0
