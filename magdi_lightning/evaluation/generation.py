"""Batched greedy (or sampled) generation from the student, and held-out accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from magdi_lightning.data.datamodule import HeldOutQuestion
from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.evaluation.answers import answers_match, extract_answer
from magdi_lightning.models.student import Student

__all__ = ["Prediction", "generate", "heldout_accuracy"]


@dataclass(frozen=True)
class Prediction:
    question: str
    output: str
    extracted: str | None
    gold: str
    correct: bool


@torch.no_grad()
def generate(student: Student, formatter: PromptFormatter, questions: list[str],
             batch_size: int = 64, max_new_tokens: int = 64, do_sample: bool = False,
             temperature: float = 1.0) -> list[str]:
    """Completions for ``questions``, batched with left padding and the KV cache."""
    model, tokenizer = student.model, student.tokenizer
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs: list[str] = []
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
            )
            outputs.extend(tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True))
    finally:
        model.train(was_training)
    return [text.strip() for text in outputs]


def heldout_accuracy(student: Student, formatter: PromptFormatter,
                     questions: list[HeldOutQuestion], batch_size: int = 64,
                     max_new_tokens: int = 64) -> tuple[float, list[Prediction]]:
    """Greedy accuracy on held-out questions, with each prediction for inspection."""
    if not questions:
        return float("nan"), []
    texts = generate(student, formatter, [q.question for q in questions], batch_size,
                     max_new_tokens)
    predictions = []
    for question, text in zip(questions, texts):
        extracted = extract_answer(text, question.task)
        predictions.append(Prediction(question.question, text, extracted, question.gold_answer,
                                      answers_match(extracted, question.gold_answer,
                                                    question.task)))
    return sum(p.correct for p in predictions) / len(predictions), predictions
