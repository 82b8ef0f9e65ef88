"""Batched generation from the student, answer extraction, and self-consistency voting."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.evaluation.answers import answers_match, extract_answer
from magdi_lightning.evaluation.benchmarks import BenchmarkExample
from magdi_lightning.models.student import Student

__all__ = ["Prediction", "accuracy_of", "evaluate", "generate"]


@dataclass(frozen=True)
class Prediction:
    """The greedy answer to one question and, with self-consistency, the sampled vote."""

    id: str
    question: str
    output: str
    extracted: str | None
    gold: str
    correct: bool
    output_tokens: int
    samples: list[str] | None = None
    vote: str | None = None
    vote_correct: bool | None = None


@torch.no_grad()
def generate(student: Student, formatter: PromptFormatter, questions: list[str],
             batch_size: int = 64, max_new_tokens: int = 64, do_sample: bool = False,
             temperature: float = 1.0) -> list[tuple[str, int]]:
    """Completions for ``questions`` and their token counts, batched with left padding
    and the KV cache."""
    model, tokenizer = student.model, student.tokenizer
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs: list[tuple[str, int]] = []
    try:
        for start in range(0, len(questions), batch_size):
            prompts = formatter.encode_prompts(questions[start:start + batch_size])
            width = max(len(p) for p in prompts)
            input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros_like(input_ids)
            for row, prompt in enumerate(prompts):
                input_ids[row, width - len(prompt):] = torch.tensor(prompt)
                attention_mask[row, width - len(prompt):] = 1
            generated = model.generate(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                max_new_tokens=max_new_tokens, do_sample=do_sample,
                temperature=temperature if do_sample else None, top_p=None, top_k=None,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )[:, width:]
            lengths = (generated != tokenizer.pad_token_id).sum(dim=1).tolist()
            texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
            outputs.extend((text.strip(), n) for text, n in zip(texts, lengths))
    finally:
        model.train(was_training)
    return outputs


def evaluate(student: Student, formatter: PromptFormatter, examples: list[BenchmarkExample],
             batch_size: int = 64, max_new_tokens: int = 64, self_consistency: int = 1,
             temperature: float = 0.7) -> list[Prediction]:
    """Greedy predictions for ``examples``; with ``self_consistency`` = k > 1 also k
    sampled answers per question and their majority vote (ties: the first answer seen)."""
    questions = [example.question for example in examples]
    greedy = generate(student, formatter, questions, batch_size, max_new_tokens)
    sampled: list[list[str]] = [[] for _ in examples]
    if self_consistency > 1:
        repeated = [q for q in questions for _ in range(self_consistency)]
        texts = generate(student, formatter, repeated, batch_size, max_new_tokens,
                         do_sample=True, temperature=temperature)
        for i, (text, _) in enumerate(texts):
            sampled[i // self_consistency].append(text)

    predictions = []
    for example, (text, n_tokens), samples in zip(examples, greedy, sampled):
        extracted = extract_answer(text, example.task, example.choices)
        vote = vote_correct = None
        if samples:
            answers = [extract_answer(s, example.task, example.choices) for s in samples]
            counts = Counter(a for a in answers if a is not None)
            vote = counts.most_common(1)[0][0] if counts else None
            vote_correct = answers_match(vote, example.gold, example.task, example.choices)
        predictions.append(Prediction(
            id=example.id, question=example.question, output=text, extracted=extracted,
            gold=example.gold, output_tokens=n_tokens,
            correct=answers_match(text, example.gold, example.task, example.choices),
            samples=samples or None, vote=vote, vote_correct=vote_correct,
        ))
    return predictions


def accuracy_of(predictions: list[Prediction]) -> float:
    """Share of greedy predictions that are correct (NaN for none)."""
    if not predictions:
        return float("nan")
    return sum(p.correct for p in predictions) / len(predictions)
