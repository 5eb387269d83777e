"""Weight quantizers: weight in, weight out, pure PyTorch, any shape, CPU or CUDA.

Every quantizer ``q`` is a small object with explicit parameters:

- ``q(w)`` returns a tensor of the same shape, dtype and device (the de-quantized release);
- ``q.cell_bounds(w)``: per coordinate, the interval ``[low, high]`` of values that (the other coordinates and
  the grid held as computed at ``w``) give the same output: the cell of a deterministic quantizer. Outermost
  cells of a clipping grid extend to ``-inf`` / ``+inf``; a value released exactly (identity, the weights kept by
  magnitude pruning) has the point cell ``[w, w]``;
- ``q.margins(w)``: per coordinate, the distance from ``w`` to the nearest decision threshold, with the grid as
  ``q`` computes it at ``w`` (zero everywhere for quantizers without cells: identity, stochastic rounding);
- ``q.freeze(w)``: the same quantizer with its grid held as computed at ``w`` (a quantizer whose grid does not
  depend on the weights returns itself). ``q.freeze(w)(w) == q(w)``, and ``q.freeze(w)`` is constant on each cell
  of ``q.cell_bounds(w)``;
- ``q.bits_per_weight(w)``, ``q.sparsity(w)`` (achieved fraction of zeros in ``q(w)``) and ``q.storage(w)``
  (what is published beside the weights: scale, zero point, codebook, and in which format);
- ``q.scale_channel``: how the grid's scale reaches the release (THEORY.md §2, last row):
  ``"none"`` (no data-dependent scale), ``"continuous"`` (a float scale computed from the weights is released:
  leaks at n^-1/2 whatever the weights do) or ``"stored-on-grid"`` (the scale is itself rounded to a fixed grid
  and so has a margin of its own, see ``scale_margins``).

The family (``available()``):

==========================  =====================================================================================
``identity``                no quantization
``fixed_grid``              round to nearest on a public grid ``offset + step * Z``
``size_adaptive``           public grid with step ``h0 * n**-alpha``
``stochastic_rounding``     unbiased random rounding on a public grid
``uniform``                 ``b``-bit round to nearest, symmetric absmax or affine with a zero point, per tensor or
                            per channel, scale stored as float32 / bfloat16 / float16 / power of two, or public
``sign``                    1 bit: ``sign(w) * mean|w|``
``ternary_absmean``         BitNet b1.58: ``gamma * clip(round(w / gamma), -1, 1)``, ``gamma = mean|w|``
``ternary_sparsity``        zero below the ``s``-quantile of ``|w|``, ``+-`` (mean kept ``|w|``) elsewhere
``magnitude_pruning``       zero below the ``s``-quantile of ``|w|``, the rest kept in full precision
``kmeans``                  optimal ``2**b``-level codebook (exact 1-d k-means), per tensor or per channel
``prune_then_quantize``     magnitude pruning at sparsity ``s``, then ``uniform`` on the kept weights
``cast``                    round to ``bfloat16`` or ``float16`` (ties to even), nothing stored beside
==========================  =====================================================================================

Conventions shared by the family:

- The sign of ``w = 0`` is ``+`` (``sign``, 1-bit ``uniform``, the kept weights of ``ternary_sparsity``), so that
  every output is a level and the threshold at 0 belongs to the positive cell.
- A scale statistic equal to 0 (all-zero weights or channel) is replaced by 1.0: every scale then gives the same
  output (zeros), and the grid stays defined.
- Sparsity ``s`` zeroes the ``k = round(s N)`` smallest magnitudes (at most ``N - 1``) through the threshold
  ``tau = (|w|_(k) + |w|_(k+1)) / 2`` (an ``s``-quantile of ``|w|``; ``tau = 0`` when ``k = 0``) and the rule
  ``|w| < tau``. Without ties the achieved sparsity is within ``1 / (2N)`` of ``s``; weights tied at the
  threshold are all kept. ``tau`` is not published, but it is a statistic of the weights: margins hold it fixed.

``get(name, **params)`` builds one by name; ``available()`` lists the names. The package, one concept a module:
``base`` (the interface, data-dependent and frozen grids), ``formats`` (16-bit float rounding, scale storage),
``grids`` (public grids), ``uniform``, ``ternary`` (sign and ternary), ``pruning``, ``kmeans``, ``casts``,
``registry`` (``get``, ``available``, ``labelled``). A new family is a ``Quantizer`` subclass in its own module,
registered in ``registry`` (docs/ARCHITECTURE.md).
"""

from mislib.quantizers.base import ChannelQuantizer, DataDependentQuantizer, FrozenGrid, Quantizer, Stored
from mislib.quantizers.casts import Cast
from mislib.quantizers.formats import SCALE_FORMATS, format_cell, round_to_format, store_scale
from mislib.quantizers.grids import (FixedGrid, Identity, SizeAdaptiveGrid, StochasticRounding, grid_margins,
                                     round_to_grid)
from mislib.quantizers.kmeans import KMeans, optimal_codebook
from mislib.quantizers.pruning import MagnitudePruning, PruneThenQuantize, magnitude_threshold
from mislib.quantizers.registry import available, get, labelled, register
from mislib.quantizers.ternary import ScaledTernary, Sign, TernaryAbsmean, TernarySparsity
from mislib.quantizers.uniform import Uniform, UniformGrid

__all__ = [
    "Cast", "ChannelQuantizer", "DataDependentQuantizer", "FixedGrid", "FrozenGrid", "Identity", "KMeans",
    "MagnitudePruning", "PruneThenQuantize", "Quantizer", "SCALE_FORMATS", "ScaledTernary", "Sign",
    "SizeAdaptiveGrid", "StochasticRounding", "Stored", "TernaryAbsmean", "TernarySparsity", "Uniform",
    "UniformGrid", "available", "format_cell", "get", "grid_margins", "labelled", "magnitude_threshold",
    "optimal_codebook", "register", "round_to_format", "round_to_grid", "store_scale",
]
