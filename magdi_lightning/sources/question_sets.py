"""Evaluation benchmarks as one list type, whatever file format the questions come in.

A distilled student is judged on many public test sets, each stored its own way: GSM8K
hides the gold number after ``####``, AQuA and the LLM-Adapters files bury the options in
the prompt text, ECQA names the right option by its text, StrategyQA uses a JSON boolean.
Each loader here turns one of those formats into :class:`Question` records whose
``gold`` is already canonical for :mod:`magdi_lightning.scoring.answers`, so scoring
a student is always ``answers_match(extract_answer(output, task), gold, task)``:
numbers as ``normalize_number`` writes them ("51", not "51.0"), option letters upper
case, yes/no questions as "yes"/"no". Multiple-choice questions carry their options both
as ``choices`` and inside ``question`` ("... Answer Choices: (A) ... (B) ..."), so a
student can answer with a letter whatever the source's own option style was.

:func:`load_benchmark` finds the shared benchmarks' files under the shared data folder
(``$MAGDI_SHARED_DATA``, default ``../shared/data``); ``name="hf"`` loads any dataset
``datasets.load_dataset`` can read, from the hub or from local files. A malformed record
raises :class:`~magdi_lightning.graph.RecordError` naming the file, the record
(and line, for JSONL and CSV) and the field, as the graph importers do.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from magdi_lightning.errors import RecordError, preview
from magdi_lightning.graph import TASK_FAMILIES
from magdi_lightning.questions import Question
from magdi_lightning.scoring.answers import CHOICE_LETTERS, extract_answer, normalize_number
from magdi_lightning.sources._common import Where, load_json, load_records
from magdi_lightning.sources.tinyllm import tinyllm_question

__all__ = [
    "BENCHMARKS",
    "SHARED_DATA_ENV",
    "SHARED_FILES",
    "default_data_dir",
    "load_benchmark",
    "load_hf_benchmark",
    "load_piqa",
    "load_pubmedqa",
    "load_tinyllm_questions",
    "load_toy_questions",
]

#: Environment variable naming the shared data folder (as in ``conf/paths/default.yaml``).
SHARED_DATA_ENV = "MAGDI_SHARED_DATA"
_DEFAULT_DATA_DIR = "../shared/data"

#: Families whose canonical answers compare as plain strings, so gold must be canonical.
_CLOSED_TASKS = ("numeric", "multiple_choice", "yes_no")
_YES_NO_WORDS = ("yes", "no", "true", "false")

# LLM-Adapters' prompts: "Please choose the correct answer to the question: <q>\n\n
# Answer1: ... Answer2: ...\n\nAnswer format: answer1/answer2" (BoolQ: no options).
_MC_EVAL_PROMPT = re.compile(
    r"\s*Please [^:\n]*?question:\s*(?P<body>.+?)\s*\n\nAnswer format:[^\n]*\s*", re.S)
_MC_EVAL_GOLD = re.compile(r"answer(?P<number>10|[1-9])")
_AQUA_CHOICES = "Answer Choices:"
_AQUA_GOLD = re.compile(r"\((?P<letter>[a-j])\)", re.I)
# Du et al.'s MMLU prompt: "Can you answer ... possible? <q>: A) x, B) y, C) z, D) w
# [Answer in English only.] Explain your answer, putting the answer in the form (X) ..."
_DU_MMLU_WRAPPER = re.compile(
    r"\s*(?:Can you answer the following question as accurately as possible\?)?\s*"
    r"(?P<body>.+?)\s*(?:Answer in English only\.\s*)?Explain your answer\b.*", re.S)
_DU_MMLU_OPTIONS = ": A) "
_LETTER_GOLD = re.compile(r"\(?(?P<letter>[A-J])\)?")
_ECQA_OPTIONS = tuple(f"q_op{number}" for number in range(1, 6))
_PUBMEDQA_CHOICES = ("yes", "no", "maybe")  # TinyLLM's pubmedqa files, in this order


def _example(where: Where, source_fields: Mapping[str, str], **fields: Any) -> Question:
    """Build an example; an invariant failure is re-raised at ``where``, naming the field
    of the source record (``source_fields`` maps example fields to it) rather than ours."""
    try:
        return Question(**fields)
    except RecordError as err:
        raise where.error(err.reason, source_fields.get(err.field or "", err.field)) from None


def _with_choices(stem: str, choices: Sequence[str]) -> str:
    """The question as a student sees it: the stem, then "Answer Choices: (A) x (B) y"."""
    options = " ".join(f"({letter}) {choice}" for letter, choice in zip(CHOICE_LETTERS, choices))
    return f"{stem}\n{_AQUA_CHOICES} {options}"


#: How :func:`load_hf_benchmark` writes a question's options into it.
_LAYOUTS: dict[str, Callable[[str, Sequence[str]], str]] = {
    "inline": _with_choices, "tinyllm": tinyllm_question}


# ------------------------------------------------------------------------ record fields
def _value(record: Any, key: str, where: Where) -> Any:
    if not isinstance(record, Mapping):
        raise where.error(f"must be an object with field {key!r}, got {type(record).__name__}")
    if record.get(key) is None:
        raise where.error("is missing", field=key)
    return record[key]


def _text(record: Any, key: str, where: Where) -> str:
    """A required non-blank string field, stripped."""
    value = _value(record, key, where)
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"must be a non-empty string, got {preview(value)}", field=key)
    return value.strip()


def _number(record: Any, key: str, where: Where) -> str:
    """A numeric gold answer (a JSON number or a number in text) in canonical form."""
    value = _value(record, key, where)
    number = None if isinstance(value, bool) else normalize_number(str(value))
    if number is None:
        raise where.error(f"must be a number, got {preview(value)}", field=key)
    return number


def _yes_no(record: Any, key: str, where: Where) -> str:
    """A boolean gold answer (``true``, "false", "yes", "No") as "yes" or "no"."""
    value = _value(record, key, where)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not (isinstance(value, str) and value.strip().lower() in _YES_NO_WORDS):
        raise where.error(f"must be true/false or yes/no, got {preview(value)}", field=key)
    return str(extract_answer(value, "yes_no"))


def _letter(pattern: re.Pattern[str], value: Any, key: str, where: Where) -> str:
    """The option letter of a gold answer written the way ``pattern`` expects: its group
    ``letter`` is the letter itself, its group ``number`` a 1-based option number."""
    match = pattern.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise where.error(f"{preview(value)} does not name an option the way this file does "
                          f"({pattern.pattern})", field=key)
    groups = match.groupdict()
    if groups.get("number"):
        return CHOICE_LETTERS[int(groups["number"]) - 1]
    return groups["letter"].upper()


def _split_at(text: str, markers: Sequence[str]) -> list[str]:
    """``text`` cut at each marker in turn, each searched after the previous one; stops at
    the first marker not found. Options are found this way, in order, because option texts
    themselves hold brackets and commas ("(a) 5(√3 + 1(b) ...", "A) 46,XX, B) 47,XXX")."""
    pieces, start = [], 0
    for marker in markers:
        at = text.find(marker, start)
        if at < 0:
            break
        pieces.append(text[start:at])
        start = at + len(marker)
    pieces.append(text[start:])
    return pieces


def _choice_question(stem: str, block: str, markers: Sequence[str], where: Where,
                     key: str) -> tuple[str, tuple[str, ...]]:
    """The question with its options in our format, and the options, from a question stem
    and an option list that opens with ``markers[0]``."""
    leading, *options = _split_at(block, markers)
    if not stem.strip() or leading.strip() or len(options) < 2:
        raise where.error(f"expected a question, then at least two options, the first "
                          f"opening with {markers[0]!r}", field=key)
    choices = tuple(option.strip() for option in options)
    return _with_choices(stem.strip(), choices), choices


# ------------------------------------------------------------------------ shared readers
def _read_gsm8k(path: Path, dataset: str) -> list[Question]:
    """GSM8K ``{question, answer}``: the gold number follows the last ``####``."""
    examples = []
    for index, (where, record) in enumerate(load_records(path)):
        solution = _text(record, "answer", where)
        _, marker, final = solution.rpartition("####")
        gold = normalize_number(final) if marker else None
        if gold is None:
            raise where.error(f"must end in '#### <number>', got {preview(final or solution)}",
                              field="answer")
        examples.append(_example(where, {"gold": "answer"}, id=f"{dataset}-{index}",
                                 question=_text(record, "question", where), gold=gold,
                                 task="numeric", metadata={"solution": solution}))
    return examples


