"""Privacy against training-set size on real data (issue 14, part 2; notebook 06, section "Privacy against
training-set size").

Question: for B3DB classification, does the best attack's membership advantage fall like ``n^-1/2`` for releases
that publish a float (identity, a per-tensor float scale, pruning's surviving weights) and faster for a fixed
public grid (THEORY.md: a deterministic release on a fixed grid leaks only when ``theta_hat`` leaves its cell,
with probability ``exp(-n r)``), and does the indicator ``r_Q^n``, computed from the target alone, say which?

Design of one grid point ``(n, seed)`` (``measure_point``):

1. **Data.** The study's molecules (``mislib.studies.molecular_data.prepare`` on every molecule of the task, the
   molecular study's featurisation: ``n_features`` principal components fitted on the reference molecules).
   A random ``2n`` of the pool (seeded by ``(seed, n)``) is the population of the game.
2. **Models.** ``n_models`` MLP heads (``Architecture(ModelSpec("mlp", hidden 4, ridge 0.03, ...))``, the
   molecular study's head) on the complementary halves of ``audit.shadow_masks``: every model trains on exactly
   ``n`` examples and every example is IN for half of the models. One batched fit.
3. **Targets.** Each of the first ``n_targets`` models in turn is the target (the standard LiRA evaluation);
   its references are all other models except its complementary partner, so that every example has
   ``n_models/2 - 1`` IN and as many OUT references. Its members are its ``n`` training examples, its
   non-members the other ``n``.
4. **Release** (``audit.release``, tensor by tensor) for each quantizer; the public grid uses the step
   ``max|w| / 7`` of a head trained on the **reference molecules** (public by construction: they only fit the
   featurisation and are in no model's pool), from one fixed initialisation: the same grid for every ``n``
   and seed, fixed while ``n`` grows.
5. **Attack**: LiRA online with one pooled variance (``attacks.lira_online_scores(fixed_variance=True)``) on
   the logit confidence of the released models. Metrics per target: AUC, the in-sample ``max |TPR - FPR|``
   (biased upward, ``mislib.heldout``), the held-out advantage (threshold chosen on one half,
   measured on the other, mirrored) and its permutation null (``n_permutations`` shuffles of the membership
   labels). The null draws averaged over the point's targets are kept, so that the band of the averaged
   advantage is exact (``summarise`` averages them over seeds as well).
6. **Indicator** (``indicator.indicator_of_model``) of each target, from the target and its own members alone:
   ``ranking_score``, ``r_min``, ``delta_estimate``.

``run_privacy_vs_n`` runs the grid through ``infra.tables.cached_grid`` (table ``molecular_privacy_vs_n``);
``summarise``, ``slopes`` (log-log slopes with intervals), ``conclusions`` and ``plot_privacy_vs_n`` read it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mislib.evaluation.quantizer_specs import build_quantizers, select_specs
from mislib.infra.checks import check_choice, check_int

NAME = "molecular_privacy_vs_n"
TASK = "b3db_classification"
QUANTIZERS = select_specs(("identity", "uniform 4-bit", "uniform 4-bit, public scale", "ternary 90% sparse",
                           "sign", "pruning 90%"))
PUBLIC_GRID = "uniform 4-bit, public scale"
FLOAT_RELEASES = ("identity", "uniform 4-bit", "ternary 90% sparse", "sign", "pruning 90%")
COLUMNS = ("task", "embedder", "n", "seed", "target", "quantizer", "method", "measurement", "value",
           "permutation")
ALL_TARGETS = -1          # ``target`` of the rows that average the point's targets (null draws)
INDICATOR_MEASUREMENTS = ("ranking_score", "r_min", "delta_estimate")
SETTING_KEYS = ("task", "embedder", "n_features", "data_seed", "hidden", "ridge", "n_iter", "lr", "n_models",
                "n_targets", "n_permutations", "quantizers")


def preset_sizes(preset: str) -> dict:
    """The grid at a preset: training-set sizes ``sizes`` (``"full"`` = half the pool, 2,341 molecules),
    ``seeds``, and the per-point settings (``smoke``: two tiny sizes, 6 models, each a target, 40 permutations;
    ``paper``: 250 to the full pool, three seeds, 64 models of which 16 are targets, 200 permutations).

    Why 64 models for 16 targets: LiRA estimates each example's IN and OUT means from the references, and with
    a fixed number of them its advantage falls faster than the leakage once the per-example shift is below that
    estimation noise (at n = 2,341, 14 references find about half the advantage 62 do)."""
    from mislib.infra.presets import preset_config

    return preset_config(
        preset,
        smoke=dict(sizes=[40, 80], seeds=[0], n_models=6, n_targets=6, n_permutations=40, n_iter=200),
        paper=dict(sizes=[250, 500, 1000, "full"], seeds=[0, 1, 2], n_models=64, n_targets=16, n_permutations=200,
                   n_iter=500),
    )


def settings_for(sizes: dict, embedder: str = "maccs") -> dict:
    """Every key of ``SETTING_KEYS``: the molecular study's head and featurisation, and a preset's sizes."""
    return dict(task=TASK, embedder=embedder, n_features=32, data_seed=0, hidden=4, ridge=0.03,
                n_iter=sizes["n_iter"], lr=0.02, n_models=sizes["n_models"], n_targets=sizes["n_targets"],
                n_permutations=sizes["n_permutations"],
                quantizers=[[label, name, dict(params)] for label, name, params in QUANTIZERS])


# ------------------------------------------------------------------------------------------------ the data

@functools.lru_cache(maxsize=4)
def molecular_pool(task: str, embedder: str, n_features: int, data_seed: int = 0):
    """``(X_pool, y_pool, X_public, y_public)`` of a task on all its molecules: the pool of the molecular study's
    split (seed ``data_seed``) and its reference molecules, featurised by the same map (fitted on the reference
    molecules, ``molecular_data.Featuriser``)."""
    from mislib.molecules import datasets, embedders
    from mislib.studies.molecular_data import CONTINUOUS_EMBEDDERS, Featuriser, prepare

    prepared = prepare(task, embedder, n_molecules="all", seed=data_seed, n_features=n_features)
    data = datasets.load(task, n_molecules="all", seed=0)
    X = embedders.embed_cached(data, embedder)
    kept = ~embedders.failed_rows(X)
    reference = X[kept][prepared.split.reference]
    featuriser = Featuriser(n_features, standardise=embedder in CONTINUOUS_EMBEDDERS).fit(reference)
    y_reference = data.y[kept][prepared.split.reference].astype(np.float64)
    return prepared.X_pool, prepared.y_pool, featuriser.transform(reference), y_reference


def resolve_size(size, pool_size: int) -> int:
    """A training-set size: an integer, or ``"full"`` for half the pool."""
    if size == "full":
        return pool_size // 2
    size = check_int("size", size, minimum=4)
    if 2 * size > pool_size:
        raise ValueError(f"size {size} needs 2 * {size} examples but the pool holds {pool_size}")
    return size


# ------------------------------------------------------------------------------------------ one grid point

def _public_absmax(arch, X_public, y_public) -> float:
    """max |w| of the largest weight tensor of one head trained on the public (reference) molecules."""
    X = torch.as_tensor(np.ascontiguousarray(X_public), dtype=torch.float64)
    y = torch.as_tensor(np.ascontiguousarray(y_public), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = arch.fit(X, y, torch.ones(1, X.shape[0], dtype=torch.float64))
    main = max(params, key=lambda k: params[k][0].numel())
    return float(params[main][0].abs().max())


def measure_point(X_pool, y_pool, X_public, y_public, *, n: int, seed: int, quantizers, hidden: int = 4,
                  ridge: float = 0.03, n_iter: int = 500, lr: float = 0.02, n_models: int = 16,
                  n_targets: int | None = None, n_permutations: int = 200) -> pd.DataFrame:
    """The rows of one grid point (module notes, steps 2-6) on arrays: a binary task ``(X_pool, y_pool)``, public
    data ``(X_public, y_public)`` for the public grid, ``n`` members per model, ``quantizers`` as
    ``(label, name, params)`` triples; the first ``n_targets`` of the ``n_models`` models (default: all) are the
    targets.

    Returns
    -------
    pandas.DataFrame
        Columns ``target, quantizer, method, measurement, value, permutation``: per target and quantizer,
        method ``attack`` (``auc``, ``advantage_max``, ``advantage_heldout``), ``null`` (``advantage_heldout_mean``,
        ``_low``, ``_high``, ``advantage_max_mean``) and ``indicator`` (``INDICATOR_MEASUREMENTS``); per
        quantizer, target ``ALL_TARGETS``, method ``null_draw``: the null draws of the targets' mean advantage
        (held-out and max), one per permutation; per quantizer, method ``release``, ``public_absmax``.
    """
    from mislib import attacks, indicator
    from mislib.evaluation.architectures import Architecture, ModelSpec
    from mislib.evaluation.audit import release, shadow_masks
    from mislib.heldout import null_band, permutation_null

    X_pool, y_pool = np.asarray(X_pool, dtype=np.float64), np.asarray(y_pool, dtype=np.float64)
    if X_pool.ndim != 2 or y_pool.shape != (X_pool.shape[0],):
        raise ValueError(f"X_pool must be [examples, features] and y_pool one label per row, got shapes "
                         f"{X_pool.shape} and {y_pool.shape}")
    if not np.isin(y_pool, (0.0, 1.0)).all():
        raise ValueError("y_pool must hold binary class labels 0 and 1")
    n = resolve_size(n, X_pool.shape[0])
    seed = check_int("seed", seed, minimum=0)
    n_models = check_int("n_models", n_models, minimum=6)
    if n_models % 2:
        raise ValueError(f"n_models must be even (complementary pairs), got {n_models}")
    n_targets = n_models if n_targets is None else check_int("n_targets", n_targets, minimum=1)
    if n_targets > n_models:
        raise ValueError(f"n_targets ({n_targets}) cannot exceed n_models ({n_models})")
    rng = np.random.default_rng([seed, n, 16])
    chosen = np.sort(rng.choice(X_pool.shape[0], 2 * n, replace=False))
    X = torch.as_tensor(X_pool[chosen], dtype=torch.float64)
    y = torch.as_tensor(y_pool[chosen], dtype=torch.float64)
    spec = ModelSpec(kind="mlp", task="classification", hidden=hidden, ridge=ridge, n_iter=n_iter, lr=lr,
                     init_seed=seed)
    arch = Architecture(spec, X.shape[1], 2, "cpu")
    public = Architecture(dataclasses.replace(spec, init_seed=0), X.shape[1], 2, "cpu")
    absmax = _public_absmax(public, X_public, y_public)      # one public grid for every n and seed
    items = build_quantizers([tuple(q) for q in quantizers], absmax)
    masks = shadow_masks(2 * n, n_models, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # polish_mlp's note on a model short of its minimum: see the indicator rows
        params = arch.fit(X, y, torch.as_tensor(masks, dtype=torch.float64))
    rows = []

    def add(target, label, method, measurement, value, permutation=math.nan):
        rows.append({"target": target, "quantizer": label, "method": method, "measurement": measurement,
                     "value": float(value), "permutation": permutation})

    for t in range(n_targets):
        members = torch.as_tensor(masks[t])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = indicator.indicator_of_model(arch.module(params, t), X[members], y[members], arch.loss,
                                                     items, ridge=ridge, seed=seed, average=False)
            found = found.set_index("quantizer")
        except ValueError:      # no positive-definite minimum: no sandwich, the indicator is undefined
            found = None
        for label in items:
            for m in INDICATOR_MEASUREMENTS:
                add(t, label, "indicator", m, math.nan if found is None else found.loc[label, m])
    labels_y = y.repeat(n_models)
    for label, q in items.items():
        add(ALL_TARGETS, label, "release", "public_absmax", absmax)
        generator = torch.Generator().manual_seed(seed)
        released = release(q, params, generator)
        outputs = arch.outputs(released, X)
        stats = attacks.logit_confidence_from_logits(outputs.reshape(-1).detach(), labels_y).reshape(n_models, -1)
        null_held, null_max = [], []
        for t in range(n_targets):
            refs = np.array([k for k in range(n_models) if k not in (t, t ^ 1)])
            scores = attacks.lira_online_scores(stats[t], stats[refs], stats[refs], in_mask=masks[refs],
                                                out_mask=~masks[refs], fixed_variance=True)
            labels = masks[t].astype(np.int8)
            found = permutation_null(scores, labels, n_permutations=n_permutations, seed=seed * 1000 + t)
            add(t, label, "attack", "auc", attacks.auc(scores, labels))
            add(t, label, "attack", "advantage_max", found["max"])
            add(t, label, "attack", "advantage_heldout", found["heldout"])
            low, high = null_band(found["null_heldout"])
            add(t, label, "null", "advantage_heldout_mean", found["null_heldout"].mean())
            add(t, label, "null", "advantage_heldout_low", low)
            add(t, label, "null", "advantage_heldout_high", high)
            add(t, label, "null", "advantage_max_mean", found["null_max"].mean())
            null_held.append(found["null_heldout"])
            null_max.append(found["null_max"])
        for p, (held, maxi) in enumerate(zip(np.mean(null_held, axis=0), np.mean(null_max, axis=0))):
            add(ALL_TARGETS, label, "null_draw", "advantage_heldout", held, p)
            add(ALL_TARGETS, label, "null_draw", "advantage_max", maxi, p)
    return pd.DataFrame(rows)


def point_rows(config: dict) -> pd.DataFrame:
    """One grid point of ``run_privacy_vs_n``: ``config`` holds ``n``, ``seed`` and every key of
    ``SETTING_KEYS``."""
    X_pool, y_pool, X_public, y_public = molecular_pool(config["task"], config["embedder"], config["n_features"],
                                                        config["data_seed"])
    n = resolve_size(config["n"], X_pool.shape[0])
    table = measure_point(X_pool, y_pool, X_public, y_public, n=n, seed=config["seed"],
                          quantizers=config["quantizers"], hidden=config["hidden"], ridge=config["ridge"],
                          n_iter=config["n_iter"], lr=config["lr"], n_models=config["n_models"],
                          n_targets=config["n_targets"], n_permutations=config["n_permutations"])
    for position, (name, value) in enumerate((("task", config["task"]), ("embedder", config["embedder"]),
                                              ("n", n), ("seed", config["seed"]))):
        table.insert(position, name, value)
    return table


def run_privacy_vs_n(settings: dict, sizes: Sequence, seeds: Sequence[int], *, refresh: bool = False,
                     progress: bool = True) -> pd.DataFrame:
    """Run (or read back) the grid ``sizes x seeds`` and write the table ``molecular_privacy_vs_n``
    (``infra.tables.cached_grid``: each point cached as soon as it is done, so a run resumes)."""
    from mislib.infra.tables import cached_grid

    missing = [k for k in SETTING_KEYS if k not in settings]
    extra = [k for k in settings if k not in SETTING_KEYS]
    if missing or extra:
        raise ValueError(f"settings: missing {missing}, unknown {extra}; expected exactly {list(SETTING_KEYS)}")
    check_choice("task", settings["task"], (TASK,))
    if not sizes or not seeds:
        raise ValueError("sizes and seeds must each name at least one value")
    configs = [{"n": size, "seed": check_int("seed", seed, minimum=0)} for size in sizes for seed in seeds]
    return cached_grid(NAME, configs, point_rows, shared=dict(settings), refresh=refresh, progress=progress)
