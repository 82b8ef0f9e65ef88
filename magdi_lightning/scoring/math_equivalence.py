r"""Whether two LaTeX answers are the same mathematical object, decided by ``math-verify``.

MATH answers have many equal spellings (``\frac12``, ``0.5``, ``\dfrac{1}{2}``; ``x+1`` and
``1+x``; ``\left(3,\frac{\pi}{2}\right)`` and ``(3, \pi/2)``; ``864 \mbox{ inches}^2`` and
``864``), so string comparison would mark right answers wrong. Hugging Face's
``math-verify`` parses LaTeX into SymPy and compares numbers, expressions, sets, intervals,
tuples and matrices; this module only makes it safe to call on any string:

- It never raises: a string it cannot handle is simply not equivalent to anything but
  its own spelling.
- It does not hang. ``math-verify``'s own time limit (``signal.alarm``) raises outside
  the main thread and cancels any outer alarm (pytest-timeout's), so it is switched off
  and replaced by :func:`_time_limit`, which cuts each parse or comparison in the main
  thread after ``_TIME_LIMIT_S`` and then restores an outer timer. No time limit can stop
  CPython inside one big-integer operation (``9^{9^{9^9}}``), and none exists off the
  main thread, so answers known to be slow are refused before SymPy sees them: huge exact
  powers, factorials, sums and products, high powers of sums, and brackets nested deeper
  than ``_MAX_DEPTH`` (the LaTeX parser's time doubles with each level).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from types import FrameType
from typing import Any

import sympy
from math_verify import parse, verify

__all__ = ["math_equivalent"]

#: Longer answers are compared as strings only: MATH answers are under 60 characters.
_MAX_CHARS = 500
#: Deeper bracket nesting is compared as strings only (MATH answers nest at most ~4 deep).
_MAX_DEPTH = 8
#: Wall-clock seconds one parse or one comparison may take (main thread only).
_TIME_LIMIT_S = 3.0
#: Exact integer powers, factorials and the like beyond this size are never evaluated.
_MAX_EXACT_ARGUMENT = 10_000
#: Higher powers of a sum of variables are never compared symbolically.
_MAX_EXPANDED_POWER = 12
_FACTORIAL_LIKE = (sympy.factorial, sympy.factorial2, sympy.binomial, sympy.gamma,
                   sympy.subfactorial, sympy.RisingFactorial, sympy.FallingFactorial)
# Cached parses: evaluation scores the same gold answers again and again.
_PARSE_CACHE_SIZE = 4096


class _TimeLimitExceeded(BaseException):
    """Raised by the alarm; a ``BaseException`` so math-verify's ``except Exception`` lets it
    through to us instead of swallowing it half-way."""


class _DropTimeoutWarning(logging.Filter):
    """math-verify warns once that its time limit is off; ours replaces it, so hide that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutWarning())


def math_equivalent(gold: str, predicted: str) -> bool:
    """Whether ``predicted`` denotes the same mathematical answer as ``gold``.

    Both are bare LaTeX answers (the content of a ``\\boxed{}``, without ``$``). Equal
    strings always match; otherwise ``math-verify`` decides, with numbers equal to six
    decimal places (so ``0.33`` is not ``\\frac{1}{3}``) and variables compared by name.
    ``gold`` comes first because ``math-verify`` treats it as the reference (``x=2`` as
    gold accepts a predicted ``2``).
    """
    gold, predicted = gold.strip(), predicted.strip()
    if not gold or not predicted:
        return False
    if gold == predicted:
        return True
    gold_parsed, predicted_parsed = _parsed(gold), _parsed(predicted)
    if not gold_parsed or not predicted_parsed:
        return False
    try:
        with _time_limit(_TIME_LIMIT_S):
            return bool(verify(list(gold_parsed), list(predicted_parsed), timeout_seconds=None))
    except (_TimeLimitExceeded, Exception):  # any failure means "not shown equal"
        return False


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parsed(answer: str) -> tuple[Any, ...]:
    """``math-verify``'s parse of one answer (SymPy object, then its string), or ``()``.

    An answer too long, too deeply nested or too costly to evaluate keeps only its string,
    which ``verify`` compares exactly.
    """
    if len(answer) > _MAX_CHARS or _bracket_depth(answer) > _MAX_DEPTH:
        return (answer,)
    try:
        with _time_limit(_TIME_LIMIT_S):
            found = parse("\\boxed{" + answer + "}", parsing_timeout=None)
    except (_TimeLimitExceeded, Exception):  # an unparsable answer is only a string
        return (answer,)
    return tuple(item for item in found
                 if isinstance(item, str) or not _too_costly(item)) or (answer,)


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(depth - 1, 0)
    return deepest