def _read_word_problems(path: Path, dataset: str) -> list[Question]:
    """PAL's ``{input, target}`` files (SVAMP, ASDiv, MultiArith): a numeric target."""
    return [_example(where, {"gold": "target"}, id=f"{dataset}-{index}",
                     question=_text(record, "input", where),
                     gold=_number(record, "target", where), task="numeric")
            for index, (where, record) in enumerate(load_records(path))]


def _read_aqua(path: Path, dataset: str) -> list[Question]:
    """PAL's AQuA ``{input, target}``: "...?Answer Choices:(a) x(b) y..." and "(b)"."""
    def split(record: Any, where: Where) -> tuple[str, str]:
        stem, _, block = _text(record, "input", where).partition(_AQUA_CHOICES)
        return stem, block

    return _read_choice_records(path, dataset, split, "input",
                                [f"({letter.lower()})" for letter in CHOICE_LETTERS],
                                _AQUA_GOLD, "target")


def _read_choice_records(path: Path, dataset: str,
                         split: Callable[[Any, Where], tuple[str, str]], text_field: str,
                         markers: Sequence[str], gold_pattern: re.Pattern[str],
                         gold_field: str) -> list[Question]:
    """Multiple-choice records whose options sit in one text field: ``split`` cuts it into
    the stem and the options block, ``markers`` open the options, ``gold_pattern`` reads
    the gold option from ``gold_field``."""
    examples = []
    for index, (where, record) in enumerate(load_records(path)):
        stem, block = split(record, where)
        question, choices = _choice_question(stem, block, markers, where, text_field)
        gold = _letter(gold_pattern, _value(record, gold_field, where), gold_field, where)
        examples.append(_example(where, {"gold": gold_field, "choices": text_field},
                                 id=f"{dataset}-{index}", question=question, gold=gold,
                                 task="multiple_choice", choices=choices))
    return examples


