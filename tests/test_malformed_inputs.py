"""Property tests: malformed input must fail cleanly, never with a stray exception.

Every reader of outside data (the graph validator and each importer) is fed random JSON,
random bytes and random mutations of valid records. Each call must either succeed or
raise :class:`RecordError`; anything else (``KeyError``, ``TypeError``, ...)
is a bug. 10,500 malformed inputs in all (5,500 for the validator, 5,000 for the four
importers) plus 400 valid ones; about 20 s on two cores.

Most examples are built by a ``random.Random`` seeded by Hypothesis: generating a record
draw by draw costs ~10 ms of Hypothesis bookkeeping per example, which would blow the
time budget. Seeds do not shrink, so the input is attached with ``note()`` and a failure
shows the exact value (and the seed reproduces it).

The inputs that once escaped as other exceptions are pinned as regression tests at the
end of this file.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from magdi_lightning.errors import RecordError
from magdi_lightning.graph import ReasoningGraph, read_graphs
from magdi_lightning.sources.du import import_du
from magdi_lightning.sources.gsm8k_solutions import import_gsm8k_solutions
from magdi_lightning.sources.gsm8k_strategies import import_gsm8k_strategies
from magdi_lightning.sources.magdi import import_magdi
from magdi_lightning.sources.tinyllm import import_tinyllm

# No example database: failures print a reproducible example instead of writing a
# .hypothesis/ folder into the repository. No deadline: file I/O timing varies on CI.
# too_slow is suppressed because every example writes and reads files by design.
FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
randoms = st.integers(0, 2**64 - 1).map(random.Random)


def fuzz(max_examples: int) -> settings:
    return settings(FUZZ, max_examples=max_examples)


# ------------------------------------------------------------------ random values
# Answer-shaped fragments and edge-case characters, so the extractors get exercised too.
_FRAGMENTS = ["\\boxed{42}", "#### 7", "(B)", "The answer is (c).", "yes", "A: 5", "", " ",
              "\n", "<think>", "</think>", "answer:", "1,000", "-0.5", "\\boxed{", "\u2028"]
_ALPHABET = "aZ9 \n\t.,:(){}[]\\$#*-İſé中\u2028\x00"
_KEYS = ["question", "gold_answer", "role", "content", "reasoning", "answer", "id", "choices",
         "is_correct", "solution", "ground_truth", "claude_output_0", "x_output_01", "nodes",
         "edges", "agent", "round", "correctness", "task", "", "system", "user", "assistant"]
_SCALARS = [None, True, False, 0, -1, 10**30, 1.5, float("nan"), float("inf"), "user",
            "assistant", "system", "correct", "numeric", "multiple_choice"]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_FRAGMENTS)
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 8)))


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, biased towards the field names and values importers look for."""
    kind = rng.random()
    if depth >= 3 or kind < 0.5:
        return rng.choice(_SCALARS) if rng.random() < 0.5 else _text(rng)
    if kind < 0.75:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(_KEYS) if rng.random() < 0.7 else _text(rng): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every location inside a JSON value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*prefix, i))


def _mutate(rng: random.Random, value: Any) -> Any:
    """One to three random edits: replace, delete, insert, wrap or stringify a location."""
    value = copy.deepcopy(value)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(list(_paths(value)))
        edit = rng.choice(["replace", "delete", "insert", "wrap", "stringify"])
        if not path:
            value = _random_json(rng) if edit == "replace" else [value]
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        key, target = path[-1], parent[path[-1]]
        if edit == "delete":
            del parent[key]
        elif edit == "insert" and isinstance(target, dict):
            target[rng.choice(_KEYS)] = _random_json(rng)
        elif edit == "insert" and isinstance(target, list):
            target.insert(rng.randint(0, len(target)), _random_json(rng))
        elif edit == "wrap":
            parent[key] = [target]
        elif edit == "stringify":
            parent[key] = json.dumps(target)
        else:
            parent[key] = _random_json(rng)
    return value


