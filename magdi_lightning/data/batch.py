"""The GraphBatch: every node of K graphs, ready for one student forward.

Identical node sequences (agents that copy the majority, repeated answers) are
deduplicated across the whole batch, so each unique text passes through the student
once; ``node_to_seq`` maps every node back to its sequence. The edges of the K graphs
form one block-diagonal ``torch_geometric`` batch, and (correct, incorrect) pairs are
indexed inside each graph.

Every node of a debate graph answers the same question: its tokens are a prompt shared
by the whole graph followed by its own response. A *packed* batch (``packing=True``, the
default in training) stores every distinct prompt once and every response once, back to
back in one row without padding; the student's attention
(:mod:`magdi_lightning.models.packed_attention`) lets each response see its prompt and
itself only, and positions restart after the prompt for each response, so every hidden
state equals the one the node's own sequence would give while the prompt's layers run
once per graph instead of once per node. An *unpacked* batch has one right-padded row per
sequence (the layout the reference-compatible mode needs).

Both layouts are described the same way: ``prompt_tokens`` and ``response_tokens`` hold
flat indices (into ``input_ids.view(-1)``) of each prompt's and each response's tokens,
so pooling and the next-token targets need not know which layout they read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch_geometric.data import Batch

from magdi_lightning.losses import IGNORE_INDEX

__all__ = ["GraphBatch", "GraphExample", "batch_graphs", "collate_graphs"]

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


class GraphsOfNodes:
    """What a batch carrying a PyG batch of graphs (``graph``) reads from it; its size,
    the weight of its logged values, is its number of graphs."""

    graph: Batch

    @property
    def num_graphs(self) -> int:
        raise NotImplementedError

    @property
    def size(self) -> int:
        return self.num_graphs

    @property
    def node_labels(self) -> torch.Tensor:
        return self.graph.y

    @property
    def node_graph(self) -> torch.Tensor:
        return self.graph.batch


@dataclass
class GraphBatch(GraphsOfNodes):
    """Tensors for one training step over ``num_graphs`` graphs, N nodes, U unique
    sequences over G distinct prompts.

    - ``input_ids``, ``position_ids``: ``[R, T]``: one row of all tokens when packed,
      else one right-padded row per sequence; positions count along each sequence.
    - ``prompt_tokens`` ``[G, P]``, ``response_tokens`` ``[U, S]``: flat indices of each
      prompt's and each response's tokens in order, -1 as padding; ``seq_prompt`` ``[U]``:
      the prompt of each sequence. Sequence u is prompt ``seq_prompt[u]`` then response u.
    - ``node_to_seq``: ``[N]`` sequence of each node.
    - ``target_index``, ``target_ids``, ``target_seq``: ``[K]`` one entry per labelled
      token: the flat index of the hidden state that predicts it, its id, and its
      sequence. Prompt tokens, when labelled, are listed once per sequence.
    - ``graph``: the PyG batch: ``edge_index`` (block-diagonal), ``y`` node labels
      (1 correct, 0 incorrect, ``IGNORE_INDEX`` unknown), ``batch`` graph of each node.
    - ``pairs``: ``[2, P]`` (correct, incorrect) node indices, both in the same graph.
    - ``node_uids``: ``[N]`` dataset-wide node index.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    prompt_tokens: torch.Tensor
    response_tokens: torch.Tensor
    seq_prompt: torch.Tensor
    node_to_seq: torch.Tensor
    target_index: torch.Tensor
    target_ids: torch.Tensor
    target_seq: torch.Tensor
    graph: Batch
    pairs: torch.Tensor
    node_uids: torch.Tensor
    graph_ids: list[str]
    packed: bool

    @property
    def num_graphs(self) -> int:
        return len(self.graph_ids)

    @property
    def num_seqs(self) -> int:
        return int(self.seq_prompt.numel())

    @property
    def pair_graph(self) -> torch.Tensor:
        return self.graph.batch[self.pairs[0]]

    @property
    def seq_lengths(self) -> torch.Tensor:
        """``[U]`` tokens of each sequence (its prompt plus its response)."""
        prompts = (self.prompt_tokens >= 0).sum(dim=1)
        return prompts[self.seq_prompt] + (self.response_tokens >= 0).sum(dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        """``[R, T]`` 1 on tokens, 0 on padding (all ones when packed: there is none)."""
        mask = torch.zeros(self.input_ids.numel(), dtype=torch.long,
                           device=self.input_ids.device)
        for tokens in (self.prompt_tokens, self.response_tokens):
            mask[tokens[tokens >= 0]] = 1
        return mask.view_as(self.input_ids)

    @property
    def labels(self) -> torch.Tensor:
        """``[R, T]`` labels aligned with ``input_ids`` (``IGNORE_INDEX`` where none), as a
        Hugging Face causal LM takes them; defined for unpacked batches only."""
        if self.packed:
            raise ValueError("labels aligned with input_ids exist only for unpacked batches "
                             "(data.packing=false)")
        labels = torch.full_like(self.input_ids, IGNORE_INDEX)
        labels.view(-1)[self.target_index + 1] = self.target_ids
        return labels

    def pin_memory(self) -> GraphBatch:
        """Page-locked copies, so the host-to-GPU copy can overlap compute
        (``DataLoader(pin_memory=True)`` calls this)."""
        pinned = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in pinned.items():
            if isinstance(value, torch.Tensor):
                pinned[name] = value.pin_memory()
        pinned["graph"] = self.graph.pin_memory()
        return GraphBatch(**pinned)


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[len(starts), max(lengths)]`` flat indices ``start + j`` for ``j < length``, -1
    beyond each span's length."""
    j = np.arange(int(lengths.max(initial=0)))
    return np.where(j < lengths[:, None], starts[:, None] + j, -1)


def batch_graphs(examples: Sequence[GraphExample]) -> tuple[Batch, list[int]]:
    """The PyG batch of ``examples``' graphs (block-diagonal ``edge_index``, node labels
    ``y``, ``batch`` and ``ptr``; a graph listed twice appears twice) and each graph's
    first node in it."""
    num_nodes = torch.tensor([example.num_nodes for example in examples])
    offsets = torch.cumsum(num_nodes, 0) - num_nodes
    node_offsets = offsets.tolist()
    graph = Batch(
        edge_index=torch.cat([example.edge_index + offset
                              for example, offset in zip(examples, node_offsets)], dim=1),
        y=torch.cat([example.node_labels for example in examples]),
        batch=torch.repeat_interleave(torch.arange(len(examples)), num_nodes),
        ptr=torch.cat([offsets, num_nodes.sum().view(1)]),
    )
    return graph, node_offsets


def collate_graphs(examples: list[GraphExample], pad_token_id: int, mask_prompt: bool = True,
                   packing: bool = False) -> GraphBatch:
    """Deduplicate node sequences, lay them out (packed into one row, or one padded row
    per sequence), and batch the graphs.

    Only the deduplication walks the nodes in Python; the layout, positions and targets
    are computed for all sequences at once (this runs every step)."""
    prompt_index: dict[bytes, int] = {}
    prompts: list[np.ndarray] = []
    seqs: dict[tuple[int, bytes], int] = {}
    responses: list[np.ndarray] = []
    seq_prompt_list: list[int] = []
    node_to_seq: list[int] = []
    for example in examples:
        for ids, prompt_length in zip(example.input_ids, example.prompt_lengths):
            ids = ids.numpy()
            prompt, response = ids[:prompt_length], ids[prompt_length:]
            g = prompt_index.setdefault(prompt.tobytes(), len(prompts))
            if g == len(prompts):
                prompts.append(prompt)
            key = (g, response.tobytes())
            if key not in seqs:
                seqs[key] = len(responses)
                responses.append(response)
                seq_prompt_list.append(g)
            node_to_seq.append(seqs[key])

    seq_prompt = np.array(seq_prompt_list, dtype=np.int64)
    prompt_lengths = np.array([len(p) for p in prompts], dtype=np.int64)
    response_lengths = np.array([len(r) for r in responses], dtype=np.int64)
    seq_prompt_lengths = prompt_lengths[seq_prompt]
    if packing:
        # Each prompt, then the responses that continue it, back to back in one row.
        order = np.argsort(seq_prompt, kind="stable")
        counts = np.bincount(seq_prompt, minlength=len(prompts))
        responses_before = np.cumsum(counts) - counts  # of prompts before each prompt
        pieces: list[np.ndarray] = []
        for g, members in enumerate(np.split(order, responses_before[1:])):
            pieces.append(prompts[g])
            pieces.extend(responses[u] for u in members)
        piece_lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        piece_starts = np.concatenate([[0], np.cumsum(piece_lengths)[:-1]])
        # Piece k is prompt g at k = g + (responses of prompts before g), then its responses.
        is_prompt = np.zeros(len(pieces), dtype=bool)
        is_prompt[np.arange(len(prompts)) + responses_before] = True
        prompt_start = piece_starts[is_prompt]
        response_start = np.empty(len(responses), dtype=np.int64)
        response_start[order] = piece_starts[~is_prompt]
        flat_ids = np.concatenate(pieces)
        shape = (1, len(flat_ids))
        prompt_tokens = _spans(prompt_start, prompt_lengths)
    else:
        # One row per sequence: each prompt is stored in its sequence's row (an unpacked
        # batch has as many prompt copies as sequences).
        length = int((seq_prompt_lengths + response_lengths).max())
        prompt_start = np.arange(len(responses), dtype=np.int64) * length
        response_start = prompt_start + seq_prompt_lengths
        flat_ids = np.full(len(responses) * length, pad_token_id, dtype=np.int64)
        prompt_tokens = _spans(prompt_start, seq_prompt_lengths)
        for u, g in enumerate(seq_prompt_list):
            flat_ids[prompt_start[u]:response_start[u]] = prompts[g]
            flat_ids[response_start[u]:response_start[u] + response_lengths[u]] = responses[u]
        seq_prompt = np.arange(len(responses), dtype=np.int64)
        shape = (len(responses), length)
    response_tokens = _spans(response_start, response_lengths)

    # Every sequence's tokens in order (its prompt, then its response) as flat indices.
    seq_lengths = seq_prompt_lengths + response_lengths
    j = np.arange(int(seq_lengths.max()))
    p = seq_prompt_lengths[:, None]
    # A column of -1 after the prompts, read past each prompt's end (where j >= p anyway).
    prompt_of_seq = np.pad(prompt_tokens[seq_prompt], ((0, 0), (0, 1)), constant_values=-1)
    in_prompt = prompt_of_seq[:, np.minimum(j, prompt_tokens.shape[1])]
    seq_tokens = np.where(j < p, in_prompt, response_start[:, None] + j - p)
    seq_tokens = np.where(j < seq_lengths[:, None], seq_tokens, -1)
    flat_positions = np.zeros(len(flat_ids), dtype=np.int64)
    valid = seq_tokens >= 0
    flat_positions[seq_tokens[valid]] = np.broadcast_to(j, seq_tokens.shape)[valid]
    # Token j is predicted by the hidden state at j - 1; labels start after the prompt.
    first = np.maximum(seq_prompt_lengths, 1) if mask_prompt else np.ones_like(seq_lengths)
    labelled = (j >= first[:, None]) & (j < seq_lengths[:, None]) & (j >= 1)
    predictors = np.roll(seq_tokens, 1, axis=1)
    target_seq, target_j = np.nonzero(labelled)
    target_tokens = seq_tokens[target_seq, target_j]

    input_ids = torch.from_numpy(flat_ids.reshape(shape))
    graph, node_offsets = batch_graphs(examples)
    pairs = torch.cat([example.pairs + offset
                       for example, offset in zip(examples, node_offsets)], dim=1)
    return GraphBatch(
        input_ids=input_ids, position_ids=torch.from_numpy(flat_positions.reshape(shape)),
        prompt_tokens=torch.from_numpy(prompt_tokens),
        response_tokens=torch.from_numpy(response_tokens),
        seq_prompt=torch.from_numpy(seq_prompt),
        node_to_seq=torch.tensor(node_to_seq, dtype=torch.long),
        target_index=torch.from_numpy(predictors[target_seq, target_j]),
        target_ids=torch.from_numpy(flat_ids[target_tokens]),
        target_seq=torch.from_numpy(target_seq.astype(np.int64)),
        graph=graph, pairs=pairs,
        node_uids=torch.cat([example.node_uids for example in examples]),
        graph_ids=[example.graph_id for example in examples],
        packed=packing,
    )
