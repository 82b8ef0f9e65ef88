"""The toy world: synthetic arithmetic word problems and simulated multi-agent debates.

SYNTHETIC DATA. Everything here is generated from a seed inside the project; no text
comes from a real model or dataset. It exists so that training, importers and learning
tests run anywhere, with no download, in minutes on a CPU.

A problem is a start value followed by 2-4 add/subtract steps with small numbers
("Ann has 3 pens. She buys 4 more. She gives away 2. How many pens does Ann have
now?"). A chain-of-thought solution writes one equation per step and ends with
"The answer is N.".

A debate has A agents over R rounds. In round 0 each agent solves the problem alone
and errs with its own error rate. Errors are those people and models make: an
arithmetic slip (off by one or two), the wrong operation, or a dropped step; each
carries through the remaining steps, so a wrong chain is wrong for a reason. In a later
round every agent has seen all answers of the round before; an agent that disagrees
with the majority adopts a majority agent's solution with probability
``switch_to_majority`` (so a wrong majority can pull a correct agent into error), and
otherwise solves again, erring at half its rate.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from magdi_lightning.graph import Correctness, Edge, Node, ReasoningGraph

__all__ = [
    "ToyProblem",
    "ToyWorldConfig",
    "generate_problems",
    "generate_toy_graphs",
    "import_toy",
    "solve",
]

GENERATOR = "magdi_lightning.toy_world/v1"

_NAMES = [("Ann", "She"), ("Ben", "He"), ("Cara", "She"), ("Dan", "He"), ("Eve", "She"),
          ("Finn", "He"), ("Gia", "She"), ("Hugo", "He"), ("Ivy", "She"), ("Jon", "He")]
_ITEMS = ["apples", "pens", "coins", "books", "stamps", "cards", "shells", "marbles"]
_ADD = ["{pronoun} buys {n} more.", "{pronoun} gets {n} more.", "{pronoun} finds {n} more."]
_SUB = ["{pronoun} gives away {n}.", "{pronoun} loses {n}.", "{pronoun} sells {n}."]


@dataclass(frozen=True)
class ToyWorldConfig:
    """Knobs of the generator; the defaults are the embedded default dataset."""

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


@dataclass(frozen=True)
class ToyProblem:
    """A start value and signed steps; ``text`` is the word problem."""

    start: int
    steps: tuple[int, ...]
    text: str = field(compare=False)

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
        for step in steps:
            template = rng.choice(_ADD if step > 0 else _SUB)
            sentences.append(template.format(pronoun=pronoun, n=abs(step)))
        sentences.append(f"How many {item} does {name} have now?")
        text = " ".join(sentences)
        if len(steps) >= config.min_steps and text not in seen:
            seen.add(text)
            yield ToyProblem(start=start, steps=tuple(steps), text=text)


def solve(problem: ToyProblem, rng: random.Random | None = None,
          error_rate: float = 0.0) -> tuple[str, int]:
    """A chain-of-thought solution and its final answer, erring with ``error_rate``.

    An error happens at one step and the chain carries the wrong value on from there.
    """
    mistake_at = -1
    kind = ""
    if rng is not None and rng.random() < error_rate:
        mistake_at = rng.randrange(len(problem.steps))
        kind = rng.choice(["slip", "slip", "operation", "drop"])
    value = problem.start
    lines = []
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
        lines.append(f"{value} {op} {abs(step)} = {result}.")
        value = result
    if not lines:
        lines.append(f"{value} + 0 = {value}.")
    lines.append(f"The answer is {value}.")
    return " ".join(lines), value


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
                correctness=(Correctness.CORRECT if answer == problem.answer
                             else Correctness.INCORRECT),
            ))
            if round_ > 0:
                edges.extend(Edge(f"a{seen}r{round_ - 1}", node_id)
                             for seen in range(config.num_agents))
        previous = current
    return ReasoningGraph(
        id=graph_id, question=problem.text, gold_answer=str(problem.answer), task="numeric",
        nodes=nodes, edges=edges,
        source={"format": "toy", "synthetic": True, "generator": GENERATOR,
                "seed": config.seed},
    )


def generate_toy_graphs(config: ToyWorldConfig | None = None) -> Iterator[ReasoningGraph]:
    """Yield ``config.num_questions`` simulated debates, reproducibly from ``config.seed``."""
    config = config or ToyWorldConfig()
    rng = random.Random(config.seed)
    digest = hashlib.sha1(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:8]
    for i, problem in enumerate(generate_problems(config, rng)):
        yield _debate(problem, config, rng, graph_id=f"toy-{digest}-{i:06d}")


def import_toy(path: str | Path = "default", **options: Any) -> Iterator[ReasoningGraph]:
    """The ``toy`` importer: ``path`` is ``"default"`` or a JSON file of generator options.

    Keyword options override the file's; lists become tuples (``error_rates``).
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
    if "error_rates" in settings:
        settings["error_rates"] = tuple(float(p) for p in settings["error_rates"])
    return generate_toy_graphs(ToyWorldConfig(**settings))
