"""The generation benchmark runs end to end and reports every figure it promises.

Smallest settings on the toy benchmark (synthetic questions, no data files): the test
checks the report's structure, that its numbers are positive and finite, and that batched
answers equal one-at-a-time ones (greedy decoding with left padding computes each row as
it would alone); never how fast anything is (machine speed must not decide a test). The
run is pointed at pytest's temporary folder, so nothing it might write lands in the repo.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN_FIGURES = {"batch_size", "examples", "generated_tokens", "at_max_new_tokens",
               "distinct_outputs", "seconds", "tokens_per_s", "examples_per_s", "peak_mb"}
COMPARISON = {"tokens_per_s_ratio", "examples_per_s_ratio", "outputs_match", "mismatched",
              "first_mismatch", "same_token_count"}


def _positive(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def test_generation_benchmark_compares_batched_with_one_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ is not part of the installed package
    from benchmarks.generation import main

    monkeypatch.chdir(tmp_path)  # relative defaults (outputs/...) would land here
    results = main(["--benchmarks", "toy", "--n", "4", "--max-new-tokens", "4",
                    "--batch-sizes", "2", "4"])

    assert results["n"] == 4 and results["max_new_tokens"] == 4
    assert _positive(results["parameters"]) and _positive(results["torch_threads"])
    assert list(results["benchmarks"]) == ["toy"]
    row = results["benchmarks"]["toy"]
    assert row["examples"] == 4 and _positive(row["mean_prompt_tokens"])
    single, batched = row["single"], row["batched"]
    assert set(single) == RUN_FIGURES and single["batch_size"] == 1
    assert list(batched) == ["2", "4"]
    for size, run in batched.items():
        assert set(run) == RUN_FIGURES | COMPARISON and run["batch_size"] == int(size)
    for run in [single, *batched.values()]:
        assert run["examples"] == 4
        assert 0 < run["generated_tokens"] <= 4 * 4  # at most max_new_tokens per answer
        assert 0 <= run["at_max_new_tokens"] <= 4 and 1 <= run["distinct_outputs"] <= 4
        for key in ("seconds", "tokens_per_s", "examples_per_s"):
            assert _positive(run[key]), (key, run[key])
        assert run["peak_mb"] is None or (math.isfinite(run["peak_mb"])
                                          and run["peak_mb"] >= 0)
    for run in batched.values():
        assert _positive(run["tokens_per_s_ratio"]) and _positive(run["examples_per_s_ratio"])
        assert run["outputs_match"] and run["mismatched"] == 0 and run["first_mismatch"] is None
        assert run["same_token_count"]
        assert run["generated_tokens"] == single["generated_tokens"]
    assert list(tmp_path.iterdir()) == []
