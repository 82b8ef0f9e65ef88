"""SIKeD's self-guided iterations (Adarsh et al., 2024), as pure functions of graphs.

Iteration 1 trains on strategy-tagged teacher solutions. After each iteration the
student samples solutions for every training question with each strategy's tag forced;
its correct ones (programs checked in the sandbox), at most one per question and
strategy, become training data. The next mixture is the student's correct samples plus
teacher data: only for the questions the student still fails (``adaptive``) or for all
(``all``). alpha, the teacher share of the mixture, falls as the student improves.

The loop itself (training, sampling, resuming) is in :mod:`magdi_lightning.cli.siked`;
this module holds what can be tested on hand-built examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from magdi_lightning.data.tasks import StrategyTasks
from magdi_lightning.evaluation.answers import answers_match, extract_answer
from magdi_lightning.evaluation.benchmarks import BenchmarkExample
from magdi_lightning.evaluation.generation import answer_texts
from magdi_lightning.graph import Correctness, Node, ReasoningGraph
from magdi_lightning.strategies import split_strategy

__all__ = ["MIXING_MODES", "TRAINING_TASKS", "Mixture", "mix", "student_graphs"]

MIXING_MODES = ("adaptive", "all")
#: How SIKeD graphs become training pairs: every correct, strategy-tagged solution (the
#: student's are already one per question and strategy).
TRAINING_TASKS = StrategyTasks(per_strategy=None)


def student_graphs(questions: Sequence[BenchmarkExample], samples: dict[str, list[str]],
                   iteration: int) -> dict[str, ReasoningGraph]:
    """Graphs of the student's *correct* samples, keyed by question id.

    ``samples`` maps a question id to the student's tagged outputs (``[pot] ...``); each
    is scored like an evaluation answer, and the first correct one per strategy is kept.
    Questions without a correct sample get no graph.
    """
    by_id = {question.id: question for question in questions}
    flat = [(qid, text) for qid, texts in samples.items() for text in texts]
    resolved = answer_texts([text for _, text in flat])
    kept: dict[str, dict[str, Node]] = {}
    for (qid, text), (strategy, answer_text) in zip(flat, resolved):
        question = by_id[qid]
        if strategy is None or strategy in kept.get(qid, {}):
            continue
        if not answers_match(answer_text, question.gold, question.task, question.choices):
            continue
        _, solution = split_strategy(text)
        kept.setdefault(qid, {})[strategy] = Node(
            id=f"student{iteration}.{strategy}", agent="student",
            model=f"student-iteration-{iteration}", round=0, reasoning=solution.strip(),
            answer=extract_answer(answer_text or "", question.task, question.choices),
            correctness=Correctness.CORRECT, strategy=strategy)
    return {qid: ReasoningGraph(id=qid, question=by_id[qid].question,
                                gold_answer=by_id[qid].gold, task=by_id[qid].task,
                                nodes=list(nodes.values()),
                                source={"siked": "student", "iteration": iteration})
            for qid, nodes in kept.items()}


@dataclass
class Mixture:
    """The next iteration's training graphs and what they are made of."""

    graphs: list[ReasoningGraph]
    student_examples: int
    teacher_examples: int
    questions: int
    questions_solved_by_student: int
    teacher_questions: list[str] = field(default_factory=list)

    @property
    def alpha(self) -> float:
        """Share of teacher examples in the mixture."""
        total = self.student_examples + self.teacher_examples
        return self.teacher_examples / total if total else 0.0

    @property
    def student_correct_share(self) -> float:
        return self.questions_solved_by_student / self.questions if self.questions else 0.0


def mix(teacher: Sequence[ReasoningGraph], student: dict[str, ReasoningGraph],
        mode: str = "adaptive") -> Mixture:
    """The next mixture from the teacher graphs of the training questions and the
    student's correct graphs (keyed by question id, as :func:`student_graphs` gives).

    ``adaptive``: teacher data only for questions the student solved with no strategy;
    ``all``: teacher data for every question. Example counts are training pairs: the
    correct, strategy-tagged solutions of each side (:data:`TRAINING_TASKS`).
    """
    if mode not in MIXING_MODES:
        raise ValueError(f"mode must be one of {MIXING_MODES}, got {mode!r}")
    builder = TRAINING_TASKS
    graphs: list[ReasoningGraph] = []
    student_examples = teacher_examples = 0
    teacher_questions: list[str] = []
    for graph in teacher:
        own = student.get(graph.id)
        nodes: list[Node] = []
        if own is not None:
            nodes += own.nodes
            student_examples += len(builder.tasks(own))
        if mode == "all" or own is None:
            nodes += graph.nodes
            teacher_examples += len(builder.tasks(graph))
            teacher_questions.append(graph.id)
        graphs.append(ReasoningGraph(id=graph.id, question=graph.question,
                                     gold_answer=graph.gold_answer, task=graph.task,
                                     nodes=nodes, source={**graph.source, "siked_mix": mode}))
    return Mixture(graphs=graphs, student_examples=student_examples,
                   teacher_examples=teacher_examples, questions=len(teacher),
                   questions_solved_by_student=sum(g.id in student for g in teacher),
                   teacher_questions=teacher_questions)
