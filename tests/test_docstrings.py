"""The Examples sections of the indicator's and the exact MIS's entry points run as doctests."""

import doctest
import importlib

import pytest

MODULES = ("mislib.objective", "mislib.variance", "mislib.crossing", "mislib.indicator", "mislib.mis.exact",
           "mislib.mis.multivariate")


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
