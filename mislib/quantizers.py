"""Weight quantizers: weight in, weight out, pure PyTorch, any shape, CPU or CUDA.

Every quantizer ``q`` is a small object with explicit parameters:

- ``q(w)`` returns a tensor of the same shape, dtype and device (the de-quantized release);
- ``q.cell_bounds(w)``: per coordinate, the interval ``[low, high]`` of values that (the other coordinates and
  the grid held as computed at ``w``) give the same output: the cell of a deterministic quantizer;
- ``q.margins(w)``: per coordinate, the distance from ``w`` to the nearest decision threshold, with the grid as
  ``q`` computes it at ``w`` (zero everywhere for quantizers without cells: identity, stochastic rounding);
- ``q.bits_per_weight(w)``, ``q.sparsity(w)`` (achieved fraction of zeros in ``q(w)``) and ``q.storage(w)``
  (what is published beside the weights: scale, zero point, codebook, and in which format);
- ``q.scale_channel``: how the grid's scale reaches the release (THEORY.md §2, last row):
  ``"none"`` (no data-dependent scale), ``"continuous"`` (a float scale computed from the weights is released:
  leaks at n^-1/2 whatever the weights do) or ``"stored-on-grid"`` (the scale is itself rounded to a fixed grid
  and so has a margin of its own, see ``scale_margins``).

``get(name, **params)`` builds one by name; ``available()`` lists the names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import check_float, check_int, check_tensor


@dataclass(frozen=True)
class Stored:
    """One thing published beside the quantized weights."""

    name: str          # "scale", "zero_point", "codebook", "mask", ...
    count: int         # how many values
    format: str        # "float32", "bfloat16", "int8", "public (not data-dependent)", ...
    data_dependent: bool


class Quantizer:
    """Base class. Subclasses implement ``_quantize`` and ``_margins`` on validated tensors."""

    name = "quantizer"
    deterministic = True
    scale_channel = "none"

    def __call__(self, w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        w = check_tensor("w", w)
        return self._quantize(w, generator)

    def margins(self, w: torch.Tensor) -> torch.Tensor:
        w = check_tensor("w", w)
        return self._margins(w)

    def cell_bounds(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = check_tensor("w", w)
        return self._cell_bounds(w)

    def bits_per_weight(self, w: torch.Tensor) -> float:
        """Bits to index the grid levels that ``w`` uses (storage beside the weights is in ``storage``)."""
        levels = torch.unique(self(check_tensor("w", w), generator=_fixed_generator(w))).numel()
        return float(max(1.0, math.log2(levels))) if levels > 1 else 1.0

    def sparsity(self, w: torch.Tensor) -> float:
        q = self(check_tensor("w", w), generator=_fixed_generator(w))
        return float((q == 0).float().mean())

    def storage(self, w: torch.Tensor) -> list[Stored]:
        return []

    def scale_margins(self, w: torch.Tensor) -> torch.Tensor | None:
        """Margins of the stored scale(s) on their storage grid; None when there is no such grid."""
        return None

    def describe(self, w: torch.Tensor) -> dict:
        """One row for a report: bits per weight, sparsity, what is stored, the scale channel."""
        return {
            "quantizer": self.name,
            "bits_per_weight": self.bits_per_weight(w),
            "sparsity": self.sparsity(w),
            "stored": ", ".join(f"{s.name} x{s.count} ({s.format})" for s in self.storage(w)) or "nothing",
            "scale_channel": self.scale_channel,
            "deterministic": self.deterministic,
        }

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"

    def _quantize(self, w, generator):
        raise NotImplementedError

    def _cell_bounds(self, w):
        raise NotImplementedError(f"{self.name} has no deterministic cells")

    def _margins(self, w):
        low, high = self._cell_bounds(w)
        return torch.minimum(w - low, high - w).clamp_min(0)


def _fixed_generator(w: torch.Tensor) -> torch.Generator:
    """A seeded generator on w's device, so that reports on randomised quantizers are reproducible."""
    return torch.Generator(device=w.device).manual_seed(0)


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
        return self.h0 * check_int("n", n, minimum=1) ** (-self.alpha)

    def at(self, n: int) -> FixedGrid:
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
        position = (w - self.offset) / self.step
        return position - torch.floor(position)

    def _quantize(self, w, generator):
        position = (w - self.offset) / self.step
        lower = torch.floor(position)
        uniform = torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype)
        return (lower + (uniform < position - lower).to(w.dtype)) * self.step + self.offset

    def _margins(self, w):
        return torch.zeros_like(w)


_REGISTRY: dict[str, type[Quantizer]] = {}


def register(cls: type[Quantizer]) -> type[Quantizer]:
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (Identity, FixedGrid, SizeAdaptiveGrid, StochasticRounding):
    register(_cls)


def available() -> list[str]:
    """Names accepted by ``get``."""
    return sorted(_REGISTRY)


def get(name: str, **params) -> Quantizer:
    """Build a quantizer by name, e.g. ``get("uniform", bits=4, per_channel=True)``."""
    if not isinstance(name, str):
        raise TypeError(f"quantizer name must be a string, got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown quantizer {name!r}; available: {', '.join(available())}")
    try:
        return _REGISTRY[name](**params)
    except TypeError as exc:
        raise TypeError(f"bad parameters for quantizer {name!r}: {exc}") from exc
