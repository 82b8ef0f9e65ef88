"""``magdi-train``: compose the config, train, evaluate, and write the run directory.

The run directory (``outputs/train_<timestamp>_<job>``) holds the resolved config,
``metrics.json``, ``predictions.jsonl``, Lightning checkpoints, the trained student in
Hugging Face format and the logger's files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.errors import user_errors
from magdi_lightning.config_checks import check_config
from magdi_lightning.data.datamodule import MAGDataModule
from magdi_lightning.data.pair_rows import rows_of
from magdi_lightning.evaluation.generation import accuracy_of, evaluate, sampling_settings
from magdi_lightning.io import write_lines_atomically
from magdi_lightning.models.blocks import compile_blocks
from magdi_lightning.models.student import Student
from magdi_lightning.runs import RunLock, RunRecord, fingerprint, resolve_checkpoint, start_record
from magdi_lightning.tracking import finish_wandb, redacted_config, sweep_group, wandb_mode

log = logging.getLogger(__name__)
# How global rank 0 tells the other ranks which checkpoint it resumes from.
_CHECKPOINT_ENV = "MAGDI_RESUME_CHECKPOINT"


def build_loggers(cfg: DictConfig | None, output_dir: Path,
                  wandb_id: str | None = None) -> list[Logger]:
    """The configured loggers; a logger that cannot start is replaced by CSV.

    wandb follows :mod:`magdi_lightning.tracking`: ``mode: auto`` (offline without an API
    key), the multirun's group, and ``wandb_id`` (a resumed run continues its run).
    """
    loggers: list[Logger] = []
    for name, spec in (cfg or {}).items():
        overrides: dict[str, Any] = {}
        if spec.get("_target_", "").endswith("WandbLogger"):
            overrides = {"mode": wandb_mode(spec.get("mode")), "id": wandb_id,
                         "group": spec.get("group") or sweep_group()}
        try:
            logger = instantiate(spec, **overrides)
            _ = logger.experiment  # start it now, so a failure surfaces here
            loggers.append(logger)
        except Exception as err:
            log.warning("logger %s could not start (%s); logging to CSV instead", name, err)
            loggers.append(CSVLogger(save_dir=str(output_dir), name="csv"))
    return loggers


def student_recipe(cfg: DictConfig) -> dict[str, Any]:
    """The student's ``load_student`` keywords, stored in checkpoints so a ``.ckpt`` alone
    can be evaluated (without ``_target_``, which instantiate would build into a model)."""
    spec = OmegaConf.to_container(cfg.student, resolve=True)
    assert isinstance(spec, dict)
    return {str(key): value for key, value in spec.items() if key != "_target_"}


def build_datamodule(cfg: DictConfig, tokenizer: PreTrainedTokenizerBase,
                     encoder_decoder: bool) -> MAGDataModule:
    """The configured data module for a student with this tokenizer (``magdi-inspect``
    builds the very module training does, from the tokenizer alone)."""
    return instantiate(cfg.data, tokenizer=tokenizer, encoder_decoder=encoder_decoder)


def compile_student(student: Student, settings: DictConfig | None) -> None:
    """Compile the student's transformer blocks in place when ``compile.enabled`` says so
    (``conf/compile``); the weights' names, and so checkpoints, stay as they are."""
    if settings and settings.enabled:
        count = compile_blocks(student.model, dynamic=settings.dynamic, mode=settings.mode)
        log.info("compiled %d transformer blocks (dynamic=%s, mode=%s)", count,
                 settings.dynamic, settings.mode)


def _start_run(cfg: DictConfig, output_dir: Path) -> tuple[RunRecord, Path | None]:
    """Find what to resume, take it over and write this run's record (global rank 0, its
    run lock held); see :mod:`magdi_lightning.runs`.

    The checkpoint is handed to the other ranks through the environment, since they may
    start (Lightning's DDP launcher re-runs this command) once this run's own record exists.
    """
    digest = fingerprint(cfg, output_dir)
    resume = resolve_checkpoint(cfg.get("ckpt_path"), output_dir, Path(cfg.paths.log_dir),
                                digest, claim=True)
    record = start_record(output_dir, digest, resume)
    if resume is None:
        return record, None
    os.environ[_CHECKPOINT_ENV] = str(resume.checkpoint)
    source = resume.run_dir
    what = ("this run's own directory" if source == output_dir
            else f"the crashed run {source} (now marked resumed)" if source
            else "a checkpoint outside any run")
    log.info("ckpt_path=%s: resuming %s from %s, continuing wandb run %s",
             cfg.get("ckpt_path"), what, resume.checkpoint, record.wandb_id)
    return record, resume.checkpoint


