"""Importers and ``magdi-import`` on the real shared data and on hand-written edge cases.

The label counts asserted for the shared files were computed with the importers and
cross-checked with separate, simpler scripts (a plain last-``\\boxed{}`` parser for the
GSM8K debates, Du et al.'s last-``(X)`` rule for MMLU, whose single disagreement is a
``<think>`` trace cut off before any answer and so UNKNOWN here, and a line-based
re-implementation of the stated-answer rules for the TinyLLM LLaMA-2 rationales).
Node and edge counts and the GSM8K and FLAN-T5 labels are re-derived from the raw files
inside the tests below.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from magdi_lightning.cli.import_graphs import main
from magdi_lightning.errors import RecordError
from magdi_lightning.graph import Correctness, ReasoningGraph, read_graphs
from magdi_lightning.sources import IMPORTERS, import_graphs
from magdi_lightning.sources.du import import_du
from magdi_lightning.sources.gsm8k_solutions import import_gsm8k_solutions
from magdi_lightning.sources.magdi import import_magdi
from magdi_lightning.sources.tinyllm import import_tinyllm, stated_choice
from magdi_lightning.strategies import is_least_to_most

C, W, U = Correctness.CORRECT, Correctness.INCORRECT, Correctness.UNKNOWN  # W: wrong


def _tally(graphs: Iterable[ReasoningGraph]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for graph in graphs:
        counts["graphs"] += 1
        counts["nodes"] += len(graph.nodes)
        counts["edges"] += len(graph.edges)
        counts.update(node.correctness.value for node in graph.nodes)
    return {key: counts[key] for key in
            ("graphs", "nodes", "edges", "correct", "incorrect", "unknown")}


def _counts(graphs: int, nodes: int, edges: int, correct: int, incorrect: int,
            unknown: int) -> dict[str, int]:
    return {"graphs": graphs, "nodes": nodes, "edges": edges, "correct": correct,
            "incorrect": incorrect, "unknown": unknown}


def _write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


# ================================================================== shared data
DEBATES = {
    "du_gsm8k_qwen3-14b_3agents_3rounds.json": _counts(20, 180, 360, 180, 0, 0),
    "du_gsm8k_mistral-7b_5agents_3rounds.json": _counts(20, 300, 1000, 203, 97, 0),
    "du_mmlu_qwen3-0.6b_3agents_3rounds.json": _counts(20, 180, 360, 82, 92, 6),
}
ARC_TRAIN = _counts(1117, 2234, 0, 1275, 17, 942)
GSM8K_SOLUTIONS = _counts(1319, 5276, 0, 2001, 3275, 0)
# ChatGPT CoT 771/542/6, socratic l2m 1319 correct, Codex PoT 942/353/23 (one has no program)
GSM8K_STRATEGIES = _counts(1319, 3956, 0, 771 + 1319 + 942, 542 + 353, 6 + 23)


@pytest.mark.parametrize("name", sorted(DEBATES))
def test_du_shared_debates(shared_data: Path, name: str) -> None:
    path = shared_data / "debates" / name
    graphs = list(import_du(path))
    assert _tally(graphs) == DEBATES[name]

    # Nodes and edges re-derived from the raw log: one node per assistant message; each
    # round-(r+1) answer saw every round-r answer.
    raw = json.loads(path.read_text(encoding="utf-8"))
    turns = [[sum(m["role"] == "assistant" for m in chat) for chat in contexts]
             for contexts, _ in raw.values()]
    assert DEBATES[name]["nodes"] == sum(map(sum, turns))
    assert DEBATES[name]["edges"] == sum(
        sum(n > r for n in per_agent) * sum(n > r + 1 for n in per_agent)
        for per_agent in turns for r in range(max(per_agent)))

    dataset, model = re.fullmatch(r"du_([^_]+)_(.+)_\d+agents_\d+rounds\.json", name).groups()
    assert len({g.id for g in graphs}) == len(graphs)
    for index, (graph, question) in enumerate(zip(graphs, raw, strict=True)):
        assert graph.question == question
        assert graph.source["file"] == name and graph.source["index"] == index
        assert graph.source["dataset"] == dataset
        assert {node.model for node in graph.nodes} == {model}
        rounds = {node.id: node.round for node in graph.nodes}
        assert all(rounds[e.target] == rounds[e.source] + 1 for e in graph.edges)
    expected_task = "multiple_choice" if dataset == "mmlu" else "numeric"
    assert {g.task for g in graphs} == {expected_task}


def test_du_gsm8k_gold_is_the_final_number(shared_data: Path) -> None:
    graph = next(import_du(shared_data / "debates" / "du_gsm8k_qwen3-14b_3agents_3rounds.json"))
    assert graph.gold_answer == "52"
    assert graph.source["raw_gold_answer"].endswith("#### 52")


def test_tinyllm_arc_train(shared_data: Path) -> None:
    directory = shared_data / "tinyllm" / "arc"
    graphs = list(import_tinyllm(directory))
    assert _tally(graphs) == ARC_TRAIN
    by_agent = Counter((node.agent, node.correctness) for g in graphs for node in g.nodes)
    assert by_agent == {("flan_t5", C): 1117, ("llama2", C): 158, ("llama2", W): 17,
                        ("llama2", U): 942}

    # FLAN-T5's labels re-derived from the raw files: "Thus, the answer is (x)" vs gold.
    records = json.loads((directory / "arc_train.json").read_text(encoding="utf-8"))
    rationales = [text for k in range(3) for text in json.loads(
        (directory / "llm" / f"train_CoT_{k}.json").read_text(encoding="utf-8"))]
    flan_correct = sum(
        re.search(r"Thus, the answer is \(([a-d])\)", text)[1]
        == "abcd"[record["choices"].index(record["answer"])]
        for record, text in zip(records, rationales, strict=True))
    assert flan_correct == by_agent[("flan_t5", C)]

    first = graphs[0]
    assert first.id == "arc-train-Mercury_SC_415702"
    assert first.task == "multiple_choice" and first.gold_answer == "A"
    assert first.question.endswith("Answer Choices:\n(a) dry palms\n(b) wet palms\n"
                                   "(c) palms covered with oil\n(d) palms covered with lotion")
    assert [(n.agent, n.model, n.answer) for n in first.nodes] == [
        ("flan_t5", "FLAN-T5", "A"), ("llama2", "LLaMA-2", None)]
    assert first.nodes[0].reasoning.endswith("Thus, the answer is (a) dry palms")
    assert first.nodes[1].reasoning.startswith("Let's think step by step.")
    assert first.source["rationale_file"] == "train_CoT_0.json"
    assert graphs[1000].source["rationale_file"] == "train_CoT_2.json"


@pytest.mark.parametrize("dataset", ["arc", "obqa", "riddle"])
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_tinyllm_every_split_lines_up(shared_data: Path, dataset: str, split: str) -> None:
    """Every split's rationales match its records one to one (JSON-list and JSONL splits)."""
    graphs = list(import_tinyllm(shared_data / "tinyllm" / dataset, split=split))
    assert graphs and all(g.nodes[0].is_correct for g in graphs)  # FLAN-T5 is teacher-forced


