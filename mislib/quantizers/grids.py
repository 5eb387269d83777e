"""Quantizers on a public grid (nothing data-dependent is published): identity, a fixed grid ``offset + step * Z``,
the size-adaptive grid whose step shrinks with the training-set size, and unbiased stochastic rounding."""

from __future__ import annotations

import torch

from mislib.infra.checks import check_float, check_int, check_tensor
from mislib.quantizers.base import Quantizer


def round_to_grid(x: torch.Tensor, step, offset=0.0) -> torch.Tensor:
    """Nearest level of offset + step * Z (ties go to the even level, as torch.round does)."""
    return torch.round((x - offset) / step) * step + offset


def grid_margins(x: torch.Tensor, step, offset=0.0) -> torch.Tensor:
    """Distance from x to the nearest midpoint between levels of offset + step * Z."""
    fraction = (x - offset) / step
    return (0.5 - (fraction - torch.round(fraction)).abs()) * step


class Identity(Quantizer):
    """No quantization: the release is the float weights. No cells, so margins are zero."""

    name = "identity"

    def _quantize(self, w, generator):
        return w.clone()

    def _margins(self, w):
        return torch.zeros_like(w)

    def _cell_bounds(self, w):
        return w.clone(), w.clone()

    def bits_per_weight(self, w):
        check_tensor("w", w)
        return float(torch.finfo(w.dtype).bits)


class FixedGrid(Quantizer):
    """Round to nearest on the public grid ``offset + step * Z`` (nothing data-dependent is stored)."""

    name = "fixed_grid"

    def __init__(self, step: float, offset: float = 0.0):
        self.step = check_float("step", step, low=0.0, low_open=True)
        self.offset = check_float("offset", offset)

    def _quantize(self, w, generator):
        return round_to_grid(w, self.step, self.offset)

    def _margins(self, w):
        return grid_margins(w, self.step, self.offset)

    def _cell_bounds(self, w):
        centre = round_to_grid(w, self.step, self.offset)
        return centre - self.step / 2, centre + self.step / 2

    def thresholds_around(self, x: float) -> tuple[float, float]:
        """The two decision thresholds bounding the cell that contains ``x``."""
        centre = float(round_to_grid(torch.tensor(float(x), dtype=torch.float64), self.step, self.offset))
        return centre - self.step / 2, centre + self.step / 2


class SizeAdaptiveGrid(Quantizer):
    """Grid whose step shrinks with the training-set size: ``h_n = h0 * n**(-alpha)``, ``0 < alpha < 1/2``.

    ``.at(n)`` gives the FixedGrid used at sample size ``n``. Calling the object itself needs ``n`` to be set
    (``SizeAdaptiveGrid(h0, alpha, n=1000)``).
    """

    name = "size_adaptive"

    def __init__(self, h0: float, alpha: float, offset: float = 0.0, n: int | None = None):
        self.h0 = check_float("h0", h0, low=0.0, low_open=True)
        self.alpha = check_float("alpha", alpha, low=0.0, high=0.5, low_open=True, high_open=True)
        self.offset = check_float("offset", offset)
        self.n = None if n is None else check_int("n", n, minimum=1)

    def step_at(self, n: int) -> float:
        """The grid step ``h0 * n**(-alpha)`` at sample size ``n``."""
        return self.h0 * check_int("n", n, minimum=1) ** (-self.alpha)

    def at(self, n: int) -> FixedGrid:
        """The fixed grid used at sample size ``n``."""
        return FixedGrid(self.step_at(n), self.offset)

    def _grid(self) -> FixedGrid:
        if self.n is None:
            raise ValueError("SizeAdaptiveGrid needs the sample size: pass n=... or use .at(n)")
        return self.at(self.n)

    def _quantize(self, w, generator):
        return self._grid()._quantize(w, generator)

    def _margins(self, w):
        return self._grid()._margins(w)

    def _cell_bounds(self, w):
        return self._grid()._cell_bounds(w)


class StochasticRounding(Quantizer):
    """Round down or up to ``offset + step * Z`` at random, with P(up) = the fractional position in the cell.

    Unbiased (E q(w) = w). There are no deterministic cells: the law of the release moves smoothly with w,
    so margins are zero. Seed it with ``generator`` for reproducible draws.
    """

    name = "stochastic_rounding"
    deterministic = False

    def __init__(self, step: float, offset: float = 0.0):
        self.step = check_float("step", step, low=0.0, low_open=True)
        self.offset = check_float("offset", offset)

    def probability_up(self, w: torch.Tensor) -> torch.Tensor:
        """P(round up) per coordinate: the fractional position of ``w`` in its cell."""
        position = (w - self.offset) / self.step
        return position - torch.floor(position)

    def _quantize(self, w, generator):
        position = (w - self.offset) / self.step
        lower = torch.floor(position)
        uniform = torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype)
        return (lower + (uniform < position - lower).to(w.dtype)) * self.step + self.offset

    def _margins(self, w):
        return torch.zeros_like(w)
