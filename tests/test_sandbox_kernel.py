"""The kernel is the sandbox's boundary: hostile programs with the Python guards switched off.

Each case of :mod:`tests.sandbox_hostile` runs twice: as the caller (root in CI: workers in
a bubblewrap container without a user namespace, programs as ``nobody``) and as an
unprivileged user (``unshare --user --map-user=1000``: bubblewrap then needs a user
namespace, and programs run as that user's uid). One subprocess per identity runs them all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_hostile import CASES

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

RUNNER = Path(__file__).with_name("sandbox_hostile.py")
REPO = RUNNER.parents[1]
EXTRA = ["leave_files_for_the_next_program", "kill_a_concurrent_program"]
IDENTITIES = ["caller", "unprivileged"]


def _command(identity: str, out: Path) -> list[str]:
    command = [sys.executable, str(RUNNER), str(out)]
    if identity == "caller":
        return command
    if os.geteuid() != 0 and identity == "unprivileged":
        return command  # the caller is unprivileged already
    return ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--", *command]


@pytest.fixture(scope="module", params=IDENTITIES)
def verdicts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, str | None]:
    out = tmp_path_factory.mktemp(request.param) / "verdicts.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(_command(request.param, out), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    if request.param == "unprivileged":
        assert report["uid"] != 0
    return report["verdicts"]


@pytest.mark.parametrize("name", [case.name for case in CASES] + EXTRA)
def test_hostile_program_is_contained_by_the_kernel(verdicts: dict[str, str | None],
                                                    name: str) -> None:
    assert verdicts[name] is None, verdicts[name]


def test_the_suite_is_large_enough() -> None:
    assert len(CASES) + len(EXTRA) >= 30
