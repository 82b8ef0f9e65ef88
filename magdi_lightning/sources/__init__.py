"""Importers: turn other projects' teacher data into :class:`ReasoningGraph` streams.

Each importer is ``(path, **options) -> Iterator[ReasoningGraph]`` and is registered in
:data:`IMPORTERS` under the format name the CLI (``magdi-import --format``) accepts.
Importers raise :class:`~magdi_lightning.graph.RecordError` (a ``ValueError``)
for malformed input and ``ValueError`` for unknown options, so callers need to handle
only ``ValueError`` and ``OSError``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from typing import Any

from magdi_lightning.graph import ReasoningGraph
from magdi_lightning.sources.du import import_du
from magdi_lightning.sources.gsm8k_solutions import import_gsm8k_solutions
from magdi_lightning.sources.gsm8k_strategies import import_gsm8k_strategies
from magdi_lightning.sources.magdi import import_magdi
from magdi_lightning.sources.tinyllm import import_tinyllm

__all__ = ["IMPORTERS", "Importer", "import_graphs"]

Importer = Callable[..., Iterator[ReasoningGraph]]


def _import_toy(path: str | os.PathLike[str], **options: Any) -> Iterator[ReasoningGraph]:
    """Synthetic graphs; imported lazily so the data importers never depend on it."""
    from magdi_lightning.sources.toy import import_toy

    _check_options("toy", import_toy, options)
    return import_toy(path, **options)


IMPORTERS: dict[str, Importer] = {
    "du": import_du,
    "magdi": import_magdi,
    "tinyllm": import_tinyllm,
    "gsm8k-solutions": import_gsm8k_solutions,
    "gsm8k-strategies": import_gsm8k_strategies,
    "toy": _import_toy,
}


def import_graphs(format: str, path: str | os.PathLike[str],
                  **options: Any) -> Iterator[ReasoningGraph]:
    """Graphs from ``path`` read by the importer registered as ``format``.

    Raises ``ValueError`` naming the known formats or options when ``format`` or an
    option is unknown, before reading anything.
    """
    if format not in IMPORTERS:
        raise ValueError(f"unknown format {format!r}; known formats: {', '.join(IMPORTERS)}")
    importer = IMPORTERS[format]
    _check_options(format, importer, options)
    return importer(path, **options)


def _check_options(format: str, importer: Callable[..., Any], options: dict[str, Any]) -> None:
    """A clear error for a misspelt option instead of a ``TypeError`` from the call."""
    parameters = list(inspect.signature(importer).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    known = [p.name for p in parameters]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"format {format!r} has no option {unknown[0]!r}; its options: "
                         f"{', '.join(known) or '(none)'}")
