"""SIKeD as its reference code defines it (shivam0109/SIKeD), on hand-built mixtures.

Each expected mixture is derived by hand from the reference's rules:
- teacher data: per question and strategy, the first correct of the teacher's samples
  (dataset_creation/create_data.py ``get_kd_data``);
- student data: per question and strategy, the first correct sample, a least-to-most one
  only if it contains "subquestion" once lower-cased and stripped of punctuation
  (iterative_data_creation/create-data-from-individual-strategies.py ``check_l2m_validity``,
  ``select_one_rc``);
- adaptive: for each strategy s, the teacher's s rows of the questions missing from the
  student's s rows (create-mixed-data.py ``get_mixed_data``); all: every row
  (create-all-data.py);
- biased: one row per question, the first strategy in the priority order (``get_biased_data``:
  cot > pot > l2m, pot > cot > l2m, l2m > pot > cot);
- alpha: teacher rows / all rows of the training mixture.
"""

from __future__ import annotations

import pytest
from factories import C, W

from magdi_lightning.graph import Node, ReasoningGraph
from magdi_lightning.methods.siked import mix, student_graphs, teacher_data
from magdi_lightning.questions import Question
from magdi_lightning.strategies import is_least_to_most

STRATEGIES = ["cot", "l2m", "pot"]
Q = [Question(id=f"q{i}", question=f"Bo has {i} cups and buys 3 more. How many cups "
                      "does Bo have?", gold=str(i + 3), task="numeric") for i in range(4)]

#: Each strategy's correct solution of question i, in the student's words.
SOLUTION = {
    "cot": "{i} + 3 = {a}. The answer is {a}.",
    "l2m": "Sub-question 1: How many cups after buying? {i} + 3 = {a}. The answer is {a}.",
    "pot": "cups = {i}\nans = cups + 3",
}


def solved(i: int, *strategies: str) -> list[str]:
    """The student's tagged, correct samples of question i."""
    return [f"[{s}] " + SOLUTION[s].format(i=i, a=i + 3) for s in strategies]


def teacher(question: Question, *strategies: str) -> ReasoningGraph:
    a = int(question.gold)
    nodes = [Node(id=f"t.{s}", agent="teacher", round=0, strategy=s, correctness=C,
                  reasoning=SOLUTION[s].format(i=a - 3, a=a)) for s in strategies]
    return ReasoningGraph(id=question.id, question=question.question,
                          gold_answer=question.gold, task="numeric", nodes=nodes)


FULL_TEACHER = [teacher(q, *STRATEGIES) for q in Q]


def content(mixture_graphs: list[ReasoningGraph]) -> dict[str, list[tuple[str, str]]]:
    return {g.id: [(n.agent, n.strategy or "") for n in g.nodes] for g in mixture_graphs}


# ----------------------------------------------------------------------------- teacher data
def test_teacher_data_is_the_first_correct_sample_per_question_and_strategy() -> None:
    nodes = [Node(id=f"t{k}", agent="teacher", round=0, strategy=s, correctness=label,
                  reasoning=text) for k, (s, label, text) in enumerate([
                      ("cot", W, "wrong"), ("cot", C, "first right"), ("cot", C, "second"),
                      ("l2m", W, "wrong"), ("pot", C, "ans = 5"), ("pot", C, "ans = 2 + 3"),
                      (None, C, "no strategy")])]
    graph = ReasoningGraph(id="q", question="2 + 3?", gold_answer="5", task="numeric",
                           nodes=nodes)
    (kept,) = teacher_data([graph], STRATEGIES)
    assert [(n.strategy, n.reasoning) for n in kept.nodes] == [("cot", "first right"),
                                                              ("pot", "ans = 5")]
    assert teacher_data([graph], ["l2m"]) == []  # no correct l2m: no data for the question


def test_iteration_one_is_all_teacher_data_one_per_question_and_strategy() -> None:
    mixture = mix(Q, FULL_TEACHER, {})
    assert content(mixture.graphs) == {q.id: [("teacher", s) for s in STRATEGIES] for q in Q}
    assert (mixture.alpha, mixture.teacher_examples, mixture.student_examples) == (1.0, 12, 0)


