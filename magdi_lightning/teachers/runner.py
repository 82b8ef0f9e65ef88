"""Runs a protocol over a question set: bounded concurrency, durable output, resume.

Questions already in the output (or its skipped sidecar) are not asked again. Up to
``concurrency`` questions are in flight at once (each teacher also caps its own
requests). A question whose requests fail for good is left out of the output and listed
in the summary, so the next run retries it; an error no retry can fix (a bad API key, an
unknown model) stops the run. The summary counts requests, retries, failures by kind,
tokens and estimated cost per teacher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magdi_lightning.errors import UserError
from magdi_lightning.questions import Question
from magdi_lightning.teachers.protocols.base import Protocol
from magdi_lightning.teachers.store import ResultStore
from magdi_lightning.teachers.teacher import FATAL, Teacher, TeacherFailure

__all__ = ["RunSummary", "run_protocol"]

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did; ``as_dict`` is written to ``summary.json``."""

    questions: int = 0
    already_done: int = 0
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    torn_lines_dropped: int = 0
    seconds: float = 0.0
    teachers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def cost(self) -> float:
        return sum(usage["cost"] for usage in self.teachers.values())

    def as_dict(self) -> dict[str, Any]:
        return {"questions": self.questions, "already_done": self.already_done,
                "written": self.written, "skipped": self.skipped,
                "failed": len(self.failed), "failed_questions": self.failed,
                "torn_lines_dropped": self.torn_lines_dropped,
                "seconds": round(self.seconds, 2), "estimated_cost": round(self.cost, 6),
                "teachers": self.teachers}


async def run_protocol(protocol: Protocol, teachers: Sequence[Teacher],
                       questions: Sequence[Question], output: str | Path,
                       concurrency: int = 8, progress: bool = True) -> RunSummary:
    """Ask ``teachers`` every question of ``questions`` not yet in ``output``."""
    if concurrency < 1:
        raise UserError("concurrency must be >= 1")
    _check_unique_ids(questions)
    started = time.perf_counter()
    summary = RunSummary(questions=len(questions))
    with ResultStore(output) as store, _progress(progress) as bar:
        summary.torn_lines_dropped = store.torn_lines_dropped
        todo = [q for q in questions if q.id not in store.done]
        summary.already_done = len(questions) - len(todo)
        task = bar.add_task(protocol.name, total=len(questions),
                            completed=summary.already_done, cost=0.0) if bar else None
        slots = asyncio.Semaphore(concurrency)

        async def one(example: Question) -> None:
            async with slots:
                try:
                    graph = await protocol.run(example, list(teachers))
                except TeacherFailure as failure:
                    if failure.kind == FATAL:
                        raise
                    summary.failed[example.id] = str(failure)
                    log.warning("question %s failed: %s", example.id, failure)
                    return
            if graph is None:
                store.skip(example.id, "no response passed the protocol's filters")
                summary.skipped += 1
            else:
                store.append(graph.to_dict())
                summary.written += 1
            if bar is not None:
                bar.update(task, advance=1, cost=sum(t.usage.cost for t in teachers))

        workers = [asyncio.ensure_future(one(example)) for example in todo]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    summary.seconds = time.perf_counter() - started
    summary.teachers = {t.name: {"model": t.spec.model, **t.usage.as_dict()} for t in teachers}
    return summary


def _check_unique_ids(questions: Sequence[Question]) -> None:
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise UserError(f"question id {question.id!r} appears twice in the question set")
        seen.add(question.id)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _progress(enabled: bool) -> Any:
    """A rich progress bar with ETA and live cost, or nothing."""
    if not enabled:
        return _NoProgress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    TextColumn("cost {task.fields[cost]:.4f}"))
