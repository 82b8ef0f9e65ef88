"""The Program-of-Thoughts (PoT) conventions for reading a program's answer.

The PoT authors ran each generated program and recorded its ``ans`` as ``executed``: a
list or tuple reduced to its first element, a dict to its first value, then ``float`` when
possible, else ``str``, and ``None`` when the program failed. Reading our sandbox's result
the same way lets us check, program by program, that the sandbox reproduces their
execution (``tests/test_pot_reproduction.py``, ``benchmarks/sandbox_throughput.py``).
"""

from __future__ import annotations

import ast
import math
from typing import Any

from magdi_lightning.sandbox import SandboxResult

__all__ = ["agrees", "as_pot_answer", "program_of"]


def program_of(record: dict[str, Any]) -> str:
    """The program of a PoT record (``generated`` is a string, or a list whose first item
    is the program)."""
    generated = record["generated"]
    return generated[0] if isinstance(generated, list) else generated


def as_pot_answer(result: SandboxResult, absolute: bool = False) -> Any:
    """Our result in the shape of PoT's ``executed``: a float, a string or ``None``.

    ``absolute``: take the absolute value of a number, as the PoT authors' SVAMP script
    does (SVAMP answers are quantities; a program that subtracts the wrong way round
    still counts there).

    The PoT scripts record ``None`` when a program fails, reduce a list or tuple to its first
    element and a dict to its first value, then take ``float(ans)`` when possible, else
    ``str(ans)``. Our values are JSON-safe (containers come back as their ``repr``), so undo
    that with :func:`ast.literal_eval` before applying the same rules.
    """
    if not result.ok or result.value is None:
        return None
    value = result.value
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    elif isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None or isinstance(value, bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return abs(number) if absolute else number


def agrees(ours: Any, executed: Any) -> bool:
    """Equal, numerically with a tolerance when both are numbers."""
    if isinstance(ours, float) and isinstance(executed, (int, float)):
        return math.isclose(ours, executed, rel_tol=1e-6, abs_tol=1e-6) or (
            math.isnan(ours) and math.isnan(executed)
        )
    return ours == executed
