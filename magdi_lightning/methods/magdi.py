"""The LightningModule: one student, a graph encoder and MAGDi's three losses.

End-to-end mode (the default) runs the student once over the unique node sequences of
a batch and derives everything from that one pass:

- NT: next-token loss on correct nodes' response tokens; the LM head runs only at
  those positions, never over the full ``[nodes, length, vocab]`` grid;
- MR: a margin ranking loss between the scores of (correct, incorrect) pairs of the
  same graph, scored from position-weighted mean-pooled node embeddings;
- NC: node-correctness classification by the graph encoder over the same embeddings.

Gradients of all three reach the student. ``mode="reference"`` (``method=
magdi_reference``) computes the MAGDi reference code's losses on its batches for
comparison: (positive, negative) pair rows (:mod:`magdi_lightning.data.pair_rows`) run
through the student in two full forwards, NT over every labelled token of the positives,
MR over the rows, NC from node features frozen before training (so NC never reaches the
student). ``tests/test_reference_losses.py`` checks each against values derived by hand
from the reference's definitions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from magdi_lightning.data.batch import CORRECT, GraphBatch
from magdi_lightning.data.datamodule import GraphDataModule
from magdi_lightning.data.pair_rows import PairRowBatch, left_pad
from magdi_lightning.losses import (
    IGNORE_INDEX,
    margin_ranking_loss,
    mean_over_graphs,
    node_classification_loss,
    per_graph_mean,
    position_weighted_mean_pool,
    sequence_weighted_mean_pool,
)
from magdi_lightning.methods.base import MethodModule
from magdi_lightning.models.graph_encoder import GraphEncoder
from magdi_lightning.models.packed_attention import PackedLayout
from magdi_lightning.models.student import Student

__all__ = ["DistillationModule", "graph_hidden_states", "node_token_loss_per_graph"]

#: The modes, and the ``data.batch_unit`` each trains on.
MODE_BATCH_UNITS = {"end_to_end": "graphs", "reference": "pair_rows"}
MODES = tuple(MODE_BATCH_UNITS)
#: The reference drops rows whose negative has at most this many tokens from MR (its
#: "NA" padding negative), unless every row of the batch has such a negative.
REFERENCE_PADDING_NEGATIVE_TOKENS = 5
#: Nodes per forward when the reference precomputes its frozen node features.
REFERENCE_FEATURE_BATCH = 50

log = logging.getLogger(__name__)


class DistillationModule(MethodModule):
    """Trains a student on graph batches with weighted NT, MR and NC losses.

    ``graph_encoder`` builds the encoder from the student's hidden size; it is only
    built when the NC weight is non-zero, and the MR scorer only when the MR weight is,
    so ``method=sft`` (NT alone) carries no unused parameters. ``settings`` (optimizer,
    scheduler, student_config) are :class:`~magdi_lightning.methods.base.MethodModule`'s.
    """

    datamodule_class = GraphDataModule
    not_hyperparameters = ("student", "graph_encoder")
    #: The losses ``loss_weights`` weighs (a config naming another is refused).
    LOSSES = ("nt", "nc", "mr")
    #: What :mod:`magdi_lightning.runtime.config_checks` pairs ``method.mode`` with.
    MODE_BATCH_UNITS = MODE_BATCH_UNITS

    def __init__(
        self,
        student: Student,
        graph_encoder: Callable[[int], GraphEncoder] | None = None,
        loss_weights: dict[str, float] | None = None,
        margin: float = 1.0,
        mode: str = "end_to_end",
        **settings: Any,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        super().__init__(student, **settings)
        self.weights = {"nt": 1.0, "nc": 1.0, "mr": 0.1, **(loss_weights or {})}
        self.margin = margin
        self.mode = mode
        hidden = student.hidden_size
        self.graph_encoder = (graph_encoder(hidden) if self.weights["nc"] and graph_encoder
                              else None)
        if self.weights["nc"] and self.graph_encoder is None:
            raise ValueError("a non-zero NC weight needs a graph_encoder")
        self.scorer = (nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1),
                                     nn.Tanh()) if self.weights["mr"] else None)
        self.frozen_features: torch.Tensor | None = None

    # ------------------------------------------------------------------ losses
    def compute_losses(self, batch: GraphBatch) -> dict[str, torch.Tensor]:
        """Weighted total (``loss``), each loss, NC accuracy and MR pair accuracy."""
        if self.mode == "reference":
            return self._reference_losses(batch)
        per_graph, out = self.per_graph_losses(batch)
        for name, values in per_graph.items():
            out[name] = mean_over_graphs(values)
        out["loss"] = sum(self.weights[name] * out[name] for name in per_graph)
        return out

    def per_graph_losses(self, batch: GraphBatch
                         ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Each loss per graph (``[num_graphs]``, NaN where undefined) from one student
        pass, and the batch's NC and MR accuracies."""
        hidden = graph_hidden_states(self.student, batch)
        per_graph = {"nt": node_token_loss_per_graph(self.student, batch, hidden, CORRECT)}
        accuracies: dict[str, torch.Tensor] = {}
        if self.graph_encoder is not None or self.scorer is not None:
            pooled = _pooled(hidden, batch)[batch.node_to_seq]
            if self.graph_encoder is not None:
                per_graph["nc"], accuracies["nc_acc"] = self._node_classification(batch, pooled)
            if self.scorer is not None:
                per_graph["mr"], accuracies["mr_acc"] = self._margin_ranking(batch, pooled)
        return per_graph, accuracies

    def _node_classification(self, batch: GraphBatch, features: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.graph_encoder is not None
        logits = self.graph_encoder(features, batch.graph.edge_index)
        labelled = batch.node_labels != IGNORE_INDEX
        loss = node_classification_loss(logits, batch.node_labels)
        per_graph = per_graph_mean(loss, labelled, batch.node_graph, batch.num_graphs)
        hits = (logits.argmax(-1) == batch.node_labels)[labelled].float()
        accuracy = hits.mean() if hits.numel() else hits.new_tensor(float("nan"))
        return per_graph, accuracy

    def _margin_ranking(self, batch: GraphBatch, pooled: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.scorer is not None
        scores = self.scorer(pooled).squeeze(-1)
        positive, negative = scores[batch.pairs[0]], scores[batch.pairs[1]]
        loss = margin_ranking_loss(positive, negative, self.margin)
        per_graph = per_graph_mean(loss, torch.ones_like(loss), batch.pair_graph,
                                   batch.num_graphs)
        accuracy = ((positive > negative).float().mean() if loss.numel()
                    else loss.new_tensor(float("nan")))
        return per_graph, accuracy

    # ------------------------------------------------------- reference mode
    def _reference_losses(self, batch: PairRowBatch) -> dict[str, torch.Tensor]:
        """The MAGDi reference code's losses (dinobby/MAGDi ``model.py``, ``MAGDi.forward``)
        on its pair rows.

        NT: the Hugging Face causal-LM loss of the positives (mean over every labelled
        token of the batch; the whole sequence unless ``data.mask_prompt``). MR: the
        mean hinge ``max(0, margin - (s+ - s-))`` over the rows, scores from
        :func:`position_weighted_mean_pool` of the left-padded rows (a token's weight is
        its column, so padding shifts it, as in the reference), rows whose negative has at
        most 5 tokens (the "NA" padding negative) left out unless no row has more. NC:
        cross-entropy over every labelled node of the rows' graphs, from node features
        frozen before training.
        """
        if not isinstance(batch, PairRowBatch):
            raise ValueError("mode=reference trains on the reference's pair rows; set "
                             "data.batch_unit=pair_rows (method=magdi_reference does)")
        positive = self.student(batch.positive_ids, batch.positive_mask,
                                labels=batch.positive_labels)
        out: dict[str, torch.Tensor] = {"nt": positive.loss}
        if self.scorer is not None:
            negative = self.student(batch.negative_ids, batch.negative_mask)
            pos_emb = position_weighted_mean_pool(positive.hidden_states[-1],
                                                  batch.positive_mask)
            neg_emb = position_weighted_mean_pool(negative.hidden_states[-1],
                                                  batch.negative_mask)
            real = batch.negative_mask.sum(dim=1) > REFERENCE_PADDING_NEGATIVE_TOKENS
            if real.any():
                pos_emb, neg_emb = pos_emb[real], neg_emb[real]
            pos_score = self.scorer(pos_emb).squeeze(-1)
            neg_score = self.scorer(neg_emb).squeeze(-1)
            out["mr"] = margin_ranking_loss(pos_score, neg_score, self.margin).mean()
            out["mr_acc"] = (pos_score > neg_score).float().mean()
        if self.graph_encoder is not None:
            features = self._frozen_features_for(batch)
            logits = self.graph_encoder(features, batch.graph.edge_index)
            labelled = batch.node_labels != IGNORE_INDEX
            out["nc"] = node_classification_loss(logits, batch.node_labels)[labelled].mean()
            out["nc_acc"] = (logits.argmax(-1) == batch.node_labels)[labelled].float().mean()
        out["loss"] = sum(self.weights[name] * out[name] for name in ("nt", "mr", "nc")
                          if name in out)
        return out

    def _frozen_features_for(self, batch: PairRowBatch) -> torch.Tensor:
        if self.frozen_features is None:
            raise RuntimeError("reference mode needs frozen node features; they are computed "
                               "in on_fit_start from the datamodule")
        return self.frozen_features[batch.node_uids.cpu()].to(self.device)

    @torch.no_grad()
    def precompute_node_features(self, sequences: list[torch.Tensor],
                                 pad_token_id: int) -> None:
        """Every node's pooled embedding by the current (initial) student, frozen, as the
        reference's ``get_node_emb.py`` makes them: the node sequences in dataset order,
        in left-padded batches of 50, pooled with column weights."""
        was_training = self.student.training
        self.student.eval()
        chunks = []
        for start in range(0, len(sequences), REFERENCE_FEATURE_BATCH):
            ids, mask = left_pad(sequences[start:start + REFERENCE_FEATURE_BATCH],
                                 pad_token_id)
            ids, mask = ids.to(self.device), mask.to(self.device)
            hidden = self.student(ids, mask).hidden_states[-1]
            chunks.append(position_weighted_mean_pool(hidden, mask).float().cpu())
        self.student.train(was_training)
        self.frozen_features = torch.cat(chunks)

    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        if (self.mode == "reference"
                and getattr(datamodule, "batch_unit", None) != MODE_BATCH_UNITS["reference"]):
            raise ValueError("mode=reference trains on the reference's pair rows; set "
                             "data.batch_unit=pair_rows (method=magdi_reference does)")
        if self.mode == "reference" and self.graph_encoder is not None \
                and self.frozen_features is None:
            self.precompute_node_features(datamodule.node_sequences(),
                                          datamodule.tokenizer.pad_token_id)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.frozen_features is not None:
            checkpoint["frozen_node_features"] = self.frozen_features

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.frozen_features = checkpoint.get("frozen_node_features")

def graph_hidden_states(student: Student, batch: GraphBatch) -> torch.Tensor:
    """The student's final hidden states over a graph batch, packed or not: one pass over
    its distinct sequences, from which every graph loss is derived."""
    layout = (PackedLayout.build(batch.prompt_tokens, batch.response_tokens, batch.seq_prompt)
              if batch.packed else None)
    return student.hidden_states(batch.input_ids, None if batch.packed else batch.attention_mask,
                                 batch.position_ids, layout)


def node_token_loss_per_graph(
    student: Student, batch: GraphBatch, hidden: torch.Tensor, label: int,
    token_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Per graph (``[num_graphs]``, NaN for a graph without such nodes), the mean over the
    labelled tokens of its nodes labelled ``label`` of ``token_loss(cross-entropy)``
    (the cross-entropy itself by default: MAGDi's NT on ``CORRECT`` nodes). The LM head
    runs at those tokens only; a sequence shared by several nodes counts once per node."""
    nodes = (batch.node_labels == label).nonzero().squeeze(1)
    node_seqs = batch.node_to_seq[nodes]
    needed = torch.zeros(batch.num_seqs, dtype=torch.bool, device=hidden.device)
    needed[node_seqs] = True
    keep = needed[batch.target_seq]
    seqs = batch.target_seq[keep]
    losses = student.token_losses(hidden.flatten(0, 1)[batch.target_index[keep]],
                                  batch.target_ids[keep])
    if token_loss is not None:
        losses = token_loss(losses)
    seq_sum = losses.new_zeros(batch.num_seqs).index_add(0, seqs, losses)
    seq_count = losses.new_zeros(batch.num_seqs).index_add(0, seqs, torch.ones_like(losses))
    return per_graph_mean(seq_sum[node_seqs], seq_count[node_seqs], batch.node_graph[nodes],
                          batch.num_graphs)


def _pooled(hidden: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    """Position-weighted mean embedding ``[U, hidden]`` of every sequence of the batch."""
    return sequence_weighted_mean_pool(hidden, batch.position_ids, batch.prompt_tokens,
                                       batch.response_tokens, batch.seq_prompt)
