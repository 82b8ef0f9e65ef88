"""Protocols: how teachers are asked about one question, and the graph that results.

Each protocol turns a question (a :class:`~magdi_lightning.sources.question_sets.
Question`) into a :class:`~magdi_lightning.graph.ReasoningGraph` whose id is the
question's id, so a run's output imports into training with no conversion step and a
rerun knows which questions are done. Correctness labels come from the evaluation
extractors (:func:`~magdi_lightning.scoring.answers.answers_match`). A response that
cannot be parsed is kept as the node's reasoning and flagged in ``metadata.parse_error``,
never dropped.
"""

from magdi_lightning.teachers.protocols.base import Protocol
from magdi_lightning.teachers.protocols.du import DuDebate
from magdi_lightning.teachers.protocols.reconcile import ReConcile
from magdi_lightning.teachers.protocols.siked import SikedStrategies
from magdi_lightning.teachers.protocols.tinyllm import TinyLLMRationales

__all__ = ["DuDebate", "Protocol", "ReConcile", "SikedStrategies", "TinyLLMRationales"]
