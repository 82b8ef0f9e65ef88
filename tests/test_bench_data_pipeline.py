"""The data-pipeline benchmark runs end to end and reports every figure it promises.

Smallest settings on a small toy world: the test checks the report's structure and that
its numbers are positive and finite, never how fast anything is (machine speed must not
decide a test). Everything the run writes goes to pytest's temporary folder.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_data_pipeline_benchmark_reports_every_stage(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ is not part of the installed package
    from benchmarks.data_pipeline import main

    work, temp = tmp_path / "work", tmp_path / "temp"
    work.mkdir()
    temp.mkdir()
    monkeypatch.chdir(work)  # relative defaults (outputs/...) would land here, not in the repo
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # the per-run cache folders
    results = main(["--data", "toy", "--steps", "1", "--warmup", "0", "--repeats", "1",
                    "--graphs-per-batch", "2",
                    "--override", "data.importer.options.num_questions=60"])

    assert list(results) == ["toy"]
    row = results["toy"]
    assert row["graphs"] == 60 and row["nodes"] > row["graphs"]
    assert 0 < row["train_graphs"] < row["graphs"]
    for stage in ("cold", "cached"):
        figures = row[stage]
        assert set(figures) == {"graphs_per_s", "total_s", "import_s", "validate_s",
                                "tokenize_s"}
        assert all(math.isfinite(value) and value >= 0 for value in figures.values())
        assert _positive(figures["graphs_per_s"]) and _positive(figures["total_s"])
    assert _positive(row["cold"]["import_s"])  # the importer ran once, on the cold cache
    assert row["collate"]["graphs"] % row["train_graphs"] == 0  # whole epochs
    assert _positive(row["collate"]["graphs_per_s"]) and _positive(row["collate"]["seconds"])
    assert row["train"]["steps"] == 1 and row["train"]["graphs"] == 2
    assert _positive(row["train"]["seconds"]) and _positive(row["train"]["graphs_per_s"])
    assert set(row["ratios"]) == {"cold", "cached", "collate"}
    assert all(_positive(ratio) for ratio in row["ratios"].values())
    assert list(work.iterdir()) == []  # the training step read the temporary cache
    assert not list(temp.glob("magdi-bench-*"))  # and its temporary caches are gone
