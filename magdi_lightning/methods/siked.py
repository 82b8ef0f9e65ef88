"""SIKeD's self-guided iterations (Adarsh et al., 2024), as pure functions of graphs.

The teacher's distillation data is, per question and strategy, its first correct
solution (:func:`teacher_data`). Iteration 1 trains on it. After each iteration the
student samples solutions for every training question with each strategy's tag forced;
its correct ones (programs checked in the sandbox; least-to-most ones only if they show
their sub-questions), at most one per question and strategy, become training data
(:func:`student_graphs`). The next mixture (:func:`mix`) is the student's correct samples
plus teacher data, decided per (question, strategy): ``adaptive`` adds the teacher's
solution in strategy s for every question the student failed *with s*; ``all`` adds
every teacher solution. ``selection`` then keeps every example (``combined``) or one per
question, the strategy of highest priority (``<strategy>-biased``). alpha, the teacher
share of the mixture's examples, falls as the student improves.

All of this follows the reference code (shivam0109/SIKeD, dataset_creation/): teacher
data ``create_data.py`` (``get_kd_data``, ``get_biased_kd_data``), student data
``iterative_data_creation/create-data-from-individual-strategies.py``, mixtures
``create-mixed-data.py`` (adaptive) and ``create-all-data.py`` (all).

The loop itself (training, sampling, resuming) is in :mod:`magdi_lightning.cli.siked`;
this module holds what can be tested on hand-built examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from magdi_lightning.data.tasks import StrategyTasks, correct_by_strategy
from magdi_lightning.evaluation.generation import answer_texts
from magdi_lightning.graph import Correctness, Node, ReasoningGraph
from magdi_lightning.questions import Question
from magdi_lightning.scoring.answers import answers_match, extract_answer
from magdi_lightning.strategies import LEAST_TO_MOST, is_least_to_most, split_strategy

__all__ = ["BIASED_PRIORITIES", "MIXING_MODES", "SELECTIONS", "TRAINING_TASKS", "Mixture",
           "mix", "student_graphs", "teacher_data"]

MIXING_MODES = ("adaptive", "all")
#: The reference's strategy order per biased data set: a question keeps its example of the
#: first strategy in this order that it has (create_data.py ``run_llama3``,
#: create-mixed-data.py ``get_biased_data``).
BIASED_PRIORITIES: dict[str, tuple[str, ...]] = {
    "cot": ("cot", "pot", "l2m"),
    "pot": ("pot", "cot", "l2m"),
    "l2m": ("l2m", "pot", "cot"),
}
SELECTIONS = ("combined", *(f"{strategy}-biased" for strategy in BIASED_PRIORITIES))
#: How SIKeD graphs become training pairs: every correct, strategy-tagged solution (each
#: side is already at most one per question and strategy).
TRAINING_TASKS = StrategyTasks(per_strategy=None)


def teacher_data(graphs: Sequence[ReasoningGraph], strategies: Sequence[str]
                 ) -> list[ReasoningGraph]:
    """The teacher's distillation data: each graph cut to the first correct node of each of
    ``strategies``, the reference's one solution per question and strategy out of its
    samples (create_data.py ``get_kd_data``); graphs left with none are dropped."""
    wanted = set(strategies)
    out = []
    for graph in graphs:
        nodes = [group[0] for strategy, group in correct_by_strategy(graph, 1).items()
                 if strategy in wanted]
        if nodes:
            out.append(ReasoningGraph(id=graph.id, question=graph.question,
                                      gold_answer=graph.gold_answer, task=graph.task,
                                      nodes=nodes, source=graph.source))
    return out


def student_graphs(questions: Sequence[Question], samples: dict[str, list[str]],
                   iteration: int) -> dict[str, ReasoningGraph]:
    """Graphs of the student's *correct* samples, keyed by question id.

    ``samples`` maps a question id to the student's tagged outputs (``[pot] ...``); each
    is scored like an evaluation answer, a least-to-most one counts only if it shows its
    sub-questions (:func:`~magdi_lightning.strategies.is_least_to_most`), and the first
    that passes per strategy is kept. Questions without one get no graph.
    """
    by_id = {question.id: question for question in questions}
    flat = [(qid, text) for qid, texts in samples.items() for text in texts]
    resolved = answer_texts([text for _, text in flat])
    kept: dict[str, dict[str, Node]] = {}
    for (qid, text), (strategy, answer_text) in zip(flat, resolved):
        question = by_id[qid]
        if strategy is None or strategy in kept.get(qid, {}):
            continue
        _, solution = split_strategy(text)
        if strategy == LEAST_TO_MOST and not is_least_to_most(solution):
            continue
        if not answers_match(answer_text, question.gold, question.task, question.choices):
            continue
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
    """An iteration's training graphs and what they are made of, counted in training
    examples (one per kept solution)."""

    graphs: list[ReasoningGraph]
    student_examples: int
    teacher_examples: int
    questions: int
    questions_solved_by_student: int
    teacher_questions: list[str] = field(default_factory=list)
    student_by_strategy: dict[str, int] = field(default_factory=dict)
    teacher_by_strategy: dict[str, int] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        """SIKeD's mixing rate: the share of the mixture's examples that are the teacher's
        (LLM) data, |D_LLM| / (|D_LLM| + |D_self|); 1 when it is all teacher data."""
        total = self.student_examples + self.teacher_examples
        return self.teacher_examples / total if total else 0.0

    @property
    def student_correct_share(self) -> float:
        """Share of the questions the student solved with at least one strategy."""
        return self.questions_solved_by_student / self.questions if self.questions else 0.0


def mix(questions: Sequence[Question], teacher: Sequence[ReasoningGraph],
        student: dict[str, ReasoningGraph], mode: str = "adaptive",
        selection: str = "combined") -> Mixture:
    """The mixture for the training ``questions`` from the teacher data
    (:func:`teacher_data`) and the student's correct graphs (keyed by question id, as
    :func:`student_graphs` gives; ``{}`` for iteration 1, which makes it all teacher data).

    Per (question, strategy s): ``adaptive`` adds the teacher's solution in s only if the
    student has none in s (create-mixed-data.py ``get_mixed_data``, run once per
    strategy); ``all`` adds it always (create-all-data.py ``get_all_data``). Only correct,
    strategy-tagged nodes count. ``combined`` keeps every example; ``<s>-biased`` keeps
    one per question, of the first strategy in :data:`BIASED_PRIORITIES` [s] that the
    question has, the student's solution before the teacher's within a strategy
    (``get_biased_data``). Questions left without an example have no graph.
    """
    if mode not in MIXING_MODES:
        raise ValueError(f"mode must be one of {MIXING_MODES}, got {mode!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    by_id = {graph.id: graph for graph in teacher}
    graphs: list[ReasoningGraph] = []
    counts: dict[str, Counter[str]] = {"student": Counter(), "teacher": Counter()}
    teacher_questions: list[str] = []
    for question in questions:
        own = _solutions(student.get(question.id))
        solved = {node.strategy for node in own}
        offered = [node for node in _solutions(by_id.get(question.id))
                   if mode == "all" or node.strategy not in solved]
        kept = _select([("student", n) for n in own] + [("teacher", n) for n in offered],
                       selection)
        if not kept:
            continue
        for side, node in kept:
            counts[side][node.strategy or ""] += 1
        if any(side == "teacher" for side, _ in kept):
            teacher_questions.append(question.id)
        source = by_id[question.id].source if question.id in by_id else {}
        graphs.append(ReasoningGraph(id=question.id, question=question.question,
                                     gold_answer=question.gold, task=question.task,
                                     nodes=[node for _, node in kept],
                                     source={**source, "siked_mix": mode,
                                             "siked_selection": selection}))
    return Mixture(graphs=graphs, student_examples=sum(counts["student"].values()),
                   teacher_examples=sum(counts["teacher"].values()), questions=len(questions),
                   questions_solved_by_student=sum(bool(_solutions(student.get(q.id)))
                                                   for q in questions),
                   teacher_questions=teacher_questions,
                   student_by_strategy=dict(sorted(counts["student"].items())),
                   teacher_by_strategy=dict(sorted(counts["teacher"].items())))


def _solutions(graph: ReasoningGraph | None) -> list[Node]:
    """A graph's training examples: its correct, strategy-tagged nodes."""
    if graph is None:
        return []
    return [node for group in correct_by_strategy(graph).values() for node in group]


def _select(candidates: list[tuple[str, Node]], selection: str) -> list[tuple[str, Node]]:
    if selection == "combined" or not candidates:
        return candidates
    order = BIASED_PRIORITIES[selection.removesuffix("-biased")]
    rank = {strategy: i for i, strategy in enumerate(order)}
    return [min(candidates, key=lambda pair: rank.get(pair[1].strategy or "", len(order)))]
