"""Casts to bfloat16 and float16, and the 16-bit float rounding they share with the stored scales: every
representable number is its own release, the cells tile the line, ties go to even, and float32 weights give
exactly PyTorch's cast."""

from __future__ import annotations

import pytest
import torch

from mislib import quantizers as Q

FORMATS = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def _every_finite(dtype: torch.dtype) -> torch.Tensor:
    values = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(dtype)
    return torch.unique(values[torch.isfinite(values)].to(torch.float64))  # -0 and +0 merge


@pytest.mark.parametrize("name", FORMATS)
def test_every_representable_number_is_released_as_itself_and_cells_tile_the_line(name):
    dtype = FORMATS[name]
    values = _every_finite(dtype)
    assert torch.equal(Q.round_to_format(values, dtype), values)
    low, high = Q.format_cell(values, dtype)
    assert (low < values).all() and (values < high).all()
    assert torch.equal(high[:-1], low[1:])  # adjacent cells share their border: no gap, no overlap
    torch.testing.assert_close(high[:-1], (values[:-1] + values[1:]) / 2, rtol=0, atol=0)
    assert high[-1] == torch.finfo(dtype).max + (values[-1] - values[-2]) / 2  # where the cast overflows


@pytest.mark.parametrize("name", FORMATS)
def test_float32_weights_give_exactly_torchs_cast(name):
    dtype = FORMATS[name]
    generator = torch.Generator().manual_seed(0)
    exponents = torch.randint(-30, 12, (200_000,), generator=generator).float()
    w = torch.randn(200_000, generator=generator) * torch.exp2(exponents)  # subnormals of the format included
    q = Q.get("cast", dtype=name)
    assert torch.equal(q(w), w.to(dtype).to(torch.float32))
    # Exact ties (midpoints between neighbours, float32-representable) go to the even neighbour, as torch does.
    values = _every_finite(dtype)
    midpoints = ((values[:-1] + values[1:]) / 2).to(torch.float32)
    released = q(midpoints)
    assert torch.equal(released, midpoints.to(dtype).to(torch.float32))
    even = (released.to(dtype).view(torch.int16) % 2 == 0)
    assert even.all()
    assert (q.margins(midpoints) == 0).all()


def test_float64_weights_are_rounded_once():
    """torch rounds float64 -> bfloat16 through float32 (twice); the cast here rounds once, correctly."""
    x = torch.tensor([1 + 2 ** -8 + 2 ** -40], dtype=torch.float64)  # just above the midpoint of 1 and 1 + 2^-7
    assert Q.get("cast", dtype="bfloat16")(x).item() == 1 + 2 ** -7
    assert x.to(torch.bfloat16).item() == 1.0  # torch's double rounding: the tie 1 + 2^-8 goes to even
    low, high = Q.get("cast", dtype="bfloat16").cell_bounds(x)
    assert (low.item(), high.item()) == (1 + 2 ** -8, 1 + 3 * 2 ** -8)


def test_cells_margins_and_description():
    q = Q.get("cast", dtype="float16")
    w = torch.tensor([1.0, 1.0 + 2 ** -12, -3.0, 0.0, 2.0 ** -25, 65519.0], dtype=torch.float64)
    low, high = q.cell_bounds(w)
    assert low.tolist() == [1 - 2 ** -12, 1 - 2 ** -12, -3 - 2 ** -10, -(2 ** -25), -(2 ** -25), 65504 - 16]
    assert high.tolist() == [1 + 2 ** -11, 1 + 2 ** -11, -3 + 2 ** -10, 2 ** -25, 2 ** -25, 65520]
    assert q(w).tolist() == [1.0, 1.0, -3.0, 0.0, 0.0, 65504.0]  # 2^-25 is half the smallest subnormal: tie to 0
    assert q.margins(w)[1] == 2 ** -12 and q.margins(w)[4] == 0
    assert q.bits_per_weight(w) == 16.0 and q.storage(w) == [] and q.scale_channel == "none"
    assert q.freeze(w) is q and q.describe(w)["stored"] == "nothing"


def test_overflow_and_bad_dtype_are_refused():
    with pytest.raises(ValueError, match=r"beyond the float16 range \(\|w\| >= 65520\)"):
        Q.get("cast", dtype="float16")(torch.tensor([1.0, 65520.0]))
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        Q.get("cast", dtype="int8")
    with pytest.raises(TypeError, match="dtype must be a string"):
        Q.get("cast", dtype=torch.float16)


def test_scale_storage_rounds_ties_to_even():
    """The stored scales use the same rounding: a raw statistic on a midpoint goes to the even neighbour."""
    raw = torch.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8], dtype=torch.float64)  # midpoints around 1 + 2^-7 (odd)
    stored, margin = Q.store_scale(raw, "bfloat16")
    assert stored.tolist() == [1.0, 1 + 2 ** -6] and margin.tolist() == [0.0, 0.0]
