"""Quantizers: property tests over every family in available(), numbers that could come out wrong, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from mislib import quantizers as Q

# Parameter sets exercising every family and option. test_every_family_is_exercised keeps this complete.
CONFIGS = {
    "cast": [dict(dtype="bfloat16"), dict(dtype="float16")],
    "identity": [{}],
    "fixed_grid": [dict(step=0.25), dict(step=0.1, offset=0.03)],
    "size_adaptive": [dict(h0=1.0, alpha=0.25, n=100)],
    "stochastic_rounding": [dict(step=0.25)],
    "uniform": [
        dict(bits=4),
        dict(bits=1),
        dict(bits=3, symmetric=False),
        dict(bits=4, per_channel=True),
        dict(bits=5, scale_format="bfloat16"),
        dict(bits=2, symmetric=False, scale_format="float16", per_channel=True, channel_dim=-1),
        dict(bits=3, scale_format="pow2"),
        dict(bits=3, scale_format="public", scale=0.3),
        dict(bits=2, symmetric=False, scale_format="public", scale=0.5, zero_point=1),
    ],
    "sign": [{}],
    "ternary_absmean": [{}],
    "ternary_sparsity": [dict(sparsity=0.0), dict(sparsity=0.5), dict(sparsity=0.9)],
    "magnitude_pruning": [dict(sparsity=0.33), dict(sparsity=0.9)],
    "kmeans": [dict(bits=1), dict(bits=3), dict(bits=2, per_channel=True, channel_dim=-1)],
    "prune_then_quantize": [
        dict(sparsity=0.5, bits=4),
        dict(sparsity=0.3, bits=1),
        dict(sparsity=0.5, bits=3, symmetric=False, scale_format="bfloat16"),
    ],
}
CASES = [(name, params) for name, sets in CONFIGS.items() for params in sets]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in p.items()) or 'default'}" for name, p in CASES]
DETERMINISTIC = [(n, p) for n, p in CASES if Q.get(n, **p).deterministic]
DETERMINISTIC_IDS = [i for i, (n, p) in zip(CASE_IDS, CASES) if Q.get(n, **p).deterministic]

FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SHAPES = [(1,), (7,), (3, 5), (4, 1, 6), (1, 16), (8, 8)]


@st.composite
def weight_tensors(draw, dtype=torch.float64):
    """Either a seeded Gaussian tensor at some scale, or explicit values with zeros, ties and mixed signs."""
    shape = draw(st.sampled_from(SHAPES))
    size = math.prod(shape)
    if draw(st.booleans()):
        magnitude = st.one_of(st.just(0.0), st.just(1.0), st.floats(1e-3, 4.0))
        signed = st.tuples(st.booleans(), magnitude).map(lambda t: -t[1] if t[0] else t[1])
        w = torch.tensor(draw(st.lists(signed, min_size=size, max_size=size)), dtype=torch.float64)
    else:
        generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
        w = torch.randn(size, generator=generator, dtype=torch.float64) * draw(st.sampled_from([0.01, 1.0, 30.0]))
    return w.reshape(shape).to(dtype)


def test_every_family_is_exercised():
    assert set(CONFIGS) == set(Q.available())
    assert len(Q.available()) >= 11


# ----------------------------------------------------------------------------------------------------------------
# Properties over every family


@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
@FEW
@given(w=weight_tensors(), single=st.booleans())
def test_output_shape_dtype_device(name, params, w, single):
    q = Q.get(name, **params)
    if single:  # float32 weights: the release keeps float32
        w = w.float()
    out = q(w, generator=torch.Generator().manual_seed(0))
    assert out.shape == w.shape and out.dtype == w.dtype and out.device == w.device
    assert torch.isfinite(out).all()
    margins = q.margins(w)
    assert margins.shape == w.shape and margins.dtype == w.dtype
    assert (margins >= 0).all()
    row = q.describe(w)
    assert row["bits_per_weight"] >= 1.0 and 0.0 <= row["sparsity"] <= 1.0


@pytest.mark.parametrize("name,params", DETERMINISTIC, ids=DETERMINISTIC_IDS)
@FEW
@given(w=weight_tensors())
def test_margins_are_distance_to_cell_bounds(name, params, w):
    q = Q.get(name, **params)
    low, high = q.cell_bounds(w)
    assert low.shape == w.shape and high.shape == w.shape
    slack = 1e-12 * (1 + w.abs())
    assert (low <= w + slack).all() and (w <= high + slack).all()
    expected = torch.minimum(w - low, high - w).clamp_min(0)
    torch.testing.assert_close(q.margins(w), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,params", DETERMINISTIC, ids=DETERMINISTIC_IDS)
@FEW
@given(w=weight_tensors(), seed=st.integers(0, 1000))
def test_output_constant_inside_cell_with_grid_held(name, params, w, seed):
    """Any point of the cell (grid frozen at w) gives the same release; just outside a finite border it changes."""
    q = Q.get(name, **params)
    frozen = q.freeze(w)
    released = q(w)
    assert torch.equal(frozen(w), released)
    low, high = q.cell_bounds(w)
    # A random point strictly inside each cell (infinite sides replaced by a finite far point).
    far = 10 * (1 + w.abs())
    low_f = torch.where(torch.isfinite(low), low, w - far)
    high_f = torch.where(torch.isfinite(high), high, w + far)
    u = torch.rand(w.shape, generator=torch.Generator().manual_seed(seed), dtype=w.dtype) * 0.98 + 0.01
    inside = low_f + u * (high_f - low_f)
    assert torch.equal(frozen(inside), released)
    # Inside by less than the margin, around w.
    nudge = (2 * u - 1) * 0.99 * torch.minimum(q.margins(w), far)  # a single-level grid has infinite margins
    assert torch.equal(frozen(w + nudge), released)
    # Just beyond every finite border: the release of that coordinate changes (the cell is not too small).
    eps = 1e-9 * (1 + w.abs())
    for border, sign in ((high, 1.0), (low, -1.0)):
        finite = torch.isfinite(border)
        beyond = torch.where(finite, border + sign * eps, w)
        assert (frozen(beyond) != released)[finite].all()


@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_bad_weights_are_refused(name, params):
    q = Q.get(name, **params)
    w = torch.randn(3, 4, dtype=torch.float64)
    for bad_value in (math.nan, math.inf):
        bad = w.clone()
        bad.reshape(-1)[0] = bad_value
        for method in (q, q.margins, q.bits_per_weight, q.sparsity):
            with pytest.raises(ValueError, match="w contains 1 NaN or infinite"):
                method(bad)
    with pytest.raises(ValueError, match="w is empty"):
        q(torch.empty(0))
    with pytest.raises(TypeError, match="w must be a floating-point tensor"):
        q(torch.arange(3))
    with pytest.raises(TypeError, match="w must be a torch.Tensor"):
        q([0.1, 0.2])


LEVEL_LIMITS = {"sign": 2, "ternary_absmean": 3, "ternary_sparsity": 3}


@pytest.mark.parametrize("name,params", [(n, p) for n, p in CASES if "bits" in p or n in LEVEL_LIMITS])
@FEW
@given(w=weight_tensors())
def test_number_of_levels_at_most_two_to_the_bits(name, params, w):
    q = Q.get(name, **params)
    limit = LEVEL_LIMITS.get(name) or 2 ** params["bits"]
    if name == "prune_then_quantize" and params["bits"] == 1 and params.get("symmetric", True):
        limit += 1  # two levels +-scale plus the pruned zeros
    out = q(w)
    if params.get("per_channel"):  # one grid per channel: count the levels of each channel
        out = out.movedim(params.get("channel_dim", 0), 0)
        assert max(torch.unique(row).numel() for row in out) <= limit
    else:
        assert torch.unique(out).numel() <= limit
    if name == "kmeans":
        codebooks = q.codebook(w) if params.get("per_channel") else [q.codebook(w)]
        assert len(codebooks) == (w.shape[-1] if params.get("per_channel") else 1)
        assert max(c.numel() for c in codebooks) <= limit


SPARSE = [(n, p) for n, p in CASES if "sparsity" in p]


@pytest.mark.parametrize("name,params", SPARSE)
@FEW
@given(w=weight_tensors())
def test_achieved_sparsity_close_to_target(name, params, w):
    """k = round(s N) magnitudes are zeroed (capped at N - 1): |achieved - s| <= 1/(2N), or <= 1/N when the cap
    binds. Ties at the threshold are all kept, so with ties only achieved <= s + 1/(2N) is guaranteed."""
    q = Q.get(name, **params)
    target, size = params["sparsity"], w.numel()
    pruned = float((w.abs() < Q.magnitude_threshold(w, target)).double().mean())
    capped = math.floor(target * size + 0.5) > size - 1
    tolerance = (1.0 if capped else 0.5) / size + 1e-12
    assert pruned <= target + tolerance
    if torch.unique(w.abs()).numel() == size:  # no ties: the threshold sits strictly between magnitudes
        assert abs(pruned - target) <= tolerance
    achieved = q.sparsity(w)  # averaged in float32: compared to 1e-6
    if name == "prune_then_quantize":
        assert achieved >= pruned - 1e-6  # kept weights may still round to zero
    elif name == "magnitude_pruning":  # kept weights equal to 0 (only when tau = 0) stay 0
        zeroed = (w.abs() < Q.magnitude_threshold(w, target)) | (w == 0)
        assert achieved == pytest.approx(float(zeroed.double().mean()), abs=1e-6)
    else:
        assert achieved == pytest.approx(pruned, abs=1e-6)


def test_achieved_sparsity_on_large_gaussian_matches_target():
    w = torch.randn(10_000, generator=torch.Generator().manual_seed(3))
    for sparsity in (0.33, 0.5, 0.9):
        for name in ("ternary_sparsity", "magnitude_pruning"):
            assert Q.get(name, sparsity=sparsity).sparsity(w) == pytest.approx(sparsity, abs=0.5e-4)


PUBLIC_GRIDS = [(n, p) for n, p in CASES
                if n in ("fixed_grid", "size_adaptive") or p.get("scale_format") == "public"]
NEAREST_LEVEL = ["uniform", "sign", "ternary_absmean", "ternary_sparsity", "magnitude_pruning", "kmeans"]


@pytest.mark.parametrize("name,params", PUBLIC_GRIDS)
@FEW
@given(w=weight_tensors())
def test_idempotent_on_public_grids(name, params, w):
    q = Q.get(name, **params)
    once = q(w)
    assert torch.equal(q(once), once)
    assert q.scale_channel == "none"


@pytest.mark.parametrize("name,params", [(n, p) for n, p in CASES if n in NEAREST_LEVEL])
@FEW
@given(w=weight_tensors())
def test_frozen_grid_is_idempotent(name, params, w):
    """Every level lies in its own cell, so re-quantizing the release with the same grid changes nothing."""
    q = Q.get(name, **params)
    if name == "ternary_sparsity":
        # The float32 scale (mean kept |w|) can round below tau when every kept |w| is tied at tau (float64 w).
        grid = q.grid(w)
        assume(grid["scale"] >= grid["tau"])
    once = q(w)
    assert torch.equal(q.freeze(w)(once), once)


def test_prune_then_quantize_is_not_idempotent():
    # 4-bit absmax scale 1/7; tau = (0.29 + 0.31) / 2 = 0.3: the kept 0.31 rounds to 2/7 = 0.286 < tau.
    w = torch.tensor([0.1, 0.29, 0.31, 1.0, 0.5, 0.6], dtype=torch.float64)
    q = Q.get("prune_then_quantize", sparsity=2 / 6, bits=4)
    once = q(w)
    assert once[2].item() == pytest.approx(2 / 7)
    assert q.freeze(w)(once)[2] == 0


# ----------------------------------------------------------------------------------------------------------------
# Margins exactly zero on a threshold


def test_margin_zero_on_thresholds_of_public_grids():
    assert Q.get("fixed_grid", step=0.25).margins(torch.tensor([0.125, 0.0]))[0] == 0
    grid = Q.get("size_adaptive", h0=1.0, alpha=0.25, n=16)  # step 0.5
    assert grid.margins(torch.tensor([0.25, 0.5], dtype=torch.float64)).tolist() == [0.0, 0.25]
    public = Q.get("uniform", bits=3, scale_format="public", scale=0.25)  # levels 0.25 * {-3..3}
    assert public.margins(torch.tensor([0.375, 0.25, 5.0], dtype=torch.float64)).tolist() == [0.0, 0.125, 4.375]


def test_margin_zero_on_thresholds_of_data_dependent_grids():
    # symmetric 3 bits: absmax 3 -> scale 1, thresholds at k + 1/2
    m = Q.get("uniform", bits=3).margins(torch.tensor([3.0, 1.5, -0.5, 0.2]))
    assert m.tolist() == pytest.approx([0.5, 0.0, 0.0, 0.3])
    # affine 3 bits: range [-1, 6] -> scale 1, zero point 1, levels -1..6, thresholds at half-integers
    m = Q.get("uniform", bits=3, symmetric=False).margins(torch.tensor([-1.0, 6.0, 2.5, 0.25]))
    assert m.tolist() == [0.5, 0.5, 0.0, 0.25]
    for name, params in (("uniform", dict(bits=1)), ("sign", {})):
        assert Q.get(name, **params).margins(torch.tensor([0.0, 1.0, -2.0])).tolist() == [0.0, 1.0, 2.0]
    # ternary absmean: gamma = (3 + 2 + 1) / 3 = 2, thresholds +-1
    m = Q.get("ternary_absmean").margins(torch.tensor([3.0, -2.0, 1.0]))
    assert m.tolist() == [2.0, 1.0, 0.0]
    # ternary with sparsity, tie at the threshold: |w| sorted 1, 2, 2, 3, k = 2 -> tau = 2, both 2s kept
    w = torch.tensor([1.0, 2.0, -2.0, 3.0])
    assert Q.get("ternary_sparsity", sparsity=0.5).margins(w).tolist() == [1.0, 0.0, 0.0, 1.0]
    assert Q.get("ternary_sparsity", sparsity=0.5).sparsity(w) == 0.25  # ties kept: fewer zeros than asked
    assert Q.get("magnitude_pruning", sparsity=0.5).margins(w).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_uniform_symmetric_levels_and_error():
    w = torch.randn(200, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    q = Q.get("uniform", bits=4)
    scale = float(torch.tensor(float(w.abs().max() / 7), dtype=torch.float32))
    out = q(w)
    codes = out / scale
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-9)
    assert codes.abs().max() == pytest.approx(7)
    assert (out - w).abs().max() <= scale / 2 * (1 + 1e-9)  # absmax: no clipping
    assert q.scale_channel == "continuous" and q.scale_margins(w) is None
    assert q.bits_per_weight(w) == 4.0 and [s.name for s in q.storage(w)] == ["scale"]


def test_uniform_one_bit_is_plus_minus_absmax():
    w = torch.tensor([0.5, -2.0, 0.0, 1.0])
    assert Q.get("uniform", bits=1)(w).tolist() == [2.0, -2.0, 2.0, 2.0]


def test_uniform_affine_keeps_zero_and_covers_range():
    w = torch.tensor([0.3, 1.7, 0.9, 2.0], dtype=torch.float64)  # all positive: range extended to [0, 2]
    q = Q.get("uniform", bits=2, symmetric=False)
    assert q(torch.zeros(3, dtype=torch.float64)).eq(0).all()
    out = q(w)
    scale = float(torch.tensor(2.0 / 3, dtype=torch.float32))
    assert out.tolist() == pytest.approx([0.0, 3 * scale, scale, 3 * scale])  # 1.7 / scale = 2.55 -> 3
    assert [s.name for s in q.storage(w)] == ["scale", "zero_point"]
    assert q.zero_point_margins(w).item() == pytest.approx(scale / 2)  # zero point 0; min can drop scale/2


def test_uniform_clips_beyond_largest_public_level():
    q = Q.get("uniform", bits=3, scale_format="public", scale=0.5)  # levels 0.5 * {-3..3}
    w = torch.tensor([10.0, -10.0, 1.4])
    assert q(w).tolist() == [1.5, -1.5, 1.5]
    low, high = q.cell_bounds(w)
    assert high[0] == math.inf and low[1] == -math.inf and low[0] == 1.25


@pytest.mark.parametrize("scale_format", ["bfloat16", "float16", "pow2"])
def test_scale_stored_on_grid_and_its_margin(scale_format):
    raw = torch.tensor([0.0123456, 1.0 + 1e-4, 3.3e-4, 0.8, 100.3], dtype=torch.float64)
    stored, margin = Q.store_scale(raw, scale_format)
    assert (margin > 0).all()
    if scale_format == "pow2":
        assert torch.equal(stored, torch.exp2(torch.log2(stored).round()))
        assert ((torch.log2(stored) - torch.log2(raw)).abs() <= 0.5).all()
    else:
        dtype = getattr(torch, scale_format)
        assert torch.equal(stored.to(dtype).to(torch.float64), stored)
        assert torch.equal(stored, raw.to(dtype).to(torch.float64))  # nearest representable
    # Moving the statistic by less than the margin keeps the stored scale; by a bit more, on one side, changes it.
    for factor in (-0.99, 0.99):
        assert torch.equal(Q.store_scale(raw + factor * margin, scale_format)[0], stored)
    below, above = (Q.store_scale(raw + f * margin, scale_format)[0] for f in (-1.01, 1.01))
    assert ((below != stored) | (above != stored)).all()


def test_uniform_scale_margins_follow_the_raw_statistic():
    w = torch.tensor([0.1, -1.3, 0.7], dtype=torch.float64)
    q = Q.get("uniform", bits=4, scale_format="bfloat16")
    stored, margin = Q.store_scale(torch.tensor([1.3 / 7], dtype=torch.float64), "bfloat16")
    assert q.scale_channel == "stored-on-grid"
    torch.testing.assert_close(q.scale_margins(w), margin)
    assert q(w).tolist() == pytest.approx((torch.round(w / stored) * stored).tolist())


def test_scale_overflowing_its_format_is_refused():
    with pytest.raises(ValueError, match="scale_format='float16'"):
        Q.get("uniform", bits=8, scale_format="float16")(torch.tensor([1e9, 0.0]))


@FEW
@given(w=weight_tensors().filter(lambda t: t.dim() >= 1))
def test_per_channel_equals_per_tensor_on_a_single_row(w):
    row = w.reshape(1, -1)
    for params in (dict(bits=3), dict(bits=2, symmetric=False), dict(bits=4, scale_format="bfloat16")):
        per_tensor, per_channel = Q.get("uniform", **params), Q.get("uniform", per_channel=True, **params)
        assert torch.equal(per_tensor(row), per_channel(row))
        assert torch.equal(per_tensor.margins(row), per_channel.margins(row))
        if per_tensor.scale_margins(row) is not None:
            assert torch.equal(per_tensor.scale_margins(row), per_channel.scale_margins(row))


def test_per_channel_is_per_tensor_row_by_row():
    w = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(4))
    for dim in (0, 1, -1):
        q = Q.get("uniform", bits=3, per_channel=True, channel_dim=dim)
        out = q(w)
        single = Q.get("uniform", bits=3)
        for index in range(w.shape[dim]):
            assert torch.equal(out.select(dim, index), single(w.select(dim, index)))
        assert len(q.scale_margins(w) or []) == 0 and q.storage(w)[0].count == w.shape[dim]
    with pytest.raises(ValueError, match="channel"):
        Q.get("uniform", bits=3, per_channel=True).freeze(w)(w[:2])


def test_sign_and_ternary_absmean_values():
    w = torch.tensor([0.5, -1.5, 0.0, 2.0, -0.1])
    mean_abs = 4.1 / 5
    assert Q.get("sign")(w).tolist() == pytest.approx([mean_abs, -mean_abs, mean_abs, mean_abs, -mean_abs])
    # gamma = 0.82: codes round(w / gamma) clipped -> 1, -1, 0, 1, 0
    assert Q.get("ternary_absmean")(w).tolist() == pytest.approx([0.82, -0.82, 0.0, 0.82, 0.0])
    assert Q.get("ternary_absmean").bits_per_weight(w) == pytest.approx(math.log2(3))


def test_ternary_absmean_zero_fraction_on_gaussian_weights():
    """gamma = E|w| = sigma sqrt(2/pi); zeros where |w| < gamma/2: P(|Z| < sqrt(2/pi)/2) = 0.3101."""
    expected = 2 * norm.cdf(math.sqrt(2 / math.pi) / 2) - 1
    assert expected == pytest.approx(0.3101, abs=1e-4)
    w = torch.randn(200_000, generator=torch.Generator().manual_seed(5)) * 0.02
    # binomial sd 0.001; the estimated gamma moves the threshold by far less
    assert Q.get("ternary_absmean").sparsity(w) == pytest.approx(expected, abs=0.005)


def test_ternary_sparsity_scale_is_mean_of_kept_and_zero_sparsity_is_sign():
    w = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5, 0.6], dtype=torch.float64)
    out = Q.get("ternary_sparsity", sparsity=0.5)(w)
    scale = float(torch.tensor(1.5 / 3, dtype=torch.float32))
    assert out.tolist() == pytest.approx([0, 0, 0, -scale, scale, scale])
    v = torch.randn(50, generator=torch.Generator().manual_seed(6))
    assert torch.equal(Q.get("ternary_sparsity", sparsity=0.0)(v), Q.get("sign")(v))


def test_magnitude_pruning_keeps_the_largest_exactly():
    w = torch.randn(1000, generator=torch.Generator().manual_seed(7))
    q = Q.get("magnitude_pruning", sparsity=0.9)
    out = q(w)
    kept = torch.topk(w.abs(), 100).indices
    mask = torch.zeros(1000, dtype=torch.bool)
    mask[kept] = True
    assert torch.equal(out[mask], w[mask]) and (out[~mask] == 0).all()
    assert q.margins(w)[mask].eq(0).all() and q.margins(w)[~mask].gt(0).all()
    assert q.bits_per_weight(w) == pytest.approx(1 + 0.1 * 32)
    assert Q.get("magnitude_pruning", sparsity=0.0).bits_per_weight(w) == 32.0


def test_prune_then_quantize_prunes_then_rounds():
    w = torch.tensor([0.05, -0.1, 0.2, -0.9, 1.4, 0.6], dtype=torch.float64)
    q = Q.get("prune_then_quantize", sparsity=0.5, bits=3)  # tau = (0.2 + 0.6) / 2 = 0.4, scale = 1.4 / 3
    scale = float(torch.tensor(1.4 / 3, dtype=torch.float32))
    assert q(w).tolist() == pytest.approx([0, 0, 0, -2 * scale, 3 * scale, 1 * scale])
    low, high = q.cell_bounds(w)
    # 0.6 rounds to 1 * scale; its uniform cell [0.5, 1.5] * scale is cut at tau = 0.4 > 0.5 * scale
    assert (low[5].item(), high[5].item()) == pytest.approx((0.4, 1.5 * scale))
    assert (low[3].item(), high[3].item()) == pytest.approx((-2.5 * scale, -1.5 * scale))
    assert (low[4].item(), high[4].item()) == pytest.approx((2.5 * scale, math.inf))  # clipped top level
    # zero cell: (-tau, tau) joined with the uniform zero cell [-scale/2, scale/2] -> (-0.4, 0.4)
    assert (low[0].item(), high[0].item()) == pytest.approx((-0.4, 0.4))
    # with a coarser grid the uniform zero cell is the wider one: 2 bits, scale 1.4, zero cell [-0.7, 0.7]
    coarse = Q.get("prune_then_quantize", sparsity=0.5, bits=2)
    assert coarse(w)[5] == 0 and coarse.cell_bounds(w)[1][0].item() == pytest.approx(0.7)
    assert q.bits_per_weight(w) == pytest.approx(min(3, 1 + 0.5 * 3))


# ----------------------------------------------------------------------------------------------------------------
# Stochastic rounding


def test_stochastic_rounding_reproducible_and_unbiased():
    q = Q.get("stochastic_rounding", step=0.25)
    w = torch.tensor([0.0, 0.1, -0.33, 0.24, 1.125, -2.01], dtype=torch.float64)
    draws = w.expand(40_000, -1)
    first = q(draws, generator=torch.Generator().manual_seed(11))
    again = q(draws, generator=torch.Generator().manual_seed(11))
    assert torch.equal(first, again)
    assert not torch.equal(first, q(draws, generator=torch.Generator().manual_seed(12)))
    assert torch.isin(first, torch.arange(-12, 9, dtype=torch.float64) * 0.25).all()
    p = q.probability_up(w)
    standard_error = 0.25 * torch.sqrt(p * (1 - p) / draws.shape[0])
    error = (first.mean(0) - w).abs()
    assert (error <= 5 * standard_error + 1e-12).all()  # 5 standard errors: false alarm ~ 1e-6 per coordinate
    assert error[0] == 0  # on a level: never moves
    assert q.margins(w).eq(0).all() and not q.deterministic


# ----------------------------------------------------------------------------------------------------------------
# Bad parameters


BAD_PARAMETERS = [
    ("uniform", dict(bits="4"), TypeError, "bits must be an integer"),
    ("uniform", dict(bits=4.0), TypeError, "bits must be an integer"),
    ("uniform", dict(bits=True), TypeError, "bits must be an integer"),
    ("uniform", dict(bits=0), ValueError, "bits must be >= 1"),
    ("uniform", dict(bits=17), ValueError, "bits must be <= 16"),
    ("kmeans", dict(bits=2.5), TypeError, "bits must be an integer"),
    ("prune_then_quantize", dict(sparsity=0.5, bits=-1), ValueError, "bits must be >= 1"),
    ("ternary_sparsity", dict(sparsity=1.0), ValueError, "sparsity must be < 1"),
    ("magnitude_pruning", dict(sparsity=-0.1), ValueError, "sparsity must be >= 0"),
    ("magnitude_pruning", dict(sparsity="0.5"), TypeError, "sparsity must be a real number"),
    ("prune_then_quantize", dict(sparsity=1.5, bits=4), ValueError, "sparsity must be < 1"),
    ("uniform", dict(bits=4, scale_format="int8"), ValueError, "unknown scale_format 'int8'"),
    ("uniform", dict(bits=4, scale_format=None), TypeError, "scale_format must be a string"),
    ("uniform", dict(bits=4, scale_format="public"), ValueError, "needs the public scale: pass scale="),
    ("uniform", dict(bits=4, scale_format="public", scale=-1.0), ValueError, "scale must be > 0"),
    ("uniform", dict(bits=4, scale=0.1), ValueError, "scale= is only used with scale_format='public'"),
    ("uniform", dict(bits=4, symmetric=False, scale_format="public", scale=0.1), ValueError, "zero_point="),
    ("uniform", dict(bits=2, symmetric=False, scale_format="public", scale=0.1, zero_point=4), ValueError,
     "zero_point must be <= 3"),
    ("uniform", dict(bits=2, scale_format="public", scale=0.1, zero_point=1), ValueError,
     "zero_point= is only used with symmetric=False"),
    ("uniform", dict(bits=4, symmetric="yes"), TypeError, "symmetric must be True or False"),
    ("uniform", dict(bits=4, per_channel=1), TypeError, "per_channel must be True or False"),
    ("uniform", dict(bits=4, channel_dim="0"), TypeError, "channel_dim must be an integer"),
    ("sign", dict(bits=3), TypeError, "bad parameters for quantizer 'sign'"),
    ("fixed_grid", dict(step=0.0), ValueError, "step must be > 0"),
]


@pytest.mark.parametrize("name,params,error,message", BAD_PARAMETERS)
def test_bad_parameters_raise_naming_the_argument(name, params, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        Q.get(name, **params)


def test_bad_names_and_channel_dim_out_of_range():
    with pytest.raises(ValueError, match="unknown quantizer 'int4'; available: cast, fixed_grid"):
        Q.get("int4")
    with pytest.raises(TypeError, match="quantizer name must be a string"):
        Q.get(4)
    w = torch.randn(3, 4)
    for dim in (2, -3):
        q = Q.get("uniform", bits=4, per_channel=True, channel_dim=dim)
        with pytest.raises(ValueError, match=f"channel_dim={dim} is out of range for w with 2 dimension"):
            q(w)
    with pytest.raises(ValueError, match="channel_dim=0 is out of range for w with 0 dimension"):
        Q.get("uniform", bits=4, per_channel=True)(torch.tensor(1.0))
    with pytest.raises(ValueError, match="needs the sample size"):
        Q.get("size_adaptive", h0=1.0, alpha=0.25)(w)


@pytest.mark.parametrize("name,params", [(n, p) for n, p in CASES if not p.get("per_channel")], ids=[
    i for i, (n, p) in zip(CASE_IDS, CASES) if not p.get("per_channel")])
def test_scalar_and_all_zero_weights(name, params):
    q = Q.get(name, **params)
    scalar = torch.tensor(0.3, dtype=torch.float64)
    assert q(scalar, generator=torch.Generator().manual_seed(0)).shape == ()
    zeros = torch.zeros(2, 3)
    out = q(zeros, generator=torch.Generator().manual_seed(0))
    if name not in ("sign", "ternary_sparsity") and not (name, params.get("bits")) == ("uniform", 1) and not (
            name == "prune_then_quantize" and params["bits"] == 1) and "offset" not in params:
        assert out.eq(0).all()


# ----------------------------------------------------------------------------------------------------------------
# CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_cuda_matches_cpu(name, params):
    q = Q.get(name, **params)
    w = torch.randn(16, 33, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    gpu = w.cuda()
    out = q(gpu, generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.device == gpu.device and out.dtype == gpu.dtype and out.shape == gpu.shape
    if q.deterministic:
        torch.testing.assert_close(out.cpu(), q(w))
        torch.testing.assert_close(q.margins(gpu).cpu(), q.margins(w))
        assert q.freeze(gpu)(gpu).device == gpu.device
    assert q.describe(gpu)["sparsity"] == pytest.approx(q.describe(w)["sparsity"], abs=0.05)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_keep_their_dtype(dtype):
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(10)).to(dtype)
    for name, params in CASES:
        q = Q.get(name, **params)
        out = q(w, generator=torch.Generator().manual_seed(0))
        assert out.dtype == dtype and out.shape == w.shape, name
        assert q.margins(w).dtype == dtype and (q.margins(w) >= 0).all(), name


def test_prune_then_quantize_reports_the_uniform_grid_of_the_pruned_weights():
    w = torch.tensor([-0.05, -0.3, 0.2, 0.9, 1.4, 0.6], dtype=torch.float64)  # tau = 0.25: -0.05, 0.2 pruned
    q = Q.get("prune_then_quantize", sparsity=1 / 3, bits=3, symmetric=False, scale_format="bfloat16")
    pruned = torch.where(w.abs() < 0.25, 0.0, w)
    uniform = Q.get("uniform", bits=3, symmetric=False, scale_format="bfloat16")
    assert torch.equal(q.scale_margins(w), uniform.scale_margins(pruned))
    assert torch.equal(q.zero_point_margins(w), uniform.zero_point_margins(pruned))
    assert q.scale_channel == "stored-on-grid"
