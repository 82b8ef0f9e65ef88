"""Hostile programs under the sandbox's threat model, and a runner that checks each one.

The threat model (see :mod:`magdi_lightning.scoring.sandbox`): a program runs arbitrary code in its
own interpreter. Every program here runs with the Python-level guards switched off
(``SandboxPool(python_guards=False)``: no audit hook, no import allowlist) and most go
native through ``ctypes``, so whatever stops them is the kernel: the mount, PID and network
namespaces of the bubblewrap container, the seccomp filter, the dropped capabilities and
uid, and the rlimits.

``python tests/sandbox_hostile.py OUT.json`` runs them all and writes one verdict per case
(``null`` when contained, else why not). ``tests/test_sandbox_kernel.py`` runs it as the
caller and, through ``unshare --user --map-user``, as an unprivileged user.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from magdi_lightning.scoring.sandbox import SandboxLimits, SandboxPool, SandboxResult

LIMITS = SandboxLimits(wall_seconds=3.0, cpu_seconds=1.0, memory_mb=256, output_bytes=10_000,
                       file_bytes=100_000)
SLACK_SECONDS = 2.0

#: Native access for every program: libc, errno, and raw system calls by number (x86-64).
PRELUDE = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def failed(result):
    return errno.errorcode.get(ctypes.get_errno(), 'ok') if result == -1 else 'ok'
"""

#: What a program may see at ``/``: the container's own directories, the system libraries,
#: and the top directory of the Python installation (``/root`` for pyenv as root, ...).
CONTAINER_ROOT = {"dev", "etc", "lib", "lib32", "lib64", "opt", "proc", "sandbox", "usr"} | {
    Path(os.path.realpath(prefix)).parts[1] for prefix in (sys.prefix, sys.base_prefix)}


@dataclass
class Context:
    """Paths outside the sandbox a program must not reach, and what it must not learn."""

    marker: Path  # must not exist afterwards
    secret_file: Path  # 0600, holds ``secret``
    secret: str
    this_file: str = field(default=str(Path(__file__).resolve()))


Check = Callable[[SandboxResult, Context], str | None]


@dataclass(frozen=True)
class Case:
    name: str
    code: str  # {marker}, {secret_file} and {this_file} are filled in
    check: Check
    mechanism: str  # what stops it (for the closing note and the README)


def value_is(expected: object) -> Check:
    """The program answered ``expected`` (containers come back as their ``repr``)."""
    want = expected if isinstance(expected, (str, int, float, bool)) else repr(expected)

    def check(result: SandboxResult, _: Context) -> str | None:
        return None if result.ok and result.value == want else f"got {result}"
    return check


def error_is(*types: str) -> Check:
    def check(result: SandboxResult, _: Context) -> str | None:
        return None if result.error_type in types else f"expected {types}, got {result}"
    return check


def container_root(result: SandboxResult, _: Context) -> str | None:
    """A listing of ``/`` that shows nothing of the host but what the interpreter needs."""
    listing = ast.literal_eval(result.value) if result.ok else None
    return None if listing and set(listing) <= CONTAINER_ROOT else f"got {result}"


def either(*checks: Check) -> Check:
    def check(result: SandboxResult, context: Context) -> str | None:
        failures = [c(result, context) for c in checks]
        return None if None in failures else " / ".join(str(f) for f in failures)
    return check


def no_secret(result: SandboxResult, context: Context) -> str | None:
    text = json.dumps(asdict(result))
    return f"secret leaked: {result}" if context.secret in text else None


def both(*checks: Check) -> Check:
    def check(result: SandboxResult, context: Context) -> str | None:
        return next((f for f in (c(result, context) for c in checks) if f), None)
    return check


