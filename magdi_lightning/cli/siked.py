"""``magdi-siked``: SIKeD's self-guided iterations, end to end.

Iteration 1 trains the student on the teacher data of the training questions: per
question and strategy its first correct solution
(:func:`magdi_lightning.methods.siked.teacher_data`), all of them or one per question
(``selection``). After each iteration the student is
evaluated on held-out questions (free choice of strategy, and each strategy forced).
Each later iteration starts by letting the student sample ``sampling.samples_per_strategy``
solutions for every training question with each strategy's tag forced (temperature and
top-p as ``sampling``); its correct ones and teacher data, decided per (question,
strategy) by ``mixing`` (see :func:`magdi_lightning.methods.siked.mix`), form the iteration's
mixture, trained from the current weights. The run stops after ``iterations`` or once
held-out accuracy has not improved for ``patience`` iterations. A table of iteration,
training examples, alpha (the teacher share of the examples), student-correct share and
held-out accuracy per strategy is printed and kept in ``iterations.json``; ``metrics.json``
holds the last iteration's row, as every command's run directory does.

Everything lives under the run directory: ``iteration_<k>/train.jsonl`` (its mixture)
and ``mixture.json`` (alpha, student-correct share), ``iteration_<k>/checkpoints/``
(Lightning, every ``checkpoint_every`` steps),
``iteration_<k>/student.pt``, ``iteration_<k>/metrics.json`` and ``state.json``.
``resume_dir=<run directory>`` continues an interrupted run in the iteration it was in,
from that iteration's last checkpoint. The run directory also holds ``magdi-train``'s
``run.json`` and ``run.lock`` (:mod:`magdi_lightning.runtime.runs`), so a run still going is
never resumed by a second process.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig
from transformers import PreTrainedTokenizerBase

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.common import (
    build_datamodule,
    build_loggers,
    compile_student,
    print_table,
    student_recipe,
)
from magdi_lightning.cli.errors import user_errors
from magdi_lightning.data.task_datamodule import TaskDataModule
from magdi_lightning.evaluation.generation import Prediction, evaluate, generate
from magdi_lightning.evaluation.metrics import accuracy
from magdi_lightning.graph import ReasoningGraph, write_graphs
from magdi_lightning.io import write_json_atomically
from magdi_lightning.methods.siked import TRAINING_TASKS, mix, student_graphs, teacher_data
from magdi_lightning.models.student import Student
from magdi_lightning.questions import Question
from magdi_lightning.runtime.config_checks import check_config
from magdi_lightning.runtime.runs import RunLock, fingerprint, start_record
from magdi_lightning.runtime.tracking import finish_wandb, write_run_config
from magdi_lightning.strategies import tag

log = logging.getLogger(__name__)


def _questions(graphs: list[ReasoningGraph]) -> list[Question]:
    return [Question(id=g.id, question=g.question, gold=g.gold_answer, task=g.task)
            for g in graphs]


def held_out_accuracy(student: Student, source: TaskDataModule,
                      questions: list[Question], cfg: DictConfig) -> dict[str, Any]:
    """Free-choice accuracy, how often each strategy was chosen, and accuracy with each
    strategy forced."""
    settings = cfg.evaluate
    free: list[Prediction] = evaluate(student, source.formatter, questions,
                                      settings.batch_size, settings.max_new_tokens)
    chosen = Counter(p.strategy or "none" for p in free)
    result: dict[str, Any] = {"accuracy": accuracy([p.correct for p in free]).value,
                              "chosen": {s: n / len(free) for s, n in sorted(chosen.items())}}
    for strategy in cfg.strategies:
        outputs = generate(student, source.formatter, [q.question for q in questions],
                           settings.batch_size, settings.max_new_tokens,
                           response_start=tag(strategy))
        forced = _score(questions, [text for text, _ in outputs])
        result[f"accuracy/{strategy}"] = sum(forced) / len(forced) if forced else float("nan")
    return result


def _score(questions: list[Question], outputs: list[str]) -> list[bool]:
    samples = {q.id: [text] for q, text in zip(questions, outputs)}
    solved = student_graphs(questions, samples, iteration=0)
    return [q.id in solved for q in questions]


def sample_student(student: Student, source: TaskDataModule,
                   questions: list[Question], cfg: DictConfig) -> dict[str, list[str]]:
    """Every training question's sampled, tag-forced outputs, by question id."""
    settings = cfg.sampling
    repeated = [q for q in questions for _ in range(settings.samples_per_strategy)]
    samples: dict[str, list[str]] = {q.id: [] for q in questions}
    for strategy in cfg.strategies:
        outputs = generate(student, source.formatter, [q.question for q in repeated],
                           settings.batch_size, settings.max_new_tokens, do_sample=True,
                           temperature=settings.temperature, top_p=settings.top_p,
                           response_start=tag(strategy))
        for question, (text, _) in zip(repeated, outputs):
            samples[question.id].append(text)
    return samples


