"""``magdi-report``: aggregate finished runs into one table (mean ± std over seeds).

Why: comparing configurations by single runs is comparing seeds. ``magdi-report`` reads
the run directories that ``magdi-train``, ``magdi-eval`` and ``magdi-siked`` write
(single runs and multirun sweeps alike), groups the runs of one configuration and shows,
per group and metric, the mean, the sample standard deviation and n::

    magdi-report outputs/                                  # every run under outputs/
    magdi-report 'outputs/train_multirun_*' --metrics all  # quoted globs work too
    magdi-report outputs/ --group-by method.loss_weights.mr optimizer.lr --plot val/loss
    magdi-report outputs/eval_* --metrics mean_accuracy benchmarks/gsm8k/accuracy

Runs are grouped by their command-line overrides without ``seed`` (``--ignore`` names
other overrides to disregard), or, with ``--group-by``, by dotted keys of their resolved
``config.yaml``. The default metrics are each run kind's headline metric
(``heldout_accuracy`` for training, ``mean_accuracy`` for evaluation, ``accuracy`` for
SIKeD); ``--metrics all`` adds every numeric metric all runs have, nested evaluation
metrics being named ``benchmarks/<name>/accuracy`` and so on.

It writes ``report.csv`` (long format: group, runs, metric, n, mean, std), ``report.md``
(the Markdown table, also printed) and ``report.png`` (bar chart of the ``--plot``
metric, default the first one, with std error bars) into ``--out`` (default: the first
input directory). The three are rendered first and each written atomically, so a failure
leaves no half-written report.

Bad input is never a crash. A run directory without its metrics file is unfinished (it
may still be running); one whose metrics, overrides or config file is corrupt or
missing where needed is unreadable. Both are skipped, counted and listed (in report.md,
and on stderr for unreadable ones, naming the file), because one broken run should
neither block the report of the others nor vanish unnoticed; ``--strict`` makes an
unreadable run an error instead. Errors about the report as a whole (a path that does
not exist, no finished run, a metric or key that no run has) exit with status 2 and a
message saying what to pass. The aggregation itself lives in
:mod:`magdi_lightning.runtime.aggregate`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from magdi_lightning.runtime.aggregate import (
    ALL_METRICS,
    DEFAULT_IGNORED_OVERRIDES,
    DEFAULT_METRICS,
    Report,
    ReportError,
    Skipped,
    build_report,
    collect_runs,
    expand_inputs,
    render_markdown,
    write_report,
)

PROG = "magdi-report"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Aggregate finished magdi-train/eval/siked runs into a table "
        "(mean ± sample std and n per group and metric).")
    parser.add_argument("inputs", nargs="+", metavar="DIR_OR_GLOB",
                        help="run directories, folders holding runs (searched recursively) "
                             "or glob patterns")
    parser.add_argument("--group-by", nargs="+", metavar="KEY", default=None,
                        help="dotted config.yaml keys to group by (default: the runs' "
                             "overrides without --ignore)")
    parser.add_argument("--ignore", nargs="*", metavar="KEY",
                        default=list(DEFAULT_IGNORED_OVERRIDES),
                        help="override keys that do not make a new group "
                             "(default: seed; pass none to keep every override)")
    parser.add_argument("--metrics", nargs="+", metavar="METRIC", default=None,
                        help=f"metrics to aggregate; '{DEFAULT_METRICS}' = headline metric "
                             f"of each run kind (the default), '{ALL_METRICS}' = those plus "
                             "every numeric metric all runs have")
    parser.add_argument("--out", type=Path, default=None,
                        help="where report.csv/.md/.png go (default: the first input dir)")
    parser.add_argument("--plot", metavar="METRIC", default=None,
                        help="metric of report.png (default: the first reported metric)")
    parser.add_argument("--strict", action="store_true",
                        help="fail on an unreadable run instead of skipping it")
    return parser


def default_out_dir(inputs: Sequence[str]) -> Path:
    """The first input directory (a file input stands for its folder)."""
    first = expand_inputs(inputs[:1])[0]
    return first.parent if first.is_file() else first


def requested_metrics(metrics: Sequence[str] | None, plot: str | None) -> list[str] | None:
    """The metrics to report: the plot metric joins the table so both always agree."""
    if plot is None:
        return list(metrics) if metrics else None
    return [*(metrics or [DEFAULT_METRICS]), plot]


def warn_skipped(skipped: Sequence[Skipped], strict: bool) -> None:
    """Name each unreadable run on stderr (an error with ``strict``); count the unfinished."""
    unreadable = [s for s in skipped if not s.unfinished]
    if strict and unreadable:
        raise ReportError("unreadable runs (--strict):" +
                          "".join(f"\n  {s.reason}" for s in unreadable))
    for item in unreadable:
        print(f"{PROG}: warning: skipping run {item.path}: {item.reason}", file=sys.stderr)
    unfinished = len(skipped) - len(unreadable)
    if unfinished:
        print(f"{PROG}: skipping {unfinished} unfinished run(s) (no metrics file yet)",
              file=sys.stderr)


def make_report(args: argparse.Namespace) -> tuple[Report, list[Path]]:
    """Collect, aggregate and write the report ``args`` asks for."""
    runs, skipped = collect_runs(args.inputs)
    report = build_report(runs, skipped, requested_metrics(args.metrics, args.plot),
                          args.group_by, args.ignore)
    warn_skipped(report.skipped, args.strict)
    out_dir = args.out if args.out is not None else default_out_dir(args.inputs)
    return report, write_report(report, out_dir, args.plot)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        report, written = make_report(args)
    except ReportError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(render_markdown(report), end="")
    print(f"\nwrote {', '.join(p.name for p in written)} to {written[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
