"""What the command-line tools build the same way: loggers, the student's recipe, the
data module, compilation. ``magdi-train``, ``magdi-siked`` and ``magdi-inspect`` call these,
so one config means one data module and one student whichever command reads it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase

from magdi_lightning.data.datamodule import SourceDataModule
from magdi_lightning.models.blocks import compile_blocks
from magdi_lightning.models.student import Student
from magdi_lightning.runtime.tracking import sweep_group, wandb_mode

__all__ = ["build_datamodule", "build_loggers", "compile_student", "print_table",
           "student_recipe"]

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig | None, output_dir: Path,
                  wandb_id: str | None = None) -> list[Logger]:
    """The configured loggers; a logger that cannot start is replaced by CSV.

    wandb follows :mod:`magdi_lightning.runtime.tracking`: ``mode: auto`` (offline without an API
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
                     encoder_decoder: bool, **overrides: Any) -> SourceDataModule:
    """The configured data module for a student with this tokenizer (``magdi-inspect``
    builds the very module training does, from the tokenizer alone); ``overrides``
    replace config keys (``magdi-siked`` points each iteration at its mixture)."""
    return instantiate(cfg.data, tokenizer=tokenizer, encoder_decoder=encoder_decoder,
                       **overrides)


def compile_student(student: Student, settings: DictConfig | None) -> None:
    """Compile the student's transformer blocks in place when ``compile.enabled`` says so
    (``conf/compile``); the weights' names, and so checkpoints, stay as they are."""
    if settings and settings.enabled:
        count = compile_blocks(student.model, dynamic=settings.dynamic, mode=settings.mode)
        log.info("compiled %d transformer blocks (dynamic=%s, mode=%s)", count,
                 settings.dynamic, settings.mode)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                caption: str | None = None, footer: str | None = None,
                show_header: bool = True, width: int | None = None) -> None:
    """A command's end-of-run summary as a rich table on stdout, then ``footer`` (the run
    directory, say) on a line of its own that is never wrapped, so it can be copied."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, show_header=show_header)
    for column in columns:
        table.add_column(column, no_wrap=width is not None)
    for row in rows:
        table.add_row(*row)
    console = Console(width=width)
    console.print(table)
    if footer is not None:
        console.print(footer, soft_wrap=True)
