"""Strategy tags: parsing, program-of-thought outputs run in the sandbox, per-strategy
accuracy."""

from __future__ import annotations

import pytest

from magdi_lightning.evaluation.generation import Prediction, answer_texts
from magdi_lightning.evaluation.reports import strategy_report
from magdi_lightning.strategies import split_strategy, tag


@pytest.mark.parametrize(("text", "expected"), [
    ("[cot] 3 + 2 = 5. The answer is 5.", ("cot", "3 + 2 = 5. The answer is 5.")),
    ("  [l2m]\nQ1: ... A1: 5", ("l2m", "Q1: ... A1: 5")),
    ("[pot] ans = 3 + 2", ("pot", "ans = 3 + 2")),
    ("[pot]\n```python\nans = 3 + 2\n```\nDone.", ("pot", "ans = 3 + 2")),
    ("3 + 2 = 5 [cot]", (None, "3 + 2 = 5 [cot]")),  # a tag must open the output
    ("[xyz] 5", (None, "[xyz] 5")),                  # unknown tags are text
])
def test_split_strategy(text: str, expected: tuple[str | None, str]) -> None:
    assert split_strategy(text) == expected


def test_tag_rejects_unknown_strategies() -> None:
    assert tag("pot") == "[pot]"
    with pytest.raises(ValueError, match="unknown strategy"):
        tag("tot")


def test_programs_are_run_and_prose_is_read_as_written() -> None:
    outputs = ["[pot] a = 3\nans = a * 4", "[cot] 3 * 4 = 12. The answer is 12.",
               "The answer is 7.", "[pot] ans = 1 / 0", "[pot] import socket\nans = 1"]
    assert answer_texts(outputs) == [
        ("pot", "12"), ("cot", "3 * 4 = 12. The answer is 12."), (None, "The answer is 7."),
        ("pot", None), ("pot", None)]


def test_a_programs_float_noise_and_integral_floats_read_as_the_plain_answer() -> None:
    # Codex's published GSM8K programs give 5.000000000000002 for a gold 5 (9 of them do)
    outputs = ["[pot] ans = 0.1 * 3 * 10 / 3", "[pot] ans = 36 / 2", "[pot] ans = 7 / 4",
               "[pot] ans = 1 / 3"]
    assert [text for _, text in answer_texts(outputs)] == ["1", "18", "1.75", "0.333333"]


def _prediction(strategy: str | None, correct: bool) -> Prediction:
    return Prediction(id="q", question="q", output="", extracted=None, gold="1",
                      correct=correct, output_tokens=1, strategy=strategy)


def test_strategy_report_counts_choices_and_accuracy() -> None:
    report = strategy_report([_prediction("pot", True), _prediction("pot", False),
                              _prediction("cot", True), _prediction(None, False)])
    assert list(report) == ["cot", "none", "pot"]
    assert report["pot"]["chosen"] == 2 and report["pot"]["share"] == 0.5
    assert report["pot"]["accuracy"] == 0.5 and report["cot"]["accuracy"] == 1.0
    assert sum(r["share"] for r in report.values()) == 1.0


def test_strategy_report_is_empty_without_tags() -> None:
    assert strategy_report([_prediction(None, True)]) == {}
