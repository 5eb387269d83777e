"""The factorial design of bits against sparsity (``FACTORIAL_SPECS``, ``factorial_design``)."""

import math

import pytest
import torch

from mislib.evaluation.quantizer_specs import (FACTORIAL_SPECS, QUANTIZER_SPECS, build_quantizers,
                                               factorial_design)


@pytest.fixture(scope="module")
def gaussian():
    return torch.randn(20_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def test_factorial_labels_are_short_unique_and_new():
    labels = [spec[0] for spec in FACTORIAL_SPECS]
    assert 25 <= len(labels) <= 35
    assert len(set(labels)) == len(labels)
    assert not set(labels) & {spec[0] for spec in QUANTIZER_SPECS}
    assert max(len(label) for label in labels) <= 10


def test_factorial_design_places_each_release_in_its_cell():
    design = factorial_design().set_index("label")
    assert list(design.index) == [spec[0] for spec in FACTORIAL_SPECS]
    assert design.loc["sign z0"].tolist() == [1.0, 0.0, "sign"]
    assert design.loc["tern z90", "nominal_bits"] == pytest.approx(math.log2(3))
    assert design.loc["int4 z75"].tolist() == [4.0, 0.75, "uniform"]
    assert design.loc["int8 z0"].tolist() == [8.0, 0.0, "uniform"]
    assert design.loc["bf16 z0"].tolist() == [16.0, 0.0, "cast"]
    assert design.loc["fp32 z95"].tolist() == [32.0, 0.95, "float32"]
    # a full crossing where the grid allows zeros: uniform and float32 rows have every pruning fraction
    for family, levels in [("uniform", {0.0, 0.5, 0.75, 0.9, 0.95}), ("ternary", {0.5, 0.75, 0.9, 0.95})]:
        rows = design[design["family"] == family]
        for bits, cell in rows.groupby("nominal_bits"):
            assert set(cell["target_sparsity"]) == levels, (family, bits)


def test_factorial_design_refuses_what_it_cannot_place():
    with pytest.raises(ValueError, match="kmeans"):
        factorial_design([("k", "kmeans", {"bits": 3})])
    with pytest.raises(ValueError, match="repeat"):
        factorial_design([("a", "sign", {}), ("a", "uniform", {"bits": 4})])


def test_every_factorial_spec_builds_and_reaches_its_sparsity(gaussian):
    quantizers = build_quantizers(FACTORIAL_SPECS)
    design = factorial_design().set_index("label")
    for label, q in quantizers.items():
        target, family = design.loc[label, "target_sparsity"], design.loc[label, "family"]
        achieved = q.sparsity(gaussian)
        released = q(gaussian)
        assert released.shape == gaussian.shape
        if family == "uniform" and target == 0:
            # the uniform grid's zero level catches |w| < step / 2: a few percent at 8 bits, more below
            assert achieved < {3.0: 0.6, 4.0: 0.3, 8.0: 0.03}[design.loc[label, "nominal_bits"]], label
        elif family == "uniform" and target == 0.5 and design.loc[label, "nominal_bits"] == 3:
            assert target - 0.005 <= achieved < 0.6, label   # the 3-bit zero cell reaches past the pruning cut
        else:
            assert achieved == pytest.approx(target, abs=0.005), label


def test_factorial_stored_bits_count_the_sparse_index(gaussian):
    quantizers = build_quantizers(FACTORIAL_SPECS)
    bits = {label: q.bits_per_weight(gaussian) for label, q in quantizers.items()}
    assert bits["sign z0"] == 1.0 and bits["bf16 z0"] == bits["fp16 z0"] == 16.0
    assert bits["int8 z0"] == 8.0
    # pruned releases: a 1-bit mask plus the kept weights' codes, when that is cheaper than dense storage
    assert bits["int8 z90"] == pytest.approx(1 + 0.1 * 8, abs=0.01)
    assert bits["int4 z50"] == pytest.approx(1 + 0.5 * 4, abs=0.01)
    assert bits["fp32 z95"] == pytest.approx(1 + 0.05 * 64, abs=0.01)   # float64 weights here
    assert bits["tern z95"] == pytest.approx(math.log2(3))                # dense ternary codes
