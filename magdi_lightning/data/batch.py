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

from dataclasses import dataclass, fields

import torch
from torch_geometric.data import Batch, Data

from magdi_lightning.losses import IGNORE_INDEX

__all__ = ["GraphBatch", "GraphExample", "collate_graphs"]

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


@dataclass
class GraphBatch:
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
    def node_labels(self) -> torch.Tensor:
        return self.graph.y

    @property
    def node_graph(self) -> torch.Tensor:
        return self.graph.batch

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


def _padded(rows: list[torch.Tensor]) -> torch.Tensor:
    """Index rows right-padded with -1 into one ``[len(rows), longest]`` tensor."""
    out = torch.full((len(rows), max((len(r) for r in rows), default=0)), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def collate_graphs(examples: list[GraphExample], pad_token_id: int, mask_prompt: bool = True,
                   packing: bool = False) -> GraphBatch:
    """Deduplicate node sequences, lay them out (packed into one row, or one padded row
    per sequence), and batch the graphs."""
    prompt_index: dict[bytes, int] = {}
    prompts: list[torch.Tensor] = []
    seqs: dict[tuple[int, bytes], int] = {}
    responses: list[torch.Tensor] = []
    seq_prompt: list[int] = []
    node_to_seq: list[int] = []
    for example in examples:
        for ids, prompt_length in zip(example.input_ids, example.prompt_lengths):
            prompt, response = ids[:prompt_length], ids[prompt_length:]
            g = prompt_index.setdefault(prompt.numpy().tobytes(), len(prompts))
            if g == len(prompts):
                prompts.append(prompt)
            key = (g, response.numpy().tobytes())
            if key not in seqs:
                seqs[key] = len(responses)
                responses.append(response)
                seq_prompt.append(g)
            node_to_seq.append(seqs[key])

    # Where each prompt and response starts in the flat layout.
    prompt_start, response_start = [0] * len(prompts), [0] * len(responses)
    if packing:
        by_prompt: list[list[int]] = [[] for _ in prompts]
        for u, g in enumerate(seq_prompt):
            by_prompt[g].append(u)
        offset = 0
        for g, members in enumerate(by_prompt):
            prompt_start[g], offset = offset, offset + len(prompts[g])
            for u in members:
                response_start[u], offset = offset, offset + len(responses[u])
        shape = (1, offset)
    else:
        length = max(len(prompts[g]) + len(r) for g, r in zip(seq_prompt, responses))
        for u, g in enumerate(seq_prompt):
            response_start[u] = u * length + len(prompts[g])
        # One row per sequence: each prompt is stored in its sequence's row (an unpacked
        # batch has as many prompt copies as sequences).
        prompts = [prompts[g] for g in seq_prompt]
        prompt_start = [u * length for u in range(len(responses))]
        seq_prompt = list(range(len(responses)))
        shape = (len(responses), length)

    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    flat_ids, flat_positions = input_ids.view(-1), position_ids.view(-1)
    prompt_tokens = [torch.arange(s, s + len(p)) for s, p in zip(prompt_start, prompts)]
    response_tokens = []
    for tokens, prompt in zip(prompt_tokens, prompts):
        flat_ids[tokens] = prompt
        flat_positions[tokens] = torch.arange(len(prompt))
    targets: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    for u, (start, response) in enumerate(zip(response_start, responses)):
        g = seq_prompt[u]
        p = len(prompts[g])
        tokens = torch.arange(start, start + len(response))
        flat_ids[tokens] = response
        flat_positions[tokens] = torch.arange(p, p + len(response))
        response_tokens.append(tokens)
        # The sequence's tokens in order; token j is predicted by the hidden state at j - 1.
        order = torch.cat([prompt_tokens[g], tokens])
        first = max(p, 1) if mask_prompt else 1
        if first < len(order):
            targets.append((order[first - 1:-1], flat_ids[order[first:]], u))

    graph = Batch.from_data_list([
        Data(edge_index=example.edge_index, y=example.node_labels, num_nodes=example.num_nodes)
        for example in examples
    ])
    offsets = graph.ptr[:-1]
    pairs = torch.cat([example.pairs + offset for example, offset in zip(examples, offsets)],
                      dim=1)
    empty = torch.zeros(0, dtype=torch.long)
    return GraphBatch(
        input_ids=input_ids, position_ids=position_ids,
        prompt_tokens=_padded(prompt_tokens), response_tokens=_padded(response_tokens),
        seq_prompt=torch.tensor(seq_prompt, dtype=torch.long),
        node_to_seq=torch.tensor(node_to_seq, dtype=torch.long),
        target_index=torch.cat([t[0] for t in targets]) if targets else empty,
        target_ids=torch.cat([t[1] for t in targets]) if targets else empty,
        target_seq=torch.cat([torch.full((len(t[0]),), t[2], dtype=torch.long)
                              for t in targets]) if targets else empty,
        graph=graph, pairs=pairs,
        node_uids=torch.cat([example.node_uids for example in examples]),
        graph_ids=[example.graph_id for example in examples],
        packed=packing,
    )
