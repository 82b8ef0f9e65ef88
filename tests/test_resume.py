"""Exact resume: a run killed with SIGKILL and started again with the same command ends
with exactly the metrics of a run that was never interrupted (fixed seed, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

#: Small enough to take about a minute per run, long enough to be killed mid-epoch with
#: checkpoints before and after the kill and a validation on each side of it.
ARGS = ["trainer.max_steps=40", "trainer.val_check_interval=20",
        "callbacks.model_checkpoint.every_n_train_steps=10", "evaluate.max_questions=20",
        "logger=wandb", "ckpt_path=auto"]
COMPARED = ("global_step", "heldout_accuracy", "heldout_accuracy_untrained")


def _command() -> list[str]:
    return [sys.executable, "-m", "magdi_lightning.cli.train", *ARGS]


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}


def _run(cwd: Path) -> None:
    result = subprocess.run(_command(), cwd=cwd, env=_env(), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _kill_after_step(cwd: Path, step: int) -> Path:
    """Start the run, SIGKILL it once a checkpoint at ``step`` or later exists; return its
    run directory."""
    process = subprocess.Popen(_command(), cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            for checkpoint in (cwd / "outputs").glob("train_*/checkpoints/last.ckpt"):
                try:
                    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
                except Exception:  # being replaced right now: look again
                    continue
                if saved["global_step"] >= step:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    return checkpoint.parent.parent
            time.sleep(0.2)
    finally:
        process.kill()
    pytest.fail("the run ended or stalled before it could be killed")


def _files(run_dir: Path) -> dict[str, tuple[int, float]]:
    """Size and mtime of each file, but wandb's: its service process outlives a killed
    client and finishes its own logs there."""
    return {str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime)
            for p in run_dir.rglob("*") if p.is_file() and "wandb" not in p.parts}


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_runs_metrics(tmp_path: Path) -> None:
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    straight.mkdir(), interrupted.mkdir()
    _run(straight)
    (reference_dir,) = (straight / "outputs").glob("train_*")
    reference = _metrics(reference_dir)

    killed_dir = _kill_after_step(interrupted, 10)
    assert not (killed_dir / "metrics.json").exists()
    killed_files = _files(killed_dir)
    killed_at = torch.load(killed_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert 10 <= killed_at["global_step"] < 40

    _run(interrupted)
    (resumed_dir,) = [d for d in (interrupted / "outputs").glob("train_*") if d != killed_dir]
    resumed = _metrics(resumed_dir)
    print(f"killed after step {killed_at['global_step']}; resumed run: "
          f"{ {k: resumed[k] for k in COMPARED} }")

    for key in (*COMPARED, *(k for k in reference if k.startswith(("train/", "val/")))):
        assert resumed[key] == reference[key], key
    assert resumed["resumed_from"] == str(killed_dir.resolve() / "checkpoints" / "last.ckpt")
    # The crashed run's directory is left as it was; the resumed run continues its wandb run.
    assert _files(killed_dir) == killed_files
    killed_record = json.loads((killed_dir / "run.json").read_text())
    resumed_record = json.loads((resumed_dir / "run.json").read_text())
    assert resumed_record["wandb_id"] == killed_record["wandb_id"]
    assert (killed_record["status"], resumed_record["status"]) == ("running", "finished")
    assert any(resumed_dir.glob(f"wandb/offline-run-*-{killed_record['wandb_id']}"))

    # Run again: the finished run is not resumed, a fresh one starts.
    _run(interrupted)
    assert len(list((interrupted / "outputs").glob("train_*"))) == 3
