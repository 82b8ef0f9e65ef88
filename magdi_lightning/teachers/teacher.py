"""A teacher as the protocols see it: an endpoint plus persona, retries and accounting.

Teacher calls are the expensive part of distillation, so a transient failure (rate
limit, server error, timeout, dropped connection, a response cut off mid-JSON) is
retried with exponential backoff and full jitter, and every attempt is counted by kind;
an error that retrying cannot fix (a bad key, an unknown model, a malformed request)
stops the run at once instead of burning the retry budget on every question.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from magdi_lightning.teachers.endpoints import Completion, Endpoint, Messages, TeacherSpec

__all__ = ["FATAL", "RetryPolicy", "Teacher", "TeacherFailure", "Usage", "classify"]

log = logging.getLogger(__name__)

#: Failure kinds that are never retried: the run's configuration is wrong.
FATAL = "fatal"


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``max_attempts`` tries; before try n+1 wait ``uniform(0, min(max_delay,
    base_delay * 2**n))`` seconds ("full jitter", so many clients hitting one rate limit
    do not retry in lockstep), or longer when the server's ``retry-after`` asks for it
    (never beyond ``max_delay``)."""

    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy: need max_attempts >= 1 and non-negative delays")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** attempt))


@dataclass
class Usage:
    """What one teacher has cost so far: requests, failures by kind, tokens, money."""

    requests: int = 0
    succeeded: int = 0
    retries: int = 0
    gave_up: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "succeeded": self.succeeded,
                "retries": self.retries, "gave_up": self.gave_up,
                "failures": dict(sorted(self.failures.items())),
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost": round(self.cost, 6)}


class TeacherFailure(RuntimeError):
    """A request that failed for good: every attempt failed, or a fatal error."""

    def __init__(self, teacher: str, kind: str, message: str) -> None:
        self.teacher, self.kind = teacher, kind
        super().__init__(f"teacher {teacher!r}: {kind}: {message}")


def classify(error: BaseException) -> str:
    """The failure kind of an exception from an endpoint: ``rate_limit``,
    ``server_error``, ``timeout``, ``connection``, ``malformed`` (a response that is not
    valid JSON or lacks its fields) or :data:`FATAL`."""
    import openai

    if isinstance(error, openai.RateLimitError):
        return "rate_limit"
    if isinstance(error, openai.APITimeoutError | asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    if isinstance(error, openai.APIStatusError):
        return "server_error" if error.status_code >= 500 or error.status_code == 408 \
            else FATAL
    if isinstance(error, json.JSONDecodeError | openai.APIResponseValidationError
                  | ValueError | KeyError | TypeError | AttributeError):
        return "malformed"
    return FATAL


class Teacher:
    """Sends chat messages to one endpoint with the teacher's persona and settings.

    At most ``spec.max_concurrency`` requests are in flight at once; each is retried
    under ``policy``; ``usage`` counts every attempt. ``seed`` seeds the jitter only.
    """

    def __init__(self, spec: TeacherSpec, endpoint: Endpoint,
                 policy: RetryPolicy | None = None, seed: int = 0) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.policy = policy or RetryPolicy()
        self.usage = Usage()
        self._rng = random.Random(f"{seed}:{spec.name}")
        self._slots = asyncio.Semaphore(spec.max_concurrency)

    @property
    def name(self) -> str:
        return self.spec.name

    async def chat(self, messages: Messages, *, temperature: float | None = None
                   ) -> Completion:
        """The completion of ``messages`` (the persona goes first as the system message)."""
        if self.spec.system_prompt:
            messages = [{"role": "system", "content": self.spec.system_prompt}, *messages]
        temperature = self.spec.temperature if temperature is None else temperature
        for attempt in range(self.policy.max_attempts):
            self.usage.requests += 1
            try:
                async with self._slots:
                    completion = await self.endpoint.complete(
                        messages, temperature=temperature, max_tokens=self.spec.max_tokens)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every endpoint error is classified below
                kind = classify(error)
                self.usage.failures[kind] += 1
                if kind == FATAL:
                    raise TeacherFailure(self.name, kind, _describe(error)) from error
                if attempt + 1 == self.policy.max_attempts:
                    self.usage.gave_up += 1
                    raise TeacherFailure(self.name, kind, f"gave up after {attempt + 1} "
                                         f"attempts: {_describe(error)}") from error
                self.usage.retries += 1
                log.debug("teacher %s: %s, retry %d", self.name, kind, attempt + 1)
                await asyncio.sleep(max(self.policy.delay(attempt, self._rng),
                                        min(_retry_after(error), self.policy.max_delay)))
                continue
            self.usage.succeeded += 1
            self.usage.prompt_tokens += completion.prompt_tokens
            self.usage.completion_tokens += completion.completion_tokens
            self.usage.cost += self.spec.cost(completion.prompt_tokens,
                                              completion.completion_tokens)
            return completion
        raise AssertionError("unreachable: the loop returns or raises")


def _retry_after(error: BaseException) -> float:
    """Seconds a server asked us to wait (its ``retry-after`` header), else 0."""
    response = getattr(error, "response", None)
    try:
        return max(0.0, float(response.headers.get("retry-after", 0))) if response else 0.0
    except (TypeError, ValueError):  # an HTTP date, or garbage: fall back to our backoff
        return 0.0


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}"
