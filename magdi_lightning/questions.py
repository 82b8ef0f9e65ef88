"""The question type every layer shares, and the one key that joins questions across files.

Importers, teachers, data modules and evaluation all pass questions around; a question
knows its canonical gold answer (checked when it is built, so no loader can hand out one
that no answer could ever match). :func:`question_key` is the one normalisation used to
join the same question across benchmark files, debate logs and predictions, and to split
data by question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from magdi_lightning.errors import RecordError, preview
from magdi_lightning.graph import TASK_FAMILIES
from magdi_lightning.scoring.answers import CHOICE_LETTERS, extract_answer

__all__ = ["Question", "question_key"]

#: Families whose canonical answers compare as plain strings, so gold must be canonical.
_CLOSED_TASKS = ("numeric", "multiple_choice", "yes_no")
_WHITESPACE = re.compile(r"\s+")


def question_key(text: str) -> str:
    """The join key of a question: stripped, whitespace collapsed, lower-cased.

    Benchmark files and debate logs copy the same question with different line breaks,
    spacing and sometimes capitalisation; this key ignores exactly those differences and
    nothing else, so two different questions never share a key by accident.
    """
    return _WHITESPACE.sub(" ", text).strip().lower()


@dataclass(frozen=True)
class Question:
    """One evaluation question with its canonical gold answer.

    Construction checks what scoring relies on, so a loader cannot hand out a question
    that no student answer could ever match: ``task`` is a known family, ``gold`` is
    extractable (and already canonical for numeric, multiple-choice and yes/no tasks),
    and a multiple-choice gold letter names one of ``choices``. ``choices`` is ``None``
    for every other family, and may be ``None`` for multiple choice when the options exist
    only inside the question text. Errors are :class:`~magdi_lightning.errors.RecordError` with the
    offending field, for loaders to locate.
    """

    id: str
    question: str
    gold: str
    task: str
    choices: tuple[str, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _require(bool(self.id.strip()), "id", "must not be empty")
        _require(bool(self.question.strip()), "question", "must not be empty")
        _require(self.task in TASK_FAMILIES, "task",
                 f"must be one of {list(TASK_FAMILIES)}, got {self.task!r}")
        canonical = extract_answer(self.gold, self.task)
        _require(canonical is not None, "gold",
                 f"{preview(self.gold)} states no {self.task} answer")
        _require(self.task not in _CLOSED_TASKS or canonical == self.gold, "gold",
                 f"{preview(self.gold)} is not canonical for {self.task} (expected "
                 f"{canonical!r})")
        if self.task != "multiple_choice":
            _require(self.choices is None, "choices", f"a {self.task} question has no choices")
        elif self.choices is not None:
            self._check_choices(self.choices)

    def _check_choices(self, choices: tuple[str, ...]) -> None:
        _require(2 <= len(choices) <= len(CHOICE_LETTERS), "choices",
                 f"needs 2 to {len(CHOICE_LETTERS)} options, got {len(choices)}")
        _require(all(choice.strip() for choice in choices), "choices", "an option is empty")
        _require(self.gold in CHOICE_LETTERS[:len(choices)], "gold",
                 f"{self.gold!r} is not one of the {len(choices)} options")


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise RecordError(message, field=field_name)
