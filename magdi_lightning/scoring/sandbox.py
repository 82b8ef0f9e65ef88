"""Run model-written Python programs (program-of-thought solutions) in isolation.

Teacher and student models answer arithmetic questions with small programs that leave their
answer in a variable (``ans`` in the PoT data). Executing those programs is executing
untrusted code, so this module runs each one in a throw-away process with hard limits and
hands back only a JSON-safe value or a structured error (:class:`SandboxResult`).

Architecture (why it is fast enough for thousands of programs per minute on 2 cores):
:class:`SandboxPool` starts long-lived *worker* interpreters (``python -I -B`` on this file,
with an environment of its own). Each worker preloads ``math``, ``sympy``, ``numpy`` & co. once,
then runs every program in a fresh ``fork()`` of itself, so a program costs a fork (a few
ms) instead of an interpreter start plus a sympy import (about a second). The forked child
is thrown away after one program, so programs cannot influence each other.

Threat model: a program runs *arbitrary* code inside its own interpreter. It can reach and
switch off every Python-level guard (frames, closures, ``gc``), call native code through
``ctypes``, make any system call, use ``*at()`` calls with ``dir_fd``, forge what it reports
about itself, and signal or trace any process the kernel lets it. So every guarantee below
is enforced by the kernel, set up by code that runs before the program and that the program
cannot undo; ``tests/test_sandbox_kernel.py`` checks each with the Python-level guards off,
as root and as an unprivileged user.

Each worker runs in a bubblewrap container (:mod:`magdi_lightning.scoring.sandbox_isolation`):

* **Filesystem** -- its own mount namespace whose root holds only read-only binds of the
  interpreter, its standard library and site-packages, the system libraries and the
  worker script, plus ``/proc`` (of its own PID namespace), a minimal ``/dev`` and a
  private 64 MB ``tmpfs`` at ``/sandbox``. Nothing else of the host exists there: no home
  directories, no repository, no data, no ``/etc`` but ``ld.so.cache``. Each program gets
  a fresh directory in that tmpfs as working directory; after each program the worker
  empties the tmpfs, so nothing one program writes reaches the next.
* **Processes** -- its own PID namespace (a program sees bubblewrap, its worker and
  itself; never the caller or other programs, which live in other workers' containers),
  its own network namespace (no interfaces), IPC and UTS namespaces.
* **Identity** -- as root, the worker keeps only
  :data:`~magdi_lightning.scoring.sandbox_isolation.ROOT_WORKER_CAPABILITIES` and runs
  each program as ``nobody`` (uid 65534) with no capabilities and an empty bounding set;
  as an unprivileged user, bubblewrap's user namespace gives the worker and its programs
  the caller's uid with no capabilities. Always ``PR_SET_NO_NEW_PRIVS`` and non-dumpable
  (no ``/proc/<pid>/mem`` or ``fd`` access to the worker or the program).
* **System calls** -- a seccomp filter
  (:data:`magdi_lightning.scoring.sandbox_isolation.DENIED_SYSCALLS`) loaded in each program's
  process just before its code runs: no ``fork``/``clone``/``exec``, no signals
  (``kill``, ``tgkill``, pidfds), no ``ptrace`` or ``process_vm_*``, no sockets, no
  ``unshare``/``setns``/``mount``, no System V or POSIX IPC, no BPF, perf, io_uring,
  keys, modules; 32-bit and x32 system calls kill the process.
* **Limits** -- ``RLIMIT_CPU`` (``SIGXCPU``, then ``SIGKILL`` one second later),
  ``RLIMIT_AS`` (``memory_mb`` on top of the preloaded interpreter), ``RLIMIT_FSIZE``,
  ``RLIMIT_NOFILE``, ``RLIMIT_CORE`` = 0, ``RLIMIT_NPROC`` = 1; the worker kills the program
  at ``wall_seconds`` and when its output passes ``output_bytes``; the tmpfs size bounds
  all its files together. The environment holds only :data:`SANDBOX_ENV`.

What a program can still do: forge its own result (it shares its process with the code
that reports it; no more than it could compute anyway); read the world-readable files of
the bound directories (the Python installation and system libraries); learn about the
machine through ``/proc`` files that are not per-process (CPU, memory, kernel version);
kill its own worker only through a kernel bug (the pool then replaces the worker and
reports that program as ``crashed``). As an unprivileged user, programs share their
worker's uid: the seccomp filter and non-dumpable workers stand where root's different
uid would. The kernel itself is the remaining attack surface (the filter narrows it).

Defence in depth, not a guarantee: an audit hook (:func:`sys.addaudithook`) refuses file
access outside the working directory and the Python installation, ``os``, ``socket``,
``subprocess`` and ``ctypes`` operations, and an ``__import__`` admits only
:data:`ALLOWED_IMPORTS`; a refusal makes the result ``error_type="forbidden"`` even if the
program catches it. They turn the mistakes of ordinary programs into clear errors.

Where bubblewrap is missing or cannot create namespaces the pool refuses to start with a
message saying how to enable it; ``MAGDI_SANDBOX=weak`` runs the workers without the
container (seccomp filter, rlimits, network namespace and, as root, ``nobody`` stay; files
are guarded by the audit hook alone, and programs share the caller's ``/proc`` view).

Linux only (x86-64 and other architectures libseccomp knows).
"""

