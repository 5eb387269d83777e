"""The molecules' side of the molecular study (notebook 06; steps 1-4 of ``mislib.studies.molecular``'s notes):
load a task, embed it (cached), split it into reference / test / pool parts, and featurise it with a map fitted
on the reference molecules only. ``prepare`` returns what one audit receives."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mislib.infra.checks import check_choice, check_float, check_int

TASKS = ("b3db_classification", "b3db_regression", "freesolv", "solubility")
EMBEDDERS = ("ecfp4", "maccs", "rdkit2d", "minimol")
CONTINUOUS_EMBEDDERS = ("rdkit2d", "minimol")   # standardised before the projection; fingerprints stay 0/1


# ---------------------------------------------------------------------------------------------------- split

@dataclass(frozen=True)
class MolecularSplit:
    """Indices (into a task's molecules) of the three disjoint parts; see ``split_molecules``."""

    reference: np.ndarray
    test: np.ndarray
    pool: np.ndarray


def _fraction(name: str, value) -> float:
    return check_float(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


def split_molecules(y, kind: str, *, reference_fraction: float = 0.2, test_fraction: float = 0.2,
                    seed: int = 0) -> MolecularSplit:
    """Split ``len(y)`` molecules into reference / test / pool parts (sorted index arrays, disjoint, covering).

    Sizes: ``round(reference_fraction * N)`` and ``round(test_fraction * N)``, the pool gets the rest; each part
    must be non-empty and the pool needs at least 8 molecules (the audit trains on half of it). For
    classification the reference and test parts keep the class proportions (largest remainder per class), and
    the pool gets the rest of every class."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-d (one label per molecule), got shape {y.shape}")
    check_choice("kind", kind, ("classification", "regression"))
    reference_fraction = _fraction("reference_fraction", reference_fraction)
    test_fraction = _fraction("test_fraction", test_fraction)
    if reference_fraction + test_fraction >= 1:
        raise ValueError(f"reference_fraction + test_fraction must be < 1 (the rest is the pool), got "
                         f"{reference_fraction} + {test_fraction}")
    seed = check_int("seed", seed, minimum=0)
    n = y.size
    n_reference, n_test = round(reference_fraction * n), round(test_fraction * n)
    if n_reference < 1 or n_test < 1 or n - n_reference - n_test < 8:
        raise ValueError(f"{n} molecules are too few for reference_fraction={reference_fraction} and "
                         f"test_fraction={test_fraction}: each part needs a molecule and the pool 8")
    rng = np.random.default_rng([seed, 6])
    if kind == "regression":
        order = rng.permutation(n)
        parts = [order[:n_reference], order[n_reference:n_reference + n_test], order[n_reference + n_test:]]
    else:
        parts = [[], [], []]
        classes = np.unique(y)
        groups = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
        taken = np.zeros(len(classes), dtype=int)
        for part, size in ((0, n_reference), (1, n_test)):
            exact = size * np.array([g.size for g in groups]) / n
            take = np.floor(exact).astype(int)
            for k in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
                take[k] += 1
            for k, group in enumerate(groups):
                parts[part].extend(group[taken[k]:taken[k] + take[k]])
            taken += take
        for k, group in enumerate(groups):
            parts[2].extend(group[taken[k]:])
        parts = [np.asarray(p, dtype=np.int64) for p in parts]
    return MolecularSplit(*(np.sort(p).astype(np.int64) for p in parts))


# ------------------------------------------------------------------------------------------------- features

class Featuriser:
    """Embedding -> model inputs, fitted on reference molecules only (see the module notes, step 3).

    ``standardise``: impute and standardise first (continuous embedders), clipped at ``clip``. Then the first
    ``n_features`` principal components of the (centred) reference rows, each divided by its standard
    deviation on the reference rows, so that every input has unit variance there. Component signs are fixed
    (largest loading positive), so the same data give the same features.

    ``n_features=None``: the full representation, no projection (what a chemist trains on): fingerprints stay
    0/1 (sparse: an ECFP4 row has about 2% ones), continuous embeddings are standardised and clipped."""

    def __init__(self, n_features: int | None, *, standardise: bool, clip: float = 5.0):
        self.n_features = None if n_features is None else check_int("n_features", n_features, minimum=1)
        self.standardise = bool(standardise)
        self.clip = check_float("clip", clip, low=0.0, low_open=True)

    def fit(self, reference: np.ndarray) -> "Featuriser":
        from mislib.molecules.embedders import Standardiser

        reference = _finite_matrix("reference", reference, allow_nan=self.standardise)
        if self.standardise:
            self.standardiser_ = Standardiser(clip=self.clip).fit(reference)
            reference = self.standardiser_.transform(reference).astype(np.float64)
        self.n_columns_ = reference.shape[1]
        if self.n_features is None:
            return self
        self.mean_ = reference.mean(axis=0)
        centred = reference - self.mean_
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        std = singular / math.sqrt(max(1, reference.shape[0] - 1))
        usable = int(np.sum(std > 1e-8 * max(float(std.max(initial=0.0)), 1e-300)))
        if usable < self.n_features:
            raise ValueError(f"n_features={self.n_features} principal components asked for, but the "
                             f"{reference.shape[0]} reference molecules span only {usable} directions: use more "
                             "molecules (a larger reference_fraction) or fewer features")
        components = vt[: self.n_features]
        signs = np.sign(components[np.arange(self.n_features), np.abs(components).argmax(axis=1)])
        self.components_ = components * signs[:, None]
        self.scale_ = std[: self.n_features]
        return self

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        if not hasattr(self, "n_columns_"):
            raise RuntimeError("Featuriser.transform called before fit")
        matrix = _finite_matrix("matrix", matrix, allow_nan=self.standardise)
        if matrix.shape[1] != self.n_columns_:
            raise ValueError(f"matrix has {matrix.shape[1]} columns, the featuriser was fitted on "
                             f"{self.n_columns_}")
        if self.standardise:
            matrix = self.standardiser_.transform(matrix).astype(np.float64)
        if self.n_features is None:
            return matrix
        return ((matrix - self.mean_) @ self.components_.T) / self.scale_


def _finite_matrix(name: str, value, allow_nan: bool) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    if value.ndim != 2 or value.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-d array [molecules, features], got shape {value.shape}")
    if not allow_nan and not np.isfinite(value).all():
        raise ValueError(f"{name} has {int((~np.isfinite(value)).sum())} NaN or infinite entries; only "
                         "continuous embedders (standardise=True) are imputed")
    return value


# ------------------------------------------------------------------------------------------- one configuration

@dataclass
class PreparedTask:
    """Model inputs of one task, embedder and seed (what ``audit.run_audit`` receives), and their bookkeeping."""

    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    kind: str
    target_scale: float      # regression: the reference labels' standard deviation (1.0 for classification)
    n_molecules: int         # molecules embedded successfully
    n_failed: int            # molecules the embedder could not handle (dropped)
    split: MolecularSplit


def prepare(task: str, embedder: str, *, n_molecules, seed: int, n_features: int | None, data_seed: int = 0,
            reference_fraction: float = 0.2, test_fraction: float = 0.2, clip: float = 5.0,
            progress: bool = False) -> PreparedTask:
    """Load, embed (cached), split and featurise one task for one seed (module notes, steps 1-4)."""
    from mislib.molecules import embedders
    from mislib.molecules import datasets as molecules

    check_choice("task", task, TASKS)
    check_choice("embedder", embedder, EMBEDDERS)
    data = molecules.load(task, n_molecules=n_molecules, seed=data_seed)
    X = embedders.embed_cached(data, embedder, progress=progress)
    failed = embedders.failed_rows(X)
    X, y = X[~failed], data.y[~failed]
    split = split_molecules(y, data.kind, reference_fraction=reference_fraction, test_fraction=test_fraction,
                            seed=seed)
    featuriser = Featuriser(n_features, standardise=embedder in CONTINUOUS_EMBEDDERS, clip=clip)
    featuriser.fit(X[split.reference])
    y = y.astype(np.float64)
    scale = 1.0
    if data.kind == "regression":
        centre, scale = float(y[split.reference].mean()), float(y[split.reference].std())
        if not scale > 0:
            raise ValueError(f"{task}: the reference molecules all have the same label; cannot standardise")
        y = (y - centre) / scale
    return PreparedTask(X_pool=featuriser.transform(X[split.pool]), y_pool=y[split.pool],
                        X_test=featuriser.transform(X[split.test]), y_test=y[split.test], kind=data.kind,
                        target_scale=scale, n_molecules=int(len(y)), n_failed=int(failed.sum()), split=split)
