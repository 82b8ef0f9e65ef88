"""SIKeD's mixing rules on hand-built examples."""

from __future__ import annotations

import pytest
from factories import C, W

from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.methods.siked import mix, student_graphs, teacher_data
from magdi_lightning.questions import Question

QUESTIONS = [Question(id=f"q{i}", question=f"Ann has {i} pens. She buys 2 more. How "
                              "many pens does Ann have now?", gold=str(i + 2), task="numeric")
             for i in range(3)]


def teacher_graph(question: Question) -> ReasoningGraph:
    a = int(question.gold) - 2
    nodes = [Node(id=f"t-{s}", agent="teacher", round=0, reasoning=text, correctness=label,
                  strategy=s) for s, text, label in [
                      ("cot", f"{a} + 2 = {a + 2}. The answer is {a + 2}.", C),
                      ("l2m", f"Sub-question 1: {a} + 2 = {a + 3}. The answer is {a + 3}.", W),
                      ("pot", f"pens = {a}\npens = pens + 2\nans = pens", C)]]
    return ReasoningGraph(id=question.id, question=question.question,
                          gold_answer=question.gold, task="numeric", nodes=nodes)


TEACHER = teacher_data([teacher_graph(q) for q in QUESTIONS], ["cot", "l2m", "pot"])


def test_student_graphs_keep_the_first_correct_sample_per_strategy() -> None:
    samples = {
        # q0: two correct cot samples (the first is kept), a wrong l2m, a correct program
        "q0": ["[cot] 0 + 2 = 2. The answer is 2.", "[cot] The answer is 2, surely.",
               "[l2m] Sub-question 1: 0 + 2 = 3. The answer is 3.",
               "[pot] x = 0\nans = x + 2"],
        # q1: a program that crashes, an untagged output, a wrong answer: nothing kept
        "q1": ["[pot] ans = 1 / 0", "The answer is 3.", "[cot] The answer is 4."],
        # q2: a correct least-to-most sample only
        "q2": ["[l2m] Sub-question 1: 2 + 2 = 4. The answer is 4."],
    }
    graphs = student_graphs(QUESTIONS, samples, iteration=2)
    assert set(graphs) == {"q0", "q2"}
    assert [(n.strategy, n.reasoning) for n in graphs["q0"].nodes] == [
        ("cot", "0 + 2 = 2. The answer is 2."), ("pot", "x = 0\nans = x + 2")]
    assert all(n.is_correct and n.agent == "student" for g in graphs.values() for n in g.nodes)
    assert graphs["q2"].nodes[0].model == "student-iteration-2"


def test_the_teacher_data_is_its_correct_solutions() -> None:
    assert [[n.strategy for n in g.nodes] for g in TEACHER] == [["cot", "pot"]] * 3


def test_adaptive_mixing_adds_teacher_data_where_the_student_failed_with_that_strategy(
        ) -> None:
    student = student_graphs(QUESTIONS, {"q0": ["[cot] The answer is 2."],
                                         "q2": ["[pot] ans = 4", "[cot] The answer is 4."]}, 1)
    mixture = mix(QUESTIONS, TEACHER, student, "adaptive")
    # q0: the student's cot + the teacher's pot; q1: the teacher's cot and pot; q2: the
    # student's pot and cot, nothing of the teacher's
    assert mixture.teacher_questions == ["q0", "q1"]
    assert (mixture.student_examples, mixture.teacher_examples) == (3, 3)
    assert mixture.alpha == pytest.approx(3 / 6)
    assert mixture.student_correct_share == pytest.approx(2 / 3)
    by_id = {g.id: g for g in mixture.graphs}
    assert [(n.agent, n.strategy) for n in by_id["q0"].nodes] == [("student", "cot"),
                                                                  ("teacher", "pot")]
    assert {n.agent for n in by_id["q1"].nodes} == {"teacher"}
    assert {n.agent for n in by_id["q2"].nodes} == {"student"}


def test_all_mixing_keeps_every_teacher_solution() -> None:
    student = student_graphs(QUESTIONS, {"q0": ["[cot] The answer is 2."]}, 1)
    mixture = mix(QUESTIONS, TEACHER, student, "all")
    assert mixture.teacher_questions == ["q0", "q1", "q2"]
    assert (mixture.student_examples, mixture.teacher_examples) == (1, 6)
    assert mixture.alpha == pytest.approx(6 / 7)


def test_alpha_falls_as_the_student_solves_more() -> None:
    alphas = []
    for solved in range(4):
        samples = {q.id: [f"[cot] The answer is {q.gold}."] for q in QUESTIONS[:solved]}
        alphas.append(mix(QUESTIONS, TEACHER, student_graphs(QUESTIONS, samples, 1)).alpha)
    # each solved question trades the teacher's cot for the student's; its pot stays
    assert alphas == pytest.approx([6 / 6, 5 / 6, 4 / 6, 3 / 6])


def test_an_unknown_mixing_mode_or_selection_is_refused() -> None:
    with pytest.raises(ValueError, match="adaptive"):
        mix(QUESTIONS, TEACHER, {}, "half")
    with pytest.raises(ValueError, match="pot-biased"):
        mix(QUESTIONS, TEACHER, {}, "adaptive", "biased")
