"""magdi-train as users run it: the default run learns; shipped data configs train."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Held-out accuracy the default run must gain over the untrained student (the issue
#: asks for 25 points; measured runs gain about 80, see docs/methods/magdi.md).
LEARNING_THRESHOLD = 0.25


def _run_train(args: list[str], cwd: Path, shared_data: Path | None = None,
               timeout: int = 1500) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    if shared_data is not None:
        env["MAGDI_SHARED_DATA"] = str(shared_data)
    result = subprocess.run([sys.executable, "-m", "magdi_lightning.cli.train", *args],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _metrics(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("metrics.json"))]


def test_default_run_learns_and_writes_its_run_directory(tmp_path: Path) -> None:
    result = _run_train([], cwd=tmp_path)
    (metrics,) = _metrics(tmp_path / "outputs")
    run = Path(metrics["output_dir"])
    gain = metrics["heldout_accuracy"] - metrics["heldout_accuracy_untrained"]
    print(f"held-out accuracy: untrained {metrics['heldout_accuracy_untrained']:.3f}, "
          f"trained {metrics['heldout_accuracy']:.3f}, gain {gain:.3f} "
          f"(threshold {LEARNING_THRESHOLD}); fit {metrics['fit_seconds']} s")
    assert gain >= LEARNING_THRESHOLD
    assert "held-out accuracy" in result.stdout and str(run.name) in result.stdout
    for name in ("config.yaml", "metrics.json", "predictions.jsonl",
                 "checkpoints/last.ckpt", "student/model.safetensors",
                 "student/tokenizer.json"):
        assert (run / name).exists(), name
    assert any(run.glob("wandb/offline-run-*"))
    assert {"train/nt", "train/mr", "train/nc", "val/nc_acc", "val/mr_acc"} <= set(metrics)


def test_shipped_data_configs_and_methods_train(tmp_path: Path, shared_data: Path) -> None:
    _run_train(["--multirun", "data=du_gsm8k,gsm8k_solutions",
                "method=magdi,magdi_reference,sft", "debug=fast", "logger=csv",
                "data.max_length=128"],
               cwd=tmp_path, shared_data=shared_data)
    runs = _metrics(tmp_path / "outputs")
    assert len(runs) == 6
    assert all(run["global_step"] == 5 for run in runs)


def test_du_debates_train_end_to_end(tmp_path: Path, shared_data: Path) -> None:
    _run_train(["data=du_gsm8k", "trainer.max_steps=8", "evaluate.max_questions=2",
                "evaluate.before_training=false", "logger=csv"],
               cwd=tmp_path, shared_data=shared_data)
    (metrics,) = _metrics(tmp_path / "outputs")
    imported = list((tmp_path / "outputs" / "cache" / "imported").glob("du-*.jsonl"))
    assert len(imported) == 1
    assert sum(1 for _ in imported[0].open()) == 20
    assert metrics["global_step"] == 8 and metrics["train/loss"] > 0

    # The checkpoint alone rebuilds the trained student (what magdi-eval model=*.ckpt does).
    import torch

    from magdi_lightning.models.student import load_student, load_student_from_checkpoint

    run = Path(metrics["output_dir"])
    from_checkpoint = load_student_from_checkpoint(run / "checkpoints" / "last.ckpt")
    saved = load_student(name_or_path=str(run / "student")).state_dict()
    assert all(torch.equal(value, saved[key])
               for key, value in from_checkpoint.state_dict().items())


@pytest.mark.parametrize("group_option", [
    "student=hf student.name_or_path=MODEL", "graph_encoder=gat", "graph_encoder=sage",
    "trainer=gpu", "logger=csv", "data=graphs data.graphs=x.jsonl",
    "method=tinyllm data=toy_rationales", "method=tinyllm student=tiny_t5 data=tinyllm_obqa",
    "method=tinyllm data=tinyllm_riddle", "data=toy_strategies",
])
def test_every_config_option_composes(group_option: str, tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from magdi_lightning import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=group_option.split(),
                      return_hydra_config=True)
    assert cfg.data._target_ and cfg.student._target_ and cfg.method._target_


def test_a_logger_that_cannot_start_falls_back_to_csv(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger
    from omegaconf import OmegaConf

    from magdi_lightning.cli.common import build_loggers

    broken = OmegaConf.create({"wandb": {"_target_": "builtins.open",
                                         "file": str(tmp_path / "missing" / "x")}})
    (logger,) = build_loggers(broken, tmp_path)
    assert isinstance(logger, CSVLogger)