def _read_math500(path: Path, dataset: str) -> list[Question]:
    """MATH500 ``{problem, solution, answer, subject, level, unique_id}``: LaTeX answers,
    kept as written (``math-verify`` decides equality when scoring)."""
    examples = []
    for where, record in load_records(path):
        example_id = f"{dataset}-{_text(record, 'unique_id', where)}"
        question, gold = _text(record, "problem", where), _text(record, "answer", where)
        metadata = {key: record.get(key) for key in ("solution", "subject", "level")}
        examples.append(_example(where, {"gold": "answer"}, id=example_id, question=question,
                                 gold=gold, task="math", metadata=metadata))
    return examples


def _mc_eval_body(record: Any, where: Where) -> str:
    """An LLM-Adapters instruction without its fixed preamble and "Answer format" line
    (``input`` and ``output`` are empty or restate the answer, so they are not read)."""
    instruction = _text(record, "instruction", where)
    match = _MC_EVAL_PROMPT.fullmatch(instruction)
    if match is None:
        raise where.error("expected 'Please ... question: <question>' ending in an "
                          f"'Answer format:' line, got {preview(instruction)}",
                          field="instruction")
    return match["body"]


def _read_mc_eval(path: Path, dataset: str) -> list[Question]:
    """LLM-Adapters' ARC and OpenBookQA: options "Answer1: x Answer2: y" in the
    instruction, gold "answer3" (the third option)."""
    def split(record: Any, where: Where) -> tuple[str, str]:
        stem, _, block = _mc_eval_body(record, where).rpartition("\n\n")
        return stem, block

    return _read_choice_records(
        path, dataset, split, "instruction",
        [f"Answer{number}:" for number in range(1, len(CHOICE_LETTERS) + 1)],
        _MC_EVAL_GOLD, "answer")


