"""The quantizers against the references practitioners use: torch's fake quantization and observers for the
uniform grids, and the published BitNet b1.58 formula for ternary absmean.

Conventions (where ours and the reference differ):
- rounding: both round half to even (torch.round, std::nearbyint), so releases agree bit for bit given the grid;
- symmetric range: ours is the narrow range ``[-(2**(b-1) - 1), 2**(b-1) - 1]`` (no ``-2**(b-1)`` level, so
  the grid is symmetric about 0); torch's observers give the same scale ``max|w| / (2**(b-1) - 1)`` when passed
  that range as ``quant_min``/``quant_max``. 1-bit symmetric (``+-max|w|``, threshold 0) has no torch analogue;
- affine scale: ours is the correctly rounded float32 of ``(max - min) / (2**b - 1)`` computed in float64;
  torch's ``MinMaxObserver`` subtracts in float32 first and can land one float32 ulp away (relative 1.2e-7);
- BitNet b1.58 divides by ``mean|W| + eps``; we divide by ``mean|W|`` (stored as float32) and replace a zero
  mean by 1. The two differ only within ``eps / 2`` of the thresholds ``+-mean|W| / 2``.
"""

from __future__ import annotations

import pytest
import torch
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

from mislib import quantizers as Q

BITS = [2, 3, 4, 8]


def _weights(seed: int, shape=(64, 48), shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator) * (0.1 + seed) + shift


def _range(bits: int, symmetric: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("symmetric", [True, False])
def test_uniform_per_tensor_equals_torch_fake_quantize(bits, symmetric):
    for seed in range(5):
        w = _weights(seed, shift=0.0 if symmetric else 0.4 * seed)
        q = Q.get("uniform", bits=bits, symmetric=symmetric)
        grid = q.grid(w)
        scale, zero_point = float(grid.scale), int(grid.zero_point)
        quant_min, quant_max = _range(bits, symmetric)
        reference = torch.fake_quantize_per_tensor_affine(w, scale, zero_point, quant_min, quant_max)
        assert torch.equal(q(w), reference)
        # The grid itself against torch's min/max observer with the same integer range.
        observer = MinMaxObserver(dtype=torch.qint8 if symmetric else torch.quint8,
                                  qscheme=torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine,
                                  quant_min=quant_min, quant_max=quant_max)
        observer(w)
        torch_scale, torch_zero_point = observer.calculate_qparams()
        assert int(torch_zero_point) == zero_point
        if symmetric:
            assert float(torch_scale) == scale
        else:  # torch subtracts max - min in float32: at most one float32 ulp apart
            assert float(torch_scale) == pytest.approx(scale, rel=2.4e-7, abs=0)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("axis", [0, 1])
def test_uniform_per_channel_equals_torch_fake_quantize(bits, symmetric, axis):
    w = _weights(3, shift=0.0 if symmetric else 0.7)
    q = Q.get("uniform", bits=bits, symmetric=symmetric, per_channel=True, channel_dim=axis)
    grid = q.grid(w)
    scale = grid.scale[:, 0].to(torch.float32)
    zero_point = grid.zero_point[:, 0].to(torch.int32)
    quant_min, quant_max = _range(bits, symmetric)
    reference = torch.fake_quantize_per_channel_affine(w, scale, zero_point, axis, quant_min, quant_max)
    assert torch.equal(q(w), reference)
    observer = PerChannelMinMaxObserver(
        ch_axis=axis, dtype=torch.qint8 if symmetric else torch.quint8,
        qscheme=torch.per_channel_symmetric if symmetric else torch.per_channel_affine,
        quant_min=quant_min, quant_max=quant_max)
    observer(w)
    torch_scale, torch_zero_point = observer.calculate_qparams()
    assert torch.equal(torch_zero_point.to(torch.int32), zero_point)
    torch.testing.assert_close(torch_scale.to(torch.float32), scale, rtol=2.4e-7, atol=0)


def test_uniform_disagrees_with_torch_on_a_wrong_grid():
    """The comparison above can fail: torch's fake quantization with the full signed range differs."""
    w = _weights(1)
    q = Q.get("uniform", bits=4)
    full_range = torch.fake_quantize_per_tensor_affine(w, float(w.abs().max()) / 7.5, 0, -8, 7)
    assert not torch.equal(q(w), full_range)


def bitnet_b158(w: torch.Tensor, eps: float) -> torch.Tensor:
    """BitNet b1.58 (Ma et al. 2024, eq. 1-3): RoundClip(W / (gamma + eps), -1, 1) * gamma, gamma = mean|W|."""
    gamma = w.abs().mean()
    return torch.clamp(torch.round(w / (gamma + eps)), -1, 1) * gamma


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ternary_absmean_is_the_bitnet_formula(dtype):
    q = Q.get("ternary_absmean")
    # gamma: ours is mean|W| in float64 rounded once to float32; the float32 reference sums in float32
    rtol = 1e-6 if dtype == torch.float32 else 1.2e-7
    for seed in range(5):
        w = _weights(seed, shape=(256, 64)).to(dtype)
        gamma = w.abs().mean()
        far = (w.abs() - gamma / 2).abs() > 1e-5  # eps = 1e-5 moves the thresholds by 5e-6
        assert far.double().mean() > 0.999
        reference = bitnet_b158(w, eps=1e-5)
        ours = q(w)
        assert torch.equal(torch.sign(ours)[far], torch.sign(reference)[far])  # the ternary codes
        torch.testing.assert_close(ours[far], reference[far], rtol=rtol, atol=0)
        # With eps -> 0 the formula is ours exactly (up to gamma's float32 rounding) at every coordinate.
        torch.testing.assert_close(q(w), bitnet_b158(w, eps=0.0), rtol=rtol, atol=0)
    zeros = torch.zeros(8, dtype=dtype)
    assert torch.equal(q(zeros), bitnet_b158(zeros, eps=1e-5))  # eps only guards the all-zero tensor
