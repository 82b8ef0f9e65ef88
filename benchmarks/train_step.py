"""Training-step throughput: MAGDi's single-pass graph batch against the reference-compatible
mode (two forwards with pair replication, full-vocabulary logits), side by side.

``python -m benchmarks.train_step [--data du_qwen du_mistral toy few_correct few_incorrect]
[--steps 10] [--graphs-per-batch 4]`` trains the same model from the same initial weights on
the same batches in each mode and prints a table and JSON: graph nodes per second, node
tokens per second, peak memory of the steps, and the ratios. Each (data, mode) runs in its
own process, so peak memory (the growth of the process's maximum resident set over the
steps on CPU, from before the first warm-up step; ``torch.cuda.max_memory_allocated`` on
GPU) belongs to that mode alone. The reference mode's one-off precomputation of frozen node
features is reported apart.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from typing import Any

DATA = {
    "du_qwen": ["data=du_gsm8k"],
    "du_mistral": ["data=du_gsm8k",
                   "data.importer.path=${paths.shared_data}/debates/"
                   "du_gsm8k_mistral-7b_5agents_3rounds.json"],
    "toy": ["data=toy", "data.importer.options.num_questions=400"],
    "few_correct": ["data=toy", "data.importer.options.num_questions=400",
                    "data.importer.options.error_rates=[0.8,0.85,0.9]",
                    "data.importer.options.switch_to_majority=0.2"],
    "few_incorrect": ["data=toy", "data.importer.options.num_questions=400",
                      "data.importer.options.error_rates=[0.05,0.05,0.1]"],
}
MODES = {"single_pass": "method=magdi", "reference": "method=magdi_reference"}


def _peak_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(overrides: list[str], steps: int, warmup: int) -> dict[str, Any]:
    """Train ``warmup + steps`` steps as the composed config says; time the last ``steps``."""
    import lightning as L
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from magdi_lightning import CONFIG_DIR
    from magdi_lightning.cli.train import student_recipe

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir=outputs/bench"],
                      return_hydra_config=False)
    L.seed_everything(0, verbose=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    student = instantiate(cfg.student)
    data = instantiate(cfg.data, tokenizer=student.tokenizer)
    data.setup("fit")
    module = instantiate(cfg.method, student=student, student_config=student_recipe(cfg),
                         _convert_="all").to(device)
    batches = [b for _, b in zip(range(warmup + steps), data.loader("train", shuffle=True,
                                                                      batch_size=data.batch_size))]
    precompute = 0.0
    if module.mode == "reference":
        started = time.perf_counter()
        module.precompute_node_features(batch for split in ("train", "val", "test")
                                        for batch in data.loader(split))
        precompute = time.perf_counter() - started
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    module.train()

    def step(batch: Any) -> float:
        batch = module.transfer_batch_to_device(batch, device, 0)
        loss = module.compute_losses(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = _peak_bytes()
    for batch in batches[:warmup]:
        step(batch)
    nodes = tokens = 0
    started = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
        nodes += int(batch.node_to_row.numel())
        tokens += int(batch.attention_mask.sum(dim=1)[batch.node_to_row].sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = _peak_bytes() if device.type == "cuda" else max(_peak_bytes() - before, 0)
    return {"steps": steps, "nodes": nodes, "tokens": tokens, "seconds": round(seconds, 3),
            "nodes_per_s": round(nodes / seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
            "peak_mb": round(peak / 2**20, 1), "precompute_s": round(precompute, 2),
            "device": device.type}


def _worker(args: tuple[list[str], int, int]) -> dict[str, Any]:
    return measure(*args)


def run(datasets: list[str], steps: int, warmup: int, graphs_per_batch: int
        ) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    for name in datasets:
        row: dict[str, Any] = {}
        for mode, method in MODES.items():
            overrides = [*DATA[name], method, f"data.batch_size={graphs_per_batch}",
                         "logger=csv"]
            with context.Pool(1) as pool:
                row[mode] = pool.apply(_worker, ((overrides, steps, warmup),))
        single, reference = row["single_pass"], row["reference"]
        row["nodes_per_s_ratio"] = round(single["nodes_per_s"] / reference["nodes_per_s"], 2)
        row["peak_memory_ratio"] = (round(single["peak_mb"] / reference["peak_mb"], 2)
                                    if reference["peak_mb"] else None)
        results[name] = row
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"{'data':<14}{'mode':<13}{'nodes/s':>10}{'tokens/s':>11}{'peak MB':>10}"
          f"{'precompute s':>14}")
    for name, row in results.items():
        for mode in MODES:
            m = row[mode]
            print(f"{name:<14}{mode:<13}{m['nodes_per_s']:>10.1f}{m['tokens_per_s']:>11.0f}"
                  f"{m['peak_mb']:>10.1f}{m['precompute_s']:>14.2f}")
        print(f"{'':<14}{'ratio':<13}{row['nodes_per_s_ratio']:>10.2f}x"
              f"{'':>10}{row['peak_memory_ratio'] or float('nan'):>10.2f}x")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=sorted(DATA), default=list(DATA))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--graphs-per-batch", type=int, default=4)
    args = parser.parse_args(argv)
    results = run(args.data, args.steps, args.warmup, args.graphs_per_batch)
    print_table(results)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
