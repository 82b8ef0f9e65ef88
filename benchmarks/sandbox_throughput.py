"""Throughput and fidelity of the program sandbox on real program-of-thought solutions.

``python -m benchmarks.sandbox_throughput [--n N] [--workers W] [--file F --script S]``
runs the programs of the first N records of a PoT output file (default: the GSM8K test file
``teachers/pot_codex_gsm8k_test.jsonl`` under ``$MAGDI_SHARED_DATA``, default
``<repo>/../shared/data``; an absolute ``--file`` is read as it is) through a
:class:`magdi_lightning.scoring.sandbox.SandboxPool`, each wrapped in the PoT authors' executor and
read as their script ``run_<S>.py`` reads it (:data:`magdi_lightning.scoring.pot.READINGS`),
and prints JSON: programs per minute, and how often the reading reproduces the record's
``executed`` field (the answer the PoT authors got by running the same program), so that a
regression in either speed or semantics shows up as a number.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from magdi_lightning.scoring.pot import READINGS, agrees, read_records
from magdi_lightning.scoring.sandbox import SandboxPool

SHARED_DATA_ENV = "MAGDI_SHARED_DATA"
POT_FILE = Path("teachers") / "pot_codex_gsm8k_test.jsonl"


def load_records(n: int | None, file: Path = POT_FILE,
                 field: str = "executed") -> list[dict[str, Any]]:
    """The PoT records (lines holding a run's few-shot prompt are not records)."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    path = Path(os.environ.get(SHARED_DATA_ENV, default)) / file
    with path.open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    records = [record for record in records if "generated" in record and field in record]
    return records[:n] if n is not None else records


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its reaped descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="number of programs (default: all)")
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--file", type=Path, default=POT_FILE,
                        help=f"PoT output file, relative to ${SHARED_DATA_ENV} (default: "
                        f"{POT_FILE})")
    parser.add_argument("--script", choices=sorted(READINGS), default="gsm8k",
                        help="the PoT script whose reading of ans to apply (default: gsm8k)")
    args = parser.parse_args(argv)
    reading = READINGS[args.script]
    records = load_records(args.n, args.file, reading.field)

    started = time.perf_counter()
    cpu_before = cpu_seconds()
    with SandboxPool(args.workers) as pool:
        startup = time.perf_counter() - started
        started = time.perf_counter()
        answers, per_record = read_records(records, reading, pool.run)
        elapsed = time.perf_counter() - started
        workers, isolation = pool.size, pool.isolation
    cpu_used = cpu_seconds() - cpu_before  # workers and their children are reaped by now
    results = [result for mine in per_record for result in mine]

    disagreements = []
    for index, (record, ours) in enumerate(zip(records, answers)):
        if not agrees(ours, record[reading.field]):
            disagreements.append({"index": index, "executed": record[reading.field],
                                  "sandbox": ours})
    error_types: dict[str, int] = {}
    for result in results:
        key = result.error_type or "ok"
        error_types[key] = error_types.get(key, 0) + 1
    walls = sorted(result.wall_seconds for result in results)
    report = {
        "programs": len(results),  # several per self-consistency record
        "workers": workers,
        "cpus": os.cpu_count(),
        "isolation": isolation,
        "pool_startup_seconds": round(startup, 3),
        "run_seconds": round(elapsed, 3),
        "programs_per_minute": round(len(results) / elapsed * 60) if elapsed > 0 else None,
        # CPU time of this process, the workers and all program children, start-up included:
        # unlike programs_per_minute, it does not depend on what else the machine is running.
        "cpu_seconds_total": round(cpu_used, 2),
        "median_program_ms": round(1000 * walls[len(walls) // 2], 1) if walls else None,
        # Programs stopped by a time limit hold a worker for up to wall_seconds each.
        "seconds_in_timeouts": round(
            sum(result.wall_seconds for result in results if result.error_type == "timeout"), 1
        ),
        "outcomes": error_types,
        "records": len(records),
        "agreement_with_executed_percent": round(
            100 * (len(records) - len(disagreements)) / max(len(records), 1), 2
        ),
        "disagreements": len(disagreements),
        "disagreement_examples": disagreements[:5],
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
