"""Text-to-text tasks built from MAG graphs, for methods that train on (prompt, target)
pairs rather than on whole graphs.

TinyLLM trains one student on several tasks at once, each marked by an instruction
prefix: answer the question (``predict:``), and reproduce each teacher's rationale under
that teacher's own prefix (``explain:``, ``rationale:``), one loss per teacher. SIKeD
trains on solutions that open with their strategy's tag. A builder turns one graph into
its tasks; the data module tokenizes them and the
:class:`~magdi_lightning.methods.multitask.TaskDistillationModule` weighs one loss per task name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.scoring.answers import CHOICE_LETTERS
from magdi_lightning.sources.tinyllm import tinyllm_choices
from magdi_lightning.strategies import tag

__all__ = ["ANSWER", "ANSWER_TARGETS", "SOLVE", "StrategyTasks", "TaskBuilder", "TextTask",
           "TinyLLMTasks", "correct_by_strategy", "rationale_task"]

#: Name of the answer task; rationale tasks are named by :func:`rationale_task`.
ANSWER = "answer"
#: Name of SIKeD's one task (question -> tagged solution).
SOLVE = "solve"
#: What :class:`TinyLLMTasks` learns as the answer: the stored gold, or the option's text.
ANSWER_TARGETS = ("gold", "option_text")


def rationale_task(teacher: str) -> str:
    """The task name of ``teacher``'s rationales."""
    return f"rationale/{teacher}"


@dataclass(frozen=True)
class TextTask:
    """One training pair: ``prefix + question`` is the prompt, ``target`` the text to learn."""

    task: str
    prefix: str
    question: str
    target: str


class TaskBuilder:
    """Turns one graph into its training pairs; ``evaluation_prefix`` is the prefix of the
    task held-out accuracy is measured on, ``task_patterns`` (``fnmatch`` patterns) the
    task names it makes, so a task weight naming none of them is caught as a typo."""

    evaluation_prefix: str = ""
    task_patterns: ClassVar[tuple[str, ...]] = ()

    def tasks(self, graph: ReasoningGraph) -> list[TextTask]:
        raise NotImplementedError

    def describe(self) -> str:
        """Everything the tasks depend on, for the tokenization cache key."""
        return f"{type(self).__name__}{sorted(vars(self).items())}"