def _leaders_checkpoint(cfg: DictConfig, output_dir: Path) -> Path | None:
    """The checkpoint global rank 0 resumes from, as another rank learns it: from the
    environment (Lightning's launcher starts the ranks from rank 0), else looked up as
    rank 0 chose it, without taking anything over (srun starts every rank itself)."""
    inherited = os.environ.get(_CHECKPOINT_ENV)
    if inherited:
        return Path(inherited)
    resume = resolve_checkpoint(cfg.get("ckpt_path"), output_dir, Path(cfg.paths.log_dir),
                                fingerprint(cfg, output_dir))
    return resume.checkpoint if resume else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says; return the metrics written to metrics.json.

    Every process of a multi-process run trains; only global rank 0 claims the run
    directory, evaluates and writes files (the others return an empty dict).
    """
    check_config(cfg)
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    if rank_zero_only.rank != 0:
        return _train(cfg, output_dir, _leaders_checkpoint(cfg, output_dir), None, started)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    with RunLock(output_dir):
        record, checkpoint = _start_run(cfg, output_dir)
        return _train(cfg, output_dir, checkpoint, record, started)


def _train(cfg: DictConfig, output_dir: Path, checkpoint: Path | None,
           record: RunRecord | None, started: float) -> dict[str, Any]:
    student = instantiate(cfg.student)
    datamodule = build_datamodule(cfg, student.tokenizer, student.is_encoder_decoder)
    compile_student(student, cfg.get("compile"))
    student_config = student_recipe(cfg)
    module = instantiate(cfg.method, student=student, student_config=student_config,
                         _convert_="all")
    # Every rank builds the loggers (they write on rank 0 only; callbacks need them).
    loggers = build_loggers(cfg.get("logger"), output_dir, record.wandb_id if record else None)
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=loggers,
        callbacks=[instantiate(c) for c in (cfg.get("callbacks") or {}).values()])
    for logger in trainer.loggers:
        logger.log_hyperparams(redacted_config(cfg))
    datamodule.setup("fit")

    _log_reference_batching(datamodule, cfg)
    evaluation = cfg.evaluate
    questions = datamodule.held_out_questions(evaluation.split)[: evaluation.max_questions]
    if not questions:
        log.info("no held-out questions in the %s split (data.*_fraction=0): evaluate the "
                 "saved student with magdi-eval", evaluation.split)

    def accuracy() -> tuple[float, list[Any]]:
        predictions = evaluate(student, datamodule.formatter, questions,
                               evaluation.batch_size, evaluation.max_new_tokens,
                               sampling=sampling_settings(evaluation))
        return accuracy_of(predictions), predictions

    metrics: dict[str, Any] = {"output_dir": str(output_dir), "heldout_questions": len(questions)}
    if record is not None and evaluation.before_training:
        if record.untrained_accuracy is None:
            record.untrained_accuracy, _ = accuracy()
            record.write(output_dir)
        metrics["heldout_accuracy_untrained"] = record.untrained_accuracy
    fit_started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule,
                ckpt_path=str(checkpoint) if checkpoint else None)
    if record is None:
        return {}
    metrics["resumed_from"] = record.resumed_from
    metrics["fit_seconds"] = round(time.perf_counter() - fit_started, 1)
    metrics["global_step"] = trainer.global_step
    metrics.update({key: round(float(value), 5)
                    for key, value in trainer.callback_metrics.items() if value.numel() == 1})
    metrics["heldout_accuracy"], predictions = accuracy()
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)

    student.save_pretrained(output_dir / "student")
    write_lines_atomically(output_dir / "predictions.jsonl",
                           (json.dumps(p.__dict__, ensure_ascii=False) for p in predictions))
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    record.finish(output_dir)
    for logger in trainer.loggers:
        logger.log_metrics({f"heldout/{k}": v for k, v in metrics.items()
                            if k.startswith("heldout_accuracy")}, step=trainer.global_step)
    _print_summary(metrics)
    return metrics


#: Pair rows per optimizer step in the MAGDi reference (``train.py``: per-device batch 4,
#: gradient accumulation 4).
REFERENCE_ROWS_PER_UPDATE = 16


def _log_reference_batching(datamodule: Any, cfg: DictConfig) -> None:
    """For graph batches, this run's optimizer steps per epoch beside the MAGDi
    reference's on the same training graphs (it batches pair rows, not graphs), so an
    experiment config can match them (see the README's fidelity table)."""
    if getattr(datamodule, "batch_unit", None) != "graphs":
        return
    graphs = datamodule.examples["train"]
    rows = sum(rows_of(graph.node_labels.tolist()) for graph in graphs)
    per_update = datamodule.batch_size * cfg.trainer.get("accumulate_grad_batches", 1)
    log.info("optimizer steps per epoch: %d (%d graphs, %d per step); the MAGDi reference "
             "batching of the same graphs: %d (%d pair rows, %d per step)",
             math.ceil(len(graphs) / per_update), len(graphs), per_update,
             math.ceil(rows / REFERENCE_ROWS_PER_UPDATE), rows, REFERENCE_ROWS_PER_UPDATE)


def _print_summary(metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="magdi-train summary", show_header=False)
    for key in sorted(k for k in metrics if k.startswith(("train/", "val/"))):
        table.add_row(key, f"{metrics[key]:.4f}")
    untrained = metrics.get("heldout_accuracy_untrained")
    trained = f"{metrics['heldout_accuracy']:.1%}"
    table.add_row(f"held-out accuracy ({metrics['heldout_questions']} questions)",
                  f"{untrained:.1%} untrained -> {trained}" if untrained is not None else trained)
    table.add_row("steps / fit time", f"{metrics['global_step']} / {metrics['fit_seconds']} s")
    console = Console()
    console.print(table)
    console.print(f"run directory: {metrics['output_dir']}", soft_wrap=True)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    with user_errors("magdi-train"):
        try:
            return float(train(cfg).get("heldout_accuracy", float("nan")))
        finally:
            finish_wandb()


def main() -> None:
    """Console entry point (Hydra parses ``sys.argv``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
