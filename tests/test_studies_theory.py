"""The theory study's notebook layer (mislib.studies.theory): the regime helper, the section conclusions and the
figures, read back from the committed paper tables (data/results/theory_rates.csv, sr_crossover.csv,
membership_game.csv; checksums verified), and the interactive explorer against mislib.mis directly."""

import math

import matplotlib
import numpy as np
import pytest

from mislib import mis
from mislib.infra.paths import PROJECT_ROOT
from mislib.infra.tables import read_table
from mislib.quantizers import FixedGrid, SizeAdaptiveGrid, StochasticRounding
from mislib.studies import theory

matplotlib.use("Agg")
RESULTS = PROJECT_ROOT / "data" / "results"


def _committed(name):
    if not (RESULTS / f"{name}.csv").exists():
        pytest.skip(f"no committed paper table {name}.csv")
    return read_table(name, directory=RESULTS)


@pytest.fixture(scope="module")
def rates():
    return _committed("theory_rates")


def test_regime_selects_and_sorts_and_names_what_is_missing(rates):
    rows = theory.regime(rates, "fixed_grid", "Gaussian, margin 0.2 sigma")
    assert set(rows["configuration"]) == {"Gaussian, margin 0.2 sigma"} and rows["sample_size"].is_monotonic_increasing
    assert len(theory.regime(rates, "unquantized")) == 2 * len(theory.regime(rates, "unquantized", "Gaussian mean"))
    with pytest.raises(ValueError, match="no regime 'fixed'.*fixed_grid"):
        theory.regime(rates, "fixed")
    with pytest.raises(ValueError, match="has no configuration 'Gaussian'"):
        theory.regime(rates, "fixed_grid", "Gaussian")


def test_unquantized_conclusions_against_the_table(rates):
    found = theory.unquantized_conclusions(rates)
    last = theory.regime(rates, "unquantized_dimension", "dimension 64").iloc[-1]
    # sqrt(2 pi n / d) (1 - MIS_n) recomputed from the last row, and the paper's claims
    assert found["ratio_64"] == pytest.approx(math.sqrt(2 * math.pi * last["sample_size"] / 64)
                                              * math.exp(last["log_delta"]), rel=1e-12)
    assert abs(found["ratio_64"] - 1) < 0.05
    assert found["fitted_slope"]["Gaussian mean"] == pytest.approx(0.5, abs=0.01)
    assert max(found["refined_error"].values()) < 1e-3
    assert f"{found['ratio_64']:.3f} at the largest n" in found.report


def test_fixed_grid_and_stochastic_rounding_conclusions(rates):
    found = theory.fixed_grid_conclusions(rates)
    first = theory.regime(rates, "fixed_grid", "Gaussian, margin 0.35 sigma").iloc[0]
    assert found["rate_ratio"]["Gaussian, margin 0.35 sigma"] == first["fitted_rate"] / first["predicted_rate"]
    assert all(found["below_bound"].values()) and found["small_margin_error"] < 0.01
    crossover = _committed("sr_crossover")
    rounding = theory.stochastic_rounding_conclusions(rates, crossover)
    assert rounding["crossover_decreasing"] and rounding["nearest_above_first"] and rounding["nearest_below_last"]
    assert rounding["fitted_slope"]["Gaussian, stochastic rounding"] == pytest.approx(1.0, abs=0.01)
    # the crossover table is what the library computes
    again = theory.crossover_table(crossover["margin"].tolist()[:2], n_max=100_000)
    assert again["crossover_sample_size"].tolist() == crossover["crossover_sample_size"].tolist()[:2]


def test_size_adaptive_multidim_and_scale_conclusions(rates):
    unaligned = theory.unaligned_conclusions(rates)
    assert unaligned["fraction_max"] - unaligned["fraction_min"] > 0.3 and not unaligned["monotone"]
    fractions = theory.unaligned_margin_fractions(theory.regime(rates, "size_adaptive_unaligned"))
    assert np.all((fractions >= 0) & (fractions <= 0.5 + 1e-9))   # a margin is at most half a cell
    multidim = theory.multidim_conclusions(rates)
    assert abs(multidim["rate_ratio"] - 1) < 1e-3 and multidim["bracket_width_max"] <= math.log(3) + 1e-12
    assert multidim["widest_margin_is_nearest"]
    scale = theory.learned_scale_conclusions(rates)
    assert all(abs(f / scale["stored_predicted"] - 1) < 0.05 for f in scale["stored_fits"])
    assert scale["stored_below_float"] > 5


