"""Measurement: the PoT authors' published output files, reproduced in our sandbox.

The authors' repository (github.com/TIGER-AI-Lab/Program-of-Thoughts, ``outputs/``) holds
their runs' output files, ``<dataset>[_zs|_sc]_s<start>_e<end>_<date>.jsonl``. They are not
redistributed here: put any of them in a folder and point ``MAGDI_POT_OUTPUTS`` at it
(without it, this test skips)::

    MAGDI_POT_OUTPUTS=/tmp/pot_outputs python3 -m pytest tests/test_pot_published_outputs.py -s

Each file's programs are run and read as the script that wrote it reads them
(:data:`~magdi_lightning.scoring.pot.READINGS`: the dataset and ``_zs`` in the file name
name the script, ``_sc`` runs are the same script voting over its samples), the agreement
with the recorded ``executed`` (``generated_prediction`` for AQuA) is printed, and held to
99.5%. Lines without ``generated`` (a run's prompt) are skipped.
"""

from __future__ import annotations

import json
import os
import re
from functools import partial
from pathlib import Path

import pytest

from magdi_lightning.scoring.pot import READINGS, agrees, read_records
from magdi_lightning.scoring.sandbox import SandboxLimits, run_programs

OUTPUTS_ENV = "MAGDI_POT_OUTPUTS"
_NAME = re.compile(r"(?P<dataset>[a-z0-9]+?)(?P<zs>_zs)?(?:_sc)?_s\d+_e-?\d+_[\d_]+\.jsonl")


def script_of(file_name: str) -> str | None:
    """The ``READINGS`` key of the script that wrote a published output file, if known."""
    named = _NAME.fullmatch(file_name.lower())
    if named is None:
        return None
    script = named["dataset"] + (named["zs"] or "")
    return script if script in READINGS else None


def test_script_of_names() -> None:
    assert script_of("gsm8K_zs_s0_e-1_11_19_09_55.jsonl") == "gsm8k_zs"
    assert script_of("svamp_sc_s0_e-1_11_08_14_02.jsonl") == "svamp"
    assert script_of("aqua_s0_e-1_11_06_18_38.jsonl") == "aqua"
    assert script_of("tatqa_cot_s0_e-1_11_11_21_19.jsonl") is None   # not a PoT run


def _files() -> list[Path]:
    folder = os.environ.get(OUTPUTS_ENV)
    if not folder:
        return []
    return sorted(path for path in Path(folder).glob("*.jsonl") if script_of(path.name))


@pytest.mark.skipif(not os.environ.get(OUTPUTS_ENV),
                    reason=f"set {OUTPUTS_ENV} to a folder of the PoT authors' outputs/*.jsonl")
@pytest.mark.parametrize("path", _files(), ids=lambda path: path.name)
def test_published_outputs_are_reproduced(path: Path) -> None:
    reading = READINGS[script_of(path.name)]
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [record for record in map(json.loads, lines)
               if "generated" in record and reading.field in record]
    # The authors' executor stops a program after 5 s of wall-clock time; ours by CPU and
    # wall time. Relaxed so that this machine's speed does not decide the outcome.
    run = partial(run_programs, limits=SandboxLimits(wall_seconds=60.0, cpu_seconds=30.0))
    answers, _ = read_records(records, reading, run)
    differ = [(index, ours, record[reading.field]) for index, (record, ours)
              in enumerate(zip(records, answers)) if not agrees(ours, record[reading.field])]
    agreement = 1 - len(differ) / max(len(records), 1)
    print(f"\n{path.name} ({script_of(path.name)}): {len(records) - len(differ)}/"
          f"{len(records)} agree = {100 * agreement:.2f}%; first differences: {differ[:5]}")
    assert records and agreement >= 0.995
