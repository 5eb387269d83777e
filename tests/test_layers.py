"""The three layers of docs/ARCHITECTURE.md: what the core may import, and the deprecated aliases of mislib 0.1."""

import ast
import pathlib
import subprocess
import sys
import warnings

import pytest

import mislib

PACKAGE = pathlib.Path(mislib.__file__).parent
CORE = ("quantizers", "mis", "modules", "objective", "variance", "sandwich", "crossing", "indicator", "attacks",
        "heldout", "tanh_mlp", "plotting")
HEAVY = ("rdkit", "onnxruntime", "datamol", "dask", "distributed")


def test_importing_the_core_imports_no_chemistry_and_no_dask():
    imports = "; ".join(f"import mislib.{name}" for name in CORE)
    code = (f"import sys; import mislib; {imports}; mislib.get_quantizer('sign'); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"the core imported {out.strip()}"


def test_import_mislib_is_light_and_reaches_subpackages_on_first_use():
    code = ("import sys, mislib; before = sorted(m for m in sys.modules if m.startswith('mislib.'));"
            "q = mislib.quantizers.get('kmeans', bits=2); print(before, 'mislib.quantizers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mislib._deprecated'] True"
    with pytest.raises(AttributeError, match="no attribute 'quantizer'"):
        mislib.quantizer


def _mislib_imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mislib"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("mislib"))
    return found


@pytest.mark.parametrize("name", CORE)
def test_core_modules_import_only_the_core_and_infra(name):
    path = PACKAGE / (f"{name}.py" if (PACKAGE / f"{name}.py").exists() else f"{name}/__init__.py")
    files = [path] if path.name != "__init__.py" else sorted(path.parent.glob("*.py"))
    for file in files:
        for module in _mislib_imports(file):
            assert not module.startswith(("mislib.evaluation", "mislib.studies", "mislib.molecules")), \
                f"{file.relative_to(PACKAGE)} (core) imports {module}"


def test_evaluation_never_imports_a_study():
    for file in sorted((PACKAGE / "evaluation").glob("*.py")):
        for module in _mislib_imports(file):
            assert not module.startswith("mislib.studies"), f"{file.name} imports {module}"


@pytest.mark.parametrize("layer, allowed", [
    ("infra", ("mislib.infra",)),
    ("molecules", ("mislib.infra", "mislib.molecules")),
])
def test_infra_and_molecules_import_only_what_docs_architecture_allows(layer, allowed):
    for file in sorted((PACKAGE / layer).glob("*.py")):
        for module in _mislib_imports(file):
            if module in ("mislib", "mislib.__version__"):
                continue
            assert module.startswith(allowed), f"{layer}/{file.name} imports {module}"


def test_no_module_imports_another_modules_private_names():
    for file in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mislib"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{file.relative_to(PACKAGE)} imports private {private} from {node.module}"


@pytest.mark.parametrize("old, name, new", [
    ("mislib.models", "fit_logistic", "mislib.evaluation.trainers"),
    ("mislib.audit", "ranking_agreement", "mislib.evaluation.agreement"),
    ("mislib.audit", "run_synthetic_ranking", "mislib.studies.synthetic_ranking"),
    ("mislib.montecarlo", "validation_study", "mislib.studies.validation"),
    ("mislib.experiments", "cached_table", "mislib.infra.tables"),
    ("mislib.datasets.synthetic", "GaussianMixture", "mislib.evaluation.synthetic_data"),
])
def test_old_module_names_are_deprecated_aliases(old, name, new):
    import importlib

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and new.split(".")[1] in str(w.message) for w in caught)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="no attribute"):
        module.no_such_name


def test_moved_theory_names_warn_from_mis():
    from mislib import mis
    from mislib.studies import theory

    with pytest.warns(DeprecationWarning, match="studies.theory"):
        assert mis.theory_rates_table is theory.theory_rates_table
