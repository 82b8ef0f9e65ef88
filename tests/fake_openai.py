"""A real local HTTP server that speaks the OpenAI chat-completions API and injects faults.

Why it exists: the teacher-side client (the code that asks teacher LLMs for answers) talks to
an OpenAI-compatible endpoint over HTTP, with retries, timeouts and concurrency. Mocking the
``openai`` package would test our assumptions about it rather than its real behaviour, so its
tests run the real ``openai`` client against this server instead, on 127.0.0.1 and an
ephemeral port. Faults are reproducible: whether a request fails, and how, is a pure function
of (seed, request contents, how often the server has seen those contents), never of thread
scheduling, so a flaky network can be simulated without flaky tests. (Attempts of one request
key are numbered in arrival order; identical requests sent at the same moment race for their
numbers, but the sequence of outcomes for that key stays the same.)

Usage::

    with FakeOpenAIServer(fault_rate=0.2, seed=7) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=5)
        ...
        assert server.counts()["ok"] > 0

What the real ``openai`` client (openai 3.54, ``max_retries=0``) sees for each fault:

* ``Fault.RATE_LIMIT`` -- HTTP 429 with an OpenAI error body and ``retry-after: 0``:
  ``openai.RateLimitError``. The client ignores a retry-after of 0 and falls back to its own
  backoff (0.5 s, 1 s, 2 s, ... less up to 25 % jitter); pass ``retry_after_seconds=0.01`` to
  make a retrying client's tests fast.
* ``Fault.SERVER_ERROR`` -- HTTP 500 with an OpenAI error body: ``openai.InternalServerError``
  (with a ``retry-after`` header only when ``retry_after_seconds`` > 0).
* ``Fault.TIMEOUT`` -- the server waits ``hang_seconds`` before answering normally, so a client
  whose timeout is shorter raises ``openai.APITimeoutError`` (a patient client gets a normal
  reply, still logged as "timeout").
* ``Fault.TRUNCATED`` -- HTTP 200, ``content-type: application/json``, a Content-Length that
  matches the body, and the body is the first half of a valid completion:
  ``json.JSONDecodeError`` -- not an ``openai.OpenAIError``, and not retried by the client
  whatever its ``max_retries`` (see ``TRUNCATED_RAISES``).
* ``Fault.SLOW`` -- a normal reply after ``slow_seconds``; it counts as a success.
* ``Fault.TRICKLE`` -- the status line and headers at once, then the body one byte every
  ``trickle_seconds``. Every read gets data in time, so the client's own (per-read) timeout
  never fires and only a deadline on the whole request stops it. Not among the default
  ``fault_kinds``: it is slow by design.

Without the right ``Authorization: Bearer <api_key>`` header (when ``api_key`` is set) the
client raises ``openai.AuthenticationError`` (HTTP 401). With ``echo_key=True`` the server
is as careless with the key as one can be: every error message and every completion quotes
the bearer token the request carried, for tests that the key never reaches an output.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_FAULTS",
    "DEFAULT_REPLY",
    "OUTCOMES",
    "TRUNCATED_RAISES",
    "FakeOpenAIServer",
    "Fault",
    "RequestRecord",
    "request_key",
]

DEFAULT_REPLY = "The answer is 42."
OUTCOMES = ("ok", "slow", "rate_limit", "server_error", "timeout", "truncated", "trickle",
            "unauthorized", "bad_request")
# What ``openai.OpenAI(...).chat.completions.create`` raises for a Fault.TRUNCATED reply: the
# client parses the body with ``json.loads`` and lets the error through, unwrapped and unretried.
TRUNCATED_RAISES: type[Exception] = json.JSONDecodeError

Responder = Callable[[dict[str, Any]], str]
TagOf = Callable[[dict[str, Any]], "str | None"]


class Fault(str, Enum):
    """A fault the server can inject; the value is the outcome string it is logged under."""

    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    TRUNCATED = "truncated"
    SLOW = "slow"
    TRICKLE = "trickle"


#: The faults drawn when none are named: all but TRICKLE, which holds a request for minutes.
DEFAULT_FAULTS = tuple(fault for fault in Fault if fault is not Fault.TRICKLE)


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. The bearer token itself is never stored."""

    index: int  # 0, 1, 2, ... in arrival order (monotonic)
    time: float  # wall-clock time.time() when the outcome was decided
    method: str
    path: str
    key: str | None  # request_key(body) for chat completions, else None
    attempt: int  # how many times the server had seen this key before (0 = first time)
    model: str | None
    tag: str | None  # tag_of(body), or None
    outcome: str  # one of OUTCOMES
    status: int  # HTTP status sent (or, for "timeout", sent after the hang)
    has_bearer: bool  # whether an "Authorization: Bearer ..." header was present

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return dataclasses.asdict(self)


