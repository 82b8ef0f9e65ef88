"""From MAG JSONL to batches: tokenization, splits, caching and GraphBatch collation."""

from magdi_lightning.data.batch import GraphBatch, GraphExample, collate_graphs
from magdi_lightning.data.datamodule import GraphDataModule, HeldOutQuestion
from magdi_lightning.data.tokenization import PromptFormatter

__all__ = ["GraphBatch", "GraphDataModule", "GraphExample", "HeldOutQuestion",
           "PromptFormatter", "collate_graphs"]
