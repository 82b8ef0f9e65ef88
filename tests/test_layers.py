"""The package's layers (docs/architecture.md): no module imports from a layer above its own.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy
import that runs back up the layers is still a dependency a reader has to know about.
"""

from __future__ import annotations

import ast
from pathlib import Path

import magdi_lightning

PACKAGE = Path(magdi_lightning.__file__).parent

#: Lowest first; a module may import from its own layer and the layers before it.
LAYERS = (
    ("magdi_lightning", "magdi_lightning._compat"),
    ("magdi_lightning.errors", "magdi_lightning.io", "magdi_lightning.graph",
     "magdi_lightning.strategies", "magdi_lightning.losses"),
    ("magdi_lightning.scoring",),
    ("magdi_lightning.questions",),
    ("magdi_lightning.sources",),
    ("magdi_lightning.models",),
    ("magdi_lightning.data",),
    ("magdi_lightning.teachers",),
    ("magdi_lightning.evaluation",),
    ("magdi_lightning.methods",),
    ("magdi_lightning.runtime",),
    ("magdi_lightning.cli",),
)


def layer_of(module: str) -> int:
    """The layer of ``module``: the one naming its longest prefix."""
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    assert best is not None, f"{module} is in no layer of LAYERS"
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``magdi_lightning`` import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # ``from magdi_lightning.scoring import sandbox`` imports a submodule
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if (PACKAGE.parent / node.module.replace(".", "/") / alias.name).exists()
                      or (PACKAGE.parent / f"{node.module.replace('.', '/')}/{alias.name}.py"
                          ).exists()]
    return [(line, name) for line, name in found if name.split(".")[0] == "magdi_lightning"]


def test_no_import_runs_back_up_the_layers() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        own = layer_of(name)
        for line, imported in imported_modules(path):
            if layer_of(imported) > own:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name} (layer "
                              f"{own}) imports {imported} (layer {layer_of(imported)})")
    assert not upward, "imports running up the layers:\n" + "\n".join(upward)


def test_every_module_is_in_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))
