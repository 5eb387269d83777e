"""Old module names (mislib 0.1), kept for one release as deprecated aliases of the re-layered modules.

``import mislib.models`` still works and warns once: each old name is an alias module whose attributes are
looked up, in order, in the modules that now hold them (``mislib.audit`` was split in three).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

ALIASES = {
    "mislib.models": ("mislib.evaluation.trainers",),
    "mislib.audit": ("mislib.evaluation.audit", "mislib.evaluation.agreement", "mislib.studies.synthetic_ranking"),
    "mislib.montecarlo": ("mislib.evaluation.montecarlo", "mislib.studies.validation"),
    "mislib.molecular_study": ("mislib.studies.molecular",),
    "mislib.embedders": ("mislib.molecules.embedders",),
    "mislib.datasets": (),
    "mislib.datasets.molecules": ("mislib.molecules.datasets",),
    "mislib.datasets.synthetic": ("mislib.evaluation.synthetic_data",),
    "mislib.experiments": ("mislib.infra.tables",),
    "mislib.presets": ("mislib.infra.presets",),
    "mislib.paths": ("mislib.infra.paths",),
    "mislib.checks": ("mislib.infra.checks",),
    "mislib.student": ("mislib.infra.student",),
}


class _AliasModule(types.ModuleType):
    def __getattr__(self, name):
        for target in ALIASES[self.__name__]:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} (deprecated alias of {ALIASES[self.__name__]}) has no "
                             f"attribute {name!r}")


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ALIASES:
            return None
        is_package = any(other.startswith(fullname + ".") for other in ALIASES)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)

    def create_module(self, spec):
        new = ", ".join(ALIASES[spec.name]) or "mislib.molecules and mislib.evaluation.synthetic_data"
        warnings.warn(f"{spec.name} is deprecated and will be removed in mislib 0.3; use {new}",
                      DeprecationWarning, stacklevel=3)
        module = _AliasModule(spec.name)
        if spec.submodule_search_locations is not None:
            module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def install() -> None:
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
