"""Batched generation from the student, answer extraction, and self-consistency voting.

An output that opens with a strategy tag (:mod:`magdi_lightning.strategies`) is scored by
its solution; a program-of-thought solution is run in the sandbox and its ``ans`` is the
answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.models.student import Student
from magdi_lightning.questions import Question
from magdi_lightning.scoring.answers import answers_match, extract_answer
from magdi_lightning.strategies import PROGRAM, split_strategy

__all__ = ["Prediction", "answer_texts", "evaluate", "generate",
           "sampling_settings"]


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
    strategy: str | None = None


@torch.no_grad()
def generate(student: Student, formatter: PromptFormatter, questions: list[str],
             batch_size: int = 64, max_new_tokens: int = 64, do_sample: bool = False,
             temperature: float = 1.0, response_start: str = "", top_p: float | None = None,
             top_k: int | None = None) -> list[tuple[str, int]]:
    """Completions for ``questions`` and their token counts, batched with left padding
    and the KV cache. ``response_start`` (a causal student only) is forced as the start of
    every response, e.g. a strategy tag, and included in the returned text. ``top_p`` and
    ``top_k`` (with ``do_sample``) sample from the nucleus and the k likeliest tokens, as
    SIKeD's student sampling and MAGDi's test script do.

    Prompts are batched in order of length, so a batch pads its prompts to similar widths
    (GSM8K prompts run from ~40 to ~360 tokens); outputs come back in the questions'
    order, and greedy ones do not depend on the batching."""
    model, tokenizer = student.model, student.tokenizer
    encoder_decoder = student.is_encoder_decoder
    if response_start and encoder_decoder:
        raise ValueError("a forced response start needs a causal LM student")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    all_prompts = formatter.encode_prompts(questions, response_start)
    order = sorted(range(len(all_prompts)), key=lambda i: len(all_prompts[i]))
    outputs: list[tuple[str, int]] = [("", 0)] * len(all_prompts)
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            prompts = [all_prompts[i] for i in rows]
            width = max(len(p) for p in prompts)
            input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros_like(input_ids)
            for row, prompt in enumerate(prompts):
                input_ids[row, width - len(prompt):] = torch.tensor(prompt)
                attention_mask[row, width - len(prompt):] = 1
            # Blocks compiled for training (compile.enabled) run eager here: their graphs
            # are for whole graph batches, and decoding one token at a time with a KV cache
            # would only retrace them.
            with torch.compiler.set_stance("force_eager"):
                generated = model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                    max_new_tokens=max_new_tokens, do_sample=do_sample,
                    temperature=temperature if do_sample else None,
                    top_p=top_p if do_sample else None, top_k=top_k if do_sample else None,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                )
            # A decoder's output starts with its start token (the pad token); a causal
            # model's repeats the prompt.
            new = generated if encoder_decoder else generated[:, width:]
            lengths = (new != tokenizer.pad_token_id).sum(dim=1).tolist()
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, text, n in zip(rows, texts, lengths):
                outputs[i] = (f"{response_start} {text.strip()}" if response_start
                              else text.strip(), n)
    finally:
        model.train(was_training)
    return outputs


def evaluate(student: Student, formatter: PromptFormatter, examples: list[Question],
             batch_size: int = 64, max_new_tokens: int = 64, self_consistency: int = 1,
             temperature: float = 0.7, sampling: Mapping[str, Any] | None = None
             ) -> list[Prediction]:
    """Greedy predictions for ``examples``; with ``self_consistency`` = k > 1 also k
    sampled answers per question and their majority vote (ties: the first answer seen).

    ``sampling`` (``temperature``, ``top_p``, ``top_k``) replaces the greedy answer with
    one sampled answer, as MAGDi's test script decodes (T 0.7, top-p 0.9, top-k 50)."""
    questions = [example.question for example in examples]
    greedy = generate(student, formatter, questions, batch_size, max_new_tokens,
                      **({"do_sample": True, **sampling} if sampling else {}))
    sampled: list[list[str]] = [[] for _ in examples]
    if self_consistency > 1:
        repeated = [q for q in questions for _ in range(self_consistency)]
        texts = generate(student, formatter, repeated, batch_size, max_new_tokens,
                         do_sample=True, temperature=temperature)
        for i, (text, _) in enumerate(texts):
            sampled[i // self_consistency].append(text)

    resolved = iter(answer_texts([text for text, _ in greedy]
                                 + [sample for samples in sampled for sample in samples]))
    greedy_answers = [next(resolved) for _ in greedy]
    predictions = []
    for example, (text, n_tokens), samples, (strategy, answer_text) in zip(
            examples, greedy, sampled, greedy_answers):
        extracted = (None if answer_text is None
                     else extract_answer(answer_text, example.task, example.choices))
        vote = vote_correct = None
        if samples:
            answers = [None if sample is None else extract_answer(sample, example.task,
                                                                  example.choices)
                       for _, sample in (next(resolved) for _ in samples)]
            counts = Counter(a for a in answers if a is not None)
            vote = counts.most_common(1)[0][0] if counts else None
            vote_correct = answers_match(vote, example.gold, example.task, example.choices)
        predictions.append(Prediction(
            id=example.id, question=example.question, output=text, extracted=extracted,
            gold=example.gold, output_tokens=n_tokens,
            correct=answers_match(answer_text, example.gold, example.task, example.choices),
            samples=samples or None, vote=vote, vote_correct=vote_correct, strategy=strategy,
        ))
    return predictions


def sampling_settings(section: Any) -> dict[str, Any] | None:
    """A config section's ``sampling`` (``temperature``, ``top_p``, ``top_k``) as
    :func:`evaluate` takes it; None (greedy) when absent or null."""
    sampling = section.get("sampling") if section is not None else None
    if not sampling:
        return None
    settings = dict(sampling)
    unknown = set(settings) - {"temperature", "top_p", "top_k"}
    if unknown:
        raise ValueError(f"sampling takes temperature, top_p and top_k, not {sorted(unknown)}")
    return settings


def answer_texts(outputs: list[str]) -> list[tuple[str | None, str | None]]:
    """Each output's strategy and the text its answer is read from.

    Untagged and prose-strategy outputs are read as written (minus the tag); programs
    are run in the sandbox, all in one batch, and their value is the answer text
    (:func:`~magdi_lightning.scoring.pot.answer_text`; ``None`` when the program failed
    or produced nothing).
    """
    split = [split_strategy(text) for text in outputs]
    programs = [i for i, (strategy, _) in enumerate(split) if strategy == PROGRAM]
    texts: list[str | None] = [body for _, body in split]
    if programs:
        from magdi_lightning.scoring.pot import answer_text
        from magdi_lightning.scoring.sandbox import run_programs

        for i, result in zip(programs, run_programs([split[i][1] for i in programs])):
            texts[i] = (None if not result.ok or result.value is None
                        else answer_text(result.value))
    return [(strategy, text) for (strategy, _), text in zip(split, texts)]
