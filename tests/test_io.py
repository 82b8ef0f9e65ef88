"""Atomic writes: whole or nothing, and readable by whoever the user's umask lets read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from magdi_lightning.io import write_bytes_atomically, write_lines_atomically


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_files_get_the_mode_of_the_umask(tmp_path: Path, umask_022: None) -> None:
    lines, data = tmp_path / "graphs.jsonl", tmp_path / "plot.png"
    write_lines_atomically(lines, ["{}"])
    write_bytes_atomically(data, b"png")
    for path in (lines, data):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600


def test_a_failed_replace_keeps_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")

    def failing_replace(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomically(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_an_error_in_the_lines_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "graphs.jsonl"
    target.write_text("old\n")

    def lines() -> Iterator[str]:
        yield "new"
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        write_lines_atomically(target, lines())
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["graphs.jsonl"]