def test_gsm8k_example_model_solutions(shared_data: Path) -> None:
    path = shared_data / "gsm8k" / "example_model_solutions.jsonl"
    graphs = list(import_gsm8k_solutions(path))
    assert _tally(graphs) == GSM8K_SOLUTIONS

    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    labels = Counter(value["is_correct"] for record in raw for value in record.values()
                     if isinstance(value, dict))
    assert (labels[True], labels[False]) == (GSM8K_SOLUTIONS["correct"],
                                             GSM8K_SOLUTIONS["incorrect"])

    first = graphs[0]
    assert first.gold_answer == "18" and first.task == "numeric" and not first.edges
    assert [(n.agent, n.model, n.answer, n.correctness) for n in first.nodes] == [
        ("6b_finetuning", "GPT-3 6B", "26", W), ("6b_verification", "GPT-3 6B", "224", W),
        ("175b_finetuning", "GPT-3 175B", "4", W), ("175b_verification", "GPT-3 175B", "18", C)]


def test_gsm8k_published_strategies(shared_data: Path) -> None:
    graphs = list(import_graphs("gsm8k-strategies", shared_data))
    assert _tally(graphs) == GSM8K_STRATEGIES
    by_strategy = Counter((node.strategy, node.correctness) for g in graphs for node in g.nodes)
    assert (by_strategy["cot", C], by_strategy["l2m", C], by_strategy["pot", C]) == (
        771, 1319, 942)  # the files' own pred == answer and |executed - answer| < 1e-4 counts
    kylar = graphs[5]
    assert kylar.gold_answer == "64" and [n.strategy for n in kylar.nodes] == ["cot", "l2m", "pot"]
    cot, l2m, pot = kylar.nodes
    assert cot.model == "ChatGPT" and cot.reasoning.startswith("One glass costs $5.")
    assert l2m.reasoning.splitlines()[0] == (
        "Sub-question 1: How much does one glass cost? "
        "The discount price of one glass is 60/100 * 5 = $3.")
    assert l2m.reasoning.endswith("The answer is 64.") and "<<" not in l2m.reasoning
    assert pot.reasoning.startswith("num_glasses = 16") and pot.answer == "64"
    # a repeated sub-question with an empty answer (record 1042) is dropped, not an error
    assert graphs[1042].nodes[1].reasoning.count("Sub-question") == 5  # of 6 lines
    assert all(is_least_to_most(g.nodes[1].reasoning) for g in graphs)
    only_programs = list(import_graphs("gsm8k-strategies", shared_data, cot=None, l2m=None))
    assert len(only_programs) == 1318 and {n.strategy for g in only_programs
                                            for n in g.nodes} == {"pot"}


