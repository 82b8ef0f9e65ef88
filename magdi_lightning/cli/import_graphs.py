"""``magdi-import``: convert teacher data into a graph JSONL file.

    magdi-import --format du debates.json -o graphs.jsonl [--task numeric]
                 [--option key=value ...]

The output is written atomically (complete or not at all). Problems with the input are
reported as one ``magdi-import: error: ...`` line and exit code 2, never as a traceback,
because the usual cause is a data file, not a bug.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from magdi_lightning.errors import RecordError
from magdi_lightning.graph import TASK_FAMILIES, ReasoningGraph, write_graphs
from magdi_lightning.sources import IMPORTERS, import_graphs

__all__ = ["main"]

PROG = "magdi-import"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad usage or input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed usage or help already
        return exit_.code if isinstance(exit_.code, int) else 2
    tally = _Tally()
    try:
        options = _options(args.option)
        if args.task is not None:
            options["task"] = args.task
        graphs = import_graphs(args.format, args.input, **options)
        write_graphs(args.output, tally.count(graphs, source=args.input))
    except (ValueError, OSError) as err:  # RecordError is a ValueError
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(f"{PROG}: wrote {tally.summary()} to {args.output}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Convert teacher data (debate "
                                     "logs, rationales, solutions) into reasoning graphs.")
    parser.add_argument("--format", required=True, choices=list(IMPORTERS),
                        help="input format")
    parser.add_argument("input", help="input file or directory ('default' for --format toy)")
    parser.add_argument("-o", "--output", required=True, help="output JSONL file")
    parser.add_argument("--task", choices=TASK_FAMILIES,
                        help="task family (default: inferred from the gold answers)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="importer option, e.g. split=valid (repeatable)")
    return parser


def _options(pairs: Iterable[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


class _Tally:
    """Counts graphs, nodes, edges and labels as they stream past to the writer."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, graphs: Iterable[ReasoningGraph], source: str) -> Iterator[ReasoningGraph]:
        """Pass ``graphs`` through, counting; none at all is an error (raised before the
        writer replaces an existing output, which an empty input must not wipe)."""
        for graph in graphs:
            self.counts["graphs"] += 1
            self.counts["nodes"] += len(graph.nodes)
            self.counts["edges"] += len(graph.edges)
            self.counts.update(node.correctness.value for node in graph.nodes)
            yield graph
        if not self.counts["graphs"]:
            raise RecordError("no graphs in the input (is it empty?); nothing written",
                                       file=source)

    def summary(self) -> str:
        c = self.counts
        return (f"{c['graphs']} graphs ({c['nodes']} nodes, {c['edges']} edges; "
                f"{c['correct']} correct, {c['incorrect']} incorrect, {c['unknown']} unknown)")


if __name__ == "__main__":
    raise SystemExit(main())
