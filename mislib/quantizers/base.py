"""What every quantizer is: the ``Quantizer`` interface (release, cells, margins, storage, scale channel), the
data-dependent quantizer whose grid is computed from the weights, its frozen grid, and the helpers the families
share (working precision, per-channel rows, zero scale statistics)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mislib.infra.checks import check_tensor


@dataclass(frozen=True)
class Stored:
    """One thing published beside the quantized weights."""

    name: str          # "scale", "zero_point", "codebook", "mask", ...
    count: int         # how many values
    format: str        # "float32", "bfloat16", "int8", "public (not data-dependent)", ...
    data_dependent: bool


class Quantizer:
    """Base class. Subclasses implement ``_quantize`` and ``_cell_bounds`` (or ``_margins``) on validated tensors.

    Class attributes: ``name`` (the registry name), ``deterministic``, ``scale_channel`` (``"none"``,
    ``"continuous"`` or ``"stored-on-grid"``: how a data-dependent scale reaches the release, THEORY.md §2).
    """

    name = "quantizer"
    deterministic = True
    scale_channel = "none"

    def __call__(self, w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The release: a tensor of ``w``'s shape, dtype and device."""
        w = check_tensor("w", w)
        return self._quantize(w, generator)

    def margins(self, w: torch.Tensor) -> torch.Tensor:
        """Per coordinate, the distance from ``w`` to the nearest decision threshold (grid held at ``w``)."""
        w = check_tensor("w", w)
        return self._margins(w)

    def cell_bounds(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per coordinate, the interval ``[low, high]`` of values giving the same release (grid held at ``w``)."""
        w = check_tensor("w", w)
        return self._cell_bounds(w)

    def bits_per_weight(self, w: torch.Tensor) -> float:
        """Bits to index the grid levels that ``w`` uses (storage beside the weights is in ``storage``)."""
        levels = torch.unique(self(check_tensor("w", w), generator=fixed_generator(w))).numel()
        return float(max(1.0, math.log2(levels))) if levels > 1 else 1.0

    def sparsity(self, w: torch.Tensor) -> float:
        """The achieved fraction of exact zeros in the release of ``w``."""
        q = self(check_tensor("w", w), generator=fixed_generator(w))
        return float((q == 0).float().mean())

    def storage(self, w: torch.Tensor) -> list[Stored]:
        """What is published beside the weights (scale, zero point, codebook) and in which format."""
        check_tensor("w", w)
        return []

    def scale_margins(self, w: torch.Tensor) -> torch.Tensor | None:
        """Margins of the stored scale(s) on their storage grid; None when there is no such grid."""
        return None

    def freeze(self, w: torch.Tensor) -> "Quantizer":
        """This quantizer with its grid held as computed at ``w``. The grid here does not depend on the weights,
        so the quantizer itself is returned; data-dependent quantizers override this."""
        check_tensor("w", w)
        return self

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


class DataDependentQuantizer(Quantizer):
    """A quantizer whose grid is computed from the weights: ``grid(w)``, then ``_apply(w, grid)``.

    Subclasses implement ``_grid``, ``_apply`` and ``_bounds``; ``freeze(w)`` holds the grid fixed."""

    def grid(self, w: torch.Tensor):
        """The grid as computed at ``w`` (scale, zero point, threshold or codebook)."""
        return self._grid(check_tensor("w", w))

    def freeze(self, w: torch.Tensor) -> "FrozenGrid":
        return FrozenGrid(self, self.grid(w))

    def _quantize(self, w, generator):
        return self._apply(w, self._grid(w))

    def _cell_bounds(self, w):
        return self._bounds(w, self._grid(w))

    def _grid(self, w):
        raise NotImplementedError

    def _apply(self, w, grid):
        raise NotImplementedError

    def _bounds(self, w, grid):
        raise NotImplementedError


class FrozenGrid(Quantizer):
    """A data-dependent quantizer with its grid held fixed (as computed at the weights given to ``freeze``).

    It is what the cells and margins of the data-dependent quantizer refer to, and what a grid fixed from public
    data would release: nothing in it depends on the weights it is applied to."""

    scale_channel = "none"

    def __init__(self, quantizer: DataDependentQuantizer, grid):
        self._quantizer = quantizer
        self._grid_state = grid

    @property
    def name(self) -> str:
        return f"{self._quantizer.name} (frozen grid)"

    def _quantize(self, w, generator):
        return self._quantizer._apply(w, self._grid_state)

    def _cell_bounds(self, w):
        return self._quantizer._bounds(w, self._grid_state)

    def bits_per_weight(self, w):
        return self._quantizer.bits_per_weight(w)

    def storage(self, w):
        return [Stored(s.name, s.count, "public (frozen grid)", False) for s in self._quantizer.storage(w)]

    def __repr__(self) -> str:
        return f"FrozenGrid({self._quantizer!r})"


def fixed_generator(w: torch.Tensor) -> torch.Generator:
    """A seeded generator on w's device, so that reports on randomised quantizers are reproducible."""
    return torch.Generator(device=w.device).manual_seed(0)


def work_dtype(w: torch.Tensor) -> torch.dtype:
    """Arithmetic precision: float64 weights stay float64; half-precision weights are computed in float32."""
    return torch.float64 if w.dtype == torch.float64 else torch.float32


def channel_rows(w: torch.Tensor, per_channel: bool, channel_dim: int):
    """View ``w`` as (groups, members): one row per channel (``channel_dim`` moved first) or a single row.
    Returns the 2-d view and the function that puts a tensor of that 2-d shape back into ``w``'s shape."""
    if not per_channel:
        return w.reshape(1, -1), lambda t: t.reshape(w.shape)
    if w.dim() == 0 or not -w.dim() <= channel_dim < w.dim():
        raise ValueError(f"channel_dim={channel_dim} is out of range for w with {w.dim()} dimension(s) "
                         f"(shape {tuple(w.shape)})")
    moved = w.movedim(channel_dim, 0)
    shape = moved.shape
    return moved.reshape(shape[0], -1), lambda t: t.reshape(shape).movedim(0, channel_dim)


def positive_or_one(statistic: torch.Tensor) -> torch.Tensor:
    """A zero scale statistic (all-zero weights) becomes 1.0: every scale then gives the same output."""
    return torch.where(statistic > 0, statistic, torch.ones_like(statistic))


def where_interval(w, condition, low_true, high_true, low_false, high_false):
    """Cell bounds ``[low, high]`` chosen per coordinate by ``condition``, in ``w``'s dtype."""
    low = torch.where(condition, low_true, low_false)
    high = torch.where(condition, high_true, high_false)
    return low.to(w.dtype), high.to(w.dtype)


class ChannelQuantizer(DataDependentQuantizer):
    """A data-dependent ``bits``-bit quantizer with one grid per tensor, or per channel (``per_channel=True``: one
    grid per slice along ``channel_dim``). Subclasses set ``bits``, ``per_channel`` and ``channel_dim``."""

    bits: int
    per_channel: bool
    channel_dim: int

    def channel_count(self, w: torch.Tensor) -> int:
        """How many grids ``w`` gets: its size along ``channel_dim`` per channel, else 1."""
        return channel_rows(check_tensor("w", w), self.per_channel, self.channel_dim)[0].shape[0]

    def bits_per_weight(self, w):
        check_tensor("w", w)
        return float(self.bits)
