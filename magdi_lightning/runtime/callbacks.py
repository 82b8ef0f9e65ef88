"""Lightning callbacks the configs add to every run."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

__all__ = ["StepSeeding"]


class StepSeeding(L.Callback):
    """Seeds python, numpy and torch (all devices) before every training batch from
    ``(seed, epoch, batch index, global rank)``.

    Lightning's checkpoints restore weights, optimizer, scheduler, loops and (with a
    stateful loader) the data position, but not the generators dropout draws from; and
    saving them would not be enough, since a resumed run consumes random numbers an
    uninterrupted one does not (building fresh data-loader iterators, for one). Seeding
    each batch from its position makes it draw the same numbers however the run got
    there, so a resumed run continues exactly as the uninterrupted one would have.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        entropy = [self.seed, trainer.current_epoch, batch_idx, trainer.global_rank]
        batch_seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        random.seed(batch_seed)
        np.random.seed(batch_seed)
        torch.manual_seed(batch_seed)
