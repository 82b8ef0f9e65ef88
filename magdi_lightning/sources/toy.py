"""The toy world: synthetic arithmetic word problems and three kinds of teacher graphs.

SYNTHETIC DATA. Everything here is generated from a seed inside the project; no text
comes from a real model or dataset. It exists so that training, importers and learning
tests run anywhere, with no download, in minutes on a CPU.

A problem is a start value followed by 2-4 add/subtract steps with small numbers
("Ann has 3 pens. She buys 4 more. She gives away 2. How many pens does Ann have
now?"). A chain-of-thought solution writes one equation per step and ends with
"The answer is N.".

Every solver errs at a given rate. Errors are those people and models make: an
arithmetic slip (off by one or two), the wrong operation, or a dropped step; each
carries through the remaining steps, so a wrong chain is wrong for a reason (and every
error makes the final answer wrong). Correctness labels compare the final answer with
the gold answer. :class:`ToyWorldConfig` ``kind`` picks what is generated per question:

``"debates"`` (the default; MAGDi-shaped)
    A debate of A agents over R rounds. In round 0 each agent solves the problem alone
    and errs with its own rate (``error_rates``). In a later round every agent has seen
    all answers of the round before; an agent that disagrees with the majority adopts a
    majority agent's solution with probability ``switch_to_majority`` (so a wrong
    majority can pull a correct agent into error), and otherwise solves again, erring at
    half its rate. Edges run from every node of a round to every node of the next.
``"rationales"`` (TinyLLM-shaped)
    One round, one node per teacher, no edges. Each teacher has its own style and its
    own error rate (``teacher_error_rates``, one entry per teacher, at most three):
    ``teacher_equations`` ("3 + 2 = 5. 5 - 1 = 4. The answer is 4."),
    ``teacher_narrative`` ("Ann starts with 3 pens. After buying 2 more she has 5. After
    losing 1 she has 4. The answer is 4.") and ``teacher_stepwise`` ("Step 1: 3 + 2 = 5.
    Step 2: 5 - 1 = 4. The answer is 4.").
``"strategies"`` (SIKeD-shaped)
    One round, no edges; per simulated teacher (``strategy_teachers``) and strategy,
    ``samples_per_strategy`` nodes with ``strategy`` set, each erring at
    ``strategy_error_rate``. ``cot`` is the chain of thought above; ``l2m`` answers one
    sub-question per step ("Sub-question 1: How many pens does Ann have after buying 2
    more? 3 + 2 = 5.\\nSub-question 2: How many after losing 1? 5 - 1 = 4.\\nThe answer
    is 4."); ``pot`` is a bare Python program whose ``ans`` is the answer ("pens =
    3\\npens = pens + 2\\npens = pens - 1\\nans = pens"; an error misreads a number, flips
    an operation or drops a line, so the program computes the wrong value). ``reasoning``
    holds the solution without a strategy tag (tags are added at training time) and
    ``answer`` the value the solution arrives at.

Graph ids are ``toy-<digest>-<index>``, the digest taken over the settings that shape
that kind's output, so different kinds get different ids, and the debates' ids (and
texts, and labels) are those of the generator before the other kinds existed. The
debates draw questions and solutions from one random stream; rationales and strategies
draw questions from their own stream, so for a seed both ask the same questions.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magdi_lightning.graph import Correctness, Edge, Node, ReasoningGraph

__all__ = [
    "KINDS",
    "RATIONALE_TEACHERS",
    "ToyProblem",
    "ToyWorldConfig",
    "generate_problems",
    "generate_toy_graphs",
    "import_toy",
    "solve",
]

GENERATOR = "magdi_lightning.toy_world/v1"

#: What :func:`generate_toy_graphs` can generate (``ToyWorldConfig.kind``).
KINDS = ("debates", "rationales", "strategies")
#: The rationale teachers (agent names), in order; ``teacher_error_rates[i]`` is the i-th's.
RATIONALE_TEACHERS = ("teacher_equations", "teacher_narrative", "teacher_stepwise")
_STRATEGY_ORDER = ("cot", "l2m", "pot")

_NAMES = [("Ann", "She"), ("Ben", "He"), ("Cara", "She"), ("Dan", "He"), ("Eve", "She"),
          ("Finn", "He"), ("Gia", "She"), ("Hugo", "He"), ("Ivy", "She"), ("Jon", "He")]
_ITEMS = ["apples", "pens", "coins", "books", "stamps", "cards", "shells", "marbles"]
# (sentence of the question, the same action as a gerund phrase for the solutions)
_ADD = [("{pronoun} buys {n} more.", "buying {n} more"),
        ("{pronoun} gets {n} more.", "getting {n} more"),
        ("{pronoun} finds {n} more.", "finding {n} more")]
_SUB = [("{pronoun} gives away {n}.", "giving away {n}"),
        ("{pronoun} loses {n}.", "losing {n}"),
        ("{pronoun} sells {n}.", "selling {n}")]

#: Settings every kind uses; the digest of graph ids covers these plus the kind's own.
_COMMON_FIELDS = ("num_questions", "min_steps", "max_steps", "max_number", "max_value", "seed")
_KIND_FIELDS = {
    "debates": ("num_agents", "num_rounds", "error_rates", "switch_to_majority"),
    "rationales": ("teacher_error_rates",),
    "strategies": ("strategy_teachers", "samples_per_strategy", "strategy_error_rate"),
}


@dataclass(frozen=True)
class ToyWorldConfig:
    """Knobs of the generator; the defaults are the embedded default dataset.

    ``kind`` picks debates, rationales or strategies (see the module docstring); each
    kind reads the problem settings, ``seed`` and its own knobs only.
    """

    num_questions: int = 3000
    min_steps: int = 2
    max_steps: int = 3
    max_number: int = 9
    max_value: int = 12
    num_agents: int = 3
    num_rounds: int = 2
    error_rates: tuple[float, ...] = (0.2, 0.35, 0.5)
    switch_to_majority: float = 0.7
    seed: int = 0
    kind: str = "debates"
    teacher_error_rates: tuple[float, ...] = (0.1, 0.2, 0.3)
    strategy_teachers: int = 1
    samples_per_strategy: int = 1
    strategy_error_rate: float = 0.2

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError("toy world: need 1 <= min_steps <= max_steps")
        if self.max_number < 2 or self.max_value < self.max_number:
            raise ValueError("toy world: need 2 <= max_number <= max_value")
        if self.num_agents < 1 or self.num_rounds < 1 or self.num_questions < 1:
            raise ValueError("toy world: num_questions, num_agents, num_rounds must be >= 1")
        if len(self.error_rates) != self.num_agents:
            raise ValueError(f"toy world: error_rates has {len(self.error_rates)} entries for "
                             f"{self.num_agents} agents")
        if not all(0.0 <= p <= 1.0 for p in (*self.error_rates, self.switch_to_majority)):
            raise ValueError("toy world: error rates and switch_to_majority must be in [0, 1]")
        if self.kind not in KINDS:
            raise ValueError(f"toy world: kind must be one of {list(KINDS)}, got {self.kind!r}")
        if not 1 <= len(self.teacher_error_rates) <= len(RATIONALE_TEACHERS):
            raise ValueError(f"toy world: teacher_error_rates needs 1 to "
                             f"{len(RATIONALE_TEACHERS)} entries (one per teacher: "
                             f"{', '.join(RATIONALE_TEACHERS)}), got "
                             f"{len(self.teacher_error_rates)}")
        if self.strategy_teachers < 1 or self.samples_per_strategy < 1:
            raise ValueError("toy world: strategy_teachers and samples_per_strategy must be >= 1")
        if not all(0.0 <= p <= 1.0 for p in (*self.teacher_error_rates,
                                             self.strategy_error_rate)):
            raise ValueError("toy world: teacher_error_rates and strategy_error_rate must be "
                             "in [0, 1]")

    def digest(self) -> str:
        """8 hex digits over the settings that shape this kind's graphs (the ids' middle).

        For debates these are exactly the settings the generator had before the other
        kinds, so the default dataset's ids never changed.
        """
        settings = {name: getattr(self, name)
                    for name in (*_COMMON_FIELDS, *_KIND_FIELDS[self.kind])}
        if self.kind != "debates":
            settings["kind"] = self.kind
        return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ToyProblem:
    """A start value and signed steps; ``text`` is the word problem.

    ``name``, ``pronoun``, ``item`` and ``actions`` (one gerund phrase per step, "buying
    4 more") are the story's words, used by the narrative and least-to-most solutions; a
    problem built by hand without them gets generic words there.
    """

    start: int
    steps: tuple[int, ...]
    text: str = field(compare=False)
    name: str = field(default="", compare=False)
    pronoun: str = field(default="", compare=False)
    item: str = field(default="", compare=False)
    actions: tuple[str, ...] = field(default=(), compare=False)

    @property
    def answer(self) -> int:
        return self.start + sum(self.steps)


def generate_problems(config: ToyWorldConfig, rng: random.Random) -> Iterator[ToyProblem]:
    """Problems whose running total stays within ``0..max_value``; no question repeats."""
    seen: set[str] = set()
    while len(seen) < config.num_questions:
        name, pronoun = rng.choice(_NAMES)
        item = rng.choice(_ITEMS)
        value = rng.randint(2, config.max_number)
        start, steps = value, []
        for _ in range(rng.randint(config.min_steps, config.max_steps)):
            can_add = min(config.max_number, config.max_value - value)
            can_sub = min(config.max_number, value)
            if can_add >= 1 and (can_sub < 1 or rng.random() < 0.5):
                steps.append(rng.randint(1, can_add))
            elif can_sub >= 1:
                steps.append(-rng.randint(1, can_sub))
            else:
                break
            value += steps[-1]
        sentences = [f"{name} has {start} {item}."]
        actions = []
        for step in steps:
            template, action = rng.choice(_ADD if step > 0 else _SUB)
            sentences.append(template.format(pronoun=pronoun, n=abs(step)))
            actions.append(action.format(n=abs(step)))
        sentences.append(f"How many {item} does {name} have now?")
        text = " ".join(sentences)
        if len(steps) >= config.min_steps and text not in seen:
            seen.add(text)
            yield ToyProblem(start=start, steps=tuple(steps), text=text, name=name,
                             pronoun=pronoun, item=item, actions=tuple(actions))


@dataclass(frozen=True)
class _Step:
    """One step as a solver carried it out: ``before op operand = result``."""

    index: int
    before: int
    op: str
    operand: int
    result: int


@dataclass(frozen=True)
class _Trace:
    """A solver's run through a problem: the steps it wrote and where it went wrong."""

    start: int
    steps: tuple[_Step, ...]
    value: int
    mistake: str | None


def _trace(problem: ToyProblem, rng: random.Random | None, error_rate: float) -> _Trace:
    """Solve ``problem``, erring with ``error_rate`` at one step (carried on from there)."""
    mistake_at = -1
    kind = ""
    if rng is not None and rng.random() < error_rate:
        mistake_at = rng.randrange(len(problem.steps))
        kind = rng.choice(["slip", "slip", "operation", "drop"])
    value = problem.start
    steps = []
    for i, step in enumerate(problem.steps):
        if i == mistake_at and kind == "drop":
            continue
        op = "+" if step > 0 else "-"
        result = value + step
        if i == mistake_at and kind == "operation":
            op = "-" if step > 0 else "+"
            result = value - step
        elif i == mistake_at and kind == "slip":
            assert rng is not None
            result += rng.choice([-2, -1, 1, 2])
        steps.append(_Step(index=i, before=value, op=op, operand=abs(step), result=result))
        value = result
    return _Trace(start=problem.start, steps=tuple(steps), value=value, mistake=kind or None)


def _equation(step: _Step) -> str:
    return f"{step.before} {step.op} {step.operand} = {step.result}."


def _equations(trace: _Trace) -> list[str]:
    """One equation per written step; a chain whose only step was dropped adds 0."""
    return [_equation(s) for s in trace.steps] or [f"{trace.value} + 0 = {trace.value}."]


def _story(problem: ToyProblem) -> tuple[str, str, str, tuple[str, ...]]:
    """Name, pronoun, item and per-step actions; generic words for a hand-built problem."""
    if len(problem.actions) == len(problem.steps) and problem.name and problem.item:
        return problem.name, problem.pronoun or "She", problem.item, problem.actions
    actions = tuple(f"adding {s}" if s > 0 else f"taking away {-s}" for s in problem.steps)
    return "Sam", "She", "items", actions


def _final(trace: _Trace) -> str:
    return f"The answer is {trace.value}."


def _render_cot(problem: ToyProblem, trace: _Trace) -> str:
    return " ".join([*_equations(trace), _final(trace)])


def _render_stepwise(problem: ToyProblem, trace: _Trace) -> str:
    lines = [f"Step {j}: {eq}" for j, eq in enumerate(_equations(trace), start=1)]
    return " ".join([*lines, _final(trace)])


def _render_narrative(problem: ToyProblem, trace: _Trace) -> str:
    name, pronoun, item, actions = _story(problem)
    lines = [f"{name} starts with {trace.start} {item}."]
    lines += [f"After {actions[s.index]} {pronoun.lower()} has {s.result}." for s in trace.steps]
    return " ".join([*lines, _final(trace)])


def _render_l2m(problem: ToyProblem, trace: _Trace) -> str:
    name, _, item, actions = _story(problem)
    lines = []
    for j, step in enumerate(trace.steps, start=1):
        asked = (f"How many {item} does {name} have after {actions[step.index]}?" if j == 1
                 else f"How many after {actions[step.index]}?")
        lines.append(f"Sub-question {j}: {asked} {_equation(step)}")
    if not lines:
        lines.append(f"Sub-question 1: How many {item} does {name} have at the start? "
                     f"{trace.start}.")
    return "\n".join([*lines, _final(trace)])


def _render_pot(problem: ToyProblem, trace: _Trace) -> str:
    """A program computing ``trace.value``: a slip is a misread number, so the line shows
    the amount the solver actually added."""
    _, _, item, _ = _story(problem)
    lines = [f"{item} = {trace.start}"]
    for step in trace.steps:
        delta = step.result - step.before
        lines.append(f"{item} = {item} {'-' if delta < 0 else '+'} {abs(delta)}")
    lines.append(f"ans = {item}")
    return "\n".join(lines)


_RENDERERS = {
    "teacher_equations": _render_cot, "teacher_narrative": _render_narrative,
    "teacher_stepwise": _render_stepwise,
    "cot": _render_cot, "l2m": _render_l2m, "pot": _render_pot,
}


def solve(problem: ToyProblem, rng: random.Random | None = None,
          error_rate: float = 0.0) -> tuple[str, int]:
    """A chain-of-thought solution and its final answer, erring with ``error_rate``.

    An error happens at one step and the chain carries the wrong value on from there.
    """
    trace = _trace(problem, rng, error_rate)
    return _render_cot(problem, trace), trace.value


def _correctness(answer: int, problem: ToyProblem) -> Correctness:
    return Correctness.CORRECT if answer == problem.answer else Correctness.INCORRECT


def _source(config: ToyWorldConfig) -> dict[str, Any]:
    source: dict[str, Any] = {"format": "toy", "synthetic": True, "generator": GENERATOR,
                              "seed": config.seed}
    if config.kind != "debates":  # the debates' provenance predates the other kinds
        source["kind"] = config.kind
    return source


def _debate(problem: ToyProblem, config: ToyWorldConfig, rng: random.Random,
            graph_id: str) -> ReasoningGraph:
    nodes: list[Node] = []
    edges: list[Edge] = []
    previous: list[tuple[str, int]] = []
    for round_ in range(config.num_rounds):
        current: list[tuple[str, int]] = []
        if previous:
            majority, _ = Counter(answer for _, answer in previous).most_common(1)[0]
            majority_solutions = [p for p in previous if p[1] == majority]
        for agent, error_rate in enumerate(config.error_rates):
            if not previous:
                current.append(solve(problem, rng, error_rate))
            elif previous[agent][1] == majority:
                current.append(previous[agent])
            elif rng.random() < config.switch_to_majority:
                current.append(rng.choice(majority_solutions))
            else:
                current.append(solve(problem, rng, error_rate / 2))
        for agent, (reasoning, answer) in enumerate(current):
            node_id = f"a{agent}r{round_}"
            nodes.append(Node(
                id=node_id, agent=f"agent_{agent}", round=round_, reasoning=reasoning,
                answer=str(answer), model=f"toy-simulated-p{config.error_rates[agent]:g}",
                correctness=_correctness(answer, problem),
            ))
            if round_ > 0:
                edges.extend(Edge(f"a{seen}r{round_ - 1}", node_id)
                             for seen in range(config.num_agents))
        previous = current
    return ReasoningGraph(
        id=graph_id, question=problem.text, gold_answer=str(problem.answer), task="numeric",
        nodes=nodes, edges=edges, source=_source(config),
    )


def _solution_node(problem: ToyProblem, rng: random.Random, error_rate: float, style: str,
                   model: str, **fields: Any) -> Node:
    """One round-0 node solving ``problem`` in ``style`` (a teacher's or a strategy).

    ``metadata["mistake"]`` names the error made, if any (slip, operation or drop).
    """
    trace = _trace(problem, rng, error_rate)
    return Node(reasoning=_RENDERERS[style](problem, trace), answer=str(trace.value),
                correctness=_correctness(trace.value, problem), round=0,
                model=f"{model}-p{error_rate:g}",
                metadata={"mistake": trace.mistake} if trace.mistake else {}, **fields)


def _rationales(problem: ToyProblem, config: ToyWorldConfig, rng: random.Random,
                graph_id: str) -> ReasoningGraph:
    nodes = [_solution_node(problem, rng, rate, teacher, f"toy-simulated-{teacher}",
                            id=f"t{i}", agent=teacher)
             for i, (teacher, rate) in enumerate(zip(RATIONALE_TEACHERS,
                                                     config.teacher_error_rates))]
    return ReasoningGraph(id=graph_id, question=problem.text, gold_answer=str(problem.answer),
                          task="numeric", nodes=nodes, source=_source(config))


def _strategies(problem: ToyProblem, config: ToyWorldConfig, rng: random.Random,
                graph_id: str) -> ReasoningGraph:
    nodes = [_solution_node(problem, rng, config.strategy_error_rate, strategy, "toy-simulated",
                            id=f"t{teacher}-{strategy}-{sample}", agent=f"teacher_{teacher}",
                            strategy=strategy)
             for teacher in range(config.strategy_teachers)
             for strategy in _STRATEGY_ORDER
             for sample in range(config.samples_per_strategy)]
    return ReasoningGraph(id=graph_id, question=problem.text, gold_answer=str(problem.answer),
                          task="numeric", nodes=nodes, source=_source(config))


_BUILDERS = {"rationales": _rationales, "strategies": _strategies}


def generate_toy_graphs(config: ToyWorldConfig | None = None) -> Iterator[ReasoningGraph]:
    """Yield ``config.num_questions`` graphs of ``config.kind``, reproducibly from the seed."""
    config = config or ToyWorldConfig()
    digest = config.digest()
    if config.kind == "debates":  # one stream for questions and debates, as it always was
        rng = random.Random(config.seed)
        for i, problem in enumerate(generate_problems(config, rng)):
            yield _debate(problem, config, rng, graph_id=f"toy-{digest}-{i:06d}")
        return
    questions = random.Random(config.seed)
    solutions = random.Random(f"magdi_lightning.toy_world/{config.kind}/{config.seed}")
    build = _BUILDERS[config.kind]
    for i, problem in enumerate(generate_problems(config, questions)):
        yield build(problem, config, solutions, graph_id=f"toy-{digest}-{i:06d}")


def import_toy(path: str | Path = "default", **options: Any) -> Iterator[ReasoningGraph]:
    """The ``toy`` importer: ``path`` is ``"default"`` or a JSON file of generator options.

    Keyword options override the file's; lists become tuples (``error_rates``,
    ``teacher_error_rates``). ``kind`` picks debates, rationales or strategies.
    """
    settings: dict[str, Any] = {}
    if str(path) != "default":
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: toy world options must be a JSON object")
        settings.update(loaded)
    settings.update(options)
    unknown = set(settings) - set(ToyWorldConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"toy world: unknown option(s) {sorted(unknown)}")
    for name in ("error_rates", "teacher_error_rates"):
        if name in settings:
            settings[name] = tuple(float(p) for p in settings[name])
    return generate_toy_graphs(ToyWorldConfig(**settings))
