"""``magdi-debate``: ask teacher LLMs about a question set and write MAG JSONL.

``protocol`` picks how (``reconcile``, ``du``, ``tinyllm``, ``siked``), ``teachers`` who
(``openai``, ``openai_compatible``, ``tiny_local``), ``questions`` what. The graphs go to
``output`` (by default one file per protocol, question set and teacher set, outside the
timestamped run directory so the same command resumes); the run directory holds the
resolved config (API key *names* only), the log and ``summary.json`` with requests,
retries, failures by kind, tokens and estimated cost per teacher.

No secret reaches an output: every teacher's key and every variable in ``secret_envs`` is
scrubbed (:mod:`~magdi_lightning.teachers.secrets`) from all the run writes, prints and
logs, even when a server echoes the key back. A key the server does not accept, an
unknown model, an unreachable server or a missing key variable ends the command with a
one-paragraph message and exit code 2; questions that failed for good, with exit code 3.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from magdi_lightning import CONFIG_DIR
from magdi_lightning.cli.common import print_table
from magdi_lightning.cli.errors import user_errors
from magdi_lightning.errors import UserError
from magdi_lightning.io import write_json_atomically
from magdi_lightning.runtime.tracking import (
    wandb_run,
    write_run_config,
)
from magdi_lightning.sources.question_sets import load_benchmark
from magdi_lightning.teachers.endpoints import Endpoint, TeacherSpec, build_endpoint
from magdi_lightning.teachers.runner import RunSummary, run_protocol
from magdi_lightning.teachers.secrets import SCRUBBER, scrubbed_logs, secret_from_env
from magdi_lightning.teachers.teacher import RetryPolicy, Teacher

log = logging.getLogger(__name__)


def build_teachers(cfg: DictConfig) -> list[Teacher]:
    """One :class:`Teacher` per configured agent; agents on the same local model share it."""
    specs = [TeacherSpec(**OmegaConf.to_container(agent, resolve=True))  # type: ignore[arg-type]
             for agent in cfg.teachers.agents]
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise UserError(f"teacher names must be unique, got {names}")
    policy = RetryPolicy(**OmegaConf.to_container(cfg.retry, resolve=True))  # type: ignore[arg-type]
    shared: dict[str, Endpoint] = {}
    teachers = []
    for spec in specs:
        if spec.backend != "transformers":
            endpoint = build_endpoint(spec)
        elif spec.model in shared:
            endpoint = shared[spec.model]
        else:
            endpoint = shared[spec.model] = build_endpoint(spec)
        teachers.append(Teacher(spec, endpoint, policy, seed=cfg.seed))
    return teachers


def run_debate(cfg: DictConfig) -> RunSummary:
    """Run as ``cfg`` says, with every secret scrubbed from what it writes, prints and logs;
    return the summary written to summary.json."""
    key_envs = [agent.api_key_env for agent in cfg.teachers.agents if agent.get("api_key_env")]
    for name in [*key_envs, *cfg.secret_envs]:  # known before anything is written
        secret_from_env(name)
    with scrubbed_logs():
        return _run(cfg)


def _run(cfg: DictConfig) -> RunSummary:
    """:func:`run_debate` once the scrubber knows every secret and guards the logs."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_run_config(cfg, output_dir)
    loader = OmegaConf.to_container(cfg.questions.loader, resolve=True)
    questions = load_benchmark(cfg.questions.name, limit=cfg.limit, **loader)  # type: ignore[arg-type]
    protocol = instantiate(cfg.protocol, _convert_="all")
    teachers = build_teachers(cfg)
    log.info("%s: %d questions, teachers %s -> %s", type(protocol).__name__, len(questions),
             [t.name for t in teachers], cfg.output)

    async def main() -> RunSummary:
        try:
            return await run_protocol(protocol, teachers, questions, cfg.output,
                                      cfg.concurrency, cfg.progress)
        finally:
            # A fatal teacher error leaves the other teachers' requests of that question
            # running (gather does not cancel them): end them before closing their clients,
            # so none fails afterwards on a closed client.
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            for teacher in teachers:
                await teacher.endpoint.aclose()

    summary = asyncio.run(main())
    record = SCRUBBER.scrub({"output": str(cfg.output), **summary.as_dict()})
    write_json_atomically(output_dir / "summary.json", record)
    with wandb_run(cfg, output_dir) as run:
        if run is not None:
            run.summary.update(record)
    _print_summary(record)
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    """The (scrubbed) summary record as a table and a line on stdout."""
    rows = [(name, str(usage["requests"]), str(usage["succeeded"]), str(usage["retries"]),
             str(usage["gave_up"]),
             ", ".join(f"{k} {v}" for k, v in usage["failures"].items()) or "-",
             f"{usage['prompt_tokens']} / {usage['completion_tokens']}", f"{usage['cost']:.4f}")
            for name, usage in summary["teachers"].items()]
    print_table("magdi-debate summary", ("teacher", "requests", "ok", "retries", "gave up",
                                         "failures by kind", "tokens in / out", "cost"), rows,
                footer=(f"questions {summary['questions']}: {summary['already_done']} already "
                        f"done, {summary['written']} written, {summary['skipped']} skipped, "
                        f"{summary['failed']} failed (rerun to retry them); "
                        f"{summary['seconds']:.1f} s; output {summary['output']}"))


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="debate")
def _hydra_main(cfg: DictConfig) -> None:
    with user_errors("magdi-debate"):
        summary = run_debate(cfg)
        if summary.failed:
            raise SystemExit(3)


def main() -> None:
    """Console entry point (Hydra parses ``sys.argv``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
