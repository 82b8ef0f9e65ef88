"""The contract every training method follows, and what all of them share.

A method is a subclass of :class:`MethodModule` that

1. names in ``datamodule_class`` the data module whose batches it trains on (a
   :class:`~magdi_lightning.data.datamodule.SourceDataModule` subclass:
   ``GraphDataModule`` for graph batches, ``TaskDataModule`` for (prompt, target) pairs),
   so a config pairing it with data it cannot read fails when composed
   (:mod:`magdi_lightning.runtime.config_checks`), not at step 1;
2. takes ``student`` first, its own keywords next, and passes ``**settings``
   (``optimizer``, ``scheduler``, ``student_config``) on to ``super().__init__``;
3. implements :meth:`MethodModule.compute_losses`: a batch in, a dict of scalar tensors
   out, ``loss`` the one to minimise; NaN marks a value undefined for this batch.

The base then saves every constructor keyword as hyper-parameters (with
``student_config``, the recipe :func:`~magdi_lightning.models.student.
load_student_from_checkpoint` rebuilds the student from a ``.ckpt`` alone), builds AdamW
and its warm-up schedule, and runs the training, validation and test steps from
``compute_losses``, logging each value under ``<stage>/<name>``. docs/add-a-method.md walks
through a fourth method in one module and one YAML.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
from transformers import get_scheduler

from magdi_lightning.models.student import Student

__all__ = ["MethodModule"]


class MethodModule(L.LightningModule):
    """Base of the methods' modules.

    ``optimizer`` holds ``torch.optim.AdamW`` keywords, ``scheduler`` a
    ``transformers.get_scheduler`` name, ``warmup_steps`` and its other keywords (the
    schedule spans the trainer's estimated steps). ``student_config`` (the keywords the
    student was built with) is only stored in the checkpoint's hyper-parameters.
    """

    #: The data module whose batches :meth:`compute_losses` takes.
    datamodule_class: ClassVar[type[L.LightningDataModule]]
    #: Constructor arguments that are modules or factories, not hyper-parameters.
    not_hyperparameters: ClassVar[tuple[str, ...]] = ("student",)

    def __init__(self, student: Student, optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None,
                 student_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        # Lightning collects the keywords of every __init__ up the subclass chain.
        self.save_hyperparameters(ignore=list(self.not_hyperparameters))
        self.student = student
        self.optimizer_settings = {"lr": 5e-6, "weight_decay": 0.0, **(optimizer or {})}
        self.scheduler_settings = {"name": "linear", "warmup_steps": 100, **(scheduler or {})}

    def compute_losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """Every loss and metric of ``batch``; ``loss`` is minimised."""
        raise NotImplementedError

    def batch_size(self, batch: Any) -> int:
        """How many examples ``batch`` holds, the weight of its logged values."""
        return batch.size

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        losses = self.compute_losses(batch)
        self.log_losses("train", losses, self.batch_size(batch))
        return losses["loss"]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log_losses("val", self.compute_losses(batch), self.batch_size(batch))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log_losses("test", self.compute_losses(batch), self.batch_size(batch))

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