def _read_boolq(path: Path, dataset: str) -> list[Question]:
    """LLM-Adapters' BoolQ: the question alone (no passage), gold "true"/"false"."""
    return [_example(where, {"gold": "answer", "question": "instruction"},
                     id=f"{dataset}-{index}", question=_mc_eval_body(record, where),
                     gold=_yes_no(record, "answer", where), task="yes_no")
            for index, (where, record) in enumerate(load_records(path))]


def _read_strategyqa(path: Path, dataset: str) -> list[Question]:
    """StrategyQA ``{qid, question, answer: bool, facts, decomposition, ...}``."""
    examples = []
    for where, record in load_records(path):
        example_id = f"{dataset}-{_text(record, 'qid', where)}"
        question, gold = _text(record, "question", where), _yes_no(record, "answer", where)
        metadata = {key: record.get(key) for key in ("term", "facts", "decomposition")}
        examples.append(_example(where, {"gold": "answer"}, id=example_id, question=question,
                                 gold=gold, task="yes_no", metadata=metadata))
    return examples


def _read_ecqa(path: Path, dataset: str) -> list[Question]:
    """ECQA's CSV: options ``q_op1..q_op5``, gold ``q_ans`` given as an option's text.

    A repeated option (ten test questions list "studio" twice) is kept once: with both
    copies, answering either letter would be right but only one could be gold.
    """
    examples = []
    for where, row in _csv_rows(path, ("q_no", "q_text", "q_ans", *_ECQA_OPTIONS)):
        choices = tuple(dict.fromkeys(_text(row, key, where) for key in _ECQA_OPTIONS))
        answer = _text(row, "q_ans", where)
        if answer not in choices:
            raise where.error(f"{preview(answer)} is not one of the options {list(choices)}",
                              field="q_ans")
        examples.append(_example(
            where, {"choices": "q_op1"}, id=f"{dataset}-{_text(row, 'q_no', where)}",
            question=_with_choices(_text(row, "q_text", where), choices),
            gold=CHOICE_LETTERS[choices.index(answer)], task="multiple_choice",
            choices=choices, metadata={"concept": row.get("q_concept"),
                                       "explanation": row.get("taskB")}))
    return examples


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[Where, dict[str, Any]]]:
    """The rows of a CSV file with a header, located by the line each row starts on."""
    file = os.fspath(path)
    with open(file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
            missing = [column for column in columns if column not in header]
            if missing:
                raise RecordError(f"header lacks column(s) {missing}", file=file,
                                           line=1, field=missing[0])
            end = reader.line_num
            for index, row in enumerate(reader):
                yield Where(file, f"row {index}", end + 1), row
                end = reader.line_num
        except (csv.Error, UnicodeDecodeError) as err:
            raise RecordError(f"unreadable CSV: {err}", file=file,
                                       line=reader.line_num) from None


def _read_du_mmlu(path: Path, dataset: str) -> list[Question]:
    """The questions of a Du et al. MMLU debate log ``{prompt: [contexts, gold letter]}``;
    the options "A) x, B) y" follow the question in the prompt."""
    log = load_json(path)
    if not isinstance(log, dict):
        raise Where(os.fspath(path)).error(
            "a Du et al. debate log must be a JSON object {question: [agent_contexts, gold]}")
    markers = [f"{', ' if letter != 'A' else ''}{letter}) " for letter in CHOICE_LETTERS]
    examples = []
    for index, (prompt, entry) in enumerate(log.items()):
        where = Where(os.fspath(path), f"question {index} {preview(prompt)}")
        if not (isinstance(entry, list) and len(entry) == 2):
            raise where.error("value must be a two-item list [agent_contexts, gold_answer]")
        wrapped = _DU_MMLU_WRAPPER.fullmatch(prompt)
        body = wrapped["body"] if wrapped else prompt
        stem, _, block = body.partition(_DU_MMLU_OPTIONS)
        question, choices = _choice_question(stem, markers[0] + block, markers, where,
                                             "question")
        examples.append(_example(where, {"gold": "gold_answer", "choices": "question"},
                                 id=f"{dataset}-{index}", question=question,
                                 gold=_letter(_LETTER_GOLD, entry[1], "gold_answer", where),
                                 task="multiple_choice", choices=choices,
                                 metadata={"prompt": prompt}))
    return examples


# ------------------------------------------------------------------------ Hugging Face
def load_hf_benchmark(path: str, split: str, question_field: str, answer_field: str,
                      task: str, name: str | None = None, data_files: Any = None,
                      answer_regex: str | None = None,
                      choices_field: str | list[str] | None = None,
                      layout: str = "inline", **dataset_options: Any) -> list[Question]:
    """Any dataset ``datasets.load_dataset(path, name, data_files=..., split=...)`` reads.

    ``path`` is a hub id ("openai/gsm8k") or a builder with local files ("json", "csv"
    plus ``data_files``). The gold answer is the ``answer_field`` value, first cut to the
    first group (or the whole match) of ``answer_regex`` when given, then put in canonical
    form by :func:`extract_answer` for ``task`` (so GSM8K's "... #### 72" needs no regex).
    For multiple choice, ``choices_field`` names a list of option texts or an ARC-style
    ``{text: [...], label: [...]}``, or is a list of columns holding one option each
    (PIQA's ``[sol1, sol2]``); the gold may then be an option index, a label, a letter or
    an option's text. ``layout`` writes the options into the question: ``inline`` as
    "Answer Choices: (A) x (B) y", ``tinyllm`` as TinyLLM's code prompts them. IDs are
    ``<path>[/<name>]:<split>-<row>``. ``dataset_options`` go to ``load_dataset``
    (``cache_dir``, ``revision``, ...).
    """
    if task not in TASK_FAMILIES:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASK_FAMILIES)}")
    if layout not in _LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(_LAYOUTS)}")
    from datasets import load_dataset  # imported here: it takes seconds and few need it

    dataset = load_dataset(path, name, data_files=data_files, split=split, **dataset_options)
    file = data_files if isinstance(data_files, str) else path
    option_fields = ([choices_field] if isinstance(choices_field, str)
                     else list(choices_field or []))
    fields = [question_field, answer_field, *option_fields]
    missing = [key for key in fields if key not in dataset.column_names]
    if missing:
        raise RecordError(f"no such column(s) {missing}; columns: "
                                   f"{dataset.column_names}", file=file, field=missing[0])
    pattern = re.compile(answer_regex) if answer_regex else None
    prefix = f"{path}/{name}:{split}" if name else f"{path}:{split}"
    read = partial(_hf_example, question_field=question_field, answer_field=answer_field,
                   task=task, pattern=pattern, choices_field=choices_field,
                   layout=_LAYOUTS[layout])
    return [read(row, Where(file, f"{split} row {index}"), f"{prefix}-{index}")
            for index, row in enumerate(dataset)]


