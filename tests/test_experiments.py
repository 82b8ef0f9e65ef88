"""Every shipped configuration composes, and every paper experiment runs with debug=tiny.

Part 1 composes each primary config (train, siked, eval, debate) and every option of every
config group under conf/ (found on disk, so configs added later are covered too), and
resolves the result. Part 2 runs each ``conf/experiment`` file through its real entry point
(``magdi-train`` or, for ``experiment/siked``, ``magdi-siked``) with ``debug=tiny``: a tiny
random-init student of the experiment's family on CPU, toy data where the experiment's data
comes from magdi-debate, TinyLLM's real shared sets otherwise. Each run must finish (its
metrics are written) with the experiment's hyper-parameters and LoRA settings in force.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from magdi_lightning import CONFIG_DIR

CONF = Path(CONFIG_DIR)
PRIMARIES = ("train", "siked", "eval", "debate")
#: Mandatory values (``???``) that other values interpolate, filled so the config resolves.
FILLED = {
    "eval": ["model=MODEL"],
    "teachers=openai_compatible": ["teachers.base_url=http://localhost:8000/v1",
                                   "teachers.model=MODEL"],
    "teachers=tiny_local": ["teachers.model=MODEL"],
}
#: Hydra plugins an option file may need, by a word its text contains.
PLUGINS = {"submitit": "hydra_plugins.hydra_submitit_launcher",
           "joblib": "hydra_plugins.hydra_joblib_launcher",
           "ray": "hydra_plugins.hydra_ray_launcher",
           "rq": "hydra_plugins.hydra_rq_launcher",
           "optuna": "hydra_plugins.hydra_optuna_sweeper",
           "nevergrad": "hydra_plugins.hydra_nevergrad_sweeper",
           "ax": "hydra_plugins.hydra_ax_sweeper"}
EXPERIMENTS = sorted(str(p.relative_to(CONF / "experiment").with_suffix(""))
                     for p in (CONF / "experiment").rglob("*.yaml")
                     if not p.name.startswith("_"))
#: The learning rate and LoRA setting each paper prescribes (the issue's settings).
PAPER = {
    "magdi": {"lr": 5e-6, "lora": {"r": 16, "lora_alpha": 32,
                                   "target_modules": ["q_proj", "v_proj"]}},
    "tinyllm": {"lr": 5e-5, "lora": None},
    "siked": {"lr": 2e-4, "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
                                   "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"]}},
}
#: Experiments whose learning rate differs from their paper's (SIKeD's reference trains
#: Qwen2 at 3e-4: fine-tuning/iter1_configs/qwen2-*/selsamp.yaml:41).
LR = {"siked/qwen2_0.5b": 3e-4, "siked/qwen2_1.5b": 3e-4}
HUB_NAMES = {
    "magdi": {"mistralai/Mistral-7B-Instruct-v0.2"},
    "tinyllm": {"google/flan-t5-small", "google/flan-t5-base", "google/flan-t5-large"},
    "siked": {"google/gemma-2b-it", "google/gemma-7b-it", "Qwen/Qwen2-0.5B-Instruct",
              "Qwen/Qwen2-1.5B-Instruct", "HuggingFaceTB/SmolLM-1.7B-Instruct"},
}


# --------------------------------------------------------------------------- composing
def _compose(primary: str, overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=primary, overrides=overrides, return_hydra_config=True)


def _resolved(cfg: Any) -> dict[str, Any]:
    """The config without its hydra node, every interpolation resolved (``???`` kept)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(out, dict)
    return out


def _groups() -> dict[str, set[str]]:
    """Each primary's config groups (its own and Hydra's, e.g. hydra/launcher)."""
    return {primary: set(_compose(primary, FILLED.get(primary, [])).hydra.runtime.choices)
            for primary in PRIMARIES}


def _option_files() -> list[Path]:
    return sorted(p for p in CONF.rglob("*.yaml") if p.parent != CONF)


def _group_option(path: Path, known: set[str]) -> tuple[str, str]:
    """(group, option) of an option file: the longest known group its folder starts with
    (``experiment/magdi/gsm8k.yaml`` -> ``experiment``, ``magdi/gsm8k``); a folder no
    primary selects is a group of its own (appended with ``+``)."""
    parts = path.relative_to(CONF).with_suffix("").parts
    for cut in range(len(parts) - 1, 0, -1):
        group = "/".join(parts[:cut])
        if group in known:
            return group, "/".join(parts[cut:])
    return "/".join(parts[:-1]), parts[-1]


def _missing_plugin(path: Path) -> str | None:
    text = path.read_text()
    for word, module in PLUGINS.items():
        if re.search(rf"\b{word}\b", text) and importlib.util.find_spec(module) is None:
            return module
    return None


