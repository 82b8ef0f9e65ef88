"""TinyLLM as its official code defines it (github.com/YikunHan42/TinyLLM: tiny.py,
data_utils.py, model_utils.py, train_utils.py), on hand-built inputs.

The expected values are derived by hand from the code's definitions: the prompts are
``'predict: ' + input``, ``'explain: ' + input`` (FLAN-T5 rationale) and
``'rationale: ' + input`` (LLaMA-2 rationale) with ``input = f'{question}\\nAnswer
Choices:\\n(a) {c_0}\\n(b) {c_1}...'``; the answer label is the record's ``answer`` (an
option's text); the FLAN-T5 rationale is the rationale file entry before ``Q:``, then
before ``Thus, the answer is``, right-stripped; the LLaMA-2 rationale is everything after
``llama rationale: ``, stripped; one batch holds the three tasks of the same questions;
each task's loss is the seq2seq loss over its padded batch (a mean over its target
tokens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from magdi_lightning.data.task_datamodule import TaskDataModule
from magdi_lightning.data.tasks import TinyLLMTasks
from magdi_lightning.graph import Correctness, Node, ReasoningGraph
from magdi_lightning.methods.multitask import TaskDistillationModule
from magdi_lightning.models.student import load_student
from magdi_lightning.scoring.answers import answers_match, extract_answer
from magdi_lightning.sources.question_sets import (
    load_benchmark,
    load_hf_benchmark,
    load_piqa,
    load_pubmedqa,
)
from magdi_lightning.sources.tinyllm import import_tinyllm, tinyllm_choices

T5 = {"d_model": 32, "d_ff": 64, "d_kv": 16, "num_layers": 2, "num_heads": 2}
#: The official code's prefixes (tiny.py tokenize_function) and FLAN-T5 cut (data_utils).
REFERENCE_TASKS = {"teacher_prefixes": {"flan_t5": "explain: ", "llama2": "rationale: "},
                   "answer_target": "option_text", "cut_at": {"flan_t5": "Thus, the answer is"},
                   "correct_only": False}


def _record(i: int) -> dict[str, Any]:
    return {"id": i, "question": f"Which palms warm fastest, case {i}?",
            "choices": ["dry palms", "wet palms", "C"], "answer": ["dry palms", "C"][i % 2]}


def _rationale(record: dict[str, Any]) -> str:
    letter = "ac"[record["id"] % 2]
    options = "\n".join(f"({letter}) {c}" for letter, c in zip("abc", record["choices"]))
    return (f"Dry skin rubs hotter. Thus, the answer is ({letter}) {record['answer']}"
            f"\n\nQ: {record['question']}\nAnswer Choices:\n{options} llama rationale: "
            "Let's think step by step.\nRubbing dry skin. Thus, the answer is (a) dry palms")


def _dataset(tmp_path: Path, n: int = 6) -> Path:
    """A TinyLLM dataset directory in its code's layout (PIQA-style numbered ids)."""
    directory = tmp_path / "piqa"
    (directory / "llm").mkdir(parents=True)
    records = [_record(i) for i in range(n)]
    (directory / "piqa_train.json").write_text(json.dumps(records))
    (directory / "llm" / "train_CoT_0.json").write_text(
        json.dumps([_rationale(r) for r in records]))
    return directory


def test_pairs_are_the_reference_prompts_and_targets(tmp_path: Path) -> None:
    graph = next(import_tinyllm(_dataset(tmp_path)))
    given = ("Which palms warm fastest, case 0?\nAnswer Choices:\n(a) dry palms\n"
             "(b) wet palms\n(c) C")
    assert graph.id == "piqa-train-0" and graph.question == given
    pairs = TinyLLMTasks(**REFERENCE_TASKS).tasks(graph)
    assert [(p.task, p.prefix + p.question, p.target) for p in pairs] == [
        ("answer", "predict: " + given, "dry palms"),
        ("rationale/flan_t5", "explain: " + given, "Dry skin rubs hotter."),
        ("rationale/llama2", "rationale: " + given,
         "Let's think step by step.\nRubbing dry skin. Thus, the answer is (a) dry palms")]
    assert TinyLLMTasks(**{**REFERENCE_TASKS, "answer_target": "gold"}).tasks(graph)[0] \
        .target == "A"  # the letter, as an option
    assert tinyllm_choices(given) == ["dry palms", "wet palms", "C"]


def test_teachers_sharing_a_prefix_are_refused() -> None:
    nodes = [Node(id=t, agent=t, round=0, reasoning="r", correctness=Correctness.CORRECT)
             for t in ("t1", "t2")]
    graph = ReasoningGraph(id="g", question="q?", gold_answer="1", task="numeric",
                           nodes=nodes)
    with pytest.raises(ValueError, match="share the prefix 'explain: '"):
        TinyLLMTasks(rationale_prefix="explain: ").tasks(graph)
    prefixes = [p.prefix for p in TinyLLMTasks().tasks(graph)]
    assert prefixes == ["predict: ", "explain (t1): ", "explain (t2): "]
    with pytest.raises(ValueError, match="answer_target"):
        TinyLLMTasks(answer_target="letter")


