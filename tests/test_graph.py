"""The graph validator, JSONL round trip and atomic writing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from magdi_lightning.errors import RecordError
from magdi_lightning.graph import Correctness, Edge, Node, ReasoningGraph, read_graphs, write_graphs


def _node(node_id: str, round_: int = 0, **fields: Any) -> Node:
    return Node(id=node_id, agent=f"agent_{node_id}", round=round_, reasoning=f"because {node_id}",
                **fields)


def _graph(graph_id: str = "g", **fields: Any) -> ReasoningGraph:
    defaults: dict[str, Any] = {
        "question": "What is 6 * 7?", "gold_answer": "42", "task": "numeric",
        "nodes": [_node("a"), _node("b"), _node("c", 1)],
        "edges": [Edge("a", "c"), Edge("b", "c")],
    }
    return ReasoningGraph(id=graph_id, **{**defaults, **fields})


def _record(**fields: Any) -> dict[str, Any]:
    return {**_graph().to_dict(), **fields}


# ------------------------------------------------------------------ validator
@pytest.mark.parametrize(("edges", "field", "reason"), [
    ([Edge("a", "zz")], "edges[0].target", "dangling edge"),
    ([Edge("zz", "c")], "edges[0].source", "dangling edge"),
    ([Edge("a", "c"), Edge("c", "c")], "edges[1]", "self edge"),
    ([Edge("c", "a")], "edges[0]", "back in time"),
    ([Edge("a", "c"), Edge("a", "c")], "edges", "duplicate edge"),
])
def test_bad_edges_are_rejected_with_their_field(edges: list[Edge], field: str,
                                                  reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        _graph(edges=edges)
    assert caught.value.field == field
    assert reason in str(caught.value)


def test_duplicate_node_ids_are_rejected() -> None:
    with pytest.raises(RecordError) as caught:
        _graph(nodes=[_node("a"), _node("a", 1)], edges=[])
    assert caught.value.field == "nodes[1].id"


def test_backward_edges_need_explicit_permission() -> None:
    graph = _graph(edges=[Edge("c", "a")], allow_backward_edges=True)
    assert graph.edges == [Edge("c", "a")]
    assert ReasoningGraph.from_dict(graph.to_dict()) == graph


def test_same_round_edges_are_allowed() -> None:
    assert _graph(edges=[Edge("a", "b")]).edges == [Edge("a", "b")]


@pytest.mark.parametrize(("record", "field"), [
    (_record(task="poetry"), "task"),
    (_record(nodes=[]), "nodes"),
    (_record(question=" "), "question"),
    (_record(gold_answer=42), "gold_answer"),
    (_record(extra=1), "extra"),
    (_record(edges=[["a"]]), "edges[0]"),
    (_record(nodes=[{"id": "a", "agent": "x", "round": -1, "reasoning": ""}]), "nodes[0].round"),
    (_record(nodes=[{"id": "a", "agent": "x", "round": True, "reasoning": ""}]),
     "nodes[0].round"),
    (_record(nodes=[{"id": "a", "agent": "x", "round": 0, "reasoning": "",
                     "correctness": "maybe"}]), "nodes[0].correctness"),
])
def test_from_dict_names_the_bad_field(record: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError) as caught:
        ReasoningGraph.from_dict(record)
    assert caught.value.field == field


def test_read_graphs_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "graphs.jsonl"
    bad = _record(id="second", edges=[["a", "nowhere"]])
    path.write_text(json.dumps(_record()) + "\n\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        list(read_graphs(path))
    err = caught.value
    assert (err.file, err.line, err.field) == (str(path), 3, "edges[0].target")
    assert str(err).startswith(f"{path}:3: field 'edges[0].target': dangling edge")


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json}\n", "invalid JSON"),
    (json.dumps(_record()) + "\n" + json.dumps(_record()) + "\n", "duplicate graph id"),
])
def test_read_graphs_reports_bad_lines(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "graphs.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecordError, match=reason) as caught:
        list(read_graphs(path))
    assert caught.value.file == str(path)


# ------------------------------------------------------------------ JSONL I/O
def test_jsonl_round_trip_keeps_every_field(tmp_path: Path) -> None:
    graphs = [
        _graph("plain"),
        _graph("rich", nodes=[
            _node("a", answer="42", correctness=Correctness.CORRECT, model="m", strategy="cot",
                  num_tokens=7),
            _node("b", answer=None, correctness=Correctness.UNKNOWN),
            _node("c", 1, answer="41", correctness=Correctness.INCORRECT),
        ], source={"format": "test", "nested": {"k": [1, 2]}}, question="Ünïcödé \u2028 line?"),
        _graph("backward", edges=[Edge("c", "a")], allow_backward_edges=True),
    ]
    path = tmp_path / "graphs.jsonl"
    assert write_graphs(path, graphs) == 3
    assert list(read_graphs(path)) == graphs
    assert path.read_bytes().count(b"\n") == 3  # U+2028 stays inside its line


def test_write_graphs_creates_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "graphs.jsonl"
    write_graphs(path, [_graph()])
    assert [g.id for g in read_graphs(path)] == ["g"]


def test_failed_write_leaves_the_old_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "graphs.jsonl"
    write_graphs(path, [_graph("old")])
    before = path.read_bytes()
    # The second graph cannot be serialised: the failure comes after one line was written.
    unserialisable = _graph("new2", source={"not json": object()})
    with pytest.raises(TypeError):
        write_graphs(path, [_graph("new1"), unserialisable])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graphs.jsonl"]


def test_interrupted_generator_leaves_the_old_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "graphs.jsonl"
    write_graphs(path, [_graph("old")])

    def graphs_then_failure():
        yield _graph("new")
        raise RecordError("bad record", file="input.json", line=9)

    with pytest.raises(RecordError):
        write_graphs(path, graphs_then_failure())
    assert [g.id for g in read_graphs(path)] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graphs.jsonl"]


def test_node_metadata_round_trips_and_must_be_an_object() -> None:
    from magdi_lightning.errors import RecordError
    from magdi_lightning.graph import Node, ReasoningGraph

    graph = ReasoningGraph(id="g", question="q?", gold_answer="1", task="numeric", nodes=[
        Node(id="a", agent="a", round=0, reasoning="r",
             metadata={"confidence": 0.9, "parse_error": "no JSON"})])
    assert ReasoningGraph.from_dict(graph.to_dict()) == graph
    record = graph.to_dict()
    record["nodes"][0]["metadata"] = "high"
    import pytest

    with pytest.raises(RecordError, match=r"nodes\[0\]\.metadata"):
        ReasoningGraph.from_dict(record)