def _hf_example(row: dict[str, Any], where: Where, example_id: str, *, question_field: str,
                answer_field: str, task: str, pattern: re.Pattern[str] | None,
                choices_field: str | list[str] | None,
                layout: Callable[[str, Sequence[str]], str]) -> Question:
    question = _text(row, question_field, where)
    choices, labels = _hf_choices(row, choices_field, where) if choices_field else (None, [])
    gold = _hf_gold(_value(row, answer_field, where), task, choices, labels, pattern)
    if gold is None:
        raise where.error(f"{preview(row[answer_field])} states no {task} answer",
                          field=answer_field)
    if choices:
        question = layout(question, choices)
    first_choice = choices_field if isinstance(choices_field, str) else (choices_field or [""])[0]
    source_fields = {"gold": answer_field, "question": question_field,
                     "choices": first_choice or "choices"}
    return _example(where, source_fields, id=example_id, question=question, gold=gold,
                    task=task, choices=choices)


def _hf_choices(row: dict[str, Any], key: str | list[str],
                where: Where) -> tuple[tuple[str, ...], list[str]]:
    """Option texts and their labels from a list, from ``{text: [...], label: [...]}``, or
    (``key`` a list of columns) from one column per option."""
    if not isinstance(key, str):
        return tuple(_text(row, column, where) for column in key), []
    value = _value(row, key, where)
    texts, labels = value, []
    if isinstance(value, dict):
        texts, labels = value.get("text"), value.get("label") or []
    if not (isinstance(texts, list) and all(isinstance(text, str) for text in texts)):
        raise where.error(f"must be a list of option texts or {{text: [...], label: [...]}}, "
                          f"got {preview(value)}", field=key)
    return tuple(text.strip() for text in texts), [str(label) for label in labels]