from __future__ import annotations

import ast
import atexit
import base64
import builtins
import ctypes
import errno
import io
import json
import math
import operator
import os
import resource
import select
import selectors
import shutil
import signal
import site
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

__all__ = [
    "ALLOWED_IMPORTS",
    "ERROR_TYPES",
    "SANDBOX_ENV",
    "SandboxLimits",
    "SandboxPool",
    "SandboxResult",
    "SandboxViolation",
    "run_program",
    "run_programs",
]

#: Top-level modules a program may import (its ``__import__`` refuses everything else). The
#: workers import them all before forking, so that programs get them for free.
ALLOWED_IMPORTS = frozenset(
    {
        "__future__", "array", "bisect", "calendar", "cmath", "collections", "copy",
        "dataclasses", "datetime", "decimal", "enum", "fractions", "functools", "heapq",
        "itertools", "json", "math", "mpmath", "numbers", "numpy", "operator", "random", "re",
        "scipy", "statistics", "string", "sympy", "time", "typing",
    }
)

#: Modules whose (fresh) import the audit hook refuses, however the import is reached: native
#: code, processes, raw descriptors and C code writing files. (``socket`` may be imported, as
#: scipy.optimize does, but every ``socket.*`` operation is refused.)
_DENIED_IMPORTS = frozenset(
    {
        "_ctypes", "_dbm", "_gdbm", "_multiprocessing", "_posixsubprocess", "_sqlite3",
        "_xxsubinterpreters", "ctypes", "dbm", "fcntl", "mmap", "multiprocessing", "pty",
        "resource", "shutil", "sqlite3", "subprocess", "termios",
    }
)

#: Audit events (by prefix) that are always refused.
_DENIED_EVENT_PREFIXES = (
    "ctypes.", "fcntl.", "mmap.", "pty.", "resource.", "setopencodehook", "shutil.", "socket.",
    "sqlite3.", "subprocess.", "syslog.", "webbrowser.",
)

#: ``os.*`` audit events that are harmless; every other ``os.*`` event not handled
#: explicitly in the hook (``os.system``, ``os.fork``, ``os.kill``, ``os.chdir``, ...) is refused.
_HARMLESS_OS_EVENTS = frozenset({"os.putenv", "os.unsetenv"})

