"""Published artefacts are written by one path only (issue 13): figures/ and data/results/ when MISLIB_PUBLISH=1
(make reproduce at the paper preset), build/outputs/ for every other run, which still reads the published tables."""

import json

import pandas as pd
import pytest

from mislib.infra import paths, tables


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throw-away project root with one published table."""
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    for variable in ("MISLIB_OUTPUT_DIR", "MISLIB_PUBLISH"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def test_default_output_is_build_outputs_and_publishing_is_explicit(project, monkeypatch):
    assert paths.output_root() == project / "build" / "outputs"
    assert paths.figures_dir() == project / "build" / "outputs" / "figures"
    monkeypatch.setenv("MISLIB_PUBLISH", "1")
    assert paths.results_dir() == project / "data" / "results"
    monkeypatch.setenv("MISLIB_OUTPUT_DIR", "build/x")   # an explicit directory wins
    assert paths.output_root() == project / "build" / "x"
    monkeypatch.setenv("MISLIB_PUBLISH", "yes")
    with pytest.raises(ValueError, match="MISLIB_PUBLISH"):
        paths.publishing()


def test_display_path_is_relative_inside_the_project(project):
    assert paths.display_path(project / "figures" / "a.png") == "figures/a.png"
    assert paths.display_path("/elsewhere/a.png") == "/elsewhere/a.png"


def _compute():
    return pd.DataFrame({"n": [1, 2], "value": [0.5, 0.25]})


def test_an_unpublished_run_reads_the_published_table_and_never_writes_it(project, monkeypatch):
    monkeypatch.setenv("MISLIB_PUBLISH", "1")
    tables.cached_table("demo", {"n": 2}, _compute)
    published = project / "data" / "results"
    before = {p.name: p.read_bytes() for p in published.iterdir()}
    monkeypatch.delenv("MISLIB_PUBLISH")
    calls = []

    def compute():
        calls.append(1)
        return _compute()

    table = tables.cached_table("demo", {"n": 2}, compute)   # valid published table: read, copied, not computed
    assert calls == [] and list(table["value"]) == [0.5, 0.25]
    scratch = project / "build" / "outputs" / "data" / "results"
    assert json.loads((scratch / "demo.json").read_text())["rows"] == 2
    tables.cached_table("demo", {"n": 3}, compute)           # another configuration: computed into build/
    assert calls == [1]
    assert {p.name: p.read_bytes() for p in published.iterdir()} == before
    assert json.loads((scratch / "demo.json").read_text())["config"] == {"n": 3}


def test_savefig_prints_a_relative_path_and_returns_none(project, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mislib.plotting import savefig

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert savefig(fig, "demo") is None
    plt.close(fig)
    printed = capsys.readouterr().out
    assert printed.strip() == "saved build/outputs/figures/demo.png and .pdf"
    assert (project / "build" / "outputs" / "figures" / "demo.pdf").exists()
    assert not (project / "figures").exists()
