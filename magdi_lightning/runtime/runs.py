"""Run directories as records: what a run is, whether it finished, and where to resume it.

Every ``magdi-train`` and ``magdi-siked`` run directory holds ``run.json`` (its record:
status, a fingerprint of its configuration, its wandb run id, the checkpoint it resumed
from, the run that resumed it) and, while its process lives, an exclusive ``flock`` on
``run.lock`` (released by the kernel however the process dies). The lock tells a crashed
run from one still training and keeps two processes out of one directory.

A run's state is its record's ``status`` together with its lock:

======================  ==================================================================
state                   meaning; what ``ckpt_path=auto`` does with it
======================  ==================================================================
``running``, locked     live; never resumed, its directory cannot be claimed
``running``, unlocked   crashed (killed, or it raised); resumed from its *resume point*
``resumed``             crashed, and then taken over by the run ``resumed_by`` names;
                        never resumed again, so one crash is resumed once and its wandb run
                        is continued by one run only (the taker's other processes still
                        look it up; if the taker died before writing its record, the
                        takeover lapses and the crash is resumable again)
``finished``            ``metrics.json`` written; never resumed (``ckpt_path=last`` or a
                        path into it is refused; train further from its weights instead)
======================  ==================================================================

Transitions: a run claims its own directory (lock, then record ``running``); it becomes
``finished`` once its outputs are written; a crashed run becomes ``resumed`` when another
run takes it over, which happens under the crashed run's lock (so of two runs started at
once only one takes it) and before the new run writes its own record. The new run's
record continues the crashed run's wandb id and names the checkpoint it resumed from.

A run's resume point is its newest own checkpoint (``checkpoints/last.ckpt``, or the
``hpc_ckpt_<n>.ckpt`` Lightning's SLURM signal handler saves before requeueing), else the
checkpoint it itself resumed from: a run that crashed again before its first checkpoint
still carries its predecessor's progress.

``ckpt_path`` then means:

- ``auto``: resume if there is something to resume, else start fresh. First this run's
  own directory (a SLURM job requeued after preemption re-runs in the same directory),
  then the newest crashed run under ``paths.log_dir`` with the same fingerprint (the
  same command, run again after a crash). So the same command run three times after a
  crash resumes it, then (if the resumed run finished) starts fresh, or (if it crashed
  too) resumes the resumed run, never the first crash again.
- ``last``: as ``auto``, but there must be something to resume.
- a path: that checkpoint, unless its run finished, is live, or was resumed already.

A resumed run writes to its own new directory; of another run's directory only the
record is ever written (to mark it resumed).

``magdi-siked`` resumes in place (``resume_dir``): it takes the same lock and keeps the
same record in that directory, which a finished run re-enters as ``running`` when more
iterations are asked for.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from omegaconf import DictConfig, OmegaConf

from magdi_lightning.io import write_json_atomically

__all__ = ["ResumeError", "ResumePoint", "RunLock", "RunRecord", "fingerprint",
           "resolve_checkpoint", "run_dir_of", "start_record"]

RECORD = "run.json"
LOCK = "run.lock"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# Config keys that name this run rather than describe what it computes.
_VOLATILE_KEYS = ("ckpt_path", "resume_dir", "tags")
# How deep below ``paths.log_dir`` run directories are looked for (multirun jobs are
# ``<log_dir>/<sweep>/<job>``).
_SEARCH_DEPTH = 3


class ResumeError(RuntimeError):
    """The run cannot start as asked: its checkpoint is missing, its run finished, is live
    or was resumed already, or its directory is in use."""


@dataclass
class RunRecord:
    """The contents of ``run.json`` (the states are in the module docstring)."""

    fingerprint: str
    wandb_id: str
    status: str = "running"
    resumed_from: str | None = None
    resumed_by: str | None = None
    untrained_accuracy: float | None = None
    slurm_job_id: str | None = None
    started: float = field(default_factory=time.time)

    def write(self, run_dir: Path) -> None:
        write_json_atomically(run_dir / RECORD, asdict(self))

    def finish(self, run_dir: Path) -> None:
        """Mark the run finished: from now on it is never resumed."""
        self.status = "finished"
        self.write(run_dir)

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord | None:
        """The record of ``run_dir``, or None if it has none (or an unreadable one)."""
        try:
            return cls(**json.loads((run_dir / RECORD).read_text()))
        except (OSError, ValueError, TypeError):
            return None


@dataclass(frozen=True)
class ResumePoint:
    """What a run resumes: a checkpoint, and the run whose record it continues (the run's
    own directory, a crashed run, or None for a checkpoint outside any run)."""

    checkpoint: Path
    run_dir: Path | None


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/run.lock`` held for the process's lifetime
    (or the ``with`` block's)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ResumeError(f"{self.path.parent} is in use by another live process (it "
                              f"holds {self.path}); wait for it to end, or give this run "
                              "its own directory") from None
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    @staticmethod
    def held(run_dir: Path) -> bool:
        """Whether a live process holds ``run_dir``'s lock."""
        path = run_dir / LOCK
        if not path.exists():
            return False
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False


