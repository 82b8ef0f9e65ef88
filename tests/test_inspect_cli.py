"""magdi-inspect shows the training data as the student sees it, decoded from real batches.

Each test composes magdi-inspect's config (``conf/inspect.yaml`` or ``inspect_siked.yaml``)
with a shipped data config or experiment and checks the records against the batch the
data module's loader gives (the same seed, so the same first batches): label counts,
prompt/target/token consistency, provenance. The last two tests are the issue's acceptance
checks that depend on other changes (MAGDi answer sentences, TinyLLM per-teacher prefixes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.common import build_datamodule
from magdi_lightning.cli.inspect_data import CONFIGS, _entry, inspect_examples, render
from magdi_lightning.graph import Correctness, Edge, Node, ReasoningGraph, write_graphs
from magdi_lightning.losses import IGNORE_INDEX
from magdi_lightning.strategies import STRATEGIES


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module's runs (imported graphs, tokenization)."""
    return tmp_path_factory.mktemp("inspect")


def _config(entry: str, overrides: list[str], log_dir: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=CONFIGS[entry],
                       overrides=[*overrides, f"paths.log_dir={log_dir}", "inspect.show=false"])


def _by_batch(cfg: DictConfig, records: list[dict[str, Any]]
              ) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Each train batch the records come from, built independently of magdi-inspect (graph
    and task configs of magdi-train; siked's iteration data is checked by its records), with
    its records."""
    from magdi_lightning.cli.inspect_data import student_tokenizer

    L.seed_everything(cfg.seed, workers=True)
    data = build_datamodule(cfg, *student_tokenizer(cfg.student))
    data.setup("fit")
    batches = iter(data.train_dataloader())
    return [(next(batches), [r for r in records if r["batch"] == b])
            for b in range(records[-1]["batch"] + 1)]


def _check_sequence(seq: dict[str, Any]) -> None:
    """A sequence record is self-consistent: the label count is the number of labelled
    tokens, the spans spell the sequence, the prompt is its first tokens."""
    tokens = seq["tokens"]
    assert seq["label_count"] == sum(t["label"] for t in tokens) > 0
    assert "".join(s["text"] for s in seq["spans"] if s["part"] == "prompt") == seq["prompt"]
    assert len(seq["tokens"]) > seq["prompt_length"] > 0
    labelled_text = "".join(s["text"] for s in seq["spans"] if s["label"])
    assert labelled_text.strip() == seq["target"].strip()
    assert not any(t["label"] for t in tokens[:1])  # the first token is never a target


def _check_graph_records(cfg: DictConfig, all_records: list[dict[str, Any]]) -> None:
    for batch, records in _by_batch(cfg, all_records):
        _check_graph_batch(batch, records)


def _check_graph_batch(batch: Any, records: list[dict[str, Any]]) -> None:
    assert [r["graph_id"] for r in records] == batch.graph_ids[:len(records)]
    offset = 0
    for record in records:
        nodes = record["nodes"]
        assert record["node_labels"] == batch.node_labels[offset:offset + len(nodes)].tolist()
        for i, j in record["pairs"]:
            assert record["node_labels"][i] == 1 and record["node_labels"][j] == 0
        expected_pairs = sum(1 for a in record["node_labels"] if a == 1) * sum(
            1 for a in record["node_labels"] if a == 0)
        assert len(record["pairs"]) == expected_pairs
        for node in nodes:
            _check_sequence(node)
            u = node["sequence"]
            assert u == int(batch.node_to_seq[offset + node["node"]])
            # label count = the batch's target entries of the node's sequence
            assert node["label_count"] == int((batch.target_seq == u).sum())
            targets = batch.target_ids[batch.target_seq == u].tolist()
            assert [t["id"] for t in node["tokens"] if t["label"]] == targets
            assert {"correct": 1, "incorrect": 0}.get(node["correctness"],
                                                      IGNORE_INDEX) == node["node_label"]
        offset += len(nodes)


def _check_task_records(cfg: DictConfig, all_records: list[dict[str, Any]]) -> None:
    for batch, records in _by_batch(cfg, all_records):
        _check_task_batch(batch, records)


def _check_task_batch(batch: Any, records: list[dict[str, Any]]) -> None:
    assert [r["row"] for r in records] == list(range(len(records)))
    for record in records:
        _check_sequence(record)
        r = record["row"]
        labels = batch.labels[r]
        counted = labels != IGNORE_INDEX if record["encoder_decoder"] else (
            labels[1:] != IGNORE_INDEX)
        assert record["label_count"] == int(counted.sum())
        assert record["task"] == batch.task_names[int(batch.task_index[r])]
        assert record["question"] is not None
        assert record["question"].split()[0] in record["prompt"]
        if record["task"].startswith("rationale/"):
            assert record["teacher"] == record["task"].removeprefix("rationale/")


def test_default_toy_debates(log_dir: Path) -> None:
    cfg = _config("train", ["inspect.n=3"], log_dir)
    records = inspect_examples(cfg)
    assert len(records) == 3 and all(r["kind"] == "graph" and r["packed"] for r in records)
    _check_graph_records(cfg, records)
    node = records[0]["nodes"][0]
    assert node["agent"] and node["round"] == 0 and node["prompt"].endswith("Answer:")
    assert not any(t["label"] for t in node["tokens"][:node["prompt_length"]])


def test_packed_and_unpacked_batches_show_the_same_examples(log_dir: Path) -> None:
    packed = inspect_examples(_config("train", ["inspect.n=2"], log_dir))
    plain = inspect_examples(_config("train", ["inspect.n=2", "data.packing=false"], log_dir))

    def essence(records: list[dict[str, Any]]) -> list[Any]:
        return [(r["graph_id"], r["pairs"], [(n["prompt"], n["target"], n["label_count"])
                                            for n in r["nodes"]]) for r in records]

    assert not plain[0]["packed"] and essence(packed) == essence(plain)


def test_unmasked_prompt_labels_prompt_tokens(log_dir: Path) -> None:
    cfg = _config("train", ["inspect.n=1", "data.mask_prompt=false", "data.packing=false"],
                  log_dir)
    records = inspect_examples(cfg)
    _check_graph_records(cfg, records)
    node = records[0]["nodes"][0]
    assert all(t["label"] for t in node["tokens"][1:])
    assert node["target"].startswith("Question:")


def test_reference_pair_rows(log_dir: Path) -> None:
    """method=magdi_reference: each record is one of the batch's (positive, negative) rows,
    its positive labelled whole (after the first token), as the reference labels it."""
    cfg = _config("train", ["inspect.n=3", "method=magdi_reference"], log_dir)
    records = inspect_examples(cfg)
    assert [r["kind"] for r in records] == ["pair_row"] * 3
    ((batch, _),) = _by_batch(cfg, records)
    for r, record in enumerate(records):
        _check_sequence(record)
        assert all(t["label"] for t in record["tokens"][1:])
        positive = batch.positive_ids[r][batch.positive_mask[r] == 1].tolist()
        assert [t["id"] for t in record["tokens"]] == positive
        assert record["positive_node"]["correctness"] == Correctness.CORRECT.value
        negative = record["negative_node"]
        assert negative is None or negative["correctness"] == Correctness.INCORRECT.value
        assert negative is None or negative["graph_id"] == record["positive_node"]["graph_id"]
        assert len(record["nc_node_labels"]) >= 2


def test_tinyllm_toy_rationales(log_dir: Path) -> None:
    cfg = _config("train", ["method=tinyllm", "data=toy_rationales", "inspect.n=24"], log_dir)
    records = inspect_examples(cfg)
    assert len(records) == 24 and {r["kind"] for r in records} == {"task"}
    _check_task_records(cfg, records)
    tasks = {r["task"] for r in records}
    assert "answer" in tasks and any(t.startswith("rationale/") for t in tasks)
    for record in records:
        if record["task"] == "answer":
            assert record["gold_answer"] in record["target"]
        assert record["prefix"].strip() in record["prompt"]


def test_siked_iteration_one_has_strategy_tags(log_dir: Path) -> None:
    records = inspect_examples(_config("siked", ["inspect.n=12"], log_dir))
    assert len(records) == 12 and {r["task"] for r in records} == {"solve"}
    for record in records:
        _check_sequence(record)
        assert record["entry"] == "siked" and record["strategy"] in STRATEGIES
        assert record["target"].strip().startswith(f"[{record['strategy']}]")
        assert record["question"].split()[0] in record["prompt"]
    assert len({r["strategy"] for r in records}) > 1


def test_siked_has_no_val_split(log_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"inspect\.split=train"):
        inspect_examples(_config("siked", ["inspect.split=val"], log_dir))


def test_val_split(log_dir: Path) -> None:
    records = inspect_examples(_config("train", ["inspect.split=val", "inspect.n=1"], log_dir))
    assert records[0]["split"] == "val" and records[0]["nodes"]


def test_magdi_experiment_debug_tiny(log_dir: Path) -> None:
    cfg = _config("train", ["experiment=magdi/gsm8k", "debug=tiny", "inspect.n=2"], log_dir)
    records = inspect_examples(cfg)
    _check_graph_records(cfg, records)


def test_tinyllm_experiment_debug_tiny(log_dir: Path, shared_data: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGDI_SHARED_DATA", str(shared_data))
    cfg = _config("train", ["experiment=tinyllm/arc", "debug=tiny", "inspect.n=12"], log_dir)
    records = inspect_examples(cfg)
    assert all(r["encoder_decoder"] for r in records)  # the FLAN-T5 family's stand-in
    _check_task_records(cfg, records)


def test_siked_experiment_debug_tiny(log_dir: Path) -> None:
    records = inspect_examples(_config("siked", ["experiment=siked/qwen2_0.5b", "debug=tiny",
                                                 "inspect.n=6"], log_dir))
    for record in records:
        _check_sequence(record)
        assert record["strategy"] in STRATEGIES
        assert record["prompt"].rstrip().endswith("### Response:")  # the reference's prompt


@pytest.mark.parametrize("overrides", [[], ["method=tinyllm", "data=toy_rationales"]],
                         ids=["graphs", "tasks"])
def test_records_are_what_the_training_loop_receives(overrides: list[str],
                                                     log_dir: Path) -> None:
    """One real training step (magdi-train's student, method and data): the batch its
    loop receives is the batch magdi-inspect decoded."""
    from hydra.utils import instantiate

    from magdi_lightning.cli.common import student_recipe

    cfg = _config("train", [*overrides, "inspect.n=3"], log_dir)
    records = inspect_examples(cfg)
    L.seed_everything(cfg.seed, workers=True)
    student = instantiate(cfg.student)
    data = build_datamodule(cfg, student.tokenizer, student.is_encoder_decoder)
    module = instantiate(cfg.method, student=student, student_config=student_recipe(cfg),
                         _convert_="all")
    received: list[Any] = []

    class Receive(L.Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                                 batch_idx: int) -> None:
            received.append(batch)

    L.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False,
              enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0,
              num_sanity_val_steps=0, callbacks=[Receive()]).fit(module, datamodule=data)
    (batch,) = received
    if records[0]["kind"] == "graph":
        assert batch.graph_ids[:3] == [r["graph_id"] for r in records]
        _check_graph_batch(batch, records)
    else:
        for r, record in enumerate(records):
            ids = batch.input_ids[r][batch.attention_mask[r] == 1].tolist()
            assert ids == [t["id"] for t in record["tokens"]]
        _check_task_batch(batch, records)


def test_entry_is_chosen_by_flag_or_experiment() -> None:
    assert _entry(["inspect.n=2"]) == ("train", ["inspect.n=2"])
    assert _entry(["entry=siked", "x=1"]) == ("siked", ["x=1"])
    assert _entry(["experiment=siked/qwen2_0.5b"])[0] == "siked"
    assert _entry(["experiment=magdi/gsm8k"])[0] == "train"
    with pytest.raises(SystemExit):
        _entry(["entry=eval"])


def test_terminal_view_marks_labelled_text(log_dir: Path) -> None:
    from rich.console import Console

    records = inspect_examples(_config("siked", ["inspect.n=1"], log_dir))
    console = Console(record=True, width=100, color_system=None)
    render(records, console)
    text = console.export_text()
    assert "task solve" in text and re.search(r"⟦\s*\[(cot|l2m|pot)\]", text)


def test_command_writes_jsonl_and_no_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "examples.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "magdi_lightning.cli.inspect_data", "entry=siked",
         "inspect.n=2", f"inspect.output={out}"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["strategy"] in STRATEGIES for r in records)
    assert "labelled tokens" in result.stdout and "⟦" in result.stdout
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["cache"]


# ------------------------------------------------------------------------------------------
# Acceptance checks of issue 13 that depend on other changes (MAGDi point 1, TinyLLM point
# 5); they fail until those land.
def _debate_file(path: Path) -> Path:
    """Six ReConcile-style debates whose reasoning does not state its answer and opens with
    an agreement sentence, the answer in its own field."""
    graphs = []
    for q in range(6):
        nodes = [Node(id=f"a{a}r{r}", agent=f"agent_{a}", round=r,
                      reasoning=("I agree with agent_1. " if r else "")
                      + f"Adding {q} and {a + r} needs one step.",
                      answer=str(q + a + r),
                      correctness=(Correctness.CORRECT if a + r == 0 else
                                   Correctness.INCORRECT))
                 for r in range(2) for a in range(2)]
        edges = [Edge(source=f"a{a}r0", target=f"a{b}r1") for a in range(2) for b in range(2)]
        graphs.append(ReasoningGraph(id=f"q{q}", question=f"What is {q} plus zero?",
                                     gold_answer=str(q), task="numeric", nodes=nodes,
                                     edges=edges))
    write_graphs(path, graphs)
    return path


def test_magdi_targets_state_the_answer_without_agreement(log_dir: Path,
                                                          tmp_path: Path) -> None:
    graphs = _debate_file(tmp_path / "debates.jsonl")
    records = inspect_examples(_config("train", [
        "experiment=magdi/gsm8k", "debug=tiny", f"data.graphs={graphs}", "data.importer=null",
        "data.val_fraction=0.2", "data.test_fraction=0.2", "inspect.n=4"], log_dir))
    for node in (n for record in records for n in record["nodes"]):
        assert re.search(rf"So the answer is {re.escape(node['answer'])}\b", node["target"])
        assert "I agree" not in node["target"]


def test_tinyllm_teachers_have_distinct_prefixes(log_dir: Path, shared_data: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGDI_SHARED_DATA", str(shared_data))
    records = inspect_examples(_config("train", ["experiment=tinyllm/arc", "debug=tiny",
                                                 "inspect.n=64"], log_dir))
    prefixes: dict[str, set[str]] = {}
    for record in records:
        if record["teacher"]:
            prefixes.setdefault(record["teacher"], set()).add(record["prefix"])
            assert record["prefix"].strip() in record["prompt"]
    assert len(prefixes) == 2 and all(len(p) == 1 for p in prefixes.values())
    first, second = prefixes.values()
    assert first != second
