"""Data-pipeline throughput against the training step's consumption, side by side.

``python -m benchmarks.data_pipeline [--data du_qwen du_mistral toy] [--steps 5]
[--warmup 1] [--graphs-per-batch 4] [--repeats 2] [--override KEY=VALUE ...]`` composes each
data set's config as :func:`benchmarks.train_step.measure` does and, with the default
single-pass method, prints a table and JSON of graphs per second for:

- ``cold``: ``setup("fit")`` on an empty cache folder: the importer (e.g. Du JSON to MAG
  JSONL), validation (``read_graphs`` and the split by question) and tokenization (the
  ``datasets`` cache and the ``GraphExample`` objects), each stage's seconds reported apart;
- ``cached``: the same on a second data module over the filled cache folder;
- ``collate``: iterating the train loader, i.e. building ``GraphBatch``es, the per-step work;
- ``train``: the training step's consumption (``train_step.measure``, in this process);

and the ratios of the first three to the last. The data pipeline should run at least 50x
faster than the step consumes graphs; the script only prints the ratios. Each cold, cached
and collate figure is the best of ``--repeats`` runs (each on a fresh temporary cache), so
that the data sets' tiny sizes and other load on the machine do not decide it.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from benchmarks.train_step import DATA

DEFAULT_DATA = ["du_qwen", "du_mistral", "toy"]
#: Every stage runs the whole data set once; collate repeats epochs until this many seconds
#: have passed, since one epoch of 16 graphs takes milliseconds and times mostly noise.
COLLATE_MIN_SECONDS = 0.3


def overrides_for(name: str, graphs_per_batch: int, extra: list[str]) -> list[str]:
    """The overrides of ``train_step.run`` for one data set in single-pass mode, plus ``extra``."""
    return [*DATA[name], "method=magdi", f"data.batch_size={graphs_per_batch}", "logger=csv",
            *extra]


def compose_config(overrides: list[str]) -> Any:
    """The train config as ``train_step.measure`` composes it."""
    from hydra import compose, initialize_config_dir

    from magdi_lightning import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, "paths.output_dir=outputs/bench"],
                       return_hydra_config=False)


def _time_calls(obj: Any, method: str, seconds: dict[str, float], stage: str) -> None:
    """Make ``obj.method`` add its run time to ``seconds[stage]``.

    Wrapping the data module's own hooks (rather than calling their parts here) times each
    stage of ``setup`` without repeating its logic, so the benchmark follows the module.
    """
    original: Callable[..., Any] = getattr(obj, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[stage] += time.perf_counter() - started

    setattr(obj, method, timed)


def timed_setup(cfg: Any, tokenizer: Any, cache_dir: str) -> tuple[Any, dict[str, float]]:
    """A fresh data module over ``cache_dir`` after ``setup("fit")``, and the seconds of
    setup as a whole and of its stages.

    ``import`` is ``prepare_data`` (the importer and its JSONL, a no-op once cached),
    ``tokenize`` is ``build_examples`` (tokenization or the cache read, and the
    ``GraphExample`` objects); ``validate`` is the rest: ``read_graphs`` and the split.
    """
    from hydra.utils import instantiate

    data = instantiate(cfg.data, tokenizer=tokenizer, cache_dir=cache_dir)
    seconds = {"import": 0.0, "tokenize": 0.0}
    _time_calls(data, "prepare_data", seconds, "import")
    _time_calls(data, "build_examples", seconds, "tokenize")
    started = time.perf_counter()
    data.setup("fit")
    total = time.perf_counter() - started
    seconds["validate"] = max(total - seconds["import"] - seconds["tokenize"], 0.0)
    return data, {"total": total, **seconds}


def time_collate(data: Any) -> tuple[int, float]:
    """Graphs collated and seconds taken, over whole epochs of the shuffled train loader."""
    loader = data.loader("train", shuffle=True, batch_size=data.batch_size)
    graphs, started = 0, time.perf_counter()
    while True:
        for batch in loader:
            graphs += int(batch.num_graphs)
        elapsed = time.perf_counter() - started
        if elapsed >= COLLATE_MIN_SECONDS or graphs == 0:
            return graphs, elapsed


def timed_steps(train_graphs: int, graphs_per_batch: int, steps: int, warmup: int
                ) -> tuple[int, int]:
    """Timed steps that fit in one epoch of the train split, and the graphs they hold.

    ``measure`` trains on the first ``warmup + steps`` batches of one epoch, so with a
    small split it would time fewer steps than asked; asking only for what fits keeps its
    ``steps`` honest, and counting graphs allows for a last, partial batch.
    """
    batches = math.ceil(train_graphs / graphs_per_batch)
    steps = max(min(steps, batches - warmup), 1)
    if warmup + steps > batches:
        raise ValueError(f"{train_graphs} training graphs make {batches} batches of "
                         f"{graphs_per_batch}: too few for {warmup} warm-up step(s) and one "
                         "timed step")
    graphs = (min(train_graphs, (warmup + steps) * graphs_per_batch)
              - warmup * graphs_per_batch)
    return steps, graphs


def _rate(graphs: int, seconds: float) -> float:
    return round(graphs / seconds, 1) if seconds > 0 else math.inf


def measure_data(name: str, steps: int, warmup: int, graphs_per_batch: int, repeats: int,
                 extra: list[str]) -> dict[str, Any]:
    """Every figure of one data set: pipeline stages, collation and the training step."""
    from hydra.utils import instantiate

    from benchmarks.train_step import measure

    overrides = overrides_for(name, graphs_per_batch, extra)
    cfg = compose_config(overrides)
    tokenizer = instantiate(cfg.student).tokenizer
    best: dict[str, dict[str, float]] = {}
    collate_graphs = 0
    collate_seconds = math.inf
    with ExitStack() as stack:
        for _ in range(repeats):
            cache_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="magdi-bench-"))
            _, cold = timed_setup(cfg, tokenizer, cache_dir)
            data, cached = timed_setup(cfg, tokenizer, cache_dir)
            for stage, seconds in (("cold", cold), ("cached", cached)):
                if stage not in best or seconds["total"] < best[stage]["total"]:
                    best[stage] = seconds
            graphs, seconds = time_collate(data)
            if seconds / max(graphs, 1) < collate_seconds / max(collate_graphs, 1):
                collate_graphs, collate_seconds = graphs, seconds
        total_graphs = len(data.graph_list)
        nodes = sum(len(graph.nodes) for graph in data.graph_list)
        train_graphs = len(data.examples["train"])
        steps, step_graphs = timed_steps(train_graphs, graphs_per_batch, steps, warmup)
        # The training step reads the cache the last repeat filled, so it sets up quickly.
        step = measure([*overrides, f"data.cache_dir={cache_dir}"], steps, warmup)
    consumption = _rate(step_graphs, float(step["seconds"]))
    row: dict[str, Any] = {"graphs": total_graphs, "nodes": nodes, "train_graphs": train_graphs}
    for stage in ("cold", "cached"):
        seconds = best[stage]
        row[stage] = {"graphs_per_s": _rate(total_graphs, seconds["total"]),
                      **{f"{key}_s": round(value, 4) for key, value in seconds.items()}}
    row["collate"] = {"graphs": collate_graphs, "seconds": round(collate_seconds, 4),
                      "graphs_per_s": _rate(collate_graphs, collate_seconds)}
    row["train"] = {"steps": int(step["steps"]), "graphs": step_graphs,
                    "seconds": float(step["seconds"]), "graphs_per_s": consumption}
    row["ratios"] = {stage: round(row[stage]["graphs_per_s"] / consumption, 1)
                     for stage in ("cold", "cached", "collate")}
    return row


def run(datasets: list[str], steps: int, warmup: int, graphs_per_batch: int, repeats: int,
        extra: list[str]) -> dict[str, Any]:
    return {name: measure_data(name, steps, warmup, graphs_per_batch, repeats, extra)
            for name in datasets}


def print_table(results: dict[str, Any]) -> None:
    print(f"{'data':<12}{'graphs':>7}  {'stage':<12}{'seconds':>9}{'graphs/s':>11}"
          f"{'÷ train':>10}")
    for name, row in results.items():
        lines: list[tuple[str, float, float | None, float | None]] = []
        for stage in ("cold", "cached"):
            m = row[stage]
            lines.append((stage, m["total_s"], m["graphs_per_s"], row["ratios"][stage]))
            lines += [(f"  {part}", m[f"{part}_s"], None, None)
                      for part in ("import", "validate", "tokenize")]
        m = row["collate"]
        lines.append(("collate", m["seconds"], m["graphs_per_s"], row["ratios"]["collate"]))
        m = row["train"]
        lines.append((f"train x{m['steps']}", m["seconds"], m["graphs_per_s"], None))
        for i, (stage, seconds, rate, ratio) in enumerate(lines):
            head = f"{name:<12}{row['graphs']:>7}" if i == 0 else " " * 19
            print(f"{head}  {stage:<12}{seconds:>9.3f}"
                  + (f"{rate:>11.1f}" if rate is not None else "")
                  + (f"{ratio:>9.1f}x" if ratio is not None else ""))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=sorted(DATA), default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=5,
                        help="timed training steps (fewer if the train split is smaller)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first")
    parser.add_argument("--graphs-per-batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2,
                        help="cold/cached/collate runs per data set; the best one counts")
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra hydra overrides for every composition (e.g. a student)")
    args = parser.parse_args(argv)
    if min(args.steps, args.graphs_per_batch, args.repeats) < 1 or args.warmup < 0:
        parser.error("--steps, --graphs-per-batch and --repeats must be positive, "
                     "--warmup non-negative")
    results = run(args.data, args.steps, args.warmup, args.graphs_per_batch, args.repeats,
                  args.override)
    print_table(results)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
