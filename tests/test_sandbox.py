"""The program sandbox: functional behaviour, and a suite of hostile programs.

The hostile programs here test the Python-level guards (audit hook, import allowlist), kept
as defence in depth: each must end in a structured error within its limits (plus a little
slack), leave no file behind (neither its marker file outside the sandbox nor its temporary
directory), never see the parent's environment, and leave the sandbox workers alive. The
guarantees themselves come from the kernel and are tested with those guards switched off,
as root and unprivileged, in ``test_sandbox_kernel.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from threading import Timer

import pytest

from magdi_lightning.scoring.sandbox import (
    ALLOWED_IMPORTS,
    ERROR_TYPES,
    SANDBOX_ENV,
    SandboxLimits,
    SandboxPool,
    SandboxResult,
    run_program,
    run_programs,
)
from magdi_lightning.scoring.sandbox_isolation import SANDBOX_MODE_ENV, SandboxUnavailableError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

SECRET = f"sk-magdi-test-{uuid.uuid4().hex}"
LIMITS = SandboxLimits(wall_seconds=2.0, cpu_seconds=1.0, memory_mb=256, output_bytes=10_000)
SLACK_SECONDS = 1.5  # on top of wall_seconds: fork, start-up, clean-up on a busy machine

# Reaches the real ``sys`` module without any import statement.
GET_SYS = """
for cls in ().__class__.__base__.__subclasses__():
    g = getattr(cls.__init__, '__globals__', None)
    if g and 'sys' in g:
        sys = g['sys']
        break