class TinyLLMTasks(TaskBuilder):
    """TinyLLM's multi-task pairs: the answer task (``answer_prefix`` + question -> gold
    answer) and one rationale task per teacher (that teacher's prefix + question -> its
    rationale). Only correct rationales are learnt unless ``correct_only`` is off.

    Each teacher needs a prefix of its own, or one prompt would have two targets: TinyLLM's
    code marks its first teacher (FLAN-T5) ``explain:`` and its second (LLaMA-2)
    ``rationale:``. ``teacher_prefixes`` maps teacher names to prefixes; a teacher not
    named gets ``rationale_prefix`` with ``{teacher}`` replaced by its name. Two teachers
    of one graph with the same prefix, or a teacher with the answer's, are an error.

    ``answer_target``: ``gold`` learns the graph's gold answer as stored (an option letter
    for multiple choice); ``option_text`` learns a multiple-choice graph's gold option
    *text*, as TinyLLM's code does (its label is the record's ``answer``, the text of the
    right choice); other graphs keep their gold answer. ``cut_at`` maps teacher names to
    a marker: that teacher's rationale target ends before the marker's first occurrence,
    trailing spaces dropped (TinyLLM cuts its FLAN-T5 rationales before ``Thus, the
    answer is``); a rationale without the marker is learnt whole.
    """

    task_patterns = (ANSWER, rationale_task("*"))

    def __init__(self, answer_prefix: str = "predict: ",
                 rationale_prefix: str = "explain ({teacher}): ",
                 teacher_prefixes: dict[str, str] | None = None,
                 answer_target: str = "gold", cut_at: dict[str, str] | None = None,
                 correct_only: bool = True) -> None:
        if answer_target not in ANSWER_TARGETS:
            raise ValueError(f"answer_target must be one of {ANSWER_TARGETS}, got "
                             f"{answer_target!r}")
        if any(not marker for marker in (cut_at or {}).values()):
            raise ValueError("cut_at markers must be non-empty strings")
        self.answer_prefix = answer_prefix
        self.rationale_prefix = rationale_prefix
        self.teacher_prefixes = dict(teacher_prefixes or {})
        self.answer_target = answer_target
        self.cut_at = dict(cut_at or {})
        self.correct_only = correct_only
        self.evaluation_prefix = answer_prefix

    def prefix_of(self, teacher: str) -> str:
        """The instruction prefix of ``teacher``'s rationale task."""
        return self.teacher_prefixes.get(teacher,
                                         self.rationale_prefix.replace("{teacher}", teacher))

    def answer_of(self, graph: ReasoningGraph) -> str:
        """The answer task's target for ``graph`` under ``answer_target``."""
        if self.answer_target == "gold" or graph.task != "multiple_choice":
            return graph.gold_answer
        choices = tinyllm_choices(graph.question)
        index = CHOICE_LETTERS.find(graph.gold_answer)
        if choices is None or not 0 <= index < len(choices):
            raise ValueError(
                f"graph {graph.id!r}: answer_target=option_text needs the question to end "
                "with TinyLLM's 'Answer Choices:\\n(a) ...' block and the gold answer to be "
                f"one of its letters; got gold {graph.gold_answer!r}")
        return choices[index]

    def rationale_of(self, node: Node) -> str:
        """``node``'s rationale as its teacher's target (cut at its ``cut_at`` marker)."""
        marker = self.cut_at.get(node.agent)
        if marker is None or marker not in node.reasoning:
            return node.reasoning
        return node.reasoning.split(marker, 1)[0].rstrip()

    def tasks(self, graph: ReasoningGraph) -> list[TextTask]:
        pairs = [TextTask(ANSWER, self.answer_prefix, graph.question, self.answer_of(graph))]
        owner = {self.answer_prefix: ANSWER}
        for node in graph.nodes:
            if node.is_correct or not self.correct_only:
                prefix = self.prefix_of(node.agent)
                task = rationale_task(node.agent)
                if owner.setdefault(prefix, task) != task:
                    raise ValueError(
                        f"graph {graph.id!r}: {task} and {owner[prefix]} share the prefix "
                        f"{prefix!r}, so one prompt would have two targets; give each "
                        "teacher its own (tasks.teacher_prefixes, or {teacher} in "
                        "tasks.rationale_prefix)")
                pairs.append(TextTask(task, prefix, graph.question, self.rationale_of(node)))
        return pairs


def _check_per_strategy(per_strategy: int | None) -> None:
    if per_strategy is not None and per_strategy < 1:
        raise ValueError("per_strategy must be >= 1 or None")


def correct_by_strategy(graph: ReasoningGraph, per_strategy: int | None = None
                        ) -> dict[str, list[Node]]:
    """A graph's correct nodes that carry a strategy, grouped by strategy in node order,
    at most the first ``per_strategy`` of each (``None``: all)."""
    _check_per_strategy(per_strategy)
    kept: dict[str, list[Node]] = {}
    for node in graph.nodes:
        if node.is_correct and node.strategy:
            group = kept.setdefault(node.strategy, [])
            if per_strategy is None or len(group) < per_strategy:
                group.append(node)
    return kept


class StrategyTasks(TaskBuilder):
    """SIKeD's pairs: question -> ``[strategy] solution`` for every correct node that has a
    strategy, at most ``per_strategy`` per question and strategy (``None``: all)."""

    task_patterns = (SOLVE,)

    def __init__(self, per_strategy: int | None = 1) -> None:
        _check_per_strategy(per_strategy)
        self.per_strategy = per_strategy

    def tasks(self, graph: ReasoningGraph) -> list[TextTask]:
        return [TextTask(SOLVE, "", graph.question, f"{tag(strategy)} {node.reasoning}")
                for strategy, nodes in correct_by_strategy(graph, self.per_strategy).items()
                for node in nodes]
