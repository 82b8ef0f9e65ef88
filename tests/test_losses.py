"""Identities of the loss functions."""

from __future__ import annotations

import math

import pytest
import torch

from magdi_lightning.losses import (
    IGNORE_INDEX,
    margin_ranking_loss,
    mean_over_graphs,
    node_classification_loss,
    per_graph_mean,
    position_weighted_mean_pool,
)


def test_margin_loss_is_zero_once_positives_lead_by_the_margin() -> None:
    pos, neg = torch.tensor([0.9, 0.5, 0.2]), torch.tensor([-0.1, 0.0, 0.2])
    assert margin_ranking_loss(pos, neg, margin=1.0).tolist() == \
        torch.tensor([0.0, 0.5, 1.0]).tolist()
    assert margin_ranking_loss(pos, neg, margin=0.0).sum() == 0


def test_margin_loss_matches_torch() -> None:
    pos, neg = torch.randn(20), torch.randn(20)
    expected = torch.nn.MarginRankingLoss(1.0)(pos, neg, torch.ones(20))
    assert torch.isclose(margin_ranking_loss(pos, neg).mean(), expected)


def test_per_graph_mean_and_undefined_graphs() -> None:
    values = torch.tensor([2.0, 4.0, 6.0])
    counts = torch.tensor([1, 1, 2])
    graph = torch.tensor([0, 0, 2])
    out = per_graph_mean(values, counts, graph, num_graphs=3)
    assert out[0].item() == 3.0 and math.isnan(out[1].item()) and out[2].item() == 3.0
    assert mean_over_graphs(out).item() == 3.0
    empty = mean_over_graphs(torch.tensor([float("nan")], requires_grad=True))
    assert empty.item() == 0.0 and empty.requires_grad


def test_position_weighted_pool_ignores_padding_and_weights_later_tokens() -> None:
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert position_weighted_mean_pool(hidden, mask).item() == pytest.approx((1 * 1 + 3 * 2) / 3)


def test_node_classification_ignores_unknown_nodes() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    labels = torch.tensor([0, 1, IGNORE_INDEX])
    loss = node_classification_loss(logits, labels)
    assert loss[2] == 0 and torch.allclose(loss[0], loss[1])
