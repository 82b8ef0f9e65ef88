"""magdi-debate as users run it, against a real local OpenAI-compatible server.

The fault suite, the kill -9 resume test and the secret scan are the issue's acceptance
tests; every protocol's output then trains with no conversion step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, Fault
from scripted_teachers import ScriptedTeachers

from magdi_lightning.graph import read_graphs
from magdi_lightning.sources.question_sets import load_toy_questions

KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
KEY_ENV = "MAGDI_TEST_TEACHER_KEY"


def debate_command(base_url: str, output: Path, questions: int, seed: int,
                   *overrides: str) -> list[str]:
    """The command for ``load_toy_questions(questions, seed)`` against the server at
    ``base_url``."""
    return [sys.executable, "-m", "magdi_lightning.cli.debate", "questions=toy",
            f"questions.loader.num_questions={questions}", f"questions.loader.seed={seed}",
            "teachers=openai_compatible",
            f"teachers.base_url={base_url}", "teachers.model=fake-model",
            f"teachers.api_key_env={KEY_ENV}", f"output={output}", "progress=false",
            "retry.base_delay=0.001", "retry.max_delay=0.01", *overrides]


def run_debate(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, KEY_ENV: KEY, "WANDB_SILENT": "true"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def ids_in(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_bytes().split(b"\n") if line.strip()
            and line.endswith(b"}")]


def summary_of(cwd: Path) -> dict:
    (path,) = (cwd / "outputs").glob("debate_*/summary.json")
    return json.loads(path.read_text())


def test_faults_are_retried_counted_and_every_question_written_once(tmp_path: Path) -> None:
    questions = load_toy_questions(num_questions=200, seed=1)
    script = ScriptedTeachers(questions)
    output = tmp_path / "graphs.jsonl"
    with FakeOpenAIServer(script, tag_of=script.tag_of, api_key=KEY, fault_rate=0.3,
                          hang_seconds=4.0, slow_seconds=0.05, seed=11) as server:
        run_debate(debate_command(server.base_url, output, 200, 1, "protocol=reconcile",
                                  "teachers.timeout=2.0", "retry.max_attempts=6",
                                  "concurrency=16"), tmp_path)
        seen = server.counts()
    assert sorted(ids_in(output)) == sorted(q.id for q in questions)  # each exactly once
    summary = summary_of(tmp_path)
    failures: Counter[str] = Counter()
    for usage in summary["teachers"].values():
        failures.update(usage["failures"])
    requests = sum(usage["requests"] for usage in summary["teachers"].values())
    print(f"server saw {dict(seen)}; summary failures {dict(failures)}; "
          f"{requests} requests in {summary['seconds']} s")
    faults = sum(seen[kind.value] for kind in Fault if kind is not Fault.SLOW)
    assert 0.2 < faults / sum(seen.values()) < 0.4
    assert failures == Counter({"rate_limit": seen["rate_limit"],
                                "server_error": seen["server_error"],
                                "timeout": seen["timeout"], "malformed": seen["truncated"]})
    assert requests == sum(seen.values())
    assert summary["written"] == 200 and summary["failed"] == 0
    nodes = [node for graph in read_graphs(output) for node in graph.nodes]
    assert sum(node.is_correct for node in nodes) > 0.5 * len(nodes)  # the script's 70%

    # No file the run wrote (output, Hydra config dumps, logs, wandb) holds the key.
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in written) and any(p.suffix == ".log" for p in written)
    leaks = [p for p in written if KEY.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert KEY_ENV in (next(tmp_path.glob("outputs/debate_*/config.yaml"))).read_text()


def test_kill_9_then_rerun_finishes_every_question_once_without_repeats(
        tmp_path: Path) -> None:
    questions = load_toy_questions(num_questions=60, seed=2)
    script = ScriptedTeachers(questions)
    output = tmp_path / "graphs.jsonl"
    with FakeOpenAIServer(script, tag_of=script.tag_of, api_key=KEY, fault_rate=1.0,
                          fault_kinds=[Fault.SLOW], slow_seconds=0.05) as server:
        command = debate_command(server.base_url, output, 60, 2, "protocol=reconcile",
                                 "concurrency=2", "wandb.mode=disabled")
        process = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, KEY_ENV: KEY},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(ids_in(output) if output.exists() else []) < 15:
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(0.3)  # let the server log requests that were already in flight
        finished = set(ids_in(output))
        assert 15 <= len(finished) < 60
        with output.open("ab") as handle:  # a crash in the middle of a write
            handle.write(b'{"id": "toy-0000')
        killed_at = len(server.log)

        run_debate(command, tmp_path)
        later = server.log[killed_at:]
    assert sorted(ids_in(output)) == sorted(q.id for q in questions)
    # Every request is attributed to its question, but one the SIGKILL cut off mid-send
    # (the server answers a truncated body with 400 and cannot tell whose it was).
    cut_off = [r for r in server.log if r.outcome == "bad_request"]
    assert len(cut_off) <= 2
    assert all(record.tag is not None for record in server.log if record not in cut_off)
    assert not [r for r in later if r.tag in finished]
    rerun = [s for s in (json.loads(p.read_text()) for p in
                         (tmp_path / "outputs").glob("debate_*/summary.json"))]
    assert [(s["already_done"], s["written"], s["torn_lines_dropped"]) for s in rerun] == [
        (len(finished), 60 - len(finished), 1)]
    print(f"killed after {len(finished)} of 60 questions; rerun wrote "
          f"{60 - len(finished)}, {len(later)} requests, none for a finished question")


@pytest.mark.parametrize(("protocol", "nodes_per_graph"), [
    ("reconcile", None), ("du", 6), ("tinyllm", 3), ("siked", 9)])
def test_each_protocols_output_trains_without_conversion(
        protocol: str, nodes_per_graph: int | None, tmp_path: Path) -> None:
    import lightning as L
    from factories import tiny_module

    from magdi_lightning.data.datamodule import GraphDataModule

    questions = load_toy_questions(num_questions=8, seed=4)
    script = ScriptedTeachers(questions)
    output = tmp_path / f"{protocol}.jsonl"
    with FakeOpenAIServer(script, tag_of=script.tag_of, api_key=KEY) as server:
        run_debate(debate_command(server.base_url, output, 8, 4, f"protocol={protocol}",
                                  "wandb.mode=disabled"), tmp_path)
    graphs = list(read_graphs(output))
    assert len(graphs) == 8
    if nodes_per_graph:
        assert all(len(g.nodes) == nodes_per_graph for g in graphs)

    module = tiny_module()
    data = GraphDataModule(graphs=str(output), tokenizer=module.student.tokenizer,
                           batch_size=2, val_fraction=0.25, test_fraction=0.0,
                           cache_dir=str(tmp_path / "cache"))
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=1)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 2


def test_tiny_local_transformers_teachers_end_to_end(tmp_path: Path) -> None:
    from factories import tiny_student

    tiny_student().save_pretrained(tmp_path / "teacher")
    output = tmp_path / "graphs.jsonl"
    result = run_debate([sys.executable, "-m", "magdi_lightning.cli.debate", "questions=toy",
                         "limit=3", "protocol=du", "protocol.rounds=2", "teachers=tiny_local",
                         f"teachers.model={tmp_path / 'teacher'}", "teachers.max_tokens=8",
                         f"output={output}", "progress=false", "wandb.mode=disabled"], tmp_path)
    assert "magdi-debate summary" in result.stdout
    graphs = list(read_graphs(output))
    assert sorted(g.id for g in graphs) == [q.id for q in load_toy_questions()[:3]]
    for graph in graphs:
        assert graph.num_agents == 2 and graph.num_rounds == 2 and len(graph.edges) == 4
        assert {n.model for n in graph.nodes} == {str(tmp_path / "teacher")}
    summary = summary_of(tmp_path)
    assert summary["teachers"]["local_a"]["requests"] == 6
    assert summary["teachers"]["local_a"]["completion_tokens"] > 0


@pytest.mark.parametrize("choice", [
    "protocol=reconcile protocol.convincing_samples={"
    "analyst:${paths.shared_data}/reconcile/convincing/GSM8k/claude.json,"
    "skeptic:${paths.shared_data}/reconcile/convincing/GSM8k/chatgpt.json,teacher:null}",
    "protocol=du", "protocol=tinyllm", "protocol=siked questions=strategyqa",
    "teachers=openai questions=ecqa", "teachers=tiny_local teachers.model=M questions=toy",
])
def test_every_debate_config_composes_and_builds(choice: str, shared_data: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from magdi_lightning import CONFIG_DIR
    from magdi_lightning.teachers.endpoints import TeacherSpec

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="debate", return_hydra_config=True,
                      overrides=[*choice.split(), f"paths.shared_data={shared_data}"])
    HydraConfig.instance().set_config(cfg)
    assert str(cfg.output).startswith("outputs/teachers/")
    instantiate(cfg.protocol, _convert_="all")
    specs = [TeacherSpec(**OmegaConf.to_container(a, resolve=True)) for a in cfg.teachers.agents]
    assert len({s.name for s in specs}) == len(specs) >= 2
    assert all(s.api_key_env in (None, "OPENAI_API_KEY") for s in specs)
