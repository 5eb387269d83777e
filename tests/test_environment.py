"""environment.yml (conda / Binder) and pyproject.toml must list the same packages at the same versions."""

import re
import tomllib

import yaml

from mislib.infra.paths import PROJECT_ROOT

# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values()
                                              for r in extra]
    pins = {}
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        assert sep, f"pyproject.toml: {requirement!r} is not pinned with =="
        pins[_normalise(name)] = version
    return pins


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pins = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            for requirement in entry["pip"]:
                if requirement.startswith("-e"):
                    continue
                name, sep, version = requirement.partition("==")
                assert sep, f"environment.yml pip: {requirement!r} is not pinned with =="
                pins[_normalise(name)] = version
            continue
        name, _, version = entry.partition("=")
        if name in NOT_PACKAGES:
            continue
        pins[_normalise(CONDA_TO_PYPI.get(name, name))] = version
    return pins


def test_same_packages_and_versions():
    project, environment = pyproject_pins(), environment_pins()
    assert set(project) == set(environment), (
        f"only in pyproject.toml: {sorted(set(project) - set(environment))}; "
        f"only in environment.yml: {sorted(set(environment) - set(project))}")
    drift = {name: (project[name], environment[name]) for name in project if project[name] != environment[name]}
    assert not drift, f"versions differ (pyproject, environment.yml): {drift}"


def test_environment_installs_the_project_itself():
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_section = next(entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict))
    editable = [e for e in pip_section if re.fullmatch(r"-e \.(\[[a-z,]+\])?", e)]
    assert editable, f"environment.yml installs no editable copy of the project: {pip_section}"


def test_jupyterlab_and_widgets_are_pinned_dependencies():
    """make lab needs JupyterLab, the theory notebooks need ipywidgets: both pinned, in the core dependencies."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    core = {_normalise(r.partition("==")[0]) for r in project["dependencies"]}
    assert {"jupyterlab", "ipywidgets", "ipykernel"} <= core
