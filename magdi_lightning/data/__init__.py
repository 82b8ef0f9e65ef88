"""From MAG JSONL to batches: tokenization, splits, caching and GraphBatch collation."""

from magdi_lightning.data.batch import GraphBatch, GraphExample, collate_graphs
from magdi_lightning.data.datamodule import GraphDataModule
from magdi_lightning.data.tokenization import PromptFormatter

__all__ = ["GraphBatch", "GraphDataModule", "GraphExample", "PromptFormatter",
           "collate_graphs"]
