"""The Program-of-Thoughts (PoT) conventions for reading a program's answer.

The PoT authors (Chen et al. 2022, github.com/TIGER-AI-Lab/Program-of-Thoughts, formerly
wenhuchen/Program-of-Thoughts) ran each generated program with ``exec`` in a function of
their ``tool.py`` and recorded what they read from its ``ans`` variable as ``executed``
(``generated_prediction`` for AQuA). How they read it depends on the script:

* the executor (``tool.py`` ``safe_execute``): the program runs with *separate* globals (the
  names ``tool.py`` imports: ``math``, ``np``, ``statistics``, ``Symbol``, ``Eq``, ``simplify``,
  ``solve``, ``isclose``, and its helper ``solve_it``) and locals; its result is the local
  ``ans``, ``None`` if it is missing, the program raised or ran over 5 seconds. Printed
  output is ignored. Separate scopes matter: a comprehension or a function of the program
  cannot see the program's top-level names (they are locals), so such a program fails;
* ``floatify`` (``tool.py`` ``floatify_ans``): a dict becomes its first value (as it is), a
  bool stays a bool, a list or tuple its first item (``None`` when empty), then ``float``
  when possible, else ``str``;
* ``simplify`` (``tool.py`` ``simplify_ans``, used by the zero-shot GSM8K and the AQuA
  scripts): a sympy relation becomes its text, a numpy value (its first item for an array)
  a float rounded to 2 decimals, any other falsy value (``0`` included) ``None``, sympy
  numbers in a list or tuple or alone are rounded to 2 decimals, a one-item list its item;
  ``simplify_str`` is the same followed by ``str``;
* ``abs``: the SVAMP few-shot and MultiArith zero-shot scripts record ``abs(ans)``;
* self-consistency files hold several programs per question (``generated`` is a list):
  the answer is the most frequent non-``None`` reading, the first one read among ties.

:data:`READINGS` names each published script's sequence of steps. The steps run inside the
sandbox, on the program's real objects (a tuple of numpy scalars, a dict keyed by sympy
symbols), after the program, and the answer comes back through ``json`` as the authors'
scripts wrote it (so a tuple reads back as a list, ``inf`` as ``Infinity``). Where their
``json.dumps`` would have failed (a dict whose first value is a sympy number: their script
stops or skips the record, so no published value exists) the value is written as a float,
else as text. numpy prints as numpy 1 did (``legacy="1.25"``), as in the authors' ``str()``.
``tests/test_pot_reader.py`` checks each result type; ``tests/test_extraction_on_real_outputs.py``,
``tests/test_pot_published_outputs.py`` and ``benchmarks/sandbox_throughput.py`` check that
the sandbox reproduces the published ``executed`` values.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from magdi_lightning.scoring.sandbox import SandboxResult

__all__ = ["READINGS", "PotReading", "agrees", "as_pot_answer", "pot_program",
           "programs_of", "read_records", "vote"]

STEPS = ("simplify", "simplify_str", "floatify", "abs")


@dataclass(frozen=True)
class PotReading:
    """How one PoT script reads a program's ``ans``.

    ``steps``: applied in order to ``ans`` (see :data:`STEPS` and the module docstring);
    ``as_text``: the recorded value is ``str()`` of the voted answer (the AQuA scripts'
    ``generated_prediction``); ``field``: the record field holding the authors' value.
    """

    steps: tuple[str, ...] = ("floatify",)
    as_text: bool = False
    field: str = "executed"

    def __post_init__(self) -> None:
        unknown = [step for step in self.steps if step not in STEPS]
        if unknown:
            raise ValueError(f"unknown PoT reading steps {unknown}; known: {', '.join(STEPS)}")


#: The reading of each published PoT script (``run_<name>.py``), its output files named
#: ``outputs/<dataset>[_zs|_sc]_s<start>_e<end>_<date>.jsonl``.
READINGS: dict[str, PotReading] = {
    "gsm8k": PotReading(("floatify",)),
    "gsm8k_zs": PotReading(("simplify", "floatify")),
    "svamp": PotReading(("floatify", "abs")),
    "svamp_zs": PotReading(("floatify",)),
    "multiarith_zs": PotReading(("floatify", "abs")),
    "tabmwp": PotReading(("floatify",)),
    "aqua": PotReading(("simplify_str",), as_text=True, field="generated_prediction"),
    "aqua_zs": PotReading(("simplify_str", "floatify"), as_text=True,
                          field="generated_prediction"),
}

# The executor, run in the sandbox around the program (given as a string literal). Our own
# code following tool.py's definitions; it runs under the sandbox's guards like the program.
# A program that raises is not caught here, unlike in tool.py: its failed sandbox result
# reads as None all the same (as_pot_answer; every step maps None to None) and keeps the
# error's type and the program's line ("<program>", as the sandbox names it) for the user.
_EXECUTOR = '''
import json as _json
import math as _math
import statistics as _statistics
import numpy as _np
import sympy as _sympy


def _solve_it(equation, variable):
    """tool.py's solve_it: the first solution as {symbol: value}, else each variable -> None."""
    found = _sympy.solve(equation, variable, dict=True)
    if found:
        return found[0]
    return {name: None for name in (variable if isinstance(variable, list) else [variable])}


def _run(source):
    if int(_np.__version__.split(".")[0]) >= 2:  # numpy 1 reprs, as the authors' str() gave
        _np.set_printoptions(legacy="1.25")
    scope = {}
    world = {"__builtins__": __builtins__, "math": _math, "np": _np,
             "statistics": _statistics, "isclose": _math.isclose, "Symbol": _sympy.Symbol,
             "Eq": _sympy.Eq, "simplify": _sympy.simplify, "solve": _sympy.solve,
             "solve_it": _solve_it}
    exec(compile(source, "<program>", "exec"), world, scope)
    return scope.get("ans")


