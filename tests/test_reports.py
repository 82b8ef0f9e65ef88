"""Evaluation reports: teacher/student token counts, plots and wandb logging."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from magdi_lightning.evaluation.generation import Prediction
from magdi_lightning.evaluation.metrics import Accuracy
from magdi_lightning.evaluation.reports import (
    SAMPLE_COLUMNS,
    log_to_wandb,
    teacher_tokens_per_question,
    token_efficiency,
    wandb_samples_table,
    write_accuracy_plot,
    write_token_plot,
)
from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.questions import question_key
from magdi_lightning.sources import import_graphs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DU_GSM8K = "debates/du_gsm8k_qwen3-14b_3agents_3rounds.json"


def graph(graph_id: str, question: str, *nodes: int | str) -> ReasoningGraph:
    """One round of teacher nodes: an int is a recorded ``num_tokens``, a str the
    reasoning of a node whose length is unknown."""
    return ReasoningGraph(
        id=graph_id, question=question, gold_answer="5", task="numeric",
        nodes=[Node(id=f"n{i}", agent=f"agent_{i}", round=0,
                    reasoning=node if isinstance(node, str) else "The answer is 5.",
                    num_tokens=node if isinstance(node, int) else None)
               for i, node in enumerate(nodes)])


def prediction(question: str, tokens: int, samples: list[str] | None = None,
               correct: bool = True, extracted: str | None = "5") -> Prediction:
    return Prediction(id=f"p{tokens}", question=question, output="It is 5.",
                      extracted=extracted, gold="5", correct=correct, output_tokens=tokens,
                      samples=samples)


def assert_png(path: Path) -> tuple[int, int]:
    """Check a real, non-trivial PNG and return its (width, height)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 300
    return width, height


# ------------------------------------------------------------------ token counts
def test_question_key_ignores_spacing_and_case_only() -> None:
    assert question_key("  Ann has\n3 pens.\tHow MANY? ") == "ann has 3 pens. how many?"
    assert question_key("Ann has 3 pens.") != question_key("Ann has 4 pens.")


def test_recorded_counts_give_an_exact_ratio() -> None:
    graphs = [graph("a", "Ann has 3 pens?", 100, 200, 300),      # 600
              graph("b", "  ann HAS 3\npens? ", 400, 600),       # 1000: same question
              graph("c", "Ben has 9 coins?", 500, 500)]          # 1000
    teacher = teacher_tokens_per_question(graphs)
    assert dict(teacher) == {"ann has 3 pens?": 800, "ben has 9 coins?": 1000}
    assert teacher.method == "num_tokens"
    assert teacher.nodes_by_method == {"num_tokens": 7}

    predictions = [prediction("Ann has 3 pens?", 80), prediction("BEN has 9 coins?", 120),
                   prediction("Not asked of the teachers?", 7)]
    report = token_efficiency(predictions, teacher)
    assert report["matched_questions"] == 2
    assert report["student_questions"] == 3 and report["teacher_questions"] == 2
    assert report["student_tokens_per_question"] == 100.0
    assert report["teacher_tokens_per_question"] == 900.0
    assert report["teacher_to_student_ratio"] == 9.0
    assert report["count_method"] == "num_tokens"
    assert "self_consistency_k" not in report


def test_word_estimate_and_mixed_methods_are_labelled() -> None:
    estimated = teacher_tokens_per_question([graph("a", "Q?", "one two three", "a b c d e f")])
    assert dict(estimated) == {"q?": 12}                    # (3 + 6) words x 4/3
    assert estimated.method == "estimate"

    mixed = teacher_tokens_per_question([graph("a", "Q?", 10, "one two three")])
    assert dict(mixed) == {"q?": 14}
    assert mixed.method == "mixed"
    assert mixed.nodes_by_method == {"num_tokens": 1, "estimate": 1}
    assert token_efficiency([prediction("Q?", 7)], mixed)["count_method"] == "mixed"


def test_tokenizer_counts_nodes_without_a_recorded_length() -> None:
    from transformers import AutoTokenizer

    from magdi_lightning.models.tokenizer import DEFAULT_TOKENIZER_DIR

    tokenizer = AutoTokenizer.from_pretrained(str(DEFAULT_TOKENIZER_DIR))
    texts = ["Ann has 3 pens and buys 12 more, so 3 + 12 = 15.", "The answer is 15."]
    expected = sum(len(tokenizer(text, add_special_tokens=False).input_ids) for text in texts)
    assert expected > 20  # digits are single tokens: a real count, not a word count

    teacher = teacher_tokens_per_question([graph("a", "Q?", *texts, 5)], tokenizer=tokenizer)
    assert dict(teacher) == {"q?": expected + 5}
    assert teacher.nodes_by_method == {"num_tokens": 1, "tokenizer": 2}
    assert teacher.tokenizer_name == str(DEFAULT_TOKENIZER_DIR)


def test_self_consistency_adds_a_labelled_k_sample_estimate() -> None:
    teacher = {"q?": 900}
    report = token_efficiency([prediction("Q?", 100, samples=["a", "b", "c"])], teacher)
    assert report["teacher_to_student_ratio"] == 9.0         # greedy only
    assert report["self_consistency_k"] == 3
    assert report["student_tokens_per_question_k_samples_estimate"] == 300.0
    assert report["teacher_to_student_ratio_k_samples_estimate"] == 3.0
    assert report["count_method"] == "unknown"                # a plain dict says nothing