def _check(call: Callable[[], Any]) -> None:
    """Run a reader to the end: success or a RecordError, nothing else."""
    try:
        call()
    except RecordError as err:
        assert str(err)  # a message, and nothing but a RecordError escaped


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Overwritten by every example, which is safe: examples run one at a time."""
    return tmp_path_factory.mktemp("fuzz")


def _dump(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


# ------------------------------------------------------------------ graph.py validator
def _graph_record(rng: random.Random) -> dict[str, Any]:
    """A valid graph record: a few nodes over a few rounds, forward edges."""
    nodes = [{"id": f"n{i}", "agent": f"a{i % 2}", "round": rng.randint(0, 3),
              "reasoning": _text(rng), "answer": rng.choice([None, _text(rng)]),
              "correctness": rng.choice(["correct", "incorrect", "unknown"])}
             for i in range(rng.randint(1, 5))]
    edges = [[a["id"], b["id"]] for a in nodes for b in nodes
             if a["round"] < b["round"] and rng.random() < 0.5]
    return {"id": f"g{rng.randint(0, 3)}", "question": "What is 6 * 7?", "gold_answer": "42",
            "task": rng.choice(["numeric", "text"]), "nodes": nodes, "edges": edges,
            "source": {"k": _random_json(rng)}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), children, max_size=4),
    max_leaves=8)


@fuzz(1500)
@given(record=json_values)
def test_from_dict_random_json(record: Any) -> None:
    _check(lambda: ReasoningGraph.from_dict(record))


@fuzz(2000)
@given(rng=randoms)
def test_from_dict_mutated_records(rng: random.Random) -> None:
    record = _graph_record(rng)
    assert ReasoningGraph.from_dict(record).nodes  # the unmutated record is valid
    mutated = _mutate(rng, record)
    note(repr(mutated))
    _check(lambda: ReasoningGraph.from_dict(mutated))


@fuzz(1000)
@given(content=st.binary(max_size=200)
       | st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"id"', b":", b",", b"\n", b"\xff",
                                   b"null", b"1" * 5000, b"\\ud800", b'"'])).map(b"".join))
def test_read_graphs_random_bytes(workdir: Path, content: bytes) -> None:
    path = workdir / "bytes.jsonl"
    path.write_bytes(content)
    _check(lambda: list(read_graphs(path)))


@fuzz(1000)
@given(rng=randoms)
def test_read_graphs_mutated_lines(workdir: Path, rng: random.Random) -> None:
    lines = [_graph_record(rng) for _ in range(rng.randint(1, 3))]
    lines = [_mutate(rng, line) if rng.random() < 0.5 else line for line in lines]
    note(repr(lines))
    path = workdir / "lines.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    _check(lambda: list(read_graphs(path)))


# ------------------------------------------------------------------ importers
def _valid_du(rng: random.Random) -> dict[str, Any]:
    """A Du et al. log: agents with 0-3 rounds (the first at least 1), optional system."""
    log = {}
    for q in range(rng.randint(1, 2)):
        contexts = []
        for agent in range(rng.randint(1, 3)):
            chat = [{"role": "system", "content": "Be brief."}] if rng.random() < 0.3 else []
            for _ in range(rng.randint(1 if agent == 0 else 0, 3)):
                chat += [{"role": "user", "content": _text(rng)},
                         {"role": "assistant", "content": _text(rng)}]
            contexts.append(chat)
        log[f"Q{q} {_text(rng)}?"] = [contexts, rng.choice(["42", "B", "yes", "x\n#### 7", "", 3])]
    return log


def _valid_magdi(rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for i in range(rng.randint(1, 2)):
        record: dict[str, Any] = {"id": f"r{i}", "question": f"Q{_text(rng)}?",
                                  "gold_answer": rng.choice(["7", "B", True, 3.5])}
        for agent in rng.sample(["claude", "gpt4", "a_b"], rng.randint(1, 3)):
            for round_ in rng.sample(range(3), rng.randint(1, 3)):
                record[f"{agent}_output_{round_}"] = {
                    "reasoning": _text(rng), "answer": rng.choice([None, 7, False, _text(rng)])}
        records.append(record)
    return records


def _valid_solutions(rng: random.Random) -> list[dict[str, Any]]:
    return [{"question": f"Q{i} {_text(rng)}", "ground_truth": f"{_text(rng)}\nA: 5",
             **{teacher: {"is_correct": rng.choice([None, True, False]), "solution": _text(rng)}
                for teacher in rng.sample(["6b_finetuning", "175b_x", "t"], rng.randint(1, 3))}}
            for i in range(rng.randint(1, 2))]


def _line(rng: random.Random) -> str:
    return " ".join(_text(rng).splitlines())


def _valid_strategies(rng: random.Random) -> dict[str, Any]:
    """The four files of the GSM8K strategies importer, as one value to mutate."""
    questions = [f"Q{i} {_text(rng)}" for i in range(rng.randint(1, 2))]
    return {
        "gold": [{"question": q, "answer": f"{_text(rng)}\n#### 5"} for q in questions],
        "cot": [{"question": q, "chain-of-thought": f"A: {_text(rng)}", "pred": 5.0}
                for q in questions],
        "l2m": [{"question": q, "answer": f"How many? ** {_line(rng)} <<2+3=5>>5\n#### 5"}
                for q in questions],
        "pot": [{"prompt": _text(rng)},
                *({"question": q, "answer": 5.0, "executed": rng.choice([5.0, None, 4.9]),
                   "generated": [f"ans = {_text(rng)!r}"]} for q in questions)],
    }


def _valid_tinyllm(rng: random.Random) -> dict[str, Any]:
    """A TinyLLM split and its rationale file, as one value to mutate."""
    records, rationales = [], []
    for i in range(rng.randint(1, 2)):
        choices = [f"c{k}{_text(rng)}" for k in range(rng.randint(2, 5))]
        question = f"Q{_text(rng)}?"
        records.append({"id": f"q{i}", "question": question, "choices": choices,
                        "answer": rng.choice(choices)})
        options = "\n".join(f"({'abcde'[k]}) {c}" for k, c in enumerate(choices))
        rationales.append(f"{_text(rng)}\n\nQ: {question}\nAnswer Choices:\n{options} "
                          f"llama rationale: {_text(rng)}")
    return {"split": records, "rationales": rationales}


def _run_du(workdir: Path, value: Any) -> Callable[[], Any]:
    return lambda: list(import_du(_dump(workdir / "du_x_m_1agents_1rounds.json", value)))


def _run_magdi(workdir: Path, value: Any) -> Callable[[], Any]:
    return lambda: list(import_magdi(_dump(workdir / "magdi.json", value)))


def _run_solutions(workdir: Path, value: Any) -> Callable[[], Any]:
    path = workdir / "solutions.jsonl"
    lines = value if isinstance(value, list) else [value]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return lambda: list(import_gsm8k_solutions(path))


def _run_strategies(workdir: Path, value: Any) -> Callable[[], Any]:
    parts = value if isinstance(value, dict) else {}
    for name in ("gold", "cot", "l2m", "pot"):
        _dump(workdir / "strategies" / f"{name}.json", parts.get(name, value))
    return lambda: list(import_gsm8k_strategies(
        workdir / "strategies", gold="gold.json", cot="cot.json", l2m="l2m.json",
        pot="pot.json"))


def _run_tinyllm(workdir: Path, value: Any) -> Callable[[], Any]:
    directory = workdir / "ds"
    parts = value if isinstance(value, dict) else {}
    _dump(directory / "ds_train.json", parts.get("split", value))
    _dump(directory / "llm" / "train_CoT_0.json", parts.get("rationales", value))
    return lambda: list(import_tinyllm(directory))


# name: (write the input files and return the import call, valid input, main input file)
IMPORTERS: dict[str, tuple[Any, Callable[[random.Random], Any], str]] = {
    "du": (_run_du, _valid_du, "du_x_m_1agents_1rounds.json"),
    "magdi": (_run_magdi, _valid_magdi, "magdi.json"),
    "gsm8k-solutions": (_run_solutions, _valid_solutions, "solutions.jsonl"),
    "gsm8k-strategies": (_run_strategies, _valid_strategies, "strategies/gold.json"),
    "tinyllm": (_run_tinyllm, _valid_tinyllm, "ds/ds_train.json"),
}


@pytest.mark.parametrize("name", sorted(IMPORTERS))
def test_importers_accept_their_valid_records(workdir: Path, name: str) -> None:
    run, valid, _ = IMPORTERS[name]

    @fuzz(100)
    @given(rng=randoms)
    def check(rng: random.Random) -> None:
        value = valid(rng)
        note(repr(value))
        graphs = run(workdir, value)()
        assert graphs and all(graph.nodes for graph in graphs)

    check()


@pytest.mark.parametrize("name", sorted(IMPORTERS))
def test_importers_on_mutated_records(workdir: Path, name: str) -> None:
    run, valid, _ = IMPORTERS[name]

    @fuzz(800)
    @given(rng=randoms)
    def check(rng: random.Random) -> None:
        value = _mutate(rng, valid(rng))
        note(repr(value))
        _check(run(workdir, value))

    check()


@pytest.mark.parametrize("name", sorted(IMPORTERS))
def test_importers_on_random_json(workdir: Path, name: str) -> None:
    run, _, _ = IMPORTERS[name]

    @fuzz(300)
    @given(rng=randoms)
    def check(rng: random.Random) -> None:
        value = _random_json(rng)
        note(repr(value))
        _check(run(workdir, value))

    check()


@pytest.mark.parametrize("name", sorted(IMPORTERS))
def test_importers_on_random_bytes(workdir: Path, name: str) -> None:
    run, _, main_file = IMPORTERS[name]

    @fuzz(150)
    @given(content=st.binary(max_size=120))
    def check(content: bytes) -> None:
        call = run(workdir, None)  # lays out every file, then the main one is overwritten
        (workdir / main_file).write_bytes(content)
        _check(call)

    check()


# ------------------------------------------------------------------ regressions
# Inputs on which graph.py once raised something other than RecordError.
def _node_record(**fields: Any) -> dict[str, Any]:
    return {"id": "g", "question": "q", "gold_answer": "1", "task": "numeric",
            "nodes": [{"id": "a", "agent": "x", "round": 0, "reasoning": "", **fields}]}


def test_non_string_correctness_is_a_clean_error() -> None:
    with pytest.raises(RecordError):
        ReasoningGraph.from_dict(_node_record(correctness=[]))


def test_invalid_utf8_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\xff\n")
    with pytest.raises(RecordError):
        list(read_graphs(path))


@pytest.mark.parametrize("line", [b"[" * 100_000, b"1" * 5000],
                         ids=["deep-nesting", "long-integer"])
def test_json_beyond_parser_limits_is_a_clean_error(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(RecordError):
        list(read_graphs(path))


def test_lone_surrogates_are_rejected_before_they_reach_a_writer() -> None:
    with pytest.raises(RecordError, match=r"nodes\[0\]\.reasoning"):
        ReasoningGraph.from_dict(_node_record(reasoning="\ud800"))