def _hf_gold(raw: Any, task: str, choices: tuple[str, ...] | None, labels: list[str],
             pattern: re.Pattern[str] | None) -> str | None:
    """The canonical gold answer of one row, or ``None`` when none can be read."""
    if isinstance(raw, bool):
        raw = "yes" if raw else "no"
    if choices and isinstance(raw, int) and 0 <= raw < len(choices):
        return CHOICE_LETTERS[raw]
    text = str(raw)
    if pattern is not None:
        match = pattern.search(text)
        if match is None:
            return None
        text = match[1] if pattern.groups else match[0]
    if text.strip() in labels:
        return CHOICE_LETTERS[labels.index(text.strip())]
    return extract_answer(text, task, choices)


# ------------------------------------------------------------------------ TinyLLM
def load_tinyllm_questions(path: str, **dataset_options: Any) -> list[Question]:
    """The questions of a TinyLLM split file (``arc_test.json``, ``piqa_test.json``,
    ``pubmedqa_test.json``, ``bioasq_test.json``, ...: a JSON list or JSONL of ``{id,
    question, choices, answer}``, the answer being an option's text), read with
    ``datasets.load_dataset("json", data_files=path)`` as TinyLLM's data_utils reads them.

    Each question is written as TinyLLM's code prompts it ("...\\nAnswer Choices:\\n(a)
    ..."), its gold is the letter of the answer's option (scored against an answer given
    as the letter or as the option's text). IDs are ``<file stem>-<record id>``.
    ``dataset_options`` go to ``load_dataset`` (``cache_dir``, ...).
    """
    from datasets import load_dataset  # imported here: it takes seconds and few need it

    dataset = load_dataset("json", data_files=path, split="train", **dataset_options)
    stem = Path(path).name.removesuffix(".jsonl").removesuffix(".json")
    return [_tinyllm_example(row, Where(path, f"record {index}"), stem)
            for index, row in enumerate(dataset)]


def _tinyllm_example(row: dict[str, Any], where: Where, stem: str) -> Question:
    record_id = _value(row, "id", where)
    choices = _value(row, "choices", where)
    if not (isinstance(choices, list) and all(isinstance(c, str) and c.strip()
                                              for c in choices)):
        raise where.error(f"must be a list of option texts, got {preview(choices)}",
                          field="choices")
    answer = _value(row, "answer", where)
    if answer not in choices:
        raise where.error(f"{preview(answer)} is not one of the choices", field="answer")
    _text(row, "question", where)  # checked; used as written, as the importer uses it
    return _example(where, {"gold": "answer"}, id=f"{stem}-{record_id}",
                    question=tinyllm_question(row["question"], choices),
                    gold=CHOICE_LETTERS[choices.index(answer)], task="multiple_choice",
                    choices=tuple(choices))


