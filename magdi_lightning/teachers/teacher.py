"""A teacher as the protocols see it: an endpoint plus persona, retries and accounting.

Teacher calls are the expensive part of distillation, so a transient failure (rate
limit, server error, timeout, dropped connection, a response cut off mid-JSON) is
retried with exponential backoff and full jitter, and every attempt is counted by kind;
an error that retrying cannot fix (a bad key, an unknown model, a malformed request)
stops the run at once instead of burning the retry budget on every question, and so does
a server that refused every connection before it ever answered (a wrong ``base_url``, a
server that is not running). Those end the command as a :class:`TeacherConfigError`: a
one-paragraph message naming the teacher, its endpoint and what to check, not a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from magdi_lightning.errors import UserError
from magdi_lightning.teachers.endpoints import Completion, Endpoint, Messages, TeacherSpec
from magdi_lightning.teachers.secrets import SCRUBBER

__all__ = ["FATAL", "RetryPolicy", "Teacher", "TeacherConfigError", "TeacherFailure", "Usage",
           "classify"]

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
            raise UserError("RetryPolicy: need max_attempts >= 1 and non-negative delays")

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
    """A request that failed for good: every attempt failed, or a fatal error.

    The message is scrubbed of secrets: it quotes the server's error, which may quote the
    key, and it ends up in the summary, the log and on stderr.
    """

    def __init__(self, teacher: str, kind: str, message: str) -> None:
        self.teacher, self.kind = teacher, kind
        super().__init__(SCRUBBER.scrub(f"teacher {teacher!r}: {kind}: {message}"))


class TeacherConfigError(TeacherFailure, UserError):
    """A fatal failure the user fixes in the config or the environment (a key the server
    does not accept, an unknown model or URL, a server that cannot be reached): reported
    as a user error, one paragraph and exit code 2."""

    def __init__(self, teacher: str, message: str) -> None:
        super().__init__(teacher, FATAL, message)


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
                last = attempt + 1 == self.policy.max_attempts
                if last and kind != FATAL:
                    self.usage.gave_up += 1
                # The endpoint's exception is dropped from a config error's traceback (its
                # body may quote the key; the message holds its scrubbed description) and
                # kept for any other failure, as the traceback a bug needs.
                if config_error := self._config_error(kind, error, last, attempt + 1):
                    raise config_error from None
                if kind == FATAL:
                    raise TeacherFailure(self.name, kind, _describe(error)) from error
                if last:
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

    def _config_error(self, kind: str, error: BaseException, last: bool,
                      attempts: int) -> TeacherConfigError | None:
        """The user error behind a failure, if the config or environment is to blame: an HTTP
        4xx that retrying cannot fix, or a last refused connection of a teacher that never
        answered this run (a server that answered once is up, and only dropped one)."""
        import openai

        spec = self.spec
        where = f"model {spec.model!r} at {spec.base_url or 'the OpenAI API'}"
        if kind == FATAL and isinstance(error, openai.APIStatusError):
            status = error.status_code
            if status in (401, 403):
                what = "the server did not accept the API key"
                fix = (f"check that the environment variable {spec.api_key_env} holds a "
                       "valid key for this server" if spec.api_key_env else
                       "the teacher sends no key (its api_key_env is null); set api_key_env "
                       "to the environment variable that holds one")
            elif status == 404:
                what = "the server knows no such model or URL"
                fix = ("check the teacher's model and base_url (an OpenAI-compatible "
                       "base_url usually ends in /v1)")
            else:
                what = "the server refused the request"
                fix = "check the teacher's settings (model, max_tokens, temperature)"
            return TeacherConfigError(self.name, f"{where}: {what} (HTTP {status}, "
                                      f"{_describe(error)}); {fix}")
        if kind == "connection" and last and not self.usage.succeeded:
            return TeacherConfigError(self.name, f"{where}: could not connect in {attempts} "
                                      f"attempts and never answered ({_describe(error)}); "
                                      "check the teacher's base_url and that the server is "
                                      "running")
        return None


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
