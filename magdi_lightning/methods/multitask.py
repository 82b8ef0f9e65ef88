"""Multi-task distillation: one student, one weighted loss per task (TinyLLM, SIKeD).

TinyLLM's objective is ``gamma * L_answer + sum_t alpha_t * L_rationale_t``: the answer
task plus one rationale task per teacher, each marked by its instruction prefix. SIKeD
fine-tunes on strategy-tagged solutions, a single task. Both are this module with
different task weights. Each task's loss is by default the mean over its pairs in the
batch of the pair's mean token cross-entropy (so a long rationale does not outweigh a short
answer); ``task_loss="token_mean"`` takes the mean over all of the task's target tokens in
the batch instead, as TinyLLM's code does (one Hugging Face seq2seq loss per task over its
padded batch). Tasks absent from a batch contribute nothing. Causal students compute vocabulary
logits only at target tokens; encoder-decoder students (T5) train the same way.
"""

from __future__ import annotations

from typing import Any

import torch

from magdi_lightning.data.task_datamodule import TaskBatch, TaskDataModule
from magdi_lightning.methods.base import MethodModule
from magdi_lightning.models.student import Student

__all__ = ["TASK_LOSSES", "TaskDistillationModule"]

#: How a task's loss averages over its pairs' target tokens.
TASK_LOSSES = ("pair_mean", "token_mean")


class TaskDistillationModule(MethodModule):
    """Weighted sum of per-task losses.

    ``task_weights`` maps task names (``answer``, ``rationale/<teacher>``, ``solve``) to
    weights; a task not named gets ``default_weight``. ``task_loss`` is ``pair_mean`` or
    ``token_mean`` (see the module docstring). ``settings`` (optimizer, scheduler,
    student_config) are :class:`~magdi_lightning.methods.base.MethodModule`'s.
    """

    datamodule_class = TaskDataModule

    def __init__(self, student: Student, task_weights: dict[str, float] | None = None,
                 default_weight: float = 1.0, task_loss: str = "pair_mean",
                 **settings: Any) -> None:
        super().__init__(student, **settings)
        self.task_weights = dict(task_weights or {})
        self.default_weight = default_weight
        if any(w < 0 for w in [*self.task_weights.values(), default_weight]):
            raise ValueError("task weights must be >= 0")
        if task_loss not in TASK_LOSSES:
            raise ValueError(f"task_loss must be one of {TASK_LOSSES}, got {task_loss!r}")
        self.task_loss = task_loss

    def weight(self, task: str) -> float:
        return self.task_weights.get(task, self.default_weight)

    def compute_losses(self, batch: TaskBatch) -> dict[str, torch.Tensor]:
        """``loss`` (the weighted sum) and each present task's loss."""
        total, count = self.student.target_token_losses(batch.input_ids, batch.attention_mask,
                                                        batch.labels)
        per_pair = total / count.clamp(min=1)
        has_target = count > 0
        out: dict[str, torch.Tensor] = {}
        loss = per_pair.new_zeros(())
        for index, name in enumerate(batch.task_names):
            rows = (batch.task_index == index) & has_target
            if rows.any():
                out[name] = (total[rows].sum() / count[rows].sum()
                             if self.task_loss == "token_mean" else per_pair[rows].mean())
                loss = loss + self.weight(name) * out[name]
        out["loss"] = loss
        return out
