"""Import OpenAI's GSM8K ``example_model_solutions.jsonl``: four GPT-3 teachers per question.

Each JSONL line holds ``question``, ``ground_truth`` (a worked solution ending in
``A: <answer>``; ``#### <answer>`` is accepted too) and one object per teacher,
``{"is_correct": bool, "solution": str}``, keyed by the teacher's name
(``6b_finetuning``, ``6b_verification``, ``175b_finetuning``, ``175b_verification``;
any other names are accepted). Each question becomes a one-round graph with one node per
teacher and no edges: the teachers answered independently. Teachers named
``<size>b_...`` get the model name ``GPT-3 <SIZE>B``.

Correctness comes from the file's ``is_correct`` labels (made by the dataset's authors),
not from re-parsing, so a solution whose answer we cannot extract keeps its label; a
null label is UNKNOWN.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from magdi_lightning.graph import Correctness, Node, ReasoningGraph
from magdi_lightning.scoring.answers import extract_answer
from magdi_lightning.sources._common import (
    UniqueIds,
    Where,
    build_graph,
    gold_and_task,
    load_records,
    stable_id,
)

__all__ = ["import_gsm8k_solutions"]

_TASK = "numeric"
_GPT3_TEACHER = re.compile(r"(?P<size>\d+b)_.*", re.S)
_LABELS = {True: Correctness.CORRECT, False: Correctness.INCORRECT, None: Correctness.UNKNOWN}


def import_gsm8k_solutions(path: str | os.PathLike[str]) -> Iterator[ReasoningGraph]:
    """Yield one graph per line of an ``example_model_solutions.jsonl``-style file.

    Raises :class:`RecordError` naming the file, line and field of the first
    malformed record, or of a question that appears twice.
    """
    return _graphs(Path(path))


def _graphs(file: Path) -> Iterator[ReasoningGraph]:
    ids = UniqueIds()
    for index, (where, record) in enumerate(load_records(file)):
        graph = _graph(record, where, file, index)
        ids.claim(graph.id, where)
        yield graph


def _graph(record: Any, where: Where, file: Path, index: int) -> ReasoningGraph:
    if not isinstance(record, dict):
        raise where.error("must be an object with question, ground_truth and one "
                          "{is_correct, solution} object per teacher")
    for name in ("question", "ground_truth"):
        if not isinstance(record.get(name), str):
            raise where.error("must be a string", field=name)
    _, gold = gold_and_task(record["ground_truth"], _TASK)
    teachers = {key: value for key, value in record.items()
                if key not in ("question", "ground_truth")}
    if not teachers:
        raise where.error("no teacher solutions")
    nodes = [_node(name, solution, where) for name, solution in teachers.items()]
    return build_graph(where, id=stable_id(file.stem, record["question"]),
                       question=record["question"], gold_answer=gold, task=_TASK, nodes=nodes,
                       source={"format": "gsm8k-solutions", "file": file.name, "index": index,
                               "raw_gold_answer": record["ground_truth"]})


def _node(teacher: str, solution: Any, where: Where) -> Node:
    if not isinstance(solution, dict):
        raise where.error("must be an object {is_correct, solution}", field=teacher)
    text, label = solution.get("solution"), solution.get("is_correct")
    if not isinstance(text, str):
        raise where.error("must be a string", field=f"{teacher}.solution")
    if label is not None and not isinstance(label, bool):
        raise where.error("must be true, false or null", field=f"{teacher}.is_correct")
    gpt3 = _GPT3_TEACHER.fullmatch(teacher)
    return Node(id=teacher, agent=teacher, round=0, reasoning=text,
                answer=extract_answer(text, _TASK), correctness=_LABELS[label],
                model=f"GPT-3 {gpt3['size'].upper()}" if gpt3 else None)
