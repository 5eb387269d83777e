"""mislib: membership inference security (MIS) of quantized models.

Three layers (docs/ARCHITECTURE.md):

- **core** (what a reader of the paper needs and a user applies to their own model): ``quantizers`` (a package,
  one family a module: release, cells, margins, storage; ``quantizers.get`` builds one by name), ``mis`` (exact
  MIS of quantized means and its rates), ``modules`` (the models as ``torch.nn.Module``s, parameters as dicts
  and flat vectors), ``indicator`` (standard errors and the indicator ``r_Q^n``), ``attacks`` (attack scores
  and ROC metrics on plain arrays), ``heldout`` (held-out |TPR - FPR| and its permutation null), ``tanh_mlp``
  (matrix-free Newton polish and sandwich for large tanh heads), ``plotting`` (the paper style). The core imports neither RDKit, ONNX
  Runtime, datamol nor Dask.
- **evaluation** (machinery the studies share): ``evaluation.trainers`` (batched trainers),
  ``evaluation.audit`` (shadow-model audits), ``evaluation.montecarlo`` (Monte-Carlo ground truth),
  ``evaluation.agreement`` (ranking agreement), ``evaluation.synthetic_data``.
- **studies** (one module per notebook): ``studies.theory`` (01-03), ``studies.validation`` (04),
  ``studies.synthetic_ranking`` (05), ``studies.molecular`` (06); ``molecules`` holds the molecular data sets
  and embedders (the optional ``molecules`` extra).

``infra`` holds cached result tables, presets, paths, input checks, student copies and the papermill runner
(``python -m mislib.reproduce``). Old module names of mislib 0.1 (``mislib.models``, ``mislib.audit``, ...) are
deprecated aliases (``mislib._deprecated``).

The entry points a user needs are re-exported here, and the subpackages are reachable as attributes; both are
imported on first use, so ``import mislib`` stays light:

>>> import mislib
>>> q = mislib.get_quantizer("uniform", bits=4)
>>> mislib.quantizers.FixedGrid(1.0)
FixedGrid(step=1.0, offset=0.0)
>>> result = mislib.exact_gaussian_mean(100, 0.3, 1.0, mislib.quantizers.FixedGrid(1.0))
>>> 0.0 < result.mis <= 1.0
True
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
    "indicator_from_estimates": ("mislib.indicator", "indicator_from_estimates"),
    "indicator_of_model": ("mislib.indicator", "indicator_of_model"),
    "probability_more_private": ("mislib.indicator", "probability_more_private"),
    "attack_metrics": ("mislib.attacks", "attack_metrics"),
    "run_audit": ("mislib.evaluation.audit", "run_audit"),
}

_SUBMODULES = ("quantizers", "mis", "modules", "indicator", "attacks", "heldout", "tanh_mlp", "plotting", "evaluation",
               "studies", "infra", "molecules")

__all__ = sorted(_ENTRY_POINTS)

_install_deprecated_aliases()


def __getattr__(name):
    if name in _ENTRY_POINTS:
        module, attribute = _ENTRY_POINTS[name]
        return getattr(importlib.import_module(module), attribute)
    if name in _SUBMODULES:
        return importlib.import_module(f"mislib.{name}")
    raise AttributeError(f"module 'mislib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_ENTRY_POINTS) | set(_SUBMODULES))
