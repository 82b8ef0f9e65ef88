"""Teachers against a real local OpenAI-compatible server: retries, protocols, labels."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, Fault
from scripted_teachers import ScriptedTeachers

from magdi_lightning.errors import UserError
from magdi_lightning.graph import Correctness, ReasoningGraph
from magdi_lightning.questions import Question
from magdi_lightning.sources.question_sets import load_toy_questions
from magdi_lightning.teachers.endpoints import Completion, OpenAIEndpoint, TeacherSpec
from magdi_lightning.teachers.protocols import (
    DuDebate,
    ReConcile,
    SikedStrategies,
    TinyLLMRationales,
)
from magdi_lightning.teachers.protocols.reconcile import load_convincing_samples, recalibrate
from magdi_lightning.teachers.teacher import RetryPolicy, Teacher, TeacherFailure

QUESTIONS = load_toy_questions(num_questions=12, seed=3)
FAST = RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01)


def teachers_for(server: FakeOpenAIServer, count: int = 3, timeout: float = 2.0,
                 policy: RetryPolicy = FAST, key_env: str | None = None) -> list[Teacher]:
    teachers = []
    for i in range(count):
        spec = TeacherSpec(name=f"agent_{i}", model="fake-model", base_url=server.base_url,
                           api_key_env=key_env, timeout=timeout,
                           system_prompt=f"You are agent {i}.")
        teachers.append(Teacher(spec, OpenAIEndpoint(spec), policy))
    return teachers


def run(coroutine):
    return asyncio.run(coroutine)


# ------------------------------------------------------------------ retries
@pytest.mark.parametrize("fault", [Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.TIMEOUT,
                                   Fault.TRUNCATED])
def test_each_transient_fault_is_retried_and_counted(fault: Fault) -> None:
    kind = {Fault.TRUNCATED: "malformed"}.get(fault, fault.value)
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[fault], max_consecutive_faults=2,
                          hang_seconds=1.0) as server:
        (teacher,) = teachers_for(server, 1, timeout=0.3)

        async def ask() -> Completion:
            try:
                return await teacher.chat([{"role": "user", "content": "hi"}])
            finally:
                await teacher.endpoint.aclose()

        completion = run(ask())
    assert completion.text == "The answer is 42." and completion.completion_tokens == 4
    assert teacher.usage.requests == 3 and teacher.usage.retries == 2
    assert teacher.usage.failures == Counter({kind: 2})
    assert server.counts() == Counter({fault.value: 2, "ok": 1})


def test_a_request_that_keeps_failing_gives_up_after_max_attempts() -> None:
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[Fault.SERVER_ERROR],
                          max_consecutive_faults=100) as server:
        (teacher,) = teachers_for(server, 1, policy=RetryPolicy(3, 0.001, 0.001))
        with pytest.raises(TeacherFailure, match="gave up after 3 attempts"):
            run(teacher.chat([{"role": "user", "content": "hi"}]))
    assert teacher.usage.gave_up == 1 and server.counts()["server_error"] == 3


def test_a_servers_retry_after_is_honoured() -> None:
    import time

    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=[Fault.RATE_LIMIT],
                          max_consecutive_faults=1, retry_after_seconds=0.5) as server:
        (teacher,) = teachers_for(server, 1, policy=RetryPolicy(3, 0.001, 5.0))
        started = time.perf_counter()
        run(teacher.chat([{"role": "user", "content": "hi"}]))
    assert time.perf_counter() - started >= 0.5 and teacher.usage.retries == 1


def test_a_bad_key_fails_at_once_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-wrong")
    with FakeOpenAIServer(api_key="sk-right") as server:
        (teacher,) = teachers_for(server, 1, key_env="FAKE_KEY")
        with pytest.raises(TeacherFailure) as info:
            run(teacher.chat([{"role": "user", "content": "hi"}]))
    assert info.value.kind == "fatal" and len(server.log) == 1
    assert "sk-wrong" not in str(info.value)


def test_a_missing_key_variable_is_named() -> None:
    spec = TeacherSpec(name="a", model="m", api_key_env="MAGDI_SURELY_UNSET_KEY")
    with pytest.raises(UserError, match="MAGDI_SURELY_UNSET_KEY"):
        OpenAIEndpoint(spec)


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    policy, rng = RetryPolicy(base_delay=1.0, max_delay=8.0), random.Random(0)
    for attempt, cap in enumerate([1, 2, 4, 8, 8]):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= cap and max(delays) > cap * 0.8


# ------------------------------------------------------------------ protocols
def _run_protocol(protocol, questions: list[Question], accuracy: float = 0.7,
                  unparseable: float = 0.0, count: int = 3) -> list[ReasoningGraph | None]:
    script = ScriptedTeachers(QUESTIONS, accuracy, unparseable)
    with FakeOpenAIServer(script, tag_of=script.tag_of) as server:
        teachers = teachers_for(server, count)

        async def ask() -> list[ReasoningGraph | None]:
            try:
                return list(await asyncio.gather(*(protocol.run(q, teachers)
                                                   for q in questions)))
            finally:
                for teacher in teachers:
                    await teacher.endpoint.aclose()

        return run(ask())


def test_reconcile_discusses_labels_and_votes() -> None:
    graphs = _run_protocol(ReConcile(rounds=2), QUESTIONS)
    for graph, question in zip(graphs, QUESTIONS):
        assert graph is not None and graph.id == question.id
        rounds = graph.source["rounds"]
        assert len(graph.nodes) == 3 * rounds and len(graph.edges) == 9 * (rounds - 1)
        for node in graph.nodes:
            assert 0.7 <= node.metadata["confidence"] <= 1.0
            expected = Correctness.CORRECT if node.answer == question.gold \
                else Correctness.INCORRECT
            assert node.correctness is expected
        last = [n for n in graph.nodes if n.round == rounds - 1]
        if rounds < 3:  # stopped early: everyone agreed
            assert graph.source["consensus"] and len({n.answer for n in last}) == 1
        assert graph.source["final_correct"] == (graph.source["final_answer"] == question.gold)
    assert {g.source["rounds"] for g in graphs} == {1, 2, 3}  # some agree at once, some never


def test_reconcile_stops_at_once_when_all_agree() -> None:
    graphs = _run_protocol(ReConcile(rounds=2), QUESTIONS[:3], accuracy=1.0)
    assert all(g.source["rounds"] == 1 and g.source["consensus"] for g in graphs)
    assert all(g.source["final_correct"] for g in graphs)


def test_unparseable_replies_are_kept_and_flagged() -> None:
    graphs = _run_protocol(ReConcile(rounds=0), QUESTIONS, unparseable=0.5)
    flagged = [n for g in graphs for n in g.nodes if "parse_error" in n.metadata]
    assert flagged and all(n.reasoning.startswith("Hmm") and n.answer is None
                           and n.correctness is Correctness.UNKNOWN for n in flagged)
    assert sum(len(g.nodes) for g in graphs) == 3 * len(QUESTIONS)


def test_recalibrated_vote_weights() -> None:
    assert [recalibrate(c) for c in (1.0, 0.95, 0.85, 0.7, 0.5, None)] == [
        1.0, 0.8, 0.5, 0.3, 0.1, 0.1]


def test_convincing_samples_load_as_in_context_examples(shared_data: Path) -> None:
    folder = shared_data / "reconcile" / "convincing" / "GSM8k"
    for name in ("bard", "chatgpt", "claude"):
        samples = load_convincing_samples(folder / f"{name}.json")
        assert len(samples) == 4
        question, reply = samples[0].split("\nA:", 1)
        assert question.startswith("Q: ") and set(json.loads(reply)) == {"reasoning", "answer"}


def test_du_debate_builds_rounds_with_full_edges() -> None:
    graphs = _run_protocol(DuDebate(rounds=3), QUESTIONS[:4])
    for graph in graphs:
        assert graph.num_rounds == 3 and graph.num_agents == 3
        assert len(graph.edges) == 2 * 9
        assert all(node.answer is not None for node in graph.nodes)


def test_tinyllm_forces_the_gold_and_draws_seeded_examples() -> None:
    protocol = TinyLLMRationales(train_set=QUESTIONS, k=3, seed=5)
    question = QUESTIONS[0]
    shots = protocol.in_context_examples(question)
    assert len(shots) == 3 and question not in shots
    assert shots == TinyLLMRationales(train_set=QUESTIONS, k=3, seed=5).in_context_examples(
        question)
    assert shots != TinyLLMRationales(train_set=QUESTIONS, k=3, seed=6).in_context_examples(
        question)
    prompt = protocol.prompt(question)
    assert prompt.rstrip().endswith("Explanation:") and f"Answer: {question.gold}" in prompt
    (graph,) = _run_protocol(protocol, [question])
    assert [n.agent for n in graph.nodes] == ["agent_0", "agent_1", "agent_2"]
    assert not graph.edges and graph.source["in_context_examples"] == [s.id for s in shots]


def test_siked_runs_programs_and_tags_strategies() -> None:
    graphs = _run_protocol(SikedStrategies(samples=2), QUESTIONS[:4], count=2)
    for graph, question in zip(graphs, QUESTIONS):
        assert Counter(n.strategy for n in graph.nodes) == {"cot": 4, "l2m": 4, "pot": 4}
        for node in graph.nodes:
            if node.strategy == "pot":
                assert node.reasoning.startswith("value = ") and "```" not in node.reasoning
            assert node.correctness is (Correctness.CORRECT if node.answer == question.gold
                                        else Correctness.INCORRECT)


def test_siked_filters_keep_one_correct_solution_per_strategy() -> None:
    protocol = SikedStrategies(samples=2, keep_correct_only=True, one_per_strategy=True)
    graphs = _run_protocol(protocol, QUESTIONS, accuracy=0.8, count=2)
    assert all(graph is not None for graph in graphs)
    for graph in graphs:
        assert all(n.is_correct for n in graph.nodes)
        strategies = [n.strategy for n in graph.nodes]
        assert len(strategies) == len(set(strategies))


def test_siked_skips_a_question_with_nothing_left_after_filtering() -> None:
    protocol = SikedStrategies(strategies=["cot", "pot"], keep_correct_only=True)
    assert _run_protocol(protocol, QUESTIONS[:3], accuracy=0.0, count=1) == [None] * 3
