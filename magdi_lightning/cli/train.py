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
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.common import (
    build_datamodule,
    build_loggers,
    compile_student,
    print_table,
    student_recipe,
)
from magdi_lightning.cli.errors import user_errors
from magdi_lightning.data.pair_rows import rows_of
from magdi_lightning.evaluation.generation import evaluate, sampling_settings
from magdi_lightning.evaluation.metrics import accuracy
from magdi_lightning.io import write_json_atomically, write_lines_atomically
from magdi_lightning.runtime.config_checks import check_config
from magdi_lightning.runtime.runs import (
    RunLock,
    RunRecord,
    fingerprint,
    resolve_checkpoint,
    start_record,
)
from magdi_lightning.runtime.tracking import finish_wandb, redacted_config, write_run_config

log = logging.getLogger(__name__)
# How global rank 0 tells the other ranks which checkpoint it resumes from.
_CHECKPOINT_ENV = "MAGDI_RESUME_CHECKPOINT"


def _start_run(cfg: DictConfig, output_dir: Path) -> tuple[RunRecord, Path | None]:
    """Find what to resume, take it over and write this run's record (global rank 0, its
    run lock held); see :mod:`magdi_lightning.runtime.runs`.

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
    write_run_config(cfg, output_dir)
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

    def held_out_accuracy() -> tuple[float, list[Any]]:
        predictions = evaluate(student, datamodule.formatter, questions,
                               evaluation.batch_size, evaluation.max_new_tokens,
                               sampling=sampling_settings(evaluation))
        return accuracy([p.correct for p in predictions]).value, predictions

    metrics: dict[str, Any] = {"run_kind": "train", "output_dir": str(output_dir),
                               "heldout_questions": len(questions)}
    if record is not None and evaluation.before_training:
        if record.untrained_accuracy is None:
            record.untrained_accuracy, _ = held_out_accuracy()
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
    metrics["heldout_accuracy"], predictions = held_out_accuracy()
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)

    student.save_pretrained(output_dir / "student")
    write_lines_atomically(output_dir / "predictions.jsonl",
                           (json.dumps(p.__dict__, ensure_ascii=False) for p in predictions))
    write_json_atomically(output_dir / "metrics.json", metrics)
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
    experiment config can match them (see docs/fidelity.md)."""
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
    rows = [(key, f"{metrics[key]:.4f}")
            for key in sorted(k for k in metrics if k.startswith(("train/", "val/")))]
    untrained = metrics.get("heldout_accuracy_untrained")
    trained = f"{metrics['heldout_accuracy']:.1%}"
    rows.append((f"held-out accuracy ({metrics['heldout_questions']} questions)",
                 f"{untrained:.1%} untrained -> {trained}" if untrained is not None else trained))
    rows.append(("steps / fit time", f"{metrics['global_step']} / {metrics['fit_seconds']} s"))
    print_table("magdi-train summary", ("metric", "value"), rows, show_header=False,
                footer=f"run directory: {metrics['output_dir']}")


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
