"""Aggregate finished runs into one table: mean, sample std and n per configuration.

A single training run says little: on the toy world two seeds of one configuration differ
by several points of held-out accuracy, so a comparison of configurations is only
meaningful over several seeds, with their spread. This module turns a pile of run
directories (``magdi-train``, ``magdi-eval``, ``magdi-siked``, single runs or multiruns)
into that comparison; :mod:`magdi_lightning.cli.report` is its command line. Everything
here reads files and returns values (or renders bytes), so tests need neither a model
nor a shell, and nothing is written until the whole report has been rendered.

What is a run. A directory holding ``metrics.json``, ``run.json`` (the run record every
command writes, :mod:`magdi_lightning.runtime.runs`) or a ``.hydra/`` folder; it is finished
once ``metrics.json`` is there. Every command writes that file the same way, with its
``run_kind`` (train: a flat dict; eval: ``{model, benchmarks: {name: {...}},
mean_accuracy, ...}``; siked: the last iteration's row plus ``untrained_accuracy``,
``best_accuracy`` and ``iterations``), so no kind of run needs reading of its own. The
search stops at the first run directory on each path, so the per-iteration
``metrics.json`` files inside a SIKeD run and the files under ``student/`` or ``wandb/``
are never taken for runs. Nested metrics are flattened
with ``/`` (``benchmarks/gsm8k/accuracy``); only numbers count as metrics (booleans,
strings, nulls and lists are left out; NaN is kept, so a diverged run shows as ``nan``
instead of silently improving the mean).

How runs are grouped. By default by their command-line overrides
(``.hydra/overrides.yaml``) minus ``seed`` (sorted, so the order they were typed in
does not matter), which is exactly "the seeds of one configuration". Two runs that reach
the same configuration through different overrides (``method=magdi`` typed out, or left
as the default) land in different groups; grouping by config keys (``config.yaml``,
dotted keys such as ``method.loss_weights.mr``) compares what was actually run. A key a
run's config lacks groups as ``(missing)``; a key no run has is an error (a typo).

Bad input, and why it is handled this way. One broken run must not hide the fifty good
ones, nor be silently dropped. So a run directory without its metrics file is listed as
*unfinished* (it may still be running), and a run whose metrics file is not valid JSON
(or not an object), or whose ``overrides.yaml``/``config.yaml`` is missing or unreadable
when the grouping needs it, is *skipped*; both are returned as :class:`Skipped` with a
reason naming the file, counted and listed in the report (``strict=True`` in the CLI
turns an unreadable run into an error instead). Problems with the report as a whole
(an input path that does not exist, no finished run at all, a metric or group key that
no run has) raise :class:`ReportError` with a message saying what to pass instead.

Statistics: mean, sample standard deviation (``n - 1`` in the denominator, the
convention for seeds drawn from a population; 0 for a single run) and n, the number of
runs of the group that have the metric (the table also shows the runs of the group, so
a metric missing from some runs is visible).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, stdev
from typing import TYPE_CHECKING, Any

from magdi_lightning.io import write_bytes_atomically

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ALL_METRICS",
    "DEFAULT_IGNORED_OVERRIDES",
    "DEFAULT_METRICS",
    "PRIMARY_METRICS",
    "Group",
    "Report",
    "ReportError",
    "Run",
    "Skipped",
    "Stat",
    "aggregate",
    "build_report",
    "collect_runs",
    "find_run_dirs",
    "flatten_metrics",
    "load_run",
    "render_csv",
    "render_markdown",
    "render_png",
    "write_report",
]

METRICS_FILE = "metrics.json"
RUN_RECORD_FILE = "run.json"
CONFIG_FILE = "config.yaml"
HYDRA_DIR = ".hydra"
OVERRIDES_FILE = f"{HYDRA_DIR}/overrides.yaml"

#: Each run kind's headline metric (train, eval, SIKeD and single-benchmark eval), in
#: order of preference: the default metrics of a report are those its runs have.
PRIMARY_METRICS = ("heldout_accuracy", "mean_accuracy", "accuracy")
#: Overrides that tell runs of one configuration apart rather than configurations.
DEFAULT_IGNORED_OVERRIDES = ("seed",)
#: The ``metrics`` value meaning "the defaults plus every metric all runs have".
ALL_METRICS = "all"
#: The ``metrics`` value meaning "the runs' headline metrics" (what no value gives).
DEFAULT_METRICS = "default"
#: Shown for a ``group_by`` key that a run's config does not have.
MISSING = "(missing)"
NO_OVERRIDES = "(no overrides)"

REPORT_FILES = ("report.csv", "report.md", "report.png")
_PNG_DPI = 150
_LABEL_WIDTH = 40
_LABEL_LINES = 4


class ReportError(ValueError):
    """The report as a whole cannot be made; the message says why and what to pass."""


class RunError(ValueError):
    """One run cannot be used; the message names the file at fault."""


@dataclass(frozen=True)
class Run:
    """A finished run: its directory, what wrote it, and its numeric metrics."""

    path: Path
    kind: str  # its run_kind (train, eval, siked), or "metrics" (an unrecognised flat dict)
    metrics: Mapping[str, float]

    @property
    def primary(self) -> str | None:
        """The run's headline metric, if it has one of :data:`PRIMARY_METRICS`."""
        return next((name for name in PRIMARY_METRICS if name in self.metrics), None)


