"""What every protocol shares: the interface, answer-format hints, labelling, parsing."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import Any

from magdi_lightning.graph import Correctness, Node, ReasoningGraph
from magdi_lightning.questions import Question
from magdi_lightning.scoring.answers import answers_match, extract_answer
from magdi_lightning.teachers.endpoints import Completion
from magdi_lightning.teachers.teacher import Teacher

__all__ = ["Protocol", "answer_format", "label", "make_node", "parse_json_object"]

#: How each task family's final answer should be written, for the prompts.
_ANSWER_FORMATS = {
    "numeric": "a single number",
    "math": "a LaTeX expression",
    "multiple_choice": "the letter of one option",
    "yes_no": "yes or no",
    "text": "a short phrase",
}
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class Protocol(ABC):
    """Asks ``teachers`` about one question; returns its graph, or ``None`` when a
    filter left nothing worth keeping (the runner records the question as skipped)."""

    name: str

    @abstractmethod
    async def run(self, example: Question, teachers: list[Teacher]
                  ) -> ReasoningGraph | None: ...

    def graph(self, example: Question, nodes: list[Node], edges: list[Any] | None = None,
              **source: Any) -> ReasoningGraph:
        """The question's graph, its provenance under ``source``."""
        return ReasoningGraph(
            id=example.id, question=example.question, gold_answer=example.gold,
            task=example.task, nodes=nodes, edges=edges or [],
            source={"protocol": self.name, **source,
                    **({"choices": list(example.choices)} if example.choices else {})})


def answer_format(example: Question) -> str:
    """The prompt's description of a valid final answer for ``example``."""
    return _ANSWER_FORMATS[example.task]


def label(answer: str | None, example: Question) -> Correctness:
    """Correct / incorrect by the evaluation rules; unknown when there is no answer."""
    if answer is None:
        return Correctness.UNKNOWN
    correct = answers_match(answer, example.gold, example.task, example.choices)
    return Correctness.CORRECT if correct else Correctness.INCORRECT


def extract(text: str, example: Question) -> str | None:
    """The answer stated in free text, by the evaluation extractors."""
    return extract_answer(text, example.task, example.choices)


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object a response holds (bare, fenced, or amid prose), else ``None``."""
    match = _JSON_OBJECT.search(text)
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def make_node(node_id: str, teacher: Teacher, round_: int, reasoning: str,
              answer: str | None, example: Question, completion: Completion,
              strategy: str | None = None, **metadata: Any) -> Node:
    """A node labelled against the gold answer, with the response's length and any
    ``metadata`` (``None`` values left out)."""
    extra = {key: value for key, value in metadata.items() if value is not None}
    if completion.finish_reason not in (None, "stop"):
        extra["finish_reason"] = completion.finish_reason
    return Node(id=node_id, agent=teacher.name, round=round_, reasoning=reasoning,
                answer=answer, correctness=label(answer, example), model=teacher.spec.model,
                strategy=strategy, num_tokens=completion.completion_tokens or None,
                metadata=extra)
