"""``magdi-eval``: answer benchmarks with a student and write metrics and predictions.

``model`` is a Hugging Face model directory (a run's ``student/``), a LoRA adapter
directory, a Hub name, or a Lightning checkpoint (``.ckpt``) written by ``magdi-train``.
``benchmark`` selects one or several configs (``benchmark=[gsm8k,svamp,asdiv]``).

The run directory holds ``config.yaml``, ``metrics.json`` (per benchmark: accuracy with
its 95% Wilson interval, self-consistency accuracy when ``self_consistency.k`` > 1,
generated tokens per question, and per strategy how often the student chose it and its
accuracy then; given the teachers' graphs, the token-efficiency report),
``predictions.jsonl`` (benchmark, question, output, strategy, extracted answer, gold,
correct), ``accuracy.png`` and ``tokens.png``; the metrics, plots and a table of sample
generations also go to wandb.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from statistics import fmean
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.errors import user_errors
from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.errors import UserError
from magdi_lightning.evaluation.generation import Prediction, evaluate, sampling_settings
from magdi_lightning.evaluation.metrics import Accuracy, accuracy
from magdi_lightning.evaluation.reports import (
    log_to_wandb,
    strategy_report,
    teacher_tokens_per_question,
    token_efficiency,
    write_accuracy_plot,
    write_token_plot,
)
from magdi_lightning.graph import read_graphs
from magdi_lightning.io import write_json_atomically, write_lines_atomically
from magdi_lightning.models.student import Student, load_student, load_student_from_checkpoint
from magdi_lightning.runtime.config_checks import check_config
from magdi_lightning.runtime.tracking import (
    wandb_run,
    write_run_config,
)
from magdi_lightning.sources.question_sets import load_benchmark


def load_model(cfg: DictConfig) -> Student:
    """The student ``cfg.model`` names: a ``.ckpt`` of a training run, a GGUF file (a path
    or ``<package>/<file>.gguf``, e.g. the base SmolLM2 of ``student=smollm2_135m``), or
    anything :func:`load_student` loads."""
    if str(cfg.model).endswith(".ckpt"):
        return load_student_from_checkpoint(cfg.model)
    if str(cfg.model).endswith(".gguf"):
        return load_student(gguf=cfg.model, tokenizer=cfg.tokenizer,
                            torch_dtype=cfg.torch_dtype)
    return load_student(name_or_path=cfg.model, tokenizer=cfg.tokenizer,
                        torch_dtype=cfg.torch_dtype)


def benchmark_metrics(predictions: list[Prediction], self_consistency: int) -> dict[str, Any]:
    """Accuracy, self-consistency accuracy, output length and per-strategy figures of
    one benchmark's predictions."""
    metrics: dict[str, Any] = {
        **accuracy([p.correct for p in predictions]).as_dict(),
        "mean_output_tokens": (fmean(p.output_tokens for p in predictions)
                               if predictions else float("nan")),
    }
    if self_consistency > 1:
        vote = accuracy([bool(p.vote_correct) for p in predictions])
        metrics["self_consistency"] = {"k": self_consistency, **vote.as_dict()}
    strategies = strategy_report(predictions)
    if strategies:
        metrics["strategies"] = strategies
    return metrics


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate as ``cfg`` says; return the metrics written to metrics.json."""
    check_config(cfg)
    if not cfg.get("benchmark"):  # benchmark=[] leaves the key out altogether
        raise UserError("benchmark: none selected (pass benchmark=NAME or benchmark=[A,B])")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_run_config(cfg, output_dir)
    L.seed_everything(cfg.seed)
    student = load_model(cfg)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" \
        else cfg.device
    student.model.to(device)
    formatter = PromptFormatter(student.tokenizer, cfg.template, cfg.use_chat_template,
                                cfg.prefix)

    metrics: dict[str, Any] = {"run_kind": "eval", "model": str(cfg.model), "benchmarks": {}}
    results: dict[str, Accuracy] = {}
    predictions: list[tuple[str, Prediction]] = []
    for key, benchmark in cfg.benchmark.items():
        loader = OmegaConf.to_container(benchmark.loader, resolve=True)
        examples = load_benchmark(benchmark.name, limit=cfg.limit, **loader)
        answered = evaluate(student, formatter, examples, cfg.generation.batch_size,
                            cfg.generation.max_new_tokens, cfg.self_consistency.k,
                            cfg.self_consistency.temperature, sampling_settings(cfg.generation))
        metrics["benchmarks"][key] = benchmark_metrics(answered, cfg.self_consistency.k)
        results[key] = accuracy([p.correct for p in answered])
        predictions.extend((key, p) for p in answered)
        print(f"{key}: accuracy {results[key]}" + (
            f"; self-consistency@{cfg.self_consistency.k} "
            f"{metrics['benchmarks'][key]['self_consistency']['accuracy']:.1%}"
            if cfg.self_consistency.k > 1 else ""))
    metrics["mean_accuracy"] = fmean(r.value for r in results.values())

    plots = {"accuracy": write_accuracy_plot(results, output_dir / "accuracy.png")}
    if cfg.teacher_graphs:
        teachers = teacher_tokens_per_question(read_graphs(cfg.teacher_graphs), student.tokenizer)
        metrics["token_efficiency"] = token_efficiency([p for _, p in predictions], teachers)
        if metrics["token_efficiency"]["matched_questions"]:
            plots["tokens"] = write_token_plot(metrics["token_efficiency"],
                                               output_dir / "tokens.png")
    with wandb_run(cfg, output_dir) as run:
        log_to_wandb(run, metrics, [p for _, p in predictions], plots)
    write_lines_atomically(output_dir / "predictions.jsonl",
                           (json.dumps({"benchmark": key, **asdict(p)}, ensure_ascii=False)
                            for key, p in predictions))
    write_json_atomically(output_dir / "metrics.json", metrics)
    print(f"run directory: {output_dir}")
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def _hydra_main(cfg: DictConfig) -> float:
    with user_errors("magdi-eval"):
        return float(run_evaluation(cfg)["mean_accuracy"])


def main() -> None:
    """Console entry point (Hydra parses ``sys.argv``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
