"""``method=magdi_reference`` computes the MAGDi reference code's rows and losses.

Every expected value here is derived by hand, in plain tensor arithmetic, from the
reference's definitions (dinobby/MAGDi): ``utils.py`` (``prepare_contrastive_samples``:
the shorter side of a graph's correct/incorrect lists repeated and zipped, "NA" as the
negative of a graph without incorrect nodes; ``pad_graphs``: row k's graph is graph k mod
G), ``data_utils.py`` (``MAGDiDataCollator``: left padding, labels -100 on padding only),
``model.py`` (``MAGDi.forward``: NT the causal-LM loss of the positives, MR a margin-1
ranking of ``tanh(mlp2(relu(mlp1(pooled))))`` over rows whose negative has more than 5
tokens, NC the cross-entropy of the GCN over the rows' graphs) and ``get_node_emb.py``
(frozen node features: column-weighted pooling of left-padded batches). The module's
values must equal them to 1e-5. The tiny student runs in eval mode, so no dropout differs.
"""

from __future__ import annotations

import pytest
import torch
from factories import batch_of, debate, examples, hand_graphs, tiny_module, tiny_student

from magdi_lightning.data.pair_rows import collate_pair_rows, pair_rows, replicate_minority
from magdi_lightning.graph import Correctness

C, W = Correctness.CORRECT, Correctness.INCORRECT
IGNORE = -100
NA = torch.tensor([1, 9, 2])  # a 3-token padding negative: BOS, "NA", EOS


def _graphs():
    """P=1/N=3, P=3/N=2, all correct (P=2), all incorrect (N=2): one round each, so node
    i of a graph is agent i."""
    def one_round(graph_id: str, labels: list[Correctness]):
        texts = [f"{graph_id} agent {i} says {'five' if c is C else 'six'} and so on."
                 for i, c in enumerate(labels)]
        return debate(graph_id, f"Question {graph_id}: how many?", [list(zip(texts, labels))])

    return [one_round("p1n3", [W, C, W, W]), one_round("p3n2", [C, W, C, W, C]),
            one_round("p2n0", [C, C]), one_round("p0n2", [W, W])]


def test_the_shorter_side_is_repeated_cyclically() -> None:
    assert replicate_minority([7], [1, 2, 3]) == ([7, 7, 7], [1, 2, 3])
    assert replicate_minority([1, 2, 3], [8, 9]) == ([1, 2, 3], [8, 9, 8])
    assert replicate_minority([4, 5], [6, 7]) == ([4, 5], [6, 7])


def test_rows_pair_nodes_as_the_reference_zips_them() -> None:
    items = examples(tiny_student(), _graphs())
    rows = pair_rows(items, NA, row_graphs="own")

    def node(g: int, i: int) -> torch.Tensor:
        return items[g].input_ids[i]

    expected = [  # (positive, negative, graph)
        (node(0, 1), node(0, 0), 0), (node(0, 1), node(0, 2), 0), (node(0, 1), node(0, 3), 0),
        (node(1, 0), node(1, 1), 1), (node(1, 2), node(1, 3), 1), (node(1, 4), node(1, 1), 1),
        (node(2, 0), NA, 2), (node(2, 1), NA, 2),
    ]  # the all-incorrect graph has no positive, hence no row
    assert len(rows) == len(expected)
    for row, (positive, negative, g) in zip(rows, expected):
        assert torch.equal(row.positive, positive) and torch.equal(row.negative, negative)
        assert row.graph is items[g]
    assert [r.positive_prompt_length for r in rows[:3]] == [items[0].prompt_lengths[1]] * 3


def test_cycled_rows_carry_graph_k_mod_g() -> None:
    items = examples(tiny_student(), _graphs())
    own = pair_rows(items, NA, row_graphs="own")
    cycled = pair_rows(items, NA, row_graphs="cycled")
    assert [r.graph for r in cycled] == [items[k % 4] for k in range(len(own))]
    assert all(torch.equal(a.positive, b.positive) and torch.equal(a.negative, b.negative)
               for a, b in zip(own, cycled))
    with pytest.raises(ValueError, match="row_graphs"):
        pair_rows(items, NA, row_graphs="random")


def test_collation_left_pads_and_labels_the_whole_positive() -> None:
    student = tiny_student()
    pad = student.tokenizer.pad_token_id
    rows = pair_rows(examples(student, _graphs()), NA, row_graphs="own")[4:8]
    batch = collate_pair_rows(rows, pad)
    longest = max(len(r.positive) for r in rows)
    for r, row in enumerate(rows):
        n, gap = len(row.positive), longest - len(row.positive)
        assert batch.positive_ids[r].tolist() == [pad] * gap + row.positive.tolist()
        assert batch.positive_mask[r].tolist() == [0] * gap + [1] * n
        assert batch.positive_labels[r].tolist() == [IGNORE] * gap + row.positive.tolist()
        m = len(row.negative)
        assert batch.negative_mask[r].tolist() == [0] * (batch.negative_ids.shape[1] - m) + [1] * m
    masked = collate_pair_rows(rows, pad, mask_prompt=True)
    for r, row in enumerate(rows):
        gap, prompt = longest - len(row.positive), row.positive_prompt_length
        assert masked.positive_labels[r].tolist() == (
            [IGNORE] * (gap + prompt) + row.positive[prompt:].tolist())
    # One graph per row, node offsets stacked in row order.
    assert batch.num_graphs == 4 and batch.graph.batch.bincount().tolist() == [5, 5, 2, 2]


