"""Secret values never reach an output: one scrubber that every writer of a teacher run uses.

An API key is sent with every request, and a server can send it back: an error body that
quotes the key it rejected, or a completion that repeats what the model was told. So every
string the teacher side writes or prints -- MAG JSONL and its skipped sidecar,
``summary.json``, wandb, the resolved config, error messages, and (through
:func:`scrubbed_logs`) every log record -- passes through :data:`SCRUBBER` first, which
replaces each secret with ``***``. A key is added the moment it is read
(:func:`secret_from_env`), so no code holds a key that the scrubber does not know.

Values shorter than :data:`MIN_LENGTH` are not scrubbed: no real key is that short, and
replacing them would corrupt ordinary text.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["MASK", "MIN_LENGTH", "SCRUBBER", "ScrubFilter", "Scrubber", "scrubbed_logs",
           "secret_from_env"]

MASK = "***"
MIN_LENGTH = 8

T = TypeVar("T")


class Scrubber:
    """Replaces every known secret with :data:`MASK`, in strings and in JSON-like data."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Scrub ``secret`` from now on (``None``, empty and too-short values are ignored)."""
        if not secret or len(secret) < MIN_LENGTH or secret in self._secrets:
            return
        self._secrets.add(secret)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def scrub(self, data: T) -> T:
        """``data`` with every secret masked: a string, or dicts (keys and values), lists and
        tuples of them walked recursively; any other value is returned as it is."""
        if self._pattern is None:
            return data
        return self._walk(data, self._pattern)

    def _walk(self, data: Any, pattern: re.Pattern[str]) -> Any:
        if isinstance(data, str):
            return pattern.sub(MASK, data)
        if isinstance(data, dict):
            return {self._walk(k, pattern): self._walk(v, pattern) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return type(data)(self._walk(v, pattern) for v in data)
        return data


#: The process's scrubber: every teacher key is added when read, every writer uses it.
SCRUBBER = Scrubber()


def secret_from_env(name: str) -> str | None:
    """The value of environment variable ``name`` (None if unset), added to :data:`SCRUBBER`."""
    value = os.environ.get(name)
    SCRUBBER.add(value)
    return value


class ScrubFilter(logging.Filter):
    """Scrubs a log record's message, traceback and stack before any handler formats it: the
    last line of defence should a library log a request, a response or an exception."""

    def __init__(self, scrubber: Scrubber = SCRUBBER) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it, as without the filter
            return True
        record.msg, record.args = self.scrubber.scrub(message), None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is printed scrubbed.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrubber.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrubber.scrub(record.stack_info)
        return True


@contextmanager
def scrubbed_logs(scrubber: Scrubber = SCRUBBER) -> Iterator[None]:
    """Install a :class:`ScrubFilter` on every handler of the root logger (where Hydra puts
    the console and the run's log file) for the duration of the block."""
    handlers = list(logging.getLogger().handlers)
    scrub_filter = ScrubFilter(scrubber)
    for handler in handlers:
        handler.addFilter(scrub_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(scrub_filter)