@dataclass(frozen=True)
class Skipped:
    """A run directory left out of the report, and why."""

    path: Path
    reason: str
    unfinished: bool = False


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation and number of runs of one metric in one group."""

    n: int
    mean: float
    std: float


GroupKey = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Group:
    """Runs of one configuration and their statistics per metric."""

    key: GroupKey
    runs: tuple[Run, ...]
    stats: Mapping[str, Stat]

    @property
    def label(self) -> str:
        if len(self.key) == 1 and self.key[0][0] == "overrides":
            return str(self.key[0][1])
        return " ".join(f"{name}={display_value(value)}" for name, value in self.key)


@dataclass(frozen=True)
class Report:
    """The aggregated table: one row per group, one column per metric."""

    columns: tuple[str, ...]  # the group key's columns
    metrics: tuple[str, ...]
    groups: tuple[Group, ...]
    skipped: tuple[Skipped, ...]
    grouping: str  # how runs were grouped, in words

    @property
    def runs(self) -> int:
        return sum(len(group.runs) for group in self.groups)


# ------------------------------------------------------------------ finding runs
def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Paths of ``inputs``, each a path or a glob pattern (``**`` allowed).

    Shells usually expand globs already; a quoted pattern is expanded here. A path that
    does not exist, or a pattern that matches nothing, is a :class:`ReportError`.
    """
    if not inputs:
        raise ReportError("no input given: pass run directories or folders holding them")
    paths: list[Path] = []
    for item in inputs:
        if Path(item).exists():
            paths.append(Path(item))
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise ReportError(f"{item}: the pattern matches no file or directory")
            paths.extend(Path(match) for match in matches)
        else:
            raise ReportError(f"{item}: no such file or directory")
    return paths


def is_run_dir(directory: Path) -> bool:
    """Whether ``directory`` is a run: it has a metrics file, a run record or Hydra's
    ``.hydra/``."""
    return any((directory / name).exists()
               for name in (METRICS_FILE, RUN_RECORD_FILE, HYDRA_DIR))


def find_run_dirs(path: Path) -> list[Path]:
    """The run directories at or below ``path`` (a metrics file stands for its folder).

    The walk does not descend into a run directory (nor into hidden folders), so the
    per-iteration files of a SIKeD run and a run's ``student/``, ``wandb/`` and
    ``checkpoints/`` are never mistaken for runs, and the walk stays quick.
    """
    root = path.parent if path.is_file() else path
    if is_run_dir(root):
        return [root]
    found: list[Path] = []
    for current, subdirs, _ in os.walk(root):
        directory = Path(current)
        if directory != root and is_run_dir(directory):
            found.append(directory)
            subdirs.clear()
            continue
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    return sorted(found)


def collect_runs(inputs: Sequence[str]) -> tuple[list[Run], list[Skipped]]:
    """Every run under ``inputs`` (each directory once), loaded or skipped."""
    runs: list[Run] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for path in expand_inputs(inputs):
        for directory in find_run_dirs(path):
            if directory.resolve() in seen:
                continue
            seen.add(directory.resolve())
            loaded = load_run(directory)
            (runs if isinstance(loaded, Run) else skipped).append(loaded)
    return runs, skipped


# ------------------------------------------------------------------ reading runs
def load_run(directory: Path) -> Run | Skipped:
    """The run in ``directory``, or why it is skipped (unfinished or unreadable)."""
    try:
        if (directory / METRICS_FILE).is_file():
            raw = _read_json_object(directory / METRICS_FILE)
            return Run(directory, _kind(raw), flatten_metrics(raw))
    except RunError as err:
        return Skipped(directory, str(err))
    return Skipped(directory, f"unfinished: no {METRICS_FILE}", unfinished=True)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise RunError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def _kind(raw: Mapping[str, Any]) -> str:
    """What wrote a ``metrics.json``: its ``run_kind`` (every command writes one), else
    what its keys say (files of other tools, runs written before ``run_kind``)."""
    if isinstance(raw.get("run_kind"), str):
        return raw["run_kind"]
    if isinstance(raw.get("benchmarks"), dict):
        return "eval"
    return "train" if "heldout_accuracy" in raw else "metrics"


