"""Benchmark loaders: every shared evaluation set loads whole, with gold answers a student's
answer can be scored against; malformed files fail with located errors; configs compose."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from magdi_lightning import CONFIG_DIR
from magdi_lightning.errors import RecordError
from magdi_lightning.questions import Question
from magdi_lightning.scoring.answers import (
    CHOICE_LETTERS,
    answers_match,
    extract_answer,
    normalize_number,
)
from magdi_lightning.sources.question_sets import BENCHMARKS, SHARED_FILES, load_benchmark

#: Records per shared file, counted independently of the loaders (see test_record_counts).
EXPECTED_COUNTS = {
    "gsm8k": 1319, "svamp": 1000, "asdiv": 2096, "multiarith": 600, "aqua": 254,
    "math500": 500, "arc_challenge": 1172, "openbookqa": 500, "boolq": 3270,
    "strategyqa": 229, "ecqa": 2194, "mmlu_debates": 20,
}
EXPECTED_TASKS = {
    "gsm8k": "numeric", "svamp": "numeric", "asdiv": "numeric", "multiarith": "numeric",
    "aqua": "multiple_choice", "math500": "math", "arc_challenge": "multiple_choice",
    "openbookqa": "multiple_choice", "boolq": "yes_no", "strategyqa": "yes_no",
    "ecqa": "multiple_choice", "mmlu_debates": "multiple_choice",
}
CONFIGS = sorted(path.stem for path in (CONFIG_DIR / "benchmark").glob("*.yaml"))


@pytest.fixture(scope="module")
def loaded(shared_data: Path) -> dict[str, list[Question]]:
    """Every shared benchmark, loaded once for the module."""
    return {name: load_benchmark(name, data_dir=shared_data) for name in SHARED_FILES}


# ------------------------------------------------------------------------ shared data
def test_record_counts_match_the_files(shared_data: Path) -> None:
    """The expected counts are what the files hold, counted without the loaders."""
    for name, file in SHARED_FILES.items():
        path = shared_data / file
        if path.suffix == ".jsonl":
            count = sum(1 for line in path.open(encoding="utf-8") if line.strip())
        elif path.suffix == ".csv":
            count = sum(1 for _ in csv.DictReader(path.open(newline="", encoding="utf-8")))
        else:
            count = len(json.loads(path.read_text(encoding="utf-8")))
        assert count == EXPECTED_COUNTS[name], name


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_shared_benchmark_loads_every_record(
        name: str, loaded: dict[str, list[Question]]) -> None:
    examples = loaded[name]
    assert len(examples) == EXPECTED_COUNTS[name]
    assert {example.task for example in examples} == {EXPECTED_TASKS[name]}
    ids = [example.id for example in examples]
    assert len(set(ids)) == len(ids)
    assert all(example_id.startswith(f"{name}-") for example_id in ids)


def _student_output(example: Question) -> str:
    """A student answer stating the gold answer the way a model would."""
    return {"numeric": f"So she has {example.gold} left. The answer is {example.gold}.",
            "math": f"Therefore the result is $\\boxed{{{example.gold}}}$.",
            "multiple_choice": f"Comparing the options, the answer is ({example.gold}).",
            "yes_no": f"Yes and no are both plausible at first, but the answer is "
                      f"{example.gold}."}[example.task]


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_gold_answers_are_canonical_and_scorable(
        name: str, loaded: dict[str, list[Question]]) -> None:
    for example in loaded[name]:
        if example.task == "numeric":
            assert normalize_number(example.gold) == example.gold
        elif example.task == "multiple_choice":
            assert example.choices is not None
            assert example.gold in CHOICE_LETTERS[:len(example.choices)]
            index = CHOICE_LETTERS.index(example.gold)
            assert f"({example.gold}) {example.choices[index]}" in example.question
            assert example.question.count("Answer Choices: (A) ") == 1
        elif example.task == "yes_no":
            assert example.gold in ("yes", "no")
        assert example.task == "multiple_choice" or example.choices is None
        predicted = extract_answer(_student_output(example), example.task)
        assert answers_match(predicted, example.gold, example.task), (example.id, predicted)


def test_wrong_answers_do_not_match(loaded: dict[str, list[Question]]) -> None:
    arc = loaded["arc_challenge"][0]
    wrong = "A" if arc.gold != "A" else "B"
    assert not answers_match(extract_answer(f"The answer is ({wrong}).", arc.task), arc.gold,
                             arc.task)
    svamp = loaded["svamp"][0]
    assert not answers_match(extract_answer("The answer is 52.", "numeric"), svamp.gold,
                             "numeric")


def test_known_records_parse_exactly(loaded: dict[str, list[Question]]) -> None:
    gsm8k, svamp, aqua = loaded["gsm8k"][0], loaded["svamp"][0], loaded["aqua"][0]
    assert (gsm8k.id, gsm8k.gold) == ("gsm8k-0", "18")
    assert gsm8k.metadata["solution"].endswith("#### 18")
    assert svamp.gold == "51"  # stored as 51.0
    assert aqua.choices == ("5(√3 + 1", "6(√3 + √2", "7(√3 – 1", "8(√3 – 2", "None of these")
    assert aqua.gold == "A" and aqua.question.startswith("A car is being driven")
    math = loaded["math500"][0]
    assert math.id == "math500-test/precalculus/807.json"
    assert math.gold == "\\left( 3, \\frac{\\pi}{2} \\right)"
    arc = loaded["arc_challenge"][0]
    assert arc.gold == "C" and arc.choices is not None and len(arc.choices) == 4
    assert arc.choices[2] == "Planetary days will become shorter."
    assert arc.question.startswith("An astronomer observes")
    assert sorted({len(e.choices or ()) for e in loaded["arc_challenge"]}) == [3, 4, 5]
    boolq = loaded["boolq"][0]
    assert (boolq.question, boolq.gold) == ("does ethanol take more energy make that produces?",
                                            "no")
    sqa = loaded["strategyqa"][0]
    assert (sqa.id, sqa.gold) == ("strategyqa-e0044a7b4d146d611e73", "no")
    ecqa = loaded["ecqa"][0]
    assert ecqa.choices == ("greedy", "worry", "have knowledge", "take charge", "boss")
    assert ecqa.gold == "C"
    mmlu = loaded["mmlu_debates"][0]
    assert mmlu.question == ("Which of the following is an example of monosomy?\n"
                             "Answer Choices: (A) 46,XX (B) 47,XXX (C) 69,XYY (D) 45,X")
    assert mmlu.gold == "D"


def test_ecqa_keeps_a_repeated_option_once(loaded: dict[str, list[Question]]) -> None:
    (studio,) = [e for e in loaded["ecqa"] if e.question.startswith("The person was in the "
                                                                     "drawing room")]
    assert studio.choices == ("house in england", "studio", "large house", "mansion")
    assert studio.gold == "B"


def test_limit_takes_the_first_examples(shared_data: Path,
                                        loaded: dict[str, list[Question]]) -> None:
    assert load_benchmark("gsm8k", data_dir=shared_data, limit=5) == loaded["gsm8k"][:5]
    assert load_benchmark("mmlu_debates", data_dir=shared_data, limit=0) == []
    assert len(load_benchmark("mmlu_debates", data_dir=shared_data, limit=1000)) == 20
    with pytest.raises(ValueError, match="limit"):
        load_benchmark("gsm8k", data_dir=shared_data, limit=-1)


def test_shared_data_env_is_the_default_folder(shared_data: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGDI_SHARED_DATA", str(shared_data))
    assert len(load_benchmark("strategyqa")) == 229


# ------------------------------------------------------------------------ errors
def test_unknown_benchmark_lists_known_names() -> None:
    with pytest.raises(ValueError, match="unknown benchmark 'gsm9k'") as info:
        load_benchmark("gsm9k")
    assert all(name in str(info.value) for name in BENCHMARKS)


def test_missing_shared_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="MAGDI_SHARED_DATA") as info:
        load_benchmark("svamp", data_dir=tmp_path)
    assert str(tmp_path / "math_eval" / "svamp.jsonl") in str(info.value)


def _jsonl(*records: Any) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


_MC_OK = {"instruction": "Please choose the correct answer to the question: Which is red?"
                         "\n\nAnswer1: sky Answer2: grass Answer3: blood Answer4: snow"
                         "\n\nAnswer format: answer1/answer2/answer3/answer4",
          "input": "", "output": "", "answer": "answer3"}
_GSM8K_OK = {"question": "1+1?", "answer": "1+1=2\n#### 2"}
_AQUA_OK = {"input": "2+2?Answer Choices:(a) 3(b) 4(c) 5", "target": "(b)"}
_MMLU_PROMPT = ("Can you answer the following question as accurately as possible? 2+2?: "
                "A) 3, B) 4, C) 5, D) 6 Explain your answer, putting the answer in the form "
                "(X) at the end of your response.")

# (benchmark, file name, content, line or None, record label, field)
MALFORMED = [
    ("gsm8k", "t.jsonl", _jsonl(_GSM8K_OK, {"question": "q", "answer": "no marker 3"}),
     2, "record 1", "answer"),
    ("gsm8k", "t.jsonl", _jsonl(_GSM8K_OK) + "\n" + _jsonl({"answer": "#### 3"}),
     3, "record 1", "question"),
    ("gsm8k", "t.jsonl", _jsonl(_GSM8K_OK) + '{"question": "q", \n', 2, None, None),
    ("svamp", "s.jsonl", _jsonl({"input": "q", "target": 1}, {"input": "q", "target": "x"}),
     2, "record 1", "target"),
    ("svamp", "s.jsonl", _jsonl({"input": "q", "target": 1}, ["q", 1]), 2, "record 1", None),
    ("aqua", "a.jsonl", _jsonl(_AQUA_OK, {"input": "2+2? (a) 4 (b) 5", "target": "(a)"}),
     2, "record 1", "input"),
    ("aqua", "a.jsonl", _jsonl({**_AQUA_OK, "target": "(e)"}), 1, "record 0", "target"),
    ("aqua", "a.jsonl", _jsonl({**_AQUA_OK, "target": "b"}), 1, "record 0", "target"),
    ("math500", "m.jsonl", _jsonl({"problem": "p", "answer": "1", "unique_id": "u"},
                                  {"problem": "p", "answer": " ", "unique_id": "v"}),
     2, "record 1", "answer"),
    ("arc_challenge", "arc.json", json.dumps([_MC_OK, {**_MC_OK, "answer": "answer5"}]),
     None, "record 1", "answer"),
    ("openbookqa", "obqa.json",
     json.dumps([{**_MC_OK, "instruction": "Which is red?\n\nAnswer1: sky Answer2: blood"}]),
     None, "record 0", "instruction"),
    ("openbookqa", "obqa.json", json.dumps([{**_MC_OK, "instruction": _MC_OK["instruction"]
                                             .replace("Answer1: sky ", "")}]),
     None, "record 0", "instruction"),
    ("boolq", "b.json", json.dumps([{**_MC_OK, "answer": "maybe"}]), None, "record 0",
     "answer"),
    ("strategyqa", "sqa.json", json.dumps([{"qid": "a", "question": "q?", "answer": True},
                                           {"qid": "b", "answer": False}]),
     None, "record 1", "question"),
    ("strategyqa", "sqa.json", json.dumps([{"qid": "a", "question": "q?", "answer": 1}]),
     None, "record 0", "answer"),
    ("mmlu_debates", "du.json", json.dumps({_MMLU_PROMPT: [[], "E"]}), None, "question 0",
     "gold_answer"),
    ("mmlu_debates", "du.json", json.dumps({"2+2? (A) 3 (B) 4": [[], "B"]}), None,
     "question 0", "question"),
]


@pytest.mark.parametrize(("name", "file", "content", "line", "record", "field"), MALFORMED)
def test_malformed_records_name_file_line_and_field(
        name: str, file: str, content: str, line: int | None, record: str | None,
        field: str | None, tmp_path: Path) -> None:
    path = tmp_path / file
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RecordError) as info:
        load_benchmark(name, path=path)
    error = info.value
    assert (error.file, error.line, error.field) == (str(path), line, field), str(error)
    assert record is None or f"(in {record}" in str(error)
    assert str(path) in str(error)


_ECQA_HEADER = (",q_no,q_concept,q_text,q_op1,q_op2,q_op3,q_op4,q_op5,q_ans,taskA_pos,"
                "taskA_neg,taskB\n")


def test_ecqa_errors_give_the_line_a_row_starts_on(tmp_path: Path) -> None:
    good = '0,id0,c,Where?,a,b,c,d,e,c,p,n,"two\nlines"\n'
    bad = "1,id1,c,Where?,a,b,c,d,e,z,p,n,x\n"
    path = tmp_path / "ecqa.csv"
    path.write_text(_ECQA_HEADER + good + bad, encoding="utf-8")
    with pytest.raises(RecordError, match="'z' is not one of the options") as info:
        load_benchmark("ecqa", path=path)
    assert (info.value.line, info.value.field) == (4, "q_ans")
    assert "(in row 1)" in str(info.value)
    path.write_text(_ECQA_HEADER.replace("q_op5,", "") + good, encoding="utf-8")
    with pytest.raises(RecordError, match="header") as info:
        load_benchmark("ecqa", path=path)
    assert (info.value.line, info.value.field) == (1, "q_op5")


def test_repeated_ids_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "sqa.json"
    path.write_text(json.dumps([{"qid": "a", "question": "q?", "answer": True}] * 2))
    with pytest.raises(RecordError, match="duplicate example id 'strategyqa-a'"):
        load_benchmark("strategyqa", path=path)


@pytest.mark.parametrize(("fields", "field"), [
    ({"gold": "51.0", "task": "numeric"}, "gold"),
    ({"gold": "c", "task": "multiple_choice"}, "gold"),
    ({"gold": "D", "task": "multiple_choice", "choices": ("x", "y", "z")}, "gold"),
    ({"gold": "A", "task": "multiple_choice", "choices": ("x",)}, "choices"),
    ({"gold": "yes", "task": "yes_no", "choices": ("yes", "no")}, "choices"),
    ({"gold": "True", "task": "yes_no"}, "gold"),
    ({"gold": "1", "task": "algebra"}, "task"),
    ({"gold": "1", "task": "numeric", "question": " "}, "question"),
])
def test_examples_reject_gold_answers_nothing_could_match(fields: dict[str, Any],
                                                         field: str) -> None:
    with pytest.raises(RecordError) as info:
        Question(**{"id": "x-0", "question": "q?", **fields})
    assert info.value.field == field


# ------------------------------------------------------------------------ Hugging Face
def _hf(tmp_path: Path, file: str, content: str, **options: Any) -> list[Question]:
    path = tmp_path / file
    path.write_text(content, encoding="utf-8")
    builder = {"jsonl": "json", "json": "json", "csv": "csv"}[path.suffix[1:]]
    return load_benchmark("hf", path=builder, data_files=str(path), split="train",
                          cache_dir=str(tmp_path / "cache"), **options)


def test_hf_loads_a_local_jsonl_with_an_answer_regex(tmp_path: Path) -> None:
    content = _jsonl({"q": "1+1?", "a": "Final: 2.0 apples"}, {"q": "3*3?", "a": "Final: 9"})
    examples = _hf(tmp_path, "local.jsonl", content, question_field="q", answer_field="a",
                   task="numeric", answer_regex=r"Final: (\S+)", limit=2)
    assert [(e.id, e.question, e.gold) for e in examples] == [("json:train-0", "1+1?", "2"),
                                                              ("json:train-1", "3*3?", "9")]


def test_hf_loads_a_local_csv_of_yes_no_questions(tmp_path: Path) -> None:
    content = "question,label\nIs ice cold?,True\nIs fire cold?,false\n"
    examples = _hf(tmp_path, "local.csv", content, question_field="question",
                   answer_field="label", task="yes_no")
    assert [e.gold for e in examples] == ["yes", "no"]


def test_hf_multiple_choice_from_option_lists(tmp_path: Path) -> None:
    content = _jsonl(
        {"question": "2+2?", "choices": ["3", "4"], "answer": 1},
        {"question": "Red?", "choices": {"text": ["sky", "blood"], "label": ["1", "2"]},
         "answer": "2"},
        {"question": "Cold?", "choices": ["ice", "fire"], "answer": "ice"})
    examples = _hf(tmp_path, "mc.jsonl", content, question_field="question",
                   answer_field="answer", task="multiple_choice", choices_field="choices")
    assert [e.gold for e in examples] == ["B", "B", "A"]
    assert examples[0].question == "2+2?\nAnswer Choices: (A) 3 (B) 4"
    assert examples[1].choices == ("sky", "blood")


def test_hf_errors_name_the_row_and_column(tmp_path: Path) -> None:
    content = _jsonl({"q": "1+1?", "a": "2"}, {"q": "2+2?", "a": "four-ish"})
    with pytest.raises(RecordError, match=r"no such column\(s\) \['question'\]"):
        _hf(tmp_path, "bad.jsonl", content, question_field="question", answer_field="a",
            task="numeric")
    with pytest.raises(RecordError, match=r"\(in train row 1\)") as info:
        _hf(tmp_path, "bad.jsonl", content, question_field="q", answer_field="a",
            task="numeric")
    assert (info.value.field, info.value.file) == ("a", str(tmp_path / "bad.jsonl"))
    with pytest.raises(ValueError, match="unknown task"):
        _hf(tmp_path, "bad.jsonl", content, question_field="q", answer_field="a", task="sums")


# ------------------------------------------------------------------------ configs
def _compose(name: str, *overrides: str) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides),
                      return_hydra_config=True)
    benchmark = OmegaConf.to_container(cfg.benchmark[name], resolve=True)
    assert isinstance(benchmark, dict)
    return benchmark


def test_every_benchmark_has_a_config() -> None:
    assert set(CONFIGS) == set(BENCHMARKS)


@pytest.mark.parametrize("config", CONFIGS)
def test_benchmark_config_composes_and_loads(config: str, shared_data: Path) -> None:
    benchmark = _compose(config, f"+benchmark={config}", f"paths.shared_data={shared_data}")
    assert benchmark["name"] == config
    path = Path(benchmark["loader"].get("path", "generated"))
    if config == "toy":
        assert not path.exists()  # generated, not read
    elif not path.is_file():  # a hub dataset, or data that needs a registration: nothing
        assert config in ("hf", "piqa", "pubmedqa", "bioasq")  # to read offline
        return
    examples = load_benchmark(benchmark["name"], limit=3, **benchmark["loader"])
    assert len(examples) == 3
    assert {example.task for example in examples} == {benchmark["task"]}


def test_hf_config_reads_a_local_file(shared_data: Path, tmp_path: Path) -> None:
    benchmark = _compose("hf", "+benchmark=hf", "benchmark.hf.loader.path=json",
                         "benchmark.hf.loader.name=null", "benchmark.hf.loader.split=train",
                         f"benchmark.hf.loader.data_files={shared_data / 'gsm8k' / 'test.jsonl'}",
                         f"benchmark.hf.loader.cache_dir={tmp_path}")
    examples = load_benchmark(benchmark["name"], **benchmark["loader"])
    assert [e.gold for e in examples] == [e.gold for e in load_benchmark(
        "gsm8k", path=shared_data / "gsm8k" / "test.jsonl")]
