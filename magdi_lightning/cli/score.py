"""``magdi-score``: score any predictions file, ours or a teacher's or a third party's.

``magdi-score --task {numeric,math,mc,yesno,pot} --input FILE.jsonl [--output-field output]
[--gold-field gold] [--choices-field choices] -o SCORED.jsonl`` writes every record with
``extracted`` and ``correct`` added (and ``sandbox_error`` for programs that failed) and
prints the accuracy with its 95% confidence interval. With ``--task pot`` the output
field holds a Python program (or a list of them, as in the PoT authors' files), run in the
sandbox and read as the PoT authors' script ``--pot-script`` (default ``gsm8k``) reads it:
its local ``ans`` through their executor and ``floatify_ans`` (a tuple or list gives its
first item, a dict its first value), the most frequent reading of a list of programs
(self-consistency); see :mod:`magdi_lightning.scoring.pot`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from magdi_lightning.errors import RecordError
from magdi_lightning.evaluation.metrics import Accuracy, accuracy
from magdi_lightning.graph import read_jsonl
from magdi_lightning.io import json_line, write_lines_atomically
from magdi_lightning.scoring.answers import answers_match, extract_answer
from magdi_lightning.scoring.pot import READINGS, programs_of
from magdi_lightning.scoring.pot import read_records as read_pot_records

__all__ = ["TASKS", "main", "score_records"]

#: Command-line task names and the answer family each is scored under.
TASKS = {"numeric": "numeric", "math": "math", "mc": "multiple_choice", "yesno": "yes_no",
         "pot": "numeric"}


def read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Each JSON object of a JSONL file with its line number; errors name file and line."""
    records = list(read_jsonl(path))
    for line_no, record in records:
        if not isinstance(record, dict):
            raise RecordError("a record must be a JSON object", file=str(path),
                                       line=line_no)
    if not records:
        raise RecordError("no records: the file is empty", file=str(path))
    return records


def _field(record: dict[str, Any], name: str, where: tuple[str, int],
           kinds: tuple[type, ...]) -> Any:
    if name not in record:
        raise RecordError("missing", file=where[0], line=where[1], field=name)
    value = record[name]
    if not isinstance(value, kinds):
        raise RecordError(f"must be {' or '.join(k.__name__ for k in kinds)}, got "
                                   f"{type(value).__name__}", file=where[0], line=where[1],
                                   field=name)
    return value


def _programs(value: Any, where: tuple[str, int], name: str) -> dict[str, Any]:
    """A PoT-shaped record holding the output's program(s), after checking them."""
    record = {"generated": value}
    try:
        programs_of(record)
    except ValueError:
        raise RecordError("must be a program or a non-empty list of programs",
                                   file=where[0], line=where[1], field=name) from None
    return record


def score_records(records: list[tuple[int, dict[str, Any]]], task: str, file: str,
                  output_field: str = "output", gold_field: str = "gold",
                  choices_field: str | None = None, pot_script: str = "gsm8k",
                  ) -> tuple[list[dict[str, Any]], Accuracy]:
    """Records with ``extracted`` and ``correct`` added, and their accuracy.

    Every record is checked before any program runs, so a bad record fails fast.
    """
    family = TASKS[task]
    text_kinds: tuple[type, ...] = (str, list) if task == "pot" else (str,)
    outputs, golds, choices = [], [], []
    for line_no, record in records:
        where = (file, line_no)
        output = _field(record, output_field, where, text_kinds)
        outputs.append(_programs(output, where, output_field) if task == "pot" else output)
        gold = _field(record, gold_field, where, (str, int, float, bool))
        golds.append(("yes" if gold else "no") if isinstance(gold, bool) else str(gold))
        choices.append(_field(record, choices_field, where, (list,)) if choices_field else None)

    if task == "pot":
        from magdi_lightning.scoring.sandbox import run_programs

        values, results = read_pot_records(outputs, READINGS[pot_script], run_programs)
        answers = [None if value is None else str(value) for value in values]
        # A question's error: its first failed program's, when no program gave an answer.
        errors = [None if value is not None else next(
            (r.error_type for r in mine if not r.ok), None) for value, mine in zip(values, results)]
    else:
        answers = list(outputs)
        errors = [None] * len(outputs)

    scored = []
    for (_, record), answer, gold, options, error in zip(records, answers, golds, choices,
                                                         errors):
        extracted = None if answer is None else extract_answer(answer, family, options)
        out = {**record, "extracted": extracted,
               "correct": answers_match(answer, gold, family, options)}
        if error is not None:
            out["sandbox_error"] = error
        scored.append(out)
    return scored, accuracy([r["correct"] for r in scored])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="magdi-score", description="Score a predictions JSONL file against gold answers.")
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--input", required=True, type=Path, help="predictions JSONL")
    parser.add_argument("--output-field", default="output",
                        help="field holding the model output (a program for --task pot)")
    parser.add_argument("--gold-field", default="gold", help="field holding the gold answer")
    parser.add_argument("--choices-field", default=None,
                        help="field holding the option texts (multiple choice, optional)")
    parser.add_argument("--pot-script", choices=sorted(READINGS), default="gsm8k",
                        help="--task pot: read each program's ans as the PoT authors' "
                        "run_<script>.py does (default: gsm8k)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="scored JSONL")
    args = parser.parse_args(argv)
    try:
        records = read_records(args.input)
        scored, result = score_records(records, args.task, str(args.input), args.output_field,
                                       args.gold_field, args.choices_field, args.pot_script)
        write_lines_atomically(args.output, (json_line(r) for r in scored))
    except (RecordError, OSError) as err:
        print(f"magdi-score: error: {err}", file=sys.stderr)
        return 2
    print(f"accuracy {result} on {args.input}; scored records in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
