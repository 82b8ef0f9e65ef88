"""Attention over a packed graph batch: each response sees its prompt and itself.

A packed :class:`~magdi_lightning.data.batch.GraphBatch` is one row holding every distinct
prompt once and every response once, so the student's linear layers (most of its FLOPs)
run on each token once, with no padding and no repeated prompts. Only attention needs the
structure back: this module registers an attention function with transformers'
``AttentionInterface`` that, given a :class:`PackedLayout`, gathers the queries, keys and
values of the prompts and of the responses into padded blocks and runs two SDPA calls: the
prompts causally, and each response over its prompt's keys followed by its own, causally.
Every output therefore equals the unpacked sequence's, at the attention cost of the
unpacked layout and the linear cost of the packed one. Without a layout (generation,
unpacked batches) it is plain SDPA, so the student behaves exactly as before.

The function works for any model that routes attention through ``AttentionInterface``
(Llama, Mistral, Qwen2/3, Gemma, Phi-3, ...). Models whose attention adds soft-capping or
sliding windows are refused rather than silently computed without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

__all__ = ["IMPLEMENTATION", "PackedLayout", "enable_packed_attention"]

IMPLEMENTATION = "magdi_packed_sdpa"
#: A 4-D mask of no size: transformers hands a 4-D mask through untouched, so passing this
#: instead of ``None`` stops it from building an ``[N, N]`` mask for the packed row.
_NO_MASK = torch.ones(1, 1, 0, 0, dtype=torch.bool)


@dataclass
class PackedLayout:
    """Where each prompt's and response's tokens sit in the packed row, and the masks of
    the two attention calls (built once per forward and shared by every layer)."""

    prompt_tokens: torch.Tensor     # [G, P] flat indices, -1 padding
    response_tokens: torch.Tensor   # [U, S]
    seq_prompt: torch.Tensor        # [U]
    prompt_mask: torch.Tensor       # [G, 1, P, P] True attends
    response_mask: torch.Tensor     # [U, 1, S, P + S]

    @classmethod
    def build(cls, prompt_tokens: torch.Tensor, response_tokens: torch.Tensor,
              seq_prompt: torch.Tensor) -> PackedLayout:
        prompt_valid, response_valid = prompt_tokens >= 0, response_tokens >= 0
        prompt_mask = _causal(prompt_valid)
        prompt_part = prompt_valid[seq_prompt][:, None, :].expand(
            -1, response_tokens.shape[1], -1)
        response_mask = torch.cat([prompt_part, _causal(response_valid)[:, 0]], dim=-1)
        return cls(prompt_tokens, response_tokens, seq_prompt, prompt_mask,
                   response_mask[:, None])

    def mask(self) -> torch.Tensor:
        """What to pass as the model's ``attention_mask`` alongside this layout."""
        return _NO_MASK.to(self.prompt_tokens.device)


def _causal(valid: torch.Tensor) -> torch.Tensor:
    """``[B, 1, L, L]`` causal mask over valid keys; padding queries see themselves only
    (an empty softmax row would put NaN into the backward pass)."""
    length = valid.shape[1]
    tril = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(length, dtype=torch.bool, device=valid.device)
    return ((tril & valid[:, None, :]) | eye)[:, None]


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x`` ``[H, N, d]`` at ``index`` ``[B, L]`` (-1 read as 0) -> ``[B, H, L, d]``."""
    return x[:, index.clamp(min=0)].transpose(0, 1)


def packed_sdpa(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                value: torch.Tensor, attention_mask: torch.Tensor | None,
                scaling: float | None = None, dropout: float = 0.0,
                packed_layout: PackedLayout | None = None, **kwargs: Any
                ) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: ``query`` ``[1, Hq, N, d]``, ``key``/``value``
    ``[1, Hkv, N, d]``; returns ``[1, N, Hq, d]``."""
    if packed_layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      scaling=scaling, dropout=dropout, **kwargs)
    if kwargs.get("sliding_window") or kwargs.get("softcap"):
        raise ValueError("packed graph batches do not support sliding-window or soft-capped "
                         "attention; set data.packing=false")
    layout = packed_layout
    q, k, v = query[0], key[0], value[0]
    options = {"dropout_p": dropout, "scale": scaling,
               "enable_gqa": query.shape[1] != key.shape[1]}
    prompt_k, prompt_v = _gather(k, layout.prompt_tokens), _gather(v, layout.prompt_tokens)
    prompt_out = F.scaled_dot_product_attention(
        _gather(q, layout.prompt_tokens), prompt_k, prompt_v, attn_mask=layout.prompt_mask,
        **options)
    response_out = F.scaled_dot_product_attention(
        _gather(q, layout.response_tokens),
        torch.cat([prompt_k[layout.seq_prompt], _gather(k, layout.response_tokens)], dim=2),
        torch.cat([prompt_v[layout.seq_prompt], _gather(v, layout.response_tokens)], dim=2),
        attn_mask=layout.response_mask, **options)
    out = q.new_zeros(q.shape[1], q.shape[0], q.shape[2])          # [N, Hq, d]
    for tokens, block in ((layout.prompt_tokens, prompt_out),
                          (layout.response_tokens, response_out)):
        valid = tokens >= 0
        out = out.index_copy(0, tokens[valid], block.transpose(1, 2)[valid].to(out.dtype))
    return out.unsqueeze(0), None


AttentionInterface.register(IMPLEMENTATION, packed_sdpa)
AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def enable_packed_attention(model: PreTrainedModel) -> None:
    """Switch an SDPA model to :func:`packed_sdpa` (idempotent; behaves as SDPA without a
    layout). Other attention implementations cannot take a packed batch."""
    current = model.config._attn_implementation
    if current == IMPLEMENTATION:
        return
    if current != "sdpa":
        raise ValueError(f"packed graph batches need SDPA attention, not {current!r}; "
                         "load the student with attn_implementation='sdpa' or set "
                         "data.packing=false")
    model.set_attn_implementation(IMPLEMENTATION)
