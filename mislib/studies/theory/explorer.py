"""An interactive explorer of the exact ``1 - MIS_n`` (notebooks 01-03): sliders move the sample size n, the cell
width, where the optimum sits in its cell and the quantizer, and the figure (the exact leak against n, and its
rate) is redrawn from ``mis.exact_gaussian_mean`` / ``mis.exact_bernoulli_mean``.

``plot_mis_explorer`` draws one state as a plain matplotlib figure (the static fallback for a code host or a
PDF); ``explore_mis`` shows the default state that way and returns the ipywidgets controls with a live figure
(an ``ipywidgets.Image`` redrawn by observers on the controls).
"""

from __future__ import annotations

import math

import numpy as np

from mislib import mis
from mislib.infra.checks import check_choice, check_float, check_int
from mislib.quantizers import FixedGrid, SizeAdaptiveGrid, StochasticRounding

MODELS = {"Gaussian mean (sigma 1, theta* = 0)": ("gaussian", 0.0),
          "Bernoulli mean (p = 0.3)": ("bernoulli", 0.3)}
QUANTIZERS = ("fixed grid", "stochastic rounding", "size-adaptive grid (alpha 0.25)", "no quantization")
SIZE_ADAPTIVE_ALPHA = 0.25


def _record_sd(model: str, theta: float) -> float:
    return 1.0 if model == "gaussian" else math.sqrt(theta * (1 - theta))


def explorer_release(quantizer: str, n: int, width: float, position: float, model: str = "gaussian",
                     theta: float = 0.0):
    """The quantizer of the explorer at sample size ``n``: cells ``width`` record standard deviations wide,
    the optimum ``theta`` at ``position`` (0 and 1: on a threshold, 1/2: on a level) of its cell. The
    size-adaptive grid has width ``width n^-1/4`` at n, the optimum at the same position of its cell."""
    step = width * _record_sd(model, theta)
    if quantizer == "no quantization":
        return None
    if quantizer == "size-adaptive grid (alpha 0.25)":
        step = SizeAdaptiveGrid(step, SIZE_ADAPTIVE_ALPHA).step_at(n)
    offset = theta - position * step - step / 2      # thresholds at offset + (k + 1/2) step
    if quantizer == "stochastic rounding":
        return StochasticRounding(step, offset)
    return FixedGrid(step, offset)


def exact_log_delta(n: int, quantizer: str, width: float, position: float, model: str = "gaussian",
                    theta: float = 0.0) -> float:
    """Exact log(1 - MIS_n) of the explorer's release (``explorer_release``)."""
    release = explorer_release(quantizer, n, width, position, model, theta)
    if model == "gaussian":
        return mis.exact_gaussian_mean(int(n), theta, 1.0, release).log_delta
    return mis.exact_bernoulli_mean(int(n), theta, release).log_delta


def predicted_rate(quantizer: str, width: float, position: float, model: str = "gaussian", theta: float = 0.0):
    """(kind, value): the first-order prediction of THEORY.md. A fixed grid: exponential, with the rate of the
    nearer threshold (delta^2 / (2 sigma^2), or the binary KL for a Bernoulli mean); no quantization or the
    optimum on a threshold: power 1/2; stochastic rounding: power 1; a size-adaptive grid: exponent n r_Q^n,
    no fixed rate (None)."""
    on_threshold = position in (0.0, 1.0)
    if quantizer == "no quantization" or (on_threshold and quantizer != "stochastic rounding"):
        return "power", 0.5
    if quantizer == "stochastic rounding":
        return "power", 1.0
    if quantizer != "fixed grid":
        return "exponent", None
    step = width * _record_sd(model, theta)
    low, high = theta - position * step, theta + (1 - position) * step
    if model == "gaussian":
        return "exponential", float(mis.gaussian_rate(min(theta - low, high - theta), 1.0))
    return "exponential", min(mis.bernoulli_rate(t, theta) for t in (low, high) if 0 < t < 1)


def _check(n, width, position, quantizer, model_label, n_max):
    n_max = check_int("n_max", n_max, minimum=2)
    check_int("n", n, minimum=1)
    if n > n_max:
        raise ValueError(f"n must be <= n_max={n_max}, got {n}")
    check_float("width", width, low=0.0, low_open=True)
    check_float("position", position, low=0.0, high=1.0)
    check_choice("quantizer", quantizer, QUANTIZERS)
    check_choice("model", model_label, tuple(MODELS))
    return MODELS[model_label]


