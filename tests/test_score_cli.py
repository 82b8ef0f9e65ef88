"""magdi-score on hand-made and real prediction files; the Wilson interval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magdi_lightning.cli.score import main
from magdi_lightning.evaluation.metrics import Accuracy, wilson_interval


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_numeric_scoring_adds_fields_and_prints_accuracy(tmp_path, capsys) -> None:
    source = _write(tmp_path / "preds.jsonl", [
        {"id": 1, "output": "3 + 4 = 7. The answer is 7.", "gold": "7"},
        {"id": 2, "output": "So she pays $1,000.", "gold": 1000},
        {"id": 3, "output": "I think it is 12.", "gold": "13"},
    ])
    assert main(["--task", "numeric", "--input", str(source), "-o", str(tmp_path / "s.jsonl")]) == 0
    scored = _read(tmp_path / "s.jsonl")
    assert [r["extracted"] for r in scored] == ["7", "1000", "12"]
    assert [r["correct"] for r in scored] == [True, True, False]
    assert scored[0]["id"] == 1
    assert "66.67% (2/3)" in capsys.readouterr().out


@pytest.mark.parametrize(("task", "output", "gold", "expected"), [
    ("mc", "The answer is (b).", "B", "B"),
    ("yesno", "No, it cannot.", False, "no"),
    ("math", "so $x = \\boxed{\\frac{1}{2}}$", "0.5", "\\frac{1}{2}"),
])
def test_other_task_families(tmp_path, task, output, gold, expected) -> None:
    source = _write(tmp_path / "p.jsonl", [{"output": output, "gold": gold}])
    assert main(["--task", task, "--input", str(source), "-o", str(tmp_path / "s.jsonl")]) == 0
    (record,) = _read(tmp_path / "s.jsonl")
    assert record["extracted"] == expected and record["correct"] is True


def test_program_of_thought_runs_in_the_sandbox(tmp_path) -> None:
    source = _write(tmp_path / "pot.jsonl", [
        {"generated": ["a = 76\nb = 25\nans = a - b"], "answer": 51.0},
        {"generated": "import os\nans = os.listdir('/')", "answer": 1},
        {"generated": ["ans = 2 +"], "answer": 2},
    ])
    out = tmp_path / "s.jsonl"
    assert main(["--task", "pot", "--input", str(source), "--output-field", "generated",
                 "--gold-field", "answer", "-o", str(out)]) == 0
    scored = _read(out)
    assert scored[0]["correct"] is True and scored[0]["extracted"] == "51"
    assert scored[1]["correct"] is False and scored[1]["sandbox_error"] == "forbidden"
    # The PoT executor compiles the program inside the sandbox, so a SyntaxError is a
    # runtime failure of the executor (its reading is None either way).
    assert scored[2]["sandbox_error"] == "runtime" and scored[2]["extracted"] is None


def test_real_program_of_thought_file(tmp_path, shared_data, capsys) -> None:
    lines = (shared_data / "teachers" / "pot_codex_svamp.jsonl").read_text().splitlines()
    source = tmp_path / "svamp.jsonl"
    source.write_text("\n".join(lines[1:101]) + "\n")  # line 1 is the few-shot prompt
    out = tmp_path / "s.jsonl"
    assert main(["--task", "pot", "--input", str(source), "--output-field", "generated",
                 "--gold-field", "answer", "-o", str(out)]) == 0
    scored = _read(out)
    expected = sum(r["executed"] == r["answer"] for r in scored)
    assert sum(r["correct"] for r in scored) == expected
    assert f"({expected}/100)" in capsys.readouterr().out


def test_bad_record_names_file_line_and_field_and_writes_nothing(tmp_path, capsys) -> None:
    source = _write(tmp_path / "p.jsonl", [{"output": "7", "gold": "7"}, {"output": "7"}])
    out = tmp_path / "s.jsonl"
    out.write_text("previous results\n")
    assert main(["--task", "numeric", "--input", str(source), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{source}:2: field 'gold': missing" in err
    assert out.read_text() == "previous results\n"


def test_wilson_interval() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.27 < high < 0.32
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert str(Accuracy(1, 4)).startswith("25.00% (1/4), 95% CI [")
