"""NT + unlikelihood: learn the correct teacher responses, unlearn the incorrect ones.

On graph batches: the next-token loss (NT) on the response tokens of correct nodes, as
``method=sft``, plus ``unlikelihood_weight`` x the token-level unlikelihood loss of
Welleck et al. (ICLR 2020), ``-log(1 - p(token))``, on the response tokens of incorrect
nodes. Each is a mean over a graph's nodes' tokens, then over the graphs that have such
nodes. The student runs once per batch, packed or not.
"""

from __future__ import annotations

from typing import Any

import torch

from magdi_lightning.data.batch import CORRECT, INCORRECT, GraphBatch
from magdi_lightning.data.datamodule import GraphDataModule
from magdi_lightning.errors import UserError
from magdi_lightning.losses import mean_over_graphs
from magdi_lightning.methods.base import MethodModule
from magdi_lightning.methods.magdi import graph_hidden_states, node_token_loss_per_graph
from magdi_lightning.models.student import Student

#: 1 - p is clamped to this before the log, so a token the student is sure of costs at most
#: -log(1e-5), not infinity.
MIN_COMPLEMENT = 1e-5


def unlikelihood(cross_entropy: torch.Tensor) -> torch.Tensor:
    """``-log(1 - p)`` per token from its cross-entropy ``-log p`` (``1 - p = -expm1(-CE)``)."""
    return -torch.log((-torch.expm1(-cross_entropy)).clamp(min=MIN_COMPLEMENT))


class UnlikelihoodModule(MethodModule):
    """``loss = nt + unlikelihood_weight * ul``; ``settings`` are the base's."""

    datamodule_class = GraphDataModule

    def __init__(self, student: Student, unlikelihood_weight: float = 0.1,
                 **settings: Any) -> None:
        super().__init__(student, **settings)
        if unlikelihood_weight < 0:
            raise UserError(f"method.unlikelihood_weight={unlikelihood_weight}: must be >= 0")
        self.unlikelihood_weight = unlikelihood_weight

    def compute_losses(self, batch: GraphBatch) -> dict[str, torch.Tensor]:
        hidden = graph_hidden_states(self.student, batch)  # one student pass
        out = {"nt": node_token_loss_per_graph(self.student, batch, hidden, CORRECT),
               "ul": node_token_loss_per_graph(self.student, batch, hidden, INCORRECT,
                                               unlikelihood)}
        out = {name: mean_over_graphs(values) for name, values in out.items()}
        out["loss"] = out["nt"] + self.unlikelihood_weight * out["ul"]
        return out

    def on_fit_start(self) -> None:
        # With data.mask_prompt=false the labelled tokens include the shared prompt, which
        # NT would teach (correct nodes) and UL unteach (incorrect nodes) at once.
        if not self.trainer.datamodule.mask_prompt:
            raise UserError("method=unlikelihood needs data.mask_prompt=true")
