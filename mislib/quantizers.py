"""Weight quantizers: weight in, weight out, pure PyTorch, any shape, CPU or CUDA.

Every quantizer ``q`` is a small object with explicit parameters:

- ``q(w)`` returns a tensor of the same shape, dtype and device (the de-quantized release);
- ``q.cell_bounds(w)``: per coordinate, the interval ``[low, high]`` of values that (the other coordinates and
  the grid held as computed at ``w``) give the same output: the cell of a deterministic quantizer. Outermost
  cells of a clipping grid extend to ``-inf`` / ``+inf``; a value released exactly (identity, the weights kept by
  magnitude pruning) has the point cell ``[w, w]``;
- ``q.margins(w)``: per coordinate, the distance from ``w`` to the nearest decision threshold, with the grid as
  ``q`` computes it at ``w`` (zero everywhere for quantizers without cells: identity, stochastic rounding);
- ``q.freeze(w)``: the same quantizer with its grid held as computed at ``w`` (a quantizer whose grid does not
  depend on the weights returns itself). ``q.freeze(w)(w) == q(w)``, and ``q.freeze(w)`` is constant on each cell
  of ``q.cell_bounds(w)``;
- ``q.bits_per_weight(w)``, ``q.sparsity(w)`` (achieved fraction of zeros in ``q(w)``) and ``q.storage(w)``
  (what is published beside the weights: scale, zero point, codebook, and in which format);
- ``q.scale_channel``: how the grid's scale reaches the release (THEORY.md §2, last row):
  ``"none"`` (no data-dependent scale), ``"continuous"`` (a float scale computed from the weights is released:
  leaks at n^-1/2 whatever the weights do) or ``"stored-on-grid"`` (the scale is itself rounded to a fixed grid
  and so has a margin of its own, see ``scale_margins``).

The family (``available()``):

==========================  =====================================================================================
``identity``                no quantization
``fixed_grid``              round to nearest on a public grid ``offset + step * Z``
``size_adaptive``           public grid with step ``h0 * n**-alpha``
``stochastic_rounding``     unbiased random rounding on a public grid
``uniform``                 ``b``-bit round to nearest, symmetric absmax or affine with a zero point, per tensor or
                            per channel, scale stored as float32 / bfloat16 / float16 / power of two, or public
``sign``                    1 bit: ``sign(w) * mean|w|``
``ternary_absmean``         BitNet b1.58: ``gamma * clip(round(w / gamma), -1, 1)``, ``gamma = mean|w|``
``ternary_sparsity``        zero below the ``s``-quantile of ``|w|``, ``+-`` (mean kept ``|w|``) elsewhere
``magnitude_pruning``       zero below the ``s``-quantile of ``|w|``, the rest kept in full precision
``kmeans``                  ``2**b``-level codebook fitted by 1-d k-means (Lloyd), float32 codebook
``prune_then_quantize``     magnitude pruning at sparsity ``s``, then ``uniform`` on the kept weights
==========================  =====================================================================================

Conventions shared by the family:

- The sign of ``w = 0`` is ``+`` (``sign``, 1-bit ``uniform``, the kept weights of ``ternary_sparsity``), so that
  every output is a level and the threshold at 0 belongs to the positive cell.
- A scale statistic equal to 0 (all-zero weights or channel) is replaced by 1.0: every scale then gives the same
  output (zeros), and the grid stays defined.
- Sparsity ``s`` zeroes the ``k = round(s N)`` smallest magnitudes (at most ``N - 1``) through the threshold
  ``tau = (|w|_(k) + |w|_(k+1)) / 2`` (an ``s``-quantile of ``|w|``; ``tau = 0`` when ``k = 0``) and the rule
  ``|w| < tau``. Without ties the achieved sparsity is within ``1 / (2N)`` of ``s``; weights tied at the
  threshold are all kept. ``tau`` is not published, but it is a statistic of the weights: margins hold it fixed.

``get(name, **params)`` builds one by name; ``available()`` lists the names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from mislib.infra.checks import check_choice, check_float, check_int, check_tensor


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


# ---------------------------------------------------------------------------------------------------------------
# Data-dependent quantizers: the grid (scale, zero point, threshold, codebook) is computed from the weights.


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r})")
    return value


def _work_dtype(w: torch.Tensor) -> torch.dtype:
    """Arithmetic precision: float64 weights stay float64; half-precision weights are computed in float32."""
    return torch.float64 if w.dtype == torch.float64 else torch.float32


def _groups(w: torch.Tensor, per_channel: bool, channel_dim: int):
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


def _positive_or_one(statistic: torch.Tensor) -> torch.Tensor:
    """A zero scale statistic (all-zero weights) becomes 1.0: every scale then gives the same output."""
    return torch.where(statistic > 0, statistic, torch.ones_like(statistic))


def _float32_scale(statistic: torch.Tensor) -> torch.Tensor:
    """A scale stored as float32 (treated as continuous), returned as float64 holding the float32 value."""
    return _positive_or_one(statistic.to(torch.float64)).to(torch.float32).to(torch.float64)


SCALE_FORMATS = ("float32", "bfloat16", "float16", "pow2", "public")
_SCALE_FORMAT_LABELS = {
    "float32": "float32",
    "bfloat16": "bfloat16",
    "float16": "float16",
    "pow2": "power of two",
    "public": "public (not data-dependent)",
}


def _neighbours(value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The next representable numbers below and above positive finite ``value`` (a 16-bit float tensor)."""
    bits = value.view(torch.int16)
    return (bits - 1).view(value.dtype), (bits + 1).view(value.dtype)


