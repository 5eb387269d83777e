"""mislib: membership inference security (MIS) of quantized models.

Three layers (docs/ARCHITECTURE.md):

- **core** (what a reader of the paper needs and a user applies to their own model): ``quantizers`` (every
  quantizer: release, cells, margins, storage), ``mis`` (exact MIS of quantized means and its rates),
  ``indicator`` (standard errors and the indicator ``r_Q^n``), ``attacks`` (attack scores and ROC metrics on
  plain arrays), ``plotting`` (the paper style). The core imports neither RDKit, ONNX Runtime, datamol nor Dask.
- **evaluation** (machinery the studies share): ``evaluation.trainers`` (batched trainers),
  ``evaluation.audit`` (shadow-model audits), ``evaluation.montecarlo`` (Monte-Carlo ground truth),
  ``evaluation.agreement`` (ranking agreement), ``evaluation.synthetic_data``.
- **studies** (one module per notebook): ``studies.theory`` (01-03), ``studies.validation`` (04),
  ``studies.synthetic_ranking`` (05), ``studies.molecular`` (06); ``molecules`` holds the molecular data sets
  and embedders (the optional ``molecules`` extra).

``infra`` holds cached result tables, presets, paths, input checks, student copies and the papermill runner
(``python -m mislib.reproduce``).

The entry points a user needs are re-exported here (imported on first use)::

    import mislib
    q = mislib.get_quantizer("uniform", bits=4)
    mislib.exact_gaussian_mean(100, 0.3, 1.0, mislib.quantizers.FixedGrid(1.0)).mis
"""

import importlib

from mislib._deprecated import install as _install_deprecated_aliases

__version__ = "0.2.0"

_ENTRY_POINTS = {
    "get_quantizer": ("mislib.quantizers", "get"),
    "available_quantizers": ("mislib.quantizers", "available"),
    "exact_gaussian_mean": ("mislib.mis", "exact_gaussian_mean"),
    "exact_bernoulli_mean": ("mislib.mis", "exact_bernoulli_mean"),
    "standard_errors": ("mislib.indicator", "standard_errors"),
    "estimate": ("mislib.indicator", "estimate"),
    "estimate_model": ("mislib.indicator", "estimate_model"),
    "attack_metrics": ("mislib.attacks", "attack_metrics"),
    "run_audit": ("mislib.evaluation.audit", "audit"),
}

__all__ = sorted(_ENTRY_POINTS)

_install_deprecated_aliases()


def __getattr__(name):
    if name in _ENTRY_POINTS:
        module, attribute = _ENTRY_POINTS[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'mislib' has no attribute {name!r}")
