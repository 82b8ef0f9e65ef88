"""The student's repeated transformer blocks, found by class name for any architecture.

FSDP wraps each block as its own unit (:mod:`magdi_lightning.runtime.distributed`) and
``compile.enabled`` compiles each block on its own (regional compilation): the blocks are
where the FLOPs are, they are identical, so one compiled graph serves every layer, and
compiling a block takes seconds where the whole model (with its Python-side batch
handling, pooling and graph losses) would break into many graphs.
"""

from __future__ import annotations

import re

from torch import nn

__all__ = ["compile_blocks", "is_transformer_block", "transformer_blocks"]

# Repeated transformer blocks across Hugging Face architectures: LlamaDecoderLayer,
# MistralDecoderLayer, Qwen2DecoderLayer, GemmaDecoderLayer, T5Block, GPT2Block, ...
_BLOCK = re.compile(r"(DecoderLayer|EncoderLayer|Block)$")


def is_transformer_block(module: nn.Module) -> bool:
    return bool(_BLOCK.search(type(module).__name__))


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The outermost transformer blocks of ``model`` (a block inside a block is part of
    its parent), in module order."""
    blocks: list[nn.Module] = []
    inside: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(f"{parent}.") for parent in inside):
            continue
        if is_transformer_block(module):
            blocks.append(module)
            inside.append(name)
    return blocks


def compile_blocks(model: nn.Module, dynamic: bool | None = True, mode: str | None = None,
                   fullgraph: bool = False) -> int:
    """``torch.compile`` every transformer block of ``model`` in place; returns how many.

    In place (``nn.Module.compile``) keeps parameter names, so checkpoints, LoRA adapters
    and ``save_pretrained`` are unchanged. ``dynamic=True`` because graph batches change
    length every step; with static shapes every new length would recompile.
    """
    blocks = transformer_blocks(model)
    if not blocks:
        raise ValueError(f"no transformer blocks found in {type(model).__name__} to compile "
                         "(looked for classes named *DecoderLayer, *EncoderLayer, *Block)")
    for block in blocks:
        block.compile(dynamic=dynamic, mode=mode, fullgraph=fullgraph)
    return len(blocks)
