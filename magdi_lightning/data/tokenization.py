"""How a question and a response become token ids, the same way in training and generation."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

__all__ = ["PromptFormatter"]


@dataclass
class PromptFormatter:
    """Turns (question, response) into prompt ids and completion ids.

    With a tokenizer that has a chat template (and ``use_chat_template`` not False),
    the question is a user turn and the completion the assistant turn; otherwise
    ``template`` frames the question and the response follows after a space. The
    completion ends with EOS so the student learns to stop. ``prefix`` goes before the
    question: the instruction that marks a task in multi-task training (TinyLLM's
    ``predict:``).
    """

    tokenizer: PreTrainedTokenizerBase
    template: str = "Question: {question}\nAnswer:"
    use_chat_template: bool | None = None
    prefix: str = ""

    @property
    def chat(self) -> bool:
        has_template = getattr(self.tokenizer, "chat_template", None) is not None
        return has_template if self.use_chat_template is None else self.use_chat_template

    def prompt_text(self, question: str) -> str:
        question = self.prefix + question
        if self.chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], tokenize=False,
                add_generation_prompt=True)
        return self.template.format(question=question)

    def encode_prompts(self, questions: list[str], response_start: str = "") -> list[list[int]]:
        """Prompt ids; ``response_start`` (e.g. a strategy tag) is appended as the start of
        the response, tokenized as a completion would be, to make the model continue it."""
        texts = [self.prompt_text(q) for q in questions]
        # A chat template writes its own BOS; a plain template lets the tokenizer add it.
        ids = self.tokenizer(texts, add_special_tokens=not self.chat)["input_ids"]
        if not response_start:
            return ids
        start = self.tokenizer(response_start if self.chat else f" {response_start}",
                               add_special_tokens=False)["input_ids"]
        return [prompt + start for prompt in ids]

    def encode_completions(self, responses: list[str]) -> list[list[int]]:
        texts = [r if self.chat else f" {r}" for r in responses]
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        return [ids + eos for ids in
                self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def encode_pairs(self, questions: list[str], responses: list[str], max_length: int
                     ) -> tuple[list[list[int]], list[int]]:
        """Prompt-plus-completion ids truncated to ``max_length``, and each prompt's length
        (the number of leading tokens masked from the next-token loss)."""
        prompts = self.encode_prompts(questions)
        completions = self.encode_completions(responses)
        return ([(p + c)[:max_length] for p, c in zip(prompts, completions)],
                [min(len(p), max_length) for p in prompts])