def training_set(source: TaskDataModule, strategies: list[str]
                 ) -> tuple[list[Question], list[ReasoningGraph]]:
    """The training questions of the set-up ``source`` and their teacher data."""
    train_graphs = [source.graph_list[i] for i in source.splits["train"]]
    return _questions(train_graphs), teacher_data(train_graphs, strategies)


def iteration_data(cfg: DictConfig, mixture_file: Path, tokenizer: PreTrainedTokenizerBase,
                   encoder_decoder: bool) -> TaskDataModule:
    """An iteration's training data: the configured data module (every ``data.`` option:
    prompt format, lengths, batch sizes, loaders) over the iteration's whole mixture, which
    is already SIKeD's selection, as tagged solutions (``magdi-inspect`` shows what it
    batches)."""
    return build_datamodule(cfg, tokenizer, encoder_decoder, graphs=str(mixture_file),
                            importer=None, max_graphs=None, val_fraction=0.0,
                            test_fraction=0.0, tasks=TRAINING_TASKS)


def run_siked(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run (or resume) the iterations; return the per-iteration table rows.

    The run directory takes ``magdi-train``'s run lock and record
    (:mod:`magdi_lightning.runtime.runs`): a second process on the same directory is refused,
    and ``run.json`` says whether the run finished and which wandb run it logs to.
    """
    check_config(cfg)
    run_dir = Path(cfg.resume_dir or cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):
        record = start_record(run_dir, fingerprint(cfg, cfg.paths.output_dir))
        rows = _iterate(cfg, run_dir, record.wandb_id)
        record.finish(run_dir)
    return rows


def _iterate(cfg: DictConfig, run_dir: Path, wandb_id: str) -> list[dict[str, Any]]:
    """The iterations not yet done in ``run_dir``, and the final table."""
    state_path = run_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"rows": []}
    if not state_path.exists():
        write_run_config(cfg, run_dir)
    L.seed_everything(cfg.seed, workers=True)

    student: Student = instantiate(cfg.student)
    source = build_datamodule(cfg, student.tokenizer, student.is_encoder_decoder)
    compile_student(student, cfg.get("compile"))
    source.setup()
    train_questions, teacher = training_set(source, cfg.strategies)
    test_questions = source.held_out_questions(cfg.evaluate.split)[: cfg.evaluate.max_questions]
    module = instantiate(cfg.method, student=student, student_config=student_recipe(cfg),
                         _convert_="all")
    rows: list[dict[str, Any]] = state["rows"]
    if "untrained_accuracy" not in state:
        untrained = evaluate(student, source.formatter, test_questions,
                             cfg.evaluate.batch_size, cfg.evaluate.max_new_tokens)
        state["untrained_accuracy"] = accuracy([p.correct for p in untrained]).value
        write_json_atomically(state_path, state)
    if rows:
        last = run_dir / f"iteration_{rows[-1]['iteration']}" / "student.pt"
        student.load_state_dict(torch.load(last, map_location="cpu", weights_only=True))
        log.info("resuming after iteration %d", rows[-1]["iteration"])

    for iteration in range(len(rows) + 1, cfg.iterations + 1):
        if rows and _stalled(rows, cfg.patience):
            log.info("held-out accuracy stopped improving; stopping before iteration %d",
                     iteration)
            break
        started = time.perf_counter()
        it_dir = run_dir / f"iteration_{iteration}"
        mixture_file = it_dir / "train.jsonl"
        it_dir.mkdir(parents=True, exist_ok=True)
        if not mixture_file.exists():
            own = ({} if iteration == 1 else student_graphs(
                train_questions, sample_student(student, source, train_questions, cfg),
                iteration - 1))
            mixture = mix(train_questions, teacher, own, cfg.mixing, cfg.selection)
            write_graphs(mixture_file, mixture.graphs)
            write_json_atomically(it_dir / "mixture.json", {
                "alpha": mixture.alpha,
                "student_correct_share": (None if iteration == 1
                                          else mixture.student_correct_share),
                "student_examples": mixture.student_examples,
                "teacher_examples": mixture.teacher_examples,
                "student_by_strategy": mixture.student_by_strategy,
                "teacher_by_strategy": mixture.teacher_by_strategy})
        composition = json.loads((it_dir / "mixture.json").read_text())
        data = iteration_data(cfg, mixture_file, student.tokenizer, student.is_encoder_decoder)
        steps = cfg.steps.first if iteration == 1 else cfg.steps.later
        trainer: L.Trainer = instantiate(
            cfg.trainer, max_steps=steps, limit_val_batches=0, val_check_interval=None,
            num_sanity_val_steps=0, default_root_dir=str(it_dir),
            logger=build_loggers(cfg.get("logger"), it_dir, wandb_id),
            callbacks=[ModelCheckpoint(dirpath=str(it_dir / "checkpoints"), save_last=True,
                                       save_top_k=0, every_n_train_steps=cfg.checkpoint_every)])
        last_ckpt = it_dir / "checkpoints" / "last.ckpt"
        trainer.fit(module, datamodule=data,
                    ckpt_path=str(last_ckpt) if last_ckpt.exists() else None)
        torch.save(student.state_dict(), it_dir / "student.pt")
        row = {"iteration": iteration, "training_examples": len(data.examples["train"]),
               **composition, **held_out_accuracy(student, source, test_questions, cfg),
               "seconds": round(time.perf_counter() - started, 1)}
        write_json_atomically(it_dir / "metrics.json", row)
        rows.append(row)
        write_json_atomically(state_path, {**state, "rows": rows})
        _print_table(rows, state["untrained_accuracy"])
    write_json_atomically(run_dir / "iterations.json",
                          {"untrained_accuracy": state["untrained_accuracy"], "iterations": rows})
    write_json_atomically(run_dir / "metrics.json",
                          run_metrics(rows, state["untrained_accuracy"]))
    print(f"run directory: {run_dir}")
    return rows


def run_metrics(rows: list[dict[str, Any]], untrained: float | None) -> dict[str, Any]:
    """The run's ``metrics.json``, as every command writes one (``magdi-report`` reads
    it): the last iteration's row, the untrained and the best held-out accuracy."""
    accuracies = [row["accuracy"] for row in rows
                  if isinstance(row.get("accuracy"), float) and math.isfinite(row["accuracy"])]
    return {"run_kind": "siked", **rows[-1], "untrained_accuracy": untrained,
            "best_accuracy": max(accuracies, default=None), "iterations": len(rows)}


