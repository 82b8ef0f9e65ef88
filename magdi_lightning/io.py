"""Files that are written whole or not at all, with the permissions the user's umask gives."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_file", "json_line", "write_bytes_atomically", "write_json_atomically",
           "write_lines_atomically"]


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` that replaces it when the block ends cleanly.

    The data is synced before the rename, so ``path`` holds either its old content or the
    complete new one, even after a crash; an error inside the block (in a caller's generator
    too) leaves ``path`` untouched and no temporary file behind. The file gets the mode a
    plain ``open`` would give (``0o666`` less the umask): ``mkstemp``'s ``0600`` would hide
    predictions and graphs from collaborators on a shared cluster.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_lines_atomically(path: str | os.PathLike[str], lines: Iterable[str]) -> int:
    """Write ``lines`` (each given without its newline) atomically; returns how many."""
    count = 0
    with atomic_file(path) as handle:
        for line in lines:
            handle.write(line + "\n")
            count += 1
    return count


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all; returns the path."""
    with atomic_file(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json_atomically(path: str | os.PathLike[str], value: Any) -> None:
    """Write ``value`` as indented JSON (a record, a state file) whole or not at all."""
    with atomic_file(path) as handle:
        handle.write(json.dumps(value, indent=2) + "\n")


def json_line(value: Any) -> str:
    """``value`` as one line of standard JSON.

    Non-finite floats (NaN gold values from a pandas export, say) become the strings
    ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``: Python would write bare ``NaN``, which
    is not JSON and which stricter readers (``jq``, JavaScript, Rust) refuse.
    """
    return json.dumps(_finite(value), ensure_ascii=False, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _umask() -> int:
    """The process's umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
