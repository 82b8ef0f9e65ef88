#!/usr/bin/env bash
# Install the Debian packages of a single-node SLURM cluster (slurmctld, slurmd, munge and
# the client commands) unless they are already there. Idempotent and quick when installed.
#
# Usage (as root):  bash tests/slurm/install.sh
set -euo pipefail

have_all() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v munged >/dev/null 2>&1 && command -v sbatch >/dev/null 2>&1 \
        && command -v scontrol >/dev/null 2>&1
}

# The daemons live in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

if have_all; then
    echo "slurm and munge are already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: slurm/munge are missing and installing them needs root:" >&2
    echo "  sudo bash $0" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages' postinst from starting the system-wide daemons
# (the tests start private ones with their own configuration).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap 'if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    slurmctld slurmd slurm-client munge >/dev/null
have_all || { echo "error: slurm/munge binaries still missing after apt-get" >&2; exit 1; }
echo "installed: $(slurmctld -V), munge $(munged --version 2>&1 | head -n1)"