def _kind(value):
    return str(type(value))


def _rounded(value):
    return round(float(value), 2)


def _simplify(value, as_str):
    if "relational" in _kind(value):
        return str(value)
    if "numpy" in _kind(value):
        value = _rounded(value if value.shape == () else value[0])
    elif not value:
        return None
    elif type(value) in (list, tuple):
        if "sympy" in _kind(value[0]):
            try:
                value = [_rounded(item) for item in value]
            except Exception:
                value = [str(item) for item in value]
        if len(value) == 1:
            value = value[0]
    elif "sympy" in _kind(value):
        try:
            value = _rounded(value)
        except Exception:
            value = str(value)
    return str(value) if as_str else value


def _number_or_text(value):
    try:
        return float(value)
    except Exception:
        return str(value)


def _floatify(value):
    if value is None:
        return None
    if type(value) is dict:
        return list(value.values())[0]
    if type(value) is bool:
        return value
    if type(value) in (list, tuple):
        return _number_or_text(value[0]) if value else None
    return _number_or_text(value)


_STEP = {"simplify": lambda v: _simplify(v, False), "simplify_str": lambda v: _simplify(v, True),
         "floatify": _floatify, "abs": lambda v: None if v is None else abs(v)}
ans = _run(__PROGRAM__)
for _step in __STEPS__:
    ans = _STEP[_step](ans)
ans = _json.dumps(ans, default=_number_or_text)
'''


def pot_program(code: str, reading: PotReading) -> str:
    """The sandbox program that runs ``code`` as the PoT executor does and leaves the
    reading of its ``ans`` (JSON text) in ``ans``."""
    return (_EXECUTOR.replace("__PROGRAM__", repr(code))
            .replace("__STEPS__", repr(tuple(reading.steps))))


def programs_of(record: dict[str, Any]) -> list[str]:
    """The programs of a PoT record: ``generated`` is one program (zero-shot scripts) or a
    list of them (few-shot: one when greedy, 30-40 for self-consistency)."""
    generated = record.get("generated")
    programs = generated if isinstance(generated, list) else [generated]
    if not programs or not all(isinstance(program, str) for program in programs):
        raise ValueError("a PoT record's 'generated' must be a program or a list of programs")
    return programs


def as_pot_answer(result: SandboxResult) -> Any:
    """The reading of one program run as :func:`pot_program`: a float, a string, a bool (or
    what a dict held) as the authors' scripts recorded it, ``None`` when the program failed.

    A sandbox failure (time or memory limit, a refused operation) reads as ``None``, as the
    authors' executor reads a program that raised or timed out.
    """
    if not result.ok or not isinstance(result.value, str):
        return None
    try:
        return json.loads(result.value)
    except ValueError:  # an answer longer than the sandbox's output limit, cut short
        return None


def vote(readings: Sequence[Any], reading: PotReading) -> Any:
    """The recorded answer of a question from its programs' readings: the most frequent
    non-``None`` one (first read among ties), ``str()`` of it for :attr:`PotReading.as_text`."""
    counts: Counter[Any] = Counter()
    first: dict[str, Any] = {}
    for value in readings:
        if value is not None:
            key = json.dumps(value) if isinstance(value, (list, dict)) else value
            counts[key] += 1
            first.setdefault(key, value)
    winner = first[counts.most_common(1)[0][0]] if counts else None
    return str(winner) if reading.as_text else winner


def read_records(records: Sequence[dict[str, Any]], reading: PotReading,
                 run: Callable[[list[str]], list[SandboxResult]]
                 ) -> tuple[list[Any], list[list[SandboxResult]]]:
    """Each record's answer read as ``reading`` says, and its programs' sandbox results.

    ``run`` executes programs (``SandboxPool.run`` or ``sandbox.run_programs`` with chosen
    limits); all programs of all records go in one call so that the pool stays busy.
    """
    per_record = [programs_of(record) for record in records]
    flat = run([pot_program(code, reading) for codes in per_record for code in codes])
    answers, results, start = [], [], 0
    for codes in per_record:
        mine = flat[start:start + len(codes)]
        answers.append(vote([as_pot_answer(result) for result in mine], reading))
        results.append(mine)
        start += len(codes)
    return answers, results


def answer_text(value: Any) -> str:
    """A program's answer value as answer text: floats rounded at 6 decimals, so that
    binary rounding noise (``0.1 * 3 * 10 / 3`` gives ``1.0000000000000002``) and integral
    floats (``18.0``) read as GSM8K states answers ("1", "18"); anything else as ``str()``.

    Answer comparison itself is exact on canonical text (``answers.normalize_number``);
    without this, 9 of the 942 published Codex GSM8K programs within 1e-4 of the gold
    answer would count as wrong.
    """
    if isinstance(value, float) and math.isfinite(value):
        value = round(value, 6)
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def agrees(ours: Any, executed: Any) -> bool:
    """Equal, numerically with a tolerance when both are numbers (bools compare as bools)."""
    numbers = (int, float)
    if (isinstance(ours, numbers) and isinstance(executed, numbers)
            and not isinstance(ours, bool) and not isinstance(executed, bool)):
        return math.isclose(ours, executed, rel_tol=1e-6, abs_tol=1e-6) or (
            math.isnan(ours) and math.isnan(executed))
    return ours == executed
