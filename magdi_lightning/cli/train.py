"""``magdi-train``: compose the config, train, evaluate, and write the run directory.

The run directory (``outputs/train_<timestamp>_<job>``) holds the resolved config,
``metrics.json``, ``predictions.jsonl``, Lightning checkpoints, the trained student in
Hugging Face format and the logger's files.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig, OmegaConf

from magdi_lightning import CONFIG_DIR
from magdi_lightning.evaluation.generation import accuracy_of, evaluate

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig | None, output_dir: Path) -> list[Logger]:
    """The configured loggers; a logger that cannot start is replaced by CSV."""
    loggers: list[Logger] = []
    for name, spec in (cfg or {}).items():
        try:
            logger = instantiate(spec)
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


def finish_wandb() -> None:
    """Close any wandb run so the next job of a multirun starts a fresh one."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says; return the metrics written to metrics.json."""
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)

    student = instantiate(cfg.student)
    datamodule = instantiate(cfg.data, tokenizer=student.tokenizer,
                             encoder_decoder=student.is_encoder_decoder)
    student_config = student_recipe(cfg)
    module = instantiate(cfg.method, student=student, student_config=student_config,
                         _convert_="all")
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=build_loggers(cfg.get("logger"), output_dir),
        callbacks=[instantiate(c) for c in (cfg.get("callbacks") or {}).values()])
    datamodule.setup("fit")

    evaluation = cfg.evaluate
    questions = datamodule.held_out_questions(evaluation.split)[: evaluation.max_questions]

    def accuracy() -> tuple[float, list[Any]]:
        predictions = evaluate(student, datamodule.formatter, questions,
                               evaluation.batch_size, evaluation.max_new_tokens)
        return accuracy_of(predictions), predictions

    metrics: dict[str, Any] = {"output_dir": str(output_dir), "heldout_questions": len(questions)}
    if evaluation.before_training:
        metrics["heldout_accuracy_untrained"], _ = accuracy()
    fit_started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics["fit_seconds"] = round(time.perf_counter() - fit_started, 1)
    metrics["global_step"] = trainer.global_step
    metrics.update({key: round(float(value), 5)
                    for key, value in trainer.callback_metrics.items() if value.numel() == 1})
    metrics["heldout_accuracy"], predictions = accuracy()
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)

    student.save_pretrained(output_dir / "student")
    with (output_dir / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction.__dict__, ensure_ascii=False) + "\n")
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for logger in trainer.loggers:
        logger.log_metrics({f"heldout/{k}": v for k, v in metrics.items()
                            if k.startswith("heldout_accuracy")}, step=trainer.global_step)
    _print_summary(metrics)
    return metrics


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
    try:
        return float(train(cfg)["heldout_accuracy"])
    finally:
        finish_wandb()


def main() -> None:
    """Console entry point (Hydra parses ``sys.argv``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
