"""Shared pieces of the exact MIS computations: result types, log-space helpers, argument checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from mislib.quantizers import FixedGrid, Identity, SizeAdaptiveGrid, StochasticRounding


LOG_HALF = math.log(0.5)
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# Relative mass neglected when a cell's integral is restricted to its window: exp(-TAIL_LOG) (about 1e-26).
TAIL_LOG = 60.0
# Half-width, in standard deviations of u given x (at most 1), of the window around the cell's x-range.
U_WINDOW = 12.0
MAX_CELLS = 200_000
GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
LOG_GL_WEIGHTS = np.log(_GL_WEIGHTS / 2.0)


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExactMIS:
    """Exact ``Delta_n = 1 - MIS_n`` of one release. ``log_delta`` (natural log) is finite even when ``delta``
    underflows to 0."""

    n: int
    log_delta: float
    description: str
    model: str = ""
    quantizer: str = ""

    @property
    def delta(self) -> float:
        return math.exp(self.log_delta)

    @property
    def mis(self) -> float:
        return -math.expm1(self.log_delta)

    @property
    def log10_delta(self) -> float:
        return self.log_delta / math.log(10.0)

    @property
    def bayes_accuracy(self) -> float:
        """Accuracy of the optimal attack in the balanced game: (1 + Delta_n) / 2."""
        return 0.5 + 0.5 * self.delta


@dataclass(frozen=True)
class DeltaBounds:
    """``log_lower <= log Delta_n <= log_upper`` (natural logs), with the pieces that made them."""

    n: int
    log_lower: float
    log_upper: float
    description: str
    parts: dict = field(default_factory=dict)

    @property
    def log_delta(self) -> float:
        """Geometric middle of the bracket (the bracket is at most a factor d wide)."""
        if not math.isfinite(self.log_lower):
            return self.log_upper
        return 0.5 * (self.log_lower + self.log_upper)


# ----------------------------------------------------------------------------------------------------------
# Log-space helpers
# ----------------------------------------------------------------------------------------------------------

def log1mexp(x):
    """``log(1 - exp(x))`` for ``x <= 0``, accurate at both ends (``x = 0`` gives ``-inf``)."""
    x = np.minimum(np.asarray(x, dtype=float), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def log_interval_prob(a, b):
    """``log P(a <= N(0, 1) <= b)`` computed from the tail on the correct side (``a <= b``, may be infinite)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    out = np.empty(a.shape)
    right, left = a >= 0, b <= 0
    mid = ~(right | left)
    with np.errstate(divide="ignore", invalid="ignore"):
        upper_a, upper_b = special.log_ndtr(-a[right]), special.log_ndtr(-b[right])
        out[right] = upper_a + log1mexp(upper_b - upper_a)
        lower_b, lower_a = special.log_ndtr(b[left]), special.log_ndtr(a[left])
        out[left] = lower_b + log1mexp(lower_a - lower_b)
        out[mid] = log1mexp(np.logaddexp(special.log_ndtr(a[mid]), special.log_ndtr(-b[mid])))
    return out


def log_outside_prob(a, b):
    """``log P(N(0, 1) outside [a, b])``, the small complement of a bulk cell."""
    return np.logaddexp(special.log_ndtr(np.asarray(a, float)), special.log_ndtr(-np.asarray(b, float)))


def _psi(d):
    """``E (Y + d)_+`` for ``Y ~ N(0, 1)``, i.e. ``d Phi(d) + phi(d)``; the left tail through the Mills ratio
    (``phi(d) (1 - |d| Phi(d) / phi(d))``) so that it does not cancel."""
    d = np.asarray(d, dtype=float)
    out = np.empty(d.shape)
    pos = d >= 0
    out[pos] = d[pos] * special.ndtr(d[pos]) + np.exp(log_normal_pdf(d[pos]))
    t = -d[~pos]
    mills = math.sqrt(math.pi / 2) * special.erfcx(t / math.sqrt(2))  # Phi(-t) / phi(t)
    out[~pos] = np.exp(log_normal_pdf(t)) * np.maximum(1.0 - t * mills, 0.0)
    return out


def tent_expectation(m, s, level, half_width):
    """``E tent((X - level) / half_width)`` for ``X ~ N(m, s^2)``, ``tent(y) = (1 - |y|)_+``: the probability
    that stochastic rounding outputs ``level`` (levels ``half_width`` apart). ``s = 0`` gives the tent itself."""
    m, level = np.broadcast_arrays(np.asarray(m, float), np.asarray(level, float))
    y = m - level
    if s == 0:
        return np.maximum(1.0 - np.abs(y) / half_width, 0.0)
    k = half_width / s
    d = y / s
    value = (s / half_width) * (_psi(d + k) - 2.0 * _psi(d) + _psi(d - k))
    return np.clip(value, 0.0, 1.0)


def log_normal_pdf(u):
    return -0.5 * np.square(u) - LOG_SQRT_2PI


# ----------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------

def check_quantizer(quantizer):
    supported = (Identity, FixedGrid, SizeAdaptiveGrid, StochasticRounding)
    if quantizer is None or isinstance(quantizer, supported):
        return quantizer
    raise TypeError(
        f"quantizer must be None, Identity, FixedGrid, SizeAdaptiveGrid or StochasticRounding for the exact 1-d "
        f"computation, got {type(quantizer).__name__}")


def grid_at(quantizer, n):
    """The deterministic grid used at sample size n (FixedGrid), None for no quantization, or the SR object."""
    if quantizer is None or isinstance(quantizer, Identity):
        return None
    if isinstance(quantizer, SizeAdaptiveGrid):
        return quantizer.at(n)
    return quantizer


def describe_quantizer(quantizer, n: int | None = None) -> str:
    if quantizer is None or isinstance(quantizer, Identity):
        return "no quantization"
    if isinstance(quantizer, SizeAdaptiveGrid):
        text = f"size-adaptive grid h0={quantizer.h0:g}, alpha={quantizer.alpha:g}, offset={quantizer.offset:g}"
        return text + (f" (step {quantizer.step_at(n):.4g} at n={n})" if n is not None else "")
    if isinstance(quantizer, StochasticRounding):
        return f"stochastic rounding step={quantizer.step:g}, offset={quantizer.offset:g}"
    return f"fixed grid step={quantizer.step:g}, offset={quantizer.offset:g}"