def flatten_metrics(value: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of ``value``, nested keys joined with ``/``; the rest is dropped."""
    flat: dict[str, float] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(flatten_metrics(item, f"{name}/"))
        elif _is_number(item):
            flat[name] = float(item)
    return flat


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def overrides_of(directory: Path, ignore: Iterable[str] = DEFAULT_IGNORED_OVERRIDES,
                 ) -> tuple[str, ...]:
    """The run's command-line overrides, sorted, without those setting an ``ignore`` key
    (``seed=1``, ``+seed=1`` and ``~seed`` alike)."""
    path = directory / OVERRIDES_FILE
    if not path.is_file():
        raise RunError(f"{path}: missing, so the run cannot be grouped by its overrides "
                       "(group by config keys with --group-by instead)")
    import yaml

    try:
        overrides = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise RunError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise RunError(f"{path}: expected a list of overrides such as '- seed=1'")
    ignored = set(ignore)
    return tuple(sorted(o for o in overrides if _override_key(o) not in ignored))


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").strip()


def config_values(directory: Path, keys: Sequence[str]) -> tuple[Any, ...]:
    """The values of dotted ``keys`` in the run's ``config.yaml`` (:data:`MISSING` for a
    key it lacks; a sub-tree as sorted JSON, so equal sub-trees group together)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    path = directory / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{path}: missing, so the run cannot be grouped by config keys")
    try:
        config = OmegaConf.load(path)
    except Exception as err:  # YAML and OmegaConf errors have no common base
        raise RunError(f"{path}: not a readable config ({err})") from err
    values: list[Any] = []
    for key in keys:
        value = OmegaConf.select(config, key, default=MISSING, throw_on_missing=False)
        if isinstance(value, (DictConfig, ListConfig)):
            value = json.dumps(OmegaConf.to_container(value, resolve=True), sort_keys=True)
        values.append(value)
    return tuple(values)


# ------------------------------------------------------------------ aggregating
def aggregate(values: Sequence[float]) -> Stat:
    """Mean, sample std (0 for one value) and n of ``values``; NaN mean for none.

    A NaN or infinite value makes the std NaN (``statistics.stdev`` cannot take one).
    """
    if not values:
        return Stat(0, math.nan, math.nan)
    if len(values) == 1:
        return Stat(1, float(values[0]), 0.0)
    std = stdev(values) if all(math.isfinite(v) for v in values) else math.nan
    return Stat(len(values), fmean(values), std)


def select_metrics(runs: Sequence[Run], requested: Sequence[str] | None = None) -> list[str]:
    """The report's metrics: ``requested`` in order, without repeats. ``"default"`` (and
    ``None``) stands for the runs' headline metrics (:data:`PRIMARY_METRICS`), ``"all"``
    for those plus every metric all runs have. A metric no run has is a
    :class:`ReportError` naming the available ones."""
    present = {r.primary for r in runs}
    primaries = [name for name in PRIMARY_METRICS if name in present]
    chosen: list[str] = []
    for name in requested or [DEFAULT_METRICS]:
        if name == DEFAULT_METRICS and not primaries:
            raise ReportError("the runs have none of the default metrics "
                              f"({', '.join(PRIMARY_METRICS)}); name some with --metrics "
                              f"(available: {_available(runs)})")
        if name == DEFAULT_METRICS:
            chosen.extend(primaries)
        elif name == ALL_METRICS:
            common = set.intersection(*(set(r.metrics) for r in runs)) if runs else set()
            chosen.extend(primaries + sorted(common - set(primaries)))
        elif any(name in r.metrics for r in runs):
            chosen.append(name)
        else:
            raise ReportError(f"metric {name!r} is in no run's metrics "
                              f"(available: {_available(runs)})")
    if not chosen:
        raise ReportError(f"no metric to report; name some with --metrics "
                          f"(available: {_available(runs)})")
    return list(dict.fromkeys(chosen))


