"""Text-to-text tasks built from MAG graphs, for methods that train on (prompt, target)
pairs rather than on whole graphs.

TinyLLM trains one student on several tasks at once, each marked by an instruction
prefix: answer the question (``predict:``), and reproduce each teacher's rationale
(``explain:``), one loss per teacher. SIKeD trains on solutions that open with their
strategy's tag. A builder turns one graph into its tasks; the data module tokenizes
them and the :class:`~magdi_lightning.task_module.TaskDistillationModule` weighs one
loss per task name.
"""

from __future__ import annotations

from dataclasses import dataclass

from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.strategies import tag

__all__ = ["ANSWER", "StrategyTasks", "TaskBuilder", "TextTask", "TinyLLMTasks",
           "rationale_task"]

#: Name of the answer task; rationale tasks are named by :func:`rationale_task`.
ANSWER = "answer"


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
    task held-out accuracy is measured on."""

    evaluation_prefix: str = ""

    def tasks(self, graph: ReasoningGraph) -> list[TextTask]:
        raise NotImplementedError

    def describe(self) -> str:
        """Everything the tasks depend on, for the tokenization cache key."""
        return f"{type(self).__name__}{sorted(vars(self).items())}"


class TinyLLMTasks(TaskBuilder):
    """TinyLLM's multi-task pairs: the answer task (``answer_prefix`` + question -> gold
    answer) and one rationale task per teacher (``rationale_prefix`` + question -> that
    teacher's rationale; ``{teacher}`` in the prefix is replaced by the teacher's name,
    for students that should tell teachers apart). Only correct rationales are learnt
    unless ``correct_only`` is off."""

    def __init__(self, answer_prefix: str = "predict: ", rationale_prefix: str = "explain: ",
                 correct_only: bool = True) -> None:
        self.answer_prefix = answer_prefix
        self.rationale_prefix = rationale_prefix
        self.correct_only = correct_only
        self.evaluation_prefix = answer_prefix

    def tasks(self, graph: ReasoningGraph) -> list[TextTask]:
        pairs = [TextTask(ANSWER, self.answer_prefix, graph.question, graph.gold_answer)]
        for node in graph.nodes:
            if node.is_correct or not self.correct_only:
                pairs.append(TextTask(rationale_task(node.agent),
                                      self.rationale_prefix.replace("{teacher}", node.agent),
                                      graph.question, node.reasoning))
        return pairs


class StrategyTasks(TaskBuilder):
    """SIKeD's pairs: question -> ``[strategy] solution`` for every correct node that has a
    strategy, at most ``per_strategy`` per question and strategy (``None``: all)."""

    def __init__(self, per_strategy: int | None = 1) -> None:
        if per_strategy is not None and per_strategy < 1:
            raise ValueError("per_strategy must be >= 1 or None")
        self.per_strategy = per_strategy

    def tasks(self, graph: ReasoningGraph) -> list[TextTask]:
        kept: dict[str, list[Node]] = {}
        for node in graph.nodes:
            if node.is_correct and node.strategy:
                group = kept.setdefault(node.strategy, [])
                if self.per_strategy is None or len(group) < self.per_strategy:
                    group.append(node)
        return [TextTask("solve", "", graph.question, f"{tag(strategy)} {node.reasoning}")
                for strategy, nodes in kept.items() for node in nodes]
