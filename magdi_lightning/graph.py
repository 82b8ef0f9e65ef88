"""The multi-agent interaction graph (MAG): the one data model every method trains on.

A question, its gold answer and the responses teachers gave to it. Each response is a
node (agent, round, reasoning, final answer, correctness); a directed edge ``u -> v``
says that response ``v`` was written after seeing response ``u``. A single teacher is a
one-node graph, TinyLLM is one round of N teacher nodes, SIKeD adds a ``strategy`` to
each node, and a MAGDi debate is N agents x R rounds with edges.

Graphs are stored one per line in JSONL. Reading validates every record and reports the
file, line and field of the first problem, so a bad record in a million-line file is
found at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from magdi_lightning import _compat
from magdi_lightning.errors import RecordError
from magdi_lightning.io import json_line, write_lines_atomically

__all__ = [
    "TASK_FAMILIES",
    "Correctness",
    "Edge",
    "Node",
    "ReasoningGraph",
    "parse_json",
    "read_graphs",
    "read_jsonl",
    "read_text",
    "write_graphs",
]

#: Task families decide how a final answer is extracted and compared with the gold one.
TASK_FAMILIES = ("numeric", "math", "multiple_choice", "yes_no", "text")


class Correctness(str, Enum):
    """Whether a node's final answer matches the gold answer."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Node:
    """One teacher response.

    ``agent`` names the speaker (a persona or teacher slot) and ``model`` the LLM behind
    it, so two agents may share a model. ``round`` counts from 0. ``num_tokens`` is the
    teacher-side length of the response when known (for token-efficiency reports).
    ``metadata`` is free-form JSON the training code never reads: a teacher's stated
    confidence, a flag for a response that could not be parsed, why generation stopped.
    """

    id: str
    agent: str
    round: int
    reasoning: str
    answer: str | None = None
    correctness: Correctness = Correctness.UNKNOWN
    model: str | None = None
    strategy: str | None = None
    num_tokens: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def is_correct(self) -> bool:
        return self.correctness is Correctness.CORRECT

    @property
    def is_incorrect(self) -> bool:
        return self.correctness is Correctness.INCORRECT


@dataclass(frozen=True)
class Edge:
    """``target`` was written after seeing ``source``."""

    source: str
    target: str


