"""The privacy-against-n study (issue 14, part 2): held-out advantage and its null, slopes, one grid point."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from mislib import attacks
from mislib import heldout as H
from mislib.studies import privacy_vs_n as P
from mislib.studies import privacy_vs_n_summary as S


def _balanced(m):
    return np.r_[np.ones(m // 2), np.zeros(m - m // 2)].astype(np.int8)


def _brute_heldout(scores, labels, half):
    """Loops: choose (threshold, direction) on one half by max |TPR - FPR| (first best from the top), measure
    the signed value on the other half, average both ways."""
    def diff(s, y, t):
        called = s >= t
        return called[y == 1].mean() - called[y == 0].mean()

    def one(sa, ya, sb, yb):
        best, choice = -1.0, (math.inf, 1.0)
        for t in [math.inf] + sorted(set(sa), reverse=True):
            d = diff(sa, ya, t)
            if abs(d) > best:
                best, choice = abs(d), (t, np.sign(d))
        return choice[1] * diff(sb, yb, choice[0])

    return 0.5 * (one(scores[half], labels[half], scores[~half], labels[~half])
                  + one(scores[~half], labels[~half], scores[half], labels[half]))


@pytest.mark.parametrize("discrete", [False, True])
def test_heldout_advantage_equals_a_brute_force_rule(discrete):
    rng = np.random.default_rng(3)
    for seed in range(5):
        labels = rng.permutation(_balanced(40))
        scores = rng.normal(size=40) + 0.8 * labels
        if discrete:
            scores = np.round(scores)          # ties: a cut never splits a run of equal scores
        expected = _brute_heldout(scores, labels, H.split_halves(40, seed))
        assert H.heldout_advantage(scores, labels, seed=seed) == pytest.approx(expected, abs=1e-12)


def test_max_advantages_equal_attacks_advantage_row_by_row():
    rng = np.random.default_rng(4)
    scores = np.round(rng.normal(size=60), 1)
    rows = np.vstack([rng.permutation(_balanced(60)) for _ in range(5)])
    expected = [attacks.advantage(scores, row) for row in rows]
    np.testing.assert_allclose(H.max_advantages(scores, rows), expected, atol=1e-12)


def test_without_leakage_the_heldout_advantage_is_centred_and_the_maximum_is_biased():
    rng = np.random.default_rng(0)
    m, runs = 400, 200
    labels = _balanced(m)
    held, maxima, inside = [], [], 0
    for seed in range(runs):
        scores = rng.normal(size=m)               # independent of membership
        held.append(H.heldout_advantage(scores, labels, seed=seed))
        maxima.append(attacks.advantage(scores, labels))
        if seed < 40:
            found = H.permutation_null(scores, labels, n_permutations=100, seed=seed)
            low, high = H.null_band(found["null_heldout"])
            inside += low <= found["heldout"] <= high
    held = np.asarray(held)
    assert abs(held.mean()) < 3 * held.std(ddof=1) / math.sqrt(runs)
    # the maximum's mean is the two-sample Kolmogorov-Smirnov mean, about 0.87 sqrt(2 / (m/2)) = 0.087
    assert np.mean(maxima) == pytest.approx(0.87 * math.sqrt(2 / (m / 2)), rel=0.15)
    assert np.mean(maxima) > held.mean() + 0.06
    assert inside >= 34                            # 95% bands: about 38 of 40


def test_with_leakage_the_heldout_advantage_recovers_the_total_variation():
    rng = np.random.default_rng(1)
    m, shift = 6000, 0.5
    labels = _balanced(m)
    scores = rng.normal(size=m) + shift * labels
    truth = 2 * norm.cdf(shift / 2) - 1            # TV of N(0,1) and N(shift,1): 0.197
    found = H.permutation_null(scores, labels, n_permutations=50, seed=2)
    assert found["heldout"] == pytest.approx(truth, abs=0.03)
    assert found["heldout"] > H.null_band(found["null_heldout"])[1]
    assert found["max"] >= found["heldout"]


@pytest.mark.parametrize("scores, labels, match", [
    (np.zeros(10), np.r_[np.ones(5), 2 * np.ones(5)], "0 \\(non-member\\) or 1"),
    (np.zeros(10), np.r_[np.ones(9), 0], "at least two members and two non-members"),
    (np.r_[np.nan, np.zeros(9)], _balanced(10), "NaN or infinite"),
    (np.zeros(10), _balanced(8), "shape of scores"),
])
def test_heldout_advantage_rejects_bad_input(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        H.heldout_advantage(scores, labels)


def test_permutation_null_and_band_reject_bad_arguments():
    with pytest.raises(ValueError, match="n_permutations"):
        H.permutation_null(np.arange(10.0), _balanced(10), n_permutations=1)
    with pytest.raises(ValueError, match="confidence"):
        H.null_band(np.arange(5.0), confidence=1.5)


# ------------------------------------------------------------------------------------------------ slopes

def test_fit_log_slope_recovers_a_known_slope():
    rng = np.random.default_rng(5)
    n = np.array([250, 500, 1000, 2000, 4000], dtype=float)
    covered = 0
    for _ in range(50):
        values = 3.0 * n ** -0.5 * np.exp(rng.normal(scale=0.05, size=n.size))
        fit = S.fit_log_slope(n, values, 0.05 * values)
        assert fit["n_points"] == 5 and fit["n_dropped"] == 0
        covered += fit["low"] <= -0.5 <= fit["high"]
    assert covered >= 44                            # a 95% interval covers the truth about 47 times in 50
    exact = S.fit_log_slope(n, 2.0 * n ** -1.0)
    assert exact["slope"] == pytest.approx(-1.0) and exact["intercept"] == pytest.approx(math.log(2.0))


def test_fit_log_slope_drops_points_without_leakage_and_needs_two():
    fit = S.fit_log_slope([100, 200, 400], [0.1, -0.01, 0.05], [0.01, 0.01, 0.01])
    assert fit["n_points"] == 2 and fit["n_dropped"] == 1
    assert fit["slope"] == pytest.approx(math.log(0.5) / math.log(4))
    assert math.isnan(S.fit_log_slope([100, 200], [0.1, 0.0])["slope"])
    with pytest.raises(ValueError, match="positive sizes"):
        S.fit_log_slope([0, 100], [0.1, 0.2])
    with pytest.raises(ValueError, match="one length"):
        S.fit_log_slope([100, 200], [0.1])


# --------------------------------------------------------------------------------------- one grid point

def _toy_pool(size=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size).astype(float)
    X = rng.normal(size=(size, 5)) + 0.8 * (2 * y[:, None] - 1) * np.array([1, 0.5, 0, 0, 0])
    return X, y


QUANTIZERS = [["identity", "identity", {}], ["uniform 4-bit, public scale", "uniform",
              {"bits": 4, "scale_format": "public", "scale": "public:4"}], ["sign", "sign", {}]]


@pytest.fixture(scope="module")
def toy_table():
    X, y = _toy_pool()
    Xp, yp = _toy_pool(200, seed=9)
    tables = []
    for n in (40, 80):
        part = P.measure_point(X, y, Xp, yp, n=n, seed=0, quantizers=QUANTIZERS, n_iter=150, n_models=8,
                               n_targets=4, n_permutations=20)
        part.insert(0, "n", n)
        part.insert(1, "seed", 0)
        tables.append(part)
    return pd.concat(tables, ignore_index=True)


def test_measure_point_rows(toy_table):
    part = toy_table[toy_table["n"] == 40]
    attack = part[part["method"] == "attack"]
    assert set(attack["target"]) == set(range(4))        # the first n_targets of the 8 models
    assert len(attack) == 4 * 3 * 3                     # targets x quantizers x (auc, max, held-out)
    assert attack.loc[attack["measurement"] == "auc", "value"].between(0, 1).all()
    held = attack[attack["measurement"] == "advantage_heldout"]["value"].to_numpy()
    maxima = attack[attack["measurement"] == "advantage_max"]["value"].to_numpy()
    assert (maxima >= held - 1e-12).all()
    draws = part[part["method"] == "null_draw"]
    assert (draws["target"] == P.ALL_TARGETS).all() and len(draws) == 2 * 20 * 3
    ind = part[(part["method"] == "indicator") & (part["quantizer"] == "identity")].pivot(
        index="target", columns="measurement", values="value")
    assert (ind["ranking_score"] == 0).all() and (ind["delta_estimate"] == 1).all()   # identity: no privacy
    absmax = part.loc[part["measurement"] == "public_absmax", "value"]
    assert absmax.nunique() == 1 and absmax.iloc[0] > 0
    # the public grid is fixed: the same step at both sizes
    assert toy_table.loc[toy_table["measurement"] == "public_absmax", "value"].nunique() == 1


def test_summary_and_conclusions_of_a_toy_table(toy_table):
    summary = S.summarise(toy_table)
    assert len(summary) == 2 * 3 and (summary["n_targets"] == 4).all()
    assert (summary["null_low"] < summary["null_high"]).all()
    assert np.allclose(summary["excess"], summary["advantage_heldout"] - summary["null_mean"])
    fitted = S.slopes(summary)
    assert set(fitted["quantizer"]) == {q[0] for q in QUANTIZERS}
    found = S.conclusions(toy_table)
    assert found["sizes"] == [40, 80] and found["n_targets"] == 4
    assert found["max_bias_at_smallest_n"] > abs(found["heldout_null_at_smallest_n"])
    assert "held-out advantage" in S.conclusions_text(found)


def test_bad_inputs_raise_clear_errors():
    X, y = _toy_pool(100)
    with pytest.raises(ValueError, match="needs 2 \\* 60 examples"):
        P.measure_point(X, y, X, y, n=60, seed=0, quantizers=QUANTIZERS)
    with pytest.raises(ValueError, match="n_models must be even"):
        P.measure_point(X, y, X, y, n=20, seed=0, quantizers=QUANTIZERS, n_models=7)
    with pytest.raises(ValueError, match="n_targets \\(8\\) cannot exceed n_models \\(6\\)"):
        P.measure_point(X, y, X, y, n=20, seed=0, quantizers=QUANTIZERS, n_models=6, n_targets=8)
    with pytest.raises(ValueError, match="binary class labels"):
        P.measure_point(X, y + 1, X, y, n=20, seed=0, quantizers=QUANTIZERS)
    assert P.resolve_size("full", 101) == 50
    with pytest.raises(ValueError, match="settings: missing"):
        P.run_privacy_vs_n({"task": P.TASK}, [250], [0])
    with pytest.raises(ValueError, match="lacks the columns"):
        S.summarise(pd.DataFrame({"n": [1]}))


def test_presets_name_the_same_keys_and_the_paper_grid_reaches_the_full_pool():
    smoke, paper = P.preset_sizes("smoke"), P.preset_sizes("paper")
    assert set(smoke) == set(paper)
    assert paper["sizes"][0] == 250 and paper["sizes"][-1] == "full" and paper["n_targets"] >= 16
    assert paper["n_models"] >= 4 * paper["n_targets"]     # references: many more than targets (module notes)
    settings = P.settings_for(paper)
    assert set(settings) == set(P.SETTING_KEYS) and settings["n_features"] == 32

