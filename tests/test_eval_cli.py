"""magdi-eval on a locally saved student (full weights and LoRA adapters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from factories import TINY_ARCHITECTURE, tiny_student

from magdi_lightning.models.student import load_student


def test_lora_adapter_directory_loads_over_its_base(tmp_path: Path) -> None:
    torch.manual_seed(0)
    base = tiny_student()
    base.save_pretrained(tmp_path / "base")
    tuned = load_student(name_or_path=str(tmp_path / "base"),
                         lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    for name, param in tuned.model.named_parameters():
        if "lora_B" in name:
            param.data.fill_(0.01)  # make the adapters change the output
    tuned.save_pretrained(tmp_path / "adapters")
    reloaded = load_student(name_or_path=str(tmp_path / "adapters"))
    ids = torch.tensor([[1, 5, 6, 7]])
    mask = torch.ones_like(ids)
    expected = tuned.hidden_states(ids, mask)
    assert torch.allclose(reloaded.hidden_states(ids, mask), expected, atol=1e-5)
    assert not torch.allclose(base.hidden_states(ids, mask), expected, atol=1e-3)


def test_magdi_eval_writes_metrics_and_predictions(tmp_path: Path, shared_data: Path) -> None:
    load_student(architecture=TINY_ARCHITECTURE).save_pretrained(tmp_path / "student")
    env = {**os.environ, "MAGDI_SHARED_DATA": str(shared_data)}
    result = subprocess.run(
        [sys.executable, "-m", "magdi_lightning.cli.evaluate", f"model={tmp_path / 'student'}",
         "benchmark=arc_challenge", "limit=4", "generation.max_new_tokens=6",
         "self_consistency.k=2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "arc_challenge: accuracy" in result.stdout
    (metrics_file,) = (tmp_path / "outputs").glob("eval_*/metrics.json")
    metrics = json.loads(metrics_file.read_text())["benchmarks"]["arc_challenge"]
    assert metrics["total"] == 4 and 0 <= metrics["ci95_low"] <= metrics["ci95_high"] <= 1
    assert metrics["self_consistency"]["k"] == 2
    predictions = [json.loads(line) for line in
                   (metrics_file.parent / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 4
    assert all(len(p["samples"]) == 2 and p["gold"] in "ABCDE" for p in predictions)
    assert {p["benchmark"] for p in predictions} == {"arc_challenge"}


def test_magdi_eval_reports_token_efficiency_against_teacher_graphs(
        tmp_path: Path, shared_data: Path) -> None:
    from magdi_lightning.graph import Node, ReasoningGraph, write_graphs
    from magdi_lightning.sources.question_sets import load_benchmark

    examples = load_benchmark("svamp", data_dir=shared_data, limit=3)
    write_graphs(tmp_path / "teachers.jsonl", [
        ReasoningGraph(id=f"t{i}", question=e.question, gold_answer=e.gold, task="numeric",
                       nodes=[Node(id="a", agent="gpt", round=0, reasoning="...", num_tokens=120)])
        for i, e in enumerate(examples)])
    load_student(architecture=TINY_ARCHITECTURE).save_pretrained(tmp_path / "student")
    result = subprocess.run(
        [sys.executable, "-m", "magdi_lightning.cli.evaluate", f"model={tmp_path / 'student'}",
         "benchmark=svamp", "limit=3", "generation.max_new_tokens=6",
         f"teacher_graphs={tmp_path / 'teachers.jsonl'}"],
        cwd=tmp_path, env={**os.environ, "MAGDI_SHARED_DATA": str(shared_data),
                           "WANDB_SILENT": "true"},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "outputs").glob("eval_*")
    report = json.loads((run / "metrics.json").read_text())["token_efficiency"]
    assert report["matched_questions"] == 3 and report["teacher_tokens_per_question"] == 120
    assert report["teacher_to_student_ratio"] == 120 / report["student_tokens_per_question"]
    for name in ("accuracy.png", "tokens.png"):
        assert (run / name).read_bytes().startswith(b"\x89PNG")
    assert any(run.glob("wandb/offline-run-*"))


def _run_eval(tmp_path: Path, shared_data: Path, *overrides: str) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "magdi_lightning.cli.evaluate", *overrides,
         "generation.max_new_tokens=6", "wandb.mode=disabled"],
        cwd=tmp_path, env={**os.environ, "MAGDI_SHARED_DATA": str(shared_data)},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "outputs").glob("eval_*")
    return run


def test_magdi_eval_scores_several_benchmarks_in_one_run(tmp_path: Path,
                                                         shared_data: Path) -> None:
    load_student(architecture=TINY_ARCHITECTURE).save_pretrained(tmp_path / "student")
    run = _run_eval(tmp_path, shared_data, f"model={tmp_path / 'student'}",
                    "benchmark=[svamp,boolq,math500]", "limit=3", "prefix='predict: '")
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["benchmarks"]) == ["svamp", "boolq", "math500"]
    assert all(m["total"] == 3 for m in metrics["benchmarks"].values())
    assert metrics["mean_accuracy"] == sum(
        m["accuracy"] for m in metrics["benchmarks"].values()) / 3
    predictions = [json.loads(line)
                   for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert [p["benchmark"] for p in predictions] == (
        ["svamp"] * 3 + ["boolq"] * 3 + ["math500"] * 3)
    assert (run / "accuracy.png").read_bytes().startswith(b"\x89PNG")


def test_magdi_eval_loads_a_lightning_checkpoint(tmp_path: Path, shared_data: Path) -> None:
    import lightning as L
    from factories import batch_of, hand_graphs, tiny_module
    from torch.utils.data import DataLoader

    from magdi_lightning.models.student import load_student_from_checkpoint

    torch.manual_seed(0)
    settings = {"architecture": TINY_ARCHITECTURE}
    module = tiny_module(student=load_student(**settings), student_config=settings)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    batch = batch_of(module.student, hand_graphs())
    trainer.fit(module, train_dataloaders=DataLoader([batch, batch], batch_size=None))
    trainer.save_checkpoint(tmp_path / "step2.ckpt")

    reloaded = load_student_from_checkpoint(tmp_path / "step2.ckpt")
    for (name, value), (_, expected) in zip(reloaded.state_dict().items(),
                                            module.student.state_dict().items()):
        assert torch.equal(value, expected.cpu()), name
    run = _run_eval(tmp_path, shared_data, f"model={tmp_path / 'step2.ckpt'}",
                    "benchmark=svamp", "limit=2")
    assert json.loads((run / "metrics.json").read_text())["benchmarks"]["svamp"]["total"] == 2


def test_a_checkpoint_without_a_student_config_is_refused(tmp_path: Path) -> None:
    import pytest

    from magdi_lightning.models.student import load_student_from_checkpoint

    torch.save({"state_dict": {}, "hyper_parameters": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match=r"other\.ckpt.*student_config"):
        load_student_from_checkpoint(tmp_path / "other.ckpt")
