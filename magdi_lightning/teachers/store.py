"""The output of a teacher run: an append-only JSONL file that survives crashes.

Each finished question is one line, written, flushed and fsynced before the next is
started, so a crash (even ``kill -9`` or a power cut) loses at most the line being
written. Reopening the file finds a torn last line (no newline at its end), reports it
and cuts it off; every complete line must still be valid JSON with an ``id``, and a
damaged one is an error naming the file and line rather than something silently
dropped or overwritten. The ids already in the file are the questions a rerun skips.

Questions that finish without a record (a filter left nothing to keep) go to a sidecar
file ``<output>.skipped.jsonl`` kept the same way, so a rerun skips them too. An
exclusive lock on the output stops two runs from appending to the same file. Every record
is scrubbed of secrets (:mod:`~magdi_lightning.teachers.secrets`) as it is written: a
completion may repeat the API key it was sent with.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from magdi_lightning.errors import RecordError, UserError
from magdi_lightning.teachers.secrets import SCRUBBER

__all__ = ["ResultStore"]

log = logging.getLogger(__name__)


class ResultStore:
    """Finished records by id; ``append`` adds one durably. Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.skipped_path = self.path.with_name(self.path.name + ".skipped.jsonl")
        self.torn_lines_dropped = 0
        self.done: set[str] = set()
        self._files: list[IO[bytes]] = []

    def __enter__(self) -> ResultStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for path in (self.path, self.skipped_path):
            handle = open(path, "a+b")
            self._files.append(handle)
            if path == self.path:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self.__exit__()
                    raise UserError(f"{path} is being written by another run (a magdi-debate "
                                    "still going?); wait for it or write elsewhere") from None
            self.done |= self._recover(handle, path)
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self._files:
            handle.close()
        self._files.clear()

    @property
    def _output(self) -> IO[bytes]:
        if not self._files:
            raise RuntimeError("ResultStore is not open (use it in a with block)")
        return self._files[0]

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` (it must have an ``id``) as one durable line."""
        self._write(self._output, record)

    def skip(self, record_id: str, reason: str) -> None:
        """Mark ``record_id`` finished without an output record."""
        self._write(self._files[1], {"id": record_id, "reason": reason})

    def _write(self, handle: IO[bytes], record: dict[str, Any]) -> None:
        record_id = record["id"]
        if record_id in self.done:
            raise ValueError(f"{self.path}: {record_id!r} is already finished")
        line = json.dumps(SCRUBBER.scrub(record), ensure_ascii=False)
        handle.write(line.encode("utf-8") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
        self.done.add(record_id)

    def _recover(self, handle: IO[bytes], path: Path) -> set[str]:
        """Ids of the complete lines; a torn last line is cut off (and counted)."""
        handle.seek(0)
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run",
                        path, len(data) - end)
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
            self.torn_lines_dropped += 1
        ids: set[str] = set()
        for line_no, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record_id = json.loads(line)["id"]
            except (ValueError, KeyError, TypeError):
                raise RecordError("a complete line that is not a JSON record with an "
                                           "id; fix or remove it before resuming",
                                           file=str(path), line=line_no) from None
            if record_id in ids:
                raise RecordError(f"id {record_id!r} appears twice", file=str(path),
                                           line=line_no, field="id")
            ids.add(str(record_id))
        handle.seek(0, os.SEEK_END)
        return ids
