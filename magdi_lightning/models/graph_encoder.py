"""The graph encoder: a PyG GNN that classifies each node's correctness from its neighbours.

MAGDi's node-classification objective: a 2-layer GCN (hidden 512) over the interaction
graph, fed the student's pooled node embeddings. GAT and GraphSAGE are drop-in options.
Dropout is an ``nn.Dropout`` module, so it follows ``train()``/``eval()`` (the reference
code applied it unconditionally, at evaluation too).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv

__all__ = ["GraphEncoder"]

_LAYERS = {
    "gcn": lambda i, o: GCNConv(i, o),
    "gat": lambda i, o: GATConv(i, o, heads=1),
    "sage": lambda i, o: SAGEConv(i, o),
}


class GraphEncoder(nn.Module):
    """``num_layers`` message-passing layers ending in ``num_classes`` logits per node."""

    def __init__(self, in_channels: int, kind: str = "gcn", hidden_channels: int = 512,
                 num_layers: int = 2, num_classes: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        if kind not in _LAYERS:
            raise ValueError(f"graph encoder kind must be one of {sorted(_LAYERS)}, got {kind!r}")
        if num_layers < 1:
            raise ValueError("graph encoder needs num_layers >= 1")
        sizes = [in_channels] + [hidden_channels] * (num_layers - 1) + [num_classes]
        self.layers = nn.ModuleList(_LAYERS[kind](i, o) for i, o in pairwise(sizes))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Class logits ``[num_nodes, num_classes]``."""
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.dropout(torch.relu(x))
            x = layer(x, edge_index)
        return x
