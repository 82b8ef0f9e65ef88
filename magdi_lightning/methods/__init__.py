"""The training methods: each a LightningModule following :mod:`.base`'s contract.

:mod:`.magdi` (MAGDi's NT, MR and NC losses on graph batches, and the reference code's
mode), :mod:`.multitask` (TinyLLM's and SIKeD's weighted per-task losses on task
batches), :mod:`.siked` (SIKeD's data-mixing rules between iterations, pure functions).
"""
