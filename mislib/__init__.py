"""mislib: membership inference security (MIS) of quantized models.

One module per concept: ``quantizers``, ``mis`` (exact and Monte-Carlo MIS), ``indicator`` (r_Q^n),
``attacks``, ``models`` (batched trainers), ``datasets``, ``experiments`` (grids, cached result tables),
``plotting`` and ``reproduce`` (papermill runner).
"""

__version__ = "0.1.0"
