"""16-bit floating-point formats (bfloat16, float16): correctly rounded conversion, the rounding cell of each
representable value, and the storage of a scale on such a format (or on powers of two).

``round_to_format`` rounds to nearest with ties to even directly from float64. PyTorch's own ``x.to(bfloat16)``
on a float64 tensor rounds twice (through float32), which differs from a single rounding on the band of width
one float32 half-ulp beside each midpoint; on float32, float16 and bfloat16 inputs the two agree exactly.
"""

from __future__ import annotations

import torch

from mislib.infra.checks import check_choice

HALF_FORMATS = {"bfloat16": torch.bfloat16, "float16": torch.float16}
SCALE_FORMATS = ("float32", "bfloat16", "float16", "pow2", "public")
SCALE_FORMAT_LABELS = {
    "float32": "float32",
    "bfloat16": "bfloat16",
    "float16": "float16",
    "pow2": "power of two",
    "public": "public (not data-dependent)",
}


def round_to_format(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` rounded to the nearest ``dtype`` number (ties to the even one), returned as float64.

    Subnormals are kept; a value beyond the largest finite number's rounding cell becomes infinite (as the IEEE
    conversion overflows): callers refuse it."""
    info = torch.finfo(dtype)
    x = x.to(torch.float64)
    smallest_exponent = round(torch.log2(torch.tensor(info.tiny, dtype=torch.float64)).item())
    exponent = torch.frexp(x).exponent.clamp_min(smallest_exponent + 1) - 1   # x in [2^e, 2^(e+1))
    ulp = info.eps * torch.exp2(exponent.to(torch.float64))                      # spacing in that binade
    rounded = torch.round(x / ulp) * ulp                                          # exact: ulp is a power of two
    return torch.where(rounded.abs() > info.max, torch.sign(x) * torch.inf, rounded)


def _from_bits(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return bits.to(torch.int16).view(dtype).to(torch.float64)


def format_cell(value: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The rounding cell ``[low, high]`` (float64) of each finite ``dtype`` number ``value``: half-way to the
    neighbouring representable numbers (the cell of 0 is half the smallest subnormal on either side; the
    largest finite number's cell ends where the conversion overflows). Under ties to even, an endpoint belongs
    to the cell of ``value`` exactly when ``value`` is even."""
    exact = value.to(dtype)
    magnitude = exact.view(torch.int16).to(torch.int32) & 0x7FFF
    v = exact.to(torch.float64)
    up, down = _from_bits(magnitude + 1, dtype), _from_bits((magnitude - 1).clamp_min(0), dtype)
    smallest = _from_bits(torch.ones_like(magnitude), dtype)
    nonnegative = v >= 0
    above = torch.where(nonnegative, up, -down)
    below = torch.where(v > 0, down, torch.where(nonnegative, -smallest, -up))
    below = torch.where((v < 0) & torch.isinf(up), 2 * v - above, below)   # -max: mirrored overflow threshold
    above = torch.where(torch.isinf(above), 2 * v - below, above)          # +max: where rounding overflows
    return (v + below) / 2, (v + above) / 2


def float32_scale(statistic: torch.Tensor) -> torch.Tensor:
    """A scale stored as float32 (treated as continuous), returned as float64 holding the float32 value; a zero
    statistic becomes 1.0 (every scale then gives the same output)."""
    statistic = statistic.to(torch.float64)
    return torch.where(statistic > 0, statistic, torch.ones_like(statistic)).to(torch.float32).to(torch.float64)


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
    dtype = HALF_FORMATS[scale_format]
    stored = round_to_format(raw, dtype)
    if bool(torch.isinf(stored).any()) or bool((stored == 0).any()):
        raise ValueError(f"a scale statistic (between {float(raw.min()):.3g} and {float(raw.max()):.3g}) "
                         f"overflows or underflows scale_format={scale_format!r}; use 'float32' or 'pow2'")
    low, high = format_cell(stored, dtype)
    return stored, torch.minimum(raw - low, high - raw).clamp_min(0)