def load_piqa(path: str = "ybisk/piqa", split: str = "validation",
              **options: Any) -> list[Question]:
    """PIQA (two solutions per goal) in TinyLLM's prompt layout: a TinyLLM split file
    (``piqa_test.json``) when ``path`` is a file, else a ``datasets`` dataset with PIQA's
    columns (``goal``, ``sol1``, ``sol2``, ``label``; the hub's test split hides its
    labels as -1, which is refused: score the validation split). ``options`` go to
    :func:`load_hf_benchmark` (``name``, ``data_files``, ``cache_dir``, ...)."""
    if Path(path).is_file():
        return load_tinyllm_questions(path, **options)
    return load_hf_benchmark(path, split, question_field="goal", answer_field="label",
                             task="multiple_choice", choices_field=["sol1", "sol2"],
                             layout="tinyllm", **options)


def load_pubmedqa(path: str = "qiaojin/PubMedQA", name: str | None = "pqa_labeled",
                  split: str = "train", **options: Any) -> list[Question]:
    """PubMedQA's expert-labelled questions (yes / no / maybe) as TinyLLM prompts them:
    a TinyLLM split file (``pubmedqa_test.json``) when ``path`` is a file, else a
    ``datasets`` dataset with PubMedQA's columns (``pubid``, ``question``, ``context:
    {contexts: [...]}``, ``final_decision``), whose question is written as TinyLLM's files
    write it: the abstract's passages, then the question, joined by " \\n ". ``options``
    go to ``datasets.load_dataset`` (``data_files``, ``cache_dir``, ...)."""
    if Path(path).is_file():
        return load_tinyllm_questions(path, **options)
    from datasets import load_dataset  # imported here: it takes seconds and few need it

    dataset = load_dataset(path, name, split=split, **options)
    file = str(options.get("data_files") or path)
    examples = []
    for index, row in enumerate(dataset):
        where = Where(file, f"{split} row {index}")
        contexts = _value(_value(row, "context", where), "contexts", where)
        if not (isinstance(contexts, list) and all(isinstance(c, str) for c in contexts)):
            raise where.error(f"must be a list of passages, got {preview(contexts)}",
                              field="context.contexts")
        examples.append(_tinyllm_example({
            "id": _value(row, "pubid", where), "choices": list(_PUBMEDQA_CHOICES),
            "question": " \n ".join([*contexts, _text(row, "question", where)]),
            "answer": _value(row, "final_decision", where)}, where, "pubmedqa"))
    return examples


# ------------------------------------------------------------------------ registry
Loader = Callable[..., list[Question]]

_SHARED: dict[str, tuple[str, Callable[[Path, str], list[Question]]]] = {
    "gsm8k": ("gsm8k/test.jsonl", _read_gsm8k),
    "svamp": ("math_eval/svamp.jsonl", _read_word_problems),
    "asdiv": ("math_eval/asdiv.jsonl", _read_word_problems),
    "multiarith": ("math_eval/mawpsmultiarith.jsonl", _read_word_problems),
    "aqua": ("math_eval/aqua.jsonl", _read_aqua),
    "math500": ("math_eval/math500.jsonl", _read_math500),
    "arc_challenge": ("mc_eval/arc_challenge_test.json", _read_mc_eval),
    "openbookqa": ("mc_eval/openbookqa_test.json", _read_mc_eval),
    "boolq": ("mc_eval/boolq_test.json", _read_boolq),
    "strategyqa": ("reconcile/sqa_dev.json", _read_strategyqa),
    "ecqa": ("reconcile/ecqa_test.csv", _read_ecqa),
    "mmlu_debates": ("debates/du_mmlu_qwen3-0.6b_3agents_3rounds.json", _read_du_mmlu),
}