def _module(tmp_path: Path, **options: Any) -> TaskDataModule:
    student = load_student(model_type="t5", architecture=T5)
    data = TaskDataModule(importer={"format": "tinyllm", "path": str(_dataset(tmp_path))},
                          tokenizer=student.tokenizer, tasks=TinyLLMTasks(**REFERENCE_TASKS),
                          template="{question}", use_chat_template=False, val_fraction=0.0,
                          test_fraction=0.2, cache_dir=str(tmp_path / "cache"),
                          encoder_decoder=True, **options)
    data.setup("fit")
    return data


def test_a_batch_holds_every_task_of_its_questions(tmp_path: Path) -> None:
    data = _module(tmp_path, batch_size=2, group_by_question=True)
    assert len(data.examples["train"]) == 5  # questions, each with its 3 pairs
    batches = list(data.train_dataloader())
    assert [b.size for b in batches] == [6, 6, 3]
    names = data.task_names
    for batch in batches:
        rows = batch.task_index.tolist()
        assert [names[i] for i in rows[:3]] == ["answer", "rationale/flan_t5",
                                                "rationale/llama2"]
        # the rows of one question share the question text after their prefixes
        for start in range(0, len(rows), 3):
            questions = {data.tokenizer.decode(batch.input_ids[start + k],
                                               skip_special_tokens=True).split(":", 1)[1]
                         for k in range(3)}
            assert len(questions) == 1
    shuffled = _module(tmp_path / "pairs", batch_size=4)
    assert len(shuffled.examples["train"]) == 15 and next(
        iter(shuffled.train_dataloader())).size == 4


def test_prompts_are_cut_keeping_their_eos(tmp_path: Path) -> None:
    full = _module(tmp_path / "full", batch_size=2, group_by_question=True)
    data = _module(tmp_path / "cut", batch_size=2, group_by_question=True, max_prompt_length=6)
    for whole, cut in zip(full.examples["train"], data.examples["train"]):
        # the shipped toy tokenizer adds no EOS to a prompt: a plain cut
        assert [p.prompt_ids for p in cut] == [p.prompt_ids[:6] for p in whole]
        assert [p.target_ids for p in cut] == [p.target_ids for p in whole]
    # a T5 tokenizer ends its prompts with EOS; its truncation keeps it, and so does ours
    eos = data.tokenizer.eos_token_id
    assert data._cut_prompt([1, 5, 6, 7, 8, 9, 10, eos]) == [1, 5, 6, 7, 8, eos]


def test_held_out_answers_in_option_text_are_scored(tmp_path: Path) -> None:
    data = _module(tmp_path, batch_size=2, group_by_question=True)
    (question,) = data.held_out_questions("test")
    assert question.choices == ("dry palms", "wet palms", "C")
    gold_text = question.choices["ABC".index(question.gold)]
    assert answers_match(gold_text, question.gold, question.task, question.choices)
    # An option whose text is itself a letter is read as that option, not as the letter.
    assert extract_answer("C", "multiple_choice", ("dry palms", "wet palms", "C")) == "C"
    assert extract_answer("a", "multiple_choice", ("b", "c", "a")) == "C"
    assert extract_answer("fluorine (F)", "multiple_choice",
                          ("oxygen", "neon", "fluorine (F)")) == "C"


class _KnownLosses(torch.nn.Module):
    def __init__(self, sums: list[float], counts: list[float]) -> None:
        super().__init__()
        self.sums, self.counts = torch.tensor(sums), torch.tensor(counts)

    def target_token_losses(self, *_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sums, self.counts


def test_token_mean_is_the_seq2seq_loss_over_a_tasks_batch() -> None:
    from magdi_lightning.data.task_datamodule import TaskBatch

    # Task "answer": rows with summed token losses 2 (1 token) and 8 (2 tokens). The
    # code's loss for it is the mean over its 3 target tokens: (2 + 8) / 3.
    batch = TaskBatch(input_ids=torch.zeros(3, 1, dtype=torch.long),
                      attention_mask=torch.ones(3, 1, dtype=torch.long),
                      labels=torch.zeros(3, 1, dtype=torch.long),
                      task_index=torch.tensor([0, 0, 1]), task_names=("answer", "rationale/a"))
    student = _KnownLosses([2.0, 8.0, 6.0], [1.0, 2.0, 3.0])
    token = TaskDistillationModule(student, task_weights={"answer": 1.0}, default_weight=2.0,
                                   task_loss="token_mean")  # type: ignore[arg-type]
    losses = token.compute_losses(batch)
    assert losses["answer"].item() == pytest.approx(10.0 / 3.0)
    assert losses["loss"].item() == pytest.approx(10.0 / 3.0 + 2.0 * 2.0)
    pair = TaskDistillationModule(student)  # type: ignore[arg-type]
    assert pair.compute_losses(batch)["answer"].item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="task_loss"):
        TaskDistillationModule(student, task_loss="sum")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ question loaders