# ------------------------------------------------------------------- student data and L2M
@pytest.mark.parametrize(("text", "valid"), [
    ("Sub-question 1: How many? 2 + 3 = 5.", True),
    ("SUBQUESTION: 2 + 3 = 5", True),
    ("Let's break it down. sub_question one: 5", True),   # '_' is punctuation
    ("First, a sub question: 2 + 3 = 5.", False),         # a space is not removed
    ("2 + 3 = 5. The answer is 5.", False),
])
def test_the_least_to_most_validity_rule(text: str, valid: bool) -> None:
    assert is_least_to_most(text) is valid


def test_student_least_to_most_samples_without_sub_questions_are_dropped() -> None:
    samples = {"q0": ["[l2m] 0 + 3 = 3. The answer is 3.",  # correct but no decomposition
                      *solved(0, "l2m"),                    # the first valid one is kept
                      "[cot] 0 + 3 = 3. The answer is 3."]}  # the rule is for l2m only
    graph = student_graphs(Q, samples, iteration=1)["q0"]
    assert [(n.strategy, n.reasoning.startswith("Sub-question")) for n in graph.nodes] == [
        ("l2m", True), ("cot", False)]


def test_teacher_least_to_most_data_is_not_format_checked() -> None:
    node = Node(id="t.l2m", agent="teacher", round=0, strategy="l2m", correctness=C,
                reasoning="0 + 3 = 3. The answer is 3.")
    graph = ReasoningGraph(id="q0", question=Q[0].question, gold_answer="3", task="numeric",
                           nodes=[node])
    assert [n.strategy for n in teacher_data([graph], STRATEGIES)[0].nodes] == ["l2m"]


# ------------------------------------------------------------------------------- mixing
STUDENT = student_graphs(Q, {"q0": solved(0, "cot"),               # one strategy
                             "q1": solved(1, "cot", "l2m", "pot"),  # every strategy
                             "q2": solved(2, "pot", "l2m")}, 1)     # q3: none


def test_adaptive_mixing_is_per_question_and_strategy() -> None:
    mixture = mix(Q, FULL_TEACHER, STUDENT, "adaptive")
    assert content(mixture.graphs) == {
        "q0": [("student", "cot"), ("teacher", "l2m"), ("teacher", "pot")],
        "q1": [("student", "cot"), ("student", "l2m"), ("student", "pot")],
        "q2": [("student", "pot"), ("student", "l2m"), ("teacher", "cot")],
        "q3": [("teacher", "cot"), ("teacher", "l2m"), ("teacher", "pot")],
    }
    # student rows 1 + 3 + 2, teacher rows 2 + 0 + 1 + 3
    assert (mixture.student_examples, mixture.teacher_examples) == (6, 6)
    assert mixture.alpha == pytest.approx(6 / 12)
    assert mixture.teacher_by_strategy == {"cot": 2, "l2m": 2, "pot": 2}
    assert mixture.student_by_strategy == {"cot": 2, "l2m": 2, "pot": 2}
    assert mixture.teacher_questions == ["q0", "q2", "q3"]
    assert mixture.student_correct_share == pytest.approx(3 / 4)


def test_all_mixing_adds_every_teacher_row() -> None:
    mixture = mix(Q, FULL_TEACHER, STUDENT, "all")
    assert (mixture.student_examples, mixture.teacher_examples) == (6, 12)
    assert mixture.alpha == pytest.approx(12 / 18)
    assert content(mixture.graphs)["q1"] == [
        ("student", "cot"), ("student", "l2m"), ("student", "pot"),
        ("teacher", "cot"), ("teacher", "l2m"), ("teacher", "pot")]


def test_a_question_only_the_student_solved_keeps_the_students_rows() -> None:
    sparse = [teacher(Q[0], "pot")]  # the teacher solved q0 with pot only, q1 not at all
    student = student_graphs(Q, {"q1": solved(1, "cot")}, 1)
    mixture = mix(Q[:2], sparse, student)
    assert content(mixture.graphs) == {"q0": [("teacher", "pot")], "q1": [("student", "cot")]}
    assert mixture.alpha == pytest.approx(1 / 2)


