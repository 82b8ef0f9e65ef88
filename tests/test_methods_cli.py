"""TinyLLM and SIKeD as users run them: the shared sets, the toy world, resuming.

The two learning runs take several minutes each and are marked ``slow`` (CI runs them
with ``python3 -m pytest -m slow``); the rest run in the default suite.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import DictConfig

#: Held-out accuracy gain over the untrained student the issue asks of each method.
LEARNING_THRESHOLD = 0.20


def _run(module: str, args: list[str], cwd: Path, shared_data: Path | None = None,
         timeout: int = 1200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    if shared_data is not None:
        env["MAGDI_SHARED_DATA"] = str(shared_data)
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _metrics(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("metrics.json"))]


def test_tinyllm_on_shared_arc_with_causal_and_seq2seq_students(
        tmp_path: Path, shared_data: Path) -> None:
    _run("magdi_lightning.cli.train",
         ["--multirun", "method=tinyllm", "data=tinyllm_arc", "student=tiny_llama,tiny_t5",
          "debug=fast", "logger=csv"], tmp_path, shared_data)
    runs = _metrics(tmp_path / "outputs")
    assert len(runs) == 2
    for run in runs:
        assert run["global_step"] == 5
        # one loss per task: the answer and each of ARC's two teachers
        tasks = {k.split("/", 1)[1] for k in run if k.startswith("val/") and k != "val/loss"}
        assert "answer" in tasks and len([t for t in tasks if t.startswith("rationale/")]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("data", ["tinyllm_obqa", "tinyllm_riddle", "gsm8k_solutions"])
def test_tinyllm_on_the_other_shared_sets(data: str, tmp_path: Path, shared_data: Path) -> None:
    _run("magdi_lightning.cli.train", ["method=tinyllm", f"data={data}", "debug=fast",
                                       "logger=csv"], tmp_path, shared_data)
    (run,) = _metrics(tmp_path / "outputs")
    assert run["global_step"] == 5 and run["train/loss"] > 0


@pytest.mark.slow
def test_tinyllm_learns_on_the_toy_rationales(tmp_path: Path) -> None:
    _run("magdi_lightning.cli.train", ["method=tinyllm", "data=toy_rationales", "logger=csv"],
         tmp_path)
    (run,) = _metrics(tmp_path / "outputs")
    gain = run["heldout_accuracy"] - run["heldout_accuracy_untrained"]
    print(f"TinyLLM toy: untrained {run['heldout_accuracy_untrained']:.3f}, trained "
          f"{run['heldout_accuracy']:.3f}; {run['total_seconds']} s")
    assert gain >= LEARNING_THRESHOLD
    assert {"train/answer", "train/rationale/teacher_equations"} <= set(run)


def _siked_rows(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "iterations.json").read_text())["iterations"]


SMALL_SIKED = ["data.importer.options.num_questions=60", "steps.first=10", "steps.later=10",
               "evaluate.max_questions=5", "sampling.max_new_tokens=24",
               "evaluate.max_new_tokens=24", "checkpoint_every=5", "patience=5"]


def test_siked_runs_its_iterations_and_keeps_them_under_the_run_directory(
        tmp_path: Path) -> None:
    result = _run("magdi_lightning.cli.siked", ["iterations=2", *SMALL_SIKED], tmp_path)
    assert "magdi-siked" in result.stdout
    (run_dir,) = (tmp_path / "outputs").glob("siked_*")
    rows = _siked_rows(run_dir)
    assert [r["iteration"] for r in rows] == [1, 2]
    assert rows[0]["alpha"] == 1.0 and rows[0]["student_correct_share"] is None
    assert 0.0 <= rows[1]["alpha"] <= 1.0
    assert {"accuracy/cot", "accuracy/l2m", "accuracy/pot"} <= set(rows[1])
    for k in (1, 2):
        for name in ("train.jsonl", "mixture.json", "student.pt", "metrics.json",
                     "checkpoints/last.ckpt"):
            assert (run_dir / f"iteration_{k}" / name).exists(), (k, name)


def test_an_interrupted_siked_run_resumes_in_the_iteration_it_was_in(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "magdi_lightning.cli.siked", "iterations=2",
            *SMALL_SIKED, "steps.later=200"]
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    checkpoint = None
    while time.monotonic() < deadline and checkpoint is None:
        assert process.poll() is None, "the run ended before it could be interrupted"
        checkpoint = next((tmp_path / "outputs").glob("siked_*/iteration_2/checkpoints/*.ckpt"),
                          None)
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (run_dir,) = (tmp_path / "outputs").glob("siked_*")
    assert not (run_dir / "iterations.json").exists()
    mixture = (run_dir / "iteration_2" / "train.jsonl").read_bytes()

    result = _run("magdi_lightning.cli.siked",
                  ["iterations=2", *SMALL_SIKED, "steps.later=200", f"resume_dir={run_dir}"],
                  tmp_path)
    rows = _siked_rows(run_dir)
    assert [r["iteration"] for r in rows] == [1, 2]
    assert (run_dir / "iteration_2" / "train.jsonl").read_bytes() == mixture  # not resampled
    assert "Restoring states from the checkpoint" in result.stdout + result.stderr


@pytest.mark.slow
def test_siked_learns_on_the_toy_strategies_and_alpha_falls(tmp_path: Path) -> None:
    result = _run("magdi_lightning.cli.siked", [], tmp_path)
    (run_dir,) = (tmp_path / "outputs").glob("siked_*")
    rows = _siked_rows(run_dir)
    untrained = json.loads((run_dir / "iterations.json").read_text())["untrained_accuracy"]
    print(result.stdout[-3000:])
    assert len(rows) >= 2
    assert max(r["accuracy"] for r in rows) - untrained >= LEARNING_THRESHOLD
    alphas = [r["alpha"] for r in rows]
    assert alphas[0] == 1.0 and all(b < a for a, b in itertools.pairwise(alphas))


def test_a_siked_run_takes_the_run_lock_and_record(tmp_path: Path) -> None:
    """A second magdi-siked in the directory of one still running refuses, saying so; the
    record is ``magdi-train``'s: running while alive, the same wandb run when resumed,
    finished at the end. (The second run and the resume run in-process, to save two
    interpreter starts.)"""
    from hydra import compose, initialize_config_dir

    from magdi_lightning import CONFIG_DIR
    from magdi_lightning.cli.siked import run_siked
    from magdi_lightning.runtime.runs import ResumeError, RunLock, RunRecord

    def config(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="siked", overrides=[
                *SMALL_SIKED, "iterations=1", "steps.first=2", "evaluate.max_questions=2",
                "evaluate.max_new_tokens=8", *overrides])

    run_dir = tmp_path / "outputs" / "siked_shared"
    first = subprocess.Popen(
        [sys.executable, "-m", "magdi_lightning.cli.siked", *SMALL_SIKED, "steps.first=100000",
         f"hydra.run.dir={run_dir}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while RunRecord.read(run_dir) is None:
            assert first.poll() is None and time.monotonic() < deadline, "no run record"
            time.sleep(0.2)
        with pytest.raises(ResumeError, match=f"{run_dir} is in use by another live process"):
            run_siked(config(f"paths.output_dir={run_dir}"))
    finally:
        first.kill()
        first.wait()
    crashed = RunRecord.read(run_dir)
    assert crashed is not None and crashed.status == "running"
    assert not RunLock.held(run_dir)

    run_siked(config(f"resume_dir={run_dir}",
                     f"paths.output_dir={tmp_path / 'outputs' / 'siked_resume'}"))
    finished = RunRecord.read(run_dir)
    assert finished is not None
    assert (finished.status, finished.wandb_id) == ("finished", crashed.wandb_id)


def test_siked_iteration_data_is_the_configured_data_module(tmp_path: Path) -> None:
    """Each iteration's data module is ``magdi-train``'s call on the mixture: every ``data.``
    option the user set reaches it, only the source, splits and tasks are SIKeD's."""
    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer

    from magdi_lightning import CONFIG_DIR
    from magdi_lightning.cli.siked import iteration_data
    from magdi_lightning.graph import write_graphs
    from magdi_lightning.methods.siked import TRAINING_TASKS
    from magdi_lightning.models.tokenizer import DEFAULT_TOKENIZER_DIR
    from magdi_lightning.sources.toy import ToyWorldConfig, generate_toy_graphs

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="siked", overrides=[
            "data.num_workers=1", "data.mask_prompt=false", "data.eval_batch_size=7",
            "data.max_length=99", "data.max_graphs=3", f"paths.log_dir={tmp_path}"])
    mixture = tmp_path / "mixture.jsonl"
    write_graphs(mixture, generate_toy_graphs(ToyWorldConfig(num_questions=4, kind="strategies")))
    tokenizer = AutoTokenizer.from_pretrained(str(DEFAULT_TOKENIZER_DIR))
    data = iteration_data(cfg, mixture, tokenizer, encoder_decoder=False)
    assert (data.num_workers, data.mask_prompt, data.eval_batch_size, data.max_length) == (
        1, False, 7, 99)
    assert data.tasks is TRAINING_TASKS and data.max_graphs is None
    data.setup("fit")
    assert len(data.examples["train"]) > 0 and not data.splits["test"]
