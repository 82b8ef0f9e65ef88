"""The toy world's three kinds: debates (unchanged), teacher rationales, strategy variants.

SYNTHETIC DATA throughout (:mod:`magdi_lightning.sources.toy`). The debates' reference
hashes below were recorded from the generator before the other kinds were added, so the
default dataset (ids, texts, labels) and every cache built from it stay valid.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from magdi_lightning.graph import Correctness, ReasoningGraph
from magdi_lightning.scoring.answers import extract_answer
from magdi_lightning.scoring.sandbox import run_programs
from magdi_lightning.sources import import_graphs
from magdi_lightning.sources.question_sets import load_toy_questions
from magdi_lightning.sources.toy import (
    KINDS,
    RATIONALE_TEACHERS,
    ToyProblem,
    ToyWorldConfig,
    generate_toy_graphs,
    solve,
)
from magdi_lightning.strategies import PROGRAM, STRATEGIES, split_strategy


def _hash(graphs: Iterable[ReasoningGraph]) -> str:
    digest = hashlib.sha256()
    for graph in graphs:
        digest.update(json.dumps(graph.to_dict(), sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _graphs(**options: object) -> list[ReasoningGraph]:
    return list(generate_toy_graphs(ToyWorldConfig(**options)))  # type: ignore[arg-type]


# Recorded before the rationales and strategies kinds existed.
DEFAULT_FIRST_5 = "851e41a96436a785"
SMALL_DEBATES = "99e955e7a2f108e1"
SMALL_OPTIONS = {"num_questions": 40, "seed": 7, "num_agents": 2, "error_rates": (0.5, 0.9),
                 "num_rounds": 3}


@pytest.mark.parametrize("explicit", [False, True])
def test_debates_are_unchanged(explicit: bool) -> None:
    kind = {"kind": "debates"} if explicit else {}
    default = generate_toy_graphs(ToyWorldConfig(**kind) if explicit else None)
    assert _hash(itertools.islice(default, 5)) == DEFAULT_FIRST_5
    assert _hash(_graphs(**SMALL_OPTIONS, **kind)) == SMALL_DEBATES
    first = next(iter(import_graphs("toy", "default")))
    assert first.id == "toy-6a08a3b1-000000"
    assert first.source == {"format": "toy", "synthetic": True,
                            "generator": "magdi_lightning.toy_world/v1", "seed": 0}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_reproducible_and_has_its_own_ids(kind: str) -> None:
    first = [g.to_dict() for g in _graphs(kind=kind, num_questions=60)]
    assert first == [g.to_dict() for g in _graphs(kind=kind, num_questions=60)]
    assert first != [g.to_dict() for g in _graphs(kind=kind, num_questions=60, seed=1)]
    ids = [g["id"] for g in first]
    assert all(re.fullmatch(r"toy-[0-9a-f]{8}-\d{6}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    others = {g.id for other in KINDS if other != kind
              for g in _graphs(kind=other, num_questions=60)}
    assert not others & set(ids)
    for graph in first:
        assert graph["source"]["synthetic"] is True
        assert graph["source"]["generator"] == "magdi_lightning.toy_world/v1"
        assert graph["source"].get("kind", "debates") == kind


def test_rationales_and_strategies_ask_the_same_questions() -> None:
    rationales = _graphs(kind="rationales", num_questions=50, seed=3)
    strategies = _graphs(kind="strategies", num_questions=50, seed=3)
    assert [g.question for g in rationales] == [g.question for g in strategies]
    assert len({g.question for g in rationales}) == 50
    # the knobs of the other kinds do not change a kind's graphs (nor its ids)
    assert _hash(rationales) == _hash(_graphs(kind="rationales", num_questions=50, seed=3,
                                              num_agents=1, error_rates=(0.9,),
                                              strategy_error_rate=1.0))
    assert _hash(rationales) != _hash(_graphs(kind="rationales", num_questions=50, seed=3,
                                              teacher_error_rates=(0.1, 0.2, 0.31)))


def test_rationale_graph_shape() -> None:
    for graph in _graphs(kind="rationales", num_questions=30):
        graph.validate()
        assert [n.agent for n in graph.nodes] == list(RATIONALE_TEACHERS)
        assert [n.id for n in graph.nodes] == ["t0", "t1", "t2"]
        assert {n.round for n in graph.nodes} == {0} and graph.edges == []
        assert all(n.strategy is None for n in graph.nodes)
        assert [n.model for n in graph.nodes] == [
            "toy-simulated-teacher_equations-p0.1", "toy-simulated-teacher_narrative-p0.2",
            "toy-simulated-teacher_stepwise-p0.3"]
    two = _graphs(kind="rationales", num_questions=5, teacher_error_rates=(0.0, 0.5))
    assert all([n.agent for n in g.nodes] == list(RATIONALE_TEACHERS[:2]) for g in two)


def test_strategy_graph_shape() -> None:
    for graph in _graphs(kind="strategies", num_questions=30):
        graph.validate()
        assert [n.strategy for n in graph.nodes] == ["cot", "l2m", "pot"]
        assert {n.agent for n in graph.nodes} == {"teacher_0"}
        assert {n.round for n in graph.nodes} == {0} and graph.edges == []
    assert {"cot", "l2m", "pot"} == set(STRATEGIES) and PROGRAM == "pot"
    for graph in _graphs(kind="strategies", num_questions=10, strategy_teachers=2,
                         samples_per_strategy=3):
        graph.validate()
        assert len(graph.nodes) == 18
        counts = Counter((n.agent, n.strategy) for n in graph.nodes)
        assert counts == {(f"teacher_{t}", s): 3 for t in range(2) for s in STRATEGIES}


def _solution_texts_are_consistent(graph: ReasoningGraph) -> None:
    item = re.search(r"How many (\w+) does", graph.question)
    assert item is not None
    for node in graph.nodes:
        assert (node.correctness is Correctness.CORRECT) == (node.answer == graph.gold_answer)
        assert bool(node.metadata.get("mistake")) == node.is_incorrect
        assert split_strategy(node.reasoning)[0] is None  # no tag in the teacher data
        if node.strategy == PROGRAM:
            lines = node.reasoning.split("\n")
            assert "```" not in node.reasoning and "[" not in node.reasoning
            assert re.fullmatch(rf"{item[1]} = \d+", lines[0])
            assert all(re.fullmatch(rf"{item[1]} = {item[1]} [+-] \d+", line)
                       for line in lines[1:-1])
            assert lines[-1] == f"ans = {item[1]}"
            continue
        assert node.reasoning.endswith(f"The answer is {node.answer}.")
        assert extract_answer(node.reasoning, "numeric") == node.answer


_STYLE = {
    "teacher_equations": r"(-?\d+ [+-] \d+ = -?\d+\. )+The answer is -?\d+\.",
    "teacher_narrative": r"[A-Z][a-z]+ starts with \d+ [a-z]+\.( After [a-z ]+ \d+( more)? "
                         r"(she|he) has -?\d+\.)* The answer is -?\d+\.",
    "teacher_stepwise": r"(Step \d: -?\d+ [+-] \d+ = -?\d+\. )+The answer is -?\d+\.",
    "cot": r"(-?\d+ [+-] \d+ = -?\d+\. )+The answer is -?\d+\.",
    "l2m": r"(Sub-question \d: How many [^?]+\? (-?\d+ [+-] \d+ = )?-?\d+\.\n)+"
           r"The answer is -?\d+\.",
}


@pytest.mark.parametrize("kind", ["rationales", "strategies"])
def test_texts_answers_and_labels_agree(kind: str) -> None:
    graphs = _graphs(kind=kind, num_questions=300, teacher_error_rates=(0.4, 0.4, 0.4),
                     strategy_error_rate=0.4, samples_per_strategy=2)
    for graph in graphs:
        _solution_texts_are_consistent(graph)
        for node in graph.nodes:
            style = node.strategy or node.agent
            if style in _STYLE:
                assert re.fullmatch(_STYLE[style], node.reasoning), node.reasoning
    # every error mechanic shows up in every style
    mistakes = Counter((n.strategy or n.agent, n.metadata["mistake"])
                       for g in graphs for n in g.nodes if n.metadata)
    styles = RATIONALE_TEACHERS if kind == "rationales" else tuple(STRATEGIES)
    assert set(mistakes) == {(s, m) for s in styles for m in ("slip", "operation", "drop")}


def test_error_rates_are_roughly_respected() -> None:
    rationales = _graphs(kind="rationales", num_questions=1000)
    for i, rate in enumerate((0.1, 0.2, 0.3)):
        wrong = sum(g.nodes[i].is_incorrect for g in rationales) / len(rationales)
        assert abs(wrong - rate) < 0.05, (RATIONALE_TEACHERS[i], wrong)
    strategies = _graphs(kind="strategies", num_questions=1000)
    for strategy in STRATEGIES:
        nodes = [n for g in strategies for n in g.nodes if n.strategy == strategy]
        wrong = sum(n.is_incorrect for n in nodes) / len(nodes)
        assert abs(wrong - 0.2) < 0.05, (strategy, wrong)
    mistakes = Counter(n.metadata["mistake"] for g in (*rationales, *strategies)
                       for n in g.nodes if n.metadata)
    assert 0.4 < mistakes["slip"] / mistakes.total() < 0.6  # slips are half the errors
    never = _graphs(kind="strategies", num_questions=50, strategy_error_rate=0.0)
    always = _graphs(kind="rationales", num_questions=50, teacher_error_rates=(1.0,))
    assert all(n.is_correct for g in never for n in g.nodes)
    assert all(n.is_incorrect for g in always for n in g.nodes)


def test_programs_compute_their_answers_in_the_sandbox() -> None:
    graphs = _graphs(kind="strategies", num_questions=300, strategy_error_rate=0.4)
    nodes = [n for g in graphs for n in g.nodes if n.strategy == PROGRAM]
    assert sum(n.is_incorrect for n in nodes) > 60  # wrong programs are checked too
    results = run_programs([n.reasoning for n in nodes])
    bad = [(n.reasoning, r) for n, r in zip(nodes, results)
           if not (r.ok and r.value == int(n.answer))]
    assert not bad, bad[:3]


def test_hand_built_problem_gets_generic_words() -> None:
    problem = ToyProblem(start=3, steps=(2, -1), text="Three, add two, take one.")
    assert solve(problem) == ("3 + 2 = 5. 5 - 1 = 4. The answer is 4.", 4)
    from magdi_lightning.sources.toy import _render_l2m, _render_narrative, _render_pot, _trace

    trace = _trace(problem, None, 0.0)
    assert _render_narrative(problem, trace) == ("Sam starts with 3 items. After adding 2 she "
                                                 "has 5. After taking away 1 she has 4. The "
                                                 "answer is 4.")
    assert _render_l2m(problem, trace).endswith("5 - 1 = 4.\nThe answer is 4.")
    assert _render_pot(problem, trace) == "items = 3\nitems = items + 2\nitems = items - 1\n" \
                                          "ans = items"


@pytest.mark.parametrize("options", [
    {"kind": "debate"},
    {"kind": "rationales", "teacher_error_rates": ()},
    {"teacher_error_rates": (0.1, 0.1, 0.1, 0.1)},
    {"teacher_error_rates": (0.1, 1.5)},
    {"strategy_error_rate": -0.1},
    {"strategy_error_rate": 1.01},
    {"samples_per_strategy": 0},
    {"strategy_teachers": 0},
])
def test_bad_options_raise_value_error(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="toy world"):
        ToyWorldConfig(**options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="toy world"):
        import_graphs("toy", "default", **options)


def test_importer_reaches_every_kind(tmp_path: Path) -> None:
    rationales = list(import_graphs("toy", "default", kind="rationales", num_questions=5,
                                    teacher_error_rates=[0.0, 1.0]))
    assert [g.to_dict() for g in rationales] == [g.to_dict() for g in _graphs(
        kind="rationales", num_questions=5, teacher_error_rates=(0.0, 1.0))]
    assert all([n.correctness for n in g.nodes] == [Correctness.CORRECT, Correctness.INCORRECT]
               for g in rationales)
    options = tmp_path / "strategies.json"
    options.write_text(json.dumps({"kind": "strategies", "num_questions": 4,
                                   "samples_per_strategy": 2}), encoding="utf-8")
    strategies = list(import_graphs("toy", options, seed=5))
    assert [g.to_dict() for g in strategies] == [g.to_dict() for g in _graphs(
        kind="strategies", num_questions=4, samples_per_strategy=2, seed=5)]
    questions = load_toy_questions(num_questions=4, seed=5, kind="strategies",
                                   samples_per_strategy=2)
    assert [q.id for q in questions] == [g.id for g in strategies]
