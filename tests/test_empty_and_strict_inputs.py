"""Empty inputs are errors, every input goes through one strict JSON reader, and what is
written is standard JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from magdi_lightning.cli.import_graphs import main as import_main
from magdi_lightning.cli.score import main as score_main
from magdi_lightning.data.datamodule import _check_labels
from magdi_lightning.errors import RecordError
from magdi_lightning.graph import ReasoningGraph, read_graphs
from magdi_lightning.sources._common import load_records

GRAPH = {"id": "g", "question": "1+1?", "gold_answer": "2", "task": "numeric",
         "nodes": [{"id": "a", "agent": "x", "round": 0, "reasoning": "2", "answer": "2",
                    "correctness": "correct"}], "edges": []}


def _strict(text: str) -> object:
    """Parse as a strict JSON reader would (no NaN or Infinity tokens)."""
    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_import_of_an_empty_file_keeps_the_existing_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty, out = tmp_path / "debates.json", tmp_path / "graphs.jsonl"
    empty.write_text("")
    out.write_text(json.dumps(GRAPH) + "\n")
    assert import_main(["--format", "magdi", str(empty), "-o", str(out)]) == 2
    assert "no graphs in the input" in capsys.readouterr().err
    assert out.read_text() == json.dumps(GRAPH) + "\n"
    assert {p.name for p in tmp_path.iterdir()} == {"debates.json", "graphs.jsonl"}


def test_score_of_an_empty_file_is_an_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "predictions.jsonl"
    empty.write_text("\n\n")
    assert score_main(["--task", "numeric", "--input", str(empty), "-o",
                       str(tmp_path / "scored.jsonl")]) == 2
    assert "no records" in capsys.readouterr().err
    assert not (tmp_path / "scored.jsonl").exists()


def test_nan_gold_values_are_written_as_standard_json(tmp_path: Path) -> None:
    source, out = tmp_path / "predictions.jsonl", tmp_path / "scored.jsonl"
    source.write_text('{"output": "so 4", "gold": NaN}\n{"output": "so 4", "gold": 4}\n')
    assert score_main(["--task", "numeric", "--input", str(source), "-o", str(out)]) == 0
    rows = [_strict(line) for line in out.read_text().splitlines()]
    assert [row["gold"] for row in rows] == ["NaN", 4]


def test_graph_files_with_a_bom_are_read(tmp_path: Path) -> None:
    path = tmp_path / "graphs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GRAPH).encode() + b"\n")
    assert [graph.id for graph in read_graphs(path)] == ["g"]


@pytest.mark.parametrize("reader", ["graphs", "importer", "score"])
def test_duplicate_keys_are_rejected_by_every_reader(tmp_path: Path, reader: str) -> None:
    path = tmp_path / "input.jsonl"
    path.write_text('{"id": "g", "id": "h", "output": "1", "gold": 1}\n')
    duplicate = r"input.jsonl:1: invalid JSON: duplicate key 'id'"
    with pytest.raises(RecordError, match=duplicate):
        if reader == "graphs":
            list(read_graphs(path))
        elif reader == "importer":
            load_records(path)
        else:
            from magdi_lightning.cli.score import read_records
            read_records(path)


def test_a_cycle_inside_one_round_is_rejected() -> None:
    nodes = [{**GRAPH["nodes"][0], "id": name} for name in ("a", "b", "c")]
    edges = [["a", "b"], ["b", "c"], ["c", "a"]]
    with pytest.raises(RecordError, match=r"cycle inside one round"):
        ReasoningGraph.from_dict({**GRAPH, "nodes": nodes, "edges": edges})
    acyclic = ReasoningGraph.from_dict({**GRAPH, "nodes": nodes, "edges": edges[:2]})
    assert len(acyclic.edges) == 2


def test_graphs_without_labels_warn_which_losses_cannot_train(
        caplog: pytest.LogCaptureFixture) -> None:
    unlabelled = ReasoningGraph.from_dict(
        {**GRAPH, "nodes": [{**GRAPH["nodes"][0], "correctness": "unknown"}]})
    with caplog.at_level(logging.WARNING):
        _check_labels([unlabelled], "graphs.jsonl")
    assert "margin ranking and node classification" in caplog.text
    assert "0 nodes labelled correct" in caplog.text
    with pytest.raises(RecordError, match="no graphs to train on"):
        _check_labels([], "graphs.jsonl")


def test_correct_only_data_warns_only_batches_that_use_incorrect_nodes(
        caplog: pytest.LogCaptureFixture) -> None:
    """SIKeD's and TinyLLM's task batches learn correct targets only: no warning for them."""
    correct = ReasoningGraph.from_dict(
        {**GRAPH, "nodes": [{**GRAPH["nodes"][0], "correctness": "correct"}]})
    with caplog.at_level(logging.WARNING):
        _check_labels([correct], "tasks.jsonl", uses_incorrect=False)
    assert not caplog.text
    with caplog.at_level(logging.WARNING):
        _check_labels([correct], "graphs.jsonl")
    assert "0 incorrect" in caplog.text