def _stalled(rows: list[dict[str, Any]], patience: int) -> bool:
    """Whether the last ``patience`` iterations all failed to beat the best before them."""
    if len(rows) <= patience:
        return False
    best = max(row["accuracy"] for row in rows[:-patience])
    return all(row["accuracy"] <= best for row in rows[-patience:])


def _print_table(rows: list[dict[str, Any]], untrained: float) -> None:
    strategies = [k.split("/", 1)[1] for k in rows[0] if k.startswith("accuracy/")]
    columns = ("iter", "examples", "alpha", "student ok", "acc",
               *(f"acc {s}" for s in strategies), "chosen")
    cells = [(str(row["iteration"]), str(row["training_examples"]), f"{row['alpha']:.2f}",
              "-" if row["student_correct_share"] is None
              else f"{row['student_correct_share']:.1%}",
              f"{row['accuracy']:.1%}", *(f"{row[f'accuracy/{s}']:.1%}" for s in strategies),
              " ".join(f"{s} {v:.0%}" for s, v in row["chosen"].items())) for row in rows]
    print_table("magdi-siked: held-out accuracy per iteration", columns, cells,
                caption=f"untrained student: {untrained:.1%}", width=120)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="siked")
def _hydra_main(cfg: DictConfig) -> float:
    with user_errors("magdi-siked"):
        try:
            return float(run_siked(cfg)[-1]["accuracy"])
        finally:
            finish_wandb()


def main() -> None:
    """Console entry point (Hydra parses ``sys.argv``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
