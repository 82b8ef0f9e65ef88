"""A real, private, single-node SLURM cluster for tests (Debian's slurm-wlm 22.05 + munge).

``SlurmCluster().start()`` installs the packages if needed (``install.sh``, root only), writes
a private configuration under a fresh temporary folder, starts its own ``munged``,
``slurmctld`` and ``slurmd`` (free TCP ports, a private munge socket and key: it touches
neither ``/etc/slurm`` nor ``/etc/munge`` nor a system-wide munged), waits until the node is
idle and exposes ``.env``, the environment for subprocesses (``SLURM_CONF``, and ``PATH`` with
the SLURM commands and a ``sacct`` stand-in first). ``stop()`` cancels the jobs and ends every
process it started. Clusters whose owning process died without stopping them are reaped the
next time a cluster starts.

Job accounting: there is no slurmdbd (it needs a MySQL server), so the real ``sacct`` only
says "accounting storage is disabled". submitit polls job states with
``sacct -o JobID,State,NodeList --parsable2 -j ID``; the stand-in ``sacct`` in ``bin/``
answers that from ``scontrol show job`` (completed jobs stay in slurmctld's memory for
``MinJobAge``, one day here), so submitit sees RUNNING / COMPLETED / FAILED / CANCELLED / ...
as on a real cluster, and a job that dies without writing its result is reported as done
instead of being waited on for ever.

Usage::

    with SlurmCluster() as cluster:
        subprocess.run(["sbatch", "--wrap", "echo hi"], env=cluster.env, check=True)
        with cluster.activated():       # os.environ patched, e.g. for in-process submitit
            ...
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL_SCRIPT = HERE / "install.sh"
REQUIRED_BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "scontrol", "squeue", "sinfo")
# The daemons are in /usr/sbin, which a non-root PATH may lack.
SYSTEM_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
DIR_PREFIX = "magdi-slurm-"
# Job states in which a job will not change any more (without a requeue).
FINISHED_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT",
})


class SlurmClusterError(RuntimeError):
    """The cluster could not be installed, started or queried."""


def _search_path() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join([*parts, *(d for d in SYSTEM_DIRS if d not in parts)])


def which(name: str) -> str | None:
    """``shutil.which`` that also looks into /usr/sbin and /sbin."""
    return shutil.which(name, path=_search_path())


def missing_binaries() -> list[str]:
    return [name for name in REQUIRED_BINARIES if which(name) is None]


def ensure_installed() -> None:
    """Install slurm and munge with ``install.sh`` when a binary is missing (root only)."""
    missing = missing_binaries()
    if not missing:
        return
    command = f"sudo bash {INSTALL_SCRIPT}"
    if os.geteuid() != 0:
        raise SlurmClusterError(
            f"SLURM/munge binaries missing ({', '.join(missing)}); install them with:\n"
            f"    {command}\n"
            "(apt-get install --no-install-recommends slurmctld slurmd slurm-client munge)")
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0 or missing_binaries():
        raise SlurmClusterError(
            f"{INSTALL_SCRIPT} failed (exit {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}")


# ----------------------------------------------------------------------------------------
# process helpers


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _proc_mentions(pid: int, needle: str) -> bool:
    """Whether the command line or environment (a job inherits ``SLURM_CONF``) mentions
    ``needle`` (a folder path), or the working directory or an open file is in it."""
    proc = Path(f"/proc/{pid}")
    try:
        if needle.encode() in proc.joinpath("cmdline").read_bytes():
            return True
    except OSError:
        return False
    with contextlib.suppress(OSError):
        if f"SLURM_CONF={needle}/".encode() in proc.joinpath("environ").read_bytes():
            return True
    candidates = [proc / "cwd"]
    with contextlib.suppress(OSError):
        candidates += list((proc / "fd").iterdir())
    for link in candidates:
        with contextlib.suppress(OSError):
            if os.readlink(link).startswith(needle):
                return True
    return False


def _proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _ancestors() -> set[int]:
    """This process and its ancestors (never to be killed)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def _kill_and_wait(pids: Iterable[int], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds, the processes that are alive."""
    pids = [p for p in pids if p != os.getpid() and _pid_alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            for pid in pids:  # reap our own children so that they don't stay zombies
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
            pids = [p for p in pids if _pid_alive(p)]
            if not pids:
                return
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _detect_node() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) of this machine, as slurmd sees it."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = 0
    slurmd = which("slurmd")
    if slurmd:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([slurmd, "-C"], capture_output=True, text=True,
                                 timeout=30).stdout
            match = re.search(r"RealMemory=(\d+)", out)
            memory = int(match.group(1)) if match else 0
    if not memory:
        with contextlib.suppress(OSError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) // 1024
    # a little below what is there, so that the node is never drained for "low memory"
    return max(1, cpus or 1), max(256, int(memory * 0.95))


def _wait_zombies_reaped(timeout: float = 8.0) -> None:
    """Wait (a little) until no defunct slurm/munge process is left.

    slurmstepd double-forks, so a finished job step is the child of init, which reaps it
    on its own schedule (every ~2 s in the CI VMs); until then ``pgrep slurm`` lists it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        zombies = []
        for pid in _all_pids():
            if not _proc_name(pid).startswith(("slurm", "munge")):
                continue
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                if stat.rsplit(")", 1)[-1].split()[0] == "Z":
                    zombies.append(pid)
        if not zombies:
            return
        time.sleep(0.2)


# ----------------------------------------------------------------------------------------
# stale clusters


def reap_stale_clusters(base: Path | None = None) -> list[Path]:
    """Stop and delete the clusters under ``base`` whose owning process is dead."""
    base = Path(base or tempfile.gettempdir())
    reaped = []
    for root in sorted(base.glob(f"{DIR_PREFIX}*")):
        state = root / "cluster.json"
        try:
            info = json.loads(state.read_text())
        except (OSError, ValueError):
            info = None
        if info is not None:
            owner = int(info.get("owner_pid", 0))
            if owner and _pid_alive(owner) and _proc_start(owner) == info.get("owner_start"):
                continue  # a live cluster of another process: leave it alone
        elif time.time() - root.stat().st_mtime < 120:
            continue  # a cluster being set up right now
        _stop_processes_of(root, (info or {}).get("pids", {}).values())
        shutil.rmtree(root, ignore_errors=True)
        reaped.append(root)
    return reaped


def _proc_start(pid: int) -> str | None:
    """Start time of a process (to tell a live owner from a reused pid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
    except (OSError, IndexError):
        return None


def _stop_processes_of(root: Path, pids: Iterable[int] = ()) -> None:
    """End every process that belongs to the cluster in ``root``: the recorded daemons, then
    any slurmstepd or job process still using the folder or its ``SLURM_CONF``."""
    needle = str(root)
    keep = _ancestors()
    own = [int(p) for p in pids
           if int(p) not in keep and _pid_alive(int(p)) and _proc_mentions(int(p), needle)]
    _kill_and_wait(own, timeout=5.0)
    for _ in range(3):
        stray = [pid for pid in _all_pids()
                 if pid not in keep and _pid_alive(pid) and _proc_mentions(pid, needle)]
        if not stray:
            return
        _kill_and_wait(stray, timeout=3.0)


# ----------------------------------------------------------------------------------------
# the sacct stand-in

SACCT_SHIM = r'''#!{python}
"""sacct stand-in for a cluster without slurmdbd: answers from `scontrol show job`.

Understands -o/--format, -j/--jobs (repeated or comma separated), -P/--parsable2,
-p/--parsable, -n/--noheader; other options are ignored. Job arrays are shown as
ARRAYID_TASKID (pending rest: ARRAYID_[a-b]) as sacct does.
"""
import os, re, subprocess, sys

FIELDS = {{"jobid": "JobID", "jobidraw": "JobId", "state": "JobState", "nodelist": "NodeList",
          "jobname": "JobName", "exitcode": "ExitCode", "elapsed": "RunTime",
          "start": "StartTime", "end": "EndTime", "submit": "SubmitTime",
          "partition": "Partition", "reason": "Reason", "user": "UserId",
          "restarts": "Restarts", "timelimit": "TimeLimit", "workdir": "WorkDir",
          "ncpus": "NumCPUs", "alloccpus": "NumCPUs", "nnodes": "NumNodes"}}


def main(argv):
    fmt, jobs, sep, header, trailing = ["JobID", "JobName", "State"], [], "|", True, False
    args = list(argv)
    while args:
        arg = args.pop(0)
        key, _, val = arg.partition("=")
        takes = key in ("-o", "--format", "-j", "--jobs")
        if takes and not val:
            val = args.pop(0) if args else ""
        if key in ("-o", "--format"):
            fmt = [f.split("%")[0] for f in val.split(",") if f]
        elif key in ("-j", "--jobs"):
            jobs += [j for j in val.split(",") if j]
        elif key in ("-P", "--parsable2"):
            trailing = False
        elif key in ("-p", "--parsable"):
            trailing = True
        elif key in ("-n", "--noheader"):
            header = False
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        return out.returncode
    wanted = {{j.split("_")[0].split(".")[0] for j in jobs}}
    rows = []
    for line in out.stdout.splitlines():
        rec = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" not in rec:
            continue
        main_id = rec.get("ArrayJobId", rec["JobId"])
        if wanted and rec["JobId"] not in wanted and main_id not in wanted:
            continue
        if "ArrayJobId" in rec:
            task = rec.get("ArrayTaskId", "").split("%")[0]
            rec["JobID"] = f"{{main_id}}_{{task}}" if task.isdigit() else f"{{main_id}}_[{{task}}]"
        else:
            rec["JobID"] = rec["JobId"]
        if rec.get("NodeList") in (None, "(null)"):
            rec["NodeList"] = "None assigned"
        rows.append([rec.get(FIELDS.get(f.lower(), f), "") for f in fmt])
    end = sep if trailing else ""
    lines = ([sep.join(fmt) + end] if header else []) + [sep.join(r) + end for r in rows]
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


# ----------------------------------------------------------------------------------------
# the cluster


class SlurmCluster:
    """A private single-node SLURM cluster (see the module docstring).

    Parameters
    ----------
    cpus, real_memory_mb:
        The node's size; detected from this machine when None. More CPUs than the machine
        has are allowed (the node is then oversubscribed, which lets more jobs run at once).
    cred_expire:
        SLURM's job credential lifetime in seconds (at least 5); it is also about how long a
        requeued job waits (state PENDING, reason BeginTime) before it may start again
        (SLURM's default is 120 s).
    base_dir:
        Where the cluster's temporary folder is made (default: the system temp dir).
    """

    def __init__(self, *, cpus: int | None = None, real_memory_mb: int | None = None,
                 cred_expire: int = 5, base_dir: str | Path | None = None,
                 start_timeout: float = 60.0) -> None:
        self.cpus = cpus
        self.real_memory_mb = real_memory_mb
        self.cred_expire = max(5, int(cred_expire))
        self.base_dir = Path(base_dir or tempfile.gettempdir())
        self.start_timeout = start_timeout
        self.root: Path | None = None
        self.node_name = socket.gethostname().split(".")[0]
        self.env: dict[str, str] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    # -- paths ---------------------------------------------------------------------------

    def _path(self, *parts: str) -> Path:
        if self.root is None:
            raise SlurmClusterError("the cluster is not started")
        return self.root.joinpath(*parts)

    @property
    def conf_path(self) -> Path:
        return self._path("etc", "slurm.conf")

    @property
    def bin_dir(self) -> Path:
        return self._path("bin")

    @property
    def log_dir(self) -> Path:
        return self._path("log")

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    # -- start / stop --------------------------------------------------------------------

    def start(self) -> SlurmCluster:
        if self._procs:
            return self
        ensure_installed()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        reap_stale_clusters(self.base_dir)
        # short: the munge socket path must stay under the 108-byte limit of AF_UNIX
        self.root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=self.base_dir))
        os.chmod(self.root, 0o755)
        try:
            self._write_files()
            self._start_daemons()
            self.wait_until_idle(self.start_timeout)
        except BaseException as exc:
            logs = self.log_tail()
            self.stop()
            if not isinstance(exc, Exception):
                raise
            raise SlurmClusterError(f"the SLURM cluster did not start ({exc}):\n{logs}") from exc
        return self

    def _write_files(self) -> None:
        for sub in ("etc", "bin", "log", "state", "spool", "munge", "run"):
            self._path(sub).mkdir(mode=0o755)
        self._write_state()
        cpus, memory = _detect_node()
        cpus = self.cpus or cpus
        memory = self.real_memory_mb or memory
        self.ctld_port, self.slurmd_port = _free_port(), _free_port()
        while self.slurmd_port == self.ctld_port:
            self.slurmd_port = _free_port()
        munge_socket = self._path("munge", "munge.socket")
        r = self.root
        user = pwd.getpwuid(os.geteuid()).pw_name
        conf = f"""\
# private single-node cluster written by tests/slurm/cluster.py
ClusterName=magdi{secrets.token_hex(3)}
SlurmctldHost={self.node_name}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire={self.cred_expire}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={r}/log/jobcomp.log
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
PropagateResourceLimits=NONE
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=2
MinJobAge=86400
InactiveLimit=0
Waittime=0
SlurmdTimeout=60
MessageTimeout=20
NodeName={self.node_name} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        self.conf_path.write_text(conf)
        shim = self.bin_dir / "sacct"
        shim.write_text(SACCT_SHIM.format(python=sys.executable))
        shim.chmod(0o755)
        # the key: 1 KiB of random bytes, readable by root only
        key = self._path("munge", "munge.key")
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self.munge_socket = munge_socket
        self.env = self._make_env()

    def _make_env(self) -> dict[str, str]:
        # drop SLURM_* variables of an enclosing job (tests run inside a real cluster's job)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_",
                                                                         "SRUN_", "SALLOC_"))}
        env["SLURM_CONF"] = str(self.conf_path)
        path = [str(self.bin_dir), *os.environ.get("PATH", "").split(os.pathsep)]
        path += [d for d in SYSTEM_DIRS if d not in path]
        env["PATH"] = os.pathsep.join(p for p in path if p)
        return env

    def _write_state(self) -> None:
        state = {"owner_pid": os.getpid(), "owner_start": _proc_start(os.getpid()),
                 "pids": {name: p.pid for name, p in self._procs.items()}}
        tmp = self._path("cluster.json.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self._path("cluster.json"))

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.out", "ab")  # noqa: SIM115 - closed by the child
        try:
            self._procs[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True, cwd=self.root)
        finally:
            log.close()
        self._write_state()

    def _start_daemons(self) -> None:
        munged = which("munged")
        self._spawn("munged", [
            munged, "--foreground", "--force", f"--socket={self.munge_socket}",
            f"--key-file={self._path('munge', 'munge.key')}",
            f"--pid-file={self._path('run', 'munged.pid')}",
            f"--log-file={self._path('log', 'munged.log')}",
            f"--seed-file={self._path('munge', 'munged.seed')}"])
        self._wait_for(lambda: self.munge_socket.exists(), 20, "munged's socket")
        conf = str(self.conf_path)
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-i", "-f", conf])
        self._wait_for(self._ctld_answers, 30, "slurmctld to answer")
        self._spawn("slurmd", [which("slurmd"), "-D", "-f", conf, "-N", self.node_name])

    def _check_daemons(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise SlurmClusterError(f"{name} exited with status {proc.returncode}")

    def _wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_daemons()
            if predicate():
                return
            time.sleep(0.2)
        raise SlurmClusterError(f"timed out after {timeout:.0f} s waiting for {what}")

    def _ctld_answers(self) -> bool:
        return self.run(["scontrol", "ping"], check=False, timeout=20).returncode == 0

    def node_state(self) -> str:
        out = self.run(["sinfo", "-h", "-N", "-o", "%t"], check=False, timeout=20)
        return out.stdout.strip()

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Wait until the node is idle (no job running, ready to take one)."""
        self._wait_for(lambda: self.node_state() == "idle", timeout, "the node to be idle")

    def stop(self) -> None:
        """Cancel all jobs and end every process of the cluster; delete its folder."""
        if self.root is None:
            return
        try:
            if self._procs.get("slurmctld") and self._procs["slurmctld"].poll() is None:
                with contextlib.suppress(Exception):
                    self._cancel_all_jobs()
            for name in ("slurmd", "slurmctld", "munged"):
                proc = self._procs.get(name)
                if proc is not None:
                    _kill_and_wait([proc.pid], timeout=10.0)
                    with contextlib.suppress(Exception):
                        proc.wait(timeout=5)
            _stop_processes_of(self.root, [p.pid for p in self._procs.values()])
            _wait_zombies_reaped()
        finally:
            self._procs = {}
            if os.environ.get("MAGDI_SLURM_KEEP"):
                print(f"keeping the SLURM cluster folder {self.root}", file=sys.stderr)
            else:
                shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _cancel_all_jobs(self) -> None:
        ids = self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=20).stdout.split()
        if not ids:
            return
        self.run(["scancel", *ids], check=False, timeout=20)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=20).stdout.split():
                return
            time.sleep(0.3)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- using it ------------------------------------------------------------------------

    @contextlib.contextmanager
    def activated(self) -> Iterator[SlurmCluster]:
        """Patch ``os.environ`` with :attr:`env` (for libraries that call SLURM in-process,
        such as submitit); restores it afterwards."""
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            yield self
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 60.0,
            **kwargs) -> subprocess.CompletedProcess:
        """Run a (SLURM) command in the cluster's environment; text output captured."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        result = subprocess.run(argv, env=self.env, timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise SlurmClusterError(
                f"{' '.join(map(str, argv))} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}")
        return result

    def sbatch(self, *args: str, cwd: str | Path | None = None) -> str:
        """Submit with ``sbatch --parsable ARGS``; returns the job id."""
        out = self.run(["sbatch", "--parsable", *args], cwd=cwd).stdout.strip()
        return out.split(";")[0]

    def job_info(self, job_id: str | int) -> dict[str, str]:
        """``scontrol show job`` as a dict ({} if SLURM does not know the job)."""
        out = self.run(["scontrol", "-o", "show", "job", str(job_id)], check=False)
        if out.returncode != 0 or not out.stdout.strip():
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", out.stdout.splitlines()[0]))

    def job_state(self, job_id: str | int) -> str:
        return self.job_info(job_id).get("JobState", "UNKNOWN")

    def wait_for_state(self, job_id: str | int, states: str | Iterable[str] = FINISHED_STATES,
                       timeout: float = 60.0, poll: float = 0.25) -> dict[str, str]:
        """Wait until the job is in one of ``states`` (default: any final state); returns its
        ``scontrol show job`` record. Raises on timeout, or when the job reaches a final state
        that was not asked for."""
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        info: Mapping[str, str] = {}
        while time.monotonic() < deadline:
            info = self.job_info(job_id)
            state = info.get("JobState", "UNKNOWN")
            if state in wanted:
                return dict(info)
            if state in FINISHED_STATES:
                raise SlurmClusterError(f"job {job_id} ended in {state}, not in {sorted(wanted)}: "
                                        f"{dict(info)}")
            time.sleep(poll)
        raise SlurmClusterError(f"job {job_id} not in {sorted(wanted)} after {timeout:.0f} s "
                                f"(last: {dict(info)})\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of every daemon log (for error messages)."""
        if self.root is None or not self.log_dir.is_dir():
            return ""
        parts = []
        logs = sorted(self.log_dir.iterdir())
        names = {log.name for log in logs}
        for log in logs:
            if log.suffix == ".out" and log.with_suffix(".log").name in names:
                continue  # `-D` copies the daemon's log file to its stdout
            with contextlib.suppress(OSError):
                text = log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)
