"""SIKeD teacher prompting (Adarsh et al., 2024): solutions in several strategies.

For every question each teacher writes ``samples`` solutions per strategy from a
few-shot prompt of that strategy: chain of thought (``cot``), least-to-most
sub-questions (``l2m``) and program of thought (``pot``, a Python program whose ``ans``
is the answer, run in the sandbox). Nodes carry their ``strategy``; the student later
learns to open its answer with the strategy's tag. Two optional filters: keep only
correct solutions, and keep at most one per strategy; both together give the reference's
distillation data (the first correct sample per question and strategy, shivam0109/SIKeD
create_data.py ``get_kd_data``), which ``magdi-siked`` also selects by itself
(:func:`magdi_lightning.methods.siked.teacher_data`), so the graphs may keep every sample. The
reference does not check a teacher's least-to-most format (only the student's). A
question left with no node is recorded as skipped rather than written as an empty graph.
"""

from __future__ import annotations

import asyncio

from magdi_lightning.errors import UserError
from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.questions import Question
from magdi_lightning.strategies import PROGRAM, STRATEGIES, split_strategy, tag
from magdi_lightning.teachers.endpoints import Completion
from magdi_lightning.teachers.protocols.base import Protocol, extract, make_node
from magdi_lightning.teachers.teacher import Teacher

__all__ = ["FEW_SHOT", "SikedStrategies"]

_DEMO_QUESTION = ("A baker makes 24 rolls. She sells 15 of them and then bakes 8 more. "
                  "How many rolls does she have now?")
_DEMO_QUESTION_2 = "Tom reads 12 pages a day for 5 days. How many pages does he read?"

#: Instruction and worked examples per strategy (written for this project).
FEW_SHOT: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "cot": ("Solve the problem step by step, then end with \"The answer is X.\".", [
        (_DEMO_QUESTION, "She has 24 - 15 = 9 rolls left. After baking she has 9 + 8 = 17. "
                         "The answer is 17."),
        (_DEMO_QUESTION_2, "He reads 12 pages on each of 5 days, so 12 * 5 = 60 pages. "
                           "The answer is 60."),
    ]),
    "l2m": ("Break the problem into simpler sub-questions, answer them in order, then end "
            "with \"The answer is X.\".", [
        (_DEMO_QUESTION, "Sub-question 1: How many rolls are left after selling? 24 - 15 = 9.\n"
                         "Sub-question 2: How many after baking 8 more? 9 + 8 = 17.\n"
                         "The answer is 17."),
        (_DEMO_QUESTION_2, "Sub-question 1: How many pages does he read in 5 days? "
                           "12 * 5 = 60.\nThe answer is 60."),
    ]),
    "pot": ("Write a Python program that computes the answer and stores it in a variable "
            "named ans. Reply with the program only.", [
        (_DEMO_QUESTION, "rolls = 24\nrolls -= 15\nrolls += 8\nans = rolls"),
        (_DEMO_QUESTION_2, "pages_per_day = 12\ndays = 5\nans = pages_per_day * days"),
    ]),
}


class SikedStrategies(Protocol):
    """``samples`` solutions per strategy per teacher."""

    name = "siked"

    def __init__(self, strategies: list[str] | None = None, samples: int = 1,
                 keep_correct_only: bool = False, one_per_strategy: bool = False) -> None:
        self.strategies = list(strategies or STRATEGIES)
        for strategy in self.strategies:
            tag(strategy)  # rejects unknown strategies
        if samples < 1:
            raise UserError("siked: samples must be >= 1")
        self.samples = samples
        self.keep_correct_only = keep_correct_only
        self.one_per_strategy = one_per_strategy

    @staticmethod
    def prompt(strategy: str, question: str) -> str:
        instruction, demos = FEW_SHOT[strategy]
        shots = "\n\n".join(f"Question: {q}\nSolution:\n{a}" for q, a in demos)
        return f"{instruction}\n\n{shots}\n\nQuestion: {question}\nSolution:\n"

    async def run(self, example: Question, teachers: list[Teacher]
                  ) -> ReasoningGraph | None:
        jobs = [(teacher, strategy, i) for teacher in teachers for strategy in self.strategies
                for i in range(self.samples)]
        completions = await asyncio.gather(*(
            teacher.chat([{"role": "user", "content": self.prompt(strategy, example.question)}])
            for teacher, strategy, _ in jobs))
        answers = await self._answers([(s, c) for (_, s, _), c in zip(jobs, completions)],
                                      example)
        nodes = [make_node(f"{teacher.name}.{strategy}.{i}", teacher, 0, solution, answer,
                           example, completion, strategy=strategy, parse_error=error)
                 for (teacher, strategy, i), completion, (solution, answer, error)
                 in zip(jobs, completions, answers)]
        kept = self._filter(nodes)
        if not kept:
            return None
        return self.graph(example, kept, generated=len(nodes))

    async def _answers(self, responses: list[tuple[str, Completion]],
                       example: Question) -> list[tuple[str, str | None, str | None]]:
        """(solution, answer, parse error) per response; programs run in one sandbox batch."""
        out: list[tuple[str, str | None, str | None]] = []
        programs: list[int] = []
        for strategy, completion in responses:
            if strategy == PROGRAM:
                _, program = split_strategy(f"{tag(PROGRAM)}{completion.text.strip()}")
                programs.append(len(out))
                out.append((program, None, None))
            else:
                answer = extract(completion.text, example)
                out.append((completion.text, answer,
                            None if answer is not None else "no answer found"))
        if programs:
            from magdi_lightning.scoring.pot import answer_text
            from magdi_lightning.scoring.sandbox import run_programs

            results = await asyncio.to_thread(run_programs, [out[i][0] for i in programs])
            for i, result in zip(programs, results):
                if result.ok and result.value is not None:
                    out[i] = (out[i][0], extract(answer_text(result.value), example), None)
                else:
                    out[i] = (out[i][0], None, f"program failed: {result.error_type}")
        return out

    def _filter(self, nodes: list[Node]) -> list[Node]:
        if self.keep_correct_only:
            nodes = [node for node in nodes if node.is_correct]
        if self.one_per_strategy:
            first: dict[str | None, Node] = {}
            for node in nodes:
                first.setdefault(node.strategy, node)
            nodes = list(first.values())
        return nodes