def fingerprint(cfg: DictConfig, output_dir: str | Path) -> str:
    """A digest of what ``cfg`` computes: the resolved config with this run's directory
    replaced by a placeholder and the keys that only name the run left out."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    for key in _VOLATILE_KEYS:
        resolved.pop(key, None)
    text = json.dumps(resolved, sort_keys=True, default=str).replace(str(output_dir), "<run>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def new_wandb_id() -> str:
    """A fresh wandb run id (wandb takes lowercase letters and digits)."""
    return uuid.uuid4().hex[:12]


def start_record(run_dir: Path, run_fingerprint: str,
                 resume: ResumePoint | None = None) -> RunRecord:
    """Write ``run_dir``'s record as a run now starts there (its lock held).

    It continues ``run_dir``'s own record (a requeued job, a SIKeD run resumed in place),
    else the record of the run ``resume`` takes over (its wandb id and untrained accuracy),
    else it is a fresh one.
    """
    source = resume.run_dir if resume else None
    previous = RunRecord.read(run_dir) or (RunRecord.read(source) if source else None)
    record = RunRecord(
        fingerprint=run_fingerprint,
        wandb_id=previous.wandb_id if previous else new_wandb_id(),
        resumed_from=str(resume.checkpoint.resolve()) if resume else None,
        untrained_accuracy=previous.untrained_accuracy if previous else None,
        slurm_job_id=os.environ.get("SLURM_JOB_ID"))
    record.write(run_dir)
    return record


def resolve_checkpoint(ckpt_path: str | None, output_dir: Path, log_dir: Path,
                       run_fingerprint: str, claim: bool = False) -> ResumePoint | None:
    """What to resume (None: start fresh), as the module docstring says.

    With ``claim`` (the process that owns ``output_dir``, its lock held), the crashed run
    it resumes is marked ``resumed`` by ``output_dir``; without, the same choice is only
    looked up (the other processes of a multi-process run).
    """
    if ckpt_path in (None, "", "none", "null"):
        return None
    if ckpt_path in ("auto", "last"):
        own = _resume_point(output_dir)
        if own is not None:
            _refuse_if_done(output_dir, ckpt_path, output_dir)
            return ResumePoint(own, output_dir)
        for run_dir, checkpoint in _resumable(log_dir, output_dir, run_fingerprint):
            if not claim or _claim(run_dir, output_dir):
                return ResumePoint(checkpoint, run_dir)
        if ckpt_path == "last":
            raise ResumeError(f"ckpt_path=last: no crashed run of this configuration "
                              f"(fingerprint {run_fingerprint}) with a checkpoint under "
                              f"{log_dir}")
        return None
    path = Path(ckpt_path)
    if not path.is_file():
        raise ResumeError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    run_dir = run_dir_of(path)
    if run_dir is None:
        return ResumePoint(path, None)
    _refuse_if_done(run_dir, ckpt_path, output_dir)
    own = run_dir == output_dir.resolve()  # a requeued job given a path into its directory
    if claim and not own and not _claim(run_dir, output_dir):
        raise ResumeError(f"ckpt_path={ckpt_path}: run {run_dir} is live (or was resumed "
                          "by another run just now); refusing to resume it")
    return ResumePoint(path, run_dir)


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/*.ckpt`` or
    ``<run>/hpc_ckpt_<n>.ckpt``), or None for a checkpoint outside any run."""
    for candidate in checkpoint.resolve().parents[:2]:
        if (candidate / RECORD).exists():
            return candidate
    return None


