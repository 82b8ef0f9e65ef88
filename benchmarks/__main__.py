"""``python -m benchmarks [name ...]``: run benchmarks in turn with their defaults.

Names: train_step, scaling, data_pipeline, generation, sandbox_throughput, profile_step,
validity (default: the first four; validity, the study of what each method does, takes
hours). ``python -m benchmarks.<name> --help`` shows one benchmark's options.
Each prints its table and JSON; this prints one JSON object of all results at the end.
"""

from __future__ import annotations

import importlib
import json
import sys

DEFAULT = ["train_step", "scaling", "data_pipeline", "generation"]
KNOWN = [*DEFAULT, "sandbox_throughput", "profile_step", "validity"]


def main(argv: list[str]) -> None:
    names = argv or DEFAULT
    unknown = [name for name in names if name not in KNOWN]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {KNOWN}")
    results = {}
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        results[name] = importlib.import_module(f"benchmarks.{name}").main([])
    print("\n=== all results ===")
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
