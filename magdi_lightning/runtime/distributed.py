"""Helpers that Lightning's distributed strategies are configured with."""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

from magdi_lightning.models.blocks import is_transformer_block

__all__ = ["transformer_block_policy"]


def transformer_block_policy() -> Callable[..., bool]:
    """An FSDP auto-wrap policy making each transformer block its own unit, whatever the
    student's architecture (a class list would tie the config to one model family)."""
    return functools.partial(lambda_auto_wrap_policy, lambda_fn=is_transformer_block)