@pytest.mark.parametrize(("fmt", "relative", "options", "expected"), [
    *[("du", f"debates/{name}", [], counts) for name, counts in DEBATES.items()],
    ("tinyllm", "tinyllm/arc", ["--option", "split=train"], ARC_TRAIN),
    ("gsm8k-solutions", "gsm8k/example_model_solutions.jsonl", [], GSM8K_SOLUTIONS),
])
def test_cli_on_shared_data(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            fmt: str, relative: str, options: list[str],
                            expected: dict[str, int]) -> None:
    out = tmp_path / "graphs.jsonl"
    assert main(["--format", fmt, str(shared_data / relative), "-o", str(out), *options]) == 0
    assert _tally(read_graphs(out)) == expected
    e = expected
    assert capsys.readouterr().out == (
        f"magdi-import: wrote {e['graphs']} graphs ({e['nodes']} nodes, {e['edges']} edges; "
        f"{e['correct']} correct, {e['incorrect']} incorrect, {e['unknown']} unknown) to {out}\n")


# ================================================================== Du et al. edge cases
def _chat(*replies: str, system: bool = False, question: str = "Q?") -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a careful solver."}] if system else []
    for i, reply in enumerate(replies):
        messages += [{"role": "user", "content": question if i == 0 else "Others said..."},
                     {"role": "assistant", "content": reply}]
    return messages


def _du(tmp_path: Path, log: Any, name: str = "debate.json",
        **options: Any) -> list[ReasoningGraph]:
    return list(import_du(_write_json(tmp_path / name, log), **options))


def test_du_irregular_debate(tmp_path: Path) -> None:
    log = {"What is 6 * 7?": [[
        _chat("6 * 7 = \\boxed{42}", "Still \\boxed{42}", "\\boxed{42}", system=True),
        _chat("I think \\boxed{41}"),  # stops after round 0
        _chat("\\boxed{40}", "", "Hmm, I am not sure."),  # empty turn, then no number at all
    ], "42"]}
    [graph] = _du(tmp_path, log)
    assert graph.task == "numeric" and graph.gold_answer == "42"
    assert [(n.id, n.answer, n.correctness) for n in graph.nodes] == [
        ("agent_0.round_0", "42", C), ("agent_0.round_1", "42", C), ("agent_0.round_2", "42", C),
        ("agent_1.round_0", "41", W),
        ("agent_2.round_0", "40", W), ("agent_2.round_1", None, U), ("agent_2.round_2", None, U),
    ]
    assert graph.nodes[5].reasoning == ""
    edges = {(e.source, e.target) for e in graph.edges}
    round0 = {"agent_0.round_0", "agent_1.round_0", "agent_2.round_0"}
    round1 = {"agent_0.round_1", "agent_2.round_1"}
    round2 = {"agent_0.round_2", "agent_2.round_2"}
    assert edges == {(s, t) for s in round0 for t in round1} | {
        (s, t) for s in round1 for t in round2}
    assert graph.source == {"format": "du", "file": "debate.json", "index": 0}
    assert {n.model for n in graph.nodes} == {None}


