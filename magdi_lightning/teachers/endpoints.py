"""Where teacher responses come from: an OpenAI-compatible server or a local model.

One OpenAI-compatible client covers OpenAI itself, vLLM, TGI, llama.cpp and most
proxies, so that is the remote backend; the ``transformers`` backend runs a local model
in-process (tests, or a small teacher on the training machine). Both answer a list of
chat messages with a :class:`Completion`. Retrying, rate limiting and accounting are not
done here but by :class:`~magdi_lightning.teachers.teacher.Teacher`, the same way for
every backend.

The API key is read from the environment variable a teacher's config names, at the
moment the client is built, and handed to the run's scrubber
(:mod:`~magdi_lightning.teachers.secrets`) as it is read; the key itself never enters a
config, a log or an output.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from magdi_lightning.errors import UserError
from magdi_lightning.teachers.secrets import secret_from_env

__all__ = [
    "BACKENDS",
    "Completion",
    "Endpoint",
    "OpenAIEndpoint",
    "TeacherSpec",
    "TransformersEndpoint",
    "build_endpoint",
]

Messages = list[dict[str, str]]
#: Backend names a :class:`TeacherSpec` may use.
BACKENDS = ("openai", "transformers")


@dataclass(frozen=True)
class TeacherSpec:
    """One teacher (an agent of a discussion): its model, where it runs, how it speaks.

    ``api_key_env`` names the environment variable holding the key (``None``: no key,
    e.g. a local vLLM). ``timeout`` is the seconds one request may take as a whole, from
    connecting to the last byte of the response (a server that trickles its reply is cut
    off like one that never answers). Prices are per million tokens and only feed the cost
    estimate.
    """

    name: str
    model: str
    backend: str = "openai"
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int = 512
    system_prompt: str | None = None
    timeout: float = 120.0
    max_concurrency: int = 16
    input_price_per_million: float = 0.0
    output_price_per_million: float = 0.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"teacher {self.name!r}: backend must be one of {BACKENDS}, "
                             f"got {self.backend!r}")
        if self.max_concurrency < 1 or self.max_tokens < 1 or self.timeout <= 0:
            raise UserError(f"teacher {self.name!r}: max_concurrency, max_tokens and timeout "
                             "must be positive")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Estimated price of that many tokens, in the currency of the prices."""
        return (prompt_tokens * self.input_price_per_million
                + completion_tokens * self.output_price_per_million) / 1e6


@dataclass(frozen=True)
class Completion:
    """One response: its text, token counts (as the server reports them) and why it ended."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


class Endpoint(Protocol):
    """Answers chat messages; raises on transport errors (classified by the caller)."""

    async def complete(self, messages: Messages, *, temperature: float,
                       max_tokens: int) -> Completion: ...

    async def aclose(self) -> None: ...


class OpenAIEndpoint:
    """Chat completions from any OpenAI-compatible server through the ``openai`` package.

    The client's own retries are off (``max_retries=0``): retries, with backoff and
    jitter, and their accounting belong to the caller, so every attempt is counted. The
    client's timeout (httpx's) applies to each phase and to each read on its own, so a
    server sending a byte a second would never trip it; ``spec.timeout`` is therefore also
    a deadline on the whole call, which cancels it and raises :class:`asyncio.TimeoutError`.
    """

    def __init__(self, spec: TeacherSpec) -> None:
        from openai import AsyncOpenAI

        key = None
        if spec.api_key_env:
            key = secret_from_env(spec.api_key_env)
            if not key:
                raise UserError(f"teacher {spec.name!r}: the environment variable "
                                f"{spec.api_key_env}, which should hold its API key, is not "
                                "set; export it, or set the teacher's api_key_env to null "
                                "for a server that needs no key")
        self.model = spec.model
        self.timeout = spec.timeout
        self._client = AsyncOpenAI(base_url=spec.base_url, api_key=key or "no-key",
                                   max_retries=0, timeout=spec.timeout)

    async def complete(self, messages: Messages, *, temperature: float,
                       max_tokens: int) -> Completion:
        response = await asyncio.wait_for(self._client.chat.completions.create(
            model=self.model, messages=messages,  # type: ignore[arg-type]
            temperature=temperature, max_tokens=max_tokens), self.timeout)
        if not response.choices:
            raise ValueError("the response has no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(text=choice.message.content or "",
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          finish_reason=choice.finish_reason)

    async def aclose(self) -> None:
        await self._client.close()


class TransformersEndpoint:
    """A local causal LM (a Hub name or a directory) answering through ``generate``.

    Requests are served one at a time on a worker thread (a lock guards the model), so
    the event loop, and the other teachers, keep running while it generates. The chat
    template is used when the tokenizer has one; otherwise the messages are joined as
    ``Role: text`` lines ending in ``Assistant:``.
    """

    def __init__(self, spec: TeacherSpec) -> None:
        from magdi_lightning.models.student import load_student

        self._student = load_student(name_or_path=spec.model)
        self._student.model.eval()
        self._lock = threading.Lock()

    async def complete(self, messages: Messages, *, temperature: float,
                       max_tokens: int) -> Completion:
        return await asyncio.to_thread(self._generate, messages, temperature, max_tokens)

    def _generate(self, messages: Messages, temperature: float, max_tokens: int) -> Completion:
        import torch

        tokenizer, model = self._student.tokenizer, self._student.model
        if tokenizer.chat_template:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                tokenize=True)
            ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        else:
            text = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
            ids = tokenizer(text + "\nAssistant:", add_special_tokens=True)["input_ids"]
        sampling: dict[str, Any] = ({"do_sample": True, "temperature": temperature}
                                    if temperature > 0 else {"do_sample": False})
        with self._lock, torch.no_grad():
            output = model.generate(input_ids=torch.tensor([ids], device=model.device),
                                    max_new_tokens=max_tokens, top_p=None, top_k=None,
                                    pad_token_id=tokenizer.pad_token_id, **sampling)
        new = output[0, len(ids):]
        ended = bool(len(new)) and int(new[-1]) == tokenizer.eos_token_id
        return Completion(text=tokenizer.decode(new, skip_special_tokens=True).strip(),
                          prompt_tokens=len(ids), completion_tokens=len(new),
                          finish_reason="stop" if ended else "length")

    async def aclose(self) -> None:
        return None


def build_endpoint(spec: TeacherSpec) -> Endpoint:
    """The endpoint ``spec.backend`` names."""
    return OpenAIEndpoint(spec) if spec.backend == "openai" else TransformersEndpoint(spec)
