"""Sweeps: a real Optuna search (hparams_search=magdi_optuna) over the loss weights and
learning rate, its trials tabulated by magdi-report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.mark.slow
def test_optuna_search_tries_the_search_space_and_reports_the_best_trial(
        tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "magdi_lightning.cli.train", "hparams_search=magdi_optuna",
         "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2",
         "debug=fast", "logger=csv"],
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True,
        text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs").glob("train_multirun_*")
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(trials) == 3
    tried = set()
    for trial in trials:
        config = yaml.safe_load((trial / "config.yaml").read_text())
        weights, lr = config["method"]["loss_weights"], config["optimizer"]["lr"]
        assert 0.1 <= weights["nc"] <= 2.0 and 0.01 <= weights["mr"] <= 1.0
        assert 1e-4 <= lr <= 1e-2
        tried.add((weights["nc"], weights["mr"], lr))
        assert json.loads((trial / "metrics.json").read_text())["global_step"] == 5
    assert len(tried) == 3  # three different points of the space

    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"method.loss_weights.nc", "method.loss_weights.mr",
                                        "optimizer.lr"}
    report = subprocess.run(
        [sys.executable, "-m", "magdi_lightning.cli.report", str(sweep), "--group-by",
         "method.loss_weights.nc", "method.loss_weights.mr", "optimizer.lr"],
        capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert report.stdout.count("(n=1)") >= 3
