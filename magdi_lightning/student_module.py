"""What every training method's LightningModule shares: the student, AdamW with a
warm-up schedule, loss logging, and the recipe that rebuilds the student from a
checkpoint."""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
from transformers import get_scheduler

from magdi_lightning.models.student import Student

__all__ = ["StudentModule"]


class StudentModule(L.LightningModule):
    """Base of the methods' modules.

    ``optimizer`` holds ``torch.optim.AdamW`` keywords, ``scheduler`` a
    ``transformers.get_scheduler`` name, ``warmup_steps`` and its other keywords (the
    schedule spans the trainer's estimated steps). ``student_config`` (the keywords the
    student was built with) is only stored in the checkpoint's hyper-parameters, so
    :func:`~magdi_lightning.models.student.load_student_from_checkpoint` can rebuild the
    student from a ``.ckpt`` alone. Subclasses call ``save_hyperparameters`` themselves,
    and name in ``datamodule_class`` the data module whose batches their steps take (so a
    config pairing a method with data it cannot read fails when composed, not at step 1).
    """

    datamodule_class: ClassVar[type[L.LightningDataModule]]

    def __init__(self, student: Student, optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.student = student
        self.optimizer_settings = {"lr": 5e-6, "weight_decay": 0.0, **(optimizer or {})}
        self.scheduler_settings = {"name": "linear", "warmup_steps": 100, **(scheduler or {})}

    def log_losses(self, stage: str, losses: dict[str, torch.Tensor], size: int) -> None:
        """Log each value under ``<stage>/<name>``; NaN (undefined here) is skipped.

        With several processes each value is first averaged over the processes where it
        is defined (one ``all_gather`` per step), so every rank logs the same figures and
        curves show the whole global batch rather than rank 0's share of it.
        """
        names = sorted(losses)
        values = torch.stack([losses[name].detach().float() for name in names])
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            values = self.all_gather(values).nanmean(dim=0)
        for name, value in zip(names, values):
            if not torch.isnan(value):
                self.log(f"{stage}/{name}", value, batch_size=size,
                         prog_bar=name == "loss", on_step=stage == "train",
                         on_epoch=stage != "train")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, **self.optimizer_settings)
        settings = dict(self.scheduler_settings)
        scheduler = get_scheduler(
            settings.pop("name"), optimizer, num_warmup_steps=settings.pop("warmup_steps"),
            num_training_steps=self.trainer.estimated_stepping_batches, **settings)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
