"""k-means codebooks: the exact one-dimensional optimum (brute force on small vectors, scikit-learn's best of ten
on large ones), per tensor and per channel, cells at the midpoints between levels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SklearnKMeans

from mislib import quantizers as Q


def sum_of_squares(x: torch.Tensor, codebook: torch.Tensor) -> float:
    """Within-cluster sum of squares of x assigned to its nearest level."""
    distance = (x.reshape(-1, 1) - codebook.reshape(1, -1)).abs()
    return float(((x - codebook[distance.argmin(dim=1)]) ** 2).sum())


def brute_force(x: torch.Tensor, levels: int) -> float:
    """The least sum of squares over every split of the sorted values into at most ``levels`` contiguous runs (an
    optimal 1-d clustering is contiguous)."""
    ordered = torch.sort(x.to(torch.float64)).values
    best = math.inf
    for clusters in range(1, min(levels, ordered.numel()) + 1):
        for cuts in itertools.combinations(range(1, ordered.numel()), clusters - 1):
            edges = (0, *cuts, ordered.numel())
            best = min(best, sum(float(((run - run.mean()) ** 2).sum())
                                 for run in (ordered[a:b] for a, b in zip(edges[:-1], edges[1:]))))
    return best


def test_equals_brute_force_on_small_vectors():
    generator = torch.Generator().manual_seed(0)
    for trial in range(150):
        size = int(torch.randint(2, 10, (1,), generator=generator))
        x = torch.randn(size, generator=generator, dtype=torch.float64) * (1 + trial % 3)
        if trial % 4 == 0:  # ties
            x = torch.round(x * 2) / 2
        for levels in (1, 2, 3, 4):
            optimum = brute_force(x, levels)
            codebook = Q.optimal_codebook(x, levels)
            assert codebook.numel() <= levels
            assert sum_of_squares(x, codebook) == pytest.approx(optimum, rel=1e-9, abs=1e-12)
    # The quantizer: the same optimum up to the float32 rounding of the codebook.
    x = torch.tensor([-2.0, -1.9, -0.1, 0.0, 0.2, 3.0, 3.3, 7.0], dtype=torch.float64)
    for bits in (1, 2):
        release = Q.get("kmeans", bits=bits)(x)
        assert float(((release - x) ** 2).sum()) == pytest.approx(brute_force(x, 2 ** bits), rel=1e-6)


def _large_vectors():
    generator = torch.Generator().manual_seed(1)
    bimodal = torch.cat([torch.randn(2800, generator=generator, dtype=torch.float64) * 0.1 - 1,
                         torch.randn(1200, generator=generator, dtype=torch.float64) * 0.5 + 2])
    normal = torch.randn(4000, generator=generator, dtype=torch.float64)
    chi2 = torch.randn(4000, generator=generator, dtype=torch.float64) ** 2 + 0.5
    heavy_tailed = normal / chi2.sqrt()  # Student-like tails
    return {"bimodal": bimodal, "heavy_tailed": heavy_tailed}


@pytest.mark.parametrize("name", ["bimodal", "heavy_tailed"])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_at_most_scikit_learn_best_of_ten_on_large_vectors(name, bits):
    x = _large_vectors()[name]
    exact = sum_of_squares(x, Q.optimal_codebook(x, 2 ** bits))
    sklearn = SklearnKMeans(2 ** bits, n_init=10, random_state=0).fit(x.numpy().reshape(-1, 1)).inertia_
    assert exact <= sklearn * (1 + 1e-9)
    release = Q.get("kmeans", bits=bits)(x)  # float32 codebook: within rounding of the optimum
    assert float(((release - x) ** 2).sum()) <= exact * (1 + 1e-6)


def test_codebook_is_a_lloyd_fixed_point():
    """Each level is the mean of the weights assigned to it (the optimum is a fixed point of Lloyd's step)."""
    w = torch.randn(4096, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for bits, reference in ((2, 462.42), (3, 134.59)):
        # reference: scikit-learn KMeans(n_init=10, random_state=0) within-cluster sum of squares on these w
        q = Q.get("kmeans", bits=bits)
        out = q(w)
        codebook = q.codebook(w)
        assert codebook.numel() == 2**bits
        for level in codebook:
            assert level.item() == pytest.approx(float(w[out == level].mean()), rel=1e-6)
        assert float(((out - w) ** 2).sum()) <= reference * (1 + 1e-5)


def test_recovers_separated_clusters_and_handles_few_values():
    centres = torch.tensor([-3.0, -1.0, 0.5, 4.0], dtype=torch.float64)
    noise = torch.randn(400, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 0.05
    w = centres.repeat(100) + noise
    codebook = Q.get("kmeans", bits=2).codebook(w)
    assert codebook.tolist() == pytest.approx(centres.tolist(), abs=0.02)
    few = torch.tensor([1.0, 1.0, 2.0])
    assert Q.get("kmeans", bits=3)(few).tolist() == [1.0, 1.0, 2.0]
    assert Q.get("kmeans", bits=3).codebook(few).tolist() == [1.0, 2.0]  # no level for an empty cluster
    assert Q.get("kmeans", bits=3).margins(torch.tensor([0.5, 0.5])).tolist() == [math.inf, math.inf]
    # Ties across a would-be boundary: equal weights all take the same level.
    tied = torch.tensor([0.0] * 5 + [1.0] * 5 + [1.1, 5.0], dtype=torch.float64)
    out = Q.get("kmeans", bits=1)(tied)
    assert torch.unique(out[:5]).numel() == 1 and torch.unique(out[5:10]).numel() == 1


def test_margin_zero_on_midpoint_between_levels():
    w = torch.randn(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    q = Q.get("kmeans", bits=2)
    codebook = q.codebook(w)
    midpoints = (codebook[1:] + codebook[:-1]) / 2
    frozen = q.freeze(w)
    assert (frozen.margins(midpoints) == 0).all()
    assert (frozen.margins(codebook[1:-1]) > 0).all()
    torch.testing.assert_close(frozen.margins(w), q.margins(w), rtol=0, atol=0)
    low, high = q.cell_bounds(w)
    padded = torch.cat([torch.tensor([-math.inf], dtype=torch.float64), midpoints,
                        torch.tensor([math.inf], dtype=torch.float64)])
    assert torch.isin(low, padded).all() and torch.isin(high, padded).all()
    assert frozen(midpoints).tolist() == codebook[:-1].tolist()  # a weight on a midpoint takes the lower level


def test_per_channel_is_per_tensor_row_by_row():
    w = torch.randn(5, 3, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for dim in (0, 1, -1):
        q = Q.get("kmeans", bits=2, per_channel=True, channel_dim=dim)
        single = Q.get("kmeans", bits=2)
        out, low = q(w), q.cell_bounds(w)[0]
        for index in range(w.shape[dim]):
            assert torch.equal(out.select(dim, index), single(w.select(dim, index)))
            assert torch.equal(low.select(dim, index), single.cell_bounds(w.select(dim, index))[0])
        assert len(q.codebook(w)) == w.shape[dim]
        assert q.storage(w)[0].count == w.shape[dim] * 4
    with pytest.raises(ValueError, match="channel"):
        Q.get("kmeans", bits=2, per_channel=True).freeze(w)(w[:2])


def test_optimal_codebook_refuses_bad_input():
    with pytest.raises(ValueError, match="levels must be >= 1"):
        Q.optimal_codebook(torch.ones(3), 0)
    with pytest.raises(TypeError, match="values must be a torch.Tensor"):
        Q.optimal_codebook(np.ones(3), 2)


def test_n_iter_of_lloyds_algorithm_is_deprecated_and_ignored():
    w = torch.randn(64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with pytest.warns(DeprecationWarning, match=r"n_iter=...\) is ignored: the codebook is now the exact optimum"):
        old = Q.get("kmeans", bits=2, n_iter=5)
    assert torch.equal(old(w), Q.get("kmeans", bits=2)(w))
    with pytest.raises(ValueError, match="n_iter must be >= 1"):
        Q.get("kmeans", bits=2, n_iter=0)
