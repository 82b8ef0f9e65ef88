"""The single-pass MAGDi step: gradients, one pass per unique node, batch invariance."""

from __future__ import annotations

import math

import pytest
import torch
from factories import batch_of, examples, hand_graphs, tiny_module, tiny_student

from magdi_lightning.data.batch import CORRECT, INCORRECT
from magdi_lightning.data.pair_rows import collate_pair_rows, pair_rows


def _student_grad_norm(module, loss: torch.Tensor) -> float:
    module.zero_grad()
    loss.backward(retain_graph=True)
    return sum(p.grad.norm().item() for p in module.student.parameters() if p.grad is not None)


def _rows_per_student_pass(module, batch) -> list[int]:
    """How many sequences each student forward of one loss computation processed."""
    seen: list[int] = []
    embed = module.student.model.get_input_embeddings()
    handle = embed.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
    try:
        module.compute_losses(batch)
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("name", ["nc", "mr"])
def test_graph_losses_reach_the_student_end_to_end(name: str) -> None:
    torch.manual_seed(0)
    module = tiny_module()
    batch = batch_of(module.student, hand_graphs())
    losses = module.compute_losses(batch)
    assert _student_grad_norm(module, losses[name]) > 0


def _reference_batch(module):
    """The reference's pair rows of the hand graphs, with the module's frozen features."""
    items = examples(module.student, hand_graphs())
    pad = module.student.tokenizer.pad_token_id
    module.precompute_node_features([ids for item in items for ids in item.input_ids], pad)
    return collate_pair_rows(pair_rows(items, torch.tensor([1, 9, 2])), pad)


def test_reference_mode_keeps_node_classification_off_the_student() -> None:
    torch.manual_seed(0)
    module = tiny_module(mode="reference")
    losses = module.compute_losses(_reference_batch(module))
    assert _student_grad_norm(module, losses["nc"]) == 0
    module.zero_grad()
    losses["nc"].backward(retain_graph=True)
    assert any(p.grad is not None and p.grad.norm() > 0 for p in module.graph_encoder.parameters())
    # As in the paper's code, the reference MR loss is computed from the student's
    # hidden states of both forwards, so it does reach the student.
    assert _student_grad_norm(module, losses["mr"]) > 0


def test_each_unique_node_goes_through_the_student_once() -> None:
    module = tiny_module()
    graphs = hand_graphs()
    batch = batch_of(module.student, graphs)
    texts = {(g.question, n.reasoning) for g in graphs for n in g.nodes}
    assert batch.input_ids.shape[0] == len(texts) < sum(len(g.nodes) for g in graphs)
    assert _rows_per_student_pass(module, batch) == [len(texts)]


def test_reference_mode_runs_two_forwards_over_the_pair_rows() -> None:
    module = tiny_module(mode="reference")
    rows = _rows_per_student_pass(module, _reference_batch(module))
    # g0: 3 correct vs 1 incorrect -> 3 rows; g1 has no negatives -> its 3 positives
    # against "NA"; g2: 3 vs 2 -> 3 rows. Positives, then negatives, one forward each.
    assert rows == [3 + 3 + 3, 3 + 3 + 3]


def test_a_graphs_losses_are_the_same_alone_or_batched() -> None:
    torch.manual_seed(0)
    module = tiny_module().eval()
    graphs = hand_graphs()
    together, _ = module.per_graph_losses(batch_of(module.student, graphs))
    for i, graph in enumerate(graphs):
        alone, _ = module.per_graph_losses(batch_of(module.student, [graph]))
        for name in ("nt", "nc", "mr"):
            a, b = alone[name][0].item(), together[name][i].item()
            assert (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-5, (graph.id, name)


def test_next_token_loss_matches_a_plain_forward_on_correct_nodes() -> None:
    torch.manual_seed(0)
    module = tiny_module().eval()
    graph = hand_graphs()[0]
    batch = batch_of(module.student, [graph])
    per_graph, _ = module.per_graph_losses(batch)
    correct_rows = batch.node_to_seq[batch.node_labels == CORRECT]
    total, count = 0.0, 0
    for row in correct_rows.tolist():
        out = module.student(batch.input_ids[row:row + 1], batch.attention_mask[row:row + 1],
                             labels=batch.labels[row:row + 1])
        n = int((batch.labels[row, 1:] != -100).sum())
        total, count = total + out.loss.item() * n, count + n
    assert per_graph["nt"][0].item() == pytest.approx(total / count, abs=1e-5)


def test_pairs_and_labels_on_hand_checked_graphs() -> None:
    student = tiny_student()
    batch = batch_of(student, hand_graphs())
    # g0: nodes 0..3 (C, I, C, C); g1: nodes 4..6 (C, C, C); g2: nodes 7..12 (C, I, U, C, I, C)
    assert batch.node_labels.tolist() == [1, 0, 1, 1, 1, 1, 1, 1, 0, -100, 1, 0, 1]
    expected = {(0, 1), (2, 1), (3, 1)} | {(c, i) for c in (7, 10, 12) for i in (8, 11)}
    assert set(map(tuple, batch.pairs.T.tolist())) == expected
    assert batch.pairs.shape[1] == len(expected)
    assert (batch.node_labels[batch.pairs[0]] == CORRECT).all()
    assert (batch.node_labels[batch.pairs[1]] == INCORRECT).all()
    assert batch.pair_graph.tolist() == [0] * 3 + [2] * 6
    # Edges: every round-1 node saw both round-0 nodes of its graph, offset per graph.
    edges = set(map(tuple, batch.graph.edge_index.T.tolist()))
    assert edges == {(0, 2), (1, 2), (0, 3), (1, 3)} | {
        (s, t) for s in (7, 8, 9) for t in (10, 11, 12)}
    assert batch.node_graph.tolist() == [0] * 4 + [1] * 3 + [2] * 6
    # Prompt tokens never carry a next-token label.
    for row in range(batch.input_ids.shape[0]):
        labelled = (batch.labels[row] != -100).nonzero().squeeze(1)
        assert labelled.numel() > 0 and labelled.min() > 5


def test_method_sft_trains_next_token_only() -> None:
    module = tiny_module(loss_weights={"nc": 0.0, "mr": 0.0})
    assert module.graph_encoder is None and module.scorer is None
    losses = module.compute_losses(batch_of(module.student, hand_graphs()))
    assert set(losses) == {"nt", "loss"}
    assert losses["loss"] == losses["nt"]