def test_convergence_table_matches_the_exact_engine():
    table = theory.convergence_table([1000, 10_000])
    step = SizeAdaptiveGrid(0.5, 0.25).step_at(1000)
    grid = SizeAdaptiveGrid(0.5, 0.25, offset=0.3 - 0.3 * step - step / 2)
    r = mis.gaussian_rate(0.3 * step, math.sqrt(0.21))
    assert table["-log Delta / (n r)"].iloc[0] == pytest.approx(-mis.exact_bernoulli_mean(1000, 0.3, grid).log_delta
                                                                / (1000 * r), rel=1e-12)
    assert table["-log Delta / (n r)"].is_monotonic_decreasing


def test_figures_draw_the_table(rates):
    fig = theory.plot_unquantized_rate(rates)
    rows = theory.regime(rates, "unquantized", "Gaussian mean")
    first_line = fig.axes[0].get_lines()[0]
    assert np.allclose(first_line.get_ydata(), np.exp(rows["log_delta"]))
    crossover = _committed("sr_crossover")
    for figure in (theory.plot_fixed_grid_gaussian(rates), theory.plot_bernoulli_rate(rates),
                   theory.plot_on_threshold(rates), theory.plot_stochastic_rounding(rates, crossover),
                   theory.plot_size_adaptive_aligned(rates), theory.plot_size_adaptive_unaligned(rates),
                   theory.plot_multidim(rates), theory.plot_learned_scale(rates)):
        assert all(ax.has_data() for ax in figure.axes)
    games = _committed("membership_game")
    fig = theory.plot_membership_game(games, int(games["n_games"].iloc[0]))
    assert len(fig.axes) == 2 and f"{int(games['n_games'].iloc[0])} games each" in fig._suptitle.get_text()


@pytest.mark.parametrize("quantizer, model, reference", [
    ("fixed grid", "Gaussian mean (sigma 1, theta* = 0)",
     lambda n: mis.exact_gaussian_mean(n, 0.0, 1.0, FixedGrid(0.8, -0.3 * 0.8 - 0.4)).log_delta),
    ("stochastic rounding", "Gaussian mean (sigma 1, theta* = 0)",
     lambda n: mis.exact_gaussian_mean(n, 0.0, 1.0, StochasticRounding(0.8, -0.3 * 0.8 - 0.4)).log_delta),
    ("no quantization", "Bernoulli mean (p = 0.3)", lambda n: mis.exact_bernoulli_mean(n, 0.3).log_delta),
])
def test_explorer_draws_the_exact_leak(quantizer, model, reference):
    """The explorer's left curve is log10(1 - MIS_n) of mislib.mis, with the optimum at 0.3 of a cell of width 0.8."""
    fig = theory.plot_mis_explorer(n=50, width=0.8, position=0.3, quantizer=quantizer, model=model, n_max=300)
    sizes, curve = fig.axes[0].get_lines()[0].get_data()
    assert 50 in sizes and sizes.max() == 300
    for k in (1, 50, 300):
        assert curve[list(sizes).index(k)] == pytest.approx(reference(k) / math.log(10), rel=1e-12)


def test_explorer_rate_prediction_and_bad_input():
    kind, rate = theory.explorer.predicted_rate("fixed grid", 1.0, 0.3)
    assert kind == "exponential" and rate == pytest.approx(0.3 ** 2 / 2)   # the nearer threshold, 0.3 sd away
    assert theory.explorer.predicted_rate("fixed grid", 1.0, 0.0) == ("power", 0.5)   # on a threshold
    fig = theory.plot_mis_explorer(n=400, width=1.0, position=0.3, n_max=2000)
    slopes = fig.axes[1].get_lines()[0].get_ydata()
    assert slopes[-1] == pytest.approx(rate, rel=0.05)   # the local exponential rate converges to delta^2 / 2
    with pytest.raises(ValueError, match="n must be <= n_max"):
        theory.plot_mis_explorer(n=5000, n_max=2000)
    with pytest.raises(ValueError, match="quantizer"):
        theory.plot_mis_explorer(quantizer="k-means")
    with pytest.raises(ValueError, match="position"):
        theory.plot_mis_explorer(position=1.5)


def test_explore_mis_redraws_when_a_slider_moves():
    ipywidgets = pytest.importorskip("ipywidgets")
    box = theory.explore_mis(n=20, quantizer="stochastic rounding", n_max=100, static=False)
    controls = [w for row in box.children[:2] for w in row.children]
    assert [type(w) for w in controls[:3]] == [ipywidgets.IntSlider, ipywidgets.FloatSlider, ipywidgets.FloatSlider]
    assert controls[0].value == 20 and controls[0].max == 100 and controls[3].value == "stochastic rounding"
    image = box.children[2]
    assert isinstance(image, ipywidgets.Image) and image.value[:8] == b"\x89PNG\r\n\x1a\n"
    before = bytes(image.value)
    controls[0].value = 80                                 # move n: the figure is redrawn
    assert bytes(image.value) != before
    controls[3].value = "fixed grid"                       # change the quantizer: redrawn again
    assert bytes(image.value) != before