def plot_mis_explorer(n: int = 100, width: float = 1.0, position: float = 0.3, quantizer: str = "fixed grid",
                      model: str = "Gaussian mean (sigma 1, theta* = 0)", n_max: int = 2000):
    """One state of the explorer as a figure: left, log10(1 - MIS_n) against n (the release, and the unquantized
    mean dashed), the chosen n marked; right, the rate: -d log(1 - MIS_n)/dn for a fixed grid (exponential),
    else the slope -d log(1 - MIS_n)/d log n, with the first-order prediction (``predicted_rate``)."""
    import matplotlib.pyplot as plt

    kind, theta = _check(n, width, position, quantizer, model, n_max)
    sizes = np.unique(np.concatenate([np.round(np.geomspace(1, n_max, 40)).astype(int), [n]]))
    log_delta = np.array([exact_log_delta(k, quantizer, width, position, kind, theta) for k in sizes])
    free = np.array([exact_log_delta(k, "no quantization", width, position, kind, theta) for k in sizes])
    rate_kind, rate = predicted_rate(quantizer, width, position, kind, theta)
    exponential = rate_kind == "exponential"
    local = -np.diff(log_delta) / np.diff(sizes if exponential else np.log(sizes))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    axes[0].plot(sizes, log_delta / math.log(10), "-", lw=1.5, label=f"{quantizer} (exact)")
    axes[0].plot(sizes, free / math.log(10), "k--", lw=0.8, label="no quantization (exact)")
    at = float(log_delta[sizes == n][0])
    axes[0].plot([n], [at / math.log(10)], "o", color="C3", ms=7, label=f"n = {n}")
    axes[0].set(xscale="log", xlabel="training-set size n", ylabel="log10(1 - MIS_n)",
                title=f"1 - MIS_n = {math.exp(at):.3g} at n = {n}")
    axes[0].legend(fontsize=8, loc="lower left")
    axes[1].plot(np.sqrt(sizes[1:] * sizes[:-1]), local, "o-", ms=3, label="exact, between neighbouring n")
    if rate is not None:
        axes[1].axhline(rate, color="black", lw=1, ls=":", label=f"predicted {rate:.4g}")
    axes[1].axvline(n, color="C3", lw=0.8)
    axes[1].set(xscale="log", xlabel="training-set size n",
                ylabel="-d log(1 - MIS_n) / dn" if exponential else "-d log(1 - MIS_n) / d log n",
                title=f"{'Exponential' if exponential else 'Power'} rate")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{model}, {quantizer}: cells {width:g} sd wide, the optimum at {position:g} of its cell")
    fig.tight_layout()
    return fig


def _png(figure) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def explore_mis(n: int = 100, width: float = 1.0, position: float = 0.3, quantizer: str = "fixed grid",
                model: str = "Gaussian mean (sigma 1, theta* = 0)", n_max: int = 2000, static: bool = True):
    """Sliders for n, the cell width (in record standard deviations) and the optimum's position in its cell,
    menus for the quantizer and the model, and the figure of ``plot_mis_explorer`` redrawn on every change.
    With ``static`` the starting state is first shown as a plain figure, which a reader without a live kernel
    (a code host, a PDF) still sees. Returns the widget (a ``VBox``: two rows of controls, then the figure as an
    ``ipywidgets.Image``).

    Why an Image and not ``interactive_output``: its Output widget makes papermill / nbclient hang now and then
    when the notebook runs without a browser (nbclient issue 312, papermill issue 723); an Image whose bytes
    are replaced by an observer redraws the same way in JupyterLab and never blocks a batch run."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    _check(n, width, position, quantizer, model, n_max)
    if static:
        fig = plot_mis_explorer(n, width, position, quantizer, model, n_max)
        display(fig)
        plt.close(fig)
    style = {"description_width": "initial"}
    controls = {
        "n": widgets.IntSlider(value=n, min=1, max=n_max, description="n", continuous_update=False, style=style),
        "width": widgets.FloatSlider(value=width, min=0.1, max=3.0, step=0.05, description="cell width / sd",
                                     continuous_update=False, style=style),
        "position": widgets.FloatSlider(value=position, min=0.0, max=1.0, step=0.01,
                                        description="optimum's position in its cell", continuous_update=False,
                                        style=style),
        "quantizer": widgets.Dropdown(options=QUANTIZERS, value=quantizer, description="quantizer"),
        "model": widgets.Dropdown(options=tuple(MODELS), value=model, description="model"),
    }
    image = widgets.Image(format="png", value=_png(plot_mis_explorer(n, width, position, quantizer, model, n_max)))

    def redraw(change=None):
        state = {name: control.value for name, control in controls.items()}
        image.value = _png(plot_mis_explorer(n_max=n_max, **state))

    for control in controls.values():
        control.observe(redraw, names="value")
    names = list(controls)
    return widgets.VBox([widgets.HBox([controls[k] for k in names[:3]]),
                         widgets.HBox([controls[k] for k in names[3:]]), image])
