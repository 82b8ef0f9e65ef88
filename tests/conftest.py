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
