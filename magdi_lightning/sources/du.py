"""Import multi-agent debate logs in the format of Du et al. (2023).

The file is one JSON object ``{question: [agent_contexts, gold_answer]}`` (the reference's
``gsm/gen_gsm.py`` and ``mmlu/gen_mmlu.py``); each agent context is that agent's chat
history: an optional system message, then user and assistant messages alternating, one
assistant turn per debate round. In round r+1 every agent is shown every agent's round-r
answer (its own included), so each round-r node gets an edge to each round-(r+1) node.

Forks of the reference code write variants of it, all read here (``tests/test_du_variants.py``
builds one log in each shape):

* ``{person: agent_contexts}`` without a gold answer (the reference's own
  ``biography/gen_conversation.py``): the gold answer is ``""`` and every node UNKNOWN;
* a ``null`` gold answer, likewise;
* JSON Lines, one ``{question: [agent_contexts, gold]}`` object per line;
* a message content that is not a string: a whole message object ``{"role", "content"}``
  (a fork storing the API's message instead of its content), a list of content parts
  (``[{"type": "text", "text": ...}]``, the newer chat APIs; the text parts are joined) or
  ``null`` (an empty turn);
* assistant turns without the user prompts between them (each assistant message is one
  round); extra keys in a message (``name``, ``refusal``...) are ignored.

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

from magdi_lightning.errors import RecordError, preview
from magdi_lightning.graph import Edge, Node, ReasoningGraph
from magdi_lightning.scoring.answers import extract_answer
from magdi_lightning.sources._common import (
    Where,
    build_graph,
    check_task,
    gold_and_task,
    judge,
    load_json,
    load_records,
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
    Raises :class:`RecordError` naming the file, question and field of the
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
    for index, (question, entry, line) in enumerate(_entries(file)):
        where = Where(str(file), f"question {index} {preview(question)}", line)
        yield _graph(question, entry, where, task, model,
                     {**source, "index": index}, stable_id(file.stem, question))


def _entries(file: Path) -> list[tuple[str, Any, int | None]]:
    """``(question, entry, line)`` of a log that is one JSON object, or JSON Lines of them."""
    try:
        logs = [(None, load_json(file))]
    except RecordError as whole:
        try:
            logs = [(where.line, record) for where, record in load_records(file)]
        except RecordError:
            raise whole from None
        if len(logs) < 2:
            raise whole from None
    entries: list[tuple[str, Any, int | None]] = []
    seen: dict[str, int | None] = {}
    for line, log in logs:
        if not isinstance(log, dict):
            raise Where(str(file), line=line).error(
                "a Du et al. debate log must be a JSON object {question: [agent_contexts, gold]}"
                " (or JSON Lines of such objects)")
        for question, entry in log.items():
            if question in seen:
                raise Where(str(file), line=line).error(
                    f"question {preview(question)} appears twice (first on line {seen[question]})")
            seen[question] = line
            entries.append((question, entry, line))
    return entries


def _graph(question: str, entry: Any, where: Where, task: str | None, model: str | None,
           source: dict[str, Any], graph_id: str) -> ReasoningGraph:
    if _is_chat_list(entry):  # {person: agent_contexts}: the reference's biography logs
        contexts, raw_gold = entry, None
    elif isinstance(entry, list) and len(entry) == 2:
        contexts, raw_gold = entry
    else:
        raise where.error("value must be a two-item list [agent_contexts, gold_answer] "
                          "or a list of agent chats")
    gold_text = "" if raw_gold is None else scalar_text(raw_gold)
    if gold_text is None:
        raise where.error("must be a string, number, boolean or null", field="gold_answer")
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


def _is_chat_list(entry: Any) -> bool:
    """A list of agent chats (not ``[agent_contexts, gold]``, whose first item holds chats)."""
    return (isinstance(entry, list) and bool(entry)
            and all(isinstance(chat, list) and chat for chat in entry)
            and all(isinstance(message, dict) for chat in entry for message in chat))


def _assistant_turns(context: Any, agent: int, where: Where) -> list[str]:
    """The agent's assistant messages, after checking the chat's shape and roles.

    After an optional system message, a user message must be answered before the next
    one; an assistant message may follow another (forks that store no prompts).
    """
    at = f"agent_contexts[{agent}]"
    if not isinstance(context, list):
        raise where.error("must be a list of chat messages", field=at)
    turns = []
    previous = None
    for position, message in enumerate(context):
        field = f"{at}[{position}]"
        if not isinstance(message, dict):
            raise where.error("must be an object with 'role' and 'content'", field=field)
        if "content" not in message:
            raise where.error("missing", field=f"{field}.content")
        content = _text(message["content"], where, f"{field}.content")
        role = message.get("role")
        if position == 0 and role == "system":
            continue
        if role not in ("user", "assistant") or role == previous == "user":
            expected = "'assistant'" if previous == "user" else "'user' or 'assistant'"
            raise where.error(f"expected role {expected}, got {preview(role)} (chats "
                              "alternate user/assistant after an optional system message)",
                              field=f"{field}.role")
        if role == "assistant":
            turns.append(content)
        previous = role
    return turns


def _text(content: Any, where: Where, field: str) -> str:
    """A message's content as text: a string; ``null`` (empty); a list of content parts
    (strings or ``{"type": "text", "text": ...}``, joined; other parts, e.g. images, carry
    no text); or a whole message object stored as the content (its own ``content``)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, dict) and "content" in content:
        return _text(content["content"], where, field + ".content")
    if isinstance(content, list):
        return "".join(_part_text(part, where, f"{field}[{i}]") for i, part in enumerate(content))
    raise where.error("must be a string, a list of content parts, a message object or null",
                      field=field)


def _part_text(part: Any, where: Where, field: str) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        text = part.get("text", "")
        if isinstance(text, str):
            return text
    raise where.error("a content part must be a string or an object with a 'text' string",
                      field=field)
