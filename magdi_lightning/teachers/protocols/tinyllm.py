"""TinyLLM teacher prompting (Tian et al., WSDM 2025): teacher-forcing chain of thought.

Each teacher is given the question *and its gold answer* and asked to explain why that
answer is right, after ``k`` in-context examples drawn (seeded per question) from the
same dataset's training split. The result is one node per teacher, all in round 0, no
edges: the multi-teacher rationales TinyLLM distils, one rationale loss per teacher.
A rationale whose own stated answer disagrees with the gold is labelled incorrect.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any

from magdi_lightning.errors import UserError
from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.questions import Question
from magdi_lightning.sources.question_sets import load_benchmark
from magdi_lightning.teachers.protocols.base import Protocol, extract, make_node
from magdi_lightning.teachers.teacher import Teacher

__all__ = ["TinyLLMRationales"]

#: Metadata keys that may hold a worked solution of an in-context example.
_SOLUTION_KEYS = ("solution", "rationale", "explanation")


class TinyLLMRationales(Protocol):
    """``k`` in-context examples per prompt from ``train_set``, seeded by ``seed``.

    ``train_set`` is the examples themselves or a question-set config (``{name, loader}``,
    as under ``conf/questions/``) to load them from.
    """

    name = "tinyllm"

    def __init__(self, train_set: Sequence[Question] | Mapping[str, Any] | None = None,
                 k: int = 3, seed: int = 0) -> None:
        if k < 0:
            raise UserError("tinyllm: k must be >= 0")
        if isinstance(train_set, Mapping):
            train_set = load_benchmark(train_set["name"], **dict(train_set.get("loader", {})))
        if k and not train_set:
            raise UserError("tinyllm: in-context examples (k > 0) need a train_set")
        self.train_examples = list(train_set or [])
        self.k = k
        self.seed = seed

    def in_context_examples(self, example: Question) -> list[Question]:
        """The question's ``k`` examples: the same for the same seed and question, never
        the question itself."""
        pool = [e for e in self.train_examples if e.question != example.question]
        rng = random.Random(f"{self.seed}:{example.id}")
        return rng.sample(pool, min(self.k, len(pool)))

    def prompt(self, example: Question) -> str:
        shots = []
        for shot in self.in_context_examples(example):
            solution = next((shot.metadata[key] for key in _SOLUTION_KEYS
                             if isinstance(shot.metadata.get(key), str)), None)
            shots.append(f"Question: {shot.question}\nAnswer: {shot.gold}"
                         + (f"\nExplanation: {solution}" if solution else ""))
        task = (f"Question: {example.question}\nAnswer: {example.gold}\n"
                f"Explain step by step why the answer is {example.gold}, then end with "
                f"\"So the answer is {example.gold}.\"\nExplanation:")
        return "\n\n".join([*shots, task])

    async def run(self, example: Question, teachers: list[Teacher]) -> ReasoningGraph:
        prompt = self.prompt(example)
        nodes = await asyncio.gather(*(self._respond(example, t, prompt) for t in teachers))
        return self.graph(example, list(nodes), in_context_examples=[
            e.id for e in self.in_context_examples(example)])

    async def _respond(self, example: Question, teacher: Teacher, prompt: str) -> Node:
        completion = await teacher.chat([{"role": "user", "content": prompt}])
        answer = extract(completion.text, example)
        return make_node(teacher.name, teacher, 0, completion.text, answer, example,
                         completion, parse_error=None if answer is not None
                         else "no answer found")
