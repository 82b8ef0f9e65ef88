"""Helpers that Lightning's distributed strategies are configured with."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from torch import nn
from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

__all__ = ["transformer_block_policy"]

# Repeated transformer blocks across Hugging Face architectures: LlamaDecoderLayer,
# MistralDecoderLayer, Qwen2DecoderLayer, GemmaDecoderLayer, T5Block, GPT2Block, ...
_BLOCK = re.compile(r"(DecoderLayer|EncoderLayer|Block)$")


def _is_block(module: nn.Module) -> bool:
    return bool(_BLOCK.search(type(module).__name__))


def transformer_block_policy() -> Callable[..., bool]:
    """An FSDP auto-wrap policy making each transformer block its own unit, whatever the
    student's architecture (a class list would tie the config to one model family)."""
    return functools.partial(lambda_auto_wrap_policy, lambda_fn=_is_block)