def request_key(body: dict[str, Any]) -> str:
    """A stable hash of the canonical JSON of ``model``, ``messages`` and ``temperature``."""
    subject = {name: body.get(name) for name in ("model", "messages", "temperature")}
    canonical = json.dumps(subject, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _draw(seed: int, key: str, attempt: int) -> tuple[float, int]:
    """A deterministic uniform number in [0, 1) and an integer for (seed, key, attempt)."""
    digest = hashlib.sha256(f"{seed}:{key}:{attempt}".encode()).digest()
    uniform = int.from_bytes(digest[:8], "big") / 2**64
    return uniform, int.from_bytes(digest[8:16], "big")


def _default_responder(body: dict[str, Any]) -> str:
    """The reply when no responder is given."""
    return DEFAULT_REPLY


def _content_text(content: Any) -> str:
    """The text of a message's content: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _count_words(text: str) -> int:
    """Whitespace-separated words: the server's deterministic stand-in for tokens."""
    return len(text.split())


def _error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    """An error in OpenAI's format."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _HTTPServer(ThreadingHTTPServer):
    """Daemon handler threads; closing does not wait for hanging handlers."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 makes the kernel refuse connections when many
    # clients connect at once: a transport fault the log could not count.
    request_queue_size = 1024
    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that vanished (a killed run); report anything else."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the owning FakeOpenAIServer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def do_POST(self) -> None:
        """Chat completions (and 404 for anything else)."""
        self.server.fake._handle(self, "POST")

    def do_GET(self) -> None:
        """The model list (and 404 for anything else)."""
        self.server.fake._handle(self, "GET")

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; the server keeps its own log."""

    def read_body(self) -> bytes:
        """The request body, as long as Content-Length says."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status: int, payload: bytes, headers: dict[str, str] | None = None,
             byte_seconds: float = 0.0) -> None:
        """Send a JSON response, its body one byte every ``byte_seconds`` when > 0 (until the
        server stops); a client that has gone away is not an error."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if byte_seconds <= 0:
                self.wfile.write(payload)
                self.wfile.flush()
                return
            for index in range(len(payload)):
                self.wfile.write(payload[index:index + 1])
                self.wfile.flush()
                if self.server.fake._stopping.wait(byte_seconds):
                    self.close_connection = True
                    return
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True


class FakeOpenAIServer:
    """A local OpenAI-compatible chat-completions server with deterministic fault injection.

    Args:
        responder: reply text for a parsed request body; may be called from several threads
            at once (once per choice when ``n > 1``). Default: ``"The answer is 42."``.
        api_key: when set, requests need ``Authorization: Bearer <api_key>``, else 401.
        fault_rate: probability in [0, 1] that an attempt gets a fault; a plain attribute that
            may be changed while the server runs.
        fault_kinds: the faults to draw from (uniformly); default ``DEFAULT_FAULTS``.
        seed: seeds the fault schedule.
        max_consecutive_faults: after this many faults in a row for one request key, the next
            attempt for that key succeeds (SLOW counts as a success).
        retry_after_seconds: the ``retry-after`` header of 429 replies (also sent with 500
            replies when > 0).
        hang_seconds: how long a TIMEOUT fault waits before answering.
        slow_seconds: how long a SLOW fault waits before answering.
        trickle_seconds: the pause after each byte of a TRICKLE fault's body.
        echo_key: quote the request's bearer token in every error message and completion.
        tag_of: optional callable giving each request body a tag (e.g. a question id) for the
            log; an exception in it gives tag None.
        models: model ids listed by ``GET /v1/models``.
        log_path: optional file to which each record is appended as a JSON line.
    """

    def __init__(
        self,
        responder: Responder = _default_responder,
        *,
        api_key: str | None = None,
        fault_rate: float = 0.0,
        fault_kinds: Sequence[Fault] = DEFAULT_FAULTS,
        seed: int = 0,
        max_consecutive_faults: int = 3,
        retry_after_seconds: float = 0.0,
        hang_seconds: float = 5.0,
        slow_seconds: float = 0.3,
        trickle_seconds: float = 1.0,
        echo_key: bool = False,
        tag_of: TagOf | None = None,
        models: Sequence[str] = ("fake-model",),
        log_path: str | Path | None = None,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must lie in [0, 1], got {fault_rate}")
        if not fault_kinds:
            raise ValueError("fault_kinds must not be empty")
        if max_consecutive_faults < 0:
            raise ValueError("max_consecutive_faults must be >= 0")
        self.responder = responder
        self.api_key = api_key
        self.fault_rate = fault_rate
        self.fault_kinds: tuple[Fault, ...] = tuple(Fault(kind) for kind in fault_kinds)
        self.seed = seed
        self.max_consecutive_faults = max_consecutive_faults
        self.retry_after_seconds = retry_after_seconds
        self.hang_seconds = hang_seconds
        self.slow_seconds = slow_seconds
        self.trickle_seconds = trickle_seconds
        self.echo_key = echo_key
        self.tag_of = tag_of
        self.models = tuple(models)
        self.log_path = Path(log_path) if log_path is not None else None
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._attempts: dict[str, int] = {}
        self._consecutive: dict[str, int] = {}
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind 127.0.0.1 on an ephemeral port and serve in a background daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging handlers are woken and their replies discarded."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``openai.OpenAI(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- log ---------------------------------------------------------------------------------------

    @property
    def log(self) -> list[RequestRecord]:
        """A copy of all records so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def counts(self) -> collections.Counter[str]:
        """How many requests ended with each outcome."""
        return collections.Counter(record.outcome for record in self.log)

    def requests_for(self, tag: str) -> list[RequestRecord]:
        """The records whose tag (from ``tag_of``) equals ``tag``."""
        return [record for record in self.log if record.tag == tag]

    def _record(self, handler: _Handler, method: str, outcome: str, status: int,
                body: dict[str, Any] | None = None, key: str | None = None,
                attempt: int = 0) -> RequestRecord:
        """Append a record to the log (and to log_path); the caller holds no lock."""
        model = body.get("model") if body is not None else None
        tag = self._tag(body)
        with self._lock:
            record = RequestRecord(
                index=len(self._records), time=time.time(), method=method,
                path=handler.path, key=key, attempt=attempt,
                model=model if isinstance(model, str) else None, tag=tag, outcome=outcome,
                status=status, has_bearer=_bearer(handler) is not None)
            self._records.append(record)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as stream:
                    stream.write(json.dumps(record.to_dict()) + "\n")
                    stream.flush()
        return record

    def _tag(self, body: dict[str, Any] | None) -> str | None:
        """tag_of(body), or None when there is no body, no tag_of, or it fails."""
        if body is None or self.tag_of is None:
            return None
        try:
            tag = self.tag_of(body)
        except Exception:
            return None
        return None if tag is None else str(tag)

    # -- fault schedule ----------------------------------------------------------------------------

    def _decide(self, key: str) -> tuple[int, Fault | None]:
        """The attempt number for ``key`` and its fault (None: plain success)."""
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            uniform, pick = _draw(self.seed, key, attempt)
            fault: Fault | None = None
            if uniform < self.fault_rate:
                fault = self.fault_kinds[pick % len(self.fault_kinds)]
            if self._consecutive.get(key, 0) >= self.max_consecutive_faults:
                fault = None
            failed = fault is not None and fault is not Fault.SLOW
            self._consecutive[key] = self._consecutive.get(key, 0) + 1 if failed else 0
            return attempt, fault

    # -- request handling --------------------------------------------------------------------------

    def _handle(self, handler: _Handler, method: str) -> None:
        """Answer one request: auth, routing, parsing, fault injection, reply."""
        raw = handler.read_body()
        if not self._authorized(handler):
            self._reply_error(handler, method, 401, "unauthorized",
                              _error_body("Incorrect API key provided.", "invalid_request_error",
                                          "invalid_api_key"))
            return
        path = handler.path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            self._reply_models(handler)
        elif method == "POST" and path == "/v1/chat/completions":
            self._reply_chat(handler, raw)
        else:
            self._reply_error(handler, method, 404, "bad_request",
                              _error_body(f"Unknown endpoint {method} {path}.",
                                          "invalid_request_error", "unknown_url"))

    def _authorized(self, handler: _Handler) -> bool:
        """Whether the request carries the expected bearer token (always, without api_key)."""
        return self.api_key is None or _bearer(handler) == self.api_key

    def _reply_error(self, handler: _Handler, method: str, status: int, outcome: str,
                     payload: dict[str, Any], body: dict[str, Any] | None = None,
                     key: str | None = None, attempt: int = 0,
                     headers: dict[str, str] | None = None) -> None:
        """Log and send an error response (quoting the key when ``echo_key`` says so)."""
        self._record(handler, method, outcome, status, body, key, attempt)
        if echo := self._echo(handler):
            payload = {"error": {**payload["error"],
                                 "message": f"{payload['error']['message']} {echo}"}}
        handler.send(status, json.dumps(payload).encode(), headers)

    def _echo(self, handler: _Handler) -> str:
        """The sentence quoting the request's bearer token under ``echo_key``, else ""."""
        token = _bearer(handler)
        return f"You sent the key {token}." if self.echo_key and token else ""

    def _reply_models(self, handler: _Handler) -> None:
        """``GET /v1/models``: the model ids given at construction."""
        self._record(handler, "GET", "ok", 200)
        data = [{"id": model, "object": "model", "created": 0, "owned_by": "fake-openai"}
                for model in self.models]
        handler.send(200, json.dumps({"object": "list", "data": data}).encode())

    def _reply_chat(self, handler: _Handler, raw: bytes) -> None:
        """``POST /v1/chat/completions``, with a fault when the schedule says so."""
        body = _parse_chat_body(raw)
        if isinstance(body, str):
            self._reply_error(handler, "POST", 400, "bad_request",
                              _error_body(body, "invalid_request_error", None))
            return
        key = request_key(body)
        attempt, fault = self._decide(key)
        if fault is Fault.RATE_LIMIT:
            self._reply_error(handler, "POST", 429, fault.value,
                              _error_body("Rate limit reached (injected fault).", "requests",
                                          "rate_limit_exceeded"),
                              body, key, attempt, headers=self._retry_after_header())
        elif fault is Fault.SERVER_ERROR:
            headers = self._retry_after_header() if self.retry_after_seconds > 0 else None
            self._reply_error(handler, "POST", 500, fault.value,
                              _error_body("The server had an error (injected fault).",
                                          "server_error", None),
                              body, key, attempt, headers=headers)
        else:
            self._reply_completion(handler, body, key, attempt, fault)

    def _retry_after_header(self) -> dict[str, str]:
        """``{"retry-after": seconds}``, written as ``0`` when zero."""
        seconds = self.retry_after_seconds
        return {"retry-after": f"{seconds:g}" if seconds else "0"}

    def _reply_completion(self, handler: _Handler, body: dict[str, Any], key: str, attempt: int,
                          fault: Fault | None) -> None:
        """A completion: normal, after a delay (SLOW, TIMEOUT), cut in half (TRUNCATED) or a
        byte at a time (TRICKLE)."""
        try:
            payload = json.dumps(self._completion(body, self._echo(handler))).encode()
        except Exception as error:  # a broken responder is a server error, and says so
            self._reply_error(handler, "POST", 500, "server_error",
                              _error_body(f"responder raised {error!r}", "server_error", None),
                              body, key, attempt)
            return
        outcome = fault.value if fault is not None else "ok"
        self._record(handler, "POST", outcome, 200, body, key, attempt)
        if fault is Fault.TRUNCATED:
            payload = payload[: len(payload) // 2]
        elif fault is Fault.TIMEOUT:
            self._stopping.wait(self.hang_seconds)
        elif fault is Fault.SLOW:
            self._stopping.wait(self.slow_seconds)
        handler.send(200, payload,
                     byte_seconds=self.trickle_seconds if fault is Fault.TRICKLE else 0.0)

    def _completion(self, body: dict[str, Any], echo: str = "") -> dict[str, Any]:
        """A chat.completion object with ``n`` choices from the responder, each starting
        with ``echo`` when it is not empty."""
        count = body.get("n") or 1
        texts = [" ".join(filter(None, (echo, self.responder(body))))
                 for _ in range(max(1, int(count)))]
        prompt_tokens = sum(_count_words(_content_text(message.get("content")))
                            for message in body["messages"] if isinstance(message, dict))
        completion_tokens = sum(_count_words(text) for text in texts)
        return {
            "id": f"chatcmpl-{request_key(body)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": index,
                         "message": {"role": "assistant", "content": text},
                         "logprobs": None,
                         "finish_reason": "stop"} for index, text in enumerate(texts)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def _bearer(handler: _Handler) -> str | None:
    """The bearer token of the request, or None."""
    value = handler.headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _parse_chat_body(raw: bytes) -> dict[str, Any] | str:
    """The parsed chat request, or a message saying why it is malformed."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"Malformed JSON body: {error}"
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str):
        return "'model' is required and must be a string."
    if not isinstance(body.get("messages"), list):
        return "'messages' is required and must be a list."
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        return "'n' must be a positive integer."
    return body