def test_du_one_agent_one_round(tmp_path: Path) -> None:
    [graph] = _du(tmp_path, {"Pick one: A) x B) y": [[_chat("(B) y")], "B"]},
                  name="du_mmlu_tiny-model_1agents_1rounds.json")
    assert (graph.task, graph.gold_answer, graph.edges) == ("multiple_choice", "B", [])
    [node] = graph.nodes
    assert (node.agent, node.round, node.answer, node.correctness) == ("agent_0", 0, "B", C)
    assert node.model == "tiny-model"
    assert graph.id.startswith("du_mmlu_tiny-model_1agents_1rounds-")
    assert graph.source["dataset"] == "mmlu"


def test_du_options_and_trailing_prompt(tmp_path: Path) -> None:
    chat = [*_chat("The answer is yes."), {"role": "user", "content": "Update your answer?"}]
    [graph] = _du(tmp_path, {"Is water wet?": [[chat], "yes"]}, task="yes_no", model="m")
    assert graph.task == "yes_no" and len(graph.nodes) == 1  # the unanswered prompt adds nothing
    assert (graph.nodes[0].answer, graph.nodes[0].model) == ("yes", "m")


def test_du_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    log = {"Q one?": [[_chat("\\boxed{1}")], "1"], "Q two?": [[_chat("\\boxed{2}")], "2"]}
    first = [g.id for g in _du(tmp_path, log)]
    assert first == [g.id for g in _du(tmp_path, log)] and len(set(first)) == 2


@pytest.mark.parametrize(("log", "field", "reason"), [
    ([1, 2], None, "must be a JSON object"),
    ({"Q?": [[_chat("x")], "1", "extra"]}, None, "two-item list"),
    ({"Q?": [[_chat("x")], {"gold": 1}]}, "gold_answer", "string, number, boolean or null"),
    ({"Q?": ["not a list of chats", "1"]}, "agent_contexts", "one chat history per agent"),
    ({"Q?": [["chat"], "1"]}, "agent_contexts[0]", "list of chat messages"),
    ({"Q?": [[["msg"]], "1"]}, "agent_contexts[0][0]", "object with 'role'"),
    ({"Q?": [[[{"role": "user"}]], "1"]}, "agent_contexts[0][0].content", "missing"),
    ({"Q?": [[[{"role": "user", "content": 7}]], "1"]}, "agent_contexts[0][0].content",
     "must be a string, a list of content parts"),
    ({"Q?": [[[{"role": "bot", "content": "hi"}]], "1"]}, "agent_contexts[0][0].role",
     "expected role 'user'"),
    ({"Q?": [[[*_chat("a")[:1], {"role": "user", "content": "again"}]], "1"]},
     "agent_contexts[0][1].role", "expected role 'assistant'"),
    ({"Q?": [[[{"role": "user", "content": "q"}, {"role": "system", "content": "late"}]], "1"]},
     "agent_contexts[0][1].role", "expected role 'assistant'"),
    ({"Q?": [[], "1"]}, "nodes", "at least one node"),
    ({" ": [[_chat("1")], "1"]}, "question", "non-empty"),
])
def test_du_malformed_logs_are_located(tmp_path: Path, log: Any, field: str | None,
                                       reason: str) -> None:
    path = _write_json(tmp_path / "bad.json", log)
    with pytest.raises(RecordError) as caught:
        list(import_du(path))
    err = caught.value
    assert (err.file, err.field) == (str(path), field)
    assert reason in str(err)
    if isinstance(log, dict):
        assert "(in question 0 " in str(err)


def test_du_rejects_broken_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"Q?": [[], "1"], "Q?": [[], "2"]}', encoding="utf-8")
    with pytest.raises(RecordError, match="duplicate key"):
        list(import_du(path))
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(RecordError, match="not UTF-8"):
        list(import_du(path))
    path.write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(RecordError, match="invalid JSON"):
        list(import_du(path))


# ================================================================== MAGDi records
def _output(reasoning: str, answer: Any) -> dict[str, Any]:
    return {"reasoning": reasoning, "answer": answer, "confidence_level": 0.9}


def _magdi_record(**extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"question": "Tom has 3 apples and buys 4. How many?",
                              "gold_answer": "7"}
    for agent, answers in {"claude": ["7", "7", "7", "7"], "gpt4": ["8", "7", "7", "7"],
                           "bard": ["6", "6", "7", "7"]}.items():
        for round_, answer in enumerate(answers):
            record[f"{agent}_output_{round_}"] = _output(f"3 + 4 is {answer}.", answer)
    return {**record, **extra}


