"""ReConcile (Chen et al., ACL 2024): a round-table of diverse LLMs that convince each
other, with confidence-weighted voting.

Round 0: each agent answers alone with reasoning, an answer and a confidence in [0, 1].
Each discussion round shows every agent the others' answers grouped by answer, each with
its explanation and confidence, and asks for an updated response. The discussion stops
early once all agents agree. The final answer is a vote weighted by recalibrated
confidence (LLMs state 0.9-1.0 for almost everything, so stated confidence is mapped to
1.0 / 0.8 / 0.5 / 0.3 / 0.1 as in the paper). Optional "convincing samples", questions on
which an agent's answer was corrected by a human explanation, serve as in-context
examples for the other agents.

Edges: every response of round r-1 to every response of round r (each agent saw all
answers, its own included), as the MAGDi graphs of ReConcile discussions have them.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from magdi_lightning.evaluation.benchmarks import BenchmarkExample
from magdi_lightning.graph import Correctness, Edge, Node, ReasoningGraph
from magdi_lightning.teachers.protocols.base import (
    Protocol,
    answer_format,
    extract,
    label,
    make_node,
    parse_json_object,
)
from magdi_lightning.teachers.teacher import Teacher

__all__ = ["ReConcile", "load_convincing_samples", "recalibrate"]

_REPLY_FORMAT = ('Reply with a JSON object only: {{"reasoning": "<step-by-step reasoning>", '
                 '"answer": "<{fmt}>", "confidence": <a number from 0.0 to 1.0>}}')


def recalibrate(confidence: float | None) -> float:
    """ReConcile's map from stated confidence to vote weight."""
    if confidence is None:
        return 0.1
    if confidence >= 1.0:
        return 1.0
    if confidence >= 0.9:
        return 0.8
    if confidence >= 0.8:
        return 0.5
    if confidence > 0.6:
        return 0.3
    return 0.1


def load_convincing_samples(directory: str | Path) -> dict[str, list[str]]:
    """In-context examples per source agent from ReConcile's convincing-sample files
    (``<agent>.json``: records with ``train_sample`` {question, answer, gold_explanation}
    and the agent's corrected ``prediction_post``)."""
    samples: dict[str, list[str]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        records = json.loads(path.read_text(encoding="utf-8"))
        samples[path.stem] = [
            "Q: {q}\n{reply}".format(q=r["train_sample"]["question"], reply=json.dumps({
                "reasoning": r["train_sample"].get("gold_explanation")
                or r["prediction_post"].get("answer_reasoning", ""),
                "answer": str(r["train_sample"]["answer"]), "confidence": 1.0}))
            for r in records]
    if not samples:
        raise FileNotFoundError(f"no convincing-sample files (*.json) in {directory}")
    return samples


class ReConcile(Protocol):
    """``rounds`` discussion rounds after round 0 (stopping early at consensus)."""

    name = "reconcile"

    def __init__(self, rounds: int = 2, convincing_samples: str | None = None,
                 stop_at_consensus: bool = True) -> None:
        if rounds < 0:
            raise ValueError("reconcile: rounds must be >= 0")
        self.rounds = rounds
        self.stop_at_consensus = stop_at_consensus
        self.convincing = load_convincing_samples(convincing_samples) if convincing_samples \
            else {}

    async def run(self, example: BenchmarkExample, teachers: list[Teacher]) -> ReasoningGraph:
        nodes: list[Node] = []
        edges: list[Edge] = []
        current = await asyncio.gather(*(
            self._respond(example, teacher, 0, self._first_prompt(example, teacher))
            for teacher in teachers))
        nodes += current
        rounds_run = 1
        while rounds_run <= self.rounds and not (self.stop_at_consensus and _agree(current)):
            previous = current
            current = await asyncio.gather(*(
                self._respond(example, teacher, rounds_run,
                              self._discussion_prompt(example, i, previous))
                for i, teacher in enumerate(teachers)))
            edges += [Edge(a.id, b.id) for a in previous for b in current]
            nodes += current
            rounds_run += 1
        final = _weighted_vote(current)
        return self.graph(example, nodes, edges, rounds=rounds_run, consensus=_agree(current),
                          final_answer=final,
                          final_correct=label(final, example) is Correctness.CORRECT)

    async def _respond(self, example: BenchmarkExample, teacher: Teacher, round_: int,
                       prompt: str) -> Node:
        completion = await teacher.chat([{"role": "user", "content": prompt}])
        parsed = parse_json_object(completion.text)
        node_id = f"{teacher.name}.round_{round_}"
        if parsed is None or "answer" not in parsed:
            return make_node(node_id, teacher, round_, completion.text,
                             extract(completion.text, example), example, completion,
                             parse_error="no JSON object with an answer")
        answer = extract(str(parsed["answer"]), example)
        confidence = _number(parsed.get("confidence"))
        return make_node(node_id, teacher, round_, str(parsed.get("reasoning", "")), answer,
                         example, completion, confidence=confidence,
                         parse_error=None if confidence is not None else "no confidence")

    def _first_prompt(self, example: BenchmarkExample, teacher: Teacher) -> str:
        shots = [s for agent, group in self.convincing.items() if agent != teacher.name
                 for s in group]
        parts = ["Here are some examples of good answers.\n\n" + "\n\n".join(shots)] \
            if shots else []
        parts.append(f"Q: {example.question}\nAnswer the question. "
                     + _REPLY_FORMAT.format(fmt=answer_format(example)))
        return "\n\n".join(parts)

    def _discussion_prompt(self, example: BenchmarkExample, agent: int,
                           previous: list[Node]) -> str:
        own = previous[agent]
        groups: dict[str | None, list[Node]] = defaultdict(list)
        for i, node in enumerate(previous):
            if i != agent:
                groups[node.answer].append(node)
        lines = [f"Q: {example.question}",
                 f"Your previous answer was {own.answer!r} (confidence "
                 f"{own.metadata.get('confidence', 'unstated')}) with this reasoning: "
                 f"{own.reasoning}", "The other agents answered:"]
        for answer, group in groups.items():
            lines.append(f"- {len(group)} agent(s) answered {answer!r}:")
            lines += [f"  * explanation (confidence {n.metadata.get('confidence', 'unstated')}"
                      f"): {n.reasoning}" for n in group]
        lines.append("Weigh their reasoning and confidence against yours and give an updated "
                     "response. " + _REPLY_FORMAT.format(fmt=answer_format(example)))
        return "\n".join(lines)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(number, 0.0), 1.0)


def _agree(nodes: list[Node]) -> bool:
    answers = {node.answer for node in nodes}
    return len(answers) == 1 and None not in answers


def _weighted_vote(nodes: list[Node]) -> str | None:
    """The answer with the most recalibrated confidence (ties: the first seen)."""
    weights: dict[str, float] = {}
    for node in nodes:
        if node.answer is not None:
            weights[node.answer] = weights.get(node.answer, 0.0) + recalibrate(
                node.metadata.get("confidence"))
    return max(weights, key=weights.__getitem__) if weights else None
