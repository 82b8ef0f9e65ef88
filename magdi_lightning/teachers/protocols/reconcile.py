"""ReConcile (Chen et al., ACL 2024): a round-table of diverse LLMs that convince each
other, with confidence-weighted voting.

Round 0: each agent answers alone with step-by-step reasoning, an answer and a confidence
in [0, 1]. Each discussion round asks every agent the same question again, followed by
the previous round's responses of all agents (its own included) grouped by answer, the
``answer_groups`` largest groups (ReConcile's code: the top two), each response written
"I think the answer is <a> because <reasoning> My confidence level is <c>.", and asks for
an updated response that says which view it agrees or disagrees with. The discussion
stops early once all agents agree. The final answer is a vote weighted by recalibrated
confidence (LLMs state 0.9-1.0 for almost everything, so stated confidence is mapped to
1.0 / 0.8 / 0.5 / 0.3 / 0.1 as in the paper).

"Convincing samples" (questions on which an agent's answer was corrected by a human
explanation) are in-context examples for the *other* agents, in every prompt of every
round, as ReConcile's code passes them to round 0 and to each discussion round alike.
Which file is whose is an explicit map from agent name to file (ReConcile's files are
``chatgpt.json``, ``claude.json``, ``bard.json``; its agents need not be named so).

Edges: every response of round r-1 to every response of round r (each agent saw all
answers, its own included), as the MAGDi graphs of ReConcile discussions have them.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from magdi_lightning.errors import UserError
from magdi_lightning.graph import Correctness, Edge, Node, ReasoningGraph
from magdi_lightning.questions import Question
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
# ReConcile's instructions (its utils.prepare_context and generation.*_debate), with our
# JSON reply format in place of its "confidence_level" one.
_ANSWER_INSTRUCTIONS = (
    "Please answer the question with step-by-step reasoning.",
    "Also, evaluate your confidence level (between 0.0 and 1.0) to indicate the possibility "
    "of your answer being right.")
_DISCUSSION_INSTRUCTIONS = (
    "Carefully review the following solutions from other agents as additional information, "
    "and provide your own answer and step-by-step reasoning to the question. Clearly states "
    "that which pointview do you agree or disagree and why.")


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


def load_convincing_samples(path: str | Path) -> list[str]:
    """The in-context examples of one ReConcile convincing-sample file: a JSON list of
    records whose ``train_sample`` holds ``question``, ``answer`` and the human
    ``gold_explanation``, each written as ReConcile's prompts show it ("Q: <question>",
    then "A:" and the reply with the gold explanation as reasoning)."""
    file = Path(path)
    records = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(records, list) or not records:
        raise UserError(f"{file}: a convincing-sample file must be a non-empty JSON list")
    samples = []
    for i, record in enumerate(records):
        sample = record.get("train_sample") if isinstance(record, dict) else None
        if not isinstance(sample, dict):
            raise UserError(f"{file}: record {i}: train_sample must be an object")
        missing = [key for key in ("question", "answer", "gold_explanation")
                   if sample.get(key) is None]
        if missing:
            raise UserError(f"{file}: record {i}: train_sample.{missing[0]} is missing")
        reply = json.dumps({"reasoning": str(sample["gold_explanation"]),
                            "answer": str(sample["answer"])}, ensure_ascii=False)
        samples.append(f"Q: {sample['question']}\nA:{reply}")
    return samples


class ReConcile(Protocol):
    """``rounds`` discussion rounds after round 0 (stopping early at consensus).

    ``convincing_samples`` maps every agent (teacher name) to its convincing-sample file,
    or to ``None`` for an agent without one; each agent sees the samples of every file
    but its own, in map order. ``answer_groups`` is how many answer groups (largest
    first, ties in agent order) a discussion prompt shows; ``None`` shows all.
    """

    name = "reconcile"

    def __init__(self, rounds: int = 3,
                 convincing_samples: Mapping[str, str | None] | None = None,
                 stop_at_consensus: bool = True, answer_groups: int | None = 2) -> None:
        if rounds < 0:
            raise UserError("reconcile: rounds must be >= 0")
        if answer_groups is not None and answer_groups < 1:
            raise UserError("reconcile: answer_groups must be >= 1 or null (all)")
        if convincing_samples is not None and not isinstance(convincing_samples, Mapping):
            raise UserError("reconcile: convincing_samples must map agent names to sample "
                             f"files (or null), got {convincing_samples!r}")
        self.rounds = rounds
        self.stop_at_consensus = stop_at_consensus
        self.answer_groups = answer_groups
        self.convincing = {agent: load_convincing_samples(file) if file else []
                           for agent, file in (convincing_samples or {}).items()}

    async def run(self, example: Question, teachers: list[Teacher]) -> ReasoningGraph:
        shots = {teacher.name: self._shots_for(teacher.name) for teacher in teachers}
        nodes: list[Node] = []
        edges: list[Edge] = []
        current = await asyncio.gather(*(
            self._respond(example, teacher, 0, self._first_prompt(example, shots[teacher.name]))
            for teacher in teachers))
        nodes += current
        rounds_run = 1
        while rounds_run <= self.rounds and not (self.stop_at_consensus and _agree(current)):
            previous = current
            current = await asyncio.gather(*(
                self._respond(example, teacher, rounds_run,
                              self._discussion_prompt(example, shots[teacher.name], previous))
                for teacher in teachers))
            edges += [Edge(a.id, b.id) for a in previous for b in current]
            nodes += current
            rounds_run += 1
        final = _weighted_vote(current)
        return self.graph(example, nodes, edges, rounds=rounds_run, consensus=_agree(current),
                          final_answer=final,
                          final_correct=label(final, example) is Correctness.CORRECT)

    def _shots_for(self, agent: str) -> list[str]:
        """The convincing samples ``agent`` sees: every mapped file's but its own."""
        if not self.convincing:
            return []
        if agent not in self.convincing:
            raise UserError(f"reconcile: agent {agent!r} is not in convincing_samples "
                             f"(agents named there: {sorted(self.convincing)}); map it to its "
                             "sample file, or to null if it has none")
        return [shot for owner, group in self.convincing.items() if owner != agent
                for shot in group]

    async def _respond(self, example: Question, teacher: Teacher, round_: int,
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

    @staticmethod
    def _question(example: Question, shots: list[str]) -> str:
        """The convincing samples, the question and the answer instructions."""
        return "\n".join([*shots, f"Q: {example.question}", *_ANSWER_INSTRUCTIONS])

    def _first_prompt(self, example: Question, shots: list[str]) -> str:
        """Round 0's prompt: the question block, then the reply format."""
        return (f"{self._question(example, shots)}\n"
                + _REPLY_FORMAT.format(fmt=answer_format(example)))

    def _discussion_prompt(self, example: Question, shots: list[str],
                           previous: list[Node]) -> str:
        """The question block, the previous round's solutions grouped by answer, then the
        reply format (once)."""
        return (f"{self._question(example, shots)}\n\n{_DISCUSSION_INSTRUCTIONS}\n\n"
                f"{self.solutions(previous)}"
                + _REPLY_FORMAT.format(fmt=answer_format(example)))

    def solutions(self, previous: list[Node]) -> str:
        """The ``answer_groups`` largest groups of ``previous`` by answer, as ReConcile's
        ``parse_output`` writes its debate prompt: "There are <n> agents think the answer
        is <a>. " and one "One agent solution: ..." line per response, then a blank line."""
        votes = Counter(node.answer for node in previous).most_common(self.answer_groups)
        blocks = []
        for answer, count in votes:
            lines = "\n".join(f"One agent solution: {_stated(node)}" for node in previous
                              if node.answer == answer)
            blocks.append(f"There are {count} agents think the answer is "
                          f"{_answer_text(answer)}. {lines}\n\n")
        return "".join(blocks)


def _answer_text(answer: str | None) -> str:
    return "unclear" if answer is None else answer


def _stated(node: Node) -> str:
    """A response as ReConcile shows it to the others (an unstated confidence is 0.0, as
    its ``clean_output`` sets it)."""
    confidence = node.metadata.get("confidence")
    return (f"I think the answer is {_answer_text(node.answer)} because {node.reasoning} "
            f"My confidence level is {0.0 if confidence is None else confidence}.")


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
