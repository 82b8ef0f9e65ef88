"""magdi-report: fake run directories in, exact statistics and report files out."""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from magdi_lightning.cli.report import main
from magdi_lightning.cli.siked import run_metrics
from magdi_lightning.runtime import aggregate
from magdi_lightning.runtime.aggregate import (
    ReportError,
    build_report,
    collect_runs,
    flatten_metrics,
    load_run,
    write_report,
)

MR = "method.loss_weights.mr=0.5"
#: heldout_accuracy per seed: config A (mr=0.5) and B (defaults)
A_ACC = {1: 0.5, 2: 0.75, 3: 1.0}
B_ACC = {1: 0.25, 2: 0.5}
B_STD = statistics.stdev([0.25, 0.5])  # sqrt(2) / 8


def make_run(directory: Path, overrides: list[str] | None, config: dict[str, Any] | None,
             metrics: dict[str, Any] | str | None) -> Path:
    """A run directory as magdi-train writes it; ``metrics`` None: unfinished, a string:
    written verbatim (corrupt)."""
    directory.mkdir(parents=True)
    if overrides is not None:
        (directory / ".hydra").mkdir()
        (directory / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if config is not None:
        (directory / "config.yaml").write_text(yaml.safe_dump(config))
    if isinstance(metrics, str):
        (directory / "metrics.json").write_text(metrics)
    elif metrics is not None:
        (directory / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return directory


def train_config(seed: int, mr: float = 0.1, lr: float = 3e-3) -> dict[str, Any]:
    return {"seed": seed, "method": {"loss_weights": {"nt": 1.0, "mr": mr, "nc": 1.0}},
            "optimizer": {"lr": lr, "weight_decay": 0.0}, "task_name": "train"}


def train_metrics(accuracy: float, directory: Path, loss: float = 1.0) -> dict[str, Any]:
    return {"output_dir": str(directory), "heldout_questions": 200,
            "heldout_accuracy_untrained": 0.0, "fit_seconds": 10.5, "global_step": 900,
            "train/loss": loss, "val/loss": loss, "heldout_accuracy": accuracy,
            "total_seconds": 12.0}


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """Config A (mr=0.5) x 3 seeds and config B (defaults) x 2 seeds in a multirun,
    one unfinished run and one with a corrupt metrics.json beside it."""
    root = tmp_path / "outputs"
    sweep_dir = root / "train_multirun_2026-01-01_00-00-00-000000_local"
    job = 0
    for seed, accuracy in A_ACC.items():
        directory = sweep_dir / str(job)
        make_run(directory, [f"seed={seed}", MR], train_config(seed, mr=0.5),
                 train_metrics(accuracy, directory, loss=seed + 0.5))
        job += 1
    for seed, accuracy in B_ACC.items():
        directory = sweep_dir / str(job)
        make_run(directory, [f"seed={seed}"], train_config(seed),
                 train_metrics(accuracy, directory, loss=2.5))
        job += 1
    (sweep_dir / "multirun.yaml").write_text("hydra: {}\n")
    make_run(root / "train_unfinished", ["seed=9", MR], train_config(9, mr=0.5), None)
    make_run(root / "train_corrupt", ["seed=4", MR], train_config(4, mr=0.5), '{"heldout_acc')
    return root


def stats_by_label(report: aggregate.Report, metric: str) -> dict[str, aggregate.Stat]:
    return {group.label: group.stats[metric] for group in report.groups}


# ---------------------------------------------------------------- aggregation
def test_seeds_of_one_configuration_aggregate_with_exact_statistics(sweep: Path) -> None:
    runs, skipped = collect_runs([str(sweep)])
    report = build_report(runs, skipped)
    assert report.metrics == ("heldout_accuracy",)
    assert [g.label for g in report.groups] == ["(no overrides)", MR]
    stats = stats_by_label(report, "heldout_accuracy")
    assert stats[MR] == aggregate.Stat(n=3, mean=0.75, std=0.25)
    assert stats["(no overrides)"] == aggregate.Stat(n=2, mean=0.375, std=B_STD)
    assert math.isclose(B_STD, math.sqrt(2) / 8, rel_tol=1e-15)
    assert report.runs == 5


def test_unfinished_and_corrupt_runs_are_listed_as_skipped(sweep: Path) -> None:
    runs, skipped = collect_runs([str(sweep)])
    assert len(runs) == 5
    by_name = {s.path.name: s for s in skipped}
    assert set(by_name) == {"train_unfinished", "train_corrupt"}
    assert by_name["train_unfinished"].unfinished
    corrupt = by_name["train_corrupt"]
    assert not corrupt.unfinished
    assert str(sweep / "train_corrupt" / "metrics.json") in corrupt.reason
    assert "not valid JSON" in corrupt.reason


def test_single_run_has_zero_std_and_std_is_the_sample_std() -> None:
    assert aggregate.aggregate([0.3]) == aggregate.Stat(1, 0.3, 0.0)
    assert aggregate.aggregate([1.0, 2.0, 3.0, 4.0]) == aggregate.Stat(
        4, 2.5, statistics.stdev([1.0, 2.0, 3.0, 4.0]))
    empty = aggregate.aggregate([])
    assert empty.n == 0 and math.isnan(empty.mean)
    diverged = aggregate.aggregate([1.0, math.nan])  # a diverged seed is not averaged away
    assert diverged.n == 2 and math.isnan(diverged.mean) and math.isnan(diverged.std)


def test_override_order_and_seed_spelling_do_not_split_a_group(tmp_path: Path) -> None:
    make_run(tmp_path / "a", ["seed=1", "optimizer.lr=1e-4", MR], train_config(1),
             train_metrics(0.5, tmp_path / "a"))
    make_run(tmp_path / "b", [MR, "+seed=2", "optimizer.lr=1e-4"], train_config(2),
             train_metrics(0.7, tmp_path / "b"))
    report = build_report(*collect_runs([str(tmp_path)]))
    (group,) = report.groups
    assert group.label == f"{MR} optimizer.lr=1e-4"
    assert group.stats["heldout_accuracy"] == aggregate.Stat(2, 0.6, statistics.stdev([0.5, 0.7]))
    # without ignoring seed every run is its own group
    assert len(build_report(*collect_runs([str(tmp_path)]), ignore=()).groups) == 2


def test_grouping_by_config_keys(tmp_path: Path) -> None:
    values = [(0.5, 1e-4, 0.6), (0.5, 1e-4, 0.8), (0.5, 3e-3, 0.1), (0.1, 3e-3, 0.4)]
    for index, (mr, lr, accuracy) in enumerate(values):
        directory = tmp_path / f"run{index}"
        make_run(directory, [f"seed={index}"], train_config(index, mr=mr, lr=lr),
                 train_metrics(accuracy, directory))
    report = build_report(*collect_runs([str(tmp_path)]),
                          group_by=["method.loss_weights.mr", "optimizer.lr"])
    assert report.columns == ("method.loss_weights.mr", "optimizer.lr")
    # numeric keys sort by value (1e-4 before 3e-3), not as strings
    assert [g.key for g in report.groups] == [
        (("method.loss_weights.mr", 0.1), ("optimizer.lr", 3e-3)),
        (("method.loss_weights.mr", 0.5), ("optimizer.lr", 1e-4)),
        (("method.loss_weights.mr", 0.5), ("optimizer.lr", 3e-3))]
    stats = [g.stats["heldout_accuracy"] for g in report.groups]
    assert stats[0] == aggregate.Stat(1, 0.4, 0.0)
    assert stats[1] == aggregate.Stat(2, 0.7, statistics.stdev([0.6, 0.8]))
    assert stats[1].mean == statistics.fmean([0.6, 0.8])
    assert stats[2] == aggregate.Stat(1, 0.1, 0.0)


def test_config_key_missing_in_some_runs_groups_as_missing_and_in_all_is_an_error(
        tmp_path: Path) -> None:
    make_run(tmp_path / "a", [], {"method": {"loss_weights": {"mr": 0.5}}},
             {"heldout_accuracy": 0.5})
    make_run(tmp_path / "b", [], {"method": {"name": "sft"}}, {"heldout_accuracy": 0.25})
    runs, skipped = collect_runs([str(tmp_path)])
    report = build_report(runs, skipped, group_by=["method.loss_weights.mr"])
    assert [g.key[0][1] for g in report.groups] == [0.5, aggregate.MISSING]
    with pytest.raises(ReportError, match=r"'optimzer\.lr' is in no run's config"):
        build_report(runs, skipped, group_by=["optimzer.lr"])


def test_run_without_config_or_overrides_is_skipped_naming_the_file(tmp_path: Path) -> None:
    make_run(tmp_path / "ok", ["seed=1"], train_config(1), {"heldout_accuracy": 0.5})
    make_run(tmp_path / "no_config", ["seed=2"], None, {"heldout_accuracy": 0.25})
    (tmp_path / "bad_config").mkdir()
    (tmp_path / "bad_config" / "config.yaml").write_text("seed: [1, 2\n")
    (tmp_path / "bad_config" / "metrics.json").write_text('{"heldout_accuracy": 0.1}')
    runs, skipped = collect_runs([str(tmp_path)])
    report = build_report(runs, skipped, group_by=["optimizer.lr"])
    assert report.runs == 1
    reasons = {s.path.name: s.reason for s in report.skipped}
    assert str(tmp_path / "no_config" / "config.yaml") in reasons["no_config"]
    assert str(tmp_path / "bad_config" / "config.yaml") in reasons["bad_config"]
    # grouping by overrides needs .hydra/overrides.yaml, which bad_config lacks
    by_overrides = build_report(runs, skipped)
    assert {s.path.name for s in by_overrides.skipped} == {"bad_config"}
    assert "overrides.yaml: missing" in by_overrides.skipped[0].reason


# ---------------------------------------------------------------- metric shapes
EVAL_METRICS = {
    "model": "outputs/train_x/student",
    "benchmarks": {
        "gsm8k": {"accuracy": 0.5, "correct": 1, "total": 2, "ci95_low": 0.1,
                  "ci95_high": 0.9, "mean_output_tokens": 30.0,
                  "self_consistency": {"k": 3, "accuracy": 0.5}},
        "svamp": {"accuracy": 1.0, "correct": 2, "total": 2, "ci95_low": 0.3,
                  "ci95_high": 1.0, "mean_output_tokens": float("nan")},
    },
    "mean_accuracy": 0.75,
    "token_efficiency": {"matched_questions": 2, "teacher_to_student_ratio": None,
                         "count_method": "num_tokens"},
}


def test_eval_metrics_are_flattened_and_mean_accuracy_is_the_default(tmp_path: Path) -> None:
    for seed, (gsm8k, mean) in enumerate([(0.5, 0.75), (0.25, 0.5)]):
        metrics = json.loads(json.dumps(EVAL_METRICS))
        metrics["benchmarks"]["gsm8k"]["accuracy"] = gsm8k
        metrics["mean_accuracy"] = mean
        make_run(tmp_path / f"eval_{seed}", [f"seed={seed}", "benchmark=[gsm8k,svamp]"],
                 {"seed": seed}, metrics)
    runs, skipped = collect_runs([str(tmp_path)])
    assert {run.kind for run in runs} == {"eval"}
    flat = runs[0].metrics
    assert flat["benchmarks/gsm8k/accuracy"] == 0.5
    assert flat["benchmarks/gsm8k/self_consistency/k"] == 3
    assert math.isnan(flat["benchmarks/svamp/mean_output_tokens"])  # NaN kept, not hidden
    assert "model" not in flat and "token_efficiency/teacher_to_student_ratio" not in flat
    assert "token_efficiency/count_method" not in flat
    report = build_report(runs, skipped)
    assert report.metrics == ("mean_accuracy",)
    (group,) = report.groups
    assert group.stats["mean_accuracy"] == aggregate.Stat(2, 0.625, statistics.stdev([0.75, 0.5]))
    everything = build_report(runs, skipped, metrics=["all"])
    assert everything.metrics[0] == "mean_accuracy"
    assert "benchmarks/gsm8k/accuracy" in everything.metrics
    assert everything.metrics.count("mean_accuracy") == 1
    assert group.stats["mean_accuracy"].n == 2
    gsm8k = build_report(runs, skipped, metrics=["benchmarks/gsm8k/accuracy"]).groups[0]
    assert gsm8k.stats["benchmarks/gsm8k/accuracy"] == aggregate.Stat(
        2, 0.375, statistics.stdev([0.5, 0.25]))


def test_flatten_keeps_numbers_only() -> None:
    flat = flatten_metrics({"a": 1, "b": True, "c": "x", "d": None, "e": [1, 2],
                            "f": {"g": 2.5, "h": {"i": 3}}})
    assert flat == {"a": 1.0, "f/g": 2.5, "f/h/i": 3.0}


def test_metrics_all_is_defaults_plus_metrics_every_run_has(sweep: Path) -> None:
    runs, skipped = collect_runs([str(sweep)])
    runs[0] = aggregate.Run(runs[0].path, runs[0].kind, {**runs[0].metrics, "only_here": 1.0})
    report = build_report(runs, skipped, metrics=["all"])
    assert report.metrics[0] == "heldout_accuracy"
    assert {"val/loss", "train/loss", "global_step", "fit_seconds"} <= set(report.metrics)
    assert "only_here" not in report.metrics and "output_dir" not in report.metrics
    loss = stats_by_label(report, "val/loss")
    assert loss[MR] == aggregate.Stat(3, 2.5, 1.0)
    assert loss["(no overrides)"] == aggregate.Stat(2, 2.5, 0.0)


def test_unknown_metric_is_an_error_listing_the_available_ones(sweep: Path) -> None:
    runs, skipped = collect_runs([str(sweep)])
    with pytest.raises(ReportError, match=r"'val/los' is in no run's metrics.*val/loss"):
        build_report(runs, skipped, metrics=["val/los"])


def test_siked_run_is_one_run_of_its_last_iteration(tmp_path: Path) -> None:
    run = make_run(tmp_path / "siked_x", ["seed=1"], {"seed": 1}, None)
    rows = [{"iteration": 1, "accuracy": 0.4, "accuracy/cot": 0.3, "chosen": {"cot": 1.0}},
            {"iteration": 2, "accuracy": 0.6, "accuracy/cot": 0.5, "chosen": {"cot": 0.5}},
            {"iteration": 3, "accuracy": 0.5, "accuracy/cot": 0.55, "chosen": {"cot": 0.25}}]
    for row in rows:  # per-iteration metrics must not count as runs of their own
        (run / f"iteration_{row['iteration']}").mkdir()
        (run / f"iteration_{row['iteration']}" / "metrics.json").write_text(json.dumps(row))
    pending = load_run(run)  # no metrics.json yet
    assert isinstance(pending, aggregate.Skipped) and pending.unfinished
    (run / "metrics.json").write_text(json.dumps(run_metrics(rows, 0.0)))
    runs, skipped = collect_runs([str(tmp_path)])
    assert not skipped
    (siked,) = runs
    assert siked.kind == "siked" and siked.primary == "accuracy"
    assert siked.metrics["accuracy"] == 0.5 and siked.metrics["best_accuracy"] == 0.6
    assert siked.metrics["chosen/cot"] == 0.25 and siked.metrics["iterations"] == 3


def test_no_finished_run_is_an_error(tmp_path: Path) -> None:
    make_run(tmp_path / "running", ["seed=1"], train_config(1), None)
    with pytest.raises(ReportError, match="no finished run to report: 1 unfinished"):
        build_report(*collect_runs([str(tmp_path)]))


# ---------------------------------------------------------------- files and CLI
def test_cli_writes_csv_markdown_and_png(sweep: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out), "--metrics", "heldout_accuracy", "val/loss"]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.md", "report.png"]

    rows = list(csv.DictReader((out / "report.csv").open()))
    assert rows[0].keys() == {"overrides", "runs", "metric", "n", "mean", "std"}
    cells = {(r["overrides"], r["metric"]): r for r in rows}
    a = cells[(MR, "heldout_accuracy")]
    assert (a["runs"], a["n"], float(a["mean"]), float(a["std"])) == ("3", "3", 0.75, 0.25)
    b = cells[("(no overrides)", "heldout_accuracy")]
    assert (float(b["mean"]), float(b["std"])) == (0.375, B_STD)  # repr: exact round trip

    markdown = (out / "report.md").read_text()
    assert f"| {MR} | 3 | 0.7500 ± 0.2500 (n=3) | 2.5000 ± 1.0000 (n=3) |" in markdown
    assert "| (no overrides) | 2 | 0.3750 ± 0.1768 (n=2) | 2.5000 ± 0.0000 (n=2) |" in markdown
    assert "| overrides | runs | heldout_accuracy | val/loss |" in markdown
    assert "Skipped 2 runs (1 unfinished, 1 unreadable)" in markdown
    assert markdown in captured.out  # the table is printed
    assert str(sweep / "train_corrupt" / "metrics.json") in captured.err
    assert "1 unfinished run" in captured.err

    png = (out / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from matplotlib.image import imread

    image = imread(out / "report.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert not list(out.glob(".*.tmp"))


def test_cli_defaults_out_to_the_first_input_and_plot_metric_joins_the_table(
        sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--plot", "val/loss"]) == 0
    markdown = (sweep / "report.md").read_text()
    assert "| heldout_accuracy | val/loss |" in markdown
    assert (sweep / "report.png").stat().st_size > 0
    capsys.readouterr()
    # the report files themselves are not runs: a second report sees the same runs
    assert main([str(sweep)]) == 0
    assert "5 runs in 2 groups" in capsys.readouterr().out


def test_cli_group_by_config_keys(sweep: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--out", str(tmp_path), "--group-by",
                 "method.loss_weights.mr", "optimizer.lr"]) == 0
    markdown = capsys.readouterr().out
    assert "| method.loss_weights.mr | optimizer.lr | runs | heldout_accuracy |" in markdown
    assert "| 0.1 | 0.003 | 2 | 0.3750 ± 0.1768 (n=2) |" in markdown
    assert "| 0.5 | 0.003 | 3 | 0.7500 ± 0.2500 (n=3) |" in markdown


def test_cli_strict_makes_a_corrupt_run_an_error(sweep: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--out", str(tmp_path / "r"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "magdi-report: error: unreadable runs (--strict)" in err
    assert str(sweep / "train_corrupt" / "metrics.json") in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["{root}/nowhere"], "nowhere: no such file or directory"),
    (["{root}/nothing_*"], "the pattern matches no file or directory"),
    (["{root}", "--metrics", "accuracy_typo"], "'accuracy_typo' is in no run's metrics"),
    (["{root}", "--group-by", "no.such.key"], "'no.such.key' is in no run's config"),
    (["{root}", "--plot", "nope"], "'nope' is in no run's metrics"),
])
def test_cli_bad_input_exits_2_with_a_clear_message(
        sweep: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    assert main([a.format(root=sweep) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("magdi-report: error:") and message in err
    assert not (sweep / "report.md").exists()


def test_cli_accepts_quoted_globs(sweep: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"{sweep}/train_multirun_*/*", "--out", str(tmp_path)]) == 0
    assert "5 runs in 2 groups" in capsys.readouterr().out


def test_failed_rendering_leaves_the_previous_report_untouched(
        sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report"
    write_report(build_report(*collect_runs([str(sweep)])), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*_: object) -> bytes:
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(aggregate, "render_png", broken)
    with pytest.raises(RuntimeError):
        write_report(build_report(*collect_runs([str(sweep)]), metrics=["all"]), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_magdi_report_console_script(sweep: Path, tmp_path: Path) -> None:
    script = shutil.which("magdi-report")
    command = [script] if script else [sys.executable, "-m", "magdi_lightning.cli.report"]
    out = tmp_path / "from_subprocess"
    result = subprocess.run([*command, str(sweep), "--out", str(out), "--metrics", "all"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"| {MR} | 3 | 0.7500 ± 0.2500 (n=3) |" in result.stdout
    assert "train_corrupt" in result.stderr
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
    failed = subprocess.run([*command, str(tmp_path / "missing")], capture_output=True,
                            text=True, timeout=120)
    assert failed.returncode == 2 and "no such file or directory" in failed.stderr
