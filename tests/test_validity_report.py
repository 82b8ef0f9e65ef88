"""``benchmarks.validity``: each part's JSON becomes the tables and plot of
docs/benchmarks.md, and a child process's own wall time and peak memory are what it
reports."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import validity


def _accuracy(correct: int, total: int, tokens: float) -> dict:
    return {"correct": correct, "total": total, "accuracy": correct / total,
            "ci95": validity.wilson(correct, total), "student_tokens": tokens}


def _real_row(correct: int, trained: bool) -> dict:
    row = {"steps": 60, "gsm8k_heldout": _accuracy(correct, 100, 150.0),
           "svamp": _accuracy(correct // 2, 60, 90.0), "multiarith": _accuracy(3, 60, 80.0),
           "heldout_nt": 1.25, "val": {"val/nc_acc": 0.7, "val/mr_acc": None}}
    return {**row, "train": {"seconds": 612.3, "peak_rss_gb": 7.5}} if trained else row


def test_report_renders_every_part(tmp_path: Path) -> None:
    real = {method: _real_row(10 + i, method != "base")
            for i, method in enumerate(validity.REAL_METHODS)}
    real["teachers"] = {"teacher_tokens_per_question": 638.0, "counted_by": "tokenizer",
                        "val_graphs": 53, "nc_majority_baseline": 0.62}
    runs = {name: {"runs": [{"accuracy": 0.8 + i / 100} for i in range(3)], "mean": 0.81,
                   "std": 0.01, "paired_diff_vs_NT": {"mean": 0.0, "per_seed": [0, 0, 0]}}
            for name in validity.ABLATION}
    parts = {
        "real": real,
        "ablation": {"variants": runs, "seeds": [0, 1, 2]},
        "init": {"students": {"pretrained": {"accuracy_before": 0.0, "accuracy_after": 0.5,
                                             "val/nt": 0.4, "seconds": 900}}},
        "siked": {"untrained_accuracy": 0.1, "iterations": [
            {"iteration": 1, "training_examples": 30, "alpha": 1.0, "accuracy": 0.2,
             "accuracy/cot": 0.2, "accuracy/l2m": 0.1, "accuracy/pot": None,
             "chosen": {"cot": 0.75, "pot": 0.25}}]},
    }
    for part, result in parts.items():
        (tmp_path / f"{part}.json").write_text(json.dumps(result))
    validity.report(tmp_path)
    table = (tmp_path / "validity.md").read_text()
    assert "| base | 10.0% [6, 17] (n=100) |" in table
    assert "| magdi | 12.0% [7, 20] (n=100) | 10.0% [5, 20] (n=60) |" in table
    assert "612 s (60 steps) | 7.5 GB |" in table and "| - | - |" in table
    assert "| NT+MR+NC | 81.0% ± 1.0 | +0.0 pt (+0.0, +0.0, +0.0) |" in table
    assert "| SmolLM2 architecture, pretrained | 0.0% -> 50.0% | 0.400 | 900 s |" in table
    assert "| 1 | 30 | 1.00 | 0.200 | 0.200 | 0.100 | - | cot 75%, pot 25% |" in table
    assert (tmp_path / "validity.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "validity.json").read_text()).keys() == parts.keys()


def test_exact_mcnemar_p_values() -> None:
    assert validity.mcnemar_exact(5, 2) == 0.453125  # 2 * (1 + 7 + 21) / 2**7
    assert validity.mcnemar_exact(10, 0) == 2 / 2**10
    assert validity.mcnemar_exact(0, 0) == validity.mcnemar_exact(3, 3) == 1.0


def test_run_reports_the_childs_own_peak_memory(tmp_path: Path) -> None:
    script = tmp_path / "grow.py"
    script.write_text("block = b\"x\" * (300 * 2**20)\n")  # touched pages, not calloc
    cost = validity.run("grow", [], tmp_path)
    assert cost["peak_rss_gb"] >= 0.29 and cost["seconds"] > 0
