"""MAGDi's training objectives as pure functions of tensors.

Every loss is reduced *per graph* first (a mean over that graph's tokens, pairs or
nodes) and then averaged over the graphs where it is defined. A graph's losses are
therefore the same whether it is trained alone or batched with others, and each
question weighs the same however many responses its debate has.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE_INDEX",
    "margin_ranking_loss",
    "mean_over_graphs",
    "node_classification_loss",
    "per_graph_mean",
    "position_weighted_mean_pool",
    "sequence_weighted_mean_pool",
]

IGNORE_INDEX = -100


def per_graph_mean(values: torch.Tensor, counts: torch.Tensor, graph: torch.Tensor,
                   num_graphs: int) -> torch.Tensor:
    """``sum(values) / sum(counts)`` within each graph; NaN where a graph has no count.

    ``values`` and ``counts`` are per item (token sums and token counts of nodes, or
    one per pair with count 1); ``graph`` gives each item's graph index.
    """
    totals = values.new_zeros(num_graphs).index_add(0, graph, values)
    sizes = values.new_zeros(num_graphs).index_add(0, graph, counts.to(values.dtype))
    return torch.where(sizes > 0, totals / sizes.clamp(min=1), values.new_tensor(float("nan")))


def mean_over_graphs(per_graph: torch.Tensor) -> torch.Tensor:
    """Mean of the defined (non-NaN) per-graph losses; 0 with no graph defined.

    The zero keeps the autograd graph connected, so a batch without, say, any
    (correct, incorrect) pair still trains on its other losses.
    """
    defined = ~torch.isnan(per_graph)
    if not defined.any():
        return per_graph.nan_to_num(0.0).sum() * 0.0
    return per_graph[defined].mean()


def position_weighted_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sequence embeddings ``[batch, hidden]``: token states weighted by their column.

    Later tokens of a causal LM have read more of the text, so the token in column ``i``
    (1-based) gets weight ``i`` (SGPT's weighted mean pooling); padding gets weight 0.
    On a left-padded batch this is the MAGDi reference's pooling (``model.py``,
    ``get_node_emb.py``), whose weights therefore depend on how much padding a row has;
    :func:`sequence_weighted_mean_pool`, which the end-to-end mode uses, weights a token by
    its position in its own sequence instead, so a node's embedding does not depend on
    the batch it is in.
    """
    positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)
    weights = attention_mask.to(hidden.dtype) * positions
    pooled = (hidden * weights.unsqueeze(-1)).sum(dim=1)
    return pooled / weights.sum(dim=1, keepdim=True).clamp(min=1.0)


def sequence_weighted_mean_pool(hidden: torch.Tensor, position_ids: torch.Tensor,
                                prompt_tokens: torch.Tensor, response_tokens: torch.Tensor,
                                seq_prompt: torch.Tensor) -> torch.Tensor:
    """:func:`position_weighted_mean_pool` of sequences given by token indices ``[U, hidden]``.

    ``hidden`` ``[R, T, hidden]`` and ``position_ids`` ``[R, T]`` in any layout;
    sequence u is prompt ``seq_prompt[u]`` (flat indices ``prompt_tokens[g]``, -1 padding)
    followed by ``response_tokens[u]``, and a token's weight is its 1-based position in
    its sequence. A prompt's weighted sum is made once and shared by its sequences.
    """
    flat, weights = hidden.flatten(0, 1), (position_ids.flatten() + 1).to(hidden.dtype)

    def weighted(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = tokens.clamp(min=0)
        w = weights[index] * (tokens >= 0)
        return torch.einsum("bl,blh->bh", w, flat[index]), w.sum(dim=1)

    prompt_sum, prompt_weight = weighted(prompt_tokens)
    response_sum, response_weight = weighted(response_tokens)
    total = (prompt_weight[seq_prompt] + response_weight).clamp(min=1.0)
    return (prompt_sum[seq_prompt] + response_sum) / total[:, None]


def margin_ranking_loss(positive_scores: torch.Tensor, negative_scores: torch.Tensor,
                        margin: float = 1.0) -> torch.Tensor:
    """Per-pair ``max(0, margin - (positive - negative))``.

    Zero once each positive outscores its negative by at least ``margin``.
    """
    return F.relu(margin - (positive_scores - negative_scores))


def node_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-node cross-entropy of correctness; 0 for nodes labelled ``IGNORE_INDEX``."""
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="none")
