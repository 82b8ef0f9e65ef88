"""``magdi-eval``: answer a benchmark with a student and write metrics and predictions.

The run directory holds ``config.yaml``, ``metrics.json`` (accuracy with its 95% Wilson
interval, self-consistency accuracy when ``self_consistency.k`` > 1, generated tokens per
question and, given the teachers' graphs, the token-efficiency report),
``predictions.jsonl`` (question, output, extracted answer, gold, correct), ``accuracy.png``
and ``tokens.png``; the metrics, plots and a table of sample generations also go to wandb.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from magdi_lightning import CONFIG_DIR
from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.evaluation.benchmarks import load_benchmark
from magdi_lightning.evaluation.generation import evaluate
from magdi_lightning.evaluation.metrics import accuracy
from magdi_lightning.evaluation.reports import (
    log_to_wandb,
    teacher_tokens_per_question,
    token_efficiency,
    write_accuracy_plot,
    write_token_plot,
)
from magdi_lightning.graph import read_graphs
from magdi_lightning.io import write_lines_atomically
from magdi_lightning.models.student import load_student


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate as ``cfg`` says; return the metrics written to metrics.json."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed)
    student = load_student(name_or_path=cfg.model, tokenizer=cfg.tokenizer,
                           torch_dtype=cfg.torch_dtype)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" \
        else cfg.device
    student.model.to(device)
    loader = OmegaConf.to_container(cfg.benchmark.loader, resolve=True)
    examples = load_benchmark(cfg.benchmark.name, limit=cfg.limit, **loader)
    formatter = PromptFormatter(student.tokenizer, cfg.template, cfg.use_chat_template)
    predictions = evaluate(student, formatter, examples, cfg.generation.batch_size,
                           cfg.generation.max_new_tokens, cfg.self_consistency.k,
                           cfg.self_consistency.temperature)

    greedy = accuracy([p.correct for p in predictions])
    metrics: dict[str, Any] = {
        "benchmark": cfg.benchmark.name, "model": str(cfg.model), **greedy.as_dict(),
        "mean_output_tokens": (sum(p.output_tokens for p in predictions) / len(predictions)
                               if predictions else float("nan")),
    }
    if cfg.self_consistency.k > 1:
        vote = accuracy([bool(p.vote_correct) for p in predictions])
        metrics["self_consistency"] = {"k": cfg.self_consistency.k, **vote.as_dict()}
    plots = {"accuracy": write_accuracy_plot({cfg.benchmark.name: greedy},
                                             output_dir / "accuracy.png")}
    if cfg.teacher_graphs:
        teachers = teacher_tokens_per_question(read_graphs(cfg.teacher_graphs), student.tokenizer)
        metrics["token_efficiency"] = token_efficiency(predictions, teachers)
        if metrics["token_efficiency"]["matched_questions"]:
            plots["tokens"] = write_token_plot(metrics["token_efficiency"],
                                               output_dir / "tokens.png")
    _log_to_wandb(cfg, output_dir, metrics, predictions, plots)
    write_lines_atomically(output_dir / "predictions.jsonl",
                           (json.dumps(asdict(p), ensure_ascii=False) for p in predictions))
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{cfg.benchmark.name}: accuracy {greedy}"
          + (f"; self-consistency@{cfg.self_consistency.k} {vote}"
             if cfg.self_consistency.k > 1 else ""))
    print(f"run directory: {output_dir}")
    return metrics


def _log_to_wandb(cfg: DictConfig, output_dir: Path, metrics: dict[str, Any],
                  predictions: list[Any], plots: dict[str, Path]) -> None:
    if cfg.wandb.mode == "disabled":
        return
    import wandb

    run = wandb.init(project=cfg.wandb.project, mode=cfg.wandb.mode, dir=str(output_dir),
                     job_type=cfg.task_name, config=OmegaConf.to_container(cfg, resolve=True))
    try:
        log_to_wandb(run, metrics, predictions, plots)
    finally:
        run.finish()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def _hydra_main(cfg: DictConfig) -> float:
    return float(run_evaluation(cfg)["accuracy"])


def main() -> None:
    """Console entry point (Hydra parses ``sys.argv``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
