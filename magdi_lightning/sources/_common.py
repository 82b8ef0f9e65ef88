"""What every importer needs: strict JSON loading, located errors, ids and labels.

Importers turn other people's files into graphs, so their failure mode matters as much as
their output: any malformed input must end in a :class:`RecordError` that names
the file, the record and the field, never in a ``KeyError`` or ``TypeError`` traceback.
The helpers here make that the easy path.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from magdi_lightning.errors import RecordError
from magdi_lightning.graph import TASK_FAMILIES, Correctness, ReasoningGraph, parse_json, read_text
from magdi_lightning.scoring.answers import answers_match, extract_answer, infer_task


@dataclass(frozen=True)
class Where:
    """Where a problem is, for error messages: file, a record label, a 1-based line.

    The label ("record 3", "question 2 'Jared is…'") is appended to the message because
    JSON-list and directory formats have no useful line number.
    """

    file: str
    record: str | None = None
    line: int | None = None

    def error(self, message: str, field: str | None = None) -> RecordError:
        located = f"{message} (in {self.record})" if self.record else message
        return RecordError(located, file=self.file, line=self.line, field=field)


def load_json(path: str | os.PathLike[str]) -> Any:
    """Parse a whole JSON file; any decoding problem becomes a located error."""
    file = os.fspath(path)
    return parse_json(read_text(file), file)


def load_records(path: str | os.PathLike[str]) -> list[tuple[Where, Any]]:
    """The records of a JSON list file or a JSONL file, each with its location.

    A file whose first non-blank character is ``[`` is one JSON list; anything else is
    read as JSONL, one record per non-blank line (blank lines are skipped).
    """
    file = os.fspath(path)
    text = read_text(file)
    if text.lstrip().startswith("["):
        records = parse_json(text, file)
        return [(Where(file, f"record {i}"), record) for i, record in enumerate(records)]
    located = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            where = Where(file, f"record {len(located)}", line_no)
            located.append((where, parse_json(line, file, line_no)))
    return located


def check_task(task: str | None) -> None:
    """Reject an unknown ``task=`` option early, before any file is read."""
    if task is not None and task not in TASK_FAMILIES:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASK_FAMILIES)}")


def scalar_text(value: Any) -> str | None:
    """A JSON scalar as answer text (``true`` -> "yes"); ``None`` for anything else.

    Gold and stated answers arrive as strings, numbers or booleans (StrategyQA) depending
    on who wrote the file; objects and lists are never answers.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def gold_and_task(raw_gold: str, task: str | None) -> tuple[str, str]:
    """The task family (given or inferred) and the canonical gold answer.

    The gold answer is stored canonically ("52" from a GSM8K solution ending in
    "#### 52") so that graphs compare answers without re-parsing; when nothing can be
    extracted the stripped raw text is kept.
    """
    family = task or infer_task(raw_gold)
    return family, extract_answer(raw_gold, family) or raw_gold.strip()


def judge(answer: str | None, gold: str, task: str) -> Correctness:
    """CORRECT or INCORRECT when both answers are known, else UNKNOWN.

    A response with no extractable answer is UNKNOWN rather than INCORRECT: the teacher
    may well have reasoned correctly and only failed to state the answer in a form we
    parse, and training on it as a negative would teach the wrong lesson.
    """
    if answer is None or extract_answer(gold, task) is None:
        return Correctness.UNKNOWN
    return Correctness.CORRECT if answers_match(answer, gold, task) else Correctness.INCORRECT


def stable_id(prefix: str, text: str) -> str:
    """``prefix-<16 hex digits of sha1(text)>``: the same question gets the same id."""
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}-{digest[:16]}"


class UniqueIds:
    """Rejects a second graph with the same id, which ``read_graphs`` would refuse later."""

    def __init__(self) -> None:
        self._first: dict[str, str | None] = {}

    def claim(self, graph_id: str, where: Where) -> None:
        if graph_id in self._first:
            raise where.error(f"duplicate graph id {graph_id!r} (first in {self._first[graph_id]})",
                              field="id")
        self._first[graph_id] = where.record


def build_graph(where: Where, **fields: Any) -> ReasoningGraph:
    """Construct a graph, re-raising validation errors with the record's location."""
    try:
        return ReasoningGraph(**fields)
    except RecordError as err:
        raise where.error(err.reason, err.field) from None
