"""Magnitude pruning (zero the smallest magnitudes, keep the rest exactly) and pruning followed by uniform
quantization of the kept weights; ``magnitude_threshold`` is the sparsity threshold they and
``ternary_sparsity`` share."""

from __future__ import annotations

import math

import torch

from mislib.infra.checks import check_float, check_tensor
from mislib.quantizers.base import DataDependentQuantizer, where_interval, work_dtype
from mislib.quantizers.uniform import Uniform

def magnitude_threshold(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The pruning threshold ``tau``: ``|w| < tau`` zeroes the ``k = round(sparsity * N)`` smallest magnitudes
    (at most ``N - 1``); ``tau`` is the midpoint of the k-th and (k+1)-th smallest ``|w|`` (0 when k = 0),
    returned as a 0-d tensor in the working precision."""
    magnitudes = w.detach().reshape(-1).abs().to(torch.float64)
    count = magnitudes.numel()
    k = min(int(math.floor(sparsity * count + 0.5)), count - 1)
    if k == 0:
        return torch.zeros((), dtype=work_dtype(w), device=w.device)
    ordered = torch.sort(magnitudes).values
    return ((ordered[k - 1] + ordered[k]) / 2).to(work_dtype(w))

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
        tau = grid.to(device=w.device, dtype=work_dtype(w))
        return torch.where(w.to(tau.dtype).abs() < tau, torch.zeros_like(w), w)

    def _bounds(self, w, grid):
        work = w.to(work_dtype(w))
        tau = grid.to(device=w.device, dtype=work.dtype)
        zero = work.abs() < tau
        return where_interval(w, zero, -tau, tau, work, work)

    def bits_per_weight(self, w):
        dense = float(torch.finfo(check_tensor("w", w).dtype).bits)
        return min(dense, 1.0 + (1.0 - self.sparsity(w)) * dense)

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
        tau = grid["tau"].to(device=w.device, dtype=work_dtype(w))
        quantized = self._uniform._apply(w, grid["uniform"])
        return torch.where(w.to(tau.dtype).abs() < tau, torch.zeros_like(w), quantized)

    def _bounds(self, w, grid):
        work = w.to(work_dtype(w))
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

