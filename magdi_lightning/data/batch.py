"""The GraphBatch: every node of K graphs, ready for one student forward.

Identical token sequences (agents that copy the majority, repeated answers) are
deduplicated across the whole batch, so each unique node text passes through the
student once; ``node_to_row`` maps every node back to its row. The edges of the K
graphs form one block-diagonal ``torch_geometric`` batch, and (correct, incorrect)
pairs are indexed inside each graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Batch, Data

from magdi_lightning.losses import IGNORE_INDEX

__all__ = ["GraphBatch", "GraphExample", "collate_graphs"]

#: Node label values for node classification (unknown nodes are ignored).
CORRECT, INCORRECT = 1, 0


@dataclass
class GraphExample:
    """One tokenized graph; built once when the data is set up, reused every epoch.

    ``pairs`` holds local (correct, incorrect) node index pairs, ``node_uids`` each
    node's index in the whole dataset (the key of precomputed features).
    """

    graph_id: str
    input_ids: list[torch.Tensor]
    prompt_lengths: list[int]
    node_labels: torch.Tensor
    edge_index: torch.Tensor
    pairs: torch.Tensor
    node_uids: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return len(self.input_ids)


@dataclass
class GraphBatch:
    """Tensors for one training step over ``num_graphs`` graphs and N nodes (U unique).

    - ``input_ids``, ``attention_mask``, ``labels``: ``[U, L]``, right-padded; ``labels``
      is ``IGNORE_INDEX`` on padding and (when masked) prompt tokens.
    - ``node_to_row``: ``[N]`` row of each node's sequence.
    - ``graph``: the PyG batch: ``edge_index`` (block-diagonal), ``y`` node labels
      (1 correct, 0 incorrect, ``IGNORE_INDEX`` unknown), ``batch`` graph of each node.
    - ``pairs``: ``[2, P]`` (correct, incorrect) node indices, both in the same graph.
    - ``node_uids``: ``[N]`` dataset-wide node index.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    node_to_row: torch.Tensor
    graph: Batch
    pairs: torch.Tensor
    node_uids: torch.Tensor
    graph_ids: list[str]

    @property
    def num_graphs(self) -> int:
        return len(self.graph_ids)

    @property
    def node_labels(self) -> torch.Tensor:
        return self.graph.y

    @property
    def node_graph(self) -> torch.Tensor:
        return self.graph.batch

    @property
    def pair_graph(self) -> torch.Tensor:
        return self.graph.batch[self.pairs[0]]


def collate_graphs(examples: list[GraphExample], pad_token_id: int,
                   mask_prompt: bool = True) -> GraphBatch:
    """Deduplicate node sequences, pad them to the longest, and batch the graphs."""
    rows: dict[tuple[bytes, int], int] = {}
    unique: list[tuple[torch.Tensor, int]] = []
    node_to_row: list[int] = []
    for example in examples:
        for ids, prompt_length in zip(example.input_ids, example.prompt_lengths):
            key = (ids.numpy().tobytes(), prompt_length if mask_prompt else 0)
            if key not in rows:
                rows[key] = len(unique)
                unique.append((ids, prompt_length))
            node_to_row.append(rows[key])

    length = max(len(ids) for ids, _ in unique)
    input_ids = torch.full((len(unique), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(unique), length), dtype=torch.long)
    labels = torch.full((len(unique), length), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(unique):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        start = prompt_length if mask_prompt else 0
        labels[row, start : len(ids)] = ids[start:]

    graph = Batch.from_data_list([
        Data(edge_index=example.edge_index, y=example.node_labels, num_nodes=example.num_nodes)
        for example in examples
    ])
    offsets = graph.ptr[:-1]
    pairs = torch.cat([example.pairs + offset for example, offset in zip(examples, offsets)],
                      dim=1)
    return GraphBatch(
        input_ids=input_ids, attention_mask=attention_mask, labels=labels,
        node_to_row=torch.tensor(node_to_row, dtype=torch.long), graph=graph, pairs=pairs,
        node_uids=torch.cat([example.node_uids for example in examples]),
        graph_ids=[example.graph_id for example in examples],
    )
