"""Where a training step's time goes: the operators of one mode's steps, most costly first.

``python -m benchmarks.profile_step [--data du_qwen] [--student small] [--mode packed]
[--steps 3] [--warmup 1] [--rows 20]`` builds the mode exactly as
:mod:`benchmarks.train_step` does (same data, student and initial weights), runs the
warm-up steps, then the timed ones under ``torch.profiler``, and prints the operators by
self time (CPU, and CUDA on a GPU) with their share of the total, as a table and as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from benchmarks.train_step import COMPILED, DATA, MODES, STUDENTS, prepare


def profile(overrides: list[str], steps: int, warmup: int, rows: int) -> dict[str, Any]:
    """The top ``rows`` operators by self time over ``steps`` profiled steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    setup = prepare(overrides, warmup + steps)
    for batch in setup.batches[:warmup]:
        setup.step(batch)
    cuda = setup.device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with torch_profile(activities=activities) as prof:
        for batch in setup.batches[warmup:]:
            setup.step(batch)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in events) or 1.0
    return {"device": setup.device.type, "steps": steps, "total_ms": round(total / 1000, 1),
            "ops": [{"op": e.key, "calls": e.count, "ms": round(getattr(e, key) / 1000, 2),
                     "share": round(getattr(e, key) / total, 4)} for e in events[:rows]]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = {**MODES, **COMPILED}
    parser.add_argument("--data", choices=list(DATA), default="du_qwen")
    parser.add_argument("--student", choices=list(STUDENTS), default="small")
    parser.add_argument("--mode", choices=list(modes), default="packed")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=1, help="unprofiled steps first")
    parser.add_argument("--rows", type=int, default=20, help="operators to list")
    parser.add_argument("--graphs-per-batch", type=int, default=4)
    args = parser.parse_args(argv)
    overrides = [*DATA[args.data], *STUDENTS[args.student], *modes[args.mode],
                 f"data.batch_size={args.graphs_per_batch}", "logger=csv"]
    result = profile(overrides, args.steps, args.warmup, args.rows)
    print(f"{args.data}/{args.student} {args.mode}: {result['steps']} steps, "
          f"{result['total_ms']:.0f} ms of self {result['device']} time")
    print(f"{'operator':<48}{'calls':>8}{'ms':>10}{'share':>8}")
    for op in result["ops"]:
        print(f"{op['op'][:47]:<48}{op['calls']:>8}{op['ms']:>10.1f}{op['share']:>8.1%}")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
