"""Multi-task data and losses: TinyLLM's task composition, SIKeD's tagged solutions."""

from __future__ import annotations

import pytest
import torch
from factories import TINY_ARCHITECTURE, C, U, W, tiny_student
from torch import nn

from magdi_lightning.data.task_datamodule import TaskBatch, TaskExample, collate_tasks
from magdi_lightning.data.tasks import StrategyTasks, TinyLLMTasks
from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.losses import IGNORE_INDEX
from magdi_lightning.methods.multitask import TaskDistillationModule
from magdi_lightning.models.student import load_student

QUESTION = "Ann has 3 pens. She buys 2 more. How many pens does Ann have now?"


def rationale_graph(*teachers: tuple[str, str, object]) -> ReasoningGraph:
    return ReasoningGraph(id="g", question=QUESTION, gold_answer="5", task="numeric", nodes=[
        Node(id=name, agent=name, round=0, reasoning=text, correctness=label)
        for name, text, label in teachers])


def test_tinyllm_tasks_one_answer_and_one_rationale_per_correct_teacher() -> None:
    graph = rationale_graph(("a", "3 + 2 = 5. The answer is 5.", C),
                            ("b", "3 - 2 = 1. The answer is 1.", W),
                            ("c", "Ann ends with 5. The answer is 5.", C), ("d", "?", U))
    tasks = TinyLLMTasks().tasks(graph)
    assert [(t.task, t.prefix, t.target) for t in tasks] == [
        ("answer", "predict: ", "5"),
        ("rationale/a", "explain (a): ", "3 + 2 = 5. The answer is 5."),
        ("rationale/c", "explain (c): ", "Ann ends with 5. The answer is 5.")]
    everything = TinyLLMTasks(rationale_prefix="explain like {teacher}: ",
                              correct_only=False).tasks(graph)
    assert [t.prefix for t in everything][1:] == [f"explain like {n}: " for n in "abcd"]


def test_strategy_tasks_tag_correct_solutions_up_to_a_limit() -> None:
    nodes = [Node(id=f"n{i}", agent="t", round=0, reasoning=text, correctness=label,
                  strategy=strategy)
             for i, (strategy, text, label) in enumerate([
                 ("cot", "3 + 2 = 5. The answer is 5.", C), ("cot", "again 5", C),
                 ("pot", "ans = 3 + 2", C), ("l2m", "wrong", W), (None, "no strategy", C)])]
    graph = ReasoningGraph(id="g", question=QUESTION, gold_answer="5", task="numeric",
                           nodes=nodes)
    assert [t.target for t in StrategyTasks().tasks(graph)] == [
        "[cot] 3 + 2 = 5. The answer is 5.", "[pot] ans = 3 + 2"]
    assert len(StrategyTasks(per_strategy=None).tasks(graph)) == 3
    with pytest.raises(ValueError):
        StrategyTasks(per_strategy=0)


def test_causal_collation_masks_prompts_and_seq2seq_keeps_them_apart() -> None:
    examples = [TaskExample(0, [1, 10, 11], [20, 2]), TaskExample(1, [1, 12], [21, 22, 2])]
    causal = collate_tasks(examples, ("answer", "rationale/a"), pad_token_id=0, max_length=16)
    assert causal.input_ids.tolist() == [[1, 10, 11, 20, 2], [1, 12, 21, 22, 2]]
    assert causal.labels.tolist() == [[IGNORE_INDEX] * 3 + [20, 2],
                                      [IGNORE_INDEX] * 2 + [21, 22, 2]]
    assert causal.task_index.tolist() == [0, 1]
    seq2seq = collate_tasks(examples, ("answer", "rationale/a"), pad_token_id=0, max_length=16,
                            encoder_decoder=True)
    assert seq2seq.input_ids.tolist() == [[1, 10, 11], [1, 12, 0]]
    assert seq2seq.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert seq2seq.labels.tolist() == [[20, 2, IGNORE_INDEX], [21, 22, 2]]
    truncated = collate_tasks(examples, ("answer", "rationale/a"), 0, max_length=4)
    assert truncated.labels.tolist()[0] == [IGNORE_INDEX] * 3 + [20]


