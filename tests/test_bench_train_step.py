"""The training-step and scaling benchmarks run end to end and report every figure they
promise, at their smallest settings. No timing is asserted: machine speed must not decide
a test. Everything the runs write goes to pytest's temporary folder."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("nodes_per_s", "tokens_per_s", "graphs_per_s", "seconds")


def _check_modes(row: dict) -> None:
    for mode in ("packed", "unpacked", "reference"):
        assert all(math.isfinite(row[mode][k]) and row[mode][k] > 0 for k in FIGURES), mode
        assert row[mode]["peak_mb"] >= 0
    # The same graphs in every mode: the same nodes and node tokens.
    assert row["packed"]["nodes"] == row["unpacked"]["nodes"] == row["reference"]["nodes"]
    assert row["packed"]["tokens"] == row["reference"]["tokens"]
    # Packing stores fewer row tokens than one padded row per node.
    assert row["packed"]["row_tokens"] < row["unpacked"]["row_tokens"]
    assert row["packed_speedup"] > 0 and row["unpacked_speedup"] > 0


def test_train_step_and_scaling_benchmarks_report_every_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ is not part of the installed package
    monkeypatch.chdir(tmp_path)
    from benchmarks import scaling, train_step

    results = train_step.main(["--data", "toy", "--student", "tiny", "--steps", "1",
                               "--warmup", "0", "--graphs-per-batch", "2"])
    _check_modes(results["toy/tiny"])
    results = scaling.main(["--sizes", "3x2", "--graphs-per-batch", "2", "--steps", "1",
                            "--warmup", "0"])
    row = results["3x2/2"]
    _check_modes(row)
    assert row["packed"]["ms_per_node"] > 0


def test_profile_step_lists_the_costliest_operators(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.chdir(tmp_path)
    from benchmarks import profile_step

    result = profile_step.main(["--data", "toy", "--student", "tiny", "--steps", "1",
                                "--warmup", "0", "--rows", "5"])
    assert result["device"] in ("cpu", "cuda") and result["total_ms"] > 0
    assert len(result["ops"]) == 5
    shares = [op["share"] for op in result["ops"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1
    assert all(op["calls"] > 0 for op in result["ops"])