os = sys.modules['os']
"""


@pytest.fixture(scope="module")
def sandbox_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pool creates the per-program directories (must be empty after each run)."""
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="module")
def pool(sandbox_tmp: Path) -> Iterator[SandboxPool]:
    """A pool started while the parent holds a secret in its environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAGDI_TEST_SECRET", SECRET)
        with SandboxPool(workers=2, tmp_dir=sandbox_tmp) as started:
            yield started


def run_one(pool: SandboxPool, code: str, limits: SandboxLimits = LIMITS) -> SandboxResult:
    return pool.run([code], limits)[0]


# --------------------------------------------------------------------------------------
# Functional behaviour
# --------------------------------------------------------------------------------------


def test_pot_program_returns_its_number(pool: SandboxPool) -> None:
    code = (
        "apples_per_box = 12\nboxes = 7\neaten = 5\n"
        "price_per_apple = 0.5\nans = (apples_per_box * boxes - eaten) * price_per_apple\n"
    )
    result = run_one(pool, code)
    assert result == SandboxResult(True, 39.5, None, "", "", result.wall_seconds)


def test_sympy_solves_an_equation(pool: SandboxPool) -> None:
    code = (
        "from sympy import Eq, Symbol, solve\n"
        "x = Symbol('x')\n"
        "ans = solve(Eq(3 * x + 4, 19), x)[0]\n"
    )
    result = run_one(pool, code)
    assert result.ok, result.message
    assert result.value == 5 and isinstance(result.value, int)


def test_every_allowed_module_that_is_installed_can_be_imported(pool: SandboxPool) -> None:
    names = sorted(name for name in ALLOWED_IMPORTS if importlib.util.find_spec(name))
    assert {"math", "sympy", "fractions", "decimal", "statistics"} <= set(names)
    code = "".join(f"import {name}\n" for name in names) + "ans = len(dir(math))"
    result = run_one(pool, code, SandboxLimits(wall_seconds=20, cpu_seconds=10))
    assert result.ok, result.message


def test_scipy_submodules_load_lazily(pool: SandboxPool) -> None:
    """scipy.optimize loads its own BLAS in the child, which must not try to start threads."""
    pytest.importorskip("scipy")
    code = "from scipy.optimize import brentq\nans = brentq(lambda x: x * x - 4, 0, 5)"
    result = run_one(pool, code, SandboxLimits(wall_seconds=20, cpu_seconds=10))
    assert result.ok, result
    assert result.value == pytest.approx(2.0)


def test_syntax_error(pool: SandboxPool) -> None:
    result = run_one(pool, "x = 1\nans = (x +\n")
    assert (result.ok, result.error_type) == (False, "syntax")
    assert "line" in result.message


def test_missing_result_variable(pool: SandboxPool) -> None:
    result = run_one(pool, "x = 1\nprint(x)")
    assert (result.ok, result.error_type, result.stdout) == (False, "no_result", "1\n")


def test_runtime_error_names_the_line(pool: SandboxPool) -> None:
    result = run_one(pool, "a = 1\nb = undefined_name + a\nans = b")
    assert (result.error_type, result.message) == (
        "runtime",
        "NameError: name 'undefined_name' is not defined (line 2)",
    )


def test_result_sources_in_order_of_precedence(pool: SandboxPool) -> None:
    codes = [
        "ans = 1\ndef solution():\n    return 2\n3",  # the result variable first
        "def solution():\n    return 2\n3",  # then solution()
        "x = 20\nx + 1",  # then the last expression
    ]
    assert [result.value for result in pool.run(codes)] == [1, 2, 21]
    custom = pool.run(["answer = 42"], result_name="answer")[0]
    assert (custom.ok, custom.value) == (True, 42)


def test_values_are_json_safe(pool: SandboxPool) -> None:
    codes = [
        "from fractions import Fraction\nans = Fraction(3, 4)",
        "import numpy\nans = numpy.int64(7)",
        "import sympy\nans = sympy.Rational(1, 8)",
        "import sympy\nans = sympy.Symbol('y') + 1",
        "ans = [1, 2.5]",
        "ans = float('inf')",
        "ans = 'text'",
        "ans = True",
    ]
    values = [result.value for result in pool.run(codes)]
    assert values == [0.75, 7, 0.125, "y + 1", "[1, 2.5]", "inf", "text", True]
    assert type(values[1]) is int
    json.dumps([asdict(result) for result in pool.run(codes)], allow_nan=False)


def test_a_huge_integer_result_is_an_error_not_a_stand_in_text(pool: SandboxPool) -> None:
    """A stand-in such as "<int of 20001 bits>" would be scored as the number 20001."""
    huge, large = pool.run(["ans = 2**20000", "ans = 10**2000"])
    assert (huge.ok, huge.error_type, huge.value) == (False, "runtime", None)
    assert "integer of 20001 bits" in huge.message
    assert large.value == 10**2000


def test_working_directory_is_private_writable_and_removed(
    pool: SandboxPool, sandbox_tmp: Path
) -> None:
    code = (
        "with open('scratch.txt', 'w') as f:\n    f.write('42')\n"
        "with open('scratch.txt') as f:\n    ans = int(f.read())\n"
    )
    result = run_one(pool, code)
    assert (result.ok, result.value) == (True, 42)
    assert list(sandbox_tmp.iterdir()) == []


def test_programs_do_not_share_state(pool: SandboxPool) -> None:
    first, second = pool.run(
        ["import math\nmath.leak = 1\nans = 1", "import math\nans = hasattr(math, 'leak')"]
    )
    assert (first.value, second.value) == (1, False)


def test_isolation_mechanisms_in_place(pool: SandboxPool) -> None:
    isolation = pool.isolation
    assert isolation["uid"] == (65534 if os.geteuid() == 0 else os.geteuid())
    assert isolation["seccomp"] and isolation["network_namespace"]
    kernel = shutil.which("bwrap") is not None
    assert (isolation["mode"], isolation["mount_namespace"], isolation["pid_namespace"]) == (
        ("kernel", True, True) if kernel else ("weak", False, False))


def test_weak_mode_still_applies_the_seccomp_filter(
    sandbox_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SANDBOX_MODE_ENV, "weak")
    with SandboxPool(workers=1, tmp_dir=sandbox_tmp, python_guards=False) as weak:
        assert weak.isolation["mode"] == "weak"
        forked, answered = weak.run(["import os\nans = os.fork()", "ans = 7"], LIMITS)
    assert "PermissionError" in forked.message and answered.value == 7
    assert list(sandbox_tmp.iterdir()) == []


def test_without_bubblewrap_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailableError, match=r"apt-get install bubblewrap.*=weak"):
        SandboxPool(workers=1)


def test_bubblewrap_that_cannot_create_namespaces_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: str(fake))
    with pytest.raises(SandboxUnavailableError, match=r"No permissions.*user namespaces"):
        SandboxPool(workers=1)


def test_unknown_sandbox_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SANDBOX_MODE_ENV, "none")
    with pytest.raises(SandboxUnavailableError, match="MAGDI_SANDBOX='none'"):
        SandboxPool(workers=1)


def test_module_level_api() -> None:
    assert run_programs([]) == []
    result = run_program("ans = 6 * 7")
    assert (result.ok, result.value) == (True, 42)
    results = run_programs([f"ans = {i}" for i in range(6)], workers=2)
    assert [result.value for result in results] == list(range(6))


def test_a_pool_started_by_a_thread_outlives_it() -> None:
    """Worker processes must not be tied to the thread that started them."""
    pools: list[SandboxPool] = []
    starter = threading.Thread(target=lambda: pools.append(SandboxPool(workers=1)))
    starter.start()
    starter.join()
    with pools[0] as pool:
        time.sleep(0.5)
        assert pool.run(["ans = 5"])[0].value == 5


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="wall_seconds"):
        SandboxLimits(wall_seconds=0)
    with pytest.raises(ValueError, match="open_files"):
        SandboxLimits(open_files=3)


def test_a_killed_worker_is_replaced(pool: SandboxPool) -> None:
    victim = pool.worker_pids[0]
    code = "import time\ntime.sleep(30)"
    limits = SandboxLimits(wall_seconds=30, cpu_seconds=1)
    Timer(0.5, os.killpg, (victim, 9)).start()  # the worker and, in kernel mode, its container
    result = pool.run([code], limits)[0]
    assert (result.error_type, result.message) == ("crashed", "sandbox worker died")
    assert victim not in pool.worker_pids
    assert [result.value for result in pool.run(["ans = 1", "ans = 2", "ans = 3"])] == [1, 2, 3]


# --------------------------------------------------------------------------------------
# Hostile programs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    name: str
    code: str  # MARKER is replaced by a path outside the sandbox that must not appear
    expected: tuple[str | None, ...]  # acceptable error types (None: may succeed)


# Run hex-encoded by exec_hex_payload, so that no "os" appears in the program's text.
PAYLOAD = "import os\nos.system('touch ' + marker)"

HOSTILE = [
    Hostile("read_etc_passwd", "ans = open('/etc/passwd').read()", ("forbidden",)),
    Hostile("read_proc_self_environ", "ans = open('/proc/self/environ').read()", ("forbidden",)),
    Hostile(
        "read_worker_environ",
        GET_SYS + "ans = open(f'/proc/{os.getppid()}/environ').read()",
        ("forbidden",),
    ),
    Hostile("read_this_repository", f"ans = open({__file__!r}).read()", ("forbidden",)),
    Hostile("list_root_directory", GET_SYS + "ans = os.listdir('/')", ("forbidden",)),
    Hostile(
        "environment_variables",
        GET_SYS + "ans = ' '.join(f'{k}={v}' for k, v in sorted(os.environ.items()))",
        (None,),
    ),
    Hostile("write_outside", "open('MARKER', 'w').write('pwned')\nans = 1", ("forbidden",)),
    Hostile(
        "write_outside_with_os_open",
        GET_SYS + "fd = os.open('MARKER', os.O_WRONLY | os.O_CREAT)\nans = fd",
        ("forbidden",),
    ),
    Hostile(
        "write_through_symlink",
        GET_SYS + "os.symlink('MARKER', 'link')\nopen('link', 'w').write('x')\nans = 1",
        ("forbidden",),
    ),
    Hostile("chdir_out", GET_SYS + "os.chdir('/')\nans = os.listdir('.')", ("forbidden",)),
    Hostile(
        "socket_connect",
        "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 22))\nans = 1",
        ("forbidden",),
    ),
    Hostile(
        "socket_through_importlib",
        GET_SYS + "socket = sys.modules['importlib'].import_module('socket')\n"
        "socket.create_connection(('127.0.0.1', 22))\nans = 1",
        ("forbidden",),
    ),
    Hostile("subprocess_run", "import subprocess\nans = subprocess.run(['ls'])", ("forbidden",)),
    Hostile(
        "subprocess_already_loaded",
        GET_SYS + "ans = sys.modules['subprocess'].run(['touch', 'MARKER'])",
        ("forbidden",),
    ),
    Hostile("os_system", GET_SYS + "ans = os.system('touch MARKER')", ("forbidden",)),
    Hostile(
        "subclasses_walk_to_os_system",
        "cls = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close']\n"
        "ans = cls[0].__init__.__globals__['system']('touch MARKER')",
        ("forbidden",),
    ),
    Hostile("os_exec", GET_SYS + "os.execv('/bin/sh', ['sh', '-c', 'touch MARKER'])",
            ("forbidden",)),
    Hostile("fork_bomb", GET_SYS + "while True:\n    os.fork()", ("forbidden",)),
    Hostile("memory_bomb_string", "ans = 'x' * 10**10", ("memory",)),
    Hostile("memory_bomb_list", "a = []\nwhile True:\n    a.append('x' * 10**6)", ("memory",)),
    Hostile("memory_bomb_numpy", "import numpy\nans = numpy.ones(10**9).sum()", ("memory",)),
    Hostile("infinite_loop", "while True:\n    pass", ("timeout",)),
    Hostile("sleep_loop", "import time\nwhile True:\n    time.sleep(0.05)", ("timeout",)),
    Hostile("huge_stdout", "while True:\n    print('x' * 1000)", ("output_limit",)),
    Hostile("huge_stderr", GET_SYS + "while True:\n    sys.stderr.write('y' * 1000)",
            ("output_limit",)),
    Hostile(
        "import_through_builtins",
        "b = __builtins__\nimp = b['__import__'] if isinstance(b, dict) else b.__import__\n"
        "ans = imp('os').system('touch MARKER')",
        ("forbidden",),
    ),
    Hostile("dunder_import_os", "ans = __import__('os').system('touch MARKER')", ("forbidden",)),
    Hostile("import_importlib", "import importlib\nans = importlib.import_module('os')",
            ("forbidden",)),
    Hostile("import_ctypes", "import ctypes\nans = ctypes.CDLL(None).system(b'id')",
            ("forbidden",)),
    Hostile(
        "ctypes_already_loaded",
        GET_SYS + "ans = sys.modules['ctypes'].CDLL(None).system(b'touch MARKER')",
        ("forbidden",),
    ),
    Hostile(
        "ignore_sigxcpu_and_sigterm",
        GET_SYS + "signal = sys.modules['signal']\n"
        "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass",
        ("timeout",),
    ),
    Hostile("deep_recursion", "def f(n):\n    return f(n + 1)\nans = f(0)", ("runtime",)),
    Hostile(
        "deep_recursion_with_raised_limit",
        GET_SYS + "sys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nans = f(0)",
        ("timeout", "memory", "crashed", "runtime"),
    ),
    Hostile("sys_exit", "exit(0)", ("runtime",)),
    Hostile("os_underscore_exit", GET_SYS + "os._exit(0)", ("runtime",)),
    Hostile("kill_the_worker", GET_SYS + "os.kill(os.getppid(), 9)\nans = 1", ("forbidden",)),
    Hostile(
        "kill_every_process",
        GET_SYS + "os.kill(-1, 9)\nans = 1",
        ("forbidden",),
    ),
    Hostile(
        "exec_hex_payload",
        "marker = 'MARKER'\n"
        f"exec(bytes.fromhex('{PAYLOAD.encode().hex()}').decode())",
        ("forbidden",),
    ),
    Hostile(
        "eval_pickle_payload",
        GET_SYS + "ans = sys.modules['pickle'].loads(b\"cos\\nsystem\\n(S'touch MARKER'\\ntR.\")",
        ("forbidden",),
    ),
    Hostile(
        "spawn_threads",
        GET_SYS + "threading = sys.modules['threading']\n"
        "for _ in range(50):\n    threading.Thread(target=lambda: None).start()\nans = 1",
        ("runtime",),
    ),
    Hostile(
        "hostile_repr_of_the_result",
        "class Evil:\n    def __repr__(self):\n        while True:\n            pass\nans = Evil()",
        ("timeout",),
    ),
    Hostile(
        "catches_the_violation_and_answers_anyway",
        "try:\n    open('/etc/passwd').read()\nexcept Exception:\n    pass\nans = 42",
        ("forbidden",),
    ),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_hostile_program_is_contained(
    pool: SandboxPool, sandbox_tmp: Path, case: Hostile
) -> None:
    marker = Path(tempfile.gettempdir()) / f"pwned-{uuid.uuid4().hex}"
    workers = pool.worker_pids
    started = time.monotonic()
    result = run_one(pool, case.code.replace("MARKER", str(marker)))
    elapsed = time.monotonic() - started

    assert result.error_type in case.expected, result
    assert set(case.expected) - {None} <= set(ERROR_TYPES)
    assert result.ok == (result.error_type is None)
    assert elapsed < LIMITS.wall_seconds + SLACK_SECONDS
    assert not marker.exists()
    assert SECRET not in json.dumps(asdict(result))
    assert list(sandbox_tmp.iterdir()) == []  # its temporary directory was removed
    assert pool.worker_pids == workers  # nothing killed a worker
    assert run_one(pool, "ans = 1").value == 1
    if case.name == "environment_variables":
        assert result.value == " ".join(f"{k}={v}" for k, v in sorted(SANDBOX_ENV.items()))


def test_fork_without_audit_event_is_stopped_by_seccomp(pool: SandboxPool) -> None:
    """``_posixsubprocess.fork_exec`` raises no audit event: the kernel has to stop it."""
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the fork_exec argument list below is CPython 3.11's")
    marker = Path(tempfile.gettempdir()) / f"pwned-{uuid.uuid4().hex}"
    code = GET_SYS + (
        "fork_exec = sys.modules['_posixsubprocess'].fork_exec\n"
        "r, w = os.pipe()\n"
        f"argv = [b'/bin/sh', b'-c', b'touch {marker}']\n"
        "try:\n"
        "    ans = fork_exec(argv, [b'/bin/sh'], True, (), None, None, -1, -1, -1, -1, -1, -1,\n"
        "                    r, w, False, False, -1, None, None, None, -1, None, True)\n"
        "except OSError as exc:\n"
        "    ans = type(exc).__name__\n"
    )
    result = run_one(pool, code)
    time.sleep(0.2)  # a process that did get through would need a moment to touch the file
    assert (result.ok, result.value) == (True, "PermissionError")  # EPERM from seccomp
    assert not marker.exists()
