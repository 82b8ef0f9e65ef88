"""Import TinyLLM's multiple-choice data with its two teachers' rationales.

A TinyLLM dataset directory (``arc``, ``obqa``, ``riddle``, ``piqa``, ``pubmedqa``,
``bioasq``) holds split files ``{dataset}_{split}.json`` (a JSON list or JSONL of
``{id, question, choices, answer}``, the answer being the text of one choice; PIQA's ids
are numbers) and rationale files ``llm/{split}_CoT_{k}.json``
(JSON lists of strings, file k covering split records 500k to 500k+499, in split order).
Each rationale string is (``\\n`` standing for a newline)::

    <FLAN-T5 rationale>\\n\\nQ: <question>\\nAnswer Choices:\\n(a) ...\\n(b) ...
    llama rationale: <LLaMA-2 rationale>

with a single space, not a line break, before ``llama rationale:``.

Each question becomes a one-round graph with one node per teacher and no edges (the
teachers answered independently). The data does not record the teachers' exact
checkpoints, so nodes name only the model families, FLAN-T5 and LLaMA-2.

A node's answer is the option the rationale explicitly states ("the answer is (b)",
"option (c) is correct", or "the answer is <text of a choice>"), and UNKNOWN when it
states none; the FLAN-T5 rationales always state one. The LLaMA-2 rationales are often
cut off or run on into invented follow-up questions, so only the text before such a
continuation is searched. The embedded question must match the split record's, which
catches rationale files that are out of step with the split.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from magdi_lightning.errors import preview
from magdi_lightning.graph import Correctness, Node, ReasoningGraph
from magdi_lightning.scoring.answers import CHOICE_LETTERS
from magdi_lightning.sources._common import UniqueIds, Where, build_graph, load_json, load_records

__all__ = ["import_tinyllm", "tinyllm_choices", "tinyllm_question"]

_LLAMA_MARKER = " llama rationale: "
_QUESTION_MARKER = "\n\nQ: "
_CHOICES_MARKER = "\nAnswer Choices:\n"
_RATIONALE_FILE = re.compile(r"(?P<split>.+)_CoT_(?P<k>\d{1,6})\.json")
# Where a LLaMA-2 rationale stops answering and starts inventing the next question.
_CONTINUATION = re.compile(r"\n\s*(?:Q\s*[.:\d]|Question\b|#)")
# Explicit commitments: "the answer is (b)", "Answer: c.", "option (c) is correct",
# "the answer is <text of a choice>". ASCII case folding, so "(İ)" is no option letter.
_ANSWER_IS = re.compile(
    r"\b(?:answer\s+is\s*:?|answer\s*:)\s*(?:option\s*)?"
    r"(?:\((?P<paren>[a-j])\)|(?P<bare>[a-j])(?=\s*(?:[.,;!]|$)))", re.I | re.M | re.A)
_OPTION_CORRECT = re.compile(r"\boption\s*\(?(?P<letter>[a-j])\)?\s+is\s+(?:the\s+)?"
                             r"(?:correct|right|best)\b", re.I | re.A)
_ANSWER_TEXT = re.compile(r"\banswer\s+is\s*:?\s*(?P<text>[^\n.]+)", re.I | re.A)


def import_tinyllm(path: str | os.PathLike[str], *,
                   split: str = "train") -> Iterator[ReasoningGraph]:
    """Yield one graph per question of a TinyLLM dataset directory's ``split``.

    Raises :class:`RecordError` when a file is missing or malformed, when the
    rationale files hold a different number of records than the split, or when a
    rationale belongs to a different question than its split record.
    """
    return _graphs(Path(path), split)


def _graphs(directory: Path, split: str) -> Iterator[ReasoningGraph]:
    dataset = directory.name
    split_file = directory / f"{dataset}_{split}.json"
    if not split_file.is_file():
        raise Where(str(directory)).error(
            f"no split file {split_file.name} (expected a TinyLLM dataset directory such as "
            "tinyllm/arc)")
    records = load_records(split_file)
    rationales = _rationales(directory / "llm", split)
    if len(rationales) != len(records):
        raise Where(str(directory / "llm")).error(
            f"rationale files hold {len(rationales)} rationales but {split_file.name} holds "
            f"{len(records)} records; they must match one to one")
    ids = UniqueIds()
    for index, ((where, record), (rationale_where, rationale)) in enumerate(
            zip(records, rationales, strict=True)):
        graph = _graph(record, where, rationale, rationale_where, f"{dataset}-{split}",
                       {"format": "tinyllm", "file": split_file.name, "index": index,
                        "rationale_file": Path(rationale_where.file).name})
        ids.claim(graph.id, where)
        yield graph


def _rationales(llm_dir: Path, split: str) -> list[tuple[Where, str]]:
    """Every rationale of the split, in order, from ``{split}_CoT_0.json`` onwards."""
    numbered: dict[int, Path] = {}
    if llm_dir.is_dir():
        for file in llm_dir.iterdir():
            match = _RATIONALE_FILE.fullmatch(file.name)
            if match and match["split"] == split:
                numbered[int(match["k"])] = file
    if not numbered or sorted(numbered) != list(range(len(numbered))):
        raise Where(str(llm_dir)).error(
            f"expected rationale files {split}_CoT_0.json, {split}_CoT_1.json, ... without "
            f"gaps; found {sorted(file.name for file in numbered.values())}")
    located = []
    for k in range(len(numbered)):
        entries = load_json(numbered[k])
        if not isinstance(entries, list):
            raise Where(str(numbered[k])).error("must be a JSON list of strings")
        for i, entry in enumerate(entries):
            where = Where(str(numbered[k]), f"rationale {i}")
            if not isinstance(entry, str):
                raise where.error("must be a string")
            located.append((where, entry))
    return located


def _graph(record: Any, where: Where, rationale: str, rationale_where: Where, prefix: str,
           source: dict[str, Any]) -> ReasoningGraph:
    question, choices, gold = _question(record, where)
    flan, embedded, llama = _split_rationale(rationale, rationale_where)
    if " ".join(embedded.split()) != " ".join(question.split()):
        raise rationale_where.error(
            f"is for question {preview(embedded)}, but {where.record} of the split is "
            f"{preview(question)}: the rationale files are out of step with the split")
    nodes = [_node("flan_t5", "FLAN-T5", flan, choices, gold),
             _node("llama2", "LLaMA-2", llama, choices, gold)]
    return build_graph(where, id=f"{prefix}-{record['id']}",
                       question=tinyllm_question(question, choices), gold_answer=gold,
                       task="multiple_choice", nodes=nodes, source=source)


def tinyllm_question(stem: str, choices: list[str] | tuple[str, ...]) -> str:
    """The question as TinyLLM's code prompts it (its data_utils ``prepare_input``):
    ``{stem}\\nAnswer Choices:\\n(a) {first}\\n(b) {second}...``."""
    options = "\n".join(f"({letter.lower()}) {choice}"
                        for letter, choice in zip(CHOICE_LETTERS, choices, strict=False))
    return f"{stem}{_CHOICES_MARKER}{options}"


def tinyllm_choices(question: str) -> list[str] | None:
    """The option texts of a question written by :func:`tinyllm_question`, or ``None``
    when it is not in that layout (no ``Answer Choices:`` block of ``(a)``, ``(b)``, ...
    lines at its end)."""
    _, found, block = question.rpartition(_CHOICES_MARKER)
    lines = block.split("\n")
    if not found or not 2 <= len(lines) <= len(CHOICE_LETTERS):
        return None
    labels = [f"({letter.lower()}) " for letter in CHOICE_LETTERS[:len(lines)]]
    if not all(line.startswith(label) for line, label in zip(lines, labels)):
        return None
    return [line[len(label):] for line, label in zip(lines, labels)]


def _question(record: Any, where: Where) -> tuple[str, list[str], str]:
    """The question, its choices and the gold letter, after checking the record."""
    if not isinstance(record, dict):
        raise where.error("must be an object {id, question, choices, answer}")
    # PIQA's split files number their records ("id": 0); the other sets name them.
    if isinstance(record.get("id"), int) and not isinstance(record["id"], bool):
        record = {**record, "id": str(record["id"])}
    for name in ("id", "question", "answer"):
        if not isinstance(record.get(name), str) or not record[name]:
            raise where.error("must be a non-empty string", field=name)
    choices = record.get("choices")
    if not (isinstance(choices, list) and 2 <= len(choices) <= len(CHOICE_LETTERS)
            and all(isinstance(choice, str) for choice in choices)):
        raise where.error(f"must be a list of 2 to {len(CHOICE_LETTERS)} strings",
                          field="choices")
    if record["answer"] not in choices:
        raise where.error(f"{preview(record['answer'])} is not one of the choices",
                          field="answer")
    return record["question"], choices, CHOICE_LETTERS[choices.index(record["answer"])]


def _split_rationale(rationale: str, where: Where) -> tuple[str, str, str]:
    """(FLAN-T5 rationale, embedded question, LLaMA-2 rationale)."""
    head, found_llama, llama = rationale.partition(_LLAMA_MARKER)
    flan, found_question, block = head.partition(_QUESTION_MARKER)
    embedded, found_choices, _ = block.partition(_CHOICES_MARKER)
    if not (found_llama and found_question and found_choices):
        raise where.error("expected '<FLAN-T5 rationale>\\n\\nQ: <question>\\nAnswer "
                          "Choices:\\n... llama rationale: <LLaMA-2 rationale>'")
    return flan.strip(), embedded, llama.strip()


def _node(agent: str, model: str, reasoning: str, choices: list[str], gold: str) -> Node:
    answer = stated_choice(reasoning, choices)
    if answer is None:
        correctness = Correctness.UNKNOWN
    else:
        correctness = Correctness.CORRECT if answer == gold else Correctness.INCORRECT
    return Node(id=agent, agent=agent, round=0, reasoning=reasoning, answer=answer,
                correctness=correctness, model=model)


def stated_choice(rationale: str, choices: list[str]) -> str | None:
    """The option letter a rationale explicitly commits to, or ``None``.

    Stricter than :func:`~magdi_lightning.scoring.answers.extract_answer`: these
    rationales discuss every option ("(a) ... is not true"), so only an explicit
    statement counts, the last one before any invented follow-up question.
    """
    body = _CONTINUATION.split(rationale, maxsplit=1)[0]
    # (position, rank, letter): the last statement wins; at one position an explicit
    # letter ("the answer is b.") outranks a choice whose text happens to be "b".
    found = [(m.start(), 1, m["paren"] or m["bare"]) for m in _ANSWER_IS.finditer(body)]
    found += [(m.start(), 1, m["letter"]) for m in _OPTION_CORRECT.finditer(body)]
    lowered = [_plain(choice) for choice in choices]
    for m in _ANSWER_TEXT.finditer(body):
        text = _plain(m["text"].strip().strip("\"'*"))
        if text in lowered:
            found.append((m.start(), 0, CHOICE_LETTERS[lowered.index(text)]))
    letters = [letter.upper() for _, _, letter in sorted(found)
               if CHOICE_LETTERS.index(letter.upper()) < len(choices)]
    return letters[-1] if letters else None


def _plain(text: str) -> str:
    return text.strip().rstrip(".").strip().lower()
