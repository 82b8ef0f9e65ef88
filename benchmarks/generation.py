"""Evaluation generation throughput: batched generation against one example at a time,
side by side.

``python -m benchmarks.generation [--benchmarks toy gsm8k] [--n 32] [--batch-sizes 8 16 32]
[--max-new-tokens 64] [--repeats 1] [--threads 1]`` answers the first N questions of each
benchmark with the embedded default student (``conf/student/tiny_llama.yaml``: random
weights over the shipped toy tokenizer, nothing downloaded, seeded so every run builds the
same one), once with batch size 1 and once per batch size, and prints a table and JSON:
generated tokens per second, examples per second, peak memory, the batched/one-at-a-time
ratios, and whether the batched answers equal the one-at-a-time ones.

Everything magdi-eval decides is taken from it: the questions come from the benchmark
configs (``conf/benchmark/<name>.yaml``, through
:func:`magdi_lightning.sources.question_sets.load_benchmark`; GSM8K from the shared data
folder, ``$MAGDI_SHARED_DATA``, default ``../shared/data``), the prompt template from
``conf/eval.yaml``, and the generation is
:func:`magdi_lightning.evaluation.generation.generate` with the arguments ``evaluate``
passes it for the greedy answers (left padding, the KV cache, greedy decoding) — only the
batch size changes, so the ratio is what batching buys magdi-eval. Answer extraction and
scoring are not timed. The device is magdi-eval's ``auto`` one (CUDA when available).

Generated tokens are ``generate``'s own counts, the ``output_tokens`` magdi-eval reports:
the tokens of each answer up to and including EOS, not the padding a batch adds after a
row has finished (a batch runs until its longest answer ends, and that waste is what the
tokens/s figure should show). A random-weight student seldom emits EOS early, so most
answers run to ``--max-new-tokens`` (``at_max_new_tokens`` says how many); that is the
worst case for batching's waste, not a flaw. With greedy decoding the batched answers
should equal the one-at-a-time ones (left padding and the attention mask make each row
compute what it would alone, up to float rounding, which can flip a near-tied argmax), so
both modes then generate the same tokens; ``mismatched`` counts the answers that differ,
and ``distinct_outputs`` how telling that is (a random student's answers are mostly one
token repeated, whatever the question).

Peak memory is the growth above what the process held before the run: on GPU
``torch.cuda.max_memory_allocated``; on CPU the process's peak resident set (``VmHWM``,
reset through ``/proc/self/clear_refs`` after returning freed heap with ``malloc_trim``),
which is coarse for a student this small (``None`` where Linux's counters are missing).
Each figure is the best (fastest) of ``--repeats`` runs, since other load on the machine
only ever slows a run down. Torch gets one CPU thread unless ``--threads`` says otherwise
(0: torch's default, what magdi-eval runs with): a student this small gains nothing from
more, and on a shared CPU the extra OpenMP threads spin against the other jobs and swing
the timings tenfold and more.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import time
from pathlib import Path
from typing import Any

#: The embedded default student that magdi-train builds when no model is named.
STUDENT_CONFIG = Path("student") / "tiny_llama.yaml"
DEFAULT_BENCHMARKS = ["toy", "gsm8k"]
_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def benchmark_names() -> list[str]:
    """The benchmark configs magdi-eval can select (``conf/benchmark/*.yaml``)."""
    from magdi_lightning import CONFIG_DIR

    return sorted(path.stem for path in (Path(CONFIG_DIR) / "benchmark").glob("*.yaml"))


def compose_eval_config(benchmarks: list[str]) -> Any:
    """magdi-eval's config with ``benchmarks`` selected, as Hydra composes it for the CLI."""
    from hydra import compose, initialize_config_dir

    from magdi_lightning import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("eval", overrides=[f"benchmark=[{','.join(benchmarks)}]"],
                       return_hydra_config=False)


def build_student(seed: int = 0) -> Any:
    """The default student, built from its config with a fixed seed so runs compare."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from magdi_lightning import CONFIG_DIR

    torch.manual_seed(seed)
    return instantiate(OmegaConf.load(Path(CONFIG_DIR) / STUDENT_CONFIG))


# --------------------------------------------------------------------------- peak memory
def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (``None`` off Linux)."""
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_memory(device: Any) -> int | None:
    """Start a peak-memory window; return the baseline that :func:`peak_memory` subtracts.

    On CPU, freed heap is handed back first (``malloc_trim``), or a run reusing memory an
    earlier run freed would not raise the resident set and would look free of cost.
    """
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        _CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident set
    except (OSError, AttributeError):  # not Linux, or a libc without malloc_trim
        return None
    return _status_bytes("VmRSS")


def peak_memory(device: Any, baseline: int | None) -> int | None:
    """Peak bytes above ``baseline`` since :func:`reset_peak_memory` (``None``: unknown)."""
    import torch

    if baseline is None:
        return None
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() - baseline
    peak = _status_bytes("VmHWM")
    return None if peak is None else max(peak - baseline, 0)


# --------------------------------------------------------------------------- measuring
def measure(student: Any, formatter: Any, questions: list[str], batch_size: int,
            max_new_tokens: int, repeats: int) -> dict[str, Any]:
    """Answer ``questions`` with magdi-eval's ``generate`` at ``batch_size``; the figures of
    the fastest of ``repeats`` runs and the answers (``outputs``, not for the JSON)."""
    import torch

    from magdi_lightning.evaluation.generation import generate

    device = next(student.model.parameters()).device
    best: dict[str, Any] | None = None
    for _ in range(repeats):
        baseline = reset_peak_memory(device)
        started = time.perf_counter()
        outputs = generate(student, formatter, questions, batch_size=batch_size,
                           max_new_tokens=max_new_tokens)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        peak = peak_memory(device, baseline)
        if best is None or seconds < best["seconds"]:
            best = {"seconds": seconds, "peak": peak, "outputs": outputs}
    assert best is not None
    seconds, outputs = best["seconds"], best["outputs"]
    tokens = sum(n for _, n in outputs)
    return {
        "batch_size": batch_size,
        "examples": len(outputs),
        "generated_tokens": tokens,
        "at_max_new_tokens": sum(n >= max_new_tokens for _, n in outputs),
        # A random student tends to repeat one token whatever the prompt; few distinct
        # answers make an outputs match weaker evidence that padding changes nothing.
        "distinct_outputs": len({text for text, _ in outputs}),
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "examples_per_s": round(len(outputs) / seconds, 2),
        "peak_mb": None if best["peak"] is None else round(best["peak"] / 2**20, 1),
        "outputs": outputs,
    }


def compare(batched: dict[str, Any], single: dict[str, Any]) -> dict[str, Any]:
    """Ratios of a batched run to the one-at-a-time run, and whether their answers agree."""
    pairs = list(zip(batched["outputs"], single["outputs"]))
    mismatched = [i for i, (a, b) in enumerate(pairs) if a != b]
    return {
        "tokens_per_s_ratio": round(batched["tokens_per_s"] / single["tokens_per_s"], 2),
        "examples_per_s_ratio": round(batched["examples_per_s"] / single["examples_per_s"], 2),
        "outputs_match": not mismatched,
        "mismatched": len(mismatched),
        "first_mismatch": mismatched[0] if mismatched else None,
        "same_token_count": batched["generated_tokens"] == single["generated_tokens"],
    }


def run(benchmarks: list[str], n: int, batch_sizes: list[int], max_new_tokens: int,
        repeats: int, threads: int = 1) -> dict[str, Any]:
    """Every benchmark's one-at-a-time run and batched runs, with the same student, on
    ``threads`` torch CPU threads (0: its default); the caller's setting is restored after,
    since ``main`` also runs inside test processes."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(benchmarks, n, batch_sizes, max_new_tokens, repeats)
    finally:
        torch.set_num_threads(before)


def _run(benchmarks: list[str], n: int, batch_sizes: list[int], max_new_tokens: int,
         repeats: int) -> dict[str, Any]:
    import torch
    from omegaconf import OmegaConf

    from magdi_lightning.data.tokenization import PromptFormatter
    from magdi_lightning.evaluation.generation import generate
    from magdi_lightning.sources.question_sets import load_benchmark

    cfg = compose_eval_config(benchmarks)
    student = build_student()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    student.model.to(device)
    formatter = PromptFormatter(student.tokenizer, cfg.template, cfg.use_chat_template,
                                cfg.prefix)
    results: dict[str, Any] = {
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "student": str(STUDENT_CONFIG),
        "parameters": sum(p.numel() for p in student.model.parameters()),
        "n": n,
        "max_new_tokens": max_new_tokens,
        "magdi_eval_batch_size": int(cfg.generation.batch_size),
        "benchmarks": {},
    }
    for key, benchmark in cfg.benchmark.items():
        loader = OmegaConf.to_container(benchmark.loader, resolve=True)
        questions = [e.question for e in load_benchmark(benchmark.name, limit=n, **loader)]
        prompts = formatter.encode_prompts(questions)
        # Untimed warm-up: first-call costs (kernel selection, allocator growth) belong to
        # no mode.
        generate(student, formatter, questions[:2], batch_size=2, max_new_tokens=4)
        single = measure(student, formatter, questions, 1, max_new_tokens, repeats)
        batched = {}
        for size in batch_sizes:
            figures = measure(student, formatter, questions, size, max_new_tokens, repeats)
            batched[str(size)] = {**figures, **compare(figures, single)}
        row = {
            "examples": len(questions),
            "mean_prompt_tokens": round(sum(map(len, prompts)) / max(len(prompts), 1), 1),
            "max_prompt_tokens": max(map(len, prompts), default=0),
            "single": single,
            "batched": batched,
        }
        results["benchmarks"][key] = _without_outputs(row)
    return results


def _without_outputs(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` without the answers themselves (kept only to compare the modes)."""
    return {k: _without_outputs(v) if isinstance(v, dict) else v
            for k, v in row.items() if k != "outputs"}


def print_table(results: dict[str, Any]) -> None:
    print(f"device {results['device']} (threads {results['torch_threads']}), student "
          f"{results['student']} ({results['parameters']:,} parameters), "
          f"max_new_tokens {results['max_new_tokens']}, magdi-eval batch size "
          f"{results['magdi_eval_batch_size']}")
    print(f"{'benchmark':<11}{'batch':>6}{'examples':>9}{'tokens':>8}{'at max':>7}"
          f"{'distinct':>9}{'seconds':>9}{'tokens/s':>10}{'ex/s':>8}{'peak MB':>9}{'ratio':>8}"
          f"{'match':>8}")
    for name, row in results["benchmarks"].items():
        # Batched rows carry their comparison with the one-at-a-time row.
        for m in [row["single"], *row["batched"].values()]:
            peak = "-" if m["peak_mb"] is None else f"{m['peak_mb']:.1f}"
            ratio = f"{m['tokens_per_s_ratio']:.2f}x" if "outputs_match" in m else ""
            match = "" if "outputs_match" not in m else (
                "yes" if m["outputs_match"] else f"{m['mismatched']} diff")
            print(f"{name:<11}{m['batch_size']:>6}{m['examples']:>9}{m['generated_tokens']:>8}"
                  f"{m['at_max_new_tokens']:>7}{m['distinct_outputs']:>9}"
                  f"{m['seconds']:>9.2f}{m['tokens_per_s']:>10.0f}{m['examples_per_s']:>8.2f}"
                  f"{peak:>9}{ratio:>8}{match:>8}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", nargs="+", choices=benchmark_names(),
                        default=DEFAULT_BENCHMARKS, help="benchmark configs (conf/benchmark)")
    parser.add_argument("--n", type=_positive, default=32, help="questions per benchmark")
    parser.add_argument("--batch-sizes", nargs="+", type=_positive, default=[8, 16, 32],
                        help="batched runs to compare with batch size 1")
    parser.add_argument("--max-new-tokens", type=_positive, default=64)
    parser.add_argument("--repeats", type=_positive, default=1,
                        help="runs per setting; the fastest is reported")
    parser.add_argument("--threads", type=_non_negative, default=1,
                        help="torch CPU threads (0: torch's default, as magdi-eval)")
    args = parser.parse_args(argv)
    results = run(args.benchmarks, args.n, args.batch_sizes, args.max_new_tokens, args.repeats,
                  args.threads)
    print_table(results)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
