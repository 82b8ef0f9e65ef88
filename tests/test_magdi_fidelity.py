"""MAGDi point 1 of issue 13: a node is trained on its reasoning ending in its answer.

Expected texts are derived by hand from the definitions in dinobby/MAGDi: ``utils.py``
``generate_ordered_list`` (each node's text is ``[INST] ### Question: {q}[/INST] ### Answer:
{exp} So the answer is {ans}``), ``utils.py`` ``remove_agreement`` (split on ". ", drop the
pieces that start with "I disagree" or "I agree", join with ". ") and ``data_utils.py``
``prepare_test_data`` (the same prompt at test time).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import tiny_student

from magdi_lightning.data import GraphDataModule
from magdi_lightning.data.responses import ResponseText, remove_agreement, states_answer
from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.graph import Node
from magdi_lightning.sources import import_graphs

MAGDI_TEMPLATE = "[INST] ### Question: {question}[/INST] ### Answer:"
CONF = Path(__file__).resolve().parents[1] / "conf"


def node(reasoning: str, answer: str | None = "8") -> Node:
    return Node(id="n", agent="a", round=0, reasoning=reasoning, answer=answer)


@pytest.fixture(scope="module")
def student():
    return tiny_student()


# ------------------------------------------------------------------ remove_agreement
@pytest.mark.parametrize(("text", "expected"), [
    # pieces: "I agree with Bob" | "The sum is 8" | "I disagree that it is 9" | "So 8."
    ("I agree with Bob. The sum is 8. I disagree that it is 9. So 8.", "The sum is 8. So 8."),
    # a dropped last piece takes the full stop of the one before it with it
    ("3 + 5 = 8. I agree with agent 2.", "3 + 5 = 8"),
    ("I agreed earlier. 8 it is.", "8 it is."),        # "I agreed" starts with "I agree"
    ("i agree. 8 it is.", "i agree. 8 it is."),        # case-sensitive
    ("So 8.\nI agree with you.", "So 8.\nI agree with you."),   # only ". " separates
    ("Both agents: I agree. 8.", "Both agents: I agree. 8."),   # only at a piece's start
    ("I agree.", ""),                                   # one piece, dropped
    ("I agree. ", ""),                                  # pieces "I agree", "": "" is kept
])
def test_remove_agreement_follows_magdis_definition(text: str, expected: str) -> None:
    assert remove_agreement(text) == expected


# ------------------------------------------------------------------ the answer sentence
def test_the_answer_sentence_follows_reasoning_that_does_not_state_it() -> None:
    text = ResponseText()
    assert text(node("3 + 5 = 8."), "numeric") == "3 + 5 = 8. So the answer is 8"
    assert text(node("The answer is 8."), "numeric") == "The answer is 8."
    assert text(node("#### 8"), "numeric") == "#### 8"
    assert text(node("So 3 + 5 = \\boxed{8}."), "numeric") == "So 3 + 5 = \\boxed{8}."
    assert text(node("3 + 5 = 8\nA: 8"), "numeric") == "3 + 5 = 8\nA: 8"     # GSM8K's label
    # A stated answer other than the node's does not count: the last statement decides.
    assert text(node("The answer is 7. No wait, 3 + 5 = 8."), "numeric") == (
        "The answer is 7. No wait, 3 + 5 = 8. So the answer is 8")
    assert text(node("The answer is (C).", "C"), "multiple_choice") == "The answer is (C)."
    assert text(node("Option C fits.", "C"), "multiple_choice") == (
        "Option C fits. So the answer is C")
    assert text(node("Nothing known.", None), "numeric") == "Nothing known."
    assert text(node("", "8"), "numeric") == "So the answer is 8"


def test_magdis_code_appends_the_sentence_to_every_node_after_removing_agreement() -> None:
    reference = ResponseText(always_state_answer=True, remove_agreement=True)
    reasoning = "I agree with agent 1. 3 + 5 = 8. The answer is 8."
    # MAGDi: exp = remove_agreement(reasoning) = "3 + 5 = 8. The answer is 8.";
    # text = f"{exp} So the answer is {ans}".
    assert reference(node(reasoning), "numeric") == (
        "3 + 5 = 8. The answer is 8. So the answer is 8")
    assert ResponseText(answer_sentence=None)(node("3 + 5 = 8."), "numeric") == "3 + 5 = 8."
    assert ResponseText(answer_sentence="Answer: {answer}.")(node("3 + 5"), "numeric") == (
        "3 + 5 Answer: 8.")


@pytest.mark.parametrize("sentence", ["So the answer is", "So the answer is {0}",
                                      "The {answer} of {question}", "So {answer"])
def test_an_answer_sentence_without_its_answer_field_is_an_error(sentence: str) -> None:
    with pytest.raises(ValueError, match="answer_sentence"):
        ResponseText(answer_sentence=sentence)


def test_states_answer_reads_explicit_statements_only() -> None:
    assert not states_answer("3 + 5 = 8.", "8", "numeric")      # a bare last number
    assert states_answer("The final answer is: 8 apples.", "8", "numeric")
    assert states_answer("Answer: yes, since birds fly.", "yes", "yes_no")
    assert not states_answer("Answer: no.", "yes", "yes_no")


# ------------------------------------------------------------------ the reference prompt
def test_reference_prompt_and_response_give_magdis_exact_text() -> None:
    student = tiny_student()
    formatter = PromptFormatter(student.tokenizer, MAGDI_TEMPLATE, use_chat_template=False)
    question, exp, ans = "How many legs have 2 cats?", "2 cats have 2 * 4 = 8 legs.", "8"
    response = ResponseText(always_state_answer=True, remove_agreement=True)(
        node(exp, ans), "numeric")
    # The formatter puts a space between the prompt and the response.
    assert f"{formatter.prompt_text(question)} {response}" == (
        f"[INST] ### Question: {question}[/INST] ### Answer: {exp} So the answer is {ans}")


def test_the_prompt_config_composes_into_the_data_config() -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+data/prompt=magdi_reference"])
        default = compose(config_name="train")
    assert cfg.data.template == MAGDI_TEMPLATE and cfg.data.use_chat_template is False
    assert cfg.data._target_ == default.data._target_
    assert (default.data.answer_sentence, default.data.always_state_answer,
            default.data.remove_agreement) == ("So the answer is {answer}", False, False)


# ------------------------------------------------------------------ through the data module
def _magdi_records(tmp_path: Path, count: int = 1) -> Path:
    """MAGDi-format records (dinobby/MAGDi utils.py reads {agent}_output_{i} with
    ``reasoning`` and ``answer``) whose reasoning never states the answer."""
    records = []
    for q in range(count):
        record = {"question": f"What is 3 + 5 (case {q})?", "gold_answer": "8"}
        for agent, answer in (("claude", "8"), ("gpt4", "9"), ("bard", "8")):
            record[f"{agent}_output_0"] = {"reasoning": "Three plus five.", "answer": answer}
            record[f"{agent}_output_1"] = {
                "reasoning": f"I agree with claude. Adding gives {answer}.", "answer": answer}
        records.append(record)
    path = tmp_path / "magdi.json"
    path.write_text(json.dumps(records))
    return path


def test_the_magdi_importer_keeps_each_nodes_answer(tmp_path: Path) -> None:
    (graph,) = import_graphs("magdi", _magdi_records(tmp_path))
    assert [(n.agent, n.round, n.answer) for n in graph.nodes] == [
        ("claude", 0, "8"), ("claude", 1, "8"), ("gpt4", 0, "9"), ("gpt4", 1, "9"),
        ("bard", 0, "8"), ("bard", 1, "8")]
    assert graph.nodes[0].reasoning == "Three plus five."   # the answer is not merged in


def _targets(module: GraphDataModule, tokenizer) -> list[str]:
    module.setup()
    tokenized = module._tokenized_nodes()
    return [tokenizer.decode(ids[length:], skip_special_tokens=True).strip()
            for ids, length in zip(tokenized["input_ids"], tokenized["prompt_length"])]


def test_graph_batches_learn_the_answer_sentence(tmp_path: Path, student) -> None:
    common = {"importer": {"format": "magdi", "path": str(_magdi_records(tmp_path, 2))},
              "tokenizer": student.tokenizer, "val_fraction": 0.0, "test_fraction": 0.5,
              "cache_dir": str(tmp_path / "cache"), "max_length": 256, "use_chat_template": False}
    default = _targets(GraphDataModule(**common), student.tokenizer)
    agree = "I agree with claude. Adding gives"
    assert default[:6] == [
        "Three plus five. So the answer is 8", f"{agree} 8. So the answer is 8",
        "Three plus five. So the answer is 9", f"{agree} 9. So the answer is 9",
        "Three plus five. So the answer is 8", f"{agree} 8. So the answer is 8"]
    reference = _targets(GraphDataModule(**common, remove_agreement=True,
                                         always_state_answer=True), student.tokenizer)
    assert reference[1] == "Adding gives 8. So the answer is 8"
    bare = _targets(GraphDataModule(**common, answer_sentence=None), student.tokenizer)
    assert bare[0] == "Three plus five."


def test_each_response_option_has_its_own_tokenization_cache(tmp_path: Path, student) -> None:
    path = _magdi_records(tmp_path, 2)
    cache = tmp_path / "cache"
    texts = []
    for options in ({}, {"answer_sentence": None}, {"remove_agreement": True},
                    {"always_state_answer": True}, {}):
        module = GraphDataModule(importer={"format": "magdi", "path": str(path)},
                                 tokenizer=student.tokenizer, val_fraction=0.0,
                                 test_fraction=0.5, cache_dir=str(cache), **options)
        texts.append(_targets(module, student.tokenizer))
    assert len(list((cache / "tokenized").iterdir())) == 4   # the last run reused the first's
    # (no reasoning here states its answer, so always_state_answer changes no text)
    assert len({tuple(t) for t in texts}) == 3 and texts[0] == texts[3] == texts[4]
