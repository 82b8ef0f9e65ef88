"""The LightningModule: one student, a graph encoder and MAGDi's three losses.

End-to-end mode (the default) runs the student once over the unique node sequences of
a batch and derives everything from that one pass:

- NT: next-token loss on correct nodes' response tokens; the LM head runs only at
  those positions, never over the full ``[nodes, length, vocab]`` grid;
- MR: a margin ranking loss between the scores of (correct, incorrect) pairs of the
  same graph, scored from position-weighted mean-pooled node embeddings;
- NC: node-correctness classification by the graph encoder over the same embeddings.

Gradients of all three reach the student. ``mode="reference"`` reproduces the MAGDi
reference code's batching for comparison: frozen node features computed once before
training (NC never reaches the student), positives and negatives replicated to equal
counts per graph and run through the student in two full forwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from magdi_lightning.data.batch import CORRECT, INCORRECT, GraphBatch
from magdi_lightning.losses import (
    IGNORE_INDEX,
    margin_ranking_loss,
    mean_over_graphs,
    node_classification_loss,
    per_graph_mean,
    position_weighted_mean_pool,
    sequence_weighted_mean_pool,
)
from magdi_lightning.models.graph_encoder import GraphEncoder
from magdi_lightning.models.packed_attention import PackedLayout
from magdi_lightning.models.student import Student
from magdi_lightning.student_module import StudentModule

__all__ = ["DistillationModule"]

MODES = ("end_to_end", "reference")

log = logging.getLogger(__name__)


class DistillationModule(StudentModule):
    """Trains a student on graph batches with weighted NT, MR and NC losses.

    ``graph_encoder`` builds the encoder from the student's hidden size; it is only
    built when the NC weight is non-zero, and the MR scorer only when the MR weight is,
    so ``method=sft`` (NT alone) carries no unused parameters. ``optimizer``,
    ``scheduler`` and ``student_config`` are as in :class:`StudentModule`.
    """

    def __init__(
        self,
        student: Student,
        graph_encoder: Callable[[int], GraphEncoder] | None = None,
        loss_weights: dict[str, float] | None = None,
        margin: float = 1.0,
        mode: str = "end_to_end",
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        student_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(student, optimizer, scheduler)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.save_hyperparameters(ignore=["student", "graph_encoder"])
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
        hidden = self._hidden_states(batch)
        per_graph = {"nt": self._next_token_per_graph(batch, hidden)}
        accuracies: dict[str, torch.Tensor] = {}
        if self.graph_encoder is not None or self.scorer is not None:
            pooled = _pooled(hidden, batch)[batch.node_to_seq]
            if self.graph_encoder is not None:
                per_graph["nc"], accuracies["nc_acc"] = self._node_classification(batch, pooled)
            if self.scorer is not None:
                per_graph["mr"], accuracies["mr_acc"] = self._margin_ranking(batch, pooled)
        return per_graph, accuracies

    def _hidden_states(self, batch: GraphBatch) -> torch.Tensor:
        layout = (PackedLayout.build(batch.prompt_tokens, batch.response_tokens,
                                     batch.seq_prompt) if batch.packed else None)
        return self.student.hidden_states(
            batch.input_ids, None if batch.packed else batch.attention_mask,
            batch.position_ids, layout)

    def _next_token_per_graph(self, batch: GraphBatch, hidden: torch.Tensor) -> torch.Tensor:
        """Mean next-token loss over each graph's correct nodes' labelled tokens; the LM
        head runs at those tokens only."""
        correct_nodes = (batch.node_labels == CORRECT).nonzero().squeeze(1)
        node_seqs = batch.node_to_seq[correct_nodes]
        needed = torch.zeros(batch.num_seqs, dtype=torch.bool, device=hidden.device)
        needed[node_seqs] = True
        keep = needed[batch.target_seq]
        seqs = batch.target_seq[keep]
        token_loss = self.student.token_losses(hidden.flatten(0, 1)[batch.target_index[keep]],
                                               batch.target_ids[keep])
        seq_sum = token_loss.new_zeros(batch.num_seqs).index_add(0, seqs, token_loss)
        seq_count = token_loss.new_zeros(batch.num_seqs).index_add(
            0, seqs, torch.ones_like(token_loss))
        return per_graph_mean(seq_sum[node_seqs], seq_count[node_seqs],
                              batch.node_graph[correct_nodes], batch.num_graphs)

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
    def _reference_losses(self, batch: GraphBatch) -> dict[str, torch.Tensor]:
        """The MAGDi reference's computation, kept for side-by-side comparison."""
        if batch.packed:
            raise ValueError("reference mode runs one sequence per row; set "
                             "data.packing=false")
        positive_rows, negative_rows = _replicated_pairs(batch)
        attention_mask = batch.attention_mask
        out: dict[str, torch.Tensor] = {}
        terms = []
        if positive_rows.numel():
            positive = self.student(batch.input_ids[positive_rows],
                                    attention_mask[positive_rows],
                                    labels=batch.labels[positive_rows])
            out["nt"] = positive.loss
            terms.append(self.weights["nt"] * positive.loss)
        if self.scorer is not None and negative_rows.numel():
            paired = positive_rows[: negative_rows.numel()]
            negative = self.student(batch.input_ids[negative_rows],
                                    attention_mask[negative_rows])
            pos_emb = position_weighted_mean_pool(positive.hidden_states[-1][: paired.numel()],
                                                  attention_mask[paired])
            neg_emb = position_weighted_mean_pool(negative.hidden_states[-1],
                                                  attention_mask[negative_rows])
            pos_score, neg_score = self.scorer(pos_emb), self.scorer(neg_emb)
            out["mr"] = margin_ranking_loss(pos_score, neg_score, self.margin).mean()
            out["mr_acc"] = (pos_score > neg_score).float().mean()
            terms.append(self.weights["mr"] * out["mr"])
        if self.graph_encoder is not None:
            features = self._frozen_features_for(batch)
            per_graph, out["nc_acc"] = self._node_classification(batch, features)
            out["nc"] = mean_over_graphs(per_graph)
            terms.append(self.weights["nc"] * out["nc"])
        out["loss"] = sum(terms) if terms else batch.input_ids.new_zeros((), dtype=torch.float)
        return out

    def _frozen_features_for(self, batch: GraphBatch) -> torch.Tensor:
        if self.frozen_features is None:
            raise RuntimeError("reference mode needs frozen node features; they are computed "
                               "in on_fit_start from the datamodule")
        return self.frozen_features[batch.node_uids.cpu()].to(self.device)

    @torch.no_grad()
    def precompute_node_features(self, batches: list[GraphBatch] | Any) -> None:
        """Pooled embeddings of every node by the current (initial) student, frozen."""
        was_training = self.student.training
        self.student.eval()
        chunks: dict[int, torch.Tensor] = {}
        for batch in batches:
            batch = self.transfer_batch_to_device(batch, self.device, 0)
            pooled = _pooled(self._hidden_states(batch), batch)
            pooled = pooled[batch.node_to_seq]
            for uid, feature in zip(batch.node_uids.tolist(), pooled.float().cpu()):
                chunks[uid] = feature
        self.student.train(was_training)
        features = torch.zeros(max(chunks) + 1, self.student.hidden_size)
        for uid, feature in chunks.items():
            features[uid] = feature
        self.frozen_features = features

    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        if self.mode == "reference" and getattr(datamodule, "packing", False):
            log.info("reference mode: graph batches unpacked (data.packing=false)")
            datamodule.packing = False
        if self.mode == "reference" and self.graph_encoder is not None \
                and self.frozen_features is None:
            self.precompute_node_features(batch for split in ("train", "val", "test")
                                          for batch in datamodule.loader(split))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.frozen_features is not None:
            checkpoint["frozen_node_features"] = self.frozen_features

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.frozen_features = checkpoint.get("frozen_node_features")

    # ------------------------------------------------------------ lightning
    def training_step(self, batch: GraphBatch, batch_idx: int) -> torch.Tensor:
        losses = self.compute_losses(batch)
        self.log_losses("train", losses, batch.num_graphs)
        return losses["loss"]

    def validation_step(self, batch: GraphBatch, batch_idx: int) -> None:
        self.log_losses("val", self.compute_losses(batch), batch.num_graphs)

    def test_step(self, batch: GraphBatch, batch_idx: int) -> None:
        self.log_losses("test", self.compute_losses(batch), batch.num_graphs)


def _pooled(hidden: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    """Position-weighted mean embedding ``[U, hidden]`` of every sequence of the batch."""
    return sequence_weighted_mean_pool(hidden, batch.position_ids, batch.prompt_tokens,
                                       batch.response_tokens, batch.seq_prompt)


def _replicated_pairs(batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per graph, positive and negative rows with the smaller side repeated, as the
    reference does: pairs are ``(positive[i], negative[i])``; graphs without negatives
    contribute their positives alone, after all paired ones."""
    labels, graph = batch.node_labels.cpu(), batch.node_graph.cpu()
    rows = batch.node_to_seq.cpu()
    paired_pos, paired_neg, unpaired = [], [], []
    for g in range(batch.num_graphs):
        pos = rows[(graph == g) & (labels == CORRECT)].tolist()
        neg = rows[(graph == g) & (labels == INCORRECT)].tolist()
        if pos and neg:
            n = max(len(pos), len(neg))
            paired_pos += (pos * n)[:n]
            paired_neg += (neg * n)[:n]
        else:
            unpaired += pos
    device = batch.input_ids.device
    return (torch.tensor(paired_pos + unpaired, dtype=torch.long, device=device),
            torch.tensor(paired_neg, dtype=torch.long, device=device))
