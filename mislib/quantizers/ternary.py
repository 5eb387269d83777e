"""Sign and ternary quantizers: levels ``{-1, +1}`` or ``{-1, 0, +1}`` times one scale computed from the weights
and stored as float32 (a continuous statistic: ``scale_channel = "continuous"``)."""

from __future__ import annotations

import math

import torch

from mislib.infra.checks import check_float, check_tensor
from mislib.quantizers.base import DataDependentQuantizer, Stored, where_interval, work_dtype
from mislib.quantizers.formats import float32_scale
from mislib.quantizers.pruning import magnitude_threshold


class ScaledTernary(DataDependentQuantizer):
    """Base of the sign and ternary family: ``levels`` signed levels (2 for sign, 3 for ternary) times one float32
    scale, by default ``gamma = mean|w|``. Subclasses implement ``_apply`` and ``_bounds``."""

    scale_channel = "continuous"
    levels = 3

    def _grid(self, w):
        return float32_scale(w.detach().to(torch.float64).abs().mean())

    def bits_per_weight(self, w):
        """Stored bits per weight: ``log2(levels)`` dense, or for ternary the cheaper sparse layout, a 1-bit
        zero mask plus a sign bit per nonzero weight (``1 + (1 - sparsity)``), as pruning counts its mask."""
        check_tensor("w", w)
        dense = math.log2(self.levels)
        return dense if self.levels < 3 else min(dense, 2.0 - self.sparsity(w))

    def storage(self, w):
        check_tensor("w", w)
        return [Stored("scale", 1, "float32", True)]


class Sign(ScaledTernary):
    """1 bit: ``sign(w) * mean|w|`` (``w = 0`` maps to ``+``); the scale ``mean|w|`` is stored as float32
    (continuous). The only threshold is 0."""

    name = "sign"
    levels = 2

    def _apply(self, w, grid):
        scale = grid.to(device=w.device, dtype=work_dtype(w))
        return torch.where(w >= 0, scale, -scale).to(w.dtype)

    def _bounds(self, w, grid):
        zero, inf = torch.zeros((), device=w.device), torch.tensor(math.inf, device=w.device)
        return where_interval(w, w >= 0, zero, inf, -inf, zero)


class TernaryAbsmean(ScaledTernary):
    """BitNet b1.58: ``gamma * clip(round(w / gamma), -1, 1)`` with ``gamma = mean|w|`` stored as float32.

    Thresholds at ``+-gamma / 2``; for Gaussian weights the zero fraction is
    ``P(|Z| < sqrt(2/pi) / 2) = 0.310``, about a third. (BitNet's ``eps`` in ``mean|w| + eps`` only guards the
    all-zero tensor; here a zero ``gamma`` becomes 1.0, which gives the same all-zero release.)"""

    name = "ternary_absmean"

    def _codes(self, w, grid):
        work = w.to(work_dtype(w))
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


class TernarySparsity(ScaledTernary):
    """Ternary with a target sparsity: ``|w| < tau`` (``tau`` the ``sparsity``-quantile of ``|w|``, see the
    package notes) gives 0, the rest ``+-scale`` with ``scale`` = mean ``|w|`` over the kept weights, stored as
    float32. Thresholds at ``+-tau``. ``sparsity=0`` is ``sign``."""

    name = "ternary_sparsity"

    def __init__(self, sparsity: float):
        self.target_sparsity = check_float("sparsity", sparsity, low=0.0, high=1.0, high_open=True)

    def _grid(self, w):
        tau = magnitude_threshold(w, self.target_sparsity)
        magnitudes = w.detach().abs().to(tau.dtype)
        kept = magnitudes >= tau
        scale = float32_scale(magnitudes[kept].to(torch.float64).mean())
        return {"tau": tau, "scale": scale}

    def _apply(self, w, grid):
        work = w.to(work_dtype(w))
        tau = grid["tau"].to(device=w.device, dtype=work.dtype)
        scale = grid["scale"].to(device=w.device, dtype=work.dtype)
        out = torch.where(work.abs() < tau, torch.zeros_like(work), torch.where(work >= 0, scale, -scale))
        return out.to(w.dtype)

    def _bounds(self, w, grid):
        work = w.to(work_dtype(w))
        tau = grid["tau"].to(device=w.device, dtype=work.dtype)
        inf = torch.tensor(math.inf, dtype=work.dtype, device=w.device)
        zero = work.abs() < tau
        low = torch.where(zero, -tau, torch.where(work >= 0, tau, -inf))
        high = torch.where(zero, tau, torch.where(work >= 0, inf, -tau))
        return low.to(w.dtype), high.to(w.dtype)