def test_primary_configs_compose_and_resolve() -> None:
    for primary in PRIMARIES:
        cfg = _resolved(_compose(primary, FILLED.get(primary, [])))
        assert cfg["paths"]["log_dir"], primary


def test_every_group_option_composes_and_resolves() -> None:
    """Every option file under conf/, with each primary that selects its group."""
    groups = _groups()
    known = set().union(*groups.values())
    composed: list[str] = []
    skipped: list[str] = []
    for path in _option_files():
        group, option = _group_option(path, known)
        primaries = [p for p in PRIMARIES if group in groups[p]] or ["train"]
        if group == "experiment":  # each experiment belongs to one entry point
            primaries = ["siked" if option.startswith("siked/") else "train"]
        override = f"{group}={option}" if group in known else f"+{group}={option}"
        for primary in primaries:
            overrides = [override, *FILLED.get(primary, []), *FILLED.get(override, [])]
            try:
                _resolved(_compose(primary, overrides))
            except Exception as err:
                plugin = _missing_plugin(path)
                if plugin is None:
                    raise AssertionError(f"{primary} {' '.join(overrides)}: {err}") from err
                skipped.append(f"{override} ({plugin} not installed: {err})")
                continue
            composed.append(f"{primary}: {override}")
    if skipped:
        print("skipped, plugin missing:", *skipped, sep="\n  ")
    assert len(composed) >= len(_option_files()) - len(skipped)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_sets_the_paper_setting(experiment: str) -> None:
    """Without debug: the Hub model, the paper's learning rate, LoRA and loss weights."""
    method = experiment.split("/")[0]
    cfg = _resolved(_compose("siked" if method == "siked" else "train",
                             [f"experiment={experiment}"]))
    assert cfg["student"]["name_or_path"] in HUB_NAMES[method]
    assert cfg["optimizer"]["lr"] == LR.get(experiment, PAPER[method]["lr"])
    _assert_lora(cfg["student"]["lora"], PAPER[method]["lora"])
    assert cfg["tags"][0] == method and cfg["tags"][1] == experiment.split("/")[1]
    assert cfg["trainer"]["accelerator"] == "gpu"
    if method == "magdi":
        assert cfg["method"]["loss_weights"] == {"nt": 1.0, "nc": 1.0, "mr": 0.1}
        # 2 graphs per step: the reference's steps per epoch (16 pair rows per step) at
        # 8 rows per graph; all 1,000 graphs trained on, the reference's node text.
        assert cfg["data"]["batch_size"] == 2
        assert cfg["trainer"]["accumulate_grad_batches"] == 1
        assert (cfg["data"]["val_fraction"], cfg["data"]["test_fraction"]) == (0.0, 0.0)
        assert cfg["data"]["remove_agreement"] and cfg["data"]["always_state_answer"]
        assert cfg["data"]["template"].startswith("[INST] ### Question:")
        assert (cfg["trainer"]["max_steps"], cfg["trainer"]["max_epochs"]) == (-1, 10)
        assert cfg["scheduler"]["warmup_steps"] == 100
        assert "/teachers/reconcile-" in cfg["data"]["graphs"]  # where magdi-debate writes
    elif method == "siked":
        assert cfg["sampling"]["samples_per_strategy"] == 10
        assert (cfg["sampling"]["top_p"], cfg["sampling"]["max_new_tokens"]) == (0.95, 512)
        assert (cfg["optimizer"]["weight_decay"], cfg["scheduler"]["warmup_steps"]) == (0.01, 5)
        assert cfg["trainer"]["max_epochs"] == 3
        assert cfg["steps"] == {"first": -1, "later": -1}
    else:
        weights = cfg["method"]["task_weights"]
        assert {"answer", "rationale/flan_t5", "rationale/llama2"} <= set(weights)


def test_experiment_models_are_overridable_by_local_paths() -> None:
    cfg = _resolved(_compose("train", ["experiment=tinyllm/riddle", "student=flan_t5_large",
                                       "student.name_or_path=/models/flan-t5-large"]))
    assert cfg["student"]["name_or_path"] == "/models/flan-t5-large"
    assert cfg["student"]["model_type"] == "t5"
    assert cfg["tags"] == ["tinyllm", "riddle"]


def _assert_lora(lora: dict[str, Any] | None, expected: dict[str, Any] | None) -> None:
    if expected is None:
        assert lora is None
        return
    assert lora is not None
    assert {key: lora[key] for key in expected} == expected


# --------------------------------------------------------------------------- running
def _entry_point(experiment: str) -> str:
    return "siked" if experiment.startswith("siked/") else "train"


