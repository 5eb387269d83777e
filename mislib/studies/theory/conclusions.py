"""What notebooks 01-03 conclude, section by section, computed from the theory table (``rates``): each function
returns a ``Conclusions`` (a dict of the numbers the notebook asserts on, with the sentences it prints as
``report``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mislib import mis
from mislib.studies.findings import Conclusions
from mislib.studies.theory.figures import crossing_bound_log, rounding_to_nearest_log_delta, unaligned_margin_fractions
from mislib.studies.theory.tables import MULTIDIM_EXAMPLE, SCALE_EXAMPLE, fit_rate, regime


def unquantized_conclusions(rates: pd.DataFrame) -> Conclusions:
    """Notebook 01, §4: the fitted slopes of the unquantized means (``fitted_slope``), the gap between the exact
    log Delta_n and its asymptote at the largest n (``refined_error``, also per dimension:
    ``dimension_refined_error``), and sqrt(2 pi n / d) (1 - MIS_n) at d = 64 (``ratio_64``)."""
    values = {"fitted_slope": {}, "refined_error": {}, "dimension_refined_error": {}}
    lines = []
    for configuration in ["Gaussian mean", "Bernoulli mean p=0.3"]:
        rows = regime(rates, "unquantized", configuration)
        last = rows.iloc[-1]
        lines.append(f"{configuration}: fitted slope -{rows['fitted_rate'].iloc[0]:.5f}; at n = "
                     f"{last['sample_size']}, Delta_n / asymptote = "
                     f"{math.exp(last['log_delta'] - last['refined_log_delta']):.6f}")
        values["fitted_slope"][configuration] = float(rows["fitted_rate"].iloc[0])
        values["refined_error"][configuration] = abs(last["log_delta"] - last["refined_log_delta"])
    for configuration in ["dimension 1", "dimension 8", "dimension 64"]:
        last = regime(rates, "unquantized_dimension", configuration).iloc[-1]
        values["dimension_refined_error"][configuration] = abs(last["log_delta"] - last["refined_log_delta"])
    last = regime(rates, "unquantized_dimension", "dimension 64").iloc[-1]
    values["ratio_64"] = math.exp(last["log_delta"]) * math.sqrt(last["sample_size"] * 2 * math.pi / 64)
    lines.append(f"d = 64: sqrt(2 pi n / d) (1 - MIS_n) = {values['ratio_64']:.3f} at the largest n")
    return Conclusions(values, lines)


def fixed_grid_conclusions(rates: pd.DataFrame) -> Conclusions:
    """Notebook 02, §1: per margin, fitted over predicted rate (``rate_ratio``), refined prediction minus exact at
    the largest n (``refined_error``), whether every exact value is below the crossing bound
    (``below_bound``); and, for the small margin, log Delta_n against -n r - log(pi sqrt n)
    (``small_margin_error``)."""
    values = {"rate_ratio": {}, "refined_error": {}, "below_bound": {}}
    lines = []
    for configuration in ["Gaussian, margin 0.2 sigma", "Gaussian, margin 0.35 sigma"]:
        rows = regime(rates, "fixed_grid", configuration)
        first, last = rows.iloc[0], rows.iloc[-1]
        lines.append(f"{configuration}: fitted rate {first['fitted_rate']:.6f} (predicted "
                     f"{first['predicted_rate']:.6f}); -log Delta/(n r) = "
                     f"{-last['log_delta'] / last['exponent']:.4f} at n = {last['sample_size']}; refined - exact = "
                     f"{last['refined_log_delta'] - last['log_delta']:.1e}")
        values["rate_ratio"][configuration] = first["fitted_rate"] / first["predicted_rate"]
        values["refined_error"][configuration] = abs(last["refined_log_delta"] - last["log_delta"])
        bound = crossing_bound_log(rows["sample_size"].to_numpy(), float(configuration.split()[2]))
        values["below_bound"][configuration] = bool(np.all(rows["log_delta"].to_numpy() < bound))
    last = regime(rates, "fixed_grid", "Gaussian, margin 0.2 sigma").iloc[-1]
    small_margin = -last["exponent"] - 0.5 * math.log(last["sample_size"]) - math.log(math.pi)
    lines.append(f"margin 0.2: log Delta = {last['log_delta']:.4f}, -n r - log(pi sqrt n) = {small_margin:.4f}")
    values["small_margin_error"] = abs(last["log_delta"] - small_margin)
    return Conclusions(values, lines)


def stochastic_rounding_conclusions(rates: pd.DataFrame, crossover: pd.DataFrame) -> Conclusions:
    """Notebook 02, §4: fitted slopes of stochastic rounding (``fitted_slope``, predicted 1), the refined
    prediction's error at the largest n (``refined_error``), whether the crossovers are all above n = 1 and
    decrease with the margin, and whether rounding to nearest leaks more than stochastic rounding at the
    smallest n and less at the largest (``nearest_above_first``, ``nearest_below_last``)."""
    values = {"fitted_slope": {}, "refined_error": {}}
    lines = []
    for configuration, mad, step in [("Gaussian, stochastic rounding", math.sqrt(2 / math.pi), 1.0),
                                     ("Bernoulli p=0.1, stochastic rounding", 2 * 0.1 * 0.9, 0.5)]:
        rows = regime(rates, "stochastic_rounding", configuration)
        last = rows.iloc[-1]
        lines.append(f"{configuration}: fitted slope -{rows['fitted_rate'].iloc[0]:.5f}; n h Delta_n / "
                     f"E|Z - theta*| = {math.exp(last['log_delta']) * last['sample_size'] * step / mad:.8f}")
        values["fitted_slope"][configuration] = float(rows["fitted_rate"].iloc[0])
        values["refined_error"][configuration] = abs(last["log_delta"] - last["refined_log_delta"])
    sr = regime(rates, "stochastic_rounding", "Gaussian, stochastic rounding")
    nearest = rounding_to_nearest_log_delta(sr["sample_size"].to_numpy())
    values["crossovers_above_one"] = bool((crossover["crossover_sample_size"] > 1).all())
    values["crossover_decreasing"] = bool(crossover["crossover_sample_size"].is_monotonic_decreasing)
    values["nearest_above_first"] = bool(nearest[0] > sr["log_delta"].iloc[0])
    values["nearest_below_last"] = bool(nearest[-1] < sr["log_delta"].iloc[-1])
    return Conclusions(values, lines)


def convergence_table(sample_sizes, p: float = 0.3, h0: float = 0.5, alpha: float = 0.25,
                      fraction: float = 0.3) -> pd.DataFrame:
    """Notebook 03, §1: a size-adaptive Bernoulli case (p ``fraction`` h_n above a threshold of h0 n^-alpha Z):
    the exponent n r_Q^n, -log Delta_n / (n r), and the ratio of the KL rate to the variance rate."""
    from mislib.quantizers import SizeAdaptiveGrid

    rows = []
    for n in sample_sizes:
        step = SizeAdaptiveGrid(h0, alpha).step_at(n)
        grid = SizeAdaptiveGrid(h0, alpha, offset=p - fraction * step - step / 2)
        r = mis.gaussian_rate(fraction * step, math.sqrt(p * (1 - p)))
        log_delta = mis.exact_bernoulli_mean(n, p, grid).log_delta
        rows.append({"n": n, "n r_Q^n": n * r, "-log Delta / (n r)": -log_delta / (n * r),
                     "KL rate / variance rate": mis.bernoulli_rate(p - fraction * step, p) / r})
    return pd.DataFrame(rows)


def unaligned_conclusions(rates: pd.DataFrame) -> Conclusions:
    """Notebook 03, §2: the refined prediction's largest error over all n and for n >= 1000 (``error_max``,
    ``error_late_max``), the range of the margin fraction delta_n / h_n (``fraction_min``, ``fraction_max``)
    and whether the leak decreases monotonically with n (``monotone``)."""
    rows = regime(rates, "size_adaptive_unaligned")
    error = (rows["refined_log_delta"] - rows["log_delta"]).abs()
    late = rows["sample_size"] >= 1000
    fractions = unaligned_margin_fractions(rows)
    values = {"error_max": float(error.max()), "error_late_max": float(error[late].max()),
              "fraction_min": float(fractions.min()), "fraction_max": float(fractions.max()),
              "monotone": bool(rows["log_delta"].is_monotonic_decreasing)}
    lines = [f"largest |refined - exact|: {error.max():.2e} over all n, {error[late].max():.2e} for n >= 1000; "
             f"margin fraction ranges over [{fractions.min():.3f}, {fractions.max():.3f}]"]
    return Conclusions(values, lines)


def multidim_conclusions(rates: pd.DataFrame) -> Conclusions:
    """Notebook 03, §3: fitted over predicted (min_k) rate (``rate_ratio``), the widest bracket
    (``bracket_width_max``; at most log 3 for three coordinates), and whether the coordinate with the widest raw
    margin is the nearest face in standard units (``widest_margin_is_nearest``)."""
    rows = regime(rates, "multidim_nearest_face")
    first = rows.iloc[0]
    ex = MULTIDIM_EXAMPLE
    lines = [f"fitted rate {first['fitted_rate']:.6f}, min_k rate {first['predicted_rate']:.6f}; bracket width at "
             f"the largest n: {rows['log_delta_upper'].iloc[-1] - rows['log_delta_lower'].iloc[-1]:.2e}"]
    rates_k = [mis.gaussian_rate(m, s) for m, s in zip(ex["margins"], ex["sigmas"])]
    values = {"rate_ratio": first["fitted_rate"] / first["predicted_rate"],
              "bracket_width_max": float((rows["log_delta_upper"] - rows["log_delta_lower"]).max()),
              "widest_margin_is_nearest": bool(np.argmin(rates_k) == int(np.argmax(ex["margins"])))}
    return Conclusions(values, lines)


def learned_scale_conclusions(rates: pd.DataFrame) -> Conclusions:
    """Notebook 03, §4: the float scales' fitted slopes (``fitted_slope``) and bracket widths for n >= 64
    (``bracket_width``); the stored scale's rates fitted on both ends of its bracket (``stored_fits``) against
    the predicted min(scale, weights) rate (``stored_predicted``), and how far (in log units) the stored scale's
    upper end stays below the float scale's lower end at the largest n (``stored_below_float``)."""
    values = {"fitted_slope": {}, "bracket_width": {}}
    lines = []
    for configuration in ["float absmax scale", "float absmean scale"]:
        rows = regime(rates, "learned_scale_float", configuration)
        big = rows[rows["sample_size"] >= 64]
        width = (big["log_delta_upper"] - big["log_delta_lower"]).max()
        lines.append(f"{configuration}: fitted slope -{rows['fitted_rate'].iloc[0]:.4f}; bracket width "
                     f"{width:.1e} for n >= 64")
        values["fitted_slope"][configuration] = float(rows["fitted_rate"].iloc[0])
        values["bracket_width"][configuration] = float(width)
    stored = regime(rates, "learned_scale_stored")
    parts = mis.stored_scale_release_bounds(100, **SCALE_EXAMPLE).parts
    predicted = min(parts["scale_rate"], parts["weight_rate"])
    n = stored["sample_size"]
    upper_half = stored[n >= math.sqrt(n.min() * n.max())]
    fits = [fit_rate(upper_half["sample_size"], upper_half[side], "exponential")
            for side in ("log_delta_lower", "log_delta_upper")]
    lines.append(f"stored scale: rates fitted on the lower and upper ends {fits[0]:.5f}, {fits[1]:.5f}; predicted "
                 f"min(scale {parts['scale_rate']:.5f}, weights {parts['weight_rate']:.5f})")
    float_last = regime(rates, "learned_scale_float", "float absmax scale")
    values.update(stored_fits=fits, stored_predicted=predicted, stored_below_float=float(
        np.interp(n.iloc[-1], float_last["sample_size"], float_last["log_delta_lower"])
        - stored["log_delta_upper"].iloc[-1]))
    return Conclusions(values, lines)
