"""The examples in the docstrings run (doctest over every mislib module), and the entry points a user starts from
have an Examples section (numpydoc)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import mislib

HAVE_RDKIT = importlib.util.find_spec("rdkit") is not None


def _module_names() -> list[str]:
    names = ["mislib"]
    for info in pkgutil.walk_packages(mislib.__path__, prefix="mislib."):
        if info.name.startswith("mislib.molecules") and not HAVE_RDKIT:
            continue
        names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def test_every_module_is_found():
    assert {"mislib", "mislib.quantizers.registry", "mislib.mis", "mislib.mis.exact", "mislib.mis.multivariate",
            "mislib.objective", "mislib.variance", "mislib.crossing", "mislib.indicator", "mislib.attacks"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False,
                             report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest example(s) failed in {name}"


def _has_examples(obj) -> bool:
    doc = obj.__doc__ or ""
    return "Examples\n" in doc and "--------" in doc.split("Examples\n", 1)[1][:40] and ">>>" in doc


ENTRY_POINTS = [
    ("mislib.quantizers", "get"),
    ("mislib.quantizers", "available"),
    ("mislib.quantizers", "labelled"),
    ("mislib.mis", "exact_gaussian_mean"),
    ("mislib.mis", "exact_bernoulli_mean"),
    ("mislib.indicator", "standard_errors"),
    ("mislib.indicator", "indicator_from_estimates"),
    ("mislib.indicator", "indicator_of_model"),
]


@pytest.mark.parametrize("module, name", ENTRY_POINTS)
def test_entry_points_have_examples(module, name):
    obj = getattr(importlib.import_module(module), name)
    assert _has_examples(obj), f"{module}.{name} has no numpydoc Examples section with >>> examples"
    finder = doctest.DocTestFinder()
    examples = sum(len(test.examples) for test in finder.find(obj, name, globs={}))
    assert examples >= 1


def test_a_failing_example_is_caught():
    """The check above can fail: a wrong expected output is counted as a failure."""
    def wrong():
        """
        >>> 1 + 1
        3
        """

    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(wrong, "wrong", globs={}):
        runner.run(test, out=lambda text: None)
    assert runner.failures == 1
