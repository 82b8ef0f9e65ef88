"""The MAGDi reference code's training rows: one (correct, incorrect) node pair each.

``method=magdi_reference`` trains on these instead of graph batches, so that its losses,
its batches and its number of optimizer steps are the reference's (dinobby/MAGDi,
``utils.prepare_contrastive_samples`` / ``prepare_batch``, ``data_utils.MAGDiDataCollator``):

- per graph, the correct and the incorrect nodes' sequences, the shorter list repeated
  cyclically to the longer one's length and zipped into rows; a graph without an
  incorrect node gets a *padding negative* (the text "NA") in every row, a graph without
  a correct node no row at all;
- each row also carries a graph for node classification: the reference gives row ``k``
  of the whole row list the ``k mod G``-th graph of the data (``row_graphs="cycled"``,
  not the graph the row's pair came from), or the row's own graph (``"own"``);
- a batch left-pads its positives and its negatives separately, and labels a positive's
  whole sequence, prompt included (``mask_prompt`` restricts the labels to the response).

``batch_size`` then counts rows, as the reference's ``per_device_train_batch_size`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch_geometric.data import Batch

from magdi_lightning.data.batch import (
    CORRECT,
    INCORRECT,
    GraphExample,
    GraphsOfNodes,
    batch_graphs,
)
from magdi_lightning.losses import IGNORE_INDEX

__all__ = ["PADDING_NEGATIVE", "ROW_GRAPHS", "PairRow", "PairRowBatch", "collate_pair_rows",
           "left_pad", "pair_rows", "replicate_minority", "rows_of"]

#: The text of the reference's negative for a graph without incorrect nodes.
PADDING_NEGATIVE = "NA"
#: Which graph a row carries for node classification (see the module docstring).
ROW_GRAPHS = ("cycled", "own")


@dataclass(frozen=True)
class PairRow:
    """A correct node's sequence, an incorrect node's (or the padding negative), and the
    graph the row's node classification sees; the nodes' dataset-wide indices say where
    the pair came from (``negative_uid`` is None for the padding negative)."""

    positive: torch.Tensor
    positive_prompt_length: int
    negative: torch.Tensor
    graph: GraphExample
    positive_uid: int
    negative_uid: int | None


def replicate_minority(positives: list[int], negatives: list[int]
                       ) -> tuple[list[int], list[int]]:
    """Both lists at the longer one's length, the shorter repeated cyclically."""
    n = max(len(positives), len(negatives))
    return ((positives * n)[:n], (negatives * n)[:n])


def rows_of(labels: list[int]) -> int:
    """How many rows the reference makes of a graph with these node labels."""
    positives, negatives = labels.count(CORRECT), labels.count(INCORRECT)
    return max(positives, negatives) if positives else 0


def pair_rows(examples: list[GraphExample], padding_negative: torch.Tensor,
              row_graphs: str = "cycled") -> list[PairRow]:
    """The rows of ``examples`` (one split's graphs, in order), as the reference builds
    them from its graph list."""
    if row_graphs not in ROW_GRAPHS:
        raise ValueError(f"row_graphs must be one of {ROW_GRAPHS}, got {row_graphs!r}")
    rows: list[PairRow] = []
    for example in examples:
        labels = example.node_labels.tolist()
        positives = [i for i, label in enumerate(labels) if label == CORRECT]
        negatives = [i for i, label in enumerate(labels) if label == INCORRECT]
        if not positives:
            continue
        if negatives:
            positives, negatives = replicate_minority(positives, negatives)
        uids = example.node_uids.tolist()
        for k, i in enumerate(positives):
            j = negatives[k] if negatives else None
            rows.append(PairRow(
                example.input_ids[i], example.prompt_lengths[i],
                padding_negative if j is None else example.input_ids[j], example,
                uids[i], None if j is None else uids[j]))
    if row_graphs == "cycled":
        rows = [replace(row, graph=examples[k % len(examples)]) for k, row in enumerate(rows)]
    return rows


@dataclass
class PairRowBatch(GraphsOfNodes):
    """``B`` rows: left-padded positives ``[B, Lp]`` with their labels, left-padded
    negatives ``[B, Ln]``, and the PyG batch of the rows' graphs (one per row, a graph
    carried by two rows appearing twice) with each node's dataset-wide ``node_uids``."""

    positive_ids: torch.Tensor
    positive_mask: torch.Tensor
    positive_labels: torch.Tensor
    negative_ids: torch.Tensor
    negative_mask: torch.Tensor
    graph: Batch
    node_uids: torch.Tensor

    @property
    def num_graphs(self) -> int:
        """Rows in the batch (each carries one graph)."""
        return int(self.positive_ids.shape[0])

    def pin_memory(self) -> PairRowBatch:
        """Page-locked copies (``DataLoader(pin_memory=True)`` calls this)."""
        pinned = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in pinned.items():
            pinned[name] = value.pin_memory()
        return PairRowBatch(**pinned)


def left_pad(sequences: list[torch.Tensor], pad_token_id: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, longest]`` ids padded on the left, and their attention mask."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, length - len(sequence):] = sequence
        mask[row, length - len(sequence):] = 1
    return ids, mask


def collate_pair_rows(rows: list[PairRow], pad_token_id: int,
                      mask_prompt: bool = False) -> PairRowBatch:
    """One batch of rows, padded as the reference's collator pads them."""
    positive_ids, positive_mask = left_pad([row.positive for row in rows], pad_token_id)
    labels = torch.where(positive_mask.bool(), positive_ids, IGNORE_INDEX)
    if mask_prompt:
        for r, row in enumerate(rows):
            start = positive_ids.shape[1] - len(row.positive)
            labels[r, start:start + row.positive_prompt_length] = IGNORE_INDEX
    negative_ids, negative_mask = left_pad([row.negative for row in rows], pad_token_id)
    graphs = [row.graph for row in rows]
    graph, _ = batch_graphs(graphs)
    return PairRowBatch(positive_ids=positive_ids, positive_mask=positive_mask,
                        positive_labels=labels, negative_ids=negative_ids,
                        negative_mask=negative_mask, graph=graph,
                        node_uids=torch.cat([g.node_uids for g in graphs]))
