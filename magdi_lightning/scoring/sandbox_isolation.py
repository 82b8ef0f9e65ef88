"""The kernel side of the program sandbox: the bubblewrap container and the seccomp filter.

:mod:`magdi_lightning.scoring.sandbox` runs model-written programs in forked children of long-lived
worker interpreters. This module builds what the kernel enforces around them, so that no
guarantee depends on Python-level checks a program can switch off:

* :func:`worker_command` starts each worker inside `bubblewrap
  <https://github.com/containers/bubblewrap>`_ (Debian package ``bubblewrap``) with its own
  mount, PID, network, IPC and UTS namespaces; a root filesystem that holds only read-only
  binds of the interpreter, its standard library and site-packages, the system libraries
  they link against, and the worker script; a private size-limited ``tmpfs`` at
  :data:`WORKER_TMP` (not ``/tmp``, under which an installation may live);
  no capabilities for the worker but, when it runs as root, those it needs to run its
  children as ``nobody`` with none at all (:data:`ROOT_WORKER_CAPABILITIES`).
* :func:`seccomp_filter` compiles, with libseccomp (through ``pyseccomp``), a filter that
  each child loads before the program runs: process creation and ``exec``, signals,
  tracing and other processes' memory, sockets, namespaces and mounts, System V and POSIX
  IPC, and kernel interfaces a program never needs (BPF, perf, io_uring, keys, modules, ...)
  fail with ``EPERM``. Foreign system-call ABIs (32-bit ``int 0x80``, x32) kill the process.

bubblewrap needs user namespaces when the caller is not root. Where it is missing or cannot
create namespaces, :class:`SandboxUnavailableError` says how to enable it; setting
``MAGDI_SANDBOX=weak`` runs the workers without the container instead (seccomp filter,
rlimits and network namespace only; files are then guarded by Python-level checks alone).
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import site
import sys
import sysconfig
from pathlib import Path

__all__ = [
    "DENIED_SYSCALLS",
    "ROOT_WORKER_CAPABILITIES",
    "SANDBOX_MODE_ENV",
    "TMPFS_BYTES",
    "SandboxUnavailableError",
    "kernel_isolation_wanted",
    "seccomp_filter",
    "worker_command",
]

#: Environment variable choosing the isolation: unset or ``kernel`` (the default) or ``weak``.
SANDBOX_MODE_ENV = "MAGDI_SANDBOX"

#: Size of each worker's private ``/tmp`` (all programs' files together, enforced by tmpfs).
TMPFS_BYTES = 64 * 1024 * 1024

#: Where the worker script is bound inside the container.
WORKER_SCRIPT = "/opt/magdi-sandbox/worker.py"

#: The container's private writable directory (a tmpfs) holding the programs' directories.
#: Not ``/tmp``: a virtual environment or Python under ``/tmp`` must stay visible.
WORKER_TMP = "/sandbox"

#: What a root worker keeps: to make its children ``nobody`` with an empty bounding set
#: (SETUID, SETGID, SETPCAP), to hand them their directory and clean it up afterwards (CHOWN,
#: DAC_OVERRIDE, FOWNER) and to kill them (KILL). Children keep none of them.
ROOT_WORKER_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_CHOWN",
                            "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL")

#: System calls a program's process may not make (they fail with ``EPERM``).
DENIED_SYSCALLS = (
    # new processes and threads, other programs
    "fork", "vfork", "clone", "clone3", "execve", "execveat",
    # signals, tracing and memory of other processes
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open",
    "pidfd_send_signal", "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev",
    "process_madvise", "kcmp",
    # network (the network namespace has no interfaces anyway)
    "socket", "socketpair",
    # namespaces, mounts, identity
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "setuid", "setgid",
    "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
    "capset",
    # inter-process communication that outlives a program
    "shmget", "shmat", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop",
    "semctl", "semtimedop", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    # kernel interfaces with a history of privilege escalations, and system administration
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct",
    "quotactl", "name_to_handle_at", "open_by_handle_at", "lookup_dcookie", "iopl", "ioperm",
    "personality", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "syslog", "vhangup", "uselib", "ustat", "sysfs",
)


class SandboxUnavailableError(RuntimeError):
    """The kernel isolation cannot be set up on this machine (the message says why and how)."""


def kernel_isolation_wanted() -> bool:
    """Whether workers must run inside the container (``MAGDI_SANDBOX`` unset or ``kernel``)."""
    mode = os.environ.get(SANDBOX_MODE_ENV, "kernel")
    if mode not in ("kernel", "weak"):
        raise SandboxUnavailableError(
            f"{SANDBOX_MODE_ENV}={mode!r}: use 'kernel' (default) or 'weak'")
    return mode == "kernel"


@functools.cache
def seccomp_filter() -> str:
    """The children's seccomp filter as base64 BPF, compiled once per process."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError) as err:  # RuntimeError: libseccomp.so.2 not found
        raise SandboxUnavailableError(
            f"the program sandbox needs libseccomp ({err}); install the libseccomp2 package "
            "of your distribution") from err
    errno_eperm = 1
    rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    rules.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    for name in DENIED_SYSCALLS:
        try:
            rules.add_rule(pyseccomp.ERRNO(errno_eperm), name)
        except OSError:  # not a system call on this architecture
            continue
    read, write = os.pipe()
    with os.fdopen(write, "wb") as sink:  # the filter is a few hundred bytes: fits the pipe
        rules.export_bpf(sink)
    with os.fdopen(read, "rb") as source:
        return base64.b64encode(source.read()).decode()