@dataclass
class ReasoningGraph:
    """One question with every teacher response to it and who saw whom.

    ``source`` holds provenance (importer, original file, synthetic flag, ...): free-form
    JSON that the training code never interprets. ``allow_backward_edges`` admits edges
    from a later round to an earlier one, which no real discussion produces; it exists
    for imported data whose protocol is known to need it.
    """

    id: str
    question: str
    gold_answer: str
    task: str
    nodes: list[Node]
    edges: list[Edge] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    allow_backward_edges: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @property
    def node_index(self) -> dict[str, int]:
        """Position of each node id in ``nodes``."""
        return {node.id: i for i, node in enumerate(self.nodes)}

    @property
    def num_agents(self) -> int:
        return len({node.agent for node in self.nodes})

    @property
    def num_rounds(self) -> int:
        return 1 + max(node.round for node in self.nodes)

    def validate(self) -> None:
        """Raise :class:`RecordError` naming the first offending field."""
        _require(isinstance(self.id, str) and self.id != "", "id", "must be a non-empty string")
        _require(isinstance(self.question, str) and self.question.strip() != "", "question",
                 "must be a non-empty string")
        _require(isinstance(self.gold_answer, str), "gold_answer", "must be a string")
        _require(self.task in TASK_FAMILIES, "task", f"must be one of {list(TASK_FAMILIES)}, "
                 f"got {self.task!r}")
        _require(len(self.nodes) > 0, "nodes", "a graph needs at least one node")
        rounds: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            _require(node.id not in rounds, f"nodes[{i}].id", f"duplicate node id {node.id!r}")
            rounds[node.id] = node.round
        for i, edge in enumerate(self.edges):
            _require(edge.source in rounds, f"edges[{i}].source",
                     f"dangling edge: no node with id {edge.source!r}")
            _require(edge.target in rounds, f"edges[{i}].target",
                     f"dangling edge: no node with id {edge.target!r}")
            _require(edge.source != edge.target, f"edges[{i}]",
                     f"self edge on node {edge.source!r}")
            _require(self.allow_backward_edges or rounds[edge.source] <= rounds[edge.target],
                     f"edges[{i}]",
                     f"edge goes back in time: {edge.source!r} (round {rounds[edge.source]}) -> "
                     f"{edge.target!r} (round {rounds[edge.target]}); set allow_backward_edges "
                     "if this is intended")
        _require(len(set(self.edges)) == len(self.edges), "edges", "duplicate edge")
        if not self.allow_backward_edges:
            cycle = _edge_on_a_cycle(self.edges)
            _require(cycle is None, f"edges[{cycle}]", "the edges form a cycle inside one round "
                     "(a response cannot have been written after seeing itself); set "
                     "allow_backward_edges if this is intended")
        for name in ("id", "question", "gold_answer"):
            _require(_encodable(getattr(self, name)), name, "contains a lone UTF-16 surrogate")
        for i, node in enumerate(self.nodes):
            for name in ("id", "agent", "reasoning", "answer", "model", "strategy"):
                _require(_encodable(getattr(node, name)), f"nodes[{i}].{name}",
                         "contains a lone UTF-16 surrogate")

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; optional node fields that are unset are left out."""
        nodes = []
        for node in self.nodes:
            record: dict[str, Any] = {
                "id": node.id, "agent": node.agent, "round": node.round,
                "reasoning": node.reasoning, "answer": node.answer,
                "correctness": node.correctness.value,
            }
            for key in ("model", "strategy", "num_tokens"):
                if getattr(node, key) is not None:
                    record[key] = getattr(node, key)
            if node.metadata:
                record["metadata"] = node.metadata
            nodes.append(record)
        record = {
            "id": self.id, "question": self.question, "gold_answer": self.gold_answer,
            "task": self.task, "nodes": nodes,
            "edges": [[edge.source, edge.target] for edge in self.edges],
            "source": self.source,
        }
        if self.allow_backward_edges:
            record["allow_backward_edges"] = True
        return record

    @classmethod
    def from_dict(cls, record: Any) -> ReasoningGraph:
        """Parse and validate one record, checking every field's type first."""
        _require(isinstance(record, dict), "", "a graph record must be a JSON object")
        unknown = set(record) - _GRAPH_FIELDS
        _require(not unknown, sorted(unknown)[0] if unknown else "", "unknown field")
        for name, kind in (("id", str), ("question", str), ("gold_answer", str), ("task", str)):
            _require(name in record, name, "missing")
            _require(isinstance(record[name], kind), name, f"must be a {kind.__name__}")
        nodes = record.get("nodes")
        _require(isinstance(nodes, list), "nodes", "must be a list of node objects")
        edges = record.get("edges", [])
        _require(isinstance(edges, list), "edges", "must be a list of [source, target] pairs")
        source = record.get("source", {})
        _require(isinstance(source, dict), "source", "must be an object")
        allow_backward = record.get("allow_backward_edges", False)
        _require(isinstance(allow_backward, bool), "allow_backward_edges", "must be a boolean")
        return cls(
            id=record["id"], question=record["question"], gold_answer=record["gold_answer"],
            task=record["task"], nodes=[_node_from_dict(n, i) for i, n in enumerate(nodes)],
            edges=[_edge_from_json(e, i) for i, e in enumerate(edges)], source=source,
            allow_backward_edges=allow_backward,
        )


_GRAPH_FIELDS = {"id", "question", "gold_answer", "task", "nodes", "edges", "source",
                 "allow_backward_edges"}
_NODE_FIELDS = {"id", "agent", "round", "reasoning", "answer", "correctness", "model",
                "strategy", "num_tokens", "metadata"}


def _encodable(text: str | None) -> bool:
    """Whether ``text`` can be written as UTF-8 (JSON admits lone surrogates; UTF-8 not)."""
    if text is None:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise RecordError(message, field=field_name or None)


def _node_from_dict(record: Any, i: int) -> Node:
    at = f"nodes[{i}]"
    _require(isinstance(record, dict), at, "must be an object")
    unknown = set(record) - _NODE_FIELDS
    _require(not unknown, f"{at}.{sorted(unknown)[0]}" if unknown else at, "unknown field")
    for name in ("id", "agent", "reasoning"):
        _require(isinstance(record.get(name), str), f"{at}.{name}", "must be a string")
    _require(record["id"] != "", f"{at}.id", "must be non-empty")
    round_ = record.get("round")
    _require(isinstance(round_, int) and not isinstance(round_, bool) and round_ >= 0,
             f"{at}.round", "must be an integer >= 0")
    for name in ("answer", "model", "strategy"):
        _require(record.get(name) is None or isinstance(record[name], str), f"{at}.{name}",
                 "must be a string or null")
    num_tokens = record.get("num_tokens")
    _require(num_tokens is None or (isinstance(num_tokens, int) and not isinstance(num_tokens, bool)
                                    and num_tokens >= 0),
             f"{at}.num_tokens", "must be an integer >= 0 or null")
    metadata = record.get("metadata", {})
    _require(isinstance(metadata, dict), f"{at}.metadata", "must be an object")
    correctness = record.get("correctness", "unknown")
    _require(isinstance(correctness, str) and correctness in {c.value for c in Correctness},
             f"{at}.correctness",
             f"must be one of {[c.value for c in Correctness]}, got {correctness!r}")
    return Node(
        id=record["id"], agent=record["agent"], round=round_, reasoning=record["reasoning"],
        answer=record.get("answer"), correctness=Correctness(correctness),
        model=record.get("model"), strategy=record.get("strategy"), num_tokens=num_tokens,
        metadata=metadata,
    )


