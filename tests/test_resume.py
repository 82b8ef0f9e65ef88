"""Resuming a crashed run. Exact resume: a run killed with SIGKILL and started again with
the same command ends with exactly the metrics of a run that was never interrupted (fixed
seed, CPU). Resume once: the same command run again and again after crashes resumes each
crash once (``magdi_lightning.runtime.runs`` has the states), checked in-process on a tiny run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import DictConfig

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
    """Size and mtime of each file, but wandb's (its service process outlives a killed
    client and finishes its own logs there) and the record (the resuming run marks it)."""
    return {str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime)
            for p in run_dir.rglob("*")
            if p.is_file() and "wandb" not in p.parts and p.name != "run.json"}


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
    # The crashed run's directory is left as it was but for its record, marked resumed; the
    # resumed run continues its wandb run.
    assert _files(killed_dir) == killed_files
    killed_record = json.loads((killed_dir / "run.json").read_text())
    resumed_record = json.loads((resumed_dir / "run.json").read_text())
    assert resumed_record["wandb_id"] == killed_record["wandb_id"]
    assert (killed_record["status"], resumed_record["status"]) == ("resumed", "finished")
    assert killed_record["resumed_by"] == str(resumed_dir.resolve())
    assert any(resumed_dir.glob(f"wandb/offline-run-*-{killed_record['wandb_id']}"))

    # Run again: the finished run is not resumed, a fresh one starts.
    _run(interrupted)
    assert len(list((interrupted / "outputs").glob("train_*"))) == 3


class CrashAtStep(L.Callback):
    """Raises once training reaches ``at`` optimizer steps (None: never). A class attribute
    set by the test, not a config value, so every run of the command has one fingerprint."""

    at: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if self.at is not None and trainer.global_step >= self.at:
            raise RuntimeError(f"injected crash at step {trainer.global_step}")


#: A tiny run: 6 steps, a checkpoint every 2, no validation, 2 held-out questions.
TINY = ["logger=csv", "data.importer.options.num_questions=200", "data.batch_size=2",
        "trainer.max_steps=6", "trainer.val_check_interval=100",
        "callbacks.model_checkpoint.every_n_train_steps=2", "~callbacks.progress_bar",
        "evaluate.before_training=false", "evaluate.max_questions=2",
        "evaluate.max_new_tokens=4", f"+callbacks.crash._target_={__name__}.CrashAtStep"]


def _config(log_dir: Path, run: str) -> DictConfig:
    from hydra import compose, initialize_config_dir

    from magdi_lightning import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[
            *TINY, f"paths.log_dir={log_dir}", f"paths.output_dir={log_dir / run}"])


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_the_same_command_resumes_each_crash_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    from magdi_lightning.cli.train import train

    monkeypatch.setenv("MAGDI_RESUME_CHECKPOINT", "")  # restored after the test
    monkeypatch.setattr(CrashAtStep, "at", None)
    runs = [tmp_path / f"run{k}" for k in range(1, 5)]
    caplog.set_level("INFO", logger="magdi_lightning.cli.train")

    def crash_at(step: int | None, run: Path) -> dict:
        CrashAtStep.at = step
        if step is None:
            return train(_config(tmp_path, run.name))
        with pytest.raises(RuntimeError, match="injected crash"):
            train(_config(tmp_path, run.name))
        return {}

    crash_at(3, runs[0])  # checkpoint at step 2, then the crash
    first = _record(runs[0])
    assert first["status"] == "running" and first["resumed_from"] is None

    # Run 2 resumes run 1 (marked resumed) in the same wandb run, and crashes after step 4.
    crash_at(5, runs[1])
    first, second = _record(runs[0]), _record(runs[1])
    assert (first["status"], first["resumed_by"]) == ("resumed", str(runs[1]))
    assert second["resumed_from"] == str((runs[0] / "checkpoints" / "last.ckpt").resolve())
    assert second["wandb_id"] == first["wandb_id"] and second["status"] == "running"
    assert f"resuming the crashed run {runs[0]} (now marked resumed)" in caplog.text

    # Run 3 resumes run 2's crash, not run 1's again, and finishes.
    metrics = crash_at(None, runs[2])
    second, third = _record(runs[1]), _record(runs[2])
    assert (second["status"], second["resumed_by"]) == ("resumed", str(runs[2]))
    assert third["resumed_from"] == str((runs[1] / "checkpoints" / "last.ckpt").resolve())
    assert (third["status"], third["wandb_id"]) == ("finished", first["wandb_id"])
    assert metrics["global_step"] == 6

    # Run 4: nothing left to resume, so it starts fresh in a wandb run of its own.
    crash_at(None, runs[3])
    fourth = _record(runs[3])
    assert fourth["resumed_from"] is None and fourth["wandb_id"] != first["wandb_id"]
    assert [_record(run)["status"] for run in runs] == ["resumed", "resumed", "finished",
                                                       "finished"]