def test_no_overlap_gives_none_and_no_plot(tmp_path: Path) -> None:
    report = token_efficiency([prediction("Q?", 10)], {"other?": 50})
    assert report["matched_questions"] == 0
    assert report["teacher_to_student_ratio"] is None
    assert report["student_tokens_per_question"] is None
    with pytest.raises(ValueError, match="matched no questions"):
        write_token_plot(report, tmp_path / "tokens.png")
    assert not (tmp_path / "tokens.png").exists()


def test_du_gsm8k_debate_teacher_tokens(shared_data: Path) -> None:
    """The real 3-agent x 3-round Qwen3-14B debate: 20 questions, 9 answers each."""
    from transformers import AutoTokenizer

    from magdi_lightning.models.tokenizer import DEFAULT_TOKENIZER_DIR

    graphs = list(import_graphs("du", shared_data / DU_GSM8K))
    estimate = teacher_tokens_per_question(graphs)
    assert len(estimate) == 20 and estimate.method == "estimate"
    assert estimate.nodes_by_method == {"estimate": 180}
    per_question = sum(estimate.values()) / len(estimate)
    # nine answers of a few sentences each: hundreds of tokens, not tens or tens of thousands
    assert 200 < per_question < 3000

    tokenizer = AutoTokenizer.from_pretrained(str(DEFAULT_TOKENIZER_DIR))
    counted = teacher_tokens_per_question(graphs, tokenizer=tokenizer)
    assert counted.keys() == estimate.keys() and counted.method == "tokenizer"
    tokenized = sum(counted.values()) / len(counted)
    assert tokenized > per_question  # a 512-token toy vocabulary splits text finer
    print(f"\nDu GSM8K debate, 20 questions x 9 answers: {sum(estimate.values())} teacher "
          f"tokens by word estimate ({per_question:.0f}/question), {sum(counted.values())} "
          f"by the toy tokenizer ({tokenized:.0f}/question)")

    # the join works on the real question text, whatever its whitespace
    students = [prediction("  " + g.question.upper() + "\n", 50) for g in graphs]
    report = token_efficiency(students, estimate)
    assert report["matched_questions"] == 20
    assert report["teacher_to_student_ratio"] == pytest.approx(per_question / 50)


# ------------------------------------------------------------------------ plots
def test_accuracy_plot_is_a_png(tmp_path: Path) -> None:
    results = {"gsm8k": Accuracy(612, 1319), "svamp": Accuracy(700, 1000),
               "aqua": Accuracy(0, 254), "empty": Accuracy(0, 0), "boolq": Accuracy(3270, 3270)}
    path = write_accuracy_plot(results, tmp_path / "plots" / "accuracy.png")
    assert path == tmp_path / "plots" / "accuracy.png"
    assert_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["accuracy.png"]  # no temporary left
    with pytest.raises(ValueError, match="no benchmark"):
        write_accuracy_plot({}, tmp_path / "none.png")


@pytest.mark.parametrize("student, samples", [(100, None), (40, ["a", "b", "c", "d", "e"])])
def test_token_plot_is_a_png(tmp_path: Path, student: int, samples: list[str] | None) -> None:
    report = token_efficiency([prediction("Q?", student, samples)], {"q?": 900})
    assert_png(write_token_plot(report, tmp_path / "tokens.png"))


# ------------------------------------------------------------------------ wandb
def test_samples_table_columns_and_limit() -> None:
    predictions = [prediction(f"Q{i}?", i, correct=i % 2 == 0, extracted=None if i % 3 else "5")
                   for i in range(1, 8)]
    table = wandb_samples_table(predictions, limit=5)
    assert table.columns == list(SAMPLE_COLUMNS)
    assert table.columns == ["id", "question", "output", "extracted", "gold", "correct"]
    assert len(table.data) == 5
    assert table.data[0] == ["p1", "Q1?", "It is 5.", None, "5", False]
    assert len(wandb_samples_table(predictions, limit=None).data) == 7
    with pytest.raises(ValueError, match="limit"):
        wandb_samples_table(predictions, limit=-1)


def test_log_to_wandb_without_a_run_does_nothing(tmp_path: Path) -> None:
    log_to_wandb(None, {"accuracy": 0.5}, [prediction("Q?", 1)],
                 {"accuracy": tmp_path / "missing.png"})


def test_log_to_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR",
                 "XDG_CACHE_HOME"):  # wandb-core writes its debug logs under the latter
        monkeypatch.setenv(name, str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    plot = write_accuracy_plot({"gsm8k": Accuracy(5, 10)}, tmp_path / "accuracy.png")
    run = wandb.init(mode="offline", dir=tmp_path, project="magdi-tests")
    try:
        log_to_wandb(run, {"accuracy": 0.5, "total": 10}, [prediction("Q?", 1)],
                     {"accuracy_plot": plot})
        assert run.summary["eval/accuracy"] == 0.5
        assert run.summary["eval/total"] == 10
        assert {"eval/samples", "eval/accuracy_plot"} <= set(run.summary.keys())
    finally:
        run.finish()
