"""The teacher run's output file: durable appends, torn-line recovery, exclusive writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magdi_lightning.errors import RecordError, UserError
from magdi_lightning.teachers.store import ResultStore


def test_records_survive_and_are_skipped_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "out" / "graphs.jsonl"
    with ResultStore(path) as store:
        store.append({"id": "q1", "x": 1})
        store.skip("q2", "nothing kept")
        with pytest.raises(ValueError, match="already finished"):
            store.append({"id": "q1"})
    with ResultStore(path) as store:
        assert store.done == {"q1", "q2"}
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["q1"]


def test_a_torn_last_line_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "graphs.jsonl"
    path.write_bytes(b'{"id": "q1"}\n{"id": "q2"}\n{"id": "q3", "nod')
    with ResultStore(path) as store:
        assert store.done == {"q1", "q2"} and store.torn_lines_dropped == 1
        store.append({"id": "q3"})
    assert path.read_bytes() == b'{"id": "q1"}\n{"id": "q2"}\n{"id": "q3"}\n'


def test_a_damaged_complete_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "graphs.jsonl"
    original = b'{"id": "q1"}\nnot json\n'
    path.write_bytes(original)
    with pytest.raises(RecordError) as info, ResultStore(path):
        pass
    assert (info.value.file, info.value.line) == (str(path), 2)
    assert path.read_bytes() == original  # nothing rewritten


def test_a_repeated_id_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "graphs.jsonl"
    path.write_text('{"id": "q1"}\n{"id": "q1"}\n')
    with pytest.raises(RecordError, match="twice"), ResultStore(path):
        pass


def test_two_runs_cannot_write_one_output(tmp_path: Path) -> None:
    path = tmp_path / "graphs.jsonl"
    with ResultStore(path), pytest.raises(UserError, match="another run"), \
            ResultStore(path):
        pass
