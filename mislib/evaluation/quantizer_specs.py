"""Quantizers named by ``(label, name, parameters)`` triples: the one catalogue the studies draw from, and how a
triple becomes a quantizer (``build_quantizers``).

A triple is JSON-serialisable, so a study's configuration (hashed by ``mislib.infra.tables.cached_table``) can
hold its quantizers. A parameter ``"public:<b>"`` stands for a public b-bit scale: the absmax step
``max|w| / (2**(b-1) - 1)`` of a reference model trained on public data, known before the private model is
trained; ``"public:<b>*<f>"`` is the fraction ``f`` of that step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from mislib.infra.checks import check_float

# Every quantizer the synthetic (notebook 05) and molecular (notebook 06) studies audit, in the order their
# figures and tables list them. All but identity, pruning and the public grids publish a float scale or
# codebook computed from the weights (a continuous channel, THEORY.md §2).
QUANTIZER_SPECS = (
    ("identity", "identity", {}),
    ("uniform 8-bit", "uniform", {"bits": 8}),
    ("uniform 4-bit", "uniform", {"bits": 4}),
    ("uniform 3-bit", "uniform", {"bits": 3}),
    ("uniform 2-bit", "uniform", {"bits": 2}),
    ("uniform 4-bit, power-of-two scale", "uniform", {"bits": 4, "scale_format": "pow2"}),
    ("uniform 4-bit, public scale", "uniform", {"bits": 4, "scale_format": "public", "scale": "public:4"}),
    ("sign", "sign", {}),
    ("ternary absmean", "ternary_absmean", {}),
    ("ternary 33% sparse", "ternary_sparsity", {"sparsity": 0.33}),
    ("ternary 50% sparse", "ternary_sparsity", {"sparsity": 0.5}),
    ("ternary 90% sparse", "ternary_sparsity", {"sparsity": 0.9}),
    ("pruning 33%", "magnitude_pruning", {"sparsity": 0.33}),
    ("pruning 50%", "magnitude_pruning", {"sparsity": 0.5}),
    ("pruning 90%", "magnitude_pruning", {"sparsity": 0.9}),
    ("k-means 3-bit", "kmeans", {"bits": 3}),
    ("stochastic rounding, public 4-bit grid", "stochastic_rounding", {"step": "public:4"}),
)


def select_specs(labels: Sequence[str], catalogue=QUANTIZER_SPECS) -> tuple:
    """The triples of ``catalogue`` with these labels, in the order of ``labels``.

    Raises
    ------
    ValueError
        If a label is not in the catalogue (the message lists the labels it has).
    """
    by_label = {spec[0]: spec for spec in catalogue}
    unknown = [label for label in labels if label not in by_label]
    if unknown:
        raise ValueError(f"labels {unknown} are not in the catalogue; it has {list(by_label)}")
    return tuple(by_label[label] for label in labels)


def build_quantizers(specs, public_absmax: float | None = None) -> dict:
    """``{label: Quantizer}`` from ``(label, name, params)`` triples; a parameter ``"public:<b>"`` becomes the
    public b-bit step ``public_absmax / (2**(b-1) - 1)`` and ``"public:<b>*<f>"`` the fraction f of it."""
    from mislib import quantizers as Q

    out = {}
    for label, name, params in specs:
        resolved = {}
        for key, value in params.items():
            if isinstance(value, str) and value.startswith("public:"):
                if public_absmax is None:
                    raise ValueError(f"quantizer {label!r} needs a public scale: pass public_absmax")
                bits, _, fraction = value.split(":", 1)[1].partition("*")
                step = check_float("public_absmax", public_absmax, low=0.0, low_open=True) / (2 ** (int(bits) - 1) - 1)
                value = step * (float(fraction) if fraction else 1.0)
            resolved[key] = value
        out[label] = Q.get(name, **resolved)
    return out


# The factorial design of issue 14 (bits or sparsity?): the width of the value grid crossed with the fraction of
# exact zeros. Rows (nominal bits): sign (1), ternary (log2 3), uniform 3-, 4- and 8-bit, the 16-bit casts, and
# float32 (magnitude pruning keeps the surviving weights exactly). Columns: the pruning fraction 0, 0.5, 0.75, 0.9,
# 0.95 (sign has no zeros; ternary with none is sign; the casts are not pruned). Uniform 2-bit is left out: its
# symmetric grid has three levels, so it is a ternary grid with an absmax threshold under a 2-bit name. A uniform
# grid has a zero level, so its unpruned releases already hold some zeros (on Gaussian weights about 40% at
# 3 bits, 18% at 4, 1% at 8): the audit's achieved ``sparsity`` rows say how many. Labels are
# "<grid><bits> z<percent of zeros>"; none repeats a QUANTIZER_SPECS label. The identity (float32, no zeros) is
# the reference of every cell and is not repeated here.
FACTORIAL_SPARSITIES = (0.5, 0.75, 0.9, 0.95)
FACTORIAL_UNIFORM_BITS = (3, 4, 8)
FACTORIAL_SPECS = (
    ("sign z0", "sign", {}),
    *((f"tern z{round(100 * s)}", "ternary_sparsity", {"sparsity": s}) for s in FACTORIAL_SPARSITIES),
    *(spec for b in FACTORIAL_UNIFORM_BITS for spec in (
        (f"int{b} z0", "uniform", {"bits": b}),
        *((f"int{b} z{round(100 * s)}", "prune_then_quantize", {"sparsity": s, "bits": b})
          for s in FACTORIAL_SPARSITIES))),
    ("bf16 z0", "cast", {"dtype": "bfloat16"}),
    ("fp16 z0", "cast", {"dtype": "float16"}),
    *((f"fp32 z{round(100 * s)}", "magnitude_pruning", {"sparsity": s}) for s in FACTORIAL_SPARSITIES),
)

# Nominal width of each factorial family's grid (bits per weight before any sparse storage).
_NOMINAL_BITS = {"identity": 32.0, "magnitude_pruning": 32.0, "sign": 1.0, "ternary_sparsity": math.log2(3)}
_FAMILIES = {"identity": "float32", "magnitude_pruning": "float32", "sign": "sign", "ternary_sparsity": "ternary",
             "uniform": "uniform", "prune_then_quantize": "uniform", "cast": "cast"}


def factorial_design(specs=FACTORIAL_SPECS) -> pd.DataFrame:
    """Where each release of a factorial grid sits in the design: its nominal bits and target sparsity.

    Parameters
    ----------
    specs : sequence of (label, name, params)
        Triples of the families of the design: ``identity``, ``sign``, ``ternary_sparsity``, ``uniform``,
        ``prune_then_quantize``, ``cast`` (bfloat16/float16) and ``magnitude_pruning``.

    Returns
    -------
    pandas.DataFrame
        One row per triple, in order: ``label``, ``nominal_bits`` (the width of the value grid: 1 for sign,
        log2 3 for ternary, ``bits`` for uniform grids, 16 for the casts, 32 for float32 releases),
        ``target_sparsity`` (the pruning fraction; 0 where nothing is pruned) and ``family`` (``"sign"``,
        ``"ternary"``, ``"uniform"``, ``"cast"``, ``"float32"``).

    Raises
    ------
    ValueError
        If a triple's quantizer is not one of these families (e.g. k-means, stochastic rounding), or a label
        repeats.
    """
    rows = []
    for label, name, params in specs:
        if name not in _FAMILIES:
            raise ValueError(f"specs: {label!r} uses quantizer {name!r}, which is not in the factorial design "
                             f"(families {sorted(_FAMILIES)})")
        bits = 16.0 if name == "cast" else float(params["bits"]) if "bits" in params else _NOMINAL_BITS[name]
        rows.append({"label": label, "nominal_bits": bits, "target_sparsity": float(params.get("sparsity", 0.0)),
                     "family": _FAMILIES[name]})
    design = pd.DataFrame(rows, columns=["label", "nominal_bits", "target_sparsity", "family"])
    repeated = sorted(design["label"][design["label"].duplicated()])
    if repeated:
        raise ValueError(f"specs: labels {repeated} repeat")
    return design