# ----------------------------------------------------------------------- biased selection
@pytest.mark.parametrize(("selection", "expected"), [
    # q0: student cot, teacher l2m + pot; q1: student all three; q2: student l2m + pot,
    # teacher cot; q3: teacher all three (adaptive mixture above)
    ("pot-biased", {"q0": ("teacher", "pot"), "q1": ("student", "pot"),
                    "q2": ("student", "pot"), "q3": ("teacher", "pot")}),
    ("cot-biased", {"q0": ("student", "cot"), "q1": ("student", "cot"),
                    "q2": ("teacher", "cot"), "q3": ("teacher", "cot")}),
    ("l2m-biased", {"q0": ("teacher", "l2m"), "q1": ("student", "l2m"),
                    "q2": ("student", "l2m"), "q3": ("teacher", "l2m")}),
])
def test_biased_selection_keeps_one_row_per_question(selection: str,
                                                     expected: dict[str, tuple[str, str]]
                                                     ) -> None:
    mixture = mix(Q, FULL_TEACHER, STUDENT, "adaptive", selection)
    assert content(mixture.graphs) == {qid: [row] for qid, row in expected.items()}
    teacher_rows = sum(side == "teacher" for side, _ in expected.values())
    assert mixture.alpha == pytest.approx(teacher_rows / 4)  # alpha of what is trained on


def test_biased_fallback_order_follows_the_reference() -> None:
    # only cot and l2m available: pot-biased and l2m-biased differ in their fallbacks
    graphs = [teacher(Q[0], "cot", "l2m")]
    pick = {sel: content(mix(Q[:1], graphs, {}, "adaptive", sel).graphs)["q0"]
            for sel in ("pot-biased", "cot-biased", "l2m-biased")}
    assert pick == {"pot-biased": [("teacher", "cot")], "cot-biased": [("teacher", "cot")],
                    "l2m-biased": [("teacher", "l2m")]}
    graphs = [teacher(Q[0], "pot", "l2m")]
    assert content(mix(Q[:1], graphs, {}, "adaptive", "cot-biased").graphs)["q0"] == [
        ("teacher", "pot")]


def test_biased_all_mixing_prefers_the_students_row_of_the_chosen_strategy() -> None:
    mixture = mix(Q, FULL_TEACHER, STUDENT, "all", "pot-biased")
    assert content(mixture.graphs)["q1"] == [("student", "pot")]
    assert content(mixture.graphs)["q0"] == [("teacher", "pot")]


def test_biased_iteration_one() -> None:
    mixture = mix(Q, FULL_TEACHER, {}, "adaptive", "l2m-biased")
    assert content(mixture.graphs) == {q.id: [("teacher", "l2m")] for q in Q}
    assert mixture.alpha == 1.0


# ------------------------------------------------------------------------ student sampling
def test_the_student_samples_with_the_configured_nucleus(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from omegaconf import OmegaConf

    from magdi_lightning.cli import siked as cli

    calls: list[dict] = []

    def fake_generate(student, formatter, questions, batch_size, max_new_tokens, **kwargs):
        calls.append({"n": len(questions), "max_new_tokens": max_new_tokens, **kwargs})
        return [(f"{kwargs['response_start']} x", 1) for _ in questions]

    monkeypatch.setattr(cli, "generate", fake_generate)
    cfg = OmegaConf.create({"strategies": ["cot", "pot"], "sampling": {
        "samples_per_strategy": 10, "temperature": 0.7, "top_p": 0.95, "batch_size": 8,
        "max_new_tokens": 512}})
    source = type("Source", (), {"formatter": None})()
    samples = cli.sample_student(None, source, Q[:2], cfg)
    assert [(c["n"], c["response_start"], c["temperature"], c["top_p"], c["do_sample"],
             c["max_new_tokens"]) for c in calls] == [(20, "[cot]", 0.7, 0.95, True, 512),
                                                      (20, "[pot]", 0.7, 0.95, True, 512)]
    assert all(len(texts) == 20 for texts in samples.values())
