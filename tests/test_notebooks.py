"""The published notebooks in normal form, the preset chosen in class, and a hand-run that leaves the tree clean
(issue 13, items 1-3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from mislib.infra import notebooks as normal_form
from mislib.infra import presets
from mislib.infra.paths import PROJECT_ROOT

NOTEBOOKS = normal_form.notebooks()


def test_every_notebook_is_normalised():
    stale = normal_form.check()
    assert not stale, f"run `python -m mislib.infra.notebooks normalise`: {[p.name for p in stale]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_declares_the_project_kernel_and_no_absolute_path(path):
    text = path.read_text()
    notebook = nbformat.reads(text, as_version=4)
    assert notebook.metadata.kernelspec == {"name": "mislib", "display_name": "Python 3 (mislib)",
                                            "language": "python"}
    assert str(PROJECT_ROOT) not in text
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in notebook.cells)
    assert path.name[:2] in presets.NOTEBOOK_SECONDS


def test_the_installed_kernel_has_the_declared_display_name():
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(normal_form.KERNEL_NAME)
    except NoSuchKernel:
        pytest.skip("the mislib kernel is not installed (make setup installs it)")
    assert spec.display_name == normal_form.KERNEL_DISPLAY_NAME


def test_normalise_rewrites_preset_kernel_injected_cell_and_paths():
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["papermill"] = {"input_path": "/home/a/proj/notebooks/03_x.ipynb",
                                      "output_path": "/home/a/proj/build/executing/03_x.ipynb",
                                      "parameters": {"PRESET": "paper"}}
    parameters = nbformat.v4.new_code_cell('import os\nPRESET = os.environ.get("MISLIB_PRESET", "paper")\nSEED = 0',
                                           metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell('PRESET = "paper"', metadata={"tags": ["injected-parameters"]})
    figure = nbformat.v4.new_code_cell("savefig(fig, 'a')", outputs=[nbformat.v4.new_output(
        "execute_result", data={"text/plain": "PosixPath('/home/a/proj/figures/a.png')"}, execution_count=1)])
    notebook.cells = [parameters, injected, figure]
    normal_form.normalise(notebook, "03", "notebooks/03_x.ipynb")
    assert [c.source.splitlines()[-1] for c in notebook.cells] == ["SEED = 0", "savefig(fig, 'a')"]
    assert 'PRESET = notebook_preset("03")' in notebook.cells[0].source
    assert "from mislib.infra.presets import notebook_preset" in notebook.cells[0].source
    assert notebook.cells[1].outputs[0]["data"]["text/plain"] == "PosixPath('figures/a.png')"
    assert notebook.metadata.papermill["input_path"] == "notebooks/03_x.ipynb"
    assert notebook.metadata.kernelspec["name"] == "mislib"
    again = nbformat.writes(notebook)
    normal_form.normalise(notebook, "03", "notebooks/03_x.ipynb")   # idempotent
    assert nbformat.writes(notebook) == again


def test_notebook_preset_reads_the_environment_and_preset_config_says_what_it_runs(monkeypatch, capsys):
    monkeypatch.setenv("MISLIB_PRESET", "smoke")
    monkeypatch.delenv("MISLIB_PUBLISH", raising=False)
    monkeypatch.delenv("MISLIB_OUTPUT_DIR", raising=False)
    assert presets.notebook_preset("05") == "smoke"
    assert presets.preset_config("smoke", smoke={"n": 1}, paper={"n": 2}) == {"n": 1}
    presets.preset_config("smoke", smoke={"n": 1}, paper={"n": 2})      # said once per notebook and preset
    printed = capsys.readouterr().out
    assert printed.count("Preset 'smoke'") == 1
    assert "notebook 05 takes about 30 s" in printed and "paper: about 6 min" in printed     # 330 s
    assert "MISLIB_PRESET=paper" in printed and "build/outputs/" in printed
    monkeypatch.setenv("MISLIB_PRESET", "huge")
    with pytest.raises(ValueError, match="unknown preset"):
        presets.notebook_preset("05")
    with pytest.raises(ValueError, match="notebook must be one of"):
        presets.notebook_preset("99")


def _status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_papermill_by_hand_from_another_directory_leaves_the_tree_clean(tmp_path):
    """The issue's reproduction: papermill at the smoke preset, run by hand from /tmp, used to overwrite eight
    figures and two published tables. Now everything goes to build/outputs and git sees no change."""
    if subprocess.run(["git", "rev-parse"], cwd=PROJECT_ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    before = _status()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISLIB_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    source = PROJECT_ROOT / "notebooks" / "02_fixed_quantizers.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", str(source), "out.ipynb", "-p", "PRESET", "smoke",
                    "--no-progress-bar"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
    assert _status() == before
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    text = json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "saved build/outputs/figures/02_" in text
    assert str(PROJECT_ROOT) not in text
    assert (PROJECT_ROOT / "build" / "outputs" / "data" / "results" / "sr_crossover.json").exists()
