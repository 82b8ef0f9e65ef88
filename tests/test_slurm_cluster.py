"""The real single-node SLURM test cluster (tests/slurm): sbatch, submitit and requeue.

Slow: the session starts slurmctld + slurmd + munged (installing them first when missing).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_fixture

pytestmark = pytest.mark.slow
slurm_cluster = slurm_fixture.slurm_cluster  # the session fixture (one cluster per session)

submitit = pytest.importorskip("submitit")


def _wait_for_text(path: Path, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in (content := path.read_text()):
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path} after {timeout} s: "
                         f"{path.read_text() if path.exists() else '(missing)'}")


def _submitit_result(job, cluster, timeout: float = 60.0):
    """``job.result()`` with a deadline (a broken cluster must fail, not hang)."""
    deadline = time.monotonic() + timeout
    while not job.done():
        if time.monotonic() > deadline:
            raise AssertionError(f"submitit job {job.job_id} not done after {timeout} s "
                                 f"({job.state})\n{cluster.log_tail()}")
        time.sleep(0.5)
    return job.result()


def test_sbatch_wrap_runs_and_writes_output(slurm_cluster, tmp_path):
    out = tmp_path / "hi.out"
    job_id = slurm_cluster.sbatch("--wrap", "echo hi; echo job=$SLURM_JOB_ID",
                                  "--output", str(out), cwd=tmp_path)
    info = slurm_cluster.wait_for_state(job_id, "COMPLETED", timeout=30)
    assert info["ExitCode"] == "0:0"
    assert out.read_text().splitlines() == ["hi", f"job={job_id}"]
    # the partition and node are what the cluster promises
    assert info["Partition"] == "debug"
    sinfo = slurm_cluster.run(["sinfo", "-h", "-o", "%P %a %l"]).stdout.split()
    assert sinfo == ["debug*", "up", "infinite"]


def test_submitit_autoexecutor_returns_the_function_result(slurm_cluster, tmp_path):
    def add(a, b):
        import os
        return a + b, os.environ["SLURM_JOB_ID"]

    with slurm_cluster.activated():
        executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
        executor.update_parameters(timeout_min=5, slurm_partition="debug")
        job = executor.submit(add, 2, 3)
        assert _submitit_result(job, slurm_cluster) == (5, job.job_id)
        # state polling (submitit runs `sacct`) sees the job as on a real cluster; the
        # result file is written just before the job step ends, so allow SLURM to catch up
        deadline = time.monotonic() + 60
        while (state := job.watcher.get_state(job.job_id, mode="force")) == "RUNNING" \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert state == "COMPLETED"


def test_submitit_job_arrays_and_failures_are_reported(slurm_cluster, tmp_path):
    def square(x):
        return x * x

    def boom():
        raise ValueError("boom from the job")

    def sleep_long():
        import time
        time.sleep(300)

    with slurm_cluster.activated():
        executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
        executor.update_parameters(timeout_min=5)
        jobs = executor.map_array(square, [2, 3])  # what hydra-submitit-launcher submits
        assert [j.job_id.split("_")[1] for j in jobs] == ["0", "1"]
        assert [_submitit_result(j, slurm_cluster) for j in jobs] == [4, 9]

        failing = executor.submit(boom)
        with pytest.raises(submitit.core.utils.FailedJobError, match="boom from the job"):
            _submitit_result(failing, slurm_cluster)

        # a job killed from outside writes no result: only the job state tells it is over
        hanging = executor.submit(sleep_long)
        hanging._results_timeout_s = 1  # (submitit waits 15 s for a result file that may lag)
        slurm_cluster.wait_for_state(hanging.job_id, "RUNNING", timeout=30)
        slurm_cluster.run(["scancel", hanging.job_id])
        with pytest.raises(submitit.core.utils.UncompletedJobError):
            _submitit_result(hanging, slurm_cluster, timeout=30)
        assert hanging.state.startswith("CANCELLED")


LOOP = """\
import os, sys, time
progress, restart = sys.argv[1], int(os.environ.get("SLURM_RESTART_COUNT", "0"))
steps = 200 if restart == 0 else 4   # the first run is requeued long before its end
def log(line):
    with open(progress, "a") as fh:
        fh.write(line + "\\n")
log(f"start job={os.environ['SLURM_JOB_ID']} restart={restart}")
for step in range(steps):
    log(f"step {step} restart={restart}")
    time.sleep(0.25)
log(f"done restart={restart}")
print(f"finished run {restart}", flush=True)
"""


def test_scontrol_requeue_restarts_a_running_job(slurm_cluster, tmp_path):
    (tmp_path / "loop.py").write_text(LOOP)
    progress, out = tmp_path / "progress.txt", tmp_path / "job.out"
    job_id = slurm_cluster.sbatch(
        "--output", str(out), "--open-mode=append",
        "--wrap", f"{sys.executable} {tmp_path / 'loop.py'} {progress}", cwd=tmp_path)
    _wait_for_text(progress, "step 2 restart=0")
    slurm_cluster.run(["scontrol", "requeue", job_id])
    info = slurm_cluster.wait_for_state(job_id, "COMPLETED", timeout=60)
    assert info["Restarts"] == "1"
    lines = progress.read_text().splitlines()
    assert lines[0] == f"start job={job_id} restart=0"
    assert f"start job={job_id} restart=1" in lines  # same job id, SLURM_RESTART_COUNT=1
    assert "done restart=0" not in lines
    assert lines[-1] == "done restart=1"
    # append mode keeps both runs' output; slurmstepd notes the requeue in it (stderr)
    output = out.read_text().splitlines()
    assert any("DUE TO JOB REQUEUE" in line for line in output)
    assert [line for line in output if not line.startswith("slurmstepd")] == ["finished run 1"]


def test_scontrol_requeue_reruns_a_submitit_job(slurm_cluster, tmp_path):
    """What requeue does to submitit: the pickled call runs again, from scratch, under the
    same job id; SLURM_RESTART_COUNT is 1 (unset in the first run); submitit's SIGTERM
    handler only logs (the step is SIGKILLed after KillWait); the submitting side's
    job.result() just keeps waiting and gets the second run's result."""
    marker = tmp_path / "runs.txt"

    def run_once(path):
        import os
        import time
        restart = os.environ.get("SLURM_RESTART_COUNT", "unset")
        with open(path, "a") as fh:
            fh.write(f"job={os.environ['SLURM_JOB_ID']} restart={restart}\n")
        if restart == "unset":
            time.sleep(300)  # requeued long before
        return os.environ["SLURM_JOB_ID"], restart

    with slurm_cluster.activated():
        executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
        executor.update_parameters(timeout_min=10)
        job = executor.submit(run_once, str(marker))
        _wait_for_text(marker, "restart=unset")
        subprocess.run(["scontrol", "requeue", job.job_id], check=True)
        assert _submitit_result(job, slurm_cluster, timeout=60) == (job.job_id, "1")
    assert marker.read_text().splitlines() == [f"job={job.job_id} restart=unset",
                                               f"job={job.job_id} restart=1"]
    assert "Bypassing signal SIGTERM" in job.stderr()
    assert slurm_cluster.job_info(job.job_id)["Restarts"] == "1"
