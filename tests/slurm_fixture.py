"""The session-scoped ``slurm_cluster`` fixture: a real single-node SLURM cluster.

Wire it in with ``from slurm_fixture import slurm_cluster  # noqa: F401`` (in a conftest or a
test module). However many modules import it, one cluster serves the whole session: the
fixture shares it through a reference count and stops it after the last user's teardown.

The cluster (``tests/slurm/cluster.py``) is started on first use: slurm/munge are installed
with ``tests/slurm/install.sh`` when missing (root only; otherwise setup fails with the
command to run). The fixture yields the :class:`~slurm.cluster.SlurmCluster`:

- ``cluster.env``: the environment for subprocesses (``subprocess.run(..., env=cluster.env)``);
- ``cluster.activated()``: a context manager patching ``os.environ`` with it (for in-process
  submitit);
- ``cluster.sbatch(*args)``, ``cluster.run(argv)``, ``cluster.job_info(id)``,
  ``cluster.job_state(id)``, ``cluster.wait_for_state(id, states, timeout)``,
  ``cluster.wait_until_idle()``, ``cluster.log_tail()``.

Set ``MAGDI_SLURM_KEEP=1`` to keep the cluster's folder (logs, state) after the session.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from slurm.cluster import SlurmCluster

_shared: dict[str, object] = {"cluster": None, "users": 0}


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-node SLURM cluster (partition ``debug``), shared by the session."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the SLURM test cluster needs Linux")
    cluster = _shared["cluster"]
    if cluster is None:
        cluster = SlurmCluster().start()
        _shared["cluster"] = cluster
    _shared["users"] += 1
    try:
        yield cluster
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["cluster"] = None
            cluster.stop()