def test_magdi_paper_shape(tmp_path: Path) -> None:
    [graph] = list(import_magdi(_write_json(tmp_path / "sqa.json", [_magdi_record()])))
    assert (graph.task, graph.gold_answer, graph.num_agents, graph.num_rounds) == (
        "numeric", "7", 3, 4)
    assert [n.id for n in graph.nodes][:5] == [
        "claude.round_0", "claude.round_1", "claude.round_2", "claude.round_3", "gpt4.round_0"]
    assert Counter(n.correctness for n in graph.nodes) == {C: 9, W: 3}
    assert len(graph.edges) == 3 * 3 * 3  # rounds 0->1, 1->2, 2->3, all agents to all agents
    rounds = {n.id: n.round for n in graph.nodes}
    assert all(rounds[e.target] == rounds[e.source] + 1 for e in graph.edges)
    assert graph.source == {"format": "magdi", "file": "sqa.json", "index": 0}


def test_magdi_any_agents_missing_rounds_jsonl_and_ids(tmp_path: Path) -> None:
    records = [
        {"id": "q-1", "question": "Is the sky blue?", "gold_answer": True,
         "alice_output_0": _output("Yes it is.", "yes"),
         "alice_output_2": _output("Yes, still.", None),  # no answer: read from reasoning
         "bob_smith_output_1": _output("No.", False)},
        {"id": 7, "question": "Which? (A) x (B) y", "gold_answer": "B",
         "x_output_0": {"reasoning": "I pick (b)."}, "vote": "ignored"},
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    first, second = import_magdi(path)
    assert (first.id, first.task, first.gold_answer) == ("q-1", "yes_no", "yes")
    assert [(n.id, n.answer, n.correctness) for n in first.nodes] == [
        ("alice.round_0", "yes", C), ("alice.round_2", "yes", C), ("bob_smith.round_1", "no", W)]
    assert {(e.source, e.target) for e in first.edges} == {
        ("alice.round_0", "bob_smith.round_1"), ("bob_smith.round_1", "alice.round_2")}
    assert (second.id, second.task, second.nodes[0].answer, second.edges) == ("7",
                                                                              "multiple_choice",
                                                                              "B", [])


def test_magdi_task_option(tmp_path: Path) -> None:
    record = {"question": "2 + 2?", "gold_answer": "4", "a_output_0": _output("it is 4", "4")}
    [graph] = import_magdi(_write_json(tmp_path / "r.json", [record]), task="math")
    assert graph.task == "math" and graph.nodes[0].is_correct


@pytest.mark.parametrize(("records", "field", "reason"), [
    ({"question": "q"}, None, "invalid JSON"),  # an object, not a list: read as JSONL
    (["not an object"], None, "must be an object"),
    ([{"gold_answer": "1", "a_output_0": _output("r", "1")}], "question", "must be a string"),
    ([{"question": "q", "a_output_0": _output("r", "1")}], "gold_answer", "string, number"),
    ([{"question": "q", "gold_answer": "1"}], None, "no agent outputs"),
    ([{"question": "q", "gold_answer": "1", "a_output_0": "text"}], "a_output_0", "must be an"),
    ([{"question": "q", "gold_answer": "1", "a_output_0": {"reasoning": 3}}],
     "a_output_0.reasoning", "string or null"),
    ([{"question": "q", "gold_answer": "1", "a_output_0": {"answer": [1]}}],
     "a_output_0.answer", "string, number, boolean or null"),
    ([{"question": "q", "gold_answer": "1", "a_output_1": _output("r", "1"),
       "a_output_01": _output("r", "1")}], "a_output_01", "repeats agent 'a' round 1"),
    ([{"question": "q", "gold_answer": "1", "id": {"x": 1}, "a_output_0": _output("r", "1")}],
     "id", "non-empty string or an integer"),
    ([_magdi_record(), _magdi_record()], "id", "duplicate graph id"),
])
def test_magdi_malformed_records_are_located(tmp_path: Path, records: Any, field: str | None,
                                             reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records, indent=1 if isinstance(records, dict) else None),
                    encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        list(import_magdi(path))
    assert (caught.value.file, caught.value.field) == (str(path), field)
    assert reason in str(caught.value)


# ================================================================== TinyLLM layout
def _rationale(question: str, choices: list[str], flan: str, llama: str) -> str:
    options = "\n".join(f"({'abcde'[i]}) {c}" for i, c in enumerate(choices))
    return f"{flan}\n\nQ: {question}\nAnswer Choices:\n{options} llama rationale: {llama}"


def _tinyllm_dir(tmp_path: Path, records: list[dict[str, Any]], rationales: list[Any],
                 name: str = "toyset") -> Path:
    directory = tmp_path / name
    _write_json(directory / f"{name}_train.json", records)
    _write_json(directory / "llm" / "train_CoT_0.json", rationales)
    return directory


_RECORDS = [{"id": "q1", "question": "Which is a metal?", "choices": ["wood", "iron", "glass"],
             "answer": "iron"},
            {"id": "q2", "question": "Which is a gas?", "choices": ["air", "rock"],
             "answer": "air"}]


def test_tinyllm_small_dataset(tmp_path: Path) -> None:
    rationales = [
        _rationale("Which is a metal?", ["wood", "iron", "glass"], "Iron is a metal. Thus, the "
                   "answer is (b) iron", "Let's think step by step.\nSo, option (c) is correct."),
        _rationale("Which  is a gas?", ["air", "rock"], "Thus, the answer is (a) air",
                   "Air.\nThe answer is:\nrock\nQuestion: What is (a)? The answer is (a)"),
    ]
    graphs = list(import_tinyllm(_tinyllm_dir(tmp_path, _RECORDS, rationales)))
    assert [g.id for g in graphs] == ["toyset-train-q1", "toyset-train-q2"]
    assert [(g.gold_answer, [(n.answer, n.correctness) for n in g.nodes]) for g in graphs] == [
        ("B", [("B", C), ("C", W)]), ("A", [("A", C), ("B", W)])]


@pytest.mark.parametrize(("text", "expected"), [
    ("Thus, the answer is (a) dry palms", "A"),
    ("So, the correct answer is:\nc", "C"),
    ("So, the answer is option b.", "B"),
    ("(a) is wrong.\n(b) is right.\nSo, option (b) is correct.", "B"),
    ("Option (a) is incorrect. Option (b) is incorrect.", None),  # discussing, not choosing
    ("The answer is iron.", "B"),
    ("the answer is a good question", None),
    ("Answer: (e)", None),  # no option (e) among three choices
    ("So (b).\nQ: Next question? The answer is (c)", None),  # invented follow-up ignored
    ("The answer is (İ)", None),
])
def test_stated_choice(text: str, expected: str | None) -> None:
    assert stated_choice(text, ["wood", "iron", "glass."]) == expected


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda r, x: (r, x[:1]), "rationale files hold 1 rationales but toyset_train.json holds 2"),
    (lambda r, x: (r, x[::-1]), "out of step with the split"),
    (lambda r, x: (r, ["no markers", x[1]]), "expected '<FLAN-T5 rationale>"),
    (lambda r, x: (r, [x[0], 5]), "must be a string"),
    (lambda r, x: (r, {"0": x}), "must be a JSON list of strings"),
    (lambda r, x: ([{**r[0], "answer": "gold"}, r[1]], x), "is not one of the choices"),
    (lambda r, x: ([{**r[0], "choices": ["only"]}, r[1]], x), "list of 2 to 10 strings"),
    (lambda r, x: ([{**r[0], "id": 1.5}, r[1]], x), "must be a non-empty string"),  # PIQA: 0
    (lambda r, x: ([r[0], {**r[1], "id": "q1"}], x), "duplicate graph id"),
])
def test_tinyllm_mismatches_are_clear_errors(tmp_path: Path, mutate: Any, reason: str) -> None:
    rationales = [_rationale(r["question"], r["choices"], "Thus, the answer is (a)", "Hmm.")
                  for r in _RECORDS]
    records, rationales = mutate(_RECORDS, rationales)
    with pytest.raises(RecordError, match=re.escape(reason)):
        list(import_tinyllm(_tinyllm_dir(tmp_path, records, rationales)))


