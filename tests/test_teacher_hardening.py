"""Teacher calls that cannot hang or leak a key, and that end on a user error cleanly.

Issue 15, part 2, against the real local server (``tests/fake_openai.py``): a reply
trickled a byte a second is cut at the timeout and retried as a timeout; a server that
echoes the key in its error bodies and its completions gets it into no output of
``magdi-debate``; a rejected key, an unknown URL, a refused connection and a missing key
variable end the command with one paragraph and exit code 2, not a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
import logging
import os
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, Fault
from scripted_teachers import ScriptedTeachers
from test_debate_cli import KEY, KEY_ENV, debate_command

from magdi_lightning.errors import UserError
from magdi_lightning.sources.question_sets import load_toy_questions
from magdi_lightning.teachers.endpoints import OpenAIEndpoint, TeacherSpec
from magdi_lightning.teachers.secrets import (
    MASK,
    Scrubber,
    ScrubFilter,
    scrubbed_logs,
)
from magdi_lightning.teachers.teacher import (
    RetryPolicy,
    Teacher,
    TeacherConfigError,
    TeacherFailure,
)

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)
HI = [{"role": "user", "content": "hi"}]


def closed_port_url() -> str:
    """A /v1 URL on a local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def teacher_at(base_url: str, timeout: float = 2.0, key_env: str | None = None) -> Teacher:
    spec = TeacherSpec(name="agent_0", model="fake-model", base_url=base_url,
                       api_key_env=key_env, timeout=timeout)
    return Teacher(spec, OpenAIEndpoint(spec), FAST)


async def ask(teacher: Teacher):
    try:
        return await teacher.chat(HI)
    finally:
        await teacher.endpoint.aclose()


def files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


# ------------------------------------------------------------------ whole-request timeout
def test_a_trickled_reply_is_cut_at_the_timeout_and_retried_as_a_timeout() -> None:
    # The body (some 300 bytes) would take 5 minutes; the openai client's own timeout is
    # per read, and a byte arrives every second, so only the whole-request deadline stops it.
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[Fault.TRICKLE], trickle_seconds=1.0,
                          max_consecutive_faults=2) as server:
        teacher = teacher_at(server.base_url, timeout=2.0)
        started = time.time()
        completion = asyncio.run(ask(teacher))
        elapsed = time.time() - started
        log = server.log
    assert completion.text == "The answer is 42."
    assert [r.outcome for r in log] == ["trickle", "trickle", "ok"]
    assert teacher.usage.failures == Counter({"timeout": 2}) and teacher.usage.retries == 2
    arrivals = [r.time for r in log]
    attempts = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(1.9 < seconds < 3.0 for seconds in attempts), attempts  # each cut at 2 s
    assert elapsed < 6.0


# ------------------------------------------------------------------ the scrubber
def test_the_scrubber_masks_every_secret_in_strings_and_nested_data() -> None:
    scrubber = Scrubber(["sk-secret-one", "sk-secret-one-and-more", "short", None, ""])
    assert scrubber.scrub("a sk-secret-one-and-more b sk-secret-one c short") == \
        f"a {MASK} b {MASK} c short"  # the longer secret whole; too short to be a key
    data = {"sk-secret-one": ["x sk-secret-one", ("sk-secret-one", 3)], "n": 1.5, "k": None}
    assert scrubber.scrub(data) == {MASK: [f"x {MASK}", (MASK, 3)], "n": 1.5, "k": None}
    untouched = {"a": ["b"]}
    assert Scrubber().scrub(untouched) is untouched