def store_scale(raw: torch.Tensor, scale_format: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Round positive scale statistics ``raw`` onto a storage format.

    Returns the stored values (float64, exactly representable in the format) and the scale margins: the
    distance from ``raw`` to the nearest rounding threshold of the format (the midpoints between adjacent
    bfloat16 / float16 numbers; ``2**(e +- 1/2)`` for ``"pow2"``, which rounds ``log2`` to the nearest integer).
    The margin is None for ``"float32"`` (a continuous scale) and ``"public"`` (nothing data-dependent).
    """
    check_choice("scale_format", scale_format, SCALE_FORMATS)
    raw = raw.to(torch.float64)
    if scale_format in ("float32", "public"):
        return raw.to(torch.float32).to(torch.float64), None
    if not bool((raw > 0).all()):
        raise ValueError("scale statistics must be positive to be stored")
    if scale_format == "pow2":
        exponent = torch.round(torch.log2(raw))
        margin = torch.minimum(raw - torch.exp2(exponent - 0.5), torch.exp2(exponent + 0.5) - raw)
        return torch.exp2(exponent), margin.clamp_min(0)
    dtype = torch.bfloat16 if scale_format == "bfloat16" else torch.float16
    first = raw.to(dtype)
    if bool(torch.isinf(first).any()) or bool((first == 0).any()):
        raise ValueError(f"a scale statistic (between {float(raw.min()):.3g} and {float(raw.max()):.3g}) "
                         f"overflows or underflows scale_format={scale_format!r}; use 'float32' or 'pow2'")
    # Conversion from float64 may round twice (via float32): take the nearest of the candidate and neighbours.
    down, up = _neighbours(first)
    candidates = torch.stack([down, first, up]).to(torch.float64)
    stored = candidates.gather(0, (candidates - raw).abs().argmin(dim=0, keepdim=True))[0]
    below, above = _neighbours(stored.to(dtype))
    low = (below.to(torch.float64) + stored) / 2
    high = (stored + above.to(torch.float64)) / 2      # +inf above the largest finite number
    return stored, torch.minimum(raw - low, high - raw).clamp_min(0)


def magnitude_threshold(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The pruning threshold ``tau``: ``|w| < tau`` zeroes the ``k = round(sparsity * N)`` smallest magnitudes
    (at most ``N - 1``); ``tau`` is the midpoint of the k-th and (k+1)-th smallest ``|w|`` (0 when k = 0),
    returned as a 0-d tensor in the working precision."""
    magnitudes = w.detach().reshape(-1).abs().to(torch.float64)
    count = magnitudes.numel()
    k = min(int(math.floor(sparsity * count + 0.5)), count - 1)
    if k == 0:
        return torch.zeros((), dtype=_work_dtype(w), device=w.device)
    ordered = torch.sort(magnitudes).values
    return ((ordered[k - 1] + ordered[k]) / 2).to(_work_dtype(w))


def _interval(w, condition, low_true, high_true, low_false, high_false):
    low = torch.where(condition, low_true, low_false)
    high = torch.where(condition, high_true, high_false)
    return low.to(w.dtype), high.to(w.dtype)


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


@dataclass
class UniformGrid:
    """The grid of ``Uniform`` at some weights: one row per channel (a single row per tensor)."""

    scale: torch.Tensor                 # (groups, 1) stored scale (float64 holding the stored value)
    zero_point: torch.Tensor            # (groups, 1) integer-valued; 0 for symmetric grids
    raw_scale: torch.Tensor             # (groups,) the statistic before rounding onto the storage format
    scale_margin: torch.Tensor | None   # (groups,) margin of raw_scale on the storage grid (on-grid formats)
    zero_point_margin: torch.Tensor | None  # (groups,) how far the range minimum can move before zp changes


class Uniform(DataDependentQuantizer):
    """``bits``-bit round to nearest with clipping, per tensor or per channel.

    - ``symmetric=True`` (absmax): ``scale = max|w| / (2**(bits-1) - 1)``, levels ``scale * {-qmax..qmax}``
      (``2**bits - 1`` levels, zero included). With ``bits=1`` the two levels are ``+-max|w|`` with the
      threshold at 0 (the absmax analogue of ``sign``; ``w = 0`` maps to ``+``).
    - ``symmetric=False`` (affine): the range ``[min(w, 0), max(w, 0)]`` (extended to contain 0, as PyTorch's
      observers do, so that 0 is exactly a level) is split in ``2**bits - 1`` steps,
      ``scale = (max - min) / (2**bits - 1)``, integer zero point ``zp = round(-min / scale)`` in
      ``[0, 2**bits - 1]``, levels ``scale * (c - zp)``, ``c = 0 .. 2**bits - 1``.
    - ``scale_format``: how the scale is published. ``"float32"``: as computed (a continuous statistic of the
      weights: ``scale_channel = "continuous"``); ``"bfloat16"``, ``"float16"``, ``"pow2"``: rounded onto that
      format's grid (``"stored-on-grid"``; ``scale_margins`` gives the margin of the raw statistic);
      ``"public"``: the given ``scale=`` (and ``zero_point=`` for affine), nothing data-dependent (``"none"``).
    - Values beyond the outermost levels are clipped to them: the outermost cells extend to infinity.
    """

    name = "uniform"

    def __init__(self, bits: int, symmetric: bool = True, per_channel: bool = False, channel_dim: int = 0,
                 scale_format: str = "float32", scale: float | None = None, zero_point: int | None = None):
        self.bits = check_int("bits", bits, minimum=1, maximum=16)
        self.symmetric = _check_bool("symmetric", symmetric)
        self.per_channel = _check_bool("per_channel", per_channel)
        self.channel_dim = check_int("channel_dim", channel_dim)
        if not isinstance(scale_format, str):
            raise TypeError(f"scale_format must be a string, got {type(scale_format).__name__}")
        self.scale_format = check_choice("scale_format", scale_format, SCALE_FORMATS)
        self.scale = self.zero_point = None
        if scale_format == "public":
            if scale is None:
                raise ValueError("scale_format='public' needs the public scale: pass scale=...")
            self.scale = check_float("scale", scale, low=0.0, low_open=True)
            if not symmetric:
                if zero_point is None:
                    raise ValueError("affine quantization (symmetric=False) with a public scale needs "
                                     f"zero_point=... (an integer in [0, {2 ** self.bits - 1}])")
                self.zero_point = check_int("zero_point", zero_point, minimum=0, maximum=2 ** self.bits - 1)
            elif zero_point is not None:
                raise ValueError("zero_point= is only used with symmetric=False")
        else:
            if scale is not None:
                raise ValueError(f"scale= is only used with scale_format='public'; with scale_format="
                                 f"{scale_format!r} the scale is computed from the weights")
            if zero_point is not None:
                raise ValueError("zero_point= is only used with scale_format='public' and symmetric=False")
        self._binary = self.symmetric and self.bits == 1
        if self.symmetric:
            self._qmin, self._qmax = -(2 ** (self.bits - 1) - 1), 2 ** (self.bits - 1) - 1
        else:
            self._qmin, self._qmax = 0, 2 ** self.bits - 1

    @property
    def scale_channel(self) -> str:
        return {"float32": "continuous", "public": "none"}.get(self.scale_format, "stored-on-grid")

    def _grid(self, w) -> UniformGrid:
        rows, _ = _groups(w, self.per_channel, self.channel_dim)
        groups, device = rows.shape[0], w.device
        if self.scale_format == "public":
            scale = torch.full((groups,), self.scale, dtype=torch.float64, device=device)
            zero_point = torch.full((groups,), float(self.zero_point or 0), dtype=torch.float64, device=device)
            return UniformGrid(scale[:, None], zero_point[:, None], scale, None, None)
        x = rows.detach().to(torch.float64)
        if self.symmetric:
            absmax = x.abs().amax(dim=1)
            raw = absmax if self._binary else absmax / self._qmax
        else:
            low, high = x.amin(dim=1).clamp_max(0), x.amax(dim=1).clamp_min(0)
            raw = (high - low) / self._qmax
        raw = _positive_or_one(raw)
        stored, margin = store_scale(raw, self.scale_format)
        if self.symmetric:
            return UniformGrid(stored[:, None], torch.zeros_like(stored)[:, None], raw, margin, None)
        position = -low / stored
        zero_point = torch.round(position).clamp(0, self._qmax)
        lower = torch.where(zero_point > 0, zero_point - 0.5, torch.full_like(position, -math.inf))
        upper = torch.where(zero_point < self._qmax, zero_point + 0.5, torch.full_like(position, math.inf))
        zp_margin = stored * torch.minimum(position - lower, upper - position).clamp_min(0)
        return UniformGrid(stored[:, None], zero_point[:, None], raw, margin, zp_margin)

    def _rows(self, w, grid: UniformGrid):
        work = w.to(_work_dtype(w))
        rows, restore = _groups(work, self.per_channel, self.channel_dim)
        if grid.scale.shape[0] != rows.shape[0]:
            raise ValueError(f"w has {rows.shape[0]} channel(s) along channel_dim={self.channel_dim} but the "
                             f"grid was computed for {grid.scale.shape[0]}")
        scale = grid.scale.to(device=w.device, dtype=work.dtype)
        zero_point = grid.zero_point.to(device=w.device, dtype=work.dtype)
        return rows, restore, scale, zero_point

    def _codes(self, rows, scale, zero_point):
        return torch.clamp(torch.round(rows / scale) + zero_point, self._qmin, self._qmax)

    def _apply(self, w, grid):
        rows, restore, scale, zero_point = self._rows(w, grid)
        if self._binary:
            out = torch.where(rows >= 0, scale, -scale)
        else:
            out = (self._codes(rows, scale, zero_point) - zero_point) * scale
        return restore(out).to(w.dtype)

    def _bounds(self, w, grid):
        rows, restore, scale, zero_point = self._rows(w, grid)
        if self._binary:
            positive = rows >= 0
            low = torch.where(positive, 0.0, -math.inf)
            high = torch.where(positive, math.inf, 0.0)
        else:
            codes = self._codes(rows, scale, zero_point)
            low = torch.where(codes > self._qmin, (codes - zero_point - 0.5) * scale, -math.inf)
            high = torch.where(codes < self._qmax, (codes - zero_point + 0.5) * scale, math.inf)
        return restore(low).to(w.dtype), restore(high).to(w.dtype)

    def bits_per_weight(self, w):
        check_tensor("w", w)
        return float(self.bits)

    def storage(self, w):
        w = check_tensor("w", w)
        groups = _groups(w, self.per_channel, self.channel_dim)[0].shape[0]
        data_dependent = self.scale_format != "public"
        items = [Stored("scale", groups, _SCALE_FORMAT_LABELS[self.scale_format], data_dependent)]
        if not self.symmetric:
            fmt = f"integer in [0, {self._qmax}]" if data_dependent else "public (not data-dependent)"
            items.append(Stored("zero_point", groups, fmt, data_dependent))
        return items

    def scale_margins(self, w):
        """Per channel (one entry per tensor), the distance from the raw scale statistic to the nearest rounding
        threshold of its storage format; None for float32 (continuous) and public scales."""
        return self.grid(w).scale_margin

    def zero_point_margins(self, w):
        """Affine grids: per channel, how far the range minimum can move (scale held) before the integer zero
        point changes; None for symmetric or public grids."""
        return self.grid(w).zero_point_margin


class Sign(DataDependentQuantizer):
    """1 bit: ``sign(w) * mean|w|`` (``w = 0`` maps to ``+``); the scale ``mean|w|`` is stored as float32
    (continuous). The only threshold is 0."""

    name = "sign"
    scale_channel = "continuous"

    def _grid(self, w):
        return _float32_scale(w.detach().to(torch.float64).abs().mean())

    def _apply(self, w, grid):
        scale = grid.to(device=w.device, dtype=_work_dtype(w))
        return torch.where(w >= 0, scale, -scale).to(w.dtype)

    def _bounds(self, w, grid):
        positive = w >= 0
        return _interval(w, positive, torch.zeros((), device=w.device), torch.tensor(math.inf, device=w.device),
                         torch.tensor(-math.inf, device=w.device), torch.zeros((), device=w.device))

    def bits_per_weight(self, w):
        check_tensor("w", w)
        return 1.0

    def storage(self, w):
        check_tensor("w", w)
        return [Stored("scale", 1, "float32", True)]


class TernaryAbsmean(DataDependentQuantizer):
    """BitNet b1.58: ``gamma * clip(round(w / gamma), -1, 1)`` with ``gamma = mean|w|`` stored as float32.

    Thresholds at ``+-gamma / 2``; for Gaussian weights the zero fraction is
    ``P(|Z| < sqrt(2/pi) / 2) = 0.310``, about a third."""

    name = "ternary_absmean"
    scale_channel = "continuous"

    def _grid(self, w):
        return _float32_scale(w.detach().to(torch.float64).abs().mean())

    def _codes(self, w, grid):
        work = w.to(_work_dtype(w))
        gamma = grid.to(device=w.device, dtype=work.dtype)
        return torch.clamp(torch.round(work / gamma), -1, 1), gamma

    def _apply(self, w, grid):
        codes, gamma = self._codes(w, grid)
        return (codes * gamma).to(w.dtype)

    def _bounds(self, w, grid):
        codes, gamma = self._codes(w, grid)
        low = torch.where(codes > -1, (codes - 0.5) * gamma, -math.inf)
        high = torch.where(codes < 1, (codes + 0.5) * gamma, math.inf)
        return low.to(w.dtype), high.to(w.dtype)

    def bits_per_weight(self, w):
        check_tensor("w", w)
        return math.log2(3)

    def storage(self, w):
        check_tensor("w", w)
        return [Stored("scale", 1, "float32", True)]


class TernarySparsity(DataDependentQuantizer):
    """Ternary with a target sparsity: ``|w| < tau`` (``tau`` the ``sparsity``-quantile of ``|w|``, see the
    module notes) gives 0, the rest ``+-scale`` with ``scale`` = mean ``|w|`` over the kept weights, stored as
    float32. Thresholds at ``+-tau``. ``sparsity=0`` is ``sign``."""

    name = "ternary_sparsity"
    scale_channel = "continuous"

    def __init__(self, sparsity: float):
        self.target_sparsity = check_float("sparsity", sparsity, low=0.0, high=1.0, high_open=True)

    def _grid(self, w):
        tau = magnitude_threshold(w, self.target_sparsity)
        magnitudes = w.detach().abs().to(tau.dtype)
        kept = magnitudes >= tau
        scale = _float32_scale(magnitudes[kept].to(torch.float64).mean())
        return {"tau": tau, "scale": scale}

    def _apply(self, w, grid):
        work = w.to(_work_dtype(w))
        tau = grid["tau"].to(device=w.device, dtype=work.dtype)
        scale = grid["scale"].to(device=w.device, dtype=work.dtype)
        out = torch.where(work.abs() < tau, torch.zeros_like(work), torch.where(work >= 0, scale, -scale))
        return out.to(w.dtype)

    def _bounds(self, w, grid):
        work = w.to(_work_dtype(w))
        tau = grid["tau"].to(device=w.device, dtype=work.dtype)
        inf = torch.tensor(math.inf, dtype=work.dtype, device=w.device)
        zero = work.abs() < tau
        low = torch.where(zero, -tau, torch.where(work >= 0, tau, -inf))
        high = torch.where(zero, tau, torch.where(work >= 0, inf, -tau))
        return low.to(w.dtype), high.to(w.dtype)

    def bits_per_weight(self, w):
        check_tensor("w", w)
        return math.log2(3)

    def storage(self, w):
        check_tensor("w", w)
        return [Stored("scale", 1, "float32", True)]


class MagnitudePruning(DataDependentQuantizer):
    """The baseline: zero ``|w| < tau`` (``tau`` the ``sparsity``-quantile of ``|w|``), keep the rest in full
    precision. Zeroed weights have the cell ``(-tau, tau)``; kept weights are released exactly (point cell,
    margin 0, as for identity). Bits per weight: the cheaper of dense storage and a 1-bit mask plus the kept
    values."""

    name = "magnitude_pruning"

    def __init__(self, sparsity: float):
        self.target_sparsity = check_float("sparsity", sparsity, low=0.0, high=1.0, high_open=True)

    def _grid(self, w):
        return magnitude_threshold(w, self.target_sparsity)

    def _apply(self, w, grid):
        tau = grid.to(device=w.device, dtype=_work_dtype(w))
        return torch.where(w.to(tau.dtype).abs() < tau, torch.zeros_like(w), w)

    def _bounds(self, w, grid):
        work = w.to(_work_dtype(w))
        tau = grid.to(device=w.device, dtype=work.dtype)
        zero = work.abs() < tau
        return _interval(w, zero, -tau, tau, work, work)

    def bits_per_weight(self, w):
        dense = float(torch.finfo(check_tensor("w", w).dtype).bits)
        return min(dense, 1.0 + (1.0 - self.sparsity(w)) * dense)


class KMeans(DataDependentQuantizer):
    """Codebook of at most ``2**bits`` levels fitted by 1-d k-means, stored as float32 (continuous,
    data-dependent). Each weight goes to the nearest level; thresholds are the midpoints between adjacent levels.

    Fitting is deterministic: Lloyd's algorithm (at most ``n_iter`` iterations per run) from two starts, keeping
    the lower within-cluster sum of squares: (a) the quantiles ``(j + 1/2) / 2**bits`` of ``w``; (b) splitting
    (Linde-Buzo-Gray: start from the mean, split every level in two and re-run Lloyd, ``bits`` times). Start (a)
    alone can stall in a poor fixed point (2.3 times the optimal sum of squares at 6 bits on 4096 Gaussian
    weights); (b) avoids it. Clusters left empty are dropped, so with few distinct weights the codebook is
    smaller than ``2**bits``."""

    name = "kmeans"
    scale_channel = "continuous"

    def __init__(self, bits: int, n_iter: int = 100):
        self.bits = check_int("bits", bits, minimum=1, maximum=16)
        self.n_iter = check_int("n_iter", n_iter, minimum=1)

    @staticmethod
    def _clusters(x, prefix, prefix_sq, centroids):
        """Nearest-level clusters of the sorted weights ``x`` (contiguous runs): counts, sums, sums of squares."""
        ends = torch.searchsorted(x, (centroids[1:] + centroids[:-1]) / 2, right=True)
        edges = torch.cat([ends.new_zeros(1), ends, ends.new_full((1,), x.numel())])
        counts = edges[1:] - edges[:-1]
        return counts, prefix[edges[1:]] - prefix[edges[:-1]], prefix_sq[edges[1:]] - prefix_sq[edges[:-1]]

    def _lloyd(self, x, prefix, prefix_sq, centroids):
        for _ in range(self.n_iter):
            counts, sums, _ = self._clusters(x, prefix, prefix_sq, centroids)
            used = counts > 0
            updated = torch.unique(sums[used] / counts[used])
            if updated.shape == centroids.shape and torch.equal(updated, centroids):
                break
            centroids = updated
        return centroids

    def _sum_of_squares(self, x, prefix, prefix_sq, centroids):
        counts, sums, squares = self._clusters(x, prefix, prefix_sq, centroids)
        used = counts > 0
        return float((squares[used] - sums[used] ** 2 / counts[used]).sum())

    def _grid(self, w):
        x = torch.sort(w.detach().reshape(-1).to(torch.float64)).values
        count, levels = x.numel(), 2 ** self.bits
        # Prefix sums: cluster sums in O(levels) per iteration, deterministic on every device.
        prefix = torch.cat([x.new_zeros(1), torch.cumsum(x, 0)])
        prefix_sq = torch.cat([x.new_zeros(1), torch.cumsum(x * x, 0)])
        positions = (torch.arange(levels, device=w.device, dtype=torch.float64) + 0.5) / levels * count
        quantile_start = torch.unique(x[positions.floor().long().clamp(max=count - 1)])
        best = self._lloyd(x, prefix, prefix_sq, quantile_start)
        split, step = x.mean().reshape(1), 1e-3 * float(x[-1] - x[0])
        for _ in range(self.bits if step > 0 else 0):
            split = self._lloyd(x, prefix, prefix_sq, torch.unique(torch.cat([split - step, split + step])))
        if self._sum_of_squares(x, prefix, prefix_sq, split) < self._sum_of_squares(x, prefix, prefix_sq, best):
            best = split
        return torch.unique(best.to(torch.float32).to(torch.float64))

    def _index(self, w, codebook):
        codebook = codebook.to(w.device)
        midpoints = (codebook[1:] + codebook[:-1]) / 2
        index = torch.searchsorted(midpoints, w.detach().to(torch.float64).contiguous(), side="left")
        return index, codebook, midpoints

    def _apply(self, w, grid):
        index, codebook, _ = self._index(w, grid)
        return codebook[index].to(w.dtype)

    def _bounds(self, w, grid):
        index, codebook, midpoints = self._index(w, grid)
        padded = torch.cat([codebook.new_full((1,), -math.inf), midpoints, codebook.new_full((1,), math.inf)])
        return padded[index].to(w.dtype), padded[index + 1].to(w.dtype)

    def bits_per_weight(self, w):
        check_tensor("w", w)
        return float(self.bits)

    def storage(self, w):
        check_tensor("w", w)
        return [Stored("codebook", 2 ** self.bits, "float32", True)]

    def codebook(self, w: torch.Tensor) -> torch.Tensor:
        """The fitted levels (sorted, distinct) as float64 holding float32 values."""
        return self.grid(w)


class PruneThenQuantize(DataDependentQuantizer):
    """Magnitude pruning at ``sparsity`` (``|w| < tau`` gives 0), then ``Uniform(bits, ...)`` on the kept
    weights (its grid computed on the pruned tensor). A kept weight can still round to 0.

    Cells: the zero cell is ``(-tau, tau)`` joined with the uniform zero cell; a nonzero level's cell is its
    uniform cell cut at ``+-tau``. Unlike the nearest-level quantizers, this is not idempotent (a level below
    ``tau`` is pruned when quantized again)."""

    name = "prune_then_quantize"

    def __init__(self, sparsity: float, bits: int, symmetric: bool = True, per_channel: bool = False,
                 channel_dim: int = 0, scale_format: str = "float32", scale: float | None = None,
                 zero_point: int | None = None):
        self.target_sparsity = check_float("sparsity", sparsity, low=0.0, high=1.0, high_open=True)
        self._uniform = Uniform(bits, symmetric=symmetric, per_channel=per_channel, channel_dim=channel_dim,
                                scale_format=scale_format, scale=scale, zero_point=zero_point)
        self.bits, self.symmetric, self.scale_format = bits, symmetric, scale_format
        self.per_channel, self.channel_dim = per_channel, channel_dim
        self.scale, self.zero_point = scale, zero_point

    @property
    def scale_channel(self) -> str:
        return self._uniform.scale_channel

    def _grid(self, w):
        tau = magnitude_threshold(w, self.target_sparsity)
        pruned = torch.where(w.detach().to(tau.dtype).abs() < tau, torch.zeros_like(w), w.detach())
        return {"tau": tau, "uniform": self._uniform._grid(pruned)}

    def _apply(self, w, grid):
        tau = grid["tau"].to(device=w.device, dtype=_work_dtype(w))
        quantized = self._uniform._apply(w, grid["uniform"])
        return torch.where(w.to(tau.dtype).abs() < tau, torch.zeros_like(w), quantized)

    def _bounds(self, w, grid):
        work = w.to(_work_dtype(w))
        tau = grid["tau"].to(device=w.device, dtype=work.dtype)
        uniform_low, uniform_high = (b.to(work.dtype) for b in self._uniform._bounds(w, grid["uniform"]))
        zeros = torch.zeros_like(w)
        zero_low, zero_high = (b.to(work.dtype) for b in self._uniform._bounds(zeros, grid["uniform"]))
        has_zero_level = self._uniform._apply(zeros, grid["uniform"]) == 0
        zero_low = torch.where(has_zero_level, torch.minimum(-tau, zero_low), -tau)
        zero_high = torch.where(has_zero_level, torch.maximum(tau, zero_high), tau)
        is_zero = self._apply(w, grid) == 0
        positive = work >= 0
        low = torch.where(is_zero, zero_low,
                          torch.where(positive, torch.maximum(uniform_low, tau), uniform_low))
        high = torch.where(is_zero, zero_high,
                           torch.where(positive, uniform_high, torch.minimum(uniform_high, -tau)))
        return low.to(w.dtype), high.to(w.dtype)

    def bits_per_weight(self, w):
        dense = float(self.bits) if not self._uniform._binary else math.log2(2 ** self.bits + 1)
        return min(dense, 1.0 + (1.0 - self.sparsity(w)) * self.bits)

    def storage(self, w):
        return self._uniform.storage(w)

    def scale_margins(self, w):
        return self.grid(w)["uniform"].scale_margin

    def zero_point_margins(self, w):
        """As ``Uniform.zero_point_margins``, for the grid computed on the pruned weights."""
        return self.grid(w)["uniform"].zero_point_margin


_REGISTRY: dict[str, type[Quantizer]] = {}


def register(cls: type[Quantizer]) -> type[Quantizer]:
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (Identity, FixedGrid, SizeAdaptiveGrid, StochasticRounding, Uniform, Sign, TernaryAbsmean,
             TernarySparsity, MagnitudePruning, KMeans, PruneThenQuantize):
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


def labelled(quantizers) -> list[tuple[str, Quantizer]]:
    """``[(label, quantizer), ...]`` from one quantizer, a dict ``{label: quantizer}`` or a list (labelled by
    ``repr``); every entry checked. Used wherever a user hands over several quantizers to compare."""
    if isinstance(quantizers, Quantizer):
        quantizers = [quantizers]
    if isinstance(quantizers, Mapping):
        items = list(quantizers.items())
    elif isinstance(quantizers, (list, tuple)):
        items = [(repr(q), q) for q in quantizers]
    else:
        raise TypeError(f"quantizers must be a Quantizer, a dict {{label: Quantizer}} or a list of them, got "
                        f"{type(quantizers).__name__}")
    if not items:
        raise ValueError("quantizers is empty; give e.g. {'uniform 4-bit': quantizers.get('uniform', bits=4)}")
    for label, q in items:
        if not isinstance(label, str) or not label:
            raise TypeError(f"quantizer labels must be non-empty strings, got {label!r}")
        if not isinstance(q, Quantizer):
            raise TypeError(f"quantizers[{label!r}] must be a mislib.quantizers.Quantizer, got {type(q).__name__}")
    return items
