"""The old import paths of moved modules and renamed classes, kept for one release (0.2).

Version 0.2 arranged the package by role (``methods/``, ``scoring/``, ``runtime/``;
docs/architecture.md). Code and configs written against 0.1 keep working: an import of an
old module path gets a stand-in module that forwards every attribute to the module's new
home, and an old class name resolves to the renamed class. Either warns once with a
``DeprecationWarning`` naming the new path. Run configs and checkpoints saved by 0.1
(``_target_: magdi_lightning.module.DistillationModule``) load through the same aliases.
The aliases go in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

__all__ = ["MOVED_MODULES", "RENAMED", "install", "renamed_attribute"]

#: Old module path -> its new home.
MOVED_MODULES = {
    "magdi_lightning.module": "magdi_lightning.methods.magdi",
    "magdi_lightning.task_module": "magdi_lightning.methods.multitask",
    "magdi_lightning.student_module": "magdi_lightning.methods.base",
    "magdi_lightning.siked": "magdi_lightning.methods.siked",
    "magdi_lightning.sandbox": "magdi_lightning.scoring.sandbox",
    "magdi_lightning.sandbox_isolation": "magdi_lightning.scoring.sandbox_isolation",
    "magdi_lightning.evaluation.answers": "magdi_lightning.scoring.answers",
    "magdi_lightning.evaluation.math_equivalence": "magdi_lightning.scoring.math_equivalence",
    "magdi_lightning.evaluation.pot": "magdi_lightning.scoring.pot",
    "magdi_lightning.evaluation.benchmarks": "magdi_lightning.sources.question_sets",
    "magdi_lightning.runs": "magdi_lightning.runtime.runs",
    "magdi_lightning.tracking": "magdi_lightning.runtime.tracking",
    "magdi_lightning.callbacks": "magdi_lightning.runtime.callbacks",
    "magdi_lightning.distributed": "magdi_lightning.runtime.distributed",
    "magdi_lightning.config_checks": "magdi_lightning.runtime.config_checks",
    "magdi_lightning.reporting": "magdi_lightning.runtime.aggregate",
}

#: Old class or function name -> (module, new name), wherever the old name was imported from.
RENAMED = {
    "BenchmarkExample": ("magdi_lightning.questions", "Question"),
    "GraphValidationError": ("magdi_lightning.errors", "RecordError"),
    "MAGDataModule": ("magdi_lightning.data.datamodule", "SourceDataModule"),
    "StudentModule": ("magdi_lightning.methods.base", "MethodModule"),
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is now {new}; the old name goes in magdi-lightning 0.3",
                  DeprecationWarning, stacklevel=3)


def renamed_attribute(module: str, name: str) -> Any:
    """The object a renamed ``module.name`` now is (a module's ``__getattr__`` hook)."""
    if name not in RENAMED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    home, new_name = RENAMED[name]
    _warn(f"{module}.{name}", f"{home}.{new_name}")
    return getattr(importlib.import_module(home), new_name)


class _StandIn(types.ModuleType):
    """An old module path: forwards attributes to the new module (and renamed names)."""

    def __getattr__(self, name: str) -> Any:
        target = importlib.import_module(MOVED_MODULES[self.__name__])
        if hasattr(target, name):
            return getattr(target, name)
        return renamed_attribute(self.__name__, name)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(MOVED_MODULES[self.__name__]))


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module paths (only those: it runs after the normal finders)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandIn(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        _warn(module.__name__, MOVED_MODULES[module.__name__])


def install() -> None:
    """Make the old module paths importable (idempotent)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
