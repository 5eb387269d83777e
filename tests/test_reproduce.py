"""The papermill runner: parameters reach the notebook, failures name the cell, good notebooks are written back."""

import nbformat
import pytest

from mislib.infra import reproduce
from mislib.infra.notebooks import KERNELSPEC
from mislib.infra.student import student_copy


def _notebook(*sources, tags=None):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.cells = [nbformat.v4.new_code_cell('import os\nPRESET = os.environ.get("MISLIB_PRESET", "paper")\n'
                                                'DEVICE = os.environ.get("MISLIB_DEVICE", "cpu")',
                                                metadata={"tags": ["parameters"]})]
    for index, source in enumerate(sources):
        cell_tags = (tags or {}).get(index, [])
        notebook.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": cell_tags}))
    return notebook


def test_runner_passes_preset_through_the_environment_and_stores_no_injected_cell(tmp_path):
    path = tmp_path / "01_ok.ipynb"
    nbformat.write(_notebook("print('preset is', PRESET)"), path)
    run = reproduce.run_notebook(path, "smoke", "cpu", tmp_path / "out")
    assert run.ok and run.seconds > 0
    executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
    assert not [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "preset is smoke" in executed.cells[-1].outputs[0]["text"]
    # normalised: the notebook now reads its preset through notebook_preset, papermill recorded no absolute path
    assert 'notebook_preset("01")' in executed.cells[0].source
    assert executed.metadata.kernelspec == KERNELSPEC
    assert not executed.metadata.papermill["input_path"].startswith("/")
    assert str(tmp_path) not in nbformat.writes(executed)


def test_failing_notebook_names_its_cell_and_leaves_original(tmp_path):
    path = tmp_path / "02_bad.ipynb"
    nbformat.write(_notebook("x = 1", "raise ValueError('broken on purpose')"), path)
    original = path.read_bytes()
    run = reproduce.run_notebook(path, "smoke", "cpu", tmp_path)
    assert not run.ok
    assert "ValueError" in run.error and "broken on purpose" in run.error and "cell" in run.error
    assert path.read_bytes() == original


def test_discover_selects_by_number_and_rejects_unknown(tmp_path):
    for name in ("00_a.ipynb", "01_b.ipynb", "notes.ipynb"):
        nbformat.write(_notebook(), tmp_path / name)
    assert [p.name for p in reproduce.discover(directory=tmp_path)] == ["00_a.ipynb", "01_b.ipynb"]
    assert [p.name for p in reproduce.discover("01", directory=tmp_path)] == ["01_b.ipynb"]
    with pytest.raises(SystemExit, match="matches no notebook"):
        reproduce.discover("07", directory=tmp_path)


def test_cli_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        reproduce.main(["--preset", "huge"])
    with pytest.raises(SystemExit):
        reproduce.main(["--workers", "0"])


def test_student_copy_drops_only_solutions():
    notebook = _notebook("exercise = 1", "answer = 42", tags={1: ["solution"]})
    copy = student_copy(notebook, "07")
    sources = [c.source for c in copy.cells[1:]]
    assert sources[0] == "exercise = 1" and "answer = 42" not in sources
    assert sources[-1].endswith('check("07-1", answer)') and sources[-2].endswith("answer = ...")
    assert len(notebook.cells) == 3  # input untouched


def _fake_runner(monkeypatch):
    import os

    seen = {}

    def fake_run(path, preset, device, output_dir):
        seen.update(path=path, preset=preset, output_dir=output_dir, output_root=os.environ.get("MISLIB_OUTPUT_DIR"),
                    publish=os.environ.get("MISLIB_PUBLISH"))
        return reproduce.NotebookRun(path.stem, 0.1, 0.0, True)

    for variable in ("MISLIB_OUTPUT_DIR", "MISLIB_PUBLISH", "MISLIB_PRESET"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(reproduce, "run_notebook", fake_run)
    return seen


@pytest.mark.parametrize("preset", ["smoke", "paper"])
def test_only_publish_writes_over_published_artefacts(monkeypatch, preset):
    """Without --publish, any preset (paper too) writes notebooks, figures and tables under build/<preset>."""
    seen = _fake_runner(monkeypatch)
    assert reproduce.main(["--preset", preset, "--only", "00"]) == 0
    assert seen["output_dir"] == reproduce.BUILD_DIR / preset / "notebooks"
    assert seen["output_root"] == str(reproduce.BUILD_DIR / preset)
    assert seen["publish"] == "0"
    assert reproduce.NOTEBOOK_DIR not in seen["output_dir"].parents


def test_publish_writes_the_published_notebooks_at_the_paper_preset_only(monkeypatch):
    seen = _fake_runner(monkeypatch)
    assert reproduce.main(["--preset", "paper", "--publish", "--only", "00"]) == 0
    assert seen["output_dir"] == reproduce.NOTEBOOK_DIR and seen["publish"] == "1" and seen["output_root"] is None
    with pytest.raises(SystemExit):
        reproduce.main(["--preset", "smoke", "--publish", "--only", "00"])