def test_the_log_filter_scrubs_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubFilter(Scrubber(["sk-logged-secret"])))
    logger = logging.getLogger("test_teacher_hardening.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("request with %s", "Bearer sk-logged-secret")
        try:
            raise RuntimeError("the body quoted sk-logged-secret")
        except RuntimeError:
            logger.exception("a call failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "sk-logged-secret" not in text
    assert f"request with Bearer {MASK}" in text and f"RuntimeError: the body quoted {MASK}" in text


def test_scrubbed_logs_guards_the_root_handlers_for_the_block_only(
        caplog: pytest.LogCaptureFixture) -> None:
    def guarded() -> bool:
        return any(isinstance(f, ScrubFilter) for h in logging.getLogger().handlers
                   for f in h.filters)

    with scrubbed_logs(Scrubber(["sk-root-secret"])):
        assert guarded()
        logging.getLogger("test_teacher_hardening").warning("saw %s", "sk-root-secret")
    assert not guarded()
    assert "sk-root-secret" not in caplog.text and f"saw {MASK}" in caplog.text


# ------------------------------------------------------------------ fatal errors, in-process
def test_a_rejected_key_is_a_user_error_that_does_not_quote_the_echoed_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAIServer(api_key="sk-the-key-the-server-wants", echo_key=True) as server:
        with pytest.raises(TeacherConfigError) as info:
            asyncio.run(ask(teacher_at(server.base_url, key_env=KEY_ENV)))
        assert len(server.log) == 1  # not retried
    assert isinstance(info.value, UserError) and info.value.kind == "fatal"
    message = str(info.value)
    assert "HTTP 401" in message and KEY_ENV in message and MASK in message
    assert KEY not in message and info.value.__cause__ is None


def test_refused_connections_are_a_user_error_only_for_a_teacher_that_never_answered() -> None:
    refused = closed_port_url()
    with pytest.raises(TeacherConfigError, match="could not connect in 3 attempts"):
        asyncio.run(ask(teacher_at(refused)))

    with FakeOpenAIServer() as server:  # a server that answered once is up, and went away
        teacher = teacher_at(server.base_url)
        asyncio.run(ask(teacher))
    teacher.endpoint = OpenAIEndpoint(dataclasses.replace(teacher.spec, base_url=refused))
    with pytest.raises(TeacherFailure, match="gave up after 3 attempts") as info:
        asyncio.run(ask(teacher))
    assert not isinstance(info.value, UserError) and info.value.kind == "connection"


# ------------------------------------------------------------------ magdi-debate, as users run it
def run_command(command: list[str], cwd: Path, with_key: bool = True
                ) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != KEY_ENV}
    env.update({KEY_ENV: KEY} if with_key else {})
    return subprocess.run(command, cwd=cwd, env={**env, "WANDB_SILENT": "true"},
                          capture_output=True, text=True, timeout=120)


def test_a_key_echoed_in_error_bodies_and_completions_reaches_no_output(tmp_path: Path) -> None:
    questions = load_toy_questions(num_questions=6, seed=5)
    script = ScriptedTeachers(questions)
    output = tmp_path / "graphs.jsonl"
    with FakeOpenAIServer(script, tag_of=script.tag_of, api_key=KEY, echo_key=True,
                          fault_rate=0.3, fault_kinds=[Fault.SERVER_ERROR],
                          max_consecutive_faults=100, seed=3) as server:
        result = run_command(debate_command(
            server.base_url, output, 6, 5, "protocol=du", "protocol.rounds=2",
            "retry.max_attempts=2", "wandb.mode=offline", "hydra.verbose=[openai]"), tmp_path)
    (summary_path,) = tmp_path.glob("outputs/debate_*/summary.json")
    summary = json.loads(summary_path.read_text())
    # Some questions were written (their completions quoted the key), some failed for good
    # (their error bodies quoted it): both reached the outputs, masked.
    assert result.returncode == 3, result.stderr[-3000:]
    assert summary["written"] > 0 and summary["failed"] > 0
    assert f"You sent the key {MASK}" in output.read_text()
    assert f"You sent the key {MASK}" in json.dumps(summary["failed_questions"])
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in written) and any(p.suffix == ".log" for p in written)
    assert not files_holding(tmp_path, KEY)
    assert KEY not in result.stdout and KEY not in result.stderr


@pytest.mark.parametrize(("server_key", "url_of", "with_key", "expected"), [
    pytest.param("sk-the-key-the-server-wants", lambda server: server.base_url, True,
                 ["HTTP 401", f"environment variable {KEY_ENV}"], id="rejected-key"),
    pytest.param(KEY, lambda server: server.base_url.replace("/v1", "/v2"), True,
                 ["HTTP 404", "base_url"], id="unknown-url"),
    pytest.param(KEY, lambda server: closed_port_url(), True, ["could not connect", "base_url"],
                 id="connection-refused"),
    pytest.param(KEY, lambda server: server.base_url, False, [KEY_ENV, "is not set"],
                 id="missing-key-variable"),
])
def test_fatal_teacher_errors_end_in_one_paragraph_and_exit_code_2(
        server_key: str, url_of: Callable[[FakeOpenAIServer], str], with_key: bool,
        expected: list[str], tmp_path: Path) -> None:
    with FakeOpenAIServer(api_key=server_key, echo_key=True) as server:
        command = debate_command(url_of(server), tmp_path / "graphs.jsonl", 3, 0,
                                 "retry.max_attempts=2", "wandb.mode=disabled")
        result = run_command(command, tmp_path, with_key)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.count("magdi-debate: error: ") == 1
    message = result.stderr.split("magdi-debate: error: ", 1)[1].strip()
    assert "\n" not in message, message  # one paragraph, and nothing after it
    assert message.startswith("teacher 'agent_"), message
    assert all(part in message for part in expected), message
    assert KEY not in result.stdout + result.stderr and not files_holding(tmp_path, KEY)


@pytest.mark.parametrize(("override", "expected"), [
    ("teachers.timeout=0", "max_concurrency, max_tokens and timeout"),
    ("retry.max_attempts=0", "max_attempts >= 1"),
    ("protocol.rounds=0", "rounds must be >= 1"),
])
def test_bad_debate_settings_end_in_a_message_and_exit_code_2(override: str, expected: str,
                                                              tmp_path: Path) -> None:
    command = debate_command("http://127.0.0.1:9/v1", tmp_path / "graphs.jsonl", 2, 0,
                             "protocol=du", "wandb.mode=disabled", override)
    result = run_command(command, tmp_path)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr and expected in result.stderr
