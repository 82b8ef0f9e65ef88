"""ReConcile point 4 of issue 13: convincing samples in every round, per-agent exclusion by
an explicit agent -> file map, and the discussion prompt's top-2 answer groups.

Expected prompts are derived by hand from dinobby/ReConcile: ``run.py`` passes each agent
the other agents' convincing samples in round 0 and in every discussion round;
``utils.py`` ``parse_output`` writes the debate prompt from ``Counter(votes).most_common(2)``
(every agent's response, its own included), each group as "There are {n} agents think the
answer is {a}. " and one "One agent solution: I think the answer is {a} because {reasoning}
My confidence level is {c}." line per response, then a blank line.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from magdi_lightning.data.responses import ResponseText
from magdi_lightning.graph import Node
from magdi_lightning.questions import Question
from magdi_lightning.teachers.endpoints import Completion, TeacherSpec
from magdi_lightning.teachers.protocols import ReConcile
from magdi_lightning.teachers.teacher import Teacher

CONF = Path(__file__).resolve().parents[1] / "conf"
QUESTION = Question(id="q1", question="What is 3 + 5?", gold="8", task="numeric")


class ScriptedEndpoint:
    """Replies with a fixed answer per agent and records every prompt it was sent."""

    def __init__(self, answer: str, confidence: float = 0.9) -> None:
        self.answer, self.confidence = answer, confidence
        self.prompts: list[str] = []

    async def complete(self, messages, *, temperature: float, max_tokens: int) -> Completion:
        self.prompts.append(messages[-1]["content"])
        text = json.dumps({"reasoning": f"I get {self.answer}.", "answer": self.answer,
                           "confidence": self.confidence})
        return Completion(text=text, prompt_tokens=1, completion_tokens=5)

    async def aclose(self) -> None:
        return None


def teachers(answers: dict[str, str]) -> list[Teacher]:
    return [Teacher(TeacherSpec(name=name, model="scripted", api_key_env=None),
                    ScriptedEndpoint(answer)) for name, answer in answers.items()]


def sample_file(tmp_path: Path, owner: str) -> Path:
    path = tmp_path / f"{owner}.json"
    path.write_text(json.dumps([{"train_sample": {
        "question": f"Sample question of {owner}?", "answer": "1",
        "gold_explanation": f"Explanation by {owner}."}}]))
    return path


def node(agent: str, answer: str | None, confidence: float | None = 0.9) -> Node:
    return Node(id=f"{agent}.round_0", agent=agent, round=0, reasoning=f"{agent} thinks.",
                answer=answer, metadata={} if confidence is None else {"confidence": confidence})


# ------------------------------------------------------------------ answer groups
def test_the_discussion_shows_the_two_largest_answer_groups() -> None:
    previous = [node("a", "5"), node("b", "7", 1.0), node("c", "5", None), node("d", "9")]
    # Counter(["5", "7", "5", "9"]).most_common(2) = [("5", 2), ("7", 1)]: "9" is left out.
    assert ReConcile().solutions(previous) == (
        "There are 2 agents think the answer is 5. "
        "One agent solution: I think the answer is 5 because a thinks. My confidence level "
        "is 0.9.\n"
        "One agent solution: I think the answer is 5 because c thinks. My confidence level "
        "is 0.0.\n\n"
        "There are 1 agents think the answer is 7. "
        "One agent solution: I think the answer is 7 because b thinks. My confidence level "
        "is 1.0.\n\n")
    every = ReConcile(answer_groups=None).solutions(previous)
    assert every.count("There are") == 3 and every.endswith(
        "There are 1 agents think the answer is 9. One agent solution: I think the answer is "
        "9 because d thinks. My confidence level is 0.9.\n\n")


def test_equal_groups_keep_the_agents_order() -> None:
    previous = [node("a", "7"), node("b", "5"), node("c", "6")]
    text = ReConcile().solutions(previous)
    assert text.index("answer is 7.") < text.index("answer is 5.") and "answer is 6." not in text


# ------------------------------------------------------------------ convincing samples
def _run(protocol: ReConcile, agents: list[Teacher]):
    return asyncio.run(protocol.run(QUESTION, agents))


def test_convincing_samples_of_the_other_agents_reach_every_round(tmp_path: Path) -> None:
    # Names unlike the files' on purpose: the map, not the names, says whose file is whose.
    files = {"alpha": str(sample_file(tmp_path, "claude")),
             "beta": str(sample_file(tmp_path, "chatgpt")), "gamma": None}
    agents = teachers({"alpha": "8", "beta": "9", "gamma": "7"})   # never agree
    graph = _run(ReConcile(rounds=3, convincing_samples=files), agents)
    assert graph.num_rounds == 4 and len(graph.nodes) == 12 and len(graph.edges) == 3 * 9
    seen = {"alpha": ("chatgpt",), "beta": ("claude",), "gamma": ("claude", "chatgpt")}
    for agent in agents:
        prompts = agent.endpoint.prompts
        assert len(prompts) == 4
        for prompt in prompts:
            for owner in ("claude", "chatgpt"):
                shot = (f"Q: Sample question of {owner}?\nA:"
                        f'{{"reasoning": "Explanation by {owner}.", "answer": "1"}}')
                assert (shot in prompt) == (owner in seen[agent.name]), (agent.name, owner)
            assert prompt.index("Sample question") < prompt.index(f"Q: {QUESTION.question}")
            assert prompt.count("Reply with a JSON object only") == 1   # once, at the end
        # every discussion prompt holds the previous round's answers of all agents
        for prompt in prompts[1:]:
            assert "solutions from other agents" in prompt
            assert all(f"I think the answer is {a} because I get {a}." in prompt
                       for a in ("8", "9"))
            assert "answer is 7 because" not in prompt   # a third group: not shown
    assert all(n.answer is not None and n.reasoning == f"I get {n.answer}." for n in graph.nodes)


def test_an_agent_missing_from_the_sample_map_is_an_error(tmp_path: Path) -> None:
    files = {"alpha": str(sample_file(tmp_path, "claude"))}
    with pytest.raises(ValueError, match="'beta' is not in convincing_samples"):
        _run(ReConcile(convincing_samples=files), teachers({"alpha": "8", "beta": "9"}))


def test_a_sample_file_without_explanations_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"train_sample": {"question": "Q?", "answer": "1"}}]))
    with pytest.raises(ValueError, match=r"bad.json: record 0: train_sample.gold_explanation"):
        ReConcile(convincing_samples={"alpha": str(path)})


def test_consensus_still_stops_the_discussion() -> None:
    graph = _run(ReConcile(rounds=3), teachers({"a": "8", "b": "8", "c": "8"}))
    assert graph.num_rounds == 1 and graph.source["consensus"]


def test_protocol_nodes_keep_their_answer_for_the_answer_sentence() -> None:
    graph = _run(ReConcile(rounds=1), teachers({"a": "8", "b": "9"}))
    text = ResponseText()
    # ReConcile's JSON reasoning ("I get 8.") states no answer of its own.
    assert [text(n, graph.task) for n in graph.nodes] == [
        "I get 8. So the answer is 8", "I get 9. So the answer is 9"] * 2


def test_the_default_config_runs_four_rounds_with_the_top_two_groups() -> None:
    from hydra.utils import instantiate

    protocol = instantiate(OmegaConf.load(CONF / "protocol" / "reconcile.yaml"))
    assert (protocol.rounds, protocol.answer_groups, protocol.convincing) == (3, 2, {})
