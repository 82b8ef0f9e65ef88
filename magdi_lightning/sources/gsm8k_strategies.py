"""Import published GSM8K solutions in SIKeD's three strategies, one graph per test question.

SIKeD distils chain-of-thought (``cot``), least-to-most (``l2m``) and program-of-thought
(``pot``) solutions. Without an LLM API here, real solutions in all three strategies for
the same questions exist only for GSM8K's test set, from three public sources (all in
``../shared/data``, see its README):

- ``cot``: ChatGPT's chains of thought (``teachers/cot_chatgpt_gsm8k_test.json``,
  AGI-Edgerunners/LLM-Adapters; ``{question, chain-of-thought, pred, answer}``, 771 of
  1,319 correct);
- ``l2m``: GSM8K's own "socratic" solutions (``gsm8k/test_socratic.jsonl``,
  openai/grade-school-math), human-written sub-question/answer steps, rewritten into the
  ``Sub-question k: ...`` form SIKeD's least-to-most filter expects
  (:func:`magdi_lightning.strategies.is_least_to_most`), calculator tags removed;
- ``pot``: Codex's programs (``teachers/pot_codex_gsm8k_test.jsonl``,
  wenhuchen/Program-of-Thoughts), whose answer is the published ``executed`` value (the
  sandbox reproduces all 1,318 of them, ``python -m benchmarks.sandbox_throughput``), read
  as :func:`~magdi_lightning.scoring.pot.answer_text` (``5.000000000000002`` is 5).

So two of the three strategies come from LLM teachers and one from people: the data is
real, but not the single-teacher sampling SIKeD's paper describes. Gold answers come from
``gsm8k/test.jsonl``. Each question becomes a one-round graph with one node per strategy
that has a solution for it (a strategy's file is joined by the question text, whitespace
and case ignored); correctness compares each node's answer with the gold one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.questions import question_key
from magdi_lightning.scoring.pot import answer_text
from magdi_lightning.sources._common import (
    UniqueIds,
    Where,
    build_graph,
    gold_and_task,
    judge,
    load_records,
    scalar_text,
    stable_id,
)

__all__ = ["import_gsm8k_strategies"]

_TASK = "numeric"
_CALCULATOR = re.compile(r"<<[^>]*>>")
_FINAL = re.compile(r"^####\s*(?P<answer>.+)$")
#: Strategy -> (teacher, model) named on its nodes.
_TEACHERS = {"cot": ("chatgpt", "ChatGPT"), "l2m": ("gsm8k_socratic", "human (GSM8K)"),
             "pot": ("codex", "Codex")}


def import_gsm8k_strategies(
        path: str | os.PathLike[str],
        gold: str = "gsm8k/test.jsonl",
        cot: str | None = "teachers/cot_chatgpt_gsm8k_test.json",
        l2m: str | None = "gsm8k/test_socratic.jsonl",
        pot: str | None = "teachers/pot_codex_gsm8k_test.jsonl") -> Iterator[ReasoningGraph]:
    """Yield one graph per question of ``gold``, with a node per strategy file that has it.

    ``path`` is the folder the other arguments are relative to (the shared data folder);
    a strategy set to ``None`` is left out, and a question no strategy file has is skipped.
    Raises :class:`RecordError` naming the file, record and field of the first
    malformed record, or of a question two records of one file both answer.
    """
    root = Path(path)
    readers = {"cot": _cot_node, "l2m": _l2m_node, "pot": _pot_node}
    files = {"cot": cot, "l2m": l2m, "pot": pot}
    solutions = {strategy: _by_question(root / name, readers[strategy])
                 for strategy, name in files.items() if name is not None}
    return _graphs(root / gold, solutions)


def _graphs(gold_file: Path, solutions: dict[str, dict[str, tuple[Where, Node]]]
            ) -> Iterator[ReasoningGraph]:
    ids = UniqueIds()
    for index, (where, record) in enumerate(load_records(gold_file)):
        question, raw_gold = _strings(record, where, "question", "answer")
        _, gold = gold_and_task(raw_gold, _TASK)
        key = question_key(question)
        nodes = []
        for by_question in solutions.values():
            if key in by_question:
                node = by_question[key][1]
                nodes.append(replace(node, correctness=judge(node.answer, gold, _TASK)))
        if not nodes:  # no strategy file has this question: nothing to learn from
            continue
        graph = build_graph(where, id=stable_id("gsm8k-strategies", question),
                            question=question, gold_answer=gold, task=_TASK, nodes=nodes,
                            source={"format": "gsm8k-strategies", "file": gold_file.name,
                                    "index": index, "raw_gold_answer": raw_gold})
        ids.claim(graph.id, where)
        yield graph


def _by_question(file: Path, reader: Any) -> dict[str, tuple[Where, Node]]:
    """A strategy file's nodes by question key (records without a question, such as the
    PoT file's prompt lines, are skipped)."""
    found: dict[str, tuple[Where, Node]] = {}
    for where, record in load_records(file):
        if isinstance(record, dict) and set(record) == {"prompt"}:
            continue
        (question,) = _strings(record, where, "question")
        key = question_key(question)
        if key in found:
            raise where.error(f"question answered twice (first in {found[key][0].record})",
                              field="question")
        found[key] = (where, reader(record, where))
    return found


def _strings(record: Any, where: Where, *names: str) -> list[str]:
    if not isinstance(record, dict):
        raise where.error(f"must be an object with {', '.join(names)}")
    for name in names:
        if not isinstance(record.get(name), str):
            raise where.error("must be a string", field=name)
    return [record[name] for name in names]


def _node(strategy: str, reasoning: str, answer: str | None) -> Node:
    teacher, model = _TEACHERS[strategy]
    return Node(id=strategy, agent=teacher, round=0, reasoning=reasoning, answer=answer,
                model=model, strategy=strategy)


def _cot_node(record: dict[str, Any], where: Where) -> Node:
    (text,) = _strings(record, where, "chain-of-thought")
    text = text.strip()
    text = text[2:].lstrip() if text.startswith("A:") else text
    return _node("cot", text, scalar_text(record.get("pred")))


def _l2m_node(record: dict[str, Any], where: Where) -> Node:
    """``<sub-question> ** <answer>`` lines, then ``#### <answer>``, as SIKeD's form."""
    (solution,) = _strings(record, where, "answer")
    steps, final = [], None
    for line in filter(None, (line.strip() for line in solution.split("\n"))):
        ending = _FINAL.match(line)
        if ending:
            final = ending["answer"].strip()
            continue
        asked, separator, answered = line.partition("**")
        if not separator:
            raise where.error(f"line {line[:40]!r} is neither '<sub-question> ** <answer>' nor "
                              "'#### <answer>'", field="answer")
        if not answered.strip():  # a sub-question asked twice, answered on the next line
            continue
        steps.append(f"Sub-question {len(steps) + 1}: {asked.strip()} "
                     f"{_CALCULATOR.sub('', answered).strip()}")
    if final is None:
        raise where.error("no final '#### <answer>' line", field="answer")
    return _node("l2m", "\n".join([*steps, f"The answer is {final}."]), final)


def _pot_node(record: dict[str, Any], where: Where) -> Node:
    programs = record.get("generated")
    if not (isinstance(programs, list) and programs and isinstance(programs[0], str)):
        raise where.error("must be a non-empty list of program strings", field="generated")
    executed = record.get("executed")
    answer = None if executed is None else (
        answer_text(executed) if isinstance(executed, float) else scalar_text(executed))
    return _node("pot", programs[0].strip(), answer)
