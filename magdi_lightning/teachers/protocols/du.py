"""Multi-agent debate as in Du et al. (ICML 2024): agents answer, then each reads the
other agents' latest solutions and answers again, for a fixed number of rounds.

Each agent keeps its own conversation (its earlier answers stay in its history), so its
node in round r has an edge from every node of round r-1, its own included. Answers are
read from the free text by the evaluation extractors; a response with no recognisable
answer is kept with ``metadata.parse_error`` set.
"""

from __future__ import annotations

import asyncio

from magdi_lightning.errors import UserError
from magdi_lightning.graph import Edge, Node, ReasoningGraph
from magdi_lightning.questions import Question
from magdi_lightning.teachers.endpoints import Messages
from magdi_lightning.teachers.protocols.base import Protocol, answer_format, extract, make_node
from magdi_lightning.teachers.teacher import Teacher

__all__ = ["DuDebate"]


class DuDebate(Protocol):
    """``rounds`` rounds in all (round 0 included)."""

    name = "du"

    def __init__(self, rounds: int = 2) -> None:
        if rounds < 1:
            raise UserError("du: rounds must be >= 1")
        self.rounds = rounds

    async def run(self, example: Question, teachers: list[Teacher]) -> ReasoningGraph:
        ending = (f"Explain your reasoning step by step, then end with \"The answer is X.\" "
                  f"where X is {answer_format(example)}.")
        histories: list[Messages] = [
            [{"role": "user", "content": f"Can you solve the following problem? "
                                         f"{example.question}\n{ending}"}] for _ in teachers]
        nodes: list[Node] = []
        edges: list[Edge] = []
        previous: list[Node] = []
        for round_ in range(self.rounds):
            if round_:
                for i, history in enumerate(histories):
                    others = "\n\n".join(f"One agent solution: ```{n.reasoning}```"
                                         for j, n in enumerate(previous) if j != i)
                    history.append({"role": "user", "content": (
                        f"These are the solutions to the problem from other agents:\n\n"
                        f"{others}\n\nUsing the reasoning from the other agents as additional "
                        f"advice, can you give an updated answer? Examine your solution and "
                        f"theirs step by step. {ending}")})
            current = await asyncio.gather(*(
                self._respond(example, teacher, round_, history)
                for teacher, history in zip(teachers, histories)))
            edges += [Edge(a.id, b.id) for a in previous for b in current]
            nodes += current
            previous = current
        return self.graph(example, nodes, edges, rounds=self.rounds)

    async def _respond(self, example: Question, teacher: Teacher, round_: int,
                       history: Messages) -> Node:
        completion = await teacher.chat(list(history))
        history.append({"role": "assistant", "content": completion.text})
        answer = extract(completion.text, example)
        return make_node(f"{teacher.name}.round_{round_}", teacher, round_, completion.text,
                         answer, example, completion,
                         parse_error=None if answer is not None else "no answer found")
