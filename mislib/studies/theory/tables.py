"""The theory tables of notebooks 01-03: every regime of THEORY.md §2-§5 as exact ``log Delta_n`` against n.

``theory_rates_table`` computes ``data/results/theory_rates.csv`` (shared by notebooks 01-03; ``load_rates``
reads it through the cache, ``regime`` selects one regime), ``membership_game_table`` the simulated games of
notebook 01, ``crossover_table`` the stochastic-rounding crossovers of notebook 02.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import torch
from scipy import special

from mislib.mis import (bernoulli_rate, exact_bernoulli_mean, exact_gaussian_mean, exact_gaussian_vector_mean,
                        float_scale_leak, gaussian_product_bounds, gaussian_rate, grid_margins_around,
                        mean_abs_product_sum, refined_log_delta_bernoulli, refined_log_delta_gaussian,
                        simulate_membership_game, stochastic_rounding_delta_asymptotic, stored_scale_release_bounds,
                        unquantized_delta_asymptotic)
from mislib.quantizers import FixedGrid, SizeAdaptiveGrid, StochasticRounding

# ----------------------------------------------------------------------------------------------------------
# The table of every regime (data/results/theory_rates.csv), shared by notebooks 01-03
# ----------------------------------------------------------------------------------------------------------

# The learned-scale example: 4 Gaussian means, absmax 4-bit weights, the scale stored on 2^-5 Z.
SCALE_EXAMPLE = {"mus": [1.0, -0.3, 0.55, 0.7], "sigma": 0.25, "bits": 4, "scale_step": 2 ** -5}
# The multi-dimensional example: margins (0.3, 0.4, 0.2) to the thresholds at -1/2 of FixedGrid(1), sd (1, 2, 1/2):
# rates (0.045, 0.02, 0.08). The widest raw margin has the smallest rate and wins.
MULTIDIM_EXAMPLE = {"margins": [0.3, 0.4, 0.2], "sigmas": [1.0, 2.0, 0.5], "step": 1.0}


def theory_rates_config(preset: str) -> dict:
    """Sample sizes of the theory table for a preset (the same config in every notebook, so it is computed once)."""
    from mislib.infra.presets import preset_config

    def geometric(low, high, count):
        return [int(v) for v in np.unique(np.round(np.geomspace(low, high, count)))]

    # "version" changes whenever the table's computation changes, so that a stale cache is never read.
    return {"version": 2, **preset_config(
        preset,
        smoke=dict(n_power=[1, 4, 16, 64, 256, 1024, 4096, 16384], n_exponential=[25, 100, 400, 1600, 6400],
                   n_moderate=[100, 10 ** 4, 10 ** 6, 10 ** 8, 10 ** 10], n_unaligned=geometric(10, 10 ** 6, 16)),
        paper=dict(n_power=geometric(1, 10 ** 6, 37), n_exponential=geometric(10, 10 ** 5, 41),
                   n_moderate=geometric(10, 10 ** 12, 45), n_unaligned=geometric(10, 10 ** 8, 240)),
    )}


def _rows(regime, model, configuration, parameters, ns, log_deltas, *, rate_kind, predicted_rate, r_q=None,
          variance_rate=None, refined=None, lower=None, upper=None):
    ns = np.asarray(ns, dtype=float)
    log_deltas = np.asarray(log_deltas, dtype=float)
    r_q = np.broadcast_to(np.nan if r_q is None else np.asarray(r_q, float), ns.shape)
    return pd.DataFrame({
        "regime": regime, "model": model, "configuration": configuration, "parameters": parameters,
        "sample_size": ns.astype(np.int64), "log_delta": log_deltas,
        "log_delta_lower": log_deltas if lower is None else np.asarray(lower, float),
        "log_delta_upper": log_deltas if upper is None else np.asarray(upper, float),
        "mis": 0.0 - np.expm1(log_deltas), "rate_kind": rate_kind,
        "predicted_rate": np.broadcast_to(np.asarray(predicted_rate, float), ns.shape),
        "variance_rate": np.broadcast_to(np.nan if variance_rate is None else np.asarray(variance_rate, float),
                                         ns.shape),
        "r_q": r_q, "exponent": ns * r_q,
        "refined_log_delta": np.nan if refined is None else np.asarray(refined, float),
    })


def load_rates(preset: str) -> pd.DataFrame:
    """The theory table for ``preset`` (``theory_rates_config``), read from the cache or computed once
    (``mislib.infra.tables.cached_table``): the same table serves notebooks 01, 02 and 03."""
    from mislib.infra.tables import cached_table

    config = theory_rates_config(preset)
    return cached_table("theory_rates", config, lambda: theory_rates_table(config))


def regime(rates: pd.DataFrame, name: str, configuration: str | None = None) -> pd.DataFrame:
    """Rows of the theory table for one regime (and configuration), sorted by sample size.

    Raises
    ------
    ValueError
        If no row matches (the message lists the regimes, or the configurations of the regime).
    """
    rows = rates[rates["regime"] == name]
    if rows.empty:
        raise ValueError(f"no regime {name!r} in the table; it has {sorted(rates['regime'].unique())}")
    if configuration is not None:
        known = sorted(rows["configuration"].unique())
        rows = rows[rows["configuration"] == configuration]
        if rows.empty:
            raise ValueError(f"regime {name!r} has no configuration {configuration!r}; it has {known}")
    return rows.sort_values("sample_size")


def fit_rate(sample_size, log_delta, rate_kind: str, exponent=None) -> float:
    """The rate fitted on a sweep, in the units of ``rate_kind``:

    - ``power``: minus the least-squares slope of log Delta on log n;
    - ``exponential``: ``r`` in ``log Delta + (1/2) log n = -r n + c`` (the second-order term -(1/2) log n of the
      refined prediction is known, so it is removed rather than fitted);
    - ``moderate``: ``kappa`` in ``-log Delta = kappa E + c log E + c0`` with ``E = n r_Q^n`` (predicted 1).
    Pass only the points meant for the fit (e.g. the upper part of the sweep)."""
    n = np.asarray(sample_size, dtype=float)
    y = np.asarray(log_delta, dtype=float)
    if rate_kind == "power":
        return float(-np.polyfit(np.log(n), y, 1)[0])
    if rate_kind == "exponential":
        return float(-np.polyfit(n, y + 0.5 * np.log(n), 1)[0])
    if rate_kind == "moderate":
        e = np.asarray(exponent, dtype=float)
        design = np.column_stack([e, np.log(e), np.ones_like(e)])
        return float(np.linalg.lstsq(design, -y, rcond=None)[0][0])
    raise ValueError(f"unknown rate_kind {rate_kind!r}; choose power, exponential or moderate")


def _add_fits(table: pd.DataFrame) -> pd.DataFrame:
    """Local rates between consecutive sizes and one fitted rate per configuration (fit on its upper half,
    moderate regimes on exponents >= 3)."""
    pieces = []
    for _, group in table.groupby(["regime", "configuration"], sort=False):
        group = group.sort_values("sample_size").copy()
        n = group["sample_size"].to_numpy(float)
        y = group["log_delta"].to_numpy(float)
        kind = group["rate_kind"].iloc[0]
        finite = np.isfinite(y)
        if kind == "power":
            local = -np.diff(y) / np.diff(np.log(n))
            upper = finite & (n >= np.sqrt(n.min() * n.max()))
            fitted = fit_rate(n[upper], y[upper], kind)
        elif kind == "exponential":
            local = -np.diff(y) / np.diff(n)
            upper = finite & (n >= np.sqrt(n.min() * n.max()))
            fitted = fit_rate(n[upper], y[upper], kind)
        else:
            e = group["exponent"].to_numpy(float)
            local = -np.diff(y) / np.diff(e)
            upper = finite & (e >= 3)
            fitted = fit_rate(n[upper], y[upper], kind, e[upper]) if upper.sum() >= 3 else np.nan
        group["local_rate"] = np.concatenate([[np.nan], local])
        group["fitted_rate"] = fitted
        pieces.append(group)
    return pd.concat(pieces, ignore_index=True)


def aligned_grid(mu: float, h0: float, alpha: float, fraction: float, n: int) -> FixedGrid:
    """The size-adaptive grid at n shifted so that mu sits ``fraction h_n`` above a threshold."""
    step = SizeAdaptiveGrid(h0, alpha).step_at(n)
    return SizeAdaptiveGrid(h0, alpha, offset=mu - fraction * step - step / 2).at(n)


def _gauss(n, mu, q, sigma=1.0) -> float:
    return exact_gaussian_mean(int(n), mu, sigma, q).log_delta


def _bern(n, p, q) -> float:
    return exact_bernoulli_mean(int(n), p, q).log_delta


def _unquantized_frames(n_power) -> list:
    """No quantization: Theta(n^-1/2), and Theta(sqrt(d / n)) in dimension d."""
    frames = []
    # No quantization: Theta(n^-1/2).
    frames.append(_rows("unquantized", "gaussian", "Gaussian mean", "any mu, sigma", n_power,
                        [_gauss(n, 0.0, None) for n in n_power], rate_kind="power", predicted_rate=0.5,
                        refined=np.log(unquantized_delta_asymptotic(n_power))))
    frames.append(_rows("unquantized", "bernoulli", "Bernoulli mean p=0.3", "p=0.3", n_power,
                        [_bern(n, 0.3, None) for n in n_power], rate_kind="power", predicted_rate=0.5,
                        refined=np.log(unquantized_delta_asymptotic(n_power, "bernoulli", 0.3))))

    for d in (1, 8, 64):  # the unquantized mean of d-dim vectors: Theta(sqrt(d / n))
        constant = mean_abs_product_sum(d) / 2
        frames.append(_rows("unquantized_dimension", "gaussian", f"dimension {d}", f"d={d}, any mean and covariance",
                            n_power, [exact_gaussian_vector_mean(int(n), d).log_delta for n in n_power],
                            rate_kind="power", predicted_rate=0.5,
                            refined=np.log(constant / np.sqrt(np.asarray(n_power, float)))))
    return frames


def _fixed_grid_frames(n_exp) -> list:
    """A fixed grid with theta* inside a cell: exponential, with the large-deviation rate."""
    frames = []
    # Fixed grid, theta* inside a cell: exponential with the large-deviation rate.
    for mu in (0.3, 0.15):
        margins = grid_margins_around(mu, FixedGrid(1.0))
        rate = gaussian_rate(min(margins), 1.0)
        frames.append(_rows("fixed_grid", "gaussian", f"Gaussian, margin {min(margins):.2g} sigma",
                            f"mu={mu}, sigma=1, grid step 1 (margins {margins[0]:.2g}, {margins[1]:.2g})", n_exp,
                            [_gauss(n, mu, FixedGrid(1.0)) for n in n_exp], rate_kind="exponential",
                            predicted_rate=rate, r_q=rate, variance_rate=rate,
                            refined=refined_log_delta_gaussian(np.asarray(n_exp), margins, 1.0)))
    for p, grid in ((0.1, FixedGrid(0.5)), (0.3, FixedGrid(0.4, 0.3))):
        low, high = grid.thresholds_around(p)
        thresholds = [t for t in (low, high) if 0 < t < 1]
        kl = min(bernoulli_rate(t, p) for t in thresholds)
        var_rate = min(gaussian_rate(t - p, math.sqrt(p * (1 - p))) for t in thresholds)
        refined = [refined_log_delta_bernoulli(int(n), p, grid) for n in n_exp]
        frames.append(_rows("fixed_grid", "bernoulli", f"Bernoulli p={p}",
                            f"p={p}, grid step {grid.step:g} offset {grid.offset:g} (thresholds "
                            f"{', '.join(f'{t:g}' for t in thresholds)})", n_exp,
                            [_bern(n, p, grid) for n in n_exp], rate_kind="exponential", predicted_rate=kl,
                            r_q=kl, variance_rate=var_rate, refined=refined))
    return frames


def _threshold_and_rounding_frames(n_power) -> list:
    """theta* on a threshold (back to n^-1/2) and stochastic rounding (Theta(1/n))."""
    frames = []
    # theta* on a threshold: back to n^-1/2.
    frames.append(_rows("on_threshold", "gaussian", "Gaussian, mu on a threshold", "mu=0.5, sigma=1, grid step 1",
                        n_power, [_gauss(n, 0.5, FixedGrid(1.0)) for n in n_power], rate_kind="power",
                        predicted_rate=0.5, refined=np.log(unquantized_delta_asymptotic(n_power))))
    frames.append(_rows("on_threshold", "bernoulli", "Bernoulli p=0.5 on a threshold", "p=0.5, grid step 1",
                        n_power, [_bern(n, 0.5, FixedGrid(1.0)) for n in n_power], rate_kind="power",
                        predicted_rate=0.5, refined=np.log(unquantized_delta_asymptotic(n_power, "bernoulli", 0.5))))

    # Stochastic rounding: Theta(1/n).
    frames.append(_rows("stochastic_rounding", "gaussian", "Gaussian, stochastic rounding", "mu=0.3, sigma=1, step 1",
                        n_power, [_gauss(n, 0.3, StochasticRounding(1.0)) for n in n_power], rate_kind="power",
                        predicted_rate=1.0,
                        refined=np.log(stochastic_rounding_delta_asymptotic(n_power, 1.0, math.sqrt(2 / math.pi)))))
    frames.append(_rows("stochastic_rounding", "bernoulli", "Bernoulli p=0.1, stochastic rounding",
                        "p=0.1, step 0.5", n_power, [_bern(n, 0.1, StochasticRounding(0.5)) for n in n_power],
                        rate_kind="power", predicted_rate=1.0,
                        refined=np.log(stochastic_rounding_delta_asymptotic(n_power, 0.5, 2 * 0.1 * 0.9))))
    return frames


def _size_adaptive_frames(n_mod, n_unal) -> list:
    """Size-adaptive grids: exponent n r_Q^n, aligned and unaligned."""
    frames = []
    # Size-adaptive grids: exponent n r_Q^n, theta* at 0.3 h_n above a threshold (aligned) ...
    for alpha, n_list in ((0.25, n_mod), (0.1, [n for n in n_mod if n <= 10 ** 8])):
        margins = np.array([0.3 * n ** -alpha for n in n_list])
        log_d = [_gauss(n, 0.0, aligned_grid(0.0, 1.0, alpha, 0.3, n)) for n in n_list]
        refined = [refined_log_delta_gaussian(n, [m, m * 7 / 3], 1.0)
                   for n, m in zip(n_list, margins)]
        frames.append(_rows("size_adaptive_aligned", "gaussian", f"Gaussian, alpha={alpha}",
                            f"sigma=1, h_n = n^-{alpha}, mu 0.3 h_n above a threshold", n_list, log_d,
                            rate_kind="moderate", predicted_rate=1.0, r_q=gaussian_rate(margins, 1.0),
                            variance_rate=gaussian_rate(margins, 1.0), refined=refined))
    p = 0.3
    margins = np.array([0.3 * 0.5 * n ** -0.25 for n in n_mod])
    var_rate = gaussian_rate(margins, math.sqrt(p * (1 - p)))
    frames.append(_rows("size_adaptive_aligned", "bernoulli", "Bernoulli p=0.3, alpha=0.25",
                        "p=0.3, h_n = 0.5 n^-0.25, p 0.3 h_n above a threshold", n_mod,
                        [_bern(n, p, aligned_grid(p, 0.5, 0.25, 0.3, n)) for n in n_mod], rate_kind="moderate",
                        predicted_rate=1.0, r_q=var_rate, variance_rate=var_rate,
                        refined=[refined_log_delta_bernoulli(int(n), p, aligned_grid(p, 0.5, 0.25, 0.3, n))
                                 for n in n_mod]))
    # ... and unaligned (a fixed offset: the margin jumps with n).
    grid = SizeAdaptiveGrid(1.0, 0.25)
    margins = np.array([min(grid_margins_around(0.3, grid.at(int(n)))) for n in n_unal])
    frames.append(_rows("size_adaptive_unaligned", "gaussian", "Gaussian, alpha=0.25, fixed offset",
                        "mu=0.3, sigma=1, h_n = n^-0.25, offset 0", n_unal,
                        [_gauss(n, 0.3, grid) for n in n_unal], rate_kind="moderate", predicted_rate=1.0,
                        r_q=gaussian_rate(margins, 1.0), variance_rate=gaussian_rate(margins, 1.0),
                        refined=[refined_log_delta_gaussian(n, grid_margins_around(0.3, grid.at(int(n))), 1.0)
                                 for n in n_unal]))
    return frames


def _multidim_frames(n_exp) -> list:
    """Several coordinates: the nearest face in standard units wins."""
    frames = []
    # Several coordinates: the nearest face in standard units wins.
    ex = MULTIDIM_EXAMPLE
    mus = [-ex["step"] / 2 + m for m in ex["margins"]]
    rates = [gaussian_rate(m, s) for m, s in zip(ex["margins"], ex["sigmas"])]
    bounds = [gaussian_product_bounds(int(n), mus, ex["sigmas"], FixedGrid(ex["step"])) for n in n_exp]
    refined = [float(special.logsumexp([refined_log_delta_gaussian(n, grid_margins_around(m, FixedGrid(ex["step"])),
                                                                   s)
                                        for m, s in zip(mus, ex["sigmas"])])) for n in n_exp]
    frames.append(_rows("multidim_nearest_face", "gaussian", "3 independent Gaussian means",
                        f"margins {ex['margins']}, sigmas {ex['sigmas']}, grid step 1", n_exp,
                        [b.log_delta for b in bounds], rate_kind="exponential", predicted_rate=min(rates),
                        r_q=min(rates), variance_rate=min(rates), refined=refined,
                        lower=[b.log_lower for b in bounds], upper=[b.log_upper for b in bounds]))
    return frames


def _learned_scale_frames(n_power, n_exp) -> list:
    """Learned scales: a float scale leaks at n^-1/2; stored on a fixed grid, exponential again."""
    frames = []
    # Learned scales: a float scale leaks at n^-1/2; stored on a fixed grid, exponential again.
    ex = SCALE_EXAMPLE
    text = f"means {ex['mus']}, sigma={ex['sigma']}, {ex['bits']}-bit absmax weights"
    for statistic in ("absmax", "absmean"):
        leak = [float_scale_leak(int(n), ex["mus"], ex["sigma"], statistic) for n in n_power]
        frames.append(_rows("learned_scale_float", "gaussian", f"float {statistic} scale",
                            text + f", float {statistic} scale", n_power, [b.log_delta for b in leak],
                            rate_kind="power", predicted_rate=0.5,
                            refined=np.log(unquantized_delta_asymptotic(n_power)),
                            lower=[b.log_lower for b in leak], upper=[b.log_upper for b in leak]))
    stored = [stored_scale_release_bounds(int(n), ex["mus"], ex["sigma"], bits=ex["bits"],
                                          scale_step=ex["scale_step"]) for n in n_exp]
    rate = min(stored[0].parts["scale_rate"], stored[0].parts["weight_rate"])
    frames.append(_rows("learned_scale_stored", "gaussian", "absmax scale stored on 2^-5 Z",
                        text + f", scale stored on step {ex['scale_step']:g}", n_exp,
                        [b.log_delta for b in stored], rate_kind="exponential", predicted_rate=rate, r_q=rate,
                        variance_rate=rate, lower=[b.log_lower for b in stored],
                        upper=[b.log_upper for b in stored]))
    scale_star = float(FixedGrid(ex["scale_step"])(torch.tensor(max(abs(m) for m in ex["mus"]), dtype=torch.float64)))
    public = FixedGrid(scale_star / (2 ** (ex["bits"] - 1) - 1))
    public_bounds = [gaussian_product_bounds(int(n), ex["mus"], ex["sigma"], public) for n in n_exp]
    rate = min(gaussian_rate(min(grid_margins_around(m, public)), ex["sigma"]) for m in ex["mus"])
    frames.append(_rows("learned_scale_public", "gaussian", "public (fixed) scale, weights only",
                        text + f", public scale {scale_star:g}", n_exp, [b.log_delta for b in public_bounds],
                        rate_kind="exponential", predicted_rate=rate, r_q=rate, variance_rate=rate,
                        lower=[b.log_lower for b in public_bounds], upper=[b.log_upper for b in public_bounds]))
    return frames


def theory_rates_table(config: dict) -> pd.DataFrame:
    """Every regime of THEORY.md §2, computed exactly (or bracketed, for several coordinates and learned
    scales), one row per configuration and sample size. ``config`` from ``theory_rates_config``."""
    n_power, n_exp = config["n_power"], config["n_exponential"]
    n_mod, n_unal = config["n_moderate"], config["n_unaligned"]
    frames = (_unquantized_frames(n_power) + _fixed_grid_frames(n_exp) + _threshold_and_rounding_frames(n_power)
              + _size_adaptive_frames(n_mod, n_unal) + _multidim_frames(n_exp)
              + _learned_scale_frames(n_power, n_exp))
    return _add_fits(pd.concat(frames, ignore_index=True))


def exact_examples(sample_sizes=(10, 10_000)) -> pd.DataFrame:
    """Notebook 01, §2: ``Delta_n = 1 - MIS_n``, its log and MIS_n of five releases of a mean, exactly, at each
    of ``sample_sizes`` (the log stays finite where ``Delta_n`` itself underflows)."""
    rows = []
    for n in sample_sizes:
        for label, value in [
            ("Gaussian, no quantization", exact_gaussian_mean(n, 0.0, 1.0)),
            ("Gaussian, grid step 1, margin 0.2 sigma", exact_gaussian_mean(n, 0.3, 1.0, FixedGrid(1.0))),
            ("Gaussian, stochastic rounding step 1", exact_gaussian_mean(n, 0.3, 1.0, StochasticRounding(1.0))),
            ("Bernoulli p=0.3, no quantization", exact_bernoulli_mean(n, 0.3)),
            ("Bernoulli p=0.3, grid step 0.25", exact_bernoulli_mean(n, 0.3, FixedGrid(0.25))),
        ]:
            rows.append({"n": n, "release": label, "Delta_n": value.delta, "log Delta_n": value.log_delta,
                         "MIS_n": value.mis})
    return pd.DataFrame(rows)


def game_configurations() -> list[dict]:
    """Releases checked by simulation in notebook 01 (each at every size of the sweep)."""
    return [
        dict(label="Gaussian, no quantization", model="gaussian", mu=0.0, sigma=1.0, quantizer=None),
        dict(label="Gaussian, grid step 1, margin 0.2", model="gaussian", mu=0.3, sigma=1.0, quantizer=FixedGrid(1.0)),
        dict(label="Gaussian, stochastic rounding step 1", model="gaussian", mu=0.3, sigma=1.0,
             quantizer=StochasticRounding(1.0)),
        dict(label="Bernoulli p=0.3, no quantization", model="bernoulli", p=0.3, quantizer=None),
        dict(label="Bernoulli p=0.3, grid step 0.25", model="bernoulli", p=0.3, quantizer=FixedGrid(0.25)),
    ]


def membership_game_table(sample_sizes, n_games: int, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Simulated accuracy of the optimal attack beside the exact (1 + Delta_n)/2, one row per release and size;
    each (release, size) gets its own seed ``seed + index`` so rows are independent and reproducible."""
    rows = []
    index = 0
    for config in game_configurations():
        params = {k: v for k, v in config.items() if k not in ("label",)}
        for n in sample_sizes:
            result = simulate_membership_game(int(n), n_games=n_games, seed=seed + index, confidence=confidence,
                                              **params)
            rows.append({"release": config["label"], "model": config["model"], "sample_size": int(n),
                         "seed": seed + index, "n_games": n_games, "accuracy": result.accuracy,
                         "ci_low": result.ci_low, "ci_high": result.ci_high,
                         "exact_accuracy": result.exact_accuracy, "exact_log_delta": result.exact_log_delta,
                         "z_score": result.z_score, "inside_interval": result.consistent})
            index += 1
    return pd.DataFrame(rows)


def crossover_table(margins, sigma: float = 1.0, step: float = 1.0, n_max: int = 100_000) -> pd.DataFrame:
    """For each margin (in units of sigma, grid step ``step``): the sample size above which rounding to nearest
    leaks less than stochastic rounding (``mis.sr_deterministic_crossover``)."""
    from mislib.mis import sr_deterministic_crossover

    return pd.DataFrame({"margin": list(margins),
                         "crossover_sample_size": [sr_deterministic_crossover(0.5 * step - m, sigma, step, n_max)
                                                   for m in margins]})