def test_tinyllm_missing_files(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"no split file toyset_valid\.json"):
        list(import_tinyllm(_tinyllm_dir(tmp_path, _RECORDS, []), split="valid"))
    directory = _tinyllm_dir(tmp_path, _RECORDS, [])
    (directory / "llm" / "train_CoT_0.json").rename(directory / "llm" / "train_CoT_1.json")
    with pytest.raises(RecordError, match="without gaps; found"):
        list(import_tinyllm(directory))


# ================================================================== GSM8K solutions
def _solutions_record(**teachers: Any) -> dict[str, Any]:
    return {"question": "2 + 3?", "ground_truth": "2 + 3 = <<2+3=5>>5\n#### 5", **teachers}


def test_gsm8k_solutions_labels_and_gold(tmp_path: Path) -> None:
    path = tmp_path / "solutions.jsonl"
    record = _solutions_record(
        big={"is_correct": True, "solution": "2 + 3 = 5\nA: 5"},
        odd={"is_correct": None, "solution": "It is five."},
        wrong={"is_correct": False, "solution": "A: 6"})
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    [graph] = import_gsm8k_solutions(path)
    assert graph.gold_answer == "5"
    assert [(n.agent, n.answer, n.correctness, n.model) for n in graph.nodes] == [
        ("big", "5", C, None), ("odd", None, U, None), ("wrong", "6", W, None)]