def _left_padded(sequences: list[torch.Tensor], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(s) for s in sequences)
    ids = torch.stack([torch.cat([torch.full((length - len(s),), pad), s]) for s in sequences])
    mask = torch.stack([torch.cat([torch.zeros(length - len(s)), torch.ones(len(s))])
                        for s in sequences]).long()
    return ids, mask


def _column_weighted(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference's pooling: token in column j (1-based) weighs j, padding 0."""
    weights = mask.double() * torch.arange(1, mask.shape[1] + 1, dtype=torch.float64)
    return (hidden.double() * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)


def _hand_losses(module, batch, features: torch.Tensor) -> dict[str, float]:
    model = module.student.model
    pos = model(input_ids=batch.positive_ids, attention_mask=batch.positive_mask,
                output_hidden_states=True)
    neg = model(input_ids=batch.negative_ids, attention_mask=batch.negative_mask,
                output_hidden_states=True)
    # NT: mean over every labelled next token of the batch.
    log_probs = pos.logits.double().log_softmax(-1)
    terms = [-log_probs[r, t, batch.positive_labels[r, t + 1]]
             for r in range(batch.positive_ids.shape[0])
             for t in range(batch.positive_ids.shape[1] - 1)
             if batch.positive_labels[r, t + 1] != IGNORE]
    nt = sum(terms) / len(terms)
    # MR over rows whose negative has more than 5 tokens (all rows when none has).
    keep = batch.negative_mask.sum(1) > 5
    if not keep.any():
        keep = torch.ones_like(keep)
    lin1, lin2 = module.scorer[0], module.scorer[2]

    def score(embedding: torch.Tensor) -> torch.Tensor:
        h = torch.relu(embedding @ lin1.weight.double().T + lin1.bias.double())
        return torch.tanh(h @ lin2.weight.double().T + lin2.bias.double()).squeeze(-1)

    s_pos = score(_column_weighted(pos.hidden_states[-1], batch.positive_mask)[keep])
    s_neg = score(_column_weighted(neg.hidden_states[-1], batch.negative_mask)[keep])
    mr = torch.clamp(1.0 - (s_pos - s_neg), min=0).mean()
    # NC: cross-entropy of every labelled node of the rows' graphs, frozen features.
    logits = module.graph_encoder(features[batch.node_uids].float(), batch.graph.edge_index)
    node_log_probs = logits.double().log_softmax(-1)
    labelled = [n for n in range(len(batch.node_labels)) if batch.node_labels[n] != IGNORE]
    nc = sum(-node_log_probs[n, batch.node_labels[n]] for n in labelled) / len(labelled)
    return {"nt": float(nt), "mr": float(mr), "nc": float(nc)}


@pytest.mark.parametrize("rows", [slice(0, 8), slice(6, 8)],
                         ids=["real_and_na_negatives", "na_negatives_only"])
def test_reference_losses_equal_the_hand_derived_values(rows: slice) -> None:
    torch.manual_seed(0)
    module = tiny_module(mode="reference").eval()
    pad = module.student.tokenizer.pad_token_id
    items = examples(module.student, _graphs())
    sequences = [ids for item in items for ids in item.input_ids]
    module.precompute_node_features(sequences, pad)
    ids, mask = _left_padded(sequences, pad)  # fewer than 50 nodes: one feature batch
    hidden = module.student.model(input_ids=ids, attention_mask=mask,
                                  output_hidden_states=True).hidden_states[-1]
    features = _column_weighted(hidden, mask)
    assert torch.allclose(module.frozen_features.double(), features, atol=1e-5)

    batch = collate_pair_rows(pair_rows(items, NA, row_graphs="cycled")[rows], pad)
    with torch.no_grad():
        got = module.compute_losses(batch)
        expected = _hand_losses(module, batch, features)
    for name, value in expected.items():
        assert got[name].item() == pytest.approx(value, abs=1e-5), name
    weights = module.weights
    assert got["loss"].item() == pytest.approx(
        sum(weights[k] * v for k, v in expected.items()), abs=1e-5)


def test_node_features_come_in_left_padded_batches_of_fifty() -> None:
    """Padding changes a column-weighted embedding, so the batching is part of the
    definition: node 60 is pooled in the second batch, padded to that batch's longest."""
    module = tiny_module(mode="reference").eval()
    pad = module.student.tokenizer.pad_token_id
    torch.manual_seed(1)
    sequences = [torch.randint(3, 50, (int(n),)) for n in torch.randint(4, 30, (70,))]
    module.precompute_node_features(sequences, pad)
    assert module.frozen_features.shape[0] == 70
    with torch.no_grad():
        for start in (0, 50):
            ids, mask = _left_padded(sequences[start:start + 50], pad)
            hidden = module.student.model(input_ids=ids, attention_mask=mask,
                                          output_hidden_states=True).hidden_states[-1]
            got = module.frozen_features[start:start + 50].double()
            assert torch.allclose(got, _column_weighted(hidden, mask), atol=1e-5)


def test_reference_mode_refuses_graph_batches() -> None:
    module = tiny_module(mode="reference")
    with pytest.raises(ValueError, match=r"data\.batch_unit=pair_rows"):
        module.compute_losses(batch_of(module.student, hand_graphs()))
