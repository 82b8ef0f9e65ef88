"""Run records and checkpoint resolution (``ckpt_path=auto|last|<path>``), and the wandb
conventions (mode, redaction)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from magdi_lightning.runtime.runs import (
    ResumeError,
    ResumePoint,
    RunLock,
    RunRecord,
    fingerprint,
    resolve_checkpoint,
    run_dir_of,
    start_record,
)
from magdi_lightning.runtime.tracking import MASK, redacted_config, wandb_mode


def _run(root: Path, name: str, digest: str = "abc", status: str = "running",
         checkpoint: bool = True, age: float = 0.0) -> Path:
    run_dir = root / name
    (run_dir / "checkpoints").mkdir(parents=True)
    RunRecord(fingerprint=digest, wandb_id=name, status=status).write(run_dir)
    if checkpoint:
        path = run_dir / "checkpoints" / "last.ckpt"
        path.write_bytes(b"ckpt")
        os.utime(path, (time.time() - age, time.time() - age))
    return run_dir


def _checkpoint(ckpt_path: str, output_dir: Path, log_dir: Path) -> Path | None:
    found = resolve_checkpoint(ckpt_path, output_dir, log_dir, "abc")
    return found.checkpoint if found else None


def test_no_checkpoint_requested_starts_fresh(tmp_path: Path) -> None:
    _run(tmp_path, "old")
    for value in (None, "null", "none"):
        assert resolve_checkpoint(value, tmp_path / "new", tmp_path, "abc") is None


def test_auto_picks_the_newest_dead_unfinished_run_of_the_same_configuration(
        tmp_path: Path) -> None:
    _run(tmp_path, "older", age=100)
    newest = _run(tmp_path, "newest", age=10)
    _run(tmp_path, "other_config", digest="xyz", age=1)
    _run(tmp_path, "finished", status="finished", age=1)
    _run(tmp_path, "no_checkpoint", checkpoint=False)
    _run(tmp_path / "multirun", "0", age=50)  # sweep jobs are found one level deeper
    found = resolve_checkpoint("auto", tmp_path / "new", tmp_path, "abc")
    assert found == ResumePoint(newest / "checkpoints" / "last.ckpt", newest)


def test_auto_prefers_the_runs_own_directory_and_lightnings_hpc_checkpoint(
        tmp_path: Path) -> None:
    own = _run(tmp_path, "own", age=50)
    _run(tmp_path, "other", age=1)
    assert _checkpoint("auto", own, tmp_path) == own / "checkpoints/last.ckpt"
    (own / "hpc_ckpt_1.ckpt").write_bytes(b"signal")  # newer: saved on SIGUSR1
    assert _checkpoint("auto", own, tmp_path) == own / "hpc_ckpt_1.ckpt"
    assert run_dir_of(own / "hpc_ckpt_1.ckpt") == own.resolve()


def test_auto_starts_fresh_and_last_refuses_when_nothing_is_resumable(tmp_path: Path) -> None:
    _run(tmp_path, "finished", status="finished")
    assert resolve_checkpoint("auto", tmp_path / "new", tmp_path, "abc") is None
    with pytest.raises(ResumeError, match="no crashed run"):
        resolve_checkpoint("last", tmp_path / "new", tmp_path, "abc")


def test_a_finished_run_is_never_resumed(tmp_path: Path) -> None:
    done = _run(tmp_path, "done", status="finished")
    with pytest.raises(ResumeError, match="refusing to resume a finished run"):
        resolve_checkpoint(str(done / "checkpoints" / "last.ckpt"), tmp_path / "new",
                           tmp_path, "abc")
    with pytest.raises(ResumeError, match="refusing"):  # a requeued job whose run finished
        resolve_checkpoint("auto", done, tmp_path, "abc")
    with pytest.raises(ResumeError, match="no such checkpoint"):
        resolve_checkpoint(str(tmp_path / "missing.ckpt"), tmp_path / "new", tmp_path, "abc")


def test_a_resumed_crash_is_marked_resumed_and_never_resumed_again(tmp_path: Path) -> None:
    crashed = _run(tmp_path, "crashed")
    second, third = tmp_path / "second", tmp_path / "third"
    second.mkdir(), third.mkdir()

    point = resolve_checkpoint("auto", second, tmp_path, "abc", claim=True)
    assert point == ResumePoint(crashed / "checkpoints" / "last.ckpt", crashed)
    marked = RunRecord.read(crashed)
    assert marked is not None
    assert (marked.status, marked.resumed_by) == ("resumed", str(second))
    record = start_record(second, "abc", point)
    assert record.wandb_id == "crashed"  # the resumed run continues the crash's wandb run
    assert record.resumed_from == str(point.checkpoint.resolve())
    record.finish(second)

    # The third run of the same command: the crash was resumed and its resumer finished.
    assert resolve_checkpoint("auto", third, tmp_path, "abc", claim=True) is None
    with pytest.raises(ResumeError, match=r"was resumed already by .*second"):
        resolve_checkpoint(str(point.checkpoint), third, tmp_path, "abc", claim=True)
    with pytest.raises(ResumeError, match="was resumed already"):  # the crash requeued
        resolve_checkpoint("auto", crashed, tmp_path, "abc")


def test_a_resumed_run_that_crashes_before_its_first_checkpoint_keeps_its_progress(
        tmp_path: Path) -> None:
    first = _run(tmp_path, "first")
    second, third = tmp_path / "second", tmp_path / "third"
    second.mkdir(), third.mkdir()
    start_record(second, "abc", resolve_checkpoint("auto", second, tmp_path, "abc",
                                                   claim=True))
    # The second run dies before writing a checkpoint: the third resumes it (from the
    # checkpoint it had resumed from, in the same wandb run), never the first again.
    point = resolve_checkpoint("auto", third, tmp_path, "abc", claim=True)
    assert point == ResumePoint(first / "checkpoints" / "last.ckpt", second)
    assert start_record(third, "abc", point).wandb_id == "first"
    statuses = {run.name: (r.status, r.resumed_by) for run in (first, second)
                if (r := RunRecord.read(run)) is not None}
    assert statuses == {"first": ("resumed", str(second)), "second": ("resumed", str(third))}


def test_a_takeover_holds_for_its_taker_and_lapses_if_the_taker_never_started(
        tmp_path: Path) -> None:
    crashed = _run(tmp_path, "crashed")
    taker, other = tmp_path / "taker", tmp_path / "other"
    taker.mkdir(), other.mkdir()
    expected = ResumePoint(crashed / "checkpoints" / "last.ckpt", crashed)
    with RunLock(taker):
        assert resolve_checkpoint("auto", taker, tmp_path, "abc", claim=True) == expected
        # The taker's other processes, looking up what it resumes, find the same run ...
        assert resolve_checkpoint("auto", taker, tmp_path, "abc") == expected
        # ... and no one else takes it while the taker lives, even before its record exists.
        assert resolve_checkpoint("auto", other, tmp_path, "abc", claim=True) is None
    # The taker died before writing its record: the crash is still resumable.
    assert resolve_checkpoint("auto", other, tmp_path, "abc", claim=True) == expected
    assert RunRecord.read(crashed).resumed_by == str(other)


def test_a_siked_run_reopens_its_own_record(tmp_path: Path) -> None:
    first = start_record(tmp_path, "abc")
    first.finish(tmp_path)
    again = start_record(tmp_path, "abc")  # resume_dir=<run> iterations=<more>
    assert (again.status, again.wandb_id) == ("running", first.wandb_id)


def _hold_lock(run_dir: str, ready, stop) -> None:
    lock = RunLock(Path(run_dir))
    lock.acquire()
    ready.set()
    stop.wait(30)


def test_a_run_still_alive_is_not_resumed_and_its_directory_cannot_be_claimed(
        tmp_path: Path) -> None:
    live = _run(tmp_path, "live")
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(live), ready, stop))
    holder.start()
    try:
        assert ready.wait(30)
        assert RunLock.held(live)
        assert resolve_checkpoint("auto", tmp_path / "new", tmp_path, "abc") is None
        with pytest.raises(ResumeError, match="in use"):
            RunLock(live).acquire()
    finally:
        stop.set()
        holder.join(30)
    assert not RunLock.held(live)  # the kernel released it with the process
    assert resolve_checkpoint("auto", tmp_path / "new", tmp_path, "abc") is not None


def test_fingerprint_ignores_the_run_directory_and_names_but_not_settings(
        tmp_path: Path) -> None:
    def config(run: str, lr: float, tags: list[str]) -> object:
        return OmegaConf.create({"paths": {"output_dir": run}, "optimizer": {"lr": lr},
                                 "logger": {"save_dir": "${paths.output_dir}"},
                                 "ckpt_path": "auto", "tags": tags})

    first = fingerprint(config("outputs/a", 0.1, []), "outputs/a")
    assert fingerprint(config("outputs/b", 0.1, ["x"]), "outputs/b") == first
    assert fingerprint(config("outputs/b", 0.2, []), "outputs/b") != first


def test_record_round_trips_and_tolerates_a_damaged_file(tmp_path: Path) -> None:
    record = RunRecord(fingerprint="f", wandb_id="w", untrained_accuracy=0.25)
    record.write(tmp_path)
    assert RunRecord.read(tmp_path) == record
    (tmp_path / "run.json").write_text("{torn")
    assert RunRecord.read(tmp_path) is None


def test_wandb_mode_is_offline_without_a_key(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_mode("auto") == wandb_mode(None) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_mode("auto") == "online"
    assert wandb_mode("disabled") == "disabled"


def test_logged_config_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    cfg = OmegaConf.create({
        "teachers": {"agents": [{"api_key_env": "OPENAI_API_KEY", "api_key": "sk-inline"}]},
        "note": "url?key=sk-test-0123456789abcdef", "hf_token": "hf_abc", "lr": 0.1})
    cleaned = redacted_config(cfg)
    assert cleaned["teachers"]["agents"][0] == {"api_key_env": "OPENAI_API_KEY",
                                                "api_key": MASK}
    assert cleaned["note"] == f"url?key={MASK}"
    assert cleaned["hf_token"] == MASK and cleaned["lr"] == 0.1