def _edge_from_json(record: Any, i: int) -> Edge:
    _require(isinstance(record, list) and len(record) == 2
             and all(isinstance(end, str) for end in record),
             f"edges[{i}]", "must be a [source, target] pair of node ids")
    return Edge(source=record[0], target=record[1])


def _edge_on_a_cycle(edges: list[Edge]) -> int | None:
    """The index of an edge that lies on a directed cycle, or None (Kahn's algorithm)."""
    targets: dict[str, list[str]] = {}
    incoming: dict[str, int] = {}
    for edge in edges:
        targets.setdefault(edge.source, []).append(edge.target)
        incoming[edge.target] = incoming.get(edge.target, 0) + 1
        incoming.setdefault(edge.source, 0)
    ready = [node for node, count in incoming.items() if count == 0]
    while ready:
        for target in targets.get(ready.pop(), []):
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return next((i for i, edge in enumerate(edges)
                 if incoming[edge.source] > 0 and incoming[edge.target] > 0), None)


# -------------------------------------------------------------------- JSON reading
# The one JSON reader of every input (graph files, importers' sources, magdi-score's
# predictions): UTF-8 with an optional BOM, duplicate keys rejected (the last one would
# silently win), parser limits and syntax errors reported with file and line.


def read_text(path: str | os.PathLike[str]) -> str:
    """A whole file as text (UTF-8, a leading BOM dropped), or a located error."""
    file = os.fspath(path)
    with open(file, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RecordError(f"not UTF-8 text: {err.reason} at byte {err.start}",
                                   file=file) from None


def parse_json(text: str, file: str, line: int | None = None) -> Any:
    """The JSON value of ``text`` (from ``file``, at ``line``), or a located error."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} " if line is None else ""  # else: the line is ``line``
        where += f"column {err.colno}"
        detail = f"invalid JSON: {err.msg} ({where})"
    except _DuplicateKey as err:
        detail = f"invalid JSON: duplicate key {str(err)[:60]!r} in one object"
    except (RecursionError, ValueError) as err:  # nesting too deep; integer too long
        detail = f"invalid JSON: {type(err).__name__}: {str(err)[:200]}"
    raise RecordError(detail, file=file, line=line)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of a JSONL file, streaming."""
    file = os.fspath(path)
    with open(file, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise RecordError(f"not UTF-8: {err.reason} at byte {err.start}",
                                           file=file, line=line_no) from None
            if line.strip():
                yield line_no, parse_json(line, file, line_no)


class _DuplicateKey(Exception):
    """Raised inside the JSON decoder: a repeated key would silently drop a value."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(key)
        record[key] = value
    return record


# -------------------------------------------------------------------- JSONL I/O
def read_graphs(path: str | os.PathLike[str]) -> Iterator[ReasoningGraph]:
    """Yield the graphs of a JSONL file, one per non-blank line, validating each.

    Raises :class:`RecordError` with the file, 1-based line and field of the
    first invalid record; graph ids must be unique within the file.
    """
    file = os.fspath(path)
    seen: dict[str, int] = {}
    for line_no, record in read_jsonl(file):
        try:
            graph = ReasoningGraph.from_dict(record)
        except RecordError as err:
            raise err.located(file=file, line=line_no) from None
        if graph.id in seen:
            raise RecordError(
                f"duplicate graph id {graph.id!r} (first on line {seen[graph.id]})",
                file=file, line=line_no, field="id")
        seen[graph.id] = line_no
        yield graph


def write_graphs(path: str | os.PathLike[str], graphs: Iterable[ReasoningGraph]) -> int:
    """Write graphs as JSONL atomically and return how many were written.

    The file appears complete or not at all (see :func:`write_lines_atomically`): an
    error midway leaves an existing ``path`` untouched.
    """
    return write_lines_atomically(path, (json_line(graph.to_dict()) for graph in graphs))


def __getattr__(name: str) -> Any:
    """Old names of renamed classes, for one release (:mod:`magdi_lightning._compat`)."""
    return _compat.renamed_attribute(__name__, name)
