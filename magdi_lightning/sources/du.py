"""Import multi-agent debate logs in the format of Du et al. (2023).

The file is one JSON object ``{question: [agent_contexts, gold_answer]}``; each agent
context is that agent's chat history: an optional system message, then user and
assistant messages alternating, one assistant turn per debate round. In round r+1 every
agent is shown every agent's round-r answer (its own included), so each round-r node gets
an edge to each round-(r+1) node.

Choices for irregular logs, made so that the round structure always survives:

* an agent that stops early simply has fewer nodes; its last answer still feeds the
  next round, and later rounds link only the agents still present;
* an empty or answerless assistant turn is still a node (the others saw it), with
  ``answer=None`` and correctness UNKNOWN (see :func:`._common.judge`);
* a trailing user message with no reply is ignored: the agent never answered it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from magdi_lightning.evaluation.answers import extract_answer
from magdi_lightning.graph import Edge, Node, ReasoningGraph
from magdi_lightning.sources._common import (
    Where,
    build_graph,
    check_task,
    gold_and_task,
    judge,
    load_json,
    preview,
    scalar_text,
    stable_id,
)

__all__ = ["import_du"]

#: ``du_<dataset>_<model>_<N>agents_<R>rounds.json``, as the shared debate logs are named.
_FILENAME = re.compile(r"du_(?P<dataset>[^_]+)_(?P<model>.+)_\d+agents_\d+rounds")


def import_du(path: str | os.PathLike[str], *, task: str | None = None,
              model: str | None = None) -> Iterator[ReasoningGraph]:
    """Yield one graph per question of a Du et al. debate log.

    ``task`` fixes the task family (default: inferred per question from the gold
    answer); ``model`` names the LLM behind every agent (default: parsed from a
    ``du_<dataset>_<model>_<N>agents_<R>rounds.json`` file name, else unknown).
    Raises :class:`GraphValidationError` naming the file, question and field of the
    first malformed record.
    """
    check_task(task)
    file = Path(path)
    named = _FILENAME.fullmatch(file.stem)
    source: dict[str, Any] = {"format": "du", "file": file.name}
    if named:
        source["dataset"] = named["dataset"]
    return _graphs(file, task, model or (named["model"] if named else None), source)


def _graphs(file: Path, task: str | None, model: str | None,
            source: dict[str, Any]) -> Iterator[ReasoningGraph]:
    log = load_json(file)
    if not isinstance(log, dict):
        raise Where(str(file)).error(
            "a Du et al. debate log must be a JSON object {question: [agent_contexts, gold]}")
    for index, (question, entry) in enumerate(log.items()):
        where = Where(str(file), f"question {index} {preview(question)}")
        yield _graph(question, entry, where, task, model,
                     {**source, "index": index}, stable_id(file.stem, question))


def _graph(question: str, entry: Any, where: Where, task: str | None, model: str | None,
           source: dict[str, Any], graph_id: str) -> ReasoningGraph:
    if not (isinstance(entry, list) and len(entry) == 2):
        raise where.error("value must be a two-item list [agent_contexts, gold_answer]")
    contexts, raw_gold = entry
    gold_text = scalar_text(raw_gold)
    if gold_text is None:
        raise where.error("must be a string, number or boolean", field="gold_answer")
    if not isinstance(contexts, list):
        raise where.error("must be a list with one chat history per agent",
                          field="agent_contexts")
    family, gold = gold_and_task(gold_text, task)
    nodes: list[Node] = []
    by_round: dict[int, list[str]] = {}
    for agent_index, context in enumerate(contexts):
        for round_, content in enumerate(_assistant_turns(context, agent_index, where)):
            answer = extract_answer(content, family)
            node = Node(id=f"agent_{agent_index}.round_{round_}", agent=f"agent_{agent_index}",
                        round=round_, reasoning=content, answer=answer,
                        correctness=judge(answer, gold, family), model=model)
            nodes.append(node)
            by_round.setdefault(round_, []).append(node.id)
    edges = [Edge(seen, writer) for round_, writers in sorted(by_round.items()) if round_ > 0
             for writer in writers for seen in by_round[round_ - 1]]
    if gold != gold_text:
        source["raw_gold_answer"] = gold_text
    return build_graph(where, id=graph_id, question=question, gold_answer=gold, task=family,
                       nodes=nodes, edges=edges, source=source)


def _assistant_turns(context: Any, agent: int, where: Where) -> list[str]:
    """The agent's assistant messages, after checking the chat's shape and roles."""
    at = f"agent_contexts[{agent}]"
    if not isinstance(context, list):
        raise where.error("must be a list of chat messages", field=at)
    turns = []
    expected = "user"
    for position, message in enumerate(context):
        field = f"{at}[{position}]"
        if not isinstance(message, dict):
            raise where.error("must be an object with 'role' and 'content'", field=field)
        role, content = message.get("role"), message.get("content")
        if not isinstance(content, str):
            raise where.error("must be a string", field=f"{field}.content")
        if position == 0 and role == "system":
            continue
        if role != expected:
            raise where.error(f"expected role {expected!r}, got {preview(role)} (chats "
                              "alternate user/assistant after an optional system message)",
                              field=f"{field}.role")
        if role == "assistant":
            turns.append(content)
        expected = "assistant" if role == "user" else "user"
    return turns