def worker_command(script: str, bwrap: str | None = None) -> list[str]:
    """``bwrap ... -- python -I -B worker.py`` for one worker, or raise why it cannot run."""
    bwrap = bwrap or shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailableError(
            "the program sandbox needs bubblewrap (the 'bwrap' command): install it "
            "(Debian/Ubuntu: apt-get install bubblewrap; RHEL/Fedora: dnf install bubblewrap), "
            f"or set {SANDBOX_MODE_ENV}=weak to run programs with seccomp and rlimits only "
            "(files then guarded by Python-level checks, which a hostile program can bypass)")
    root = os.geteuid() == 0
    # No --die-with-parent: its PR_SET_PDEATHSIG fires when the *thread* that started the
    # worker ends, which would kill a pool shared across threads. A worker ends when its
    # stdin closes (so when the parent process dies), and the pool kills a container as
    # one process group. No --new-session either: the pool starts bubblewrap in a session
    # of its own, without a controlling terminal, and the container must stay in that
    # process group.
    args = [bwrap, "--unshare-pid", "--unshare-net",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL"]
    if root:  # no user namespace: the worker drops each child to nobody itself
        args += [item for cap in ROOT_WORKER_CAPABILITIES for item in ("--cap-add", cap)]
    else:
        args += ["--unshare-user", "--disable-userns"]
    args += _filesystem(script)
    # sys.executable itself, not its target: a virtual environment's python finds the
    # environment's site-packages through the pyvenv.cfg beside it (both are bound).
    return [*args, "--", sys.executable, "-I", "-B", WORKER_SCRIPT, WORKER_TMP]


def _filesystem(script: str) -> list[str]:
    """Read-only binds of what the interpreter needs; a private tmpfs, /proc and /dev."""
    binds = _minimal(_needed_paths())
    args: list[str] = []
    for directory in _ancestors(binds):
        args += ["--perms", "0755", "--dir", directory]
    for path in binds:
        args += ["--ro-bind", path, path]
    for link in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += ["--ro-bind", script, WORKER_SCRIPT, "--proc", "/proc", "--dev", "/dev",
             "--size", str(TMPFS_BYTES), "--perms", "0755", "--tmpfs", WORKER_TMP,
             "--remount-ro", "/", "--chdir", WORKER_TMP]
    return args


def _needed_paths() -> set[str]:
    """The interpreter, its installation and site-packages, and the system libraries."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib",
                                                       "platlib"))
    paths.update(site.getsitepackages())
    for library in ("/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.isdir(library) and not os.path.islink(library):
            paths.add(library)
    return {os.path.realpath(path) for path in paths if path and os.path.isdir(path)}


def _minimal(paths: set[str]) -> list[str]:
    """Drop paths inside other paths of the set (their parent's bind already shows them)."""
    ordered = sorted(paths, key=lambda path: (path.count(os.sep), path))
    kept: list[str] = []
    for path in ordered:
        if not any(Path(path).is_relative_to(parent) for parent in kept):
            kept.append(path)
    return kept


def _ancestors(binds: list[str]) -> list[str]:
    """Directories to create (traversable by all) so that every bind can be reached.

    Without them bubblewrap copies the host's modes: a Python installed under ``/root``
    (mode 0700) could not be read by the ``nobody`` that programs run as.
    """
    ancestors = {str(parent) for path in binds for parent in Path(path).parents
                 if str(parent) != os.sep}
    return sorted(ancestors, key=lambda path: path.count(os.sep))

