"""Checkpoints written by magdi-lightning 0.1 (before the package was arranged by role)
still evaluate and resume.

``tests/fixtures/checkpoints/*_0.1.0.ckpt`` are two-step ``magdi-train debug=fast`` runs of
a 1-layer, 8-wide student written by 0.1.0: ``magdi_0.1.0.ckpt`` with ``method=magdi``,
``tinyllm_0.1.0.ckpt`` with ``method=tinyllm data=toy_rationales`` (both
``data.importer.options.num_questions=60``). Their run configs named the old module paths
(``magdi_lightning.module.DistillationModule``), which still import.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from magdi_lightning.models.student import load_student_from_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"
#: The run's overrides besides method and data, as the fixtures were written.
TINY = ["debug=fast", "student.architecture.hidden_size=8",
        "student.architecture.intermediate_size=16", "student.architecture.num_hidden_layers=1",
        "student.architecture.num_attention_heads=2", "student.architecture.num_key_value_heads=2",
        "data.importer.options.num_questions=60", "evaluate.max_questions=2",
        "trainer.val_check_interval=2", "logger=csv"]
RUNS = {"magdi_0.1.0.ckpt": ["method=magdi"],
        "tinyllm_0.1.0.ckpt": ["method=tinyllm", "data=toy_rationales"]}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_an_old_checkpoint_rebuilds_its_student(name: str) -> None:
    path = FIXTURES / name
    student = load_student_from_checkpoint(path)
    saved = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    for key, value in student.state_dict().items():
        assert torch.equal(value, saved[f"student.{key}"]), key


@pytest.mark.parametrize("old, new", [
    ("magdi_lightning.module.DistillationModule",
     "magdi_lightning.methods.magdi.DistillationModule"),
    ("magdi_lightning.task_module.TaskDistillationModule",
     "magdi_lightning.methods.multitask.TaskDistillationModule"),
    ("magdi_lightning.evaluation.benchmarks.BenchmarkExample",
     "magdi_lightning.questions.Question"),
    ("magdi_lightning.graph.GraphValidationError", "magdi_lightning.errors.RecordError"),
    ("magdi_lightning.data.datamodule.MAGDataModule",
     "magdi_lightning.data.datamodule.SourceDataModule"),
])
def test_old_paths_name_the_new_objects(old: str, new: str) -> None:
    def resolve(dotted: str) -> object:
        module, name = dotted.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    with pytest.warns(DeprecationWarning, match="goes in magdi-lightning 0.3"):
        assert resolve(old) is resolve(new)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_an_old_checkpoint_resumes_training(tmp_path: Path, name: str) -> None:
    """``ckpt_path=<0.1 checkpoint>`` continues at its step 2 to step 3."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "magdi_lightning.cli.train", *RUNS[name], *TINY,
               "trainer.max_steps=3", f"ckpt_path={FIXTURES / name}",
               f"paths.output_dir={out}", f"paths.cache_dir={tmp_path / 'cache'}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu",
                         weights_only=True)
    assert resumed["global_step"] == 3
