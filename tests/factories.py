"""Tiny students and hand-built graphs shared by the tests (no downloads)."""

from __future__ import annotations

import torch

from magdi_lightning.data import GraphExample, collate_graphs
from magdi_lightning.data.datamodule import graph_example
from magdi_lightning.data.tokenization import PromptFormatter
from magdi_lightning.graph import Correctness, Edge, Node, ReasoningGraph
from magdi_lightning.methods.magdi import DistillationModule
from magdi_lightning.models.graph_encoder import GraphEncoder
from magdi_lightning.models.student import Student, load_student

TINY_ARCHITECTURE = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2,
                     "max_position_embeddings": 256}

C, W, U = Correctness.CORRECT, Correctness.INCORRECT, Correctness.UNKNOWN  # W: wrong


def tiny_student(**overrides) -> Student:
    return load_student(architecture={**TINY_ARCHITECTURE, **overrides})


def tiny_module(student: Student | None = None, **kwargs) -> DistillationModule:
    def encoder(hidden: int) -> GraphEncoder:
        return GraphEncoder(hidden, hidden_channels=16)

    return DistillationModule(student or tiny_student(), graph_encoder=encoder, **kwargs)


def debate(graph_id: str, question: str, answers: list[list[tuple[str, Correctness]]],
           ) -> ReasoningGraph:
    """A debate from ``answers[round][agent] = (reasoning, correctness)``, fully connected
    from each round to the next."""
    nodes, edges = [], []
    for r, responses in enumerate(answers):
        for a, (text, correctness) in enumerate(responses):
            nodes.append(Node(id=f"a{a}r{r}", agent=f"agent_{a}", round=r, reasoning=text,
                              answer=None, correctness=correctness))
            if r:
                edges += [Edge(f"a{b}r{r - 1}", f"a{a}r{r}") for b in range(len(answers[r - 1]))]
    return ReasoningGraph(id=graph_id, question=question, gold_answer="5", task="numeric",
                          nodes=nodes, edges=edges)


def hand_graphs() -> list[ReasoningGraph]:
    """Three small debates with known pairs: mixed labels, all correct, one unknown."""
    return [
        debate("g0", "Ann has 3 pens. She buys 2 more. How many pens does Ann have now?", [
            [("3 + 2 = 5. The answer is 5.", C), ("3 - 2 = 1. The answer is 1.", W)],
            [("3 + 2 = 5. The answer is 5.", C), ("3 + 2 = 5. The answer is 5.", C)],
        ]),
        debate("g1", "Ben has 9 coins. He loses 4. How many coins does Ben have now?", [
            [("9 - 4 = 5. The answer is 5.", C), ("9 - 4 = 5. The answer is 5.", C),
             ("9 - 4 = 5. The answer is 5.", C)],
        ]),
        debate("g2", "Eve has 7 cards. She sells 2. She finds 1 more. How many cards does "
               "Eve have now?", [
            [("7 - 2 = 5. 5 + 1 = 6. The answer is 6.", C), ("7 + 2 = 9. 9 + 1 = 10. The answer"
                                                              " is 10.", W),
             ("I am not sure.", U)],
            [("7 - 2 = 5. 5 + 1 = 6. The answer is 6.", C),
             ("7 - 2 = 4. 4 + 1 = 5. The answer is 5.", W), ("7 - 2 = 5. 5 + 1 = 6.", C)],
        ]),
    ]


def examples(student: Student, graphs: list[ReasoningGraph]) -> list[GraphExample]:
    formatter = PromptFormatter(student.tokenizer)
    out, uid = [], 0
    for graph in graphs:
        ids, prompt_lengths = formatter.encode_pairs(
            [graph.question] * len(graph.nodes), [n.reasoning for n in graph.nodes], 512)
        out.append(graph_example(graph, [torch.tensor(x) for x in ids], prompt_lengths, uid))
        uid += len(graph.nodes)
    return out


def batch_of(student: Student, graphs: list[ReasoningGraph]):
    return collate_graphs(examples(student, graphs), student.tokenizer.pad_token_id)