#: Each shared benchmark's file, relative to the shared data folder.
SHARED_FILES: dict[str, str] = {name: file for name, (file, _) in _SHARED.items()}



def load_toy_questions(num_questions: int = 200, seed: int = 1,
                       **options: Any) -> list[Question]:
    """The questions of the toy world (SYNTHETIC, :mod:`magdi_lightning.sources.toy`).

    A question set that needs no data at all, for teacher runs and tests on any machine.
    ``options`` are further :class:`~magdi_lightning.sources.toy.ToyWorldConfig` fields.
    The questions and ids are exactly those of the toy graphs with the same settings, so
    ``seed=0`` with the default options gives the embedded default training data's
    questions (useful to compare a student's answers with the teachers' discussions), and
    another seed gives mostly, not entirely, different ones (the toy world is small).
    """
    from magdi_lightning.sources.toy import ToyWorldConfig, generate_toy_graphs

    config = ToyWorldConfig(num_questions=num_questions, seed=seed, **options)
    return [Question(id=graph.id, question=graph.question, gold=graph.gold_answer,
                             task="numeric", metadata={"synthetic": True})
            for graph in generate_toy_graphs(config)]


#: Benchmark name -> loader. Shared loaders take ``path`` (the file); "hf" takes the
#: arguments of :func:`load_hf_benchmark`; "tinyllm" and "bioasq" those of
#: :func:`load_tinyllm_questions`, "piqa" of :func:`load_piqa`, "pubmedqa" of
#: :func:`load_pubmedqa`; "toy" those of :func:`load_toy_questions`. IDs
#: start with the benchmark name.
BENCHMARKS: dict[str, Loader] = {
    **{name: partial(reader, dataset=name) for name, (_, reader) in _SHARED.items()},
    "hf": load_hf_benchmark,
    "tinyllm": load_tinyllm_questions,
    "piqa": load_piqa,
    "pubmedqa": load_pubmedqa,
    # BioASQ's yes/no questions have no public hub copy: TinyLLM's own split files.
    "bioasq": load_tinyllm_questions,
    "toy": load_toy_questions,
}


def default_data_dir() -> Path:
    """The shared data folder: ``$MAGDI_SHARED_DATA``, else ``../shared/data`` (relative to
    the working directory, as ``paths.shared_data`` in the Hydra config)."""
    return Path(os.environ.get(SHARED_DATA_ENV, _DEFAULT_DATA_DIR))


def load_benchmark(name: str, /, data_dir: str | Path | None = None, limit: int | None = None,
                   **options: Any) -> list[Question]:
    """The examples of benchmark ``name``, in file order, at most ``limit`` of them.

    A shared benchmark reads ``options["path"]`` if given, else its file under
    ``data_dir`` (default :func:`default_data_dir`); "hf" needs the arguments of
    :func:`load_hf_benchmark` (``name`` is positional-only, so its dataset ``name=``
    passes through). Every record is checked even with a ``limit``, so a
    malformed file fails the same way at any size. Raises ``ValueError`` for an unknown
    name, :class:`RecordError` for a malformed record or repeated id.
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if name in SHARED_FILES and "path" not in options:
        options["path"] = _shared_file(name, data_dir)
    examples = BENCHMARKS[name](**options)
    _check_unique_ids(examples, os.fspath(options.get("path", name)))
    return examples if limit is None else examples[:limit]


def _shared_file(name: str, data_dir: str | Path | None) -> Path:
    path = Path(data_dir if data_dir is not None else default_data_dir()) / SHARED_FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"benchmark {name!r}: no file {path}; pass data_dir= or set "
                                f"{SHARED_DATA_ENV} to the shared data folder")
    return path


def _check_unique_ids(examples: list[Question], file: str) -> None:
    """Reject repeated ids: results are keyed by id, so a repeat would overwrite one."""
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise RecordError(f"duplicate example id {example.id!r}", file=file,
                                       field="id")
        seen.add(example.id)
