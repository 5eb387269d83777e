"""Quantizers by name: ``get``, ``available`` and ``labelled`` (several quantizers handed over to compare)."""

from __future__ import annotations

from collections.abc import Mapping

from mislib.quantizers.base import Quantizer
from mislib.quantizers.casts import Cast
from mislib.quantizers.grids import FixedGrid, Identity, SizeAdaptiveGrid, StochasticRounding
from mislib.quantizers.kmeans import KMeans
from mislib.quantizers.pruning import MagnitudePruning, PruneThenQuantize
from mislib.quantizers.ternary import Sign, TernaryAbsmean, TernarySparsity
from mislib.quantizers.uniform import Uniform

REGISTRY: dict[str, type[Quantizer]] = {}


def register(cls: type[Quantizer]) -> type[Quantizer]:
    """Make ``cls`` available to ``get`` under ``cls.name`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Quantizer)):
        raise TypeError(f"register takes a subclass of mislib.quantizers.Quantizer, got {cls!r}")
    REGISTRY[cls.name] = cls
    return cls


for _family in (Identity, FixedGrid, SizeAdaptiveGrid, StochasticRounding, Uniform, Sign, TernaryAbsmean,
                TernarySparsity, MagnitudePruning, KMeans, PruneThenQuantize, Cast):
    register(_family)


def available() -> list[str]:
    """The names ``get`` accepts, sorted.

    Returns
    -------
    list of str
        One name per quantizer family.

    Examples
    --------
    >>> from mislib import quantizers
    >>> quantizers.available()
    ['cast', 'fixed_grid', 'identity', 'kmeans', 'magnitude_pruning', 'prune_then_quantize', 'sign', ...]
    """
    return sorted(REGISTRY)


def get(name: str, **params) -> Quantizer:
    """Build a quantizer by name.

    Parameters
    ----------
    name : str
        One of ``available()``: ``"identity"``, ``"fixed_grid"``, ``"size_adaptive"``,
        ``"stochastic_rounding"``, ``"uniform"``, ``"sign"``, ``"ternary_absmean"``, ``"ternary_sparsity"``,
        ``"magnitude_pruning"``, ``"kmeans"``, ``"prune_then_quantize"``, ``"cast"``.
    **params
        The family's parameters, checked at once: ``step`` and ``offset`` (``fixed_grid``,
        ``stochastic_rounding``); ``h0``, ``alpha``, ``n`` (``size_adaptive``); ``bits``, ``symmetric``,
        ``per_channel``, ``channel_dim``, ``scale_format``, ``scale``, ``zero_point`` (``uniform``); ``sparsity``
        (``ternary_sparsity``, ``magnitude_pruning``; with the ``uniform`` parameters for
        ``prune_then_quantize``); ``bits``, ``per_channel``, ``channel_dim`` (``kmeans``); ``dtype``
        (``"bfloat16"`` or ``"float16"``, ``cast``).

    Returns
    -------
    Quantizer
        ``q(w)`` is the release of a weight tensor ``w`` (same shape, dtype and device);
        ``q.cell_bounds(w)`` and ``q.margins(w)`` its cells and the distance to the nearest threshold;
        ``q.freeze(w)`` the quantizer with its grid held as computed at ``w``; ``q.describe(w)`` bits per
        weight, sparsity and what is published beside the weights.

    Raises
    ------
    TypeError
        If ``name`` is not a string, a parameter is unknown to the family, or has the wrong type.
    ValueError
        If ``name`` is not in ``available()`` or a parameter is out of range (the message names it).

    Examples
    --------
    A 4-bit symmetric (absmax) grid: the scale is ``max|w| / 7`` (here 0.25), stored as float32.

    >>> import torch
    >>> from mislib import quantizers
    >>> q = quantizers.get("uniform", bits=4)
    >>> w = torch.tensor([1.75, -0.6, 0.1, -0.3], dtype=torch.float64)
    >>> q(w)
    tensor([ 1.7500, -0.5000,  0.0000, -0.2500], dtype=torch.float64)

    Each weight's cell (the values giving the same release, grid held) and its distance to the nearest
    threshold; the largest level's cell extends to infinity (clipping):

    >>> low, high = q.cell_bounds(w)
    >>> high
    tensor([   inf, -0.3750,  0.1250, -0.1250], dtype=torch.float64)
    >>> q.margins(w)
    tensor([0.1250, 0.0250, 0.0250, 0.0750], dtype=torch.float64)
    >>> q.describe(w)["stored"]
    'scale x1 (float32)'

    The optimal 2-level codebook of four weights, and a cast to bfloat16:

    >>> quantizers.get("kmeans", bits=1)(w)
    tensor([ 1.7500, -0.2667, -0.2667, -0.2667], dtype=torch.float64)
    >>> quantizers.get("cast", dtype="bfloat16")(torch.tensor([1.0 + 2 ** -9, 3.14159]))
    tensor([1.0000, 3.1406])

    Mistakes are named:

    >>> quantizers.get("uniform", bits=0)
    Traceback (most recent call last):
    ...
    ValueError: bits must be >= 1, got 0
    """
    if not isinstance(name, str):
        raise TypeError(f"quantizer name must be a string, got {type(name).__name__}")
    if name not in REGISTRY:
        raise ValueError(f"unknown quantizer {name!r}; available: {', '.join(available())}")
    try:
        return REGISTRY[name](**params)
    except TypeError as exc:
        raise TypeError(f"bad parameters for quantizer {name!r}: {exc}") from exc


def labelled(quantizers) -> list[tuple[str, Quantizer]]:
    """``[(label, quantizer), ...]`` from the forms a user hands over to compare several quantizers.

    Parameters
    ----------
    quantizers : Quantizer, dict of str to Quantizer, or list of Quantizer
        A list is labelled by ``repr``.

    Returns
    -------
    list of (str, Quantizer)
        In the given order, every entry checked.

    Raises
    ------
    TypeError
        If an entry is not a Quantizer or a label is not a non-empty string.
    ValueError
        If there are no quantizers.

    Examples
    --------
    >>> from mislib import quantizers
    >>> quantizers.labelled([quantizers.get("sign"), quantizers.get("uniform", bits=2)])
    [('Sign()', Sign()), ("Uniform(bits=2, ...)", Uniform(bits=2, ...))]
    >>> [label for label, _ in quantizers.labelled({"4-bit": quantizers.get("uniform", bits=4)})]
    ['4-bit']
    """
    if isinstance(quantizers, Quantizer):
        quantizers = [quantizers]
    if isinstance(quantizers, Mapping):
        items = list(quantizers.items())
    elif isinstance(quantizers, (list, tuple)):
        items = [(repr(q), q) for q in quantizers]
    else:
        raise TypeError(f"quantizers must be a Quantizer, a dict {{label: Quantizer}} or a list of them, got "
                        f"{type(quantizers).__name__}")
    if not items:
        raise ValueError("quantizers is empty; give e.g. {'uniform 4-bit': quantizers.get('uniform', bits=4)}")
    for label, q in items:
        if not isinstance(label, str) or not label:
            raise TypeError(f"quantizer labels must be non-empty strings, got {label!r}")
        if not isinstance(q, Quantizer):
            raise TypeError(f"quantizers[{label!r}] must be a mislib.quantizers.Quantizer, got {type(q).__name__}")
    return items