#: The whole environment of workers and programs: single-threaded BLAS (numpy's, and the one
#: scipy loads lazily), because programs cannot create threads (RLIMIT_NPROC = 1).
SANDBOX_ENV = {"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

#: How many files a program may open for writing (each one is capped by ``file_bytes``).
_MAX_WRITE_OPENS = 16

#: Error types a :class:`SandboxResult` can carry.
ERROR_TYPES = (
    "timeout", "memory", "output_limit", "syntax", "runtime", "forbidden", "no_result",
    "crashed",
)

_SANDBOX_UID = 65534  # "nobody": used when the worker runs as root
_PROGRAM_FILENAME = "<program>"
_MESSAGE_CHARS = 2_000
_MAX_RESULT_BITS = 10_000  # about 3,000 decimal digits
_WORKER_START_SECONDS = 120.0
_WORKER_GRACE_SECONDS = 15.0  # beyond wall_seconds before the parent gives up on a worker
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_KEEPCAPS = 8
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_PR_CAPBSET_DROP = 24
_CAP_DAC_READ_SEARCH = 2
_CAP_LAST_CAP = 63  # beyond the kernel's last capability, PR_CAPBSET_DROP fails harmlessly
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one program.

    ``cpu_seconds`` is rounded up to whole seconds (``RLIMIT_CPU`` has one-second
    resolution); a program that ignores ``SIGXCPU`` is killed one second later.
    ``memory_mb`` is the address space a program may add on top of the preloaded worker
    interpreter (about 140 MB of virtual memory with numpy and sympy), so the limit means the
    same whatever is preloaded. ``output_bytes`` bounds stdout and stderr together;
    ``file_bytes`` bounds each file written in the temporary directory; ``open_files`` is
    ``RLIMIT_NOFILE`` (four descriptors are taken by stdio and the result pipe).
    """

    wall_seconds: float = 5.0
    cpu_seconds: float = 3.0
    memory_mb: int = 512
    output_bytes: int = 64_000
    file_bytes: int = 1_000_000
    open_files: int = 32

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {value!r}")
        if self.open_files < 8:
            raise ValueError("SandboxLimits.open_files must be at least 8 (stdio, imports)")


@dataclass
class SandboxResult:
    """Outcome of one program.

    ``value`` is JSON-safe: ``None``, bools, strings and finite numbers stay as they are;
    other numbers (numpy scalars, ``Fraction``, ``Decimal``, sympy numbers) become ``int``
    (anything with ``__index__``) or ``float``; everything else, NaN and infinities included,
    becomes its ``repr``. ``error_type`` is ``None`` on success, else one of
    :data:`ERROR_TYPES`. ``stdout`` holds stdout and stderr interleaved, cut at
    ``output_bytes``.
    """

    ok: bool
    value: Any
    error_type: str | None
    message: str
    stdout: str
    wall_seconds: float


class SandboxViolation(PermissionError):
    """Raised inside the sandboxed program when the audit hook or import guard refuses."""


# --------------------------------------------------------------------------------------
# Parent side: the pool of workers.
# --------------------------------------------------------------------------------------


class _Worker:
    """One worker interpreter and the line-oriented JSON protocol to it."""

    def __init__(self, tmp_root: str, kernel: bool) -> None:
        # Imported here: this file also runs as the worker script, without the package.
        from magdi_lightning.scoring.sandbox_isolation import seccomp_filter, worker_command

        script = str(Path(__file__).resolve())
        seccomp = seccomp_filter()
        if kernel:
            command = [*worker_command(script), "kernel", seccomp]
        else:
            command = [sys.executable, "-I", "-B", script, tmp_root, "weak", seccomp]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (read to explain a failed start)
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=SANDBOX_ENV,  # nothing of the caller's environment (API keys...)
            start_new_session=True,  # a Ctrl-C in the terminal is the parent's business
        )
        self.tmp_root = tmp_root
        self._buffer = bytearray()
        self.isolation: dict[str, Any] = {}

    @property
    def fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def read_available(self) -> list[dict[str, Any]] | None:
        """Read what the worker has written; complete messages, or ``None`` at EOF."""
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return None
        self._buffer += chunk
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        return [json.loads(line) for line in lines]

    def wait_ready(self, deadline: float) -> None:
        """Block until the worker's hello (sent after its preloads) arrives."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                raise RuntimeError("sandbox worker did not start in time")
            messages = self.read_available()
            if messages is None:
                from magdi_lightning.scoring.sandbox_isolation import SandboxUnavailableError

                raise SandboxUnavailableError(self._start_failure())
            if messages:
                self.isolation = messages[0]["isolation"]
                return

    def _start_failure(self) -> str:
        """Why the worker exited before its hello (bubblewrap's own message, mostly)."""
        from magdi_lightning.scoring.sandbox_isolation import SANDBOX_MODE_ENV

        self.proc.wait()
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip()[-_MESSAGE_CHARS:]
        message = f"the sandbox worker exited during start-up (status {self.proc.returncode})"
        message += f": {said}" if said else ""
        if "namespace" in said or "bwrap" in said:
            message += (
                ". bubblewrap could not create its namespaces: as an unprivileged user this "
                "needs user namespaces (sysctl user.max_user_namespaces > 0; Debian before 11: "
                "kernel.unprivileged_userns_clone=1; Ubuntu 23.10+: an AppArmor profile for "
                "bwrap or kernel.apparmor_restrict_unprivileged_userns=0); inside a container, "
                "run it with user namespaces or seccomp unconfined; or set "
                f"{SANDBOX_MODE_ENV}=weak (no filesystem or PID isolation)")
        return message

    def kill(self) -> None:
        """Stop the worker and remove the directory of the program it was running.

        The worker's whole process group goes (in kernel mode: bubblewrap, its container
        and the worker inside); the program's child dies with its worker
        (``PR_SET_PDEATHSIG``).
        """
        _kill_group(self.proc.pid)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()
        for path in Path(self.tmp_root).glob(f"{_tmp_prefix(self.proc.pid)}*"):
            _remove_tree(str(path))

    def close(self) -> None:
        """Ask the worker to exit (EOF on its stdin) and reap it."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        else:
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self._stderr.close()


class SandboxPool:
    """Long-lived sandbox workers; each runs one program at a time in a fresh forked child.

    Use it as a context manager, or call :meth:`close`. :func:`run_program` and
    :func:`run_programs` share one lazily started pool, so most code needs no pool at all.
    Workers run ``sys.executable -I`` with an empty environment: they see the interpreter's
    installed packages, not ``PYTHONPATH``. With kernel isolation (the default; see
    :mod:`~magdi_lightning.scoring.sandbox_isolation`) each worker lives in its own
    bubblewrap container whose private tmpfs holds the programs' directories; with
    ``MAGDI_SANDBOX=weak`` they are created in ``tmp_dir`` (default: the system temporary
    directory). ``python_guards=False`` leaves out the audit hook and the import allowlist,
    so that tests can check that what the kernel enforces holds for a program that has
    switched them off.
    """

    def __init__(
        self,
        workers: int | None = None,
        tmp_dir: str | os.PathLike[str] | None = None,
        python_guards: bool = True,
    ):
        if not sys.platform.startswith("linux"):
            raise RuntimeError("the sandbox needs Linux (rlimits, prctl, namespaces, /proc)")
        self.size = (os.cpu_count() or 1) if workers is None else workers
        if self.size < 1:
            raise ValueError(f"workers must be positive, got {workers!r}")
        self.tmp_dir = os.path.realpath(tmp_dir or tempfile.gettempdir())
        from magdi_lightning.scoring.sandbox_isolation import kernel_isolation_wanted

        self.kernel = kernel_isolation_wanted()
        self.python_guards = python_guards
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        deadline = time.monotonic() + _WORKER_START_SECONDS
        try:
            for _ in range(self.size):
                self._workers.append(_Worker(self.tmp_dir, self.kernel))
            for worker in self._workers:
                worker.wait_ready(deadline)
        except BaseException:
            self.close()
            raise

    @property
    def isolation(self) -> dict[str, Any]:
        """Which OS mechanisms the workers set up (namespaces, uid, seccomp, ...)."""
        return dict(self._workers[0].isolation)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers (they change when a dead worker is replaced)."""
        return [worker.proc.pid for worker in self._workers]

    def run(
        self,
        codes: Sequence[str],
        limits: SandboxLimits | None = None,
        result_name: str = "ans",
    ) -> list[SandboxResult]:
        """Run ``codes`` (in parallel over the workers); results come back in input order."""
        limits = limits or SandboxLimits()
        results: list[SandboxResult | None] = [None] * len(codes)
        with self._lock, selectors.DefaultSelector() as selector:
            if not self._workers:
                raise RuntimeError("the sandbox pool is closed")
            todo = iter(enumerate(codes))
            busy: dict[int, tuple[_Worker, int, float]] = {}  # fd -> (worker, index, deadline)

            def dispatch(worker: _Worker) -> None:
                """Give ``worker`` the next program, if any is left."""
                for index, code in todo:
                    task = {"code": code, "limits": asdict(limits), "result_name": result_name,
                            "python_guards": self.python_guards}
                    try:
                        worker.send(task)
                    except OSError:
                        results[index] = _failure("sandbox worker died", 0.0)
                        worker = self._replace(worker)
                        continue
                    deadline = time.monotonic() + limits.wall_seconds + _WORKER_GRACE_SECONDS
                    busy[worker.fd] = (worker, index, deadline)
                    selector.register(worker.fd, selectors.EVENT_READ)
                    return

            def finish(fd: int, result: SandboxResult) -> _Worker:
                worker, index, _ = busy.pop(fd)
                selector.unregister(fd)
                results[index] = result
                return worker

            for worker in list(self._workers):
                dispatch(worker)
            while busy:
                wait = min(deadline for _, _, deadline in busy.values()) - time.monotonic()
                for key, _ in selector.select(max(wait, 0.0)):
                    messages = busy[key.fd][0].read_available()
                    if messages is None:
                        failure = _failure("sandbox worker died", 0.0)
                        dispatch(self._replace(finish(key.fd, failure)))
                    elif messages:
                        dispatch(finish(key.fd, SandboxResult(**messages[0])))
                for fd, (_, _, deadline) in list(busy.items()):
                    if time.monotonic() > deadline:
                        elapsed = limits.wall_seconds + _WORKER_GRACE_SECONDS
                        failure = _failure("sandbox worker stopped answering", elapsed)
                        dispatch(self._replace(finish(fd, failure)))
        assert all(result is not None for result in results)
        return cast("list[SandboxResult]", results)

    def _replace(self, worker: _Worker) -> _Worker:
        """Kill a broken worker and start a fresh one in its slot."""
        worker.kill()
        fresh = _Worker(self.tmp_dir, self.kernel)
        fresh.wait_ready(time.monotonic() + _WORKER_START_SECONDS)
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        """Stop the workers (after a run in progress); the pool cannot run programs afterwards."""
        with self._lock:
            for worker in self._workers:
                worker.close()
            self._workers = []

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _failure(message: str, wall_seconds: float) -> SandboxResult:
    return SandboxResult(False, None, "crashed", message, "", wall_seconds)


_shared_pool: SandboxPool | None = None
_shared_lock = threading.Lock()


def _get_shared_pool(workers: int | None) -> SandboxPool:
    """The module's pool: started on first use, restarted for another size or after fork."""
    global _shared_pool
    with _shared_lock:
        pool = _shared_pool
        if pool is not None and pool.pid != os.getpid():
            pool = None  # inherited through fork(): those workers belong to the parent
        elif pool is not None and workers is not None and pool.size != workers:
            pool.close()
            pool = None
        if pool is None:
            pool = _shared_pool = SandboxPool(workers)
        return pool


def _close_shared_pool() -> None:
    if _shared_pool is not None and _shared_pool.pid == os.getpid():
        _shared_pool.close()


atexit.register(_close_shared_pool)


def run_program(
    code: str, limits: SandboxLimits | None = None, result_name: str = "ans"
) -> SandboxResult:
    """Run one program in the sandbox and return its result value or a structured error.

    The result is, in this order: the variable ``result_name`` if the program defines it;
    else the return value of ``solution()`` if the program defines such a function (the PAL
    convention); else the value of the program's last statement if that is an expression
    other than ``None``; else an error of type ``"no_result"``.
    """
    return _get_shared_pool(None).run([code], limits, result_name)[0]


def run_programs(
    codes: Sequence[str],
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    result_name: str = "ans",
) -> list[SandboxResult]:
    """Run many programs over ``workers`` sandbox workers (default: one per CPU).

    Same result rules as :func:`run_program`; results come back in input order.
    """
    if not codes:
        return []
    return _get_shared_pool(workers).run(codes, limits, result_name)


# --------------------------------------------------------------------------------------
# Worker side: runs as ``python -I -B sandbox.py TMP_ROOT MODE SECCOMP`` (MODE ``kernel`` inside
# the bubblewrap container, else ``weak``) and forks one child per program.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WorkerState:
    """What a worker sets up once and hands to every program's child."""

    tmp_root: str
    private_tmp: bool  # tmp_root is the container's own tmpfs, emptied after each program
    read_roots: tuple[str, ...]  # directories programs may read (the Python installation)
    uid: int | None  # uid programs run as, when the worker is root
    keep_read_cap: bool
    libc: ctypes.CDLL
    devnull: int
    seccomp: _SockFprog
    seccomp_buffer: ctypes.Array[ctypes.c_char]  # what ``seccomp.filter`` points into


class _SockFprog(ctypes.Structure):
    """``struct sock_fprog``: a BPF program for ``prctl(PR_SET_SECCOMP, ...)``."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _worker_main(tmp_root: str, mode: str, seccomp: str) -> None:
    """Serve tasks from stdin, one JSON line each, answering one JSON line on stdout."""
    libc = ctypes.CDLL(None, use_errno=True)
    kernel = mode == "kernel"
    # Programs run as this worker's uid when the caller is not root: they must not be able
    # to read its memory or descriptors through /proc.
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    network_namespace = kernel or _unshare_network(libc)  # must precede any thread
    for name in sorted(ALLOWED_IMPORTS):
        try:
            __import__(name)
        except ImportError:
            continue
    read_roots = _read_roots()
    root = os.geteuid() == 0
    bpf = base64.b64decode(seccomp)
    buffer = ctypes.create_string_buffer(bpf, len(bpf))
    state = _WorkerState(
        tmp_root=os.path.realpath(tmp_root),
        private_tmp=kernel,
        read_roots=read_roots,
        uid=_SANDBOX_UID if root else None,
        keep_read_cap=root and not _world_readable(read_roots),
        libc=libc,
        devnull=os.open(os.devnull, os.O_RDWR),
        seccomp=_SockFprog(len(bpf) // 8, ctypes.addressof(buffer)),
        seccomp_buffer=buffer,
    )
    isolation = {
        "mode": mode,
        "mount_namespace": kernel,
        "pid_namespace": kernel,
        "network_namespace": network_namespace,
        "seccomp": True,
        "uid": state.uid if root else os.geteuid(),
        "keeps_cap_dac_read_search": state.keep_read_cap,
    }
    out = sys.stdout.buffer
    out.write(json.dumps({"isolation": isolation}).encode() + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        started = time.monotonic()
        try:
            answer = _run_task(json.loads(line), state)
        except Exception as exc:  # a worker bug must not take the pool down
            answer = asdict(_failure(f"sandbox worker error: {exc!r}", 0.0))
            answer["wall_seconds"] = time.monotonic() - started
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()


def _unshare_network(libc: ctypes.CDLL) -> bool:
    """Move this worker (and so all its children) into a new, empty network namespace."""
    if os.geteuid() == 0:
        return libc.unshare(_CLONE_NEWNET) == 0
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return False
    # Map our own ids into the new user namespace so that files keep their owners.
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
    return True


def _read_roots() -> tuple[str, ...]:
    """The Python installation and its site-packages directories (what imports need)."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates.update(sysconfig.get_path(name) for name in ("purelib", "platlib"))
    candidates.update(site.getsitepackages())
    return tuple(sorted({os.path.realpath(path) for path in candidates if os.path.isdir(path)}))


def _world_readable(roots: tuple[str, ...]) -> bool:
    """Whether ``nobody`` can traverse every directory leading to the read roots."""
    for root in roots:
        path = Path(root)
        for directory in (path, *path.parents):
            if not os.stat(directory).st_mode & stat.S_IXOTH:
                return False
    return True


def _run_task(task: dict[str, Any], state: _WorkerState) -> dict[str, Any]:
    """Run one program in a forked child; collect its output and result; clean up."""
    limits = SandboxLimits(**task["limits"])
    started = time.monotonic()
    base_memory = _address_space_bytes()
    tmp = tempfile.mkdtemp(prefix=_tmp_prefix(os.getpid()), dir=state.tmp_root)
    pipes: list[int] = []
    try:
        if state.uid is not None:
            os.chown(tmp, state.uid, state.uid)
        out_r, out_w = os.pipe()
        pipes += (out_r, out_w)
        res_r, res_w = os.pipe()
        pipes += (res_r, res_w)
        pid = os.fork()
        if pid == 0:
            _child_main(task["code"], task["result_name"], task["python_guards"], limits, tmp,
                        state, (out_w, res_w), base_memory)
        for fd in (out_w, res_w):
            os.close(fd)
            pipes.remove(fd)
        try:
            output, payload, stop_reason = _collect(
                out_r, res_r, started + limits.wall_seconds, limits.output_bytes
            )
        finally:
            _kill_group(pid)
            _, status, usage = os.wait4(pid, 0)
    finally:
        for fd in pipes:
            os.close(fd)
        _remove_tree(tmp)
        if state.private_tmp:  # whatever else the program left in the container's tmpfs
            for entry in os.listdir(state.tmp_root):
                _remove_tree(os.path.join(state.tmp_root, entry))
    result = _classify(stop_reason, status, usage.ru_utime + usage.ru_stime, payload, limits)
    result["stdout"] = output[: limits.output_bytes].decode("utf-8", errors="replace")
    result["wall_seconds"] = time.monotonic() - started
    return result


def _tmp_prefix(worker_pid: int) -> str:
    """Temporary directories carry their worker's pid, for clean-up after a killed worker."""
    return f"magdi-sandbox-{worker_pid}-"


def _address_space_bytes() -> int:
    """Current virtual memory size of this process (``VmSize``)."""
    with open("/proc/self/status", "rb") as handle:
        for line in handle:
            if line.startswith(b"VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmSize missing from /proc/self/status")


def _collect(
    out_fd: int, res_fd: int, deadline: float, output_limit: int
) -> tuple[bytes, bytes, str | None]:
    """Read the child's output and result pipes until both close, the deadline or a limit.

    Returns ``(output, result_bytes, stop_reason)`` with ``stop_reason`` ``"timeout"``,
    ``"output_limit"`` or ``None`` (the child closed both pipes, normally by exiting).
    """
    buffers = {out_fd: bytearray(), res_fd: bytearray()}
    limits = {out_fd: output_limit, res_fd: 4 * output_limit + 65_536}
    poller = select.poll()
    for fd in buffers:
        poller.register(fd, select.POLLIN)
    open_fds = set(buffers)
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(buffers[out_fd]), b"", "timeout"
        for fd, _ in poller.poll(remaining * 1000):
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
                continue
            buffers[fd] += chunk
            if len(buffers[fd]) > limits[fd]:
                return bytes(buffers[out_fd]), b"", "output_limit"
    return bytes(buffers[out_fd]), bytes(buffers[res_fd]), None


def _kill_group(pid: int) -> None:
    """SIGKILL a process and its process group (whatever it left behind)."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


def _remove_tree(path: str) -> None:
    """Remove a program's temporary directory (or file), even a pathological one."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except (OSError, RecursionError):
        pid = os.posix_spawn("/bin/rm", ["rm", "-rf", "--", path], {})
        os.waitpid(pid, 0)


def _classify(
    stop_reason: str | None,
    status: int,
    cpu_seconds: float,
    payload: bytes,
    limits: SandboxLimits,
) -> dict[str, Any]:
    """Turn how the child ended into a result dict (without stdout and timing)."""

    def error(error_type: str, message: str) -> dict[str, Any]:
        return {"ok": False, "value": None, "error_type": error_type, "message": message}

    cpu_limit = _cpu_limit(limits)
    if stop_reason == "output_limit":
        return error("output_limit", f"output exceeded {limits.output_bytes} bytes")
    if stop_reason == "timeout":
        return error("timeout", f"wall-clock limit of {limits.wall_seconds:g} s exceeded")
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum == signal.SIGXCPU or (signum == signal.SIGKILL and cpu_seconds >= cpu_limit):
            return error("timeout", f"CPU limit of {cpu_limit} s exceeded")
        return error("crashed", f"killed by signal {signum} ({signal.strsignal(signum)})")
    try:
        result = json.loads(payload)
    except ValueError:
        code = os.WEXITSTATUS(status)
        return error("runtime", f"program exited with status {code} before giving a result")
    if not isinstance(result, dict) or set(result) != {"ok", "value", "error_type", "message"}:
        return error("runtime", "program wrote a malformed result")
    return result


def _cpu_limit(limits: SandboxLimits) -> int:
    return max(1, math.ceil(limits.cpu_seconds))


# --------------------------------------------------------------------------------------
# Child side: set up the limits, install the guards and run the program.
# --------------------------------------------------------------------------------------


def _child_main(
    code: str,
    result_name: str,
    python_guards: bool,
    limits: SandboxLimits,
    tmp: str,
    state: _WorkerState,
    pipes: tuple[int, int],
    base_memory: int,
) -> NoReturn:
    """Body of the forked child; never returns into the worker's loop."""
    out_w, result_fd = pipes
    status = 1
    try:
        try:
            worker_pid = os.getppid()
            os.setsid()
            os.dup2(state.devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.dup2(result_fd, 3)
            result_fd = 3
            os.closerange(4, os.sysconf("SC_OPEN_MAX"))
            _apply_limits(limits, base_memory)
            _drop_privileges(state)
            state.libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != worker_pid:  # the worker died before PDEATHSIG was armed
                return
            os.chdir(tmp)
            os.environ.clear()  # drops what Python added at start-up (LC_CTYPE)
            os.environ.update(SANDBOX_ENV)
            sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
            sys.stdout, sys.stderr = (
                io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                                 errors="backslashreplace", line_buffering=fd == 2)
                for fd in (1, 2)
            )
            hook, guarded_import, violations = _make_guards(tmp, state.read_roots)
            _load_seccomp(state)
        except BaseException as exc:
            _write_result(result_fd, _error("crashed", f"sandbox set-up failed: {exc!r}"))
            return
        if python_guards:
            sys.addaudithook(hook)
        else:
            guarded_import = builtins.__import__
        result = _execute(code, result_name, guarded_import, violations, limits)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                continue
        _write_result(result_fd, result)
        status = 0
    finally:
        os._exit(status)


def _write_result(fd: int, result: dict[str, Any]) -> None:
    data = json.dumps(result).encode()
    while data:
        data = data[os.write(fd, data) :]


def _error(error_type: str, message: str) -> dict[str, Any]:
    """A failed result as the child reports it (the worker adds stdout and timing)."""
    message = message[:_MESSAGE_CHARS]
    return {"ok": False, "value": None, "error_type": error_type, "message": message}


def _apply_limits(limits: SandboxLimits, base_memory: int) -> None:
    """Kernel-enforced limits; the hard values cannot be raised again by the program."""
    cpu = _cpu_limit(limits)
    memory = base_memory + limits.memory_mb * 1024 * 1024
    for which, soft, hard in (
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NPROC, 1, 1),
    ):
        resource.setrlimit(which, (soft, hard))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_privileges(state: _WorkerState) -> None:
    """No capabilities (bounding set included), no new privileges; as root, become ``nobody``.

    ``nobody`` rather than root also makes ``RLIMIT_NPROC`` apply (root is exempt).
    """
    libc = state.libc
    for option, value in ((_PR_SET_NO_NEW_PRIVS, 1), (_PR_SET_DUMPABLE, 0)):
        if libc.prctl(option, value, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")
    keep = {_CAP_DAC_READ_SEARCH} if state.keep_read_cap else set()
    for capability in range(_CAP_LAST_CAP + 1):  # needs CAP_SETPCAP; fails harmlessly without
        if capability not in keep:
            libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0)
    if state.uid is not None:
        os.setgroups([])
        os.setgid(state.uid)
        if state.keep_read_cap:
            libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0)
        os.setuid(state.uid)
    # Whatever is left (the inheritable set; everything a weak worker holds in its own user
    # namespace) goes too, except CAP_DAC_READ_SEARCH when imports need it.
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if state.keep_read_cap:
        data[0].effective = data[0].permitted = 1 << _CAP_DAC_READ_SEARCH
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _load_seccomp(state: _WorkerState) -> None:
    """Install the worker's seccomp filter (:mod:`~magdi_lightning.scoring.sandbox_isolation`)
    for good."""
    if state.libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(state.seccomp),
                        0, 0) != 0:
        raise OSError(ctypes.get_errno(), "loading the seccomp filter failed")


