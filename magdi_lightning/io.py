"""Files that are written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["write_lines_atomically"]


def write_lines_atomically(path: str | os.PathLike[str], lines: Iterable[str]) -> int:
    """Write ``lines`` (each given without its newline) and return how many were written.

    Lines go to a temporary file in the same directory, which replaces ``path`` only after
    the last line was written and synced; an error midway (in the caller's generator too)
    leaves an existing ``path`` untouched and no temporary file behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