def _too_costly(expr: Any) -> bool:
    """Whether comparing ``expr`` could make SymPy compute something gigantic.

    Dangerous are exact powers, factorial-like functions, sums and products with a huge
    numeric argument or range, and high powers of a sum, which simplification expands
    term by term (``(x+y+z)^{50}`` takes seconds). Sizes are bounded with floats, which
    overflow to infinity instead of hanging.
    """
    if not isinstance(expr, sympy.Basic):
        return False
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow):
            if node.exp.free_symbols:
                continue
            size = _float_bound(node.exp)
            if size > _MAX_EXACT_ARGUMENT or (isinstance(node.base, sympy.Add)
                                              and node.base.free_symbols
                                              and size > _MAX_EXPANDED_POWER):
                return True
        elif isinstance(node, _FACTORIAL_LIKE):
            if not node.args[0].free_symbols and _float_bound(node.args[0]) > _MAX_EXACT_ARGUMENT:
                return True
        elif isinstance(node, (sympy.Sum, sympy.Product)):
            bounds = [bound for _, *ends in node.limits for bound in ends]
            if any(not bound.free_symbols and _float_bound(bound) > _MAX_EXACT_ARGUMENT
                   for bound in bounds):
                return True
    return False


def _float_bound(expr: sympy.Basic) -> float:
    """An upper bound on ``|expr|`` for a numeric expression, computed without SymPy.

    Powers and factorials are bounded with float arithmetic (overflow gives infinity);
    anything else unknown (``\\sqrt``, ``\\sin``, ``\\pi``) is bounded by its arguments'
    bounds plus a margin, which is all the size test needs.
    """
    if isinstance(expr, sympy.Integer):
        return _abs_float(int(expr))
    if isinstance(expr, sympy.Rational):
        return _abs_float(int(expr.p)) / max(_abs_float(int(expr.q)), 1.0)
    if isinstance(expr, sympy.Float):
        return abs(float(expr))
    bounds = [_float_bound(arg) for arg in expr.args]
    try:
        if isinstance(expr, sympy.Add):
            return math.fsum(bounds)
        if isinstance(expr, sympy.Mul):
            return math.prod(bounds)
        if isinstance(expr, sympy.Pow):
            return math.pow(max(bounds[0], 2.0), bounds[1])
        if isinstance(expr, _FACTORIAL_LIKE):
            return math.inf if bounds[0] > 170 else math.gamma(bounds[0] + 1) * max(bounds)
    except OverflowError:
        return math.inf
    return max(bounds, default=10.0) + 10.0


def _abs_float(value: int) -> float:
    try:
        return abs(float(value))
    except OverflowError:
        return math.inf


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`_TimeLimitExceeded` in the block after ``seconds`` (main thread only).

    Signals reach only the main thread; elsewhere the block runs unlimited and the size
    guards above are the only protection. An outer ``ITIMER_REAL`` timer and ``SIGALRM``
    handler (pytest-timeout's, for instance) are restored afterwards, the timer re-armed
    with whatever time it had left.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "setitimer"):
        yield
        return
    previous_handler = signal.signal(signal.SIGALRM, _raise_time_limit)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        except _TimeLimitExceeded:  # it went off just as the block ended: too late to matter
            signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM,
                      previous_handler if previous_handler is not None else signal.SIG_DFL)
        if outer_delay:
            remaining = outer_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-6), outer_interval)


def _raise_time_limit(signum: int, frame: FrameType | None) -> None:
    raise _TimeLimitExceeded