def _available(runs: Sequence[Run], limit: int = 30) -> str:
    names = sorted({name for run in runs for name in run.metrics})
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def build_report(runs: Sequence[Run], skipped: Sequence[Skipped] = (),
                 metrics: Sequence[str] | None = None, group_by: Sequence[str] | None = None,
                 ignore: Iterable[str] = DEFAULT_IGNORED_OVERRIDES) -> Report:
    """Group ``runs`` (by config keys ``group_by``, else by overrides without ``ignore``)
    and aggregate ``metrics`` per group; runs that cannot be grouped join ``skipped``."""
    ignore = tuple(ignore)
    keyed, unusable = _group_keys(runs, group_by, ignore)
    usable = [run for run, _ in keyed]
    if not usable:
        raise ReportError(_nothing_to_report(runs, [*skipped, *unusable]))
    chosen = select_metrics(usable, metrics)
    if group_by:
        _check_keys_exist(group_by, keyed)
    groups: dict[GroupKey, list[Run]] = {}
    for run, key in keyed:
        groups.setdefault(key, []).append(run)
    ordered = sorted(groups.items(), key=lambda item: _sort_key(item[0]))
    built = tuple(Group(key, tuple(members), _stats(members, chosen)) for key, members in ordered)
    columns = tuple(group_by) if group_by else ("overrides",)
    grouping = (f"config keys {', '.join(group_by)}" if group_by else
                "overrides" + (f" without {', '.join(ignore)}" if ignore else ""))
    return Report(columns, tuple(chosen), built, (*skipped, *unusable), grouping)


def _group_keys(runs: Sequence[Run], group_by: Sequence[str] | None, ignore: tuple[str, ...],
                ) -> tuple[list[tuple[Run, GroupKey]], list[Skipped]]:
    keyed: list[tuple[Run, GroupKey]] = []
    unusable: list[Skipped] = []
    for run in runs:
        try:
            if group_by:
                key = tuple(zip(group_by, config_values(run.path, group_by)))
            else:
                key = (("overrides", " ".join(overrides_of(run.path, ignore)) or NO_OVERRIDES),)
        except RunError as err:
            unusable.append(Skipped(run.path, str(err)))
            continue
        keyed.append((run, key))
    return keyed, unusable


def _nothing_to_report(runs: Sequence[Run], skipped: Sequence[Skipped]) -> str:
    unfinished = sum(s.unfinished for s in skipped)
    message = "no finished run to report"
    if runs or skipped:
        message += (f": {unfinished} unfinished, {len(skipped) - unfinished} unreadable"
                    + "".join(f"\n  {s.path}: {s.reason}" for s in skipped[:10]))
    return message


def _check_keys_exist(keys: Sequence[str], keyed: Sequence[tuple[Run, GroupKey]]) -> None:
    for index, name in enumerate(keys):
        if all(key[index][1] == MISSING for _, key in keyed):
            example = keyed[0][0].path / CONFIG_FILE
            raise ReportError(f"--group-by key {name!r} is in no run's config "
                              f"(e.g. {example}); use dotted keys such as optimizer.lr")


def _stats(runs: Sequence[Run], metrics: Sequence[str]) -> dict[str, Stat]:
    return {name: aggregate([r.metrics[name] for r in runs if name in r.metrics])
            for name in metrics}


def _sort_key(key: GroupKey) -> tuple[tuple[int, Any], ...]:
    """Numbers by value before strings, so ``lr=1e-4`` sorts before ``lr=3e-3``."""
    def rank(value: Any) -> tuple[int, Any]:
        if _is_number(value):
            return (0, float(value))
        return (1, display_value(value))
    return tuple(rank(value) for _, value in key)


def display_value(value: Any) -> str:
    """A group key value as the YAML config spells it (``null``, ``true``, ``0.0001``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# ------------------------------------------------------------------ rendering
def render_csv(report: Report) -> str:
    """Long format: one row per group and metric (``metric`` names may contain ``/``,
    which would make wide column names ambiguous). Floats are written with ``repr``,
    so the numbers read back exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*report.columns, "runs", "metric", "n", "mean", "std"])
    for group in report.groups:
        values = [display_value(value) for _, value in group.key]
        for name in report.metrics:
            stat = group.stats[name]
            writer.writerow([*values, len(group.runs), name, stat.n, repr(stat.mean),
                             repr(stat.std)])
    return buffer.getvalue()


