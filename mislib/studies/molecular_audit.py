"""One configuration of the molecular study (notebook 06): the audit rows of an MLP head on one task, embedder and
seed (``configuration_rows``), and the picklable worker that runs it for ``mislib.studies.molecular.run_study``.

Why a module of its own: the cache key of the study's table hashes the source of every module its computation
imports (``mislib.infra.tables``). Keeping the computation here, and the reading of the table (summaries,
conclusions, figures) in ``mislib.studies.molecular``, lets the analysis change without recomputing hours of
audits.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mislib.evaluation.quantizer_specs import build_quantizers
from mislib.studies.molecular_data import prepare

# Retraining from another initialisation when the target's Hessian is not positive definite (configuration_rows).
MAX_INIT_ATTEMPTS = 3
INIT_SEED_STRIDE = 1000
FAILURE_MEASUREMENT = "hessian_not_positive_definite"   # method "failure": value = initialisations tried


def head_hidden(hidden, task: str) -> int:
    """Hidden units of the head of ``task``: ``hidden`` is an int (every task) or a dict task -> int."""
    return int(hidden[task]) if isinstance(hidden, dict) else int(hidden)


def study_quantizers(specs) -> dict:
    """``{label: Quantizer}`` for ``(label, name, params)`` triples (``quantizer_specs.build_quantizers``)."""
    return build_quantizers([tuple(s) for s in specs])


def configuration_rows(item: dict) -> pd.DataFrame:
    """The audit rows of one (task, embedder, seed). ``item`` holds ``task``, ``embedder``, ``seed`` and the
    shared settings: ``n_molecules`` (a dict task -> size or None), ``data_seed``, ``reference_fraction``,
    ``test_fraction``, ``n_features``, ``clip``, ``hidden`` (an int, or a dict task -> int), ``ridge``, ``n_iter``, ``lr``, ``n_shadow``,
    ``n_targets``, ``n_bootstrap``, ``indicator_bootstrap``, ``quantizers`` (triples) and optionally ``device``."""
    import torch

    # One torch thread, whatever the caller's: the 16-unit heads differ at the 1e-7 level after training with the
    # thread count, and discrete releases amplify that (a pruning threshold between two nearly equal weights), so
    # a configuration recomputed in a notebook kernel must see what the grid's one-thread workers saw.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _configuration_rows(item)
    finally:
        torch.set_num_threads(threads)


def _configuration_rows(item: dict) -> pd.DataFrame:
    import torch

    from mislib.evaluation import audit

    task, embedder, seed = item["task"], item["embedder"], item["seed"]
    sizes = item["n_molecules"]
    prepared = prepare(task, embedder, n_molecules=sizes.get(task) if isinstance(sizes, dict) else sizes,
                       seed=seed, n_features=item["n_features"], data_seed=item.get("data_seed", 0),
                       reference_fraction=item["reference_fraction"], test_fraction=item["test_fraction"],
                       clip=item.get("clip", 5.0))
    as_tensor = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    quantizers = study_quantizers(item["quantizers"])
    hidden = head_hidden(item["hidden"], task)
    target = item.get("target")     # one audited model of the configuration (a resumable piece), or all of them
    table = None
    for attempt in range(MAX_INIT_ATTEMPTS):
        # Why retries: the MLP objective is not convex. If the target ends where its Hessian is not positive
        # definite (a saddle, or a hidden unit switched off by the ridge, whose free bias is a flat direction),
        # the sandwich does not exist; the whole configuration (target and shadows alike) is retrained from
        # another initialisation, and the table records which one (``init_seed``).
        init_seed = seed + INIT_SEED_STRIDE * attempt
        spec = audit.ModelSpec(kind="mlp", task=prepared.kind, ridge=item["ridge"], hidden=hidden,
                               n_iter=item["n_iter"], lr=item["lr"], init_seed=init_seed)
        try:
            table = audit.run_audit(as_tensor(prepared.X_pool), as_tensor(prepared.y_pool),
                                    as_tensor(prepared.X_test), as_tensor(prepared.y_test), quantizers, model=spec,
                                    n_shadow=item["n_shadow"], seed=seed, n_bootstrap=item["n_bootstrap"],
                                    indicator_bootstrap=item["indicator_bootstrap"], device=item.get("device"),
                                    model_label=f"mlp (hidden {hidden})", n_targets=item.get("n_targets", 1),
                                    targets=None if target is None else [target],
                                    trained=trained_batch_path(item, init_seed))
            break
        except ValueError as error:
            if "positive definite" not in str(error):
                raise
    if table is None:
        # Every initialisation ended on a singular Hessian (in our runs: a switched-off unit, whose minimum does
        # not depend on the initialisation). The configuration is recorded as failed, not dropped silently.
        table = pd.DataFrame([{"model": f"mlp (hidden {hidden})", "quantizer": "(all)",
                               "sample_size": int(prepared.split.pool.size // 2), "seed": seed,
                               "target": math.nan if target is None else target,
                               "method": "failure", "measurement": FAILURE_MEASUREMENT,
                               "value": float(MAX_INIT_ATTEMPTS), "value_low": math.nan, "value_high": math.nan}])
    rmse = (table["method"] == "test") & (table["measurement"] == "rmse")
    table.loc[rmse, ["value", "value_low", "value_high"]] *= prepared.target_scale   # back to the task's units
    ids = {"task": task, "task_kind": prepared.kind, "embedder": embedder, "n_features": prepared.X_pool.shape[1],
           "n_molecules": prepared.n_molecules, "n_reference": int(prepared.split.reference.size),
           "n_test": int(prepared.split.test.size), "n_pool": int(prepared.split.pool.size),
           "target_scale": prepared.target_scale, "init_seed": init_seed}
    for position, (name, value) in enumerate(ids.items()):
        table.insert(position, name, value)
    return table



def trained_batch_path(item: dict, init_seed: int):
    """Where the trained batch (target and shadows) of a configuration is cached (``run_audit(trained=...)``):
    named by the whole item but the audited model and the device, the initialisation and the code that trains,
    so the audited models of one configuration, computed as separate grid points, train it once."""
    from mislib.infra.paths import cache_dir
    from mislib.infra.tables import code_version, config_hash

    key = {k: v for k, v in item.items() if k not in ("target", "device")}
    key.update(init_seed=init_seed, code=code_version((__name__,)))
    return cache_dir() / "models" / "molecular" / f"{config_hash(key)}.pt"


class AuditWorker:
    """Picklable: adds the device (not part of the cache key) to each item of the grid."""

    def __init__(self, device):
        self.device = device

    def __call__(self, item: dict) -> pd.DataFrame:
        return configuration_rows({**item, "device": self.device})
