"""``b``-bit uniform round to nearest with clipping: symmetric (absmax) or affine (zero point), per tensor or per
channel, the scale published as float32, bfloat16, float16, a power of two, or a public constant."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mislib.infra.checks import check_bool, check_choice, check_float, check_int
from mislib.quantizers.base import ChannelQuantizer, Stored, channel_rows, positive_or_one, work_dtype
from mislib.quantizers.formats import SCALE_FORMAT_LABELS, SCALE_FORMATS, store_scale


@dataclass
class UniformGrid:
    """The grid of ``Uniform`` at some weights: one row per channel (a single row per tensor)."""

    scale: torch.Tensor                 # (groups, 1) stored scale (float64 holding the stored value)
    zero_point: torch.Tensor            # (groups, 1) integer-valued; 0 for symmetric grids
    raw_scale: torch.Tensor             # (groups,) the statistic before rounding onto the storage format
    scale_margin: torch.Tensor | None   # (groups,) margin of raw_scale on the storage grid (on-grid formats)
    zero_point_margin: torch.Tensor | None  # (groups,) how far the range minimum can move before zp changes


class Uniform(ChannelQuantizer):
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
        self.symmetric = check_bool("symmetric", symmetric)
        self.per_channel = check_bool("per_channel", per_channel)
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
        rows, _ = channel_rows(w, self.per_channel, self.channel_dim)
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
        raw = positive_or_one(raw)
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
        work = w.to(work_dtype(w))
        rows, restore = channel_rows(work, self.per_channel, self.channel_dim)
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

    def storage(self, w):
        groups = self.channel_count(w)
        data_dependent = self.scale_format != "public"
        items = [Stored("scale", groups, SCALE_FORMAT_LABELS[self.scale_format], data_dependent)]
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


