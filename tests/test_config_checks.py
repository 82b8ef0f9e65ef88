"""Bad config values fail as the config is composed, naming their key; the CLIs end every
user error (bad values, bad data, missing files) with one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.errors import USAGE_ERROR
from magdi_lightning.errors import UserError
from magdi_lightning.runtime.config_checks import check_config, looks_like_a_path


def _compose(primary: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=primary, overrides=overrides, return_hydra_config=True)


#: (primary config, overrides, the key the message must name)
BAD = [
    ("train", ["optimizer.lr=-0.001"], "optimizer.lr=-0.001"),
    ("train", ["optimizer.lr=nan"], "optimizer.lr=nan"),
    ("train", ["optimizer.lr=inf"], "optimizer.lr=inf"),
    ("siked", ["optimizer.lr=-1"], "optimizer.lr=-1"),
    ("train", ["method.loss_weights.mr=-0.1"], "method.loss_weights.mr=-0.1"),
    ("train", ["method.loss_weights.nc=nan"], "method.loss_weights.nc=nan"),
    ("train", ["+method.loss_weights.ntt=1"], "method.loss_weights.ntt: unknown loss"),
    ("train", ["method=tinyllm", "data=toy_rationales", "+method.task_weights.answr=1"],
     "method.task_weights.answr: unknown task"),
    ("train", ["method=tinyllm", "data=toy_rationales", "method.task_weights.answer=-2"],
     "method.task_weights.answer=-2"),
    ("siked", ["+method.task_weights.solution=1"], "method.task_weights.solution: unknown task"),
    ("train", ["data.batch_size=0"], "data.batch_size=0"),
    ("siked", ["sampling.batch_size=0"], "sampling.batch_size=0"),
    ("eval", ["model=gpt2", "generation.batch_size=0"], "generation.batch_size=0"),
    ("train", ["data.val_fraction=1.5"], "data.val_fraction=1.5"),
    ("train", ["data.val_fraction=-0.1"], "data.val_fraction=-0.1"),
    ("train", ["data.val_fraction=0.5", "data.test_fraction=0.5"], "data.test_fraction=0.5"),
    ("train", ["trainer.max_steps=0"], "trainer.max_steps=0"),
    ("train", ["trainer.max_steps=-1"], "trainer.max_steps=-1"),  # -1 without max_epochs
    ("siked", ["steps.first=0"], "steps.first=0"),
    ("siked", ["iterations=0"], "iterations=0"),
    ("train", ["data._target_=magdi_lightning.data.task_datamodule.TaskDataModule"],
     "data._target_"),
    ("train", ["method=sft", "data._target_=magdi_lightning.data.task_datamodule.TaskDataModule"],
     "method._target_"),
    ("train", ["data.batch_unit=pair_rows"], "data.batch_unit=pair_rows"),
    ("train", ["method=tinyllm", "data=toy_rationales", "+data.packing=true"],
     "data.packing: not an option of TaskDataModule"),
    ("train", ["method.mode=typo"], "method.mode='typo'"),
    ("train", ["student=hf", "student.name_or_path=./models/missing"],
     "student.name_or_path='./models/missing': no such file or directory"),
    ("train", ["student=hf", "student.name_or_path=/nonexistent/mistral"],
     "student.name_or_path='/nonexistent/mistral'"),
    ("eval", ["model=outputs/train_x/student"], "model='outputs/train_x/student'"),
    ("eval", ["model=last.ckpt"], "model='last.ckpt'"),
    ("eval", [], "model: required"),
    ("train", ["data=graphs"], "data.graphs: required"),
    ("train", ["data=graphs", "data.graphs=missing.jsonl"], "data.graphs='missing.jsonl'"),
    ("siked", ["resume_dir=outputs/siked_missing"], "resume_dir='outputs/siked_missing'"),
]


@pytest.mark.parametrize(("primary", "overrides", "named"), BAD,
                         ids=[" ".join(case[1]) for case in BAD])
def test_a_bad_value_is_refused_naming_its_key(primary: str, overrides: list[str], named: str,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths resolve where nothing exists
    (tmp_path / "outputs").mkdir()
    with pytest.raises(UserError) as raised:
        check_config(_compose(primary, overrides))
    assert named in str(raised.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(UserError) as raised:
        check_config(_compose("train", ["optimizer.lr=-1", "data.batch_size=0"]))
    assert "optimizer.lr=-1" in str(raised.value) and "data.batch_size=0" in str(raised.value)


@pytest.mark.parametrize(("primary", "overrides"), [
    ("train", []), ("train", ["method=sft"]), ("train", ["method=magdi_reference"]),
    ("train", ["method=tinyllm", "data=toy_rationales"]),
    ("train", ["experiment=tinyllm/arc"]),  # Hub names are not paths
    ("train", ["optimizer.lr=0", "method.loss_weights.mr=0"]),  # an untrained baseline
    ("train", ["trainer.max_steps=-1", "trainer.max_epochs=1", "data.val_fraction=0"]),
    ("siked", []), ("siked", ["experiment=siked/qwen2_0.5b", "debug=tiny"]),
    ("eval", ["model=HuggingFaceTB/SmolLM2-135M-Instruct"]),
])
def test_the_shipped_configs_pass(primary: str, overrides: list[str]) -> None:
    check_config(_compose(primary, overrides))


def test_what_looks_like_a_local_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    for name in ("/abs/model", "./model", "../model", "~/model", "a/b/c", "models/mistral",
                 "run.ckpt"):
        assert looks_like_a_path(name), name
    for name in ("gpt2", "mistralai/Mistral-7B-Instruct-v0.2"):
        assert not looks_like_a_path(name), name


# --------------------------------------------------------------- the CLIs end cleanly

def _cli(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", f"magdi_lightning.cli.{module}", *args],
                          cwd=cwd, env={**env, "WANDB_SILENT": "true"}, capture_output=True,
                          text=True, timeout=600)


def test_magdi_train_ends_a_bad_graph_file_with_its_file_line_and_field(
        tmp_path: Path) -> None:
    from factories import hand_graphs

    good, bad = (graph.to_dict() for graph in hand_graphs()[:2])
    bad["nodes"][0]["round"] = "second"
    graphs = tmp_path / "graphs.jsonl"
    graphs.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    result = _cli("train", ["data=graphs", f"data.graphs={graphs}", "logger=csv"], tmp_path)
    assert result.returncode == USAGE_ERROR, result.stderr[-3000:]
    assert f"magdi-train: error: {graphs}:2: field 'nodes[0].round'" in result.stderr
    assert "Traceback" not in result.stderr


def test_magdi_train_ends_a_bad_value_before_any_work(tmp_path: Path) -> None:
    result = _cli("train", ["optimizer.lr=-3e-3"], tmp_path)
    assert result.returncode == USAGE_ERROR, result.stderr[-3000:]
    assert "magdi-train: error: invalid config" in result.stderr
    assert "optimizer.lr=-0.003: must be >= 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("outputs/train_*/run.json"))  # nothing was started


@pytest.mark.parametrize(("module", "prog", "args", "named"), [
    ("evaluate", "magdi-eval", ["model=./missing_student"], "model='./missing_student'"),
    ("siked", "magdi-siked", ["steps.later=0"], "steps.later=0"),
])
def test_magdi_eval_and_siked_end_a_user_error_with_exit_code_2(
        module: str, prog: str, args: list[str], named: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process, through Hydra as the console script runs it (an interpreter start per
    command is what makes the subprocess tests above slow)."""
    import importlib

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", [prog, *args, f"hydra.run.dir={tmp_path / 'run'}",
                                      "hydra.output_subdir=null", "hydra/job_logging=none",
                                      "hydra/hydra_logging=none"])
    with pytest.raises(SystemExit) as ended:
        importlib.import_module(f"magdi_lightning.cli.{module}").main()
    assert ended.value.code == USAGE_ERROR
    stderr = capsys.readouterr().err
    assert f"{prog}: error: invalid config" in stderr and named in stderr
    assert "Traceback" not in stderr
