"""Notebook 00 (overview): one quantizer of every family, with the parameters of the overview figure, and what
each releases on the same weights."""

from __future__ import annotations

import torch

from mislib.evaluation.quantizer_specs import build_quantizers

# (label, quantizer name, parameters): every family of mislib.quantizers, in the order of the overview figure.
OVERVIEW_QUANTIZERS = (
    ("identity", "identity", {}),
    ("fixed grid, step 0.01", "fixed_grid", {"step": 0.01}),
    ("size-adaptive, n = 1000", "size_adaptive", {"h0": 0.1, "alpha": 0.25, "n": 1000}),
    ("stochastic rounding, step 0.01", "stochastic_rounding", {"step": 0.01}),
    ("uniform 4-bit absmax", "uniform", {"bits": 4}),
    ("uniform 4-bit per row, bf16 scale", "uniform", {"bits": 4, "per_channel": True, "scale_format": "bfloat16"}),
    ("uniform 3-bit affine, pow2 scale", "uniform", {"bits": 3, "symmetric": False, "scale_format": "pow2"}),
    ("uniform 3-bit, public scale 0.015", "uniform", {"bits": 3, "scale_format": "public", "scale": 0.015}),
    ("sign", "sign", {}),
    ("ternary absmean (BitNet b1.58)", "ternary_absmean", {}),
    ("ternary, 50% sparsity", "ternary_sparsity", {"sparsity": 0.5}),
    ("ternary, 90% sparsity", "ternary_sparsity", {"sparsity": 0.9}),
    ("magnitude pruning 90%", "magnitude_pruning", {"sparsity": 0.9}),
    ("k-means 3-bit", "kmeans", {"bits": 3}),
    ("prune 50% + uniform 3-bit", "prune_then_quantize", {"sparsity": 0.5, "bits": 3}),
    ("cast to bfloat16", "cast", {"dtype": "bfloat16"}),
)


def overview_quantizers() -> dict:
    """``{label: Quantizer}`` of ``OVERVIEW_QUANTIZERS``."""
    return build_quantizers(OVERVIEW_QUANTIZERS)


def release_all(quantizers: dict, w: torch.Tensor, seed: int = 0) -> dict:
    """``{label: q(w)}``: what each quantizer releases from the weights ``w``; a randomised quantizer draws from
    its own generator seeded with ``seed`` (so each release is reproducible on its own)."""
    return {label: q(w, generator=torch.Generator(device=w.device).manual_seed(seed))
            for label, q in quantizers.items()}