class _KnownLosses(nn.Module):
    """Stands in for a student: row i has summed loss sums[i] over counts[i] tokens."""

    def __init__(self, sums: list[float], counts: list[float]) -> None:
        super().__init__()
        self.sums, self.counts = torch.tensor(sums), torch.tensor(counts)

    def target_token_losses(self, *_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sums, self.counts


def _batch(task_index: list[int], names: tuple[str, ...]) -> TaskBatch:
    n = len(task_index)
    return TaskBatch(input_ids=torch.zeros(n, 1, dtype=torch.long),
                     attention_mask=torch.ones(n, 1, dtype=torch.long),
                     labels=torch.zeros(n, 1, dtype=torch.long),
                     task_index=torch.tensor(task_index), task_names=names)


def test_loss_is_the_weighted_sum_of_per_task_means_over_any_teacher_count() -> None:
    names = ("answer", "rationale/a", "rationale/b", "rationale/c")
    # answer rows: mean token losses 2 and 4; a: 1; b: 6 (over 3 tokens); c: absent tokens
    student = _KnownLosses([2.0, 8.0, 1.0, 18.0, 5.0], [1.0, 2.0, 1.0, 3.0, 0.0])
    module = TaskDistillationModule(student, task_weights={"answer": 2.0, "rationale/b": 0.25},
                                    default_weight=0.5)  # type: ignore[arg-type]
    losses = module.compute_losses(_batch([0, 0, 1, 2, 3], names))
    assert losses["answer"] == pytest.approx(3.0)
    assert losses["rationale/a"] == pytest.approx(1.0)
    assert losses["rationale/b"] == pytest.approx(6.0)
    assert "rationale/c" not in losses  # no target tokens: contributes nothing
    assert losses["loss"] == pytest.approx(2.0 * 3.0 + 0.5 * 1.0 + 0.25 * 6.0)


def test_a_task_absent_from_the_batch_adds_nothing_and_weights_must_be_non_negative() -> None:
    module = TaskDistillationModule(_KnownLosses([3.0], [1.0]))  # type: ignore[arg-type]
    losses = module.compute_losses(_batch([0], ("answer", "rationale/a")))
    assert set(losses) == {"answer", "loss"} and losses["loss"] == pytest.approx(3.0)
    with pytest.raises(ValueError):
        TaskDistillationModule(_KnownLosses([], []), default_weight=-1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("model_type", ["llama", "t5"])
def test_real_students_train_on_task_batches(model_type: str) -> None:
    torch.manual_seed(0)
    if model_type == "llama":
        student = tiny_student()
    else:
        student = load_student(model_type="t5", architecture={
            "d_model": 32, "d_ff": 64, "d_kv": 16, "num_layers": 2, "num_heads": 2})
    assert student.is_encoder_decoder == (model_type == "t5")
    examples = [TaskExample(0, [1, 10, 11, 12], [20, 21, 2]), TaskExample(1, [1, 13], [22, 2]),
                TaskExample(1, [1, 14, 15], [23, 24, 25, 2])]
    batch = collate_tasks(examples, ("answer", "rationale/a"), student.tokenizer.pad_token_id,
                          64, encoder_decoder=student.is_encoder_decoder)
    module = TaskDistillationModule(student, task_weights={"answer": 1.0}, default_weight=0.5)
    losses = module.compute_losses(batch)
    assert torch.isfinite(losses["loss"])
    assert losses["loss"].item() == pytest.approx(
        losses["answer"].item() + 0.5 * losses["rationale/a"].item(), rel=1e-5)
    losses["loss"].backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


def test_causal_target_losses_match_the_hf_loss() -> None:
    torch.manual_seed(0)
    student = load_student(architecture=TINY_ARCHITECTURE)
    batch = collate_tasks([TaskExample(0, [1, 10, 11], [20, 21, 2])], ("answer",),
                          student.tokenizer.pad_token_id, 64)
    total, count = student.target_token_losses(batch.input_ids, batch.attention_mask,
                                               batch.labels)
    reference = student(batch.input_ids, batch.attention_mask, labels=batch.labels).loss
    assert (total / count).item() == pytest.approx(reference.item(), rel=1e-5)
