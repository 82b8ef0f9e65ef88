"""Training-step cost per graph node as debates grow, single pass against the reference.

``python -m benchmarks.scaling [--sizes 3x2 4x3 5x3 7x4] [--graphs-per-batch 2 8]
[--student tiny]`` runs :func:`benchmarks.train_step.compare` on toy debates of each size
(agents x rounds; the toy world's per-agent error rates are spread from 0.15 to 0.5) and
each number of graphs per batch, and prints milliseconds per node of every mode and the
single-pass speed-ups over the reference, as a table and as JSON. A packed single pass
should cost about the same per node whatever the graph size: each node adds its response
once, the prompt is shared, and attention spans one prompt plus one response.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from benchmarks.train_step import MODES, STUDENTS, compare


def _toy(agents: int, rounds: int) -> list[str]:
    rates = ",".join(f"{0.15 + 0.35 * i / max(agents - 1, 1):.3f}" for i in range(agents))
    return ["data=toy", "data.importer.options.num_questions=300",
            f"data.importer.options.num_agents={agents}",
            f"data.importer.options.num_rounds={rounds}",
            f"data.importer.options.error_rates=[{rates}]"]


def run(sizes: list[str], graphs_per_batch: list[int], student: str, steps: int,
        warmup: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in sizes:
        agents, rounds = (int(n) for n in size.split("x"))
        for graphs in graphs_per_batch:
            row = compare([*_toy(agents, rounds), *STUDENTS[student],
                           f"data.batch_size={graphs}"], steps, warmup)
            for mode in MODES:
                row[mode]["ms_per_node"] = round(1000 / row[mode]["nodes_per_s"], 2)
            results[f"{size}/{graphs}"] = row
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"{'agents x rounds / graphs':<26}" + "".join(f"{m + ' ms/node':>20}" for m in MODES)
          + f"{'packed speedup':>16}{'unpacked speedup':>18}")
    for name, row in results.items():
        print(f"{name:<26}" + "".join(f"{row[m]['ms_per_node']:>20.2f}" for m in MODES)
              + f"{row['packed_speedup']:>15.2f}x{row['unpacked_speedup']:>17.2f}x")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["3x2", "4x3", "5x3", "7x4"])
    parser.add_argument("--graphs-per-batch", nargs="+", type=int, default=[2, 8])
    parser.add_argument("--student", choices=list(STUDENTS), default="tiny")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    args = parser.parse_args(argv)
    results = run(args.sizes, args.graphs_per_batch, args.student, args.steps, args.warmup)
    print_table(results)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
