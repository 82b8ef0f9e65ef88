"""The fake OpenAI server, exercised through the real ``openai`` client over real HTTP."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from fake_openai import TRUNCATED_RAISES, FakeOpenAIServer, Fault, request_key

KEY = "sk-test-0123456789"
FAST_FAULTS = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.TRUNCATED)


def _client(server: FakeOpenAIServer, *, api_key: str = KEY, max_retries: int = 0,
            timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=max_retries,
                         timeout=timeout)


def _ask(client: openai.OpenAI, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": text}], **kwargs)


def _outcome(client: openai.OpenAI, text: str) -> str:
    """"ok" or the class name of what the client raised."""
    try:
        _ask(client, text)
    except Exception as error:
        return type(error).__name__
    return "ok"


def _post_raw(server: FakeOpenAIServer, payload: bytes,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=payload,
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY) as running:
        yield running


def test_base_url_is_local_and_ephemeral(server: FakeOpenAIServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", server.base_url)
    assert server.port > 0


def test_successful_completion_returns_responder_text_and_usage() -> None:
    def echo(body: dict[str, Any]) -> str:
        return "You said: " + body["messages"][-1]["content"]

    with FakeOpenAIServer(echo, api_key=KEY) as server:
        reply = _ask(_client(server), "two plus two", temperature=0.7, max_tokens=64)
    assert reply.object == "chat.completion"
    assert reply.model == "fake-model"
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: two plus two"
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 5)
    assert reply.usage.total_tokens == 8
    [record] = server.log
    assert (record.outcome, record.status, record.attempt, record.model) == (
        "ok", 200, 0, "fake-model")
    assert record.has_bearer


def test_default_responder_and_n_choices(server: FakeOpenAIServer) -> None:
    reply = _ask(_client(server), "a question", n=3)
    assert [choice.index for choice in reply.choices] == [0, 1, 2]
    assert {choice.message.content for choice in reply.choices} == {"The answer is 42."}
    assert reply.usage is not None and reply.usage.completion_tokens == 12


def test_models_endpoint_lists_constructor_models() -> None:
    with FakeOpenAIServer(models=("teacher-a", "teacher-b")) as server:
        ids = [model.id for model in _client(server).models.list()]
    assert ids == ["teacher-a", "teacher-b"]


@pytest.mark.parametrize(("fault", "raised"), [
    (Fault.RATE_LIMIT, openai.RateLimitError),
    (Fault.SERVER_ERROR, openai.InternalServerError),
    (Fault.TIMEOUT, openai.APITimeoutError),
    (Fault.TRUNCATED, json.JSONDecodeError),
])
def test_each_fault_surfaces_as_the_expected_client_error(
        fault: Fault, raised: type[Exception]) -> None:
    with FakeOpenAIServer(api_key=KEY, fault_rate=1.0, fault_kinds=[fault],
                          hang_seconds=1.0) as server:
        started = time.monotonic()
        with pytest.raises(raised):
            _ask(_client(server, timeout=0.3), "will this fail?")
        elapsed = time.monotonic() - started
        [record] = server.log
    assert record.outcome == fault.value
    assert elapsed < 1.0  # a timeout is the client's, not the end of the hang


def test_truncated_reply_is_a_plain_json_error_and_is_not_retried() -> None:
    assert TRUNCATED_RAISES is json.JSONDecodeError
    assert not issubclass(TRUNCATED_RAISES, openai.OpenAIError)
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[Fault.TRUNCATED]) as server:
        with pytest.raises(TRUNCATED_RAISES):
            _ask(_client(server, max_retries=3), "cut me short")
        assert server.counts() == {"truncated": 1}


def test_truncated_body_is_half_a_completion_with_matching_length() -> None:
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[Fault.TRUNCATED]) as server:
        payload = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]})
        request = urllib.request.Request(f"{server.base_url}/chat/completions",
                                         data=payload.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            assert int(response.headers["Content-Length"]) == len(body)
    assert body.startswith(b'{"id": "chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_slow_fault_is_a_success() -> None:
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[Fault.SLOW], slow_seconds=0.2) as server:
        started = time.monotonic()
        reply = _ask(_client(server, timeout=2.0), "take your time")
        assert time.monotonic() - started >= 0.2
        assert reply.choices[0].message.content == "The answer is 42."
        assert server.counts() == {"slow": 1}


def test_patient_client_outlasts_a_timeout_fault() -> None:
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[Fault.TIMEOUT],
                          hang_seconds=0.2) as server:
        reply = _ask(_client(server, timeout=3.0), "wait for it")
        assert reply.choices[0].message.content == "The answer is 42."
        assert server.counts() == {"timeout": 1}


def test_rate_limit_reply_is_in_openai_error_format(server: FakeOpenAIServer) -> None:
    server.fault_rate = 1.0
    server.fault_kinds = (Fault.RATE_LIMIT,)
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(_client(server), "hello")
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.type == "requests"


def test_max_consecutive_faults_bounds_failures_per_key() -> None:
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=FAST_FAULTS,
                          max_consecutive_faults=2) as server:
        client = _client(server)
        outcomes = [_outcome(client, "same question") for _ in range(3)]
        assert "ok" not in outcomes[:2]
        assert outcomes[2] == "ok"
        assert [record.attempt for record in server.log] == [0, 1, 2]
        assert len({record.key for record in server.log}) == 1
        assert _outcome(client, "same question") != "ok"  # the success reset the run


def test_retrying_client_always_finishes() -> None:
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=(Fault.RATE_LIMIT, Fault.SERVER_ERROR),
                          max_consecutive_faults=2, retry_after_seconds=0.01) as server:
        client = _client(server, max_retries=2)
        for index in range(5):
            assert _ask(client, f"question {index}").choices[0].message.content
        assert server.counts()["ok"] == 5
        assert sum(server.counts().values()) == 15


def _run_schedule(seed: int, prompts: list[str]) -> list[str]:
    with FakeOpenAIServer(fault_rate=0.5, fault_kinds=FAST_FAULTS, seed=seed) as server:
        client = _client(server)
        for prompt in prompts:
            _outcome(client, prompt)
        return [record.outcome for record in server.log]


def test_fault_schedule_is_reproducible_per_seed() -> None:
    prompts = [f"question {index % 15}" for index in range(30)]  # each prompt twice
    first, second = _run_schedule(7, prompts), _run_schedule(7, prompts)
    assert first == second
    assert _run_schedule(8, prompts) != first


def test_fault_schedule_ignores_thread_scheduling() -> None:
    prompts = [f"question {index}" for index in range(12)]

    def per_key(parallel: bool) -> dict[str | None, list[str]]:
        with FakeOpenAIServer(fault_rate=0.6, fault_kinds=FAST_FAULTS, seed=3) as server:
            client = _client(server)

            def ask_three_times(prompt: str) -> None:
                for _ in range(3):
                    _outcome(client, prompt)

            order = list(reversed(prompts)) if parallel else prompts
            with ThreadPoolExecutor(max_workers=6 if parallel else 1) as pool:
                list(pool.map(ask_three_times, order))
            outcomes: dict[str | None, list[str]] = {}
            for record in server.log:
                outcomes.setdefault(record.key, []).append(record.outcome)
            return outcomes

    assert per_key(parallel=True) == per_key(parallel=False)


def test_different_request_contents_get_independent_draws() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    keys = {request_key(base), request_key({**base, "model": "other"}),
            request_key({**base, "temperature": 0.7}),
            request_key({**base, "messages": [{"role": "user", "content": "q2"}]})}
    assert len(keys) == 4
    assert request_key({**base, "max_tokens": 5}) == request_key(base)
    first_attempts = _run_schedule(11, [f"distinct {index}" for index in range(40)])
    assert "ok" in first_attempts
    assert len(set(first_attempts) - {"ok"}) >= 2  # several fault kinds drawn


def test_fault_share_matches_fault_rate() -> None:
    with FakeOpenAIServer(fault_rate=0.3, fault_kinds=FAST_FAULTS, seed=1) as server:
        client = _client(server)
        for index in range(200):
            _outcome(client, f"problem number {index}")
        counts = server.counts()
        share = 1 - counts["ok"] / 200
        assert 0.2 <= share <= 0.4, counts
        assert {"rate_limit", "server_error", "truncated"} <= set(counts)
        server.fault_rate = 0.0  # changeable at runtime
        assert all(_outcome(client, f"problem number {index}") == "ok" for index in range(20))


def test_wrong_or_missing_api_key_is_rejected_and_never_logged(tmp_path: Path) -> None:
    log_path = tmp_path / "requests.jsonl"
    with FakeOpenAIServer(api_key=KEY, log_path=log_path) as server:
        with pytest.raises(openai.AuthenticationError) as caught:
            _ask(_client(server, api_key="sk-wrong-key"), "let me in")
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
        payload = json.dumps({"model": "m", "messages": []}).encode()
        status, body = _post_raw(server, payload)
        assert status == 401
        assert set(body["error"]) >= {"message", "type", "code"}
        assert _ask(_client(server), "proper key").choices
        log = server.log
    assert [record.outcome for record in log] == ["unauthorized", "unauthorized", "ok"]
    assert [record.has_bearer for record in log] == [True, False, True]
    dumped = json.dumps([record.to_dict() for record in log]) + log_path.read_text()
    assert KEY not in dumped and "sk-wrong-key" not in dumped


def test_malformed_requests_get_400_and_unknown_paths_404(server: FakeOpenAIServer) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    assert _post_raw(server, b"{not json", auth)[0] == 400
    assert _post_raw(server, b'{"model": "m"}', auth)[0] == 400
    request = urllib.request.Request(f"{server.base_url}/nowhere", headers=auth)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 404
    assert [(r.outcome, r.status) for r in server.log] == [
        ("bad_request", 400), ("bad_request", 400), ("bad_request", 404)]


def test_requests_for_tag_and_json_lines_log(tmp_path: Path) -> None:
    def question_id(body: dict[str, Any]) -> str | None:
        found = re.search(r"\[(Q\d+)\]", body["messages"][-1]["content"])
        return found.group(1) if found else None

    log_path = tmp_path / "log.jsonl"
    with FakeOpenAIServer(tag_of=question_id, log_path=log_path, fault_rate=1.0,
                          fault_kinds=[Fault.SERVER_ERROR], max_consecutive_faults=1) as server:
        client = _client(server)
        for text in ("[Q1] first", "[Q2] second", "[Q1] first", "untagged"):
            _outcome(client, text)
        assert [(r.attempt, r.outcome) for r in server.requests_for("Q1")] == [
            (0, "server_error"), (1, "ok")]
        assert len(server.requests_for("Q2")) == 1
        assert server.log[-1].tag is None
        lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [line["tag"] for line in lines] == ["Q1", "Q2", "Q1", None]
    assert [line["index"] for line in lines] == [0, 1, 2, 3]
    assert set(lines[0]) == {"index", "time", "method", "path", "key", "attempt", "model", "tag",
                             "outcome", "status", "has_bearer"}


def test_trickle_fault_sends_a_whole_valid_body_one_byte_at_a_time() -> None:
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[Fault.TRICKLE],
                          trickle_seconds=0.005) as server:
        started = time.monotonic()
        status, body = _post_raw(server, json.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "slowly"}]}).encode())
        elapsed = time.monotonic() - started
        assert server.counts() == {"trickle": 1}
    assert status == 200 and body["choices"][0]["message"]["content"] == "The answer is 42."
    assert elapsed >= 0.005 * len(json.dumps(body)) * 0.9  # a pause after every byte


def test_echo_key_quotes_the_bearer_token_in_error_bodies_and_completions() -> None:
    with FakeOpenAIServer(api_key=KEY, echo_key=True) as server:
        with pytest.raises(openai.AuthenticationError, match="You sent the key sk-wrong-key"):
            _ask(_client(server, api_key="sk-wrong-key"), "let me in")
        reply = _ask(_client(server), "hello")
        log = server.log
    assert reply.choices[0].message.content == f"You sent the key {KEY}. The answer is 42."
    assert KEY not in json.dumps([record.to_dict() for record in log])
