"""magdi-train on a real single-node SLURM cluster, submitted through the launcher config
``hydra/launcher=slurm`` (hydra-submitit-launcher): a two-job sweep, a job requeued with
``scontrol requeue`` mid-training, and Lightning's own signal handler requeueing a job."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_fixture
import torch

pytestmark = pytest.mark.slow
slurm_cluster = slurm_fixture.slurm_cluster  # the session fixture (one cluster per session)

# The test cluster is CPU-only with a few cores and no memory accounting.
LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.partition=debug",
            "hydra.launcher.gpus_per_node=null", "hydra.launcher.mem_gb=null",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=20",
            "hydra.launcher.signal_delay_s=30"]
TRAIN = ["logger=csv", "evaluate.max_questions=8", "evaluate.before_training=false"]


def _sweep(cwd: Path, cluster, *args: str) -> subprocess.Popen[str]:
    """Launch ``magdi-train -m`` through SLURM; the launcher waits for its jobs."""
    env = {**cluster.env, "PYTHONUNBUFFERED": "1", "WANDB_SILENT": "true"}
    return subprocess.Popen(
        [sys.executable, "-m", "magdi_lightning.cli.train", "-m", *LAUNCHER, *TRAIN, *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen[str], cluster, timeout: float = 600) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"sweep did not finish in {timeout} s\n{output[-3000:]}\n"
                    f"{cluster.log_tail()}")
    assert process.returncode == 0, output[-4000:]
    return output


def _job_dir(cwd: Path, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list((cwd / "outputs").glob("train_multirun_*/0"))
        if found:
            return found[0]
        time.sleep(0.2)
    pytest.fail("the sweep's job directory never appeared")


def _wait_for_checkpoint(run_dir: Path, step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    while time.monotonic() < deadline:
        if checkpoint.exists():
            try:
                if torch.load(checkpoint, weights_only=True)["global_step"] >= step:
                    return
            except Exception:  # being replaced right now: look again
                pass
        time.sleep(0.2)
    pytest.fail(f"no checkpoint at step {step} in {run_dir} after {timeout} s")


def _slurm_job_id(run_dir: Path) -> str:
    """The SLURM job running ``run_dir`` (its run record holds ``SLURM_JOB_ID``)."""
    return json.loads((run_dir / "run.json").read_text())["slurm_job_id"]


def test_two_job_sweep_runs_on_slurm_and_both_results_are_collected(
        tmp_path: Path, slurm_cluster) -> None:
    started = time.monotonic()
    output = _finish(_sweep(tmp_path, slurm_cluster, "debug=fast", "seed=1,2"), slurm_cluster)
    (sweep,) = (tmp_path / "outputs").glob("train_multirun_*")
    metrics = [json.loads((sweep / str(n) / "metrics.json").read_text()) for n in (0, 1)]
    assert [m["global_step"] for m in metrics] == [5, 5]
    records = [json.loads((sweep / str(n) / "run.json").read_text()) for n in (0, 1)]
    assert all(r["slurm_job_id"] and r["status"] == "finished" for r in records)
    assert records[0]["slurm_job_id"] != records[1]["slurm_job_id"]
    assert "Submitit" in output or "submitit" in output.lower()

    report = subprocess.run([sys.executable, "-m", "magdi_lightning.cli.report", str(sweep)],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "n=2" in report.stdout
    print(f"two-job SLURM sweep: {time.monotonic() - started:.1f} s")


def test_job_requeued_mid_training_resumes_from_its_checkpoint(
        tmp_path: Path, slurm_cluster) -> None:
    started = time.monotonic()
    process = _sweep(tmp_path, slurm_cluster, "trainer.max_steps=60",
                     "trainer.val_check_interval=30",
                     "callbacks.model_checkpoint.every_n_train_steps=10")
    job_dir = _job_dir(tmp_path)
    _wait_for_checkpoint(job_dir, 10)
    job_id = _slurm_job_id(job_dir)
    slurm_cluster.run(["scontrol", "requeue", job_id])
    _finish(process, slurm_cluster)

    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 60
    resumed_from = Path(metrics["resumed_from"])
    assert resumed_from == (job_dir / "checkpoints" / "last.ckpt").resolve()
    assert "Restarts=1" in slurm_cluster.run(["scontrol", "show", "job", job_id]).stdout
    print(f"SLURM requeue and resume: {time.monotonic() - started:.1f} s")


def test_lightning_signal_handler_checkpoints_and_requeues(
        tmp_path: Path, slurm_cluster) -> None:
    """The time-limit warning (SIGUSR1, what ``--signal=USR1@<s>`` sends): Lightning saves
    ``hpc_ckpt_1.ckpt`` and requeues the job, which resumes from that checkpoint."""
    started = time.monotonic()
    process = _sweep(tmp_path, slurm_cluster, "trainer.max_steps=60",
                     "trainer.val_check_interval=30",
                     "callbacks.model_checkpoint.every_n_train_steps=10")
    job_dir = _job_dir(tmp_path)
    _wait_for_checkpoint(job_dir, 10)
    job_id = _slurm_job_id(job_dir)
    slurm_cluster.run(["scancel", f"--signal={signal.SIGUSR1.name.removeprefix('SIG')}",
                       job_id])
    _finish(process, slurm_cluster)

    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 60
    assert Path(metrics["resumed_from"]).name.startswith("hpc_ckpt_")
    assert "Restarts=1" in slurm_cluster.run(["scontrol", "show", "job", job_id]).stdout
    print(f"SLURM signal, checkpoint, requeue and resume: {time.monotonic() - started:.1f} s")