def _resume_point(run_dir: Path) -> Path | None:
    """Where ``run_dir`` would resume (see the module docstring): the newest of its
    ``last.ckpt`` and ``hpc_ckpt_<n>.ckpt``, else the checkpoint it resumed from."""
    found = [p for p in (run_dir / LAST_CHECKPOINT, *run_dir.glob("hpc_ckpt_*.ckpt"))
             if p.is_file()]
    if found:
        return max(found, key=lambda p: p.stat().st_mtime)
    record = RunRecord.read(run_dir)
    inherited = Path(record.resumed_from) if record and record.resumed_from else None
    return inherited if inherited is not None and inherited.is_file() else None


def _refuse_if_done(run_dir: Path, ckpt_path: str, by: Path) -> None:
    """Refuse to let ``by`` resume ``run_dir`` if it finished or another run resumed it."""
    record = RunRecord.read(run_dir)
    if record is None:
        return
    if record.status == "finished":
        raise ResumeError(f"ckpt_path={ckpt_path}: run {run_dir} finished; refusing to "
                          "resume a finished run (to train further, start a new run from its "
                          "weights: student.name_or_path=<run>/student)")
    if record.status == "resumed" and not _takeover_allowed(record, by):
        raise ResumeError(f"ckpt_path={ckpt_path}: run {run_dir} was resumed already by "
                          f"{record.resumed_by}; refusing to resume one crash twice (to "
                          "continue, run the same command again: ckpt_path=auto resumes "
                          "the newest crashed run of it)")


def _takeover_allowed(record: RunRecord, by: Path) -> bool:
    """Whether the run ``by`` may take over a dead run with this record: it crashed, or
    ``by`` itself took it over already (``by``'s other processes, or ``by`` requeued), or
    the run that took it over died before writing its own record."""
    if record.status == "running":
        return True
    if record.status != "resumed" or record.resumed_by is None:
        return False
    taker = Path(record.resumed_by)
    return taker.resolve() == by.resolve() or (RunRecord.read(taker) is None
                                               and not RunLock.held(taker))


def _claim(run_dir: Path, by: Path) -> bool:
    """Mark the crashed run ``run_dir`` resumed by ``by``; False if it is live or was
    taken over meanwhile. Under ``run_dir``'s lock, so two runs never both take it."""
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except ResumeError:
        return False
    try:
        record = RunRecord.read(run_dir)
        if record is None or not _takeover_allowed(record, by):
            return False
        record.status, record.resumed_by = "resumed", str(by.resolve())
        record.write(run_dir)
        return True
    finally:
        lock.release()


def _resumable(log_dir: Path, output_dir: Path, run_fingerprint: str
               ) -> list[tuple[Path, Path]]:
    """The dead runs of this fingerprint ``output_dir`` may take over and their resume
    points, newest resume point first."""
    candidates: list[tuple[float, Path, Path]] = []
    for record_path in _records_under(log_dir):
        run_dir = record_path.parent
        if run_dir.resolve() == output_dir.resolve():
            continue
        record = RunRecord.read(run_dir)
        if (record is None or record.fingerprint != run_fingerprint
                or not _takeover_allowed(record, output_dir) or RunLock.held(run_dir)):
            continue
        point = _resume_point(run_dir)
        if point is not None:
            candidates.append((point.stat().st_mtime, run_dir, point))
    return [(run_dir, point) for _, run_dir, point in sorted(candidates, reverse=True)]


def _records_under(root: Path) -> list[Path]:
    found: list[Path] = []
    for depth in range(1, _SEARCH_DEPTH + 1):
        found.extend(root.glob("/".join(["*"] * depth) + f"/{RECORD}"))
    return found
