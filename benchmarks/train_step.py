"""Training-step throughput: MAGDi's single-pass graph batch against the reference-compatible
mode (two forwards with pair replication, full-vocabulary logits), side by side.

``python -m benchmarks.train_step [--data du_qwen du_mistral toy few_correct few_incorrect]
[--student tiny small] [--steps 6] [--graphs-per-batch 4] [--compile]`` trains the same
model from the same initial weights on the same graphs in three modes: ``packed`` (the
default single pass: nodes sharing a prompt packed into one row), ``unpacked`` (the single
pass with one node per row) and ``reference``; ``--compile`` adds ``packed_compiled`` (the
packed pass with ``compile.enabled=true``, whose compile time falls in the untimed warm-up
steps, reported as ``warmup_s``). It prints a table and JSON: graph nodes per second, node
tokens per second (each node's prompt plus response, the same count in every mode), peak
memory of the steps, and each single-pass mode's ratio to the reference. Each (data,
student, mode) runs in its own process, so peak memory (the growth of the process's maximum
resident set from before the first warm-up step on CPU; ``torch.cuda.max_memory_allocated``
on GPU) belongs to that mode alone. The reference mode's one-off precomputation of frozen
node features is reported apart, not in its step time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
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
#: The single pass with the default packing, the single pass with one node per row, and
#: the reference code's batching (which needs one node per row).
MODES = {"packed": ["method=magdi"],
         "unpacked": ["method=magdi", "data.packing=false"],
         "reference": ["method=magdi_reference"]}
#: With ``--compile``: the packed pass with the student's blocks compiled.
COMPILED = {"packed_compiled": ["method=magdi", "compile.enabled=true"]}
#: Student shapes (random weights over the shipped tokenizer: throughput depends on shapes,
#: not on weights). ``tiny`` is the embedded default; ``small`` keeps Mistral-7B's 32k
#: vocabulary and grouped-query attention on a CPU-sized trunk, so the LM head weighs about
#: as much as the trunk, as in small students (Qwen2-0.5B's head is ~40% of its FLOPs;
#: Mistral-7B's ~2%).
STUDENTS = {
    "tiny": [],
    "small": ["+student.architecture.vocab_size=32000", "student.architecture.hidden_size=512",
              "student.architecture.intermediate_size=1536",
              "student.architecture.num_hidden_layers=4",
              "student.architecture.num_attention_heads=8",
              "student.architecture.num_key_value_heads=2",
              "student.architecture.tie_word_embeddings=false"],
}


def _peak_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Batch:
    """One training batch as the mode collates it, and the graph nodes and node tokens
    (each node's prompt plus response) it trains on, the same in every mode."""

    data: Any
    nodes: int
    tokens: int

    @property
    def row_tokens(self) -> int:
        """Token slots of the batch's rows, padding included."""
        if hasattr(self.data, "positive_ids"):
            return int(self.data.positive_ids.numel() + self.data.negative_ids.numel())
        return int(self.data.input_ids.numel())


@dataclass
class Setup:
    """One mode ready to train: ``step(batch)`` runs a full optimizer step on ``batches``."""

    step: Callable[[Batch], float]
    batches: list[Batch]
    graphs_per_batch: int
    precompute_s: float
    device: Any


def prepare(overrides: list[str], num_batches: int) -> Setup:
    """Compose the train config with ``overrides``, build student, data and module as
    ``magdi-train`` does (seeded, so every mode starts from the same weights), and take the
    first ``num_batches`` training batches."""
    import lightning as L
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from magdi_lightning import CONFIG_DIR
    from magdi_lightning.cli.common import compile_student, student_recipe
    from magdi_lightning.data.pair_rows import collate_pair_rows, pair_rows

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir=outputs/bench"],
                      return_hydra_config=False)
    L.seed_everything(0, verbose=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    student = instantiate(cfg.student)
    compile_student(student, cfg.compile)
    reference = cfg.method.mode == "reference"
    # Graph examples in every mode; the reference mode makes its pair rows per batch below.
    data = instantiate(cfg.data, tokenizer=student.tokenizer, batch_unit="graphs")
    data.setup("fit")
    module = instantiate(cfg.method, student=student, student_config=student_recipe(cfg),
                         _convert_="all").to(device)
    # The same graph batches in every mode (graph examples, seeded order), as many epochs
    # as it takes: the real debate files hold 16 training graphs, 4 batches. The reference
    # mode trains each batch's graphs as the reference's pair rows (each row its own graph).
    order = torch.utils.data.DataLoader(data.examples["train"], batch_size=data.batch_size,
                                        shuffle=True, collate_fn=list,
                                        generator=torch.Generator().manual_seed(0))
    graph_batches = list(itertools.islice(itertools.chain.from_iterable(
        order for _ in range(num_batches)), num_batches))
    padding_negative = data.padding_negative()
    batches = [Batch(
        collate_pair_rows(pair_rows(graphs, padding_negative, "own"),
                          data.tokenizer.pad_token_id, data.mask_prompt)
        if reference else data.collate(graphs),
        nodes=sum(len(g.input_ids) for g in graphs),
        tokens=sum(len(ids) for g in graphs for ids in g.input_ids)) for graphs in graph_batches]
    precompute = 0.0
    if reference:
        started = time.perf_counter()
        module.precompute_node_features(data.node_sequences(), data.tokenizer.pad_token_id)
        precompute = time.perf_counter() - started
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    module.train()

    def step(batch: Any) -> float:
        batch = module.transfer_batch_to_device(batch.data, device, 0)
        loss = module.compute_losses(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return Setup(step, batches, data.batch_size, precompute, device)


def measure(overrides: list[str], steps: int, warmup: int) -> dict[str, Any]:
    """Train ``warmup + steps`` steps as the composed config says; time the last ``steps``."""
    import torch

    setup = prepare(overrides, warmup + steps)
    step, batches, device = setup.step, setup.batches, setup.device
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = _peak_bytes()
    started = time.perf_counter()
    for batch in batches[:warmup]:
        step(batch)
    warmup_seconds = time.perf_counter() - started
    nodes = tokens = row_tokens = 0
    started = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
        nodes, tokens, row_tokens = (nodes + batch.nodes, tokens + batch.tokens,
                                     row_tokens + batch.row_tokens)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = _peak_bytes() if device.type == "cuda" else max(_peak_bytes() - before, 0)
    return {"steps": steps, "nodes": nodes, "tokens": tokens, "seconds": round(seconds, 3),
            "nodes_per_s": round(nodes / seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
            "peak_mb": round(peak / 2**20, 1), "precompute_s": round(setup.precompute_s, 2),
            "warmup_s": round(warmup_seconds, 2),
            "graphs_per_s": round(steps * setup.graphs_per_batch / seconds, 2),
            "row_tokens": row_tokens, "device": device.type}


def _worker(args: tuple[list[str], int, int]) -> dict[str, Any]:
    return measure(*args)


def compare(overrides: list[str], steps: int, warmup: int, compiled: bool = False
            ) -> dict[str, Any]:
    """Every mode on the same ``overrides`` (data, student, batch size), each in a fresh
    process, with the single-pass modes' ratios to the reference."""
    context = multiprocessing.get_context("spawn")
    modes = {**MODES, **(COMPILED if compiled else {})}
    row: dict[str, Any] = {}
    for mode, method in modes.items():
        with context.Pool(1) as pool:
            row[mode] = pool.apply(_worker, (([*overrides, *method, "logger=csv"], steps,
                                              warmup),))
    reference = row["reference"]
    for mode in (m for m in modes if m != "reference"):
        row[f"{mode}_speedup"] = round(row[mode]["nodes_per_s"] / reference["nodes_per_s"], 2)
        row[f"{mode}_memory_ratio"] = (round(row[mode]["peak_mb"] / reference["peak_mb"], 2)
                                       if reference["peak_mb"] else None)
    return row


def run(datasets: list[str], students: list[str], steps: int, warmup: int,
        graphs_per_batch: int, compiled: bool = False) -> dict[str, Any]:
    return {f"{name}/{student}": compare([*DATA[name], *STUDENTS[student],
                                          f"data.batch_size={graphs_per_batch}"], steps, warmup,
                                         compiled)
            for student in students for name in datasets}


def print_table(results: dict[str, Any]) -> None:
    print(f"{'data/student':<22}{'mode':<17}{'nodes/s':>9}{'tokens/s':>10}{'peak MB':>9}"
          f"{'speedup':>9}{'mem ratio':>10}{'precompute s':>13}{'warm-up s':>10}")
    for name, row in results.items():
        for mode in (m for m in [*MODES, *COMPILED] if m in row):
            m = row[mode]
            speedup = row.get(f"{mode}_speedup")
            memory = row.get(f"{mode}_memory_ratio")
            print(f"{name:<22}{mode:<17}{m['nodes_per_s']:>9.1f}{m['tokens_per_s']:>10.0f}"
                  f"{m['peak_mb']:>9.0f}"
                  f"{(f'{speedup:.2f}x' if speedup else '-'):>9}"
                  f"{(f'{memory:.2f}x' if memory else '-'):>10}{m['precompute_s']:>13.2f}"
                  f"{m['warmup_s']:>10.1f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=list(DATA), default=list(DATA))
    parser.add_argument("--student", nargs="+", choices=list(STUDENTS), default=list(STUDENTS))
    parser.add_argument("--steps", type=int, default=6, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--graphs-per-batch", type=int, default=4)
    parser.add_argument("--compile", action="store_true",
                        help="also run the packed pass with compile.enabled=true")
    args = parser.parse_args(argv)
    results = run(args.data, args.student, args.steps, args.warmup, args.graphs_per_batch,
                  args.compile)
    print_table(results)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
