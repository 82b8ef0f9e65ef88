"""Batches of text-to-text tasks built from MAG graphs (TinyLLM, SIKeD).

The same sources, question split and tokenization cache as the graph data module; a
:class:`~magdi_lightning.data.tasks.TaskBuilder` turns each graph into (prompt, target)
pairs, and a batch holds pairs of several tasks with each row's task index, so one
student pass serves every task's loss. Causal students see ``prompt + target`` with the
prompt masked from the loss; encoder-decoder students (T5) read the prompt in the
encoder and learn the target in the decoder.

Batches are shuffled pairs by default. ``group_by_question`` batches questions instead,
each with all of its pairs, as TinyLLM's code does (one training example there carries the
answer and both rationales of a question, and every step trains all three tasks on the
same questions).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import datasets
import torch

from magdi_lightning.data.datamodule import SourceDataModule
from magdi_lightning.data.tasks import TaskBuilder, TextTask
from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.losses import IGNORE_INDEX
from magdi_lightning.questions import Question
from magdi_lightning.scoring.answers import CHOICE_LETTERS
from magdi_lightning.sources.tinyllm import tinyllm_choices

__all__ = ["TaskBatch", "TaskDataModule", "TaskExample", "collate_tasks"]


@dataclass
class TaskExample:
    """One tokenized pair: ``prompt_ids`` (with the task's prefix), ``target_ids``
    (ending in EOS) and the index of its task in the module's task names."""

    task: int
    prompt_ids: list[int]
    target_ids: list[int]


@dataclass
class TaskBatch:
    """``[B, L]`` right-padded tensors and ``task_index`` ``[B]`` into ``task_names``.

    Causal: ``input_ids`` = prompt + target, ``labels`` the same with the prompt and
    padding set to ``IGNORE_INDEX``. Encoder-decoder: ``input_ids`` = prompt, ``labels``
    = target (``[B, T]``).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    task_index: torch.Tensor
    task_names: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows), default=0)), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def collate_tasks(examples: list[TaskExample], task_names: tuple[str, ...], pad_token_id: int,
                  max_length: int, encoder_decoder: bool = False) -> TaskBatch:
    """One :class:`TaskBatch`; sequences longer than ``max_length`` are cut at the end."""
    if encoder_decoder:
        inputs = [e.prompt_ids[:max_length] for e in examples]
        labels = _pad([e.target_ids[:max_length] for e in examples], IGNORE_INDEX)
    else:
        inputs = [(e.prompt_ids + e.target_ids)[:max_length] for e in examples]
        labels = _pad([[IGNORE_INDEX] * min(len(e.prompt_ids), len(seq))
                       + seq[len(e.prompt_ids):] for e, seq in zip(examples, inputs)],
                      IGNORE_INDEX)
    input_ids = _pad(inputs, pad_token_id)
    attention_mask = _pad([[1] * len(seq) for seq in inputs], 0)
    return TaskBatch(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                     task_index=torch.tensor([e.task for e in examples], dtype=torch.long),
                     task_names=task_names)


class TaskDataModule(SourceDataModule):
    """Text-to-text task batches of MAG data.

    ``tasks`` builds each graph's pairs (e.g. :class:`~magdi_lightning.data.tasks.
    TinyLLMTasks`); ``encoder_decoder`` is set from the student by ``magdi-train``. The
    held-out accuracy prompt carries ``tasks.evaluation_prefix`` (TinyLLM evaluates the
    answer task). ``batch_size`` counts pairs, or questions with ``group_by_question``
    (then a batch is those questions' pairs, every task of each). ``max_prompt_length``
    cuts prompts (with the task prefix) to that many tokens before ``max_length`` applies,
    as TinyLLM's code cuts its inputs at 100 tokens and its targets at 256; a cut keeps
    an encoder prompt's closing EOS, as the tokenizer's own truncation does.
    """

    def __init__(self, *args: Any, tasks: TaskBuilder, group_by_question: bool = False,
                 max_prompt_length: int | None = None, **kwargs: Any) -> None:
        if max_prompt_length is not None and max_prompt_length < 2:
            raise ValueError(f"max_prompt_length must be >= 2 or null, got {max_prompt_length}")
        super().__init__(*args, **kwargs)
        self.tasks = tasks
        self.group_by_question = group_by_question
        self.max_prompt_length = max_prompt_length
        self.task_names: tuple[str, ...] = ()

    @property
    def formatter(self) -> PromptFormatter:
        return self.formatter_for(self.tasks.evaluation_prefix)

    def formatter_for(self, prefix: str) -> PromptFormatter:
        if self.tokenizer is None:
            raise RuntimeError("TaskDataModule needs the student's tokenizer before setup")
        return PromptFormatter(self.tokenizer, self.template, self.use_chat_template, prefix)

    def build_examples(self) -> dict[str, list[Any]]:
        """Per split, the examples (``group_by_question``: each question's list of them)."""
        pairs = [self.tasks.tasks(graph) for graph in self.graph_list]
        self.task_names = tuple(sorted({t.task for graph_pairs in pairs for t in graph_pairs}))
        index = {name: i for i, name in enumerate(self.task_names)}
        flat = [t for graph_pairs in pairs for t in graph_pairs]
        prompts, targets = self._tokenized(flat)
        examples, start = [], 0
        for graph_pairs in pairs:
            examples.append([TaskExample(index[t.task], prompts[start + i], targets[start + i])
                             for i, t in enumerate(graph_pairs)])
            start += len(graph_pairs)
        if self.group_by_question:
            return {split: [examples[i] for i in indices if examples[i]]
                    for split, indices in self.splits.items()}
        return {split: [e for i in indices for e in examples[i]]
                for split, indices in self.splits.items()}

    def pairs_of(self, examples: list[Any]) -> list[TaskExample]:
        """The pairs of a list of examples, in order: the examples themselves, or with
        ``group_by_question`` the pairs of each question in turn."""
        if self.group_by_question:
            return [pair for question in examples for pair in question]
        return examples

    def collate(self, examples: list[Any]) -> TaskBatch:
        return collate_tasks(self.pairs_of(examples), self.task_names,
                             self.tokenizer.pad_token_id, self.max_length, self.encoder_decoder)

    def held_out_questions(self, split: str = "test") -> list[Question]:
        """As :meth:`SourceDataModule.held_out_questions`, with each multiple-choice
        question's option texts when it lists them in TinyLLM's layout, so an answer given
        as an option's text (TinyLLM's answer target) is scored as that option."""
        return [_with_listed_choices(q) for q in super().held_out_questions(split)]

    def _tokenized(self, pairs: list[TextTask]) -> tuple[list[list[int]], list[list[int]]]:
        """Prompt and target ids of every pair, from the cache when present."""
        cache = self.cache_dir / "tokenized" / self.cache_key(
            "tasks", self.tasks.describe(), str(self.max_prompt_length))
        if cache.exists():
            table = datasets.load_from_disk(str(cache))
        else:
            raw = datasets.Dataset.from_dict({
                "prefix": [t.prefix for t in pairs], "question": [t.question for t in pairs],
                "target": [t.target for t in pairs]})
            table = raw.map(self._tokenize, batched=True, batch_size=1000,
                            remove_columns=["prefix", "question", "target"])
            table.save_to_disk(str(cache))
        return list(table["prompt_ids"]), list(table["target_ids"])

    def _tokenize(self, batch: dict[str, list[str]]) -> dict[str, list[Any]]:
        plain = self.formatter_for("")
        prompts = plain.encode_prompts([p + q for p, q in zip(batch["prefix"],
                                                              batch["question"])])
        if self.max_prompt_length is not None:
            prompts = [self._cut_prompt(ids) for ids in prompts]
        return {"prompt_ids": prompts, "target_ids": plain.encode_completions(batch["target"])}

    def _cut_prompt(self, ids: list[int]) -> list[int]:
        limit = self.max_prompt_length
        assert limit is not None
        if len(ids) <= limit:
            return ids
        eos = self.tokenizer.eos_token_id
        if self.encoder_decoder and eos is not None and ids[-1] == eos:
            return [*ids[:limit - 1], eos]
        return ids[:limit]


def _with_listed_choices(question: Question) -> Question:
    """``question`` with the option texts its text lists in TinyLLM's layout, if any."""
    if question.task != "multiple_choice" or question.choices is not None:
        return question
    choices = tinyllm_choices(question.question)
    if choices is None or question.gold not in CHOICE_LETTERS[:len(choices)]:
        return question
    return replace(question, choices=tuple(choices))