@pytest.mark.parametrize(("line", "field", "reason"), [
    ("[1, 2]", None, "must be an object"),
    (json.dumps({"question": "q"}), "ground_truth", "must be a string"),
    (json.dumps(_solutions_record()), None, "no teacher solutions"),
    (json.dumps(_solutions_record(t="text")), "t", "must be an object"),
    (json.dumps(_solutions_record(t={"is_correct": True})), "t.solution", "must be a string"),
    (json.dumps(_solutions_record(t={"is_correct": "yes", "solution": "5"})), "t.is_correct",
     "true, false or null"),
    ("{broken", None, "invalid JSON"),
])
def test_gsm8k_solutions_malformed_lines_are_located(tmp_path: Path, line: str,
                                                     field: str | None, reason: str) -> None:
    path = tmp_path / "solutions.jsonl"
    good = json.dumps(_solutions_record(t={"is_correct": True, "solution": "5"}))
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        list(import_gsm8k_solutions(path))
    assert (caught.value.file, caught.value.line, caught.value.field) == (str(path), 3, field)
    assert reason in str(caught.value)


# ================================================================== registry and CLI
def test_registry_knows_every_format() -> None:
    assert set(IMPORTERS) == {"du", "magdi", "tinyllm", "gsm8k-solutions", "gsm8k-strategies",
                              "toy"}


def test_unknown_format_and_option_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown format 'csv'; known formats: du, magdi"):
        import_graphs("csv", "x")
    with pytest.raises(ValueError, match="format 'tinyllm' has no option 'splt'; its options: "
                                         "split"):
        import_graphs("tinyllm", "x", splt="valid")
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        import_graphs("du", "x", task="poetry")


def test_toy_format_is_reachable() -> None:
    pytest.importorskip("magdi_lightning.sources.toy", reason="sources/toy.py not written yet")
    assert isinstance(next(iter(import_graphs("toy", "default"))), ReasoningGraph)


def test_cli_task_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _write_json(tmp_path / "log.json", {"Q?": [[_chat("\\boxed{3}")], "3"]})
    out = tmp_path / "out.jsonl"
    assert main(["--format", "du", str(source), "-o", str(out), "--task", "math",
                 "--option", "model=my-model"]) == 0
    [graph] = read_graphs(out)
    assert (graph.task, graph.nodes[0].model) == ("math", "my-model")
    assert "1 graphs (1 nodes, 0 edges; 1 correct, 0 incorrect, 0 unknown)" in (
        capsys.readouterr().out)


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "du", "{missing}", "-o", "{out}"], "No such file or directory"),
    (["--format", "du", "{bad}", "-o", "{out}"], "expected role 'user'"),
    (["--format", "du", "{bad}", "-o", "{out}", "--option", "colour=red"],
     "format 'du' has no option 'colour'"),
    (["--format", "du", "{bad}", "-o", "{out}", "--option", "model"], "expects KEY=VALUE"),
    (["--format", "csv", "{bad}", "-o", "{out}"], "invalid choice: 'csv'"),
    (["--format", "du", "{bad}"], "required: -o/--output"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            args: list[str], message: str) -> None:
    bad = _write_json(tmp_path / "bad.json", {"Q?": [[[{"role": "bot", "content": ""}]], "1"]})
    out = tmp_path / "out.jsonl"
    out.write_text("previous contents\n", encoding="utf-8")
    paths = {"missing": tmp_path / "missing.json", "bad": bad, "out": out}
    assert main([arg.format(**paths) for arg in args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err
    assert err.splitlines()[-1].startswith("magdi-import: error: ")
    assert out.read_text(encoding="utf-8") == "previous contents\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "out.jsonl"]


def test_cli_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--format" in capsys.readouterr().out