def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_tinyllm_split_files_load_through_datasets(tmp_path: Path) -> None:
    piqa = tmp_path / "piqa_test.json"
    piqa.write_text(json.dumps([{"id": 0, "question": "Make outdoor pillow.",
                                 "choices": ["Blow into tin can.", "Blow into trash bag."],
                                 "answer": "Blow into trash bag."}]))
    (example,) = load_piqa(str(piqa), cache_dir=str(tmp_path / "hf"))
    assert example.id == "piqa_test-0" and example.gold == "B"
    assert example.question == ("Make outdoor pillow.\nAnswer Choices:\n(a) Blow into tin "
                                "can.\n(b) Blow into trash bag.")
    bioasq = _jsonl(tmp_path / "bioasq_test.json", [
        {"id": "6278", "question": "Snippet one. \n Is p85 a dimer?",
         "choices": ["yes", "no"], "answer": "yes"}])
    (example,) = load_benchmark("bioasq", path=bioasq, cache_dir=str(tmp_path / "hf"))
    assert (example.gold, example.choices) == ("A", ("yes", "no"))
    bad = _jsonl(tmp_path / "bad.json", [{"id": "1", "question": "q", "choices": ["x", "y"],
                                          "answer": "z"}])
    with pytest.raises(ValueError, match="not one of the choices"):
        load_benchmark("tinyllm", path=bad, cache_dir=str(tmp_path / "hf"))


def test_hub_shaped_piqa_and_pubmedqa(tmp_path: Path) -> None:
    piqa = _jsonl(tmp_path / "piqa.jsonl", [
        {"goal": "ice box", "sol1": "add water", "sol2": "add soda", "label": 0},
        {"goal": "fire", "sol1": "melts humans", "sol2": "melts water", "label": -1}])
    with pytest.raises(ValueError, match="states no multiple_choice answer"):
        load_piqa("json", split="train", data_files=piqa, cache_dir=str(tmp_path / "hf"))
    first = load_hf_benchmark("json", "train[:1]", "goal", "label", "multiple_choice",
                              data_files=piqa, choices_field=["sol1", "sol2"], layout="tinyllm",
                              cache_dir=str(tmp_path / "hf"))
    assert [(e.question, e.gold) for e in first] == [
        ("ice box\nAnswer Choices:\n(a) add water\n(b) add soda", "A")]
    pubmedqa = _jsonl(tmp_path / "pqa.jsonl", [
        {"pubid": 16418930, "question": "Differences in amblyopia?",
         "context": {"contexts": ["Acuity depends on optotypes.", "100 patients."],
                     "labels": ["BACKGROUND", "METHODS"]},
         "long_answer": "...", "final_decision": "maybe"}])
    (example,) = load_pubmedqa("json", name=None, data_files=pubmedqa,
                               cache_dir=str(tmp_path / "hf"))
    assert example.id == "pubmedqa-16418930" and example.gold == "C"
    assert example.question == ("Acuity depends on optotypes. \n 100 patients. \n Differences "
                                "in amblyopia?\nAnswer Choices:\n(a) yes\n(b) no\n(c) maybe")


# ------------------------------------------------------------------------ the experiments
@pytest.mark.parametrize("dataset", ["arc", "obqa", "riddle"])
def test_experiment_configs_are_the_official_defaults(dataset: str) -> None:
    from hydra import compose, initialize_config_dir

    from magdi_lightning import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment=tinyllm/{dataset}"])
    tasks = cfg.data.tasks
    assert dict(tasks.teacher_prefixes) == REFERENCE_TASKS["teacher_prefixes"]
    assert dict(tasks.cut_at) == REFERENCE_TASKS["cut_at"]
    assert (tasks.answer_prefix, tasks.answer_target, tasks.correct_only) == (
        "predict: ", "option_text", False)
    assert (cfg.data.template, cfg.data.use_chat_template) == ("{question}", False)
    assert cfg.data.group_by_question and cfg.data.batch_size == 8
    assert (cfg.data.max_prompt_length, cfg.data.max_length) == (100, 256)
    assert cfg.trainer.accumulate_grad_batches == 8 and cfg.trainer.max_steps == 10000
    assert cfg.trainer.val_check_interval == 250 * 8 and cfg.trainer.gradient_clip_val == 1.0
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (5e-5, 0.0)
    assert (cfg.scheduler.name, cfg.scheduler.warmup_steps) == ("linear", 0)
    assert cfg.method.task_loss == "token_mean" and cfg.evaluate.max_new_tokens == 64
    assert {k: v for k, v in cfg.method.task_weights.items()} == {
        "answer": 1.0, "rationale/flan_t5": 1.0, "rationale/llama2": 1.0}
