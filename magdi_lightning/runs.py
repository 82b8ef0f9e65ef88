"""Run directories as records: what a run is, whether it finished, and where to resume it.

Every ``magdi-train`` run directory holds ``run.json``: its status (``running`` until
``metrics.json`` is written, then ``finished``), a fingerprint of its configuration,
its wandb run id and the checkpoint it resumed from. A live run also holds an exclusive
``flock`` on ``run.lock`` (released by the kernel however the process dies), which tells
a crashed run from one still training.

``ckpt_path`` then means:

- ``auto``: resume if there is something to resume, else start fresh. First this run's
  own directory (a SLURM job requeued after preemption re-runs in the same directory;
  the newest of ``checkpoints/last.ckpt`` and the ``hpc_ckpt_<n>.ckpt`` Lightning's
  SLURM signal handler saved),
  then the newest dead, unfinished run under ``paths.log_dir`` with the same
  fingerprint (the same command, run again after a crash).
- ``last``: as ``auto``, but there must be something to resume.
- a path: that checkpoint, unless its run finished.

A resumed run writes to its own new directory (another run's directory is never
written to) and continues the old run's wandb run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from omegaconf import DictConfig, OmegaConf

__all__ = ["ResumeError", "RunLock", "RunRecord", "fingerprint", "resolve_checkpoint",
           "run_dir_of"]

RECORD = "run.json"
LOCK = "run.lock"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# Config keys that name this run rather than describe what it computes.
_VOLATILE_KEYS = ("ckpt_path", "tags")
# How deep below ``paths.log_dir`` run directories are looked for (multirun jobs are
# ``<log_dir>/<sweep>/<job>``).
_SEARCH_DEPTH = 3


class ResumeError(RuntimeError):
    """The requested checkpoint cannot be resumed (missing, or its run finished)."""


@dataclass
class RunRecord:
    """The contents of ``run.json``."""

    fingerprint: str
    wandb_id: str
    status: str = "running"
    resumed_from: str | None = None
    untrained_accuracy: float | None = None
    slurm_job_id: str | None = None
    started: float = field(default_factory=time.time)

    def write(self, run_dir: Path) -> None:
        tmp = run_dir / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(run_dir / RECORD)

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord | None:
        """The record of ``run_dir``, or None if it has none (or an unreadable one)."""
        try:
            return cls(**json.loads((run_dir / RECORD).read_text()))
        except (OSError, ValueError, TypeError):
            return None


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/run.lock`` held for the process's lifetime."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ResumeError(f"{self.path.parent} is in use by another live process") from None
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

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


def resolve_checkpoint(ckpt_path: str | None, output_dir: Path, log_dir: Path,
                       run_fingerprint: str) -> Path | None:
    """The checkpoint to resume from (None: start fresh), as the module docstring says."""
    if ckpt_path in (None, "", "none", "null"):
        return None
    if ckpt_path in ("auto", "last"):
        own = _own_checkpoint(output_dir)
        if own is not None:
            _refuse_if_finished(output_dir, ckpt_path)
            return own
        found = _newest_resumable(log_dir, output_dir, run_fingerprint)
        if found is None and ckpt_path == "last":
            raise ResumeError(f"ckpt_path=last: no unfinished run of this configuration "
                              f"(fingerprint {run_fingerprint}) with a checkpoint under "
                              f"{log_dir}")
        return found
    path = Path(ckpt_path)
    if not path.is_file():
        raise ResumeError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    run_dir = run_dir_of(path)
    if run_dir is not None:
        _refuse_if_finished(run_dir, ckpt_path)
    return path


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/*.ckpt`` or
    ``<run>/hpc_ckpt_<n>.ckpt``), or None for a checkpoint outside any run."""
    for candidate in checkpoint.resolve().parents[:2]:
        if (candidate / RECORD).exists():
            return candidate
    return None


def _own_checkpoint(run_dir: Path) -> Path | None:
    """The newest of this directory's ``last.ckpt`` and the checkpoints Lightning's SLURM
    signal handler saves before requeueing (``hpc_ckpt_<n>.ckpt``)."""
    found = [p for p in (run_dir / LAST_CHECKPOINT, *run_dir.glob("hpc_ckpt_*.ckpt"))
             if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _refuse_if_finished(run_dir: Path, ckpt_path: str) -> None:
    record = RunRecord.read(run_dir)
    if record is not None and record.status == "finished":
        raise ResumeError(f"ckpt_path={ckpt_path}: run {run_dir} finished; refusing to "
                          "resume a finished run (to train further, start a new run from its "
                          "weights: student.name_or_path=<run>/student)")


def _newest_resumable(log_dir: Path, output_dir: Path, run_fingerprint: str) -> Path | None:
    candidates: list[tuple[float, Path]] = []
    for record_path in _records_under(log_dir):
        run_dir = record_path.parent
        if run_dir.resolve() == output_dir.resolve():
            continue
        record = RunRecord.read(run_dir)
        checkpoint = run_dir / LAST_CHECKPOINT
        if (record is None or record.fingerprint != run_fingerprint
                or record.status != "running" or not checkpoint.exists()
                or RunLock.held(run_dir)):
            continue
        candidates.append((checkpoint.stat().st_mtime, checkpoint))
    return max(candidates)[1] if candidates else None


def _records_under(root: Path) -> list[Path]:
    found: list[Path] = []
    for depth in range(1, _SEARCH_DEPTH + 1):
        found.extend(root.glob("/".join(["*"] * depth) + f"/{RECORD}"))
    return found
