"""The figures of notebooks 01-03, one function per figure, each drawn from the theory table (``rates``, from
``tables.load_rates``) and returning the matplotlib figure (the notebook saves it with ``plotting.savefig``)."""

from __future__ import annotations

import math

import numpy as np

from mislib import mis
from mislib.quantizers import FixedGrid
from mislib.studies.theory.tables import MULTIDIM_EXAMPLE, game_configurations, regime


def _subplots(*args, **kwargs):
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


# -------------------------------------------------------------------------------------------- notebook 01

def plot_membership_game(games, n_games: int):
    """Simulated accuracy of the optimal attack (points, 95% intervals) against the exact (1 + Delta_n)/2
    (lines), Gaussian releases on the left, Bernoulli on the right."""
    import matplotlib.pyplot as plt

    fig, axes = _subplots(1, 2, figsize=(11, 4), sharey=True)
    dense = np.unique(np.round(np.geomspace(1, games["sample_size"].max(), 60)).astype(int))
    for config, colour in zip(game_configurations(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        ax = axes[0 if config["model"] == "gaussian" else 1]
        gaussian = config["model"] == "gaussian"
        exact_fn = mis.exact_gaussian_mean if gaussian else mis.exact_bernoulli_mean
        args = (config["mu"], config["sigma"]) if gaussian else (config["p"],)
        ax.plot(dense, [exact_fn(int(n), *args, config["quantizer"]).bayes_accuracy for n in dense],
                color=colour, label=config["label"] + " (exact)")
        rows = games[games["release"] == config["label"]]
        ax.errorbar(rows["sample_size"], rows["accuracy"],
                    yerr=[rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]],
                    fmt="o", color=colour, ms=4, capsize=2)
    for ax, title in zip(axes, ["Gaussian mean", "Bernoulli mean"]):
        ax.set_xscale("log")
        ax.set_xlabel("training-set size n")
        ax.set_title(title)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.errorbar([], [], yerr=[], fmt="o", color="grey", ms=4, label="simulated (95% interval)")
        ax.legend(fontsize=8, loc="upper right")
    axes[0].set_ylabel("accuracy of the optimal attack")
    fig.suptitle(f"Simulated games (points, 95% intervals, {n_games} games each) against (1 + Delta_n)/2 (lines)")
    return fig


def plot_unquantized_rate(rates):
    """Left: 1 - MIS_n of the unquantized Gaussian and Bernoulli means with their asymptotes (slope -1/2);
    right: sqrt(n) (1 - MIS_n) of the d-dimensional mean against its limit and sqrt(d / (2 pi))."""
    fig, axes = _subplots(1, 2, figsize=(12.5, 4.5))
    ax = axes[0]
    for configuration, marker, colour, asymptote in [("Gaussian mean", "o", "C0", "1/(pi sqrt n)"),
                                                     ("Bernoulli mean p=0.3", "s", "C1", "sqrt(2p(1-p)/(pi n))")]:
        rows = regime(rates, "unquantized", configuration)
        fitted = rows["fitted_rate"].iloc[0]
        ax.plot(rows["sample_size"], np.exp(rows["log_delta"]), marker, ms=4, color=colour, alpha=0.8,
                label=f"{configuration}: exact (fitted slope -{fitted:.4f})")
        ax.plot(rows["sample_size"], np.exp(rows["refined_log_delta"]), "-", lw=1, color=colour, label=asymptote)
    ax.set(xscale="log", yscale="log", xlabel="training-set size n", ylabel="1 - MIS_n",
           title="No quantization: slope -1/2")
    ax.legend(fontsize=8)
    ax = axes[1]
    for configuration, colour in [("dimension 1", "C0"), ("dimension 8", "C1"), ("dimension 64", "C2")]:
        rows = regime(rates, "unquantized_dimension", configuration)
        rows = rows[rows["sample_size"] > 1]
        ax.plot(rows["sample_size"], np.exp(rows["log_delta"]) * np.sqrt(rows["sample_size"]), "o-", ms=3,
                color=colour, label=f"d = {configuration.split()[-1]}: exact")
        ax.axhline(np.exp(rows["refined_log_delta"].iloc[-1]) * np.sqrt(rows["sample_size"].iloc[-1]),
                   color=colour, ls="--", lw=0.8)
        ax.axhline(math.sqrt(int(configuration.split()[-1]) / (2 * math.pi)), color=colour, ls=":", lw=0.8)
    ax.plot([], [], "k--", lw=0.8, label="limit E|sum_k U_k X_k| / 2")
    ax.plot([], [], "k:", lw=0.8, label="sqrt(d / (2 pi))")
    ax.set(xscale="log", yscale="log", xlabel="training-set size n", ylabel="sqrt(n) (1 - MIS_n)",
           title="In dimension d: Theta(sqrt(d / n))")
    ax.legend(fontsize=8, loc="center right")
    return fig


# -------------------------------------------------------------------------------------------- notebook 02

def crossing_bound_log(n, margin: float):
    """log of the bound 2 P(crossing) of a Gaussian mean (sigma 1, grid step 1) ``margin`` from a threshold."""
    n = np.asarray(n)
    return math.log(2) + np.logaddexp(mis.log_normal_tail(margin * np.sqrt(n)),
                                      mis.log_normal_tail((1 - margin) * np.sqrt(n)))


def plot_fixed_grid_gaussian(rates):
    """Left: log(1 - MIS_n) + n r against the refined prediction, the second-order term and the crossing bound;
    right: -log(1 - MIS_n) / (n r) and the local slope / r, for two margins."""
    fig, axes = _subplots(1, 2, figsize=(12.5, 4.5))
    for configuration, colour in [("Gaussian, margin 0.2 sigma", "C0"), ("Gaussian, margin 0.35 sigma", "C1")]:
        rows = regime(rates, "fixed_grid", configuration)
        n, r = rows["sample_size"].to_numpy(), rows["predicted_rate"].iloc[0]
        margin = float(configuration.split()[2])
        bound = crossing_bound_log(n, margin)
        second = mis.second_order_log_delta_gaussian(n, margin, 1.0)
        axes[0].plot(n, rows["log_delta"] + n * r, "o", ms=4, color=colour, label=f"exact, margin {margin} sigma")
        axes[0].plot(n, rows["refined_log_delta"] + n * r, "-", color=colour, lw=1, label="refined prediction")
        axes[0].plot(n, second + n * r, "-.", color=colour, lw=1, label="second order: -(1/2) log n + const")
        axes[0].plot(n, bound + n * r, ":", color=colour, lw=1.2, label="bound 2 P(crossing)")
        axes[1].plot(n, -rows["log_delta"] / (n * r), "o-", ms=3, color=colour,
                     label=f"-log(1 - MIS_n) / (n r), margin {margin}")
        axes[1].plot(n, rows["local_rate"] / r, "s", ms=3, color=colour, alpha=0.6,
                     label=f"local slope / r, margin {margin}")
    axes[0].set(xscale="log", xlabel="training-set size n", ylabel="log(1 - MIS_n) + n r",
                title="What remains after the first-order term -n r")
    axes[0].legend(fontsize=7, ncol=2, loc="lower left")
    axes[1].axhline(1, color="grey", lw=0.8)
    axes[1].set(xscale="log", yscale="log", xlabel="training-set size n",
                ylabel="ratio to r = delta^2 / (2 sigma^2)", title="The exponent converges slowly, the slope at once")
    axes[1].legend(fontsize=7)
    return fig


def plot_bernoulli_rate(rates):
    """The exact rate of two Bernoulli means on a fixed grid against the binary KL and the Gaussian rate of the
    same variance (which is wrong)."""
    fig, axes = _subplots(1, 2, figsize=(12.5, 4.5))
    for ax, configuration, lines in [
            (axes[0], "Bernoulli p=0.1", [("KL(0.25 || 0.1)", mis.bernoulli_rate(0.25, 0.1), "-"),
                                          ("Gaussian, same variance", mis.gaussian_rate(0.15, math.sqrt(0.09)), ":")]),
            (axes[1], "Bernoulli p=0.3", [("KL(0.5 || 0.3), upper threshold", mis.bernoulli_rate(0.5, 0.3), "-"),
                                          ("KL(0.1 || 0.3), lower threshold", mis.bernoulli_rate(0.1, 0.3), "-."),
                                          ("Gaussian, same variance (both)",
                                           mis.gaussian_rate(0.2, math.sqrt(0.21)), ":")])]:
        rows = regime(rates, "fixed_grid", configuration)
        n = rows["sample_size"].to_numpy()
        ax.plot(n, rows["local_rate"], "o", ms=4, label="exact: local slope -d log(1 - MIS_n)/dn")
        ax.plot(n, -rows["log_delta"] / n, "s", ms=3, alpha=0.6, label="exact: -log(1 - MIS_n) / n")
        for label, value, style in lines:
            ax.axhline(value, ls=style, color="black", lw=1, label=f"{label} = {value:.4f}")
        ax.set(xscale="log", ylim=(0.03, 0.22), xlabel="training-set size n", ylabel="rate per record",
               title=f"{configuration} ({rows['parameters'].iloc[0].split('(')[1].rstrip(')')})")
        ax.legend(fontsize=8, loc="upper right")
    return fig


def plot_on_threshold(rates):
    """Gaussian mean: theta* on a threshold and stochastic rounding leak like the unquantized mean; inside a
    cell the leak is exponential."""
    fig, ax = _subplots(figsize=(6.5, 4.2))
    for rows, label, style, extra in [
            (regime(rates, "unquantized", "Gaussian mean"), "no quantization", "o", dict(ms=8, mfc="none", mew=1.2)),
            (regime(rates, "on_threshold", "Gaussian, mu on a threshold"), "theta* on a threshold (step sigma)", "s",
             dict(ms=3.5)),
            (regime(rates, "stochastic_rounding", "Gaussian, stochastic rounding"),
             "stochastic rounding (step sigma)", "^", dict(ms=4))]:
        ax.plot(rows["sample_size"], np.exp(rows["log_delta"]), style, label=label, **extra)
    inside = regime(rates, "fixed_grid", "Gaussian, margin 0.2 sigma")
    ax.plot(inside["sample_size"], np.exp(inside["log_delta"]), "d-", ms=3,
            label="theta* inside a cell (margin 0.2 sigma)")
    n = regime(rates, "unquantized", "Gaussian mean")["sample_size"]
    ax.plot(n, 1 / (math.pi * np.sqrt(n)), "k--", lw=0.8, label="1 / (pi sqrt n)")
    ax.set(xscale="log", yscale="log", ylim=(1e-12, 1.5), xlabel="training-set size n", ylabel="1 - MIS_n",
           title="Gaussian mean: where theta* sits decides the rate")
    ax.legend(fontsize=8)
    return fig


def rounding_to_nearest_log_delta(sample_sizes, mu: float = 0.3) -> np.ndarray:
    """Exact log(1 - MIS_n) of the Gaussian mean (sigma 1) rounded to the nearest point of the grid of step 1."""
    return np.array([mis.exact_gaussian_mean(int(k), mu, 1.0, FixedGrid(1.0)).log_delta for k in sample_sizes])


def plot_stochastic_rounding(rates, crossover):
    """Left: stochastic rounding (Theta(1/n)) against rounding to nearest (exponential), with the crossover;
    right: the crossover against the margin (``crossover``: ``tables.crossover_table``)."""
    fig, axes = _subplots(1, 2, figsize=(12.5, 4.5))
    ax = axes[0]
    sr = regime(rates, "stochastic_rounding", "Gaussian, stochastic rounding")
    n = sr["sample_size"].to_numpy()
    det = rounding_to_nearest_log_delta(n)
    ax.plot(n, np.exp(sr["log_delta"]), "^", ms=4,
            label=f"stochastic rounding (fitted slope -{sr['fitted_rate'].iloc[0]:.3f})")
    ax.plot(n, np.exp(sr["refined_log_delta"]), "-", lw=1, label="sigma sqrt(2/pi) / (n h)")
    ax.plot(n, np.exp(det), "d-", ms=3, label="round to nearest, margin 0.2 sigma")
    ax.plot(n, 1 / (math.pi * np.sqrt(n)), "k--", lw=0.8, label="no quantization")
    n_star = int(crossover.set_index("margin").loc[0.2, "crossover_sample_size"])
    ax.axvline(n_star, color="grey", ls=":", lw=1)
    ax.annotate(f"crossover n = {n_star}", (n_star, 1e-6), rotation=90, fontsize=8, ha="right")
    ax.set(xscale="log", yscale="log", ylim=(1e-9, 1.5), xlabel="training-set size n", ylabel="1 - MIS_n",
           title="Grid step sigma, theta* 0.2 sigma from a threshold")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(crossover["margin"], crossover["crossover_sample_size"], "o-")
    ax.set(yscale="log", xlabel="margin delta / sigma (grid step sigma)",
           ylabel="n above which rounding to nearest wins", title="Crossover against the margin")
    return fig


# -------------------------------------------------------------------------------------------- notebook 03

def plot_size_adaptive_aligned(rates):
    """theta* 0.3 h_n above a threshold: -log(1 - MIS_n) against the exponent n r_Q^n, and their ratio."""
    fig, axes = _subplots(1, 2, figsize=(12.5, 4.5))
    for configuration, marker in [("Gaussian, alpha=0.25", "o"), ("Gaussian, alpha=0.1", "s"),
                                  ("Bernoulli p=0.3, alpha=0.25", "^")]:
        rows = regime(rates, "size_adaptive_aligned", configuration)
        line, = axes[0].plot(rows["exponent"], -rows["log_delta"], marker, ms=4, label=f"{configuration}: exact")
        axes[0].plot(rows["exponent"], -rows["refined_log_delta"], "-", lw=1, color=line.get_color(),
                     label="refined prediction" if marker == "^" else None)
        axes[1].plot(rows["sample_size"], -rows["log_delta"] / rows["exponent"], marker + "-", ms=3,
                     color=line.get_color(), label=configuration)
        axes[1].plot(rows["sample_size"], -rows["refined_log_delta"] / rows["exponent"], "--", lw=1, color="black",
                     label="refined prediction" if marker == "^" else None)
    grid = np.geomspace(0.1, rates.loc[rates["regime"] == "size_adaptive_aligned", "exponent"].max(), 50)
    axes[0].plot(grid, grid, "k--", lw=0.8, label="-log(1 - MIS_n) = n r_Q^n")
    axes[0].set(xscale="log", yscale="log", xlabel="exponent n r_Q^n", ylabel="-log(1 - MIS_n)",
                title="theta* 0.3 h_n above a threshold")
    axes[0].legend(fontsize=8)
    axes[1].axhline(1, color="grey", lw=0.8)
    axes[1].set(xscale="log", yscale="log", xlabel="training-set size n", ylabel="-log(1 - MIS_n) / (n r_Q^n)",
                title="Slow convergence of the exponent")
    axes[1].legend(fontsize=8)
    return fig


def unaligned_margin_fractions(rows) -> np.ndarray:
    """Margin over step, delta_n / h_n, of the unaligned size-adaptive rows (h_n = n^-1/4, sigma 1)."""
    from mislib.quantizers import SizeAdaptiveGrid

    steps = np.array([SizeAdaptiveGrid(1.0, 0.25).step_at(int(n)) for n in rows["sample_size"]])
    return np.sqrt(2 * rows["r_q"].to_numpy()) / steps


def plot_size_adaptive_unaligned(rates):
    """A fixed offset on the grid n^-1/4 Z: the margin wanders with n, and the leak follows the actual margin."""
    rows = regime(rates, "size_adaptive_unaligned")
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    axes[0].plot(rows["sample_size"], unaligned_margin_fractions(rows), "o", ms=2.5)
    axes[0].set(xscale="log", xlabel="training-set size n", ylabel="margin delta_n / step h_n",
                title="theta* = 0.3 on the grid n^-1/4 Z: the margin wanders")
    ok = rows["exponent"] > 0.05
    axes[1].plot(rows.loc[ok, "exponent"], -rows.loc[ok, "log_delta"], "o", ms=3, label="exact")
    axes[1].plot(rows.loc[ok, "exponent"], -rows.loc[ok, "refined_log_delta"], "x", ms=4, label="refined prediction")
    span = np.geomspace(rows.loc[ok, "exponent"].min(), rows["exponent"].max(), 20)
    axes[1].plot(span, span, "k--", lw=0.8, label="n r_Q^n")
    axes[1].set(xscale="log", yscale="log", xlabel="exponent n r_Q^n (actual margin)", ylabel="-log(1 - MIS_n)",
                title="Against the actual margin: on the prediction")
    axes[1].legend(fontsize=8)
    return fig


def plot_multidim(rates):
    """Three independent Gaussian coordinates (``MULTIDIM_EXAMPLE``): each alone against the bracket of the whole
    release, and the rates: the nearest face in standard units wins."""
    rows = regime(rates, "multidim_nearest_face")
    ex = MULTIDIM_EXAMPLE
    n = rows["sample_size"].to_numpy()
    fig, axes = _subplots(1, 2, figsize=(13, 4.5))
    per_coordinate = np.array([mis.gaussian_product_bounds(int(k), [-0.5 + m for m in ex["margins"]], ex["sigmas"],
                                                           FixedGrid(1.0)).parts["log_delta_coordinates"] for k in n])
    for k, (m, s) in enumerate(zip(ex["margins"], ex["sigmas"])):
        axes[0].plot(n, -per_coordinate[:, k], ".-", ms=3, lw=0.8, color=f"C{k}",
                     label=f"coordinate {k + 1} alone: margin {m}, sigma {s}")
        axes[1].axhline(mis.gaussian_rate(m, s), ls=":", lw=1.2, color=f"C{k}",
                        label=f"coordinate {k + 1}: delta^2 / (2 sigma^2) = {mis.gaussian_rate(m, s):.3g}")
    axes[0].fill_between(n, -rows["log_delta_lower"], -rows["log_delta_upper"], color="black", alpha=0.3,
                         label="whole release: bracket [max_k, sum_k]")
    axes[0].set(xscale="log", yscale="log", xlabel="training-set size n", ylabel="-log(1 - MIS_n)",
                title="Three independent coordinates")
    axes[0].legend(fontsize=8)
    axes[1].plot(n[1:], rows["local_rate"].to_numpy()[1:], "ko-", ms=3, label="whole release: local slope")
    axes[1].plot(n, -rows["log_delta"] / n, "s", color="grey", ms=3, label="whole release: -log(1 - MIS_n) / n")
    axes[1].set(xscale="log", yscale="log", xlabel="training-set size n", ylabel="rate per record",
                title="The nearest face in standard units wins")
    axes[1].legend(fontsize=8)
    return fig


def plot_learned_scale(rates):
    """A float scale leaks at n^-1/2 whatever the weights; a scale stored on a fixed grid is one more margin."""
    fig, ax = _subplots(figsize=(8, 4.8))
    for name, configuration, colour, style, width in [
            ("learned_scale_float", "float absmax scale", "C3", "-", 3),
            ("learned_scale_float", "float absmean scale", "C1", "--", 1.5),
            ("learned_scale_stored", "absmax scale stored on 2^-5 Z", "C0", "-", 1.5),
            ("learned_scale_public", "public (fixed) scale, weights only", "C2", "-", 1.5)]:
        rows = regime(rates, name, configuration)
        rows = rows[rows["sample_size"] >= 10]
        ax.fill_between(rows["sample_size"], rows["log_delta_lower"] / math.log(10),
                        rows["log_delta_upper"] / math.log(10), color=colour, alpha=0.3)
        ax.plot(rows["sample_size"], rows["log_delta"] / math.log(10), style, color=colour, lw=width,
                label=configuration)
    n = np.geomspace(10, regime(rates, "learned_scale_float")["sample_size"].max(), 50)
    ax.plot(n, -np.log10(math.pi * np.sqrt(n)), "k:", lw=1, label="1 / (pi sqrt n)")
    ax.set(xscale="log", ylim=(-30, 0.5), xlabel="training-set size n",
           ylabel="log10(1 - MIS_n)  (bands: exact bracket)",
           title="A float scale leaks at n^-1/2; on a fixed grid it is one more margin")
    ax.legend(fontsize=8, loc="lower left")
    return fig
