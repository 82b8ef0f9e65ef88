"""The embedded default tokenizer: byte-level BPE trained on the toy world, digits split.

No tokenizer can be downloaded here, so the project trains its own and ships the
result in ``magdi_lightning/assets/toy_tokenizer``. Digits are always single tokens
(arithmetic is learned digit by digit, as in Llama and Mistral tokenizers); byte-level
fallback means any text, not only toy-world text, tokenizes without unknown tokens.
Rebuild with ``python -m magdi_lightning.models.tokenizer``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from magdi_lightning.sources.toy import ToyWorldConfig, generate_problems, solve

__all__ = ["DEFAULT_TOKENIZER_DIR", "SPECIAL_TOKENS", "train_toy_tokenizer"]

DEFAULT_TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "assets" / "toy_tokenizer"
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>",
                  "unk_token": "<unk>"}


def _toy_corpus() -> Iterator[str]:
    import random

    rng = random.Random(1234)
    for steps, max_number in itertools.product((2, 3, 4), (9, 20)):
        config = ToyWorldConfig(num_questions=2000, min_steps=steps, max_steps=steps,
                                max_number=max_number, max_value=max_number * 2)
        for problem in generate_problems(config, rng):
            reasoning, _ = solve(problem, rng, error_rate=0.3)
            yield f"Question: {problem.text}\nAnswer: {reasoning}"


def train_toy_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train the default tokenizer deterministically from the toy world generator."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    specials = list(SPECIAL_TOKENS.values())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_toy_corpus(), trainer=trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.token_to_id(bos))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


if __name__ == "__main__":
    trained = train_toy_tokenizer()
    trained.save_pretrained(DEFAULT_TOKENIZER_DIR)
    print(f"saved a {len(trained)}-token tokenizer to {DEFAULT_TOKENIZER_DIR}")
