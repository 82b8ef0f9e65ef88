"""Du et al. debate logs as forks of the reference code write them.

Each test builds a small log in the shape of one public file (named in its docstring; the
texts here are made up) and checks the exact graph the importer makes of it. The last test
measures real logs: ``MAGDI_DU_LOGS=/tmp/du_logs python3 -m pytest tests/test_du_variants.py
-s`` imports every ``*.json`` there and prints questions and nodes per file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from magdi_lightning.errors import RecordError
from magdi_lightning.graph import Correctness
from magdi_lightning.sources.du import import_du

C, W, U = Correctness.CORRECT, Correctness.INCORRECT, Correctness.UNKNOWN
LOGS_ENV = "MAGDI_DU_LOGS"


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _assistant(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, **extra}


def _import(tmp_path: Path, text: str, name: str = "log.json", **options: Any) -> list[Any]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return list(import_du(path, **options))


def _shape(graph: Any) -> tuple[int, int, int]:
    return len(graph.nodes), len(graph.edges), graph.num_rounds


def test_reference_shape_pretty_printed_with_a_double_check_prompt(tmp_path: Path) -> None:
    """ianganz512/Diverse_Minds gsm/gsm_1_2_[0.7].json: the reference's shape, indented,
    one agent whose second round is the reference's "double check" prompt."""
    log = {"Q1?": [[[_user("Solve Q1"), _assistant("\\boxed{52}"), _user("Double check."),
                     _assistant("Still \\boxed{52}")]], "So 52.\n#### 52"]}
    [graph] = _import(tmp_path, json.dumps(log, indent=4))
    assert _shape(graph) == (2, 1, 2) and graph.gold_answer == "52"
    assert [n.correctness for n in graph.nodes] == [C, C]


def test_message_object_as_content_after_a_system_message(tmp_path: Path) -> None:
    """nilgeoutim/CS546_MajorityErrorDebate gsm/gsm_3_3.json: a system message first, and
    each assistant content is the API's whole message ``{"role", "content"}``."""
    def chat(answers: list[str]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": "Be helpful."}]
        for answer in answers:
            messages += [_user("Solve it"), _assistant(_assistant(f"So \\boxed{{{answer}}}"))]
        return messages
    log = {"Q?": [[chat(["16", "16", "16"]), chat(["15", "16", "16"]),
                   chat(["16", "16", "17"])], "#### 16"]}
    [graph] = _import(tmp_path, json.dumps(log))
    assert _shape(graph) == (9, 18, 3)   # 3 agents x 3 rounds; 3 x 3 edges per transition
    assert graph.nodes[0].reasoning == "So \\boxed{16}"
    assert [n.answer for n in graph.nodes] == ["16"] * 3 + ["15", "16", "16", "16", "16", "17"]
    assert sum(n.correctness == W for n in graph.nodes) == 2


def test_json_lines_of_assistant_only_chats(tmp_path: Path) -> None:
    """sorendunn/llm_multiagent_debate mmlu_4_fast.json: one ``{question: [[chat], gold]}``
    object per line, the chat holding only assistant messages (no prompts between them)."""
    lines = [{f"Pick {letter}: A) a, B) b, C) c, D) d": [[[
        _assistant("(A)"), _assistant("(B)"), _assistant("I pick (C)"), _assistant("(D)"),
        _assistant(f"Overall the answer is ({letter})")]], letter]} for letter in "DB"]
    graphs = _import(tmp_path, "\n".join(json.dumps(line) for line in lines) + "\n")
    assert [_shape(g) for g in graphs] == [(5, 4, 5), (5, 4, 5)]
    assert [g.task for g in graphs] == ["multiple_choice"] * 2
    assert [n.correctness for n in graphs[0].nodes] == [W, W, W, C, C]
    assert graphs[1].nodes[-1].answer == "B"


def test_biography_logs_without_gold(tmp_path: Path) -> None:
    """composable-models/llm_multiagent_debate biography/gen_conversation.py writes
    ``{person: agent_contexts}``: no gold answer, so every node is UNKNOWN."""
    def chat() -> list[dict[str, Any]]:
        return [_user("Give a biography"), _assistant("- born 1900"),
                _user("Here are other biographies"), _assistant("- born 1900\n- won a prize")]
    [graph] = _import(tmp_path, json.dumps({"Ada Lovelace": [chat(), chat(), chat()]}))
    assert _shape(graph) == (6, 9, 2)
    assert (graph.gold_answer, graph.task) == ("", "text")
    assert {n.correctness for n in graph.nodes} == {U}


def test_content_parts_null_content_extra_keys_and_null_gold(tmp_path: Path) -> None:
    """The newer chat APIs' content parts, an empty (``null``) turn and extra message keys
    (``name``, ``refusal``), as forks on those APIs store them; a ``null`` gold answer."""
    parts = [{"type": "text", "text": "6 * 7 = "}, {"type": "image_url", "image_url": {}},
             {"type": "text", "text": "\\boxed{42}"}]
    first = [_user("What is 6 * 7?"), _assistant(parts, name="solver"),
             _user([{"type": "text", "text": "Others said 41"}]), _assistant(None, refusal=None)]
    second = [_user("What is 6 * 7?"), _assistant(["\\boxed{41}"]),
              _user("Others said 42"), _assistant("\\boxed{42}")]
    log = {"What is 6 * 7?": [[first, second], "42"], "Unknown?": [[second], None]}
    with_gold, without = _import(tmp_path, json.dumps(log))
    assert _shape(with_gold) == (4, 4, 2) and _shape(without) == (2, 1, 2)
    assert [(n.reasoning, n.answer, n.correctness) for n in with_gold.nodes] == [
        ("6 * 7 = \\boxed{42}", "42", C), ("", None, U), ("\\boxed{41}", "41", W),
        ("\\boxed{42}", "42", C)]
    assert without.gold_answer == "" and {n.correctness for n in without.nodes} == {U}


@pytest.mark.parametrize(("text", "field", "reason"), [
    ('{"Q?": [[[{"role": "user", "content": "q"}]], "1"]}\n{"Q?": [[], "2"]}\n', None,
     "appears twice (first on line 1)"),
    ('{"Q?": [[[{"role": "user", "content": [{"text": 3}]}]], "1"]}', "agent_contexts[0][0]"
     ".content[0]", "a content part must be"),
    ('{"Q?": [[[{"role": "user", "content": {"parts": []}}]], "1"]}',
     "agent_contexts[0][0].content", "a message object or null"),
    ('{"Q?": [[[{"role": "tool", "content": "x"}]], "1"]}', "agent_contexts[0][0].role",
     "expected role 'user' or 'assistant'"),
    ('1\n2\n', None, "must be a JSON object"),
])
def test_variant_errors_are_located(tmp_path: Path, text: str, field: str | None,
                                    reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        _import(tmp_path, text)
    assert caught.value.field == field and reason in str(caught.value)


def _log_files() -> list[Path]:
    folder = os.environ.get(LOGS_ENV)
    return sorted(Path(folder).glob("*.json")) if folder else []


@pytest.mark.skipif(not os.environ.get(LOGS_ENV),
                    reason=f"set {LOGS_ENV} to a folder of Du-format debate logs (*.json)")
@pytest.mark.parametrize("path", _log_files(), ids=lambda path: path.name)
def test_public_logs_import(path: Path) -> None:
    graphs = list(import_du(path))
    nodes = sum(len(graph.nodes) for graph in graphs)
    print(f"\n{path.name}: {len(graphs)} questions, {nodes} nodes, "
          f"{sum(len(graph.edges) for graph in graphs)} edges")
    assert graphs and all(graph.nodes for graph in graphs)