def render_markdown(report: Report) -> str:
    """A Markdown table, ``mean ± std (n=…)`` per cell, then the skipped runs."""
    formats = {name: _column_format([g.stats[name] for g in report.groups])
               for name in report.metrics}
    header = [*report.columns, "runs", *report.metrics]
    lines = [
        f"{report.runs} runs in {len(report.groups)} groups, grouped by {report.grouping}; "
        "cells: mean ± sample std (n = runs with the metric).",
        "",
        _row(header),
        _row(["---"] * len(report.columns) + ["---:"] * (1 + len(report.metrics))),
    ]
    for group in report.groups:
        cells = [display_value(value) for _, value in group.key]
        cells.append(str(len(group.runs)))
        cells.extend(_cell(group.stats[name], formats[name]) for name in report.metrics)
        lines.append(_row(cells))
    lines.extend(_skipped_lines(report.skipped))
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _cell(stat: Stat, fmt: Callable[[float], str]) -> str:
    if stat.n == 0:
        return "–"
    return f"{fmt(stat.mean)} ± {fmt(stat.std)} (n={stat.n})"


def _column_format(stats: Sequence[Stat]) -> Callable[[float], str]:
    """One number format per column: integers stay integers, otherwise 4 decimals
    (1 for values of 100 and more, such as seconds)."""
    values = [v for s in stats if s.n for v in (s.mean, s.std) if math.isfinite(v)]
    if values and all(v == int(v) for v in values):
        return lambda v: f"{v:.0f}" if math.isfinite(v) else str(v)
    decimals = 1 if values and max(abs(v) for v in values) >= 100 else 4
    return lambda v: f"{v:.{decimals}f}"


def _skipped_lines(skipped: Sequence[Skipped]) -> list[str]:
    if not skipped:
        return []
    unfinished = sum(s.unfinished for s in skipped)
    lines = ["", f"Skipped {len(skipped)} runs ({unfinished} unfinished, "
                 f"{len(skipped) - unfinished} unreadable):", ""]
    lines.extend(f"- `{s.path}`: {s.reason}" for s in skipped)
    return lines


def render_png(report: Report, metric: str) -> bytes:
    """A horizontal bar chart of ``metric``'s mean per group, with sample-std error bars
    and each run's value as a dot (so n=1 and a wide spread are both visible)."""
    if metric not in report.metrics:
        raise ReportError(f"plot metric {metric!r} is not among the report's metrics")
    groups = [g for g in report.groups if g.stats[metric].n]
    if not groups:
        raise ReportError(f"plot metric {metric!r}: no group has a value")
    labels = [textwrap.fill(g.label, _LABEL_WIDTH, max_lines=_LABEL_LINES, placeholder=" …")
              for g in groups]
    rows = [max(1, label.count("\n") + 1) for label in labels]
    figure = _figure(height=1.4 + sum(0.15 + 0.15 * lines for lines in rows))
    axes = figure.add_subplot()
    positions = _bar_positions(rows)
    means = [g.stats[metric].mean for g in groups]
    stds = [g.stats[metric].std for g in groups]
    axes.barh(positions, means, xerr=stds, capsize=4, color="#4C72B0", alpha=0.85,
              error_kw={"elinewidth": 1.2, "ecolor": "#333333"})
    for y, group in zip(positions, groups):
        points = [r.metrics[metric] for r in group.runs if metric in r.metrics]
        axes.scatter(points, [y] * len(points), color="#DD8452", s=14, zorder=3)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_ylim(-0.3 - 0.3 * rows[-1], positions[0] + 0.3 + 0.3 * rows[0])
    axes.set_xlabel(metric)
    axes.set_title(f"{metric} per group: mean ± sample std (dots: runs)", fontsize=11)
    axes.grid(axis="x", alpha=0.3)
    axes.set_axisbelow(True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_PNG_DPI)
    return buffer.getvalue()


def _bar_positions(rows: Sequence[int]) -> list[float]:
    """Bar centres, first group on top, each bar given room for its label's lines."""
    positions: list[float] = []
    y = 0.0
    for index in range(len(rows) - 1, -1, -1):
        if positions:
            y += 0.45 * (rows[index] + rows[index + 1]) / 2 + 0.55
        positions.append(y)
    return positions[::-1]


def _figure(height: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot, so no global backend is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


# ------------------------------------------------------------------ writing
def write_report(report: Report, out_dir: Path, plot_metric: str | None = None) -> list[Path]:
    """Write ``report.csv``, ``report.md`` and ``report.png`` into ``out_dir``.

    All three are rendered in memory first and each is then written atomically (a
    temporary file in ``out_dir`` replaces the target), so a failure (a bad plot metric,
    a full disk) never leaves a half-written or mismatched report behind.
    """
    contents = {
        "report.csv": render_csv(report).encode("utf-8"),
        "report.md": render_markdown(report).encode("utf-8"),
        "report.png": render_png(report, plot_metric or report.metrics[0]),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_bytes_atomically(out_dir / name, data) for name, data in contents.items()]
