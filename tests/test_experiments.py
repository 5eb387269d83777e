"""Result tables: atomic, sealed by a checksum, keyed by configuration; a bad cache is recomputed, never read."""

import json

import pandas as pd
import pytest

from mislib.infra import tables as experiments
from mislib.infra.tables import CacheMiss, cached_table, config_hash, read_table, write_table


def _table(value=1.5):
    return pd.DataFrame({"quantizer": ["uniform", "sign"], "sample_size": [100, 100], "r_min": [value, 0.25]})


def test_config_hash_ignores_key_order_and_sees_values():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_round_trip_and_sidecar(tmp_path):
    write_table("demo", _table(), {"n": 3}, seeds=[0, 1], wall_time_s=1.25, directory=tmp_path)
    back = read_table("demo", {"n": 3}, tmp_path)
    pd.testing.assert_frame_equal(back, _table())
    sidecar = json.loads((tmp_path / "demo.json").read_text())
    assert sidecar["seeds"] == [0, 1] and sidecar["rows"] == 2 and sidecar["config"] == {"n": 3}
    assert "torch" in sidecar["packages"] and sidecar["wall_time_s"] == 1.25


def test_stale_config_is_a_miss(tmp_path):
    write_table("demo", _table(), {"n": 3}, directory=tmp_path)
    with pytest.raises(CacheMiss, match="another configuration"):
        read_table("demo", {"n": 4}, tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "edit", "sidecar", "missing_sidecar"])
def test_damaged_cache_is_recomputed_not_read(tmp_path, damage):
    config = {"n": 3}
    write_table("demo", _table(value=9.0), config, directory=tmp_path)
    csv, sidecar = tmp_path / "demo.csv", tmp_path / "demo.json"
    if damage == "truncate":
        csv.write_bytes(csv.read_bytes()[:20])
    elif damage == "edit":
        csv.write_text(csv.read_text().replace("9", "8"))
    elif damage == "sidecar":
        sidecar.write_text("{not json")
    else:
        sidecar.unlink()
    with pytest.raises(CacheMiss):
        read_table("demo", config, tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return _table(value=2.0)

    table = cached_table("demo", config, compute, directory=tmp_path)
    assert calls == [1] and table["r_min"].iloc[0] == 2.0
    # now valid: a second call reads, does not recompute
    cached_table("demo", config, compute, directory=tmp_path)
    assert calls == [1]


def test_identical_results_are_byte_identical(tmp_path):
    write_table("a", _table(), {"n": 1}, directory=tmp_path)
    write_table("b", _table(), {"n": 1}, directory=tmp_path)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(experiments.os, "fsync", explode)
    with pytest.raises(OSError, match="disk full"):
        write_table("demo", _table(), {"n": 1}, directory=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _square(x):
    return x * x


def test_parallel_map_serial_and_processes_agree():
    items = list(range(7))
    assert experiments.parallel_map(_square, items, n_jobs=1) == experiments.parallel_map(_square, items, n_jobs=2)


def _grid_rows(config):
    import math

    if config.get("fail_at") == config["sample_size"]:
        raise KeyboardInterrupt("simulated kill")
    return pd.DataFrame({"sample_size": [config["sample_size"]], "seed": [config["seed"]],
                         "value": [math.sqrt(config["sample_size"]) + config["seed"] / 3]})


def test_interrupted_grid_resumes_with_the_same_table(tmp_path, monkeypatch):
    monkeypatch.setenv("MISLIB_CACHE_DIR", str(tmp_path / "cache"))
    configs = [{"sample_size": n, "seed": s} for n in (10, 20, 40, 80) for s in (0, 1)]
    clean = experiments.cached_grid("clean", configs, _grid_rows, directory=tmp_path, progress=False)

    calls = []

    def flaky(config):
        calls.append(config["sample_size"])
        return _grid_rows({**config, "fail_at": 40 if len(calls) < 6 else None})

    with pytest.raises(KeyboardInterrupt):
        experiments.cached_grid("resumed", configs, flaky, directory=tmp_path, progress=False)
    assert not (tmp_path / "resumed.csv").exists()  # no half table
    completed = len(calls) - 1  # the last call was killed
    assert completed == 4
    resumed = experiments.cached_grid("resumed", configs, flaky, directory=tmp_path, progress=False)
    assert len(calls) == completed + 1 + (len(configs) - completed)  # only the missing points recomputed
    pd.testing.assert_frame_equal(clean, resumed)
    assert (tmp_path / "clean.csv").read_bytes() == (tmp_path / "resumed.csv").read_bytes()


def test_corrupt_grid_point_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("MISLIB_CACHE_DIR", str(tmp_path / "cache"))
    configs = [{"sample_size": 10, "seed": 0}, {"sample_size": 20, "seed": 0}]
    first = experiments.cached_grid("g", configs, _grid_rows, directory=tmp_path, progress=False)
    for point in (tmp_path / "cache" / "grid" / "g").glob("*.csv"):
        point.write_bytes(point.read_bytes()[:5])
    (tmp_path / "g.json").unlink()
    second = experiments.cached_grid("g", configs, _grid_rows, directory=tmp_path, progress=False)
    pd.testing.assert_frame_equal(first, second)


def test_dask_cluster_gives_the_serial_table(monkeypatch):
    """A grid sent to a real Dask cluster (LocalCluster, 2 worker processes) returns the serial results."""
    import functools

    distributed = pytest.importorskip("distributed")
    from mislib.mis import exact_gaussian_mean
    from mislib.quantizers import FixedGrid

    point = functools.partial(exact_gaussian_mean, mu=0.13, sigma=1.0, quantizer=FixedGrid(0.5))
    sizes = [10, 40, 160, 640]
    serial = [r.log_delta for r in experiments.parallel_map(point, sizes, n_jobs=1)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        monkeypatch.setenv("MISLIB_DASK_ADDRESS", cluster.scheduler_address)
        on_cluster = [r.log_delta for r in experiments.parallel_map(point, sizes)]
    assert on_cluster == serial
    assert serial == sorted(serial, reverse=True)  # and the grid is not trivial: security grows with n
