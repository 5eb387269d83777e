"""Quantizers named by ``(label, name, parameters)`` triples: the one catalogue the studies draw from, and how a
triple becomes a quantizer (``build_quantizers``).

A triple is JSON-serialisable, so a study's configuration (hashed by ``mislib.infra.tables.cached_table``) can
hold its quantizers. A parameter ``"public:<b>"`` stands for a public b-bit scale: the absmax step
``max|w| / (2**(b-1) - 1)`` of a reference model trained on public data, known before the private model is
trained; ``"public:<b>*<f>"`` is the fraction ``f`` of that step.
"""

from __future__ import annotations

from collections.abc import Sequence

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
