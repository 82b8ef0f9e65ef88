"""Batched generation: prompts are batched by length, answers come back in question order.

Greedy decoding of a left-padded batch computes each row as it would alone, so batching
(and the reordering by prompt length) must not change any output. The student's weights
are drawn wide enough that it answers every question differently, so an answer returned
at the wrong index shows.
"""

from __future__ import annotations

import pytest
import torch

from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.evaluation.generation import generate
from tests.factories import tiny_student

QUESTIONS = [
    "Ann has 3 pens and buys 2 more pens at the shop on the corner of the street after "
    "school. How many pens does Ann have now?",
    "Ben has 9 coins?",
    "Eve has 7 cards. She sells 2. How many?",
    "Tom has 4 apples. He eats 1. He buys 6 more, then gives 2 to Sue and 1 to Max. How "
    "many apples does Tom have left at the end of the day?",
    "Sue has 5 hats.",
]


def test_batched_generation_equals_one_at_a_time_in_question_order() -> None:
    torch.manual_seed(0)
    student = tiny_student(initializer_range=0.5)
    formatter = PromptFormatter(student.tokenizer)
    lengths = [len(p) for p in formatter.encode_prompts(QUESTIONS)]
    assert lengths != sorted(lengths)  # the batches really are reordered

    alone = [generate(student, formatter, [q], batch_size=1, max_new_tokens=8)[0]
             for q in QUESTIONS]
    batched = generate(student, formatter, QUESTIONS, batch_size=2, max_new_tokens=8)

    assert batched == alone
    assert len({text for text, _ in alone}) == len(QUESTIONS)


def test_forced_response_start_is_kept_with_reordering() -> None:
    torch.manual_seed(0)
    student = tiny_student()
    formatter = PromptFormatter(student.tokenizer)
    outputs = generate(student, formatter, QUESTIONS, batch_size=3, max_new_tokens=4,
                       response_start="[cot]")
    assert len(outputs) == len(QUESTIONS)
    assert all(text.startswith("[cot]") for text, _ in outputs)


def test_sampling_option_samples_and_top_k_one_is_greedy() -> None:
    """``evaluate(sampling=...)`` answers by sampling (MAGDi's test.py decoding); top-k 1
    keeps only the likeliest token, so it must equal greedy decoding."""
    from omegaconf import OmegaConf

    from magdi_lightning.evaluation.generation import evaluate, sampling_settings
    from magdi_lightning.questions import Question

    torch.manual_seed(0)
    student = tiny_student(initializer_range=0.5)
    formatter = PromptFormatter(student.tokenizer)
    examples = [Question(id=str(i), question=q, gold="5", task="numeric")
                for i, q in enumerate(QUESTIONS)]
    greedy = [p.output for p in evaluate(student, formatter, examples, 2, 8)]
    top1 = [p.output for p in evaluate(student, formatter, examples, 2, 8,
                                       sampling={"temperature": 0.7, "top_k": 1})]
    assert top1 == greedy
    reference = sampling_settings(OmegaConf.create(
        {"sampling": {"temperature": 0.7, "top_p": 0.9, "top_k": 50}}))
    assert reference == {"temperature": 0.7, "top_p": 0.9, "top_k": 50}
    torch.manual_seed(1)
    sampled = [p.output for p in evaluate(student, formatter, examples, 2, 8,
                                          sampling={"temperature": 5.0})]
    assert sampled != greedy
    assert sampling_settings(OmegaConf.create({"sampling": None})) is None
    with pytest.raises(ValueError, match="top_q"):
        sampling_settings(OmegaConf.create({"sampling": {"top_q": 0.5}}))