def _make_guards(
    tmp: str, read_roots: tuple[str, ...]
) -> tuple[Callable[[str, tuple[Any, ...]], None], Callable[..., Any], list[str]]:
    """Build the audit hook, the program's ``__import__`` and the list of violations.

    Every refusal is recorded in the returned list (so that a program cannot hide one by
    catching the exception) and raised as :class:`SandboxViolation`.
    """
    violations: list[str] = []
    write_opens = [0]
    real_import = builtins.__import__

    def deny(what: str) -> NoReturn:
        violations.append(what)
        raise SandboxViolation(f"sandbox: {what} is not allowed")

    def resolve(path: object) -> str:
        # Only plain str/bytes: a PathLike could answer differently on its second __fspath__.
        if not isinstance(path, (str, bytes)):
            deny(f"a path of type {type(path).__name__}")
        return os.path.realpath(os.fsdecode(path))

    def inside(path: str, roots: Sequence[str]) -> bool:
        return any(path == root or path.startswith(root + os.sep) for root in roots)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return  # a descriptor it already holds (opened under this same hook)
            real = resolve(path)
            write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            writing = bool(flags & write_flags) or (
                isinstance(mode, str) and any(char in mode for char in "wax+")
            )
            if inside(real, (tmp,)):
                if writing:
                    write_opens[0] += 1
                    if write_opens[0] > _MAX_WRITE_OPENS:
                        deny(f"opening more than {_MAX_WRITE_OPENS} files for writing")
                return
            if writing or not inside(real, read_roots):
                deny(f"opening {real!r}" + (" for writing" if writing else ""))
        elif event == "import":
            if str(args[0]).partition(".")[0] in _DENIED_IMPORTS:
                deny(f"importing {args[0]!r}")
        elif event in ("os.listdir", "os.scandir"):
            if args[0] is not None and not isinstance(args[0], int):
                real = resolve(args[0])
                if not inside(real, (tmp, *read_roots)):
                    deny(f"listing {real!r}")
        elif event in ("os.remove", "os.truncate"):
            # os.remove(path, dir_fd) with -1 for "no dir_fd"; os.truncate(path_or_fd, length)
            if event == "os.remove" and args[1] != -1:
                deny("os.remove with dir_fd")
            if not isinstance(args[0], int) and not inside(resolve(args[0]), (tmp,)):
                deny(f"{event} outside the working directory")
        elif event.startswith(_DENIED_EVENT_PREFIXES) or (
            event.startswith("os.") and event not in _HARMLESS_OS_EVENTS
        ):
            deny(repr(event))

    def guarded_import(
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> Any:
        if level != 0 or name.partition(".")[0] not in ALLOWED_IMPORTS:
            deny(f"importing {name!r}")
        return real_import(name, globals, locals, fromlist, level)

    return hook, guarded_import, violations


def _execute(
    code: str,
    result_name: str,
    guarded_import: Callable[..., Any],
    violations: list[str],
    limits: SandboxLimits,
) -> dict[str, Any]:
    """Compile and run the program; return the result dict the child reports."""
    try:
        tree = compile(code, _PROGRAM_FILENAME, "exec", ast.PyCF_ONLY_AST)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        body = compile(tree, _PROGRAM_FILENAME, "exec")
        tail = compile(ast.Expression(last.value), _PROGRAM_FILENAME, "eval") if last else None
    except (SyntaxError, ValueError, RecursionError) as exc:  # ValueError: null bytes
        return _error("syntax", _describe(exc))
    except MemoryError:
        return _error("memory", "MemoryError while compiling")
    safe_builtins = dict(vars(builtins), __import__=guarded_import)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": safe_builtins}
    try:
        exec(body, namespace)
        tail_value = eval(tail, namespace) if tail is not None else None
        if result_name in namespace:
            value = _jsonable(namespace[result_name], limits.output_bytes)
        elif callable(namespace.get("solution")):
            value = _jsonable(namespace["solution"](), limits.output_bytes)
        elif tail_value is not None:
            value = _jsonable(tail_value, limits.output_bytes)
        else:
            value = _NO_RESULT
    except BaseException as exc:  # SystemExit included: sys.exit() is not a result
        if violations:
            return _error("forbidden", violations[0])
        if isinstance(exc, MemoryError):
            return _error("memory", _describe(exc))
        if isinstance(exc, OSError) and exc.errno == errno.EFBIG:  # RLIMIT_FSIZE
            return _error("output_limit", f"file size limit exceeded: {_describe(exc)}")
        return _error("runtime", _describe(exc))
    if violations:
        return _error("forbidden", violations[0])
    if value is _NO_RESULT:
        return _error(
            "no_result",
            f"the program defines neither {result_name!r} nor solution() and does not end "
            "with an expression",
        )
    return {"ok": True, "value": value, "error_type": None, "message": ""}


_NO_RESULT = object()


def _describe(exc: BaseException) -> str:
    """``Type: message (line N)``, with N the innermost line of the program itself."""
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    line = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == _PROGRAM_FILENAME:
            line = trace.tb_lineno
        trace = trace.tb_next
    text = type(exc).__name__
    try:
        detail = str(exc)
    except Exception:  # a hostile __str__
        detail = ""
    text += f": {detail}" if detail else ""
    return text + (f" (line {line})" if line is not None else "")


def _jsonable(value: Any, max_chars: int) -> Any:
    """Make a result JSON-safe: numbers stay numbers, everything else becomes its repr."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value[:max_chars]
    if not isinstance(value, (int, float)):
        try:
            if hasattr(type(value), "__index__"):  # numpy and sympy integers
                value = operator.index(value)
            elif hasattr(type(value), "__float__"):  # Fraction, Decimal, sympy numbers
                value = float(value)
        except Exception:  # e.g. sympy expressions with free symbols, arrays
            pass
        if not isinstance(value, (int, float)):
            return repr(value)[:max_chars]
    if isinstance(value, int):
        # json.dumps of an int beyond sys.get_int_max_str_digits() digits would fail, and a
        # stand-in text would be scored as whatever number it contains.
        if value.bit_length() > _MAX_RESULT_BITS:
            raise OverflowError(f"the result is an integer of {value.bit_length()} bits, more "
                                f"than the {_MAX_RESULT_BITS} a result may have")
        return int(value)
    return float(value) if math.isfinite(value) else repr(float(value))


if __name__ == "__main__":
    _worker_main(*sys.argv[1:4])
