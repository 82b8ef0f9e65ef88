"""Import MAGDi / ReConcile discussion records.

MAGDi (Chen et al., 2024) trains on ReConcile discussions stored one record per
question: ``question``, ``gold_answer``, optional ``id``, and for each agent and round a
key ``{agent}_output_{round}`` holding ``{"reasoning": ..., "answer": ...}`` (the paper's
agents are ``claude``, ``gpt4`` and ``bard`` over rounds 0-3). Any agent name and any
rounds are accepted, and an agent may skip rounds. Other keys (votes, confidences) are
ignored.

In ReConcile each round shows every agent all agents' previous-round answers, so each
round-r node gets an edge to each round-(r+1) node; a round that no agent answered
leaves the next round without incoming edges. A node keeps its ``answer`` apart from its
``reasoning`` (canonical, by the evaluation extractors); the graph data module ends the
training text with it as MAGDi's code does (:mod:`magdi_lightning.data.responses`). A
missing or null ``answer`` falls back to the answer stated in the reasoning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from magdi_lightning.errors import preview
from magdi_lightning.graph import Edge, Node, ReasoningGraph
from magdi_lightning.scoring.answers import extract_answer
from magdi_lightning.sources._common import (
    UniqueIds,
    Where,
    build_graph,
    check_task,
    gold_and_task,
    judge,
    load_records,
    scalar_text,
    stable_id,
)

__all__ = ["import_magdi"]

_OUTPUT_KEY = re.compile(r"(?P<agent>.+)_output_(?P<round>\d{1,6})", re.S)


def import_magdi(path: str | os.PathLike[str], *,
                 task: str | None = None) -> Iterator[ReasoningGraph]:
    """Yield one graph per record of a JSON-list or JSONL file of MAGDi records.

    ``task`` fixes the task family (default: inferred per record from the gold answer).
    Graph ids are the records' ``id`` when present, else a hash of the question; a
    repeated id is an error. Raises :class:`RecordError` naming the file,
    record and field of the first malformed record.
    """
    check_task(task)
    return _graphs(Path(path), task)


def _graphs(file: Path, task: str | None) -> Iterator[ReasoningGraph]:
    ids = UniqueIds()
    for index, (where, record) in enumerate(load_records(file)):
        graph = _graph(record, where, task, file, index)
        ids.claim(graph.id, where)
        yield graph


def _graph(record: Any, where: Where, task: str | None, file: Path,
           index: int) -> ReasoningGraph:
    if not isinstance(record, dict):
        raise where.error("must be an object with question, gold_answer and "
                          "{agent}_output_{round} fields")
    question = record.get("question")
    if not isinstance(question, str):
        raise where.error("must be a string", field="question")
    gold_text = scalar_text(record.get("gold_answer"))
    if gold_text is None:
        raise where.error("must be a string, number or boolean", field="gold_answer")
    family, gold = gold_and_task(gold_text, task)
    outputs = _outputs(record, where)
    if not outputs:
        raise where.error("no agent outputs: expected keys like 'gpt4_output_0'")
    nodes = [_node(agent, round_, key, output, where, family, gold)
             for (agent, round_), (key, output) in outputs.items()]
    by_round: dict[int, list[str]] = {}
    for node in nodes:
        by_round.setdefault(node.round, []).append(node.id)
    edges = [Edge(seen, writer) for round_, writers in sorted(by_round.items())
             for writer in writers for seen in by_round.get(round_ - 1, [])]
    source: dict[str, Any] = {"format": "magdi", "file": file.name, "index": index}
    if gold != gold_text:
        source["raw_gold_answer"] = gold_text
    return build_graph(where, id=_graph_id(record, where, file, question), question=question,
                       gold_answer=gold, task=family, nodes=nodes, edges=edges, source=source)


def _outputs(record: dict[str, Any], where: Where) -> dict[tuple[str, int], tuple[str, Any]]:
    """``(agent, round) -> (key, output)``, agents in file order, rounds ascending."""
    found: dict[tuple[str, int], tuple[str, Any]] = {}
    for key, output in record.items():
        match = _OUTPUT_KEY.fullmatch(key)
        if not match:
            continue
        slot = (match["agent"], int(match["round"]))
        if slot in found:
            raise where.error(f"{key!r} repeats agent {slot[0]!r} round {slot[1]} "
                              f"(already given by {found[slot][0]!r})", field=key)
        found[slot] = (key, output)
    order = {agent: i for i, agent in enumerate(dict.fromkeys(agent for agent, _ in found))}
    return {slot: found[slot] for slot in sorted(found, key=lambda s: (order[s[0]], s[1]))}


def _node(agent: str, round_: int, key: str, output: Any, where: Where, task: str,
          gold: str) -> Node:
    if not isinstance(output, dict):
        raise where.error("must be an object {reasoning, answer}", field=key)
    reasoning = output.get("reasoning")
    if reasoning is None:
        reasoning = ""
    if not isinstance(reasoning, str):
        raise where.error("must be a string or null", field=f"{key}.reasoning")
    stated = output.get("answer")
    stated_text = scalar_text(stated)
    if stated is not None and stated_text is None:
        raise where.error("must be a string, number, boolean or null", field=f"{key}.answer")
    answer = extract_answer(stated_text if stated_text is not None else reasoning, task)
    return Node(id=f"{agent}.round_{round_}", agent=agent, round=round_, reasoning=reasoning,
                answer=answer, correctness=judge(answer, gold, task))


def _graph_id(record: dict[str, Any], where: Where, file: Path, question: str) -> str:
    given = record.get("id")
    if given is None:
        return stable_id(file.stem, question)
    if isinstance(given, bool) or not isinstance(given, (str, int)) or given == "":
        raise where.error(f"must be a non-empty string or an integer, got {preview(given)}",
                          field="id")
    return str(given)