CASES = [
    # ---- reading outside
    Case("read_0600_file", "ans = open({secret_file!r}).read()",
         both(no_secret, error_is("runtime")), "mount namespace (file not in the container)"),
    Case("read_0600_file_native",
         "buf = ctypes.create_string_buffer(4096)\n"
         "fd = libc.open({secret_file!r}.encode(), 0)\n"
         "ans = (failed(fd), libc.read(fd, buf, 4096) if fd >= 0 else -1, buf.value.decode())",
         both(no_secret, value_is(("ENOENT", -1, ""))), "mount namespace"),
    Case("read_with_dir_fd",
         "top = os.open('/', os.O_RDONLY | os.O_DIRECTORY)\n"
         "ans = open(os.open({secret_file!r}.lstrip('/'), os.O_RDONLY, dir_fd=top)).read()",
         both(no_secret, error_is("runtime")), "mount namespace (dir_fd resolves in it too)"),
    Case("read_this_repository", "ans = open({this_file!r}).read()[:100]",
         error_is("runtime"), "mount namespace"),
    Case("read_host_passwd", "ans = open('/etc/passwd').read()", error_is("runtime"),
         "mount namespace (/etc holds only ld.so.cache)"),
    Case("list_root", "ans = sorted(os.listdir('/'))", container_root,
         "mount namespace: only read-only binds of what the interpreter needs"),
    Case("escape_through_proc_root", "ans = sorted(os.listdir('/proc/1/root'))",
         either(error_is("runtime"), container_root),
         "PID namespace: pid 1 is bubblewrap, whose root is the container's"),
    Case("scan_every_environ",
         "seen = []\nfor pid in os.listdir('/proc'):\n"
         "    try:\n        seen.append(open(f'/proc/{{pid}}/environ').read())\n"
         "    except OSError:\n        pass\nans = seen",
         no_secret, "PID namespace (no other process visible), empty worker environment"),
    Case("read_worker_memory",
         "ans = open(f'/proc/{{os.getppid()}}/mem', 'rb').read(16)",
         error_is("runtime"), "worker non-dumpable + different uid (root) or no ptrace access"),
    Case("open_by_handle",
         "ans = failed(libc.syscall(304, -100, None, 0))",  # open_by_handle_at
         value_is("EPERM"), "seccomp"),
    # ---- writing outside
    Case("write_marker", "open({marker!r}, 'w').write('x')\nans = 1", error_is("runtime"),
         "mount namespace"),
    Case("write_marker_native", "ans = failed(libc.open({marker!r}.encode(), 0o101, 0o644))",
         value_is("ENOENT"), "mount namespace"),
    Case("create_with_dir_fd",
         "top = os.open(os.path.dirname({marker!r}), os.O_RDONLY | os.O_DIRECTORY)\n"
         "ans = os.open(os.path.basename({marker!r}), os.O_CREAT | os.O_WRONLY, dir_fd=top)",
         error_is("runtime"), "mount namespace"),
    Case("write_through_symlink",
         "os.symlink({marker!r}, 'link')\nopen('link', 'w').write('x')\nans = 1",
         error_is("runtime"), "mount namespace"),
    Case("write_into_python_installation",
         "open(os.path.join(os.path.dirname(os.__file__), 'pwned.py'), 'w')\nans = 1",
         error_is("runtime"), "read-only bind mounts"),
    Case("chmod_the_interpreter", "os.chmod(sys.executable, 0o777)\nans = 1",
         error_is("runtime"), "read-only bind mounts"),
    Case("remount_read_write", "ans = failed(libc.mount(None, b'/usr/lib', None, 0x21, None))",
         value_is("EPERM"), "seccomp (mount) and no CAP_SYS_ADMIN"),
    Case("fill_the_disk",
         "i = 0\ntry:\n    while True:\n        open(f'f{{i}}', 'wb').write(b'x' * 99_000)\n"
         "        i += 1\nexcept OSError as exc:\n    ans = errno.errorcode[exc.errno]",
         value_is("ENOSPC"), "size-limited tmpfs (64 MB) + RLIMIT_FSIZE"),
    Case("file_beyond_file_bytes", "open('big', 'wb').write(b'x' * 10**6)\nans = 1",
         error_is("output_limit"), "RLIMIT_FSIZE"),
    # ---- processes and signals
    Case("kill_the_worker", "ans = failed(libc.kill(os.getppid(), 9))", value_is("EPERM"),
         "seccomp (kill) + different uid when root"),
    Case("kill_everything", "ans = failed(libc.kill(-1, 9))", value_is("EPERM"), "seccomp"),
    Case("pidfd_signal_the_worker",
         "ans = failed(libc.syscall(434, os.getppid(), 0))",  # pidfd_open
         value_is("EPERM"), "seccomp"),
    Case("ptrace_the_worker", "ans = failed(libc.ptrace(16, os.getppid(), None, None))",
         value_is("EPERM"), "seccomp (ptrace)"),
    Case("write_worker_memory",
         "ans = failed(libc.syscall(311, os.getppid(), None, 0, None, 0, 0))",  # vm_writev
         value_is("EPERM"), "seccomp (process_vm_writev)"),
    Case("fork_native", "ans = failed(libc.fork())", value_is("EPERM"), "seccomp + NPROC"),
    Case("fork_bomb", "while True:\n    os.fork()", error_is("runtime"), "seccomp (fork)"),
    Case("clone_raw", "ans = failed(libc.syscall(56, 17, None, None, None, None))",
         value_is("EPERM"), "seccomp (clone)"),
    Case("exec_a_shell", "os.execv('/bin/sh', ['sh', '-c', 'touch {marker}'])",
         error_is("runtime"), "seccomp (execve); no shell in the container"),
    Case("threads", "import threading\nthreading.Thread(target=print).start()\nans = 1",
         error_is("runtime"), "seccomp (clone) + RLIMIT_NPROC"),
    # ---- network, identity, kernel surface
    Case("socket", "import socket\nsocket.create_connection(('1.1.1.1', 80))\nans = 1",
         error_is("runtime"), "seccomp (socket) + network namespace"),
    Case("new_user_namespace_for_capabilities",
         "ans = failed(libc.unshare(0x10000000))", value_is("EPERM"), "seccomp (unshare)"),
    Case("become_root", "ans = failed(libc.setuid(0))", value_is("EPERM"),
         "seccomp + no CAP_SETUID"),
    Case("no_capabilities_left",
         "ans = {{line.split(':')[0]: int(line.split()[1], 16) for line in "
         "open('/proc/self/status') if line.startswith(('CapPrm', 'CapEff', 'CapBnd', "
         "'CapAmb'))}}",
         value_is({"CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}),
         "capabilities dropped, bounding set empty"),
    Case("not_root", "ans = os.geteuid() != 0 and os.getuid() != 0", value_is(True),
         "uid 65534 (root caller) or the caller's own uid"),
    Case("bpf_and_io_uring",
         "ans = [failed(libc.syscall(321, 0, None, 0)), failed(libc.syscall(425, 8, None))]",
         value_is(["EPERM", "EPERM"]), "seccomp"),
    Case("sysv_shared_memory", "ans = failed(libc.shmget(0, 4096, 0o1666))",
         value_is("EPERM"), "seccomp (IPC that would outlive the program)"),
    Case("i386_syscall_abi",
         "import mmap\n"
         "code = bytes.fromhex('b825000000bb01000000b909000000cd80c3')  # kill(1, 9) via int 0x80\n"
         "page = mmap.mmap(-1, 4096, prot=7)\npage.write(code)\n"
         "addr = ctypes.addressof(ctypes.c_char.from_buffer(page))\n"
         "ctypes.CFUNCTYPE(ctypes.c_int)(addr)()\nans = 1",
         error_is("crashed"), "seccomp (foreign ABI kills the process)"),
    # ---- limits
    Case("memory_native", "ans = libc.malloc(ctypes.c_size_t(2**33)) or 'no memory'",
         value_is("no memory"), "RLIMIT_AS"),
    Case("memory_python", "ans = len(bytearray(2**33))", error_is("memory"), "RLIMIT_AS"),
    Case("cpu_loop_ignoring_sigxcpu",
         "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass",
         error_is("timeout"), "RLIMIT_CPU hard limit (SIGKILL)"),
    Case("sleep_forever", "import time\ntime.sleep(3600)", error_is("timeout"),
         "worker's wall-clock kill"),
    Case("output_flood_native", "while True:\n    libc.write(1, b'x' * 4096, 4096)",
         error_is("output_limit"), "worker stops reading and kills"),
]


def leftover_case() -> tuple[str, str]:
    """A program that leaves files behind, and the next one, which must not find them."""
    write = PRELUDE + (
        "parent = os.path.dirname(os.getcwd())\n"
        "open(parent + '/leftover', 'w').write('x') if os.access(parent, os.W_OK) else None\n"
        "open('leftover', 'w').write('x')\nans = 1")
    read = PRELUDE + ("own = os.path.basename(os.getcwd())\n"
                      "parent = os.path.dirname(os.getcwd())\n"
                      "ans = [e for e in os.listdir(parent) if e != own] + os.listdir('.')")
    return write, read


VICTIM = "import time\ntime.sleep(1.0)\nans = 42"
KILLER = PRELUDE + "ans = [failed(libc.kill(pid, 9)) for pid in range(1, 400)].count('ok')"


def run_all(context: Context) -> dict[str, str | None]:
    """Run every case in one pool (two workers); a verdict per case."""
    import time

    verdicts: dict[str, str | None] = {}
    with SandboxPool(workers=2, python_guards=False) as pool:
        workers = pool.worker_pids
        for case in CASES:
            code = PRELUDE + case.code.format(marker=str(context.marker),
                                              secret_file=str(context.secret_file),
                                              this_file=context.this_file)
            started = time.monotonic()
            result = pool.run([code], LIMITS)[0]
            elapsed = time.monotonic() - started
            verdict = case.check(result, context)
            if verdict is None and elapsed > LIMITS.wall_seconds + SLACK_SECONDS:
                verdict = f"took {elapsed:.1f} s"
            if verdict is None and context.marker.exists():
                verdict = "the marker file outside the sandbox was created"
            if verdict is None and pool.worker_pids != workers:
                verdict = "a worker died"
            verdicts[case.name] = verdict
        write, read = leftover_case()
        results = pool.run([write, read, write, read], LIMITS)
        verdicts["leave_files_for_the_next_program"] = (
            None if all(r.ok for r in results) and results[1].value == "[]"
            and results[3].value == "[]" else f"got {results}")
        results = pool.run([VICTIM, KILLER], LIMITS)
        verdicts["kill_a_concurrent_program"] = (
            None if results[0].value == 42 and results[1].value == 0
            and pool.worker_pids == workers else f"got {results}")
    return verdicts


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as outside:
        secret_file = Path(outside) / "secret.txt"
        secret = f"magdi-secret-{uuid.uuid4().hex}"
        secret_file.write_text(secret)
        secret_file.chmod(0o600)
        context = Context(Path(outside) / "pwned", secret_file, secret)
        verdicts = run_all(context)
    Path(out).write_text(json.dumps({"uid": os.geteuid(), "verdicts": verdicts}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
