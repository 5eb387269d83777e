"""Casts to a 16-bit float format (bfloat16, float16), the releases most often shipped in practice: a
deterministic rounding to nearest (ties to even) with a cell of its own around every weight."""

from __future__ import annotations

import torch

from mislib.infra.checks import check_choice, check_tensor
from mislib.quantizers.base import Quantizer
from mislib.quantizers.formats import HALF_FORMATS, format_cell, round_to_format


class Cast(Quantizer):
    """``q(w) = w.to(dtype).to(w.dtype)`` for ``dtype`` ``"bfloat16"`` or ``"float16"``: every weight rounded to
    the nearest number of the format, ties to even, subnormals kept; nothing is published beside the weights.

    The cell of a weight is the rounding interval of its value: half-way to the neighbouring representable
    numbers (``round_to_format`` and ``format_cell``). On float32 (and 16-bit) weights the release is exactly
    PyTorch's cast; on float64 weights it is the correctly rounded one, where PyTorch rounds twice (through
    float32) and differs within a float32 half-ulp of a midpoint. Weights beyond the format's range (float16:
    ``|w| >= 65520``) are refused rather than released as infinity.
    """

    name = "cast"

    def __init__(self, dtype: str = "bfloat16"):
        if not isinstance(dtype, str):
            raise TypeError(f"dtype must be a string ('bfloat16' or 'float16'), got {type(dtype).__name__}")
        self.dtype = check_choice("dtype", dtype, HALF_FORMATS)

    def _rounded(self, w):
        dtype = HALF_FORMATS[self.dtype]
        rounded = round_to_format(w, dtype)
        if bool(torch.isinf(rounded).any()):
            limit = float(format_cell(torch.tensor(torch.finfo(dtype).max), dtype)[1])
            raise ValueError(f"w has {int(torch.isinf(rounded).sum())} entries beyond the {self.dtype} range "
                             f"(|w| >= {limit:g}): the cast would release infinity")
        return rounded

    def _quantize(self, w, generator):
        return self._rounded(w).to(w.dtype)

    def _cell_bounds(self, w):
        low, high = format_cell(self._rounded(w), HALF_FORMATS[self.dtype])
        return low.to(w.dtype), high.to(w.dtype)

    def bits_per_weight(self, w):
        check_tensor("w", w)
        return 16.0