def _uses_shared_data(experiment: str) -> bool:
    """Whether the experiment's data under debug=tiny reads ../shared/data."""
    from omegaconf import OmegaConf

    cfg = _compose(_entry_point(experiment), [f"experiment={experiment}", "debug=tiny"])
    return "paths.shared_data" in OmegaConf.to_yaml(cfg.data)


def _run(module: str, args: list[str], cwd: Path, shared_data: Path | None) -> None:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    if shared_data is not None:
        env["MAGDI_SHARED_DATA"] = str(shared_data)
    result = subprocess.run([sys.executable, "-m", f"magdi_lightning.cli.{module}",
                             "--multirun", *args, "hydra/launcher=basic"], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _jobs(root: Path) -> dict[str, Path]:
    """Each multirun job's directory, by its experiment override."""
    jobs: dict[str, Path] = {}
    for overrides in root.rglob(".hydra/overrides.yaml"):
        for item in yaml.safe_load(overrides.read_text()):
            if item.startswith("experiment="):
                jobs[item.split("=", 1)[1]] = overrides.parent.parent
    return jobs


def _check_run(experiment: str, run: Path) -> None:
    """The run finished with the experiment's settings on the tiny stand-in."""
    method = experiment.split("/")[0]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["tags"] == experiment.split("/")
    assert cfg["optimizer"]["lr"] == LR.get(experiment, PAPER[method]["lr"])
    student = cfg["student"]
    assert student["name_or_path"] is None and student["architecture"]
    assert student["model_type"] == ("t5" if method == "tinyllm" else "llama")
    _assert_lora(student["lora"], PAPER[method]["lora"])
    assert cfg["trainer"]["accelerator"] == "cpu"
    if method == "siked":
        rows = json.loads((run / "iterations.json").read_text())["iterations"]
        assert [row["iteration"] for row in rows] == [1, 2]  # sampling and mixing ran
        assert rows[1]["student_correct_share"] is not None
        assert cfg["sampling"]["samples_per_strategy"] == 10
        assert (run / "iteration_2" / "student.pt").exists()
        return
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 5 and metrics["train/loss"] > 0
    if method == "magdi":
        assert cfg["method"]["loss_weights"] == {"nt": 1.0, "nc": 1.0, "mr": 0.1}
        assert cfg["trainer"]["accumulate_grad_batches"] == 1
        assert {"train/nt", "train/mr", "train/nc"} <= set(metrics)
        adapter = json.loads((run / "student" / "adapter_config.json").read_text())
        assert (adapter["r"], adapter["lora_alpha"]) == (16, 32)
        assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    else:
        assert not (run / "student" / "adapter_config.json").exists()  # full fine-tuning
        assert {"train/answer", "train/rationale/flan_t5", "train/rationale/llama2"} \
            <= set(metrics)


@pytest.mark.parametrize("method", sorted({e.split("/")[0] for e in EXPERIMENTS}))
def test_every_experiment_runs_with_debug_tiny(method: str, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    """All experiments of a method in one multirun of the real entry point."""
    experiments = [e for e in EXPERIMENTS if e.split("/")[0] == method]
    shared = (request.getfixturevalue("shared_data")
              if any(map(_uses_shared_data, experiments)) else None)
    entry_point = _entry_point(experiments[0])
    _run(entry_point, [f"experiment={','.join(experiments)}", "debug=tiny",
                       *(["logger=csv"] if entry_point == "train" else [])], tmp_path, shared)
    jobs = _jobs(tmp_path / "outputs")
    assert sorted(jobs) == experiments
    for experiment, run in jobs.items():
        _check_run(experiment, run)


def test_epoch_schedules_run(tmp_path: Path) -> None:
    """The papers count epochs (MAGDi 10, SIKeD 3 per iteration): with max_steps -1 the
    trainer stops on epochs and the warm-up + linear decay spans exactly those steps."""
    _run("train", ["experiment=magdi/gsm8k", "debug=tiny", "logger=csv",
                   "trainer.max_steps=-1", "trainer.max_epochs=1",
                   "trainer.val_check_interval=1.0", "scheduler.warmup_steps=2"],
         tmp_path / "magdi", None)
    (run,) = _jobs(tmp_path / "magdi" / "outputs").values()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] > 5  # the epochs decided, not debug's 5 steps
    assert metrics["lr-AdamW"] == 0.0  # the schedule ended on the last step

    _run("siked", ["experiment=siked/qwen2_0.5b", "debug=tiny", "steps.first=-1",
                   "iterations=1", "data.batch_size=32", "checkpoint_every=1"],
         tmp_path / "siked", None)
    (run,) = _jobs(tmp_path / "siked" / "outputs").values()
    import torch

    checkpoint = torch.load(run / "iteration_1" / "checkpoints" / "last.ckpt",
                            map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 2 and checkpoint["global_step"] > 3  # 3 epochs, not 3 steps
